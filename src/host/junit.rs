//! Merging the JUnit XML files of a sharded run into one (`shard{ junit = … }`): every
//! `<testsuite>` element of every shard's file, in shard order, under one `<testsuites>` whose
//! `tests`, `failures`, `errors`, `skipped` and `time` are the sums of the suites'. Each suite
//! keeps its own text as the runner wrote it. The files are read whole (JUnit reports are small)
//! and must be UTF-8.

use std::fmt::Write as _;

/// The totals of one or more suites.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    /// `tests`.
    pub tests: u64,
    /// `failures`.
    pub failures: u64,
    /// `errors`.
    pub errors: u64,
    /// `skipped`.
    pub skipped: u64,
    /// `time`, seconds.
    pub time: f64,
}

/// The `<testsuite …>…</testsuite>` (or self-closing) elements of a JUnit document, as
/// written; a `<testsuites>` wrapper and the XML declaration are left out.
#[must_use]
pub fn suites(xml: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = xml;
    let mut offset = 0;
    while let Some(at) = find_open(rest) {
        let start = offset + at;
        let tail = &xml[start..];
        let Some(head_end) = tail.find('>') else {
            break;
        };
        let end = if tail[..head_end].ends_with('/') {
            head_end + 1
        } else {
            match tail.find("</testsuite>") {
                Some(close) => close + "</testsuite>".len(),
                None => break,
            }
        };
        out.push(&xml[start..start + end]);
        offset = start + end;
        rest = &xml[offset..];
    }
    out
}

/// The next `<testsuite` that is not `<testsuites`.
fn find_open(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find("<testsuite") {
        let pos = from + at;
        let next = text[pos + "<testsuite".len()..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '>' || c == '/') {
            return Some(pos);
        }
        from = pos + 1;
    }
    None
}

/// An attribute of an element's opening tag.
fn attribute<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let head = &element[..element.find('>').unwrap_or(element.len())];
    for quote in ['"', '\''] {
        let key = format!(" {name}={quote}");
        if let Some(at) = head.find(&key) {
            let value = &head[at + key.len()..];
            return value.find(quote).map(|end| &value[..end]);
        }
    }
    None
}

/// The totals of a suite, from its attributes (a missing one counts 0).
#[must_use]
pub fn totals(suite: &str) -> Totals {
    let number = |name| {
        attribute(suite, name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Totals {
        tests: number("tests"),
        failures: number("failures"),
        errors: number("errors"),
        skipped: number("skipped"),
        time: attribute(suite, "time")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0),
    }
}

/// Merge the documents (shard order) into one `<testsuites name="NAME">` document; returns
/// it and its totals.
#[must_use]
pub fn merge(name: &str, documents: &[String]) -> (String, Totals) {
    let mut all = Totals::default();
    let mut body = String::new();
    for doc in documents {
        for suite in suites(doc) {
            let t = totals(suite);
            all.tests += t.tests;
            all.failures += t.failures;
            all.errors += t.errors;
            all.skipped += t.skipped;
            all.time += t.time;
            body.push_str("  ");
            body.push_str(suite);
            body.push('\n');
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        escape(name),
        all.tests,
        all.failures,
        all.errors,
        all.skipped,
        all.time
    );
    out.push_str(&body);
    out.push_str("</testsuites>\n");
    (out, all)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_of_every_shard_are_merged_with_summed_totals() {
        let one = r#"<?xml version="1.0"?>
<testsuites name="nextest-run" tests="3">
  <testsuite name="a" tests="2" failures="1" errors="0" time="1.5"><testcase name="x"/><testcase name="y"><failure/></testcase></testsuite>
  <testsuite name="b" tests="1" time="0.25"/>
</testsuites>"#;
        let two = r#"<testsuite name='c' tests='4' skipped='1' errors="1" time="2"><testcase name="z"/></testsuite>"#;
        let (xml, totals) = merge("shards", &[one.to_owned(), two.to_owned()]);
        assert_eq!(
            totals,
            Totals {
                tests: 7,
                failures: 1,
                errors: 1,
                skipped: 1,
                time: 3.75
            }
        );
        assert!(xml.contains(r#"<testsuites name="shards" tests="7" failures="1" errors="1" skipped="1" time="3.750">"#), "{xml}");
        assert_eq!(xml.matches("<testsuite ").count(), 3, "{xml}");
        assert!(xml.contains(r#"<testcase name="y"><failure/></testcase></testsuite>"#));
        assert!(xml.ends_with("</testsuites>\n"));
    }
}
