//! Small text helpers for the picture: durations as people read them, nice axis steps, XML
//! escaping.

/// A duration in milliseconds as shown on bars and the axis: `0 ms`, `850 ms`, `1.25 s`,
/// `12.5 s`, `2 m 05 s`.
#[must_use]
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..10_000 => format!("{}.{:02} s", ms / 1_000, (ms % 1_000) / 10),
        10_000..60_000 => format!("{}.{} s", ms / 1_000, (ms % 1_000) / 100),
        _ => format!("{} m {:02} s", ms / 60_000, (ms % 60_000) / 1_000),
    }
}

/// The tick spacing for an axis of `total` ms: 1, 2 or 5 times a power of ten, giving at most
/// `max_ticks` intervals.
#[must_use]
pub fn tick_step(total: u64, max_ticks: u64) -> u64 {
    let raw = total.div_ceil(max_ticks.max(1)).max(1);
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10 * magnitude)
}

/// `text` escaped for XML character data and attribute values.
#[must_use]
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0; a step name will not need them.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(1_250), "1.25 s");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(125_000), "2 m 05 s");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(482, 8), 100);
        assert_eq!(tick_step(80, 8), 10);
        assert_eq!(tick_step(1, 8), 1);
        assert_eq!(tick_step(15_000, 8), 2_000);
        assert_eq!(tick_step(0, 8), 1);
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(xml("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(xml("x\u{7}"), "x\u{fffd}");
    }
}
