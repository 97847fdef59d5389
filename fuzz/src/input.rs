//! A cursor over a fuzzer's bytes that builds structured inputs from them: every read succeeds
//! (an exhausted input reads zeros), so any byte string is a valid input.

/// Characters that matter to the parsers under test, picked more often than the rest.
const SPECIAL: &[char] = &[
    '"', '\\', '$', '%', '{', '}', '[', ']', '=', '#', '/', '*', '<', '-', '.', ',', '\n', '\r',
    '\t', ' ', ':', '\'', '\0', '\u{7f}', '\u{85}', '\u{2028}', '\u{feff}', 'é', '😀', 'a', 'Z',
    '0', '9', '_',
];

/// The cursor.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// Whether every byte has been read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte (0 once exhausted).
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 256 {
            usize::from(self.byte()) % n
        } else {
            (usize::from(self.byte()) << 8 | usize::from(self.byte())) % n
        }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Up to `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.byte()).collect()
    }

    /// A string of up to `max` characters, mostly [`SPECIAL`] ones and ASCII letters, some of
    /// them any Unicode scalar value.
    pub fn text(&mut self, max: usize) -> String {
        let len = self.below(max + 1);
        let mut out = String::new();
        for _ in 0..len {
            let b = self.byte();
            let c = match b {
                0..=127 => self.pick(SPECIAL),
                128..=223 => char::from(b'a' + (b - 128) % 26),
                _ => {
                    let n = u32::from(self.byte()) << 16
                        | u32::from(self.byte()) << 8
                        | u32::from(self.byte());
                    char::from_u32(n % 0x11_0000).unwrap_or('\u{fffd}')
                }
            };
            out.push(c);
        }
        out
    }

    /// What is left, as text (invalid UTF-8 replaced).
    pub fn rest_text(&mut self) -> String {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        self.pos = self.data.len();
        String::from_utf8_lossy(rest).into_owned()
    }

    /// What is left, as bytes.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        self.pos = self.data.len();
        rest
    }
}
