//! `tiny FILE`: print the word count and the longest word of a file.

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Cargo.toml".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        eprintln!("tiny: cannot read {path}: {err}");
        std::process::exit(2);
    });
    println!(
        "{path}: {} words, longest: {}",
        tiny::word_count(&text),
        tiny::longest_word(&text).unwrap_or("-")
    );
}
