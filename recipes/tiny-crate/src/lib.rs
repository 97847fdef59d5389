//! A tiny crate for the example recipes: word statistics over a text.

/// Count the words of `text` (runs of non-whitespace).
#[must_use]
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The longest word of `text`, the first one on a tie.
#[must_use]
pub fn longest_word(text: &str) -> Option<&str> {
    text.split_whitespace()
        .fold(None, |best: Option<&str>, word| match best {
            Some(b) if b.len() >= word.len() => Some(b),
            _ => Some(word),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words() {
        assert_eq!(word_count("a recipe runs  on a box\n"), 6);
        assert_eq!(word_count(""), 0);
    }

    #[test]
    fn finds_the_longest_word() {
        assert_eq!(longest_word("lease sync exec fetch"), Some("lease"));
        assert_eq!(longest_word(""), None);
    }
}
