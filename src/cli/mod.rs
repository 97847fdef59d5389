//! (being written)

/// Entry point.
#[must_use]
pub fn main() -> i32 {
    0
}
