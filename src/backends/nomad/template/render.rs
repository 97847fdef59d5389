//! The renderer: substitutes the placeholders of a template's text, escaped for the string
//! literal each one sits in. A pure function of the text, its format and the values
//! ([`render`]); nothing here reads files or talks to Nomad.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::error::TemplateErrorKind;

/// Every placeholder name a template may use.
pub const PLACEHOLDERS: [&str; 9] = [
    "lease_id",
    "job_id",
    "task",
    "workdir",
    "namespace",
    "region",
    "scope",
    "owner",
    "expires_at",
];

/// How a template is written, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFormat {
    /// `.json`: the API job, bare or as `{"Job": …}`.
    Json,
    /// `.hcl`: a jobspec, parsed by the agent.
    Hcl,
}

impl TemplateFormat {
    /// The format a file name says, if any.
    #[must_use]
    pub fn of(path: &Path) -> Option<TemplateFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(TemplateFormat::Json),
            "hcl" => Some(TemplateFormat::Hcl),
            _ => None,
        }
    }
}

/// The values placeholders stand for.
#[derive(Debug, Clone, Default)]
pub struct TemplateValues(BTreeMap<&'static str, String>);

impl TemplateValues {
    /// Set one placeholder's value.
    ///
    /// # Panics
    /// When `name` is not one of [`PLACEHOLDERS`] (a bug).
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        assert!(PLACEHOLDERS.contains(&name), "unknown placeholder {name}");
        self.0.insert(name, value.into());
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// A placeholder at the start of `rest`: its name and length, when `rest` starts with
/// `{{name}}` (a name is a letter or `_`, then letters, digits and `_`).
fn placeholder_at(rest: &str) -> Option<(&str, usize)> {
    let inner = rest.strip_prefix("{{")?;
    let end = inner
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(inner.len(), |(i, _)| i);
    if end == 0 || !inner[end..].starts_with("}}") {
        return None;
    }
    Some((&inner[..end], end + 4))
}

/// A value as JSON string contents (without the quotes).
#[must_use]
pub fn json_escape(value: &str) -> String {
    let quoted = Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// A value as HCL quoted-string contents: backslash escapes for `"`, `\` and control
/// characters, and `${`, `%{` doubled to `$${`, `%%{` so no template sequence starts.
#[must_use]
pub fn hcl_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Where the scanner is.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// Outside strings (JSON, or HCL structure and expressions).
    Code,
    /// Inside a quoted string literal.
    Str,
    /// Inside an HCL `${…}` or `%{…}` sequence, with its open-brace depth.
    Sequence(usize),
}

struct Renderer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    out: String,
    /// The last substituted HCL value ended in this `$` or `%`: doubled if a `{` follows, so
    /// the two do not start a template sequence.
    pending: Option<char>,
    format: TemplateFormat,
    values: &'a TemplateValues,
}

/// Substitute the placeholders of a template's text. On error, the line and what is wrong.
///
/// # Errors
/// A placeholder outside a string literal, in a heredoc, or with an unknown name.
pub fn render(
    text: &str,
    format: TemplateFormat,
    values: &TemplateValues,
) -> Result<String, (usize, TemplateErrorKind)> {
    let mut r = Renderer {
        src: text,
        pos: 0,
        line: 1,
        out: String::with_capacity(text.len()),
        pending: None,
        format,
        values,
    };
    r.run()?;
    Ok(r.out)
}

impl Renderer<'_> {
    fn emit(&mut self, s: &str) {
        if s.is_empty() {
            // An empty value between a trailing `$`/`%` and what follows changes nothing.
            return;
        }
        if let Some(c) = self.pending.take() {
            if s.starts_with('{') {
                self.out.push(c);
            } else if s.strip_prefix(c).is_some_and(|r| r.starts_with('{')) {
                // The template's own `${`/`%{` after the value: doubling would make it `$${`,
                // a literal, so the value's last character becomes an escape instead.
                self.out.pop();
                self.out
                    .push_str(if c == '$' { "\\u0024" } else { "\\u0025" });
            }
        }
        self.out.push_str(s);
    }

    /// Copy `len` bytes of the source.
    fn copy(&mut self, len: usize) {
        let chunk = &self.src[self.pos..self.pos + len];
        self.line += chunk.matches('\n').count();
        self.pos += len;
        self.emit(chunk);
    }

    /// Copy the next character.
    fn copy_char(&mut self) {
        let len = self.src[self.pos..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        self.copy(len);
    }

    fn error(&self, kind: TemplateErrorKind) -> (usize, TemplateErrorKind) {
        (self.line, kind)
    }

    /// The placeholder at the cursor, checked to be known; `None` when there is none.
    fn placeholder(&self) -> Result<Option<(&'static str, usize)>, (usize, TemplateErrorKind)> {
        let Some((name, len)) = placeholder_at(&self.src[self.pos..]) else {
            return Ok(None);
        };
        match PLACEHOLDERS.iter().find(|p| **p == name) {
            Some(known) => Ok(Some((known, len))),
            None => {
                let hint = PLACEHOLDERS
                    .iter()
                    .map(|p| (p, strsim::normalized_damerau_levenshtein(name, p)))
                    .filter(|(_, score)| *score >= 0.6)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(p, _)| format!("; did you mean `{{{{{p}}}}}`?"))
                    .unwrap_or_default();
                Err(self.error(TemplateErrorKind::Unknown {
                    placeholder: format!("{{{{{name}}}}}"),
                    hint,
                }))
            }
        }
    }

    fn run(&mut self) -> Result<(), (usize, TemplateErrorKind)> {
        let hcl = self.format == TemplateFormat::Hcl;
        let mut stack = vec![Frame::Code];
        while self.pos < self.src.len() {
            let rest = &self.src[self.pos..];
            let top = *stack.last().unwrap_or(&Frame::Code);
            match top {
                Frame::Code | Frame::Sequence(_) => {
                    if let Some((name, _)) = self.placeholder()? {
                        return Err(self.error(TemplateErrorKind::OutsideString {
                            placeholder: format!("{{{{{name}}}}}"),
                        }));
                    }
                    if hcl && (rest.starts_with('#') || rest.starts_with("//")) {
                        self.copy(rest.find('\n').unwrap_or(rest.len()));
                    } else if hcl && rest.starts_with("/*") {
                        self.copy(rest.find("*/").map_or(rest.len(), |i| i + 2));
                    } else if hcl && rest.starts_with("<<") {
                        self.heredoc()?;
                    } else if rest.starts_with('"') {
                        stack.push(Frame::Str);
                        self.copy(1);
                    } else if let Frame::Sequence(depth) = top
                        && (rest.starts_with('{') || rest.starts_with('}'))
                    {
                        stack.pop();
                        if rest.starts_with('{') {
                            stack.push(Frame::Sequence(depth + 1));
                        } else if depth > 0 {
                            stack.push(Frame::Sequence(depth - 1));
                        }
                        self.copy(1);
                    } else {
                        self.copy_char();
                    }
                }
                Frame::Str => {
                    if let Some((name, len)) = self.placeholder()? {
                        let value = self.values.get(name).unwrap_or_default();
                        self.pos += len;
                        if hcl {
                            let escaped = hcl_escape(value);
                            self.emit(&escaped);
                            // An empty value leaves an earlier value's trailing `$`/`%` pending.
                            if !escaped.is_empty() {
                                self.pending =
                                    escaped.chars().last().filter(|c| matches!(c, '$' | '%'));
                            }
                        } else {
                            self.emit(&json_escape(value));
                        }
                    } else if let Some(escaped) = rest.strip_prefix('\\') {
                        let next = escaped.chars().next().map_or(0, char::len_utf8);
                        self.copy(1 + next);
                    } else if rest.starts_with('"') {
                        stack.pop();
                        self.copy(1);
                    } else if hcl && (rest.starts_with("$${") || rest.starts_with("%%{")) {
                        self.copy(3);
                    } else if hcl && (rest.starts_with("${") || rest.starts_with("%{")) {
                        stack.push(Frame::Sequence(0));
                        self.copy(2);
                    } else {
                        self.copy_char();
                    }
                }
            }
        }
        Ok(())
    }

    /// Copy an HCL heredoc (`<<EOF` or `<<-EOF` up to the line that is just `EOF`), refusing
    /// placeholders in it: its contents take no backslash escapes, so a value could not be
    /// escaped there.
    fn heredoc(&mut self) -> Result<(), (usize, TemplateErrorKind)> {
        let rest = &self.src[self.pos..];
        let after = rest[2..].strip_prefix('-').unwrap_or(&rest[2..]);
        let marker_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let marker = &after[..marker_len];
        if marker.is_empty() || !after[marker_len..].starts_with(['\n', '\r']) {
            // Not a heredoc: `<<` in some other expression.
            self.copy(2);
            return Ok(());
        }
        let marker = marker.to_owned();
        let header = rest.len() - after.len() + marker_len;
        self.copy(header);
        loop {
            let rest = &self.src[self.pos..];
            if rest.is_empty() {
                return Ok(());
            }
            let line_len = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let line = &rest[..line_len];
            if let Some((i, name)) = line
                .match_indices("{{")
                .find_map(|(i, _)| placeholder_at(&line[i..]).map(|(name, _)| (i, name)))
            {
                let placeholder = format!("{{{{{name}}}}}");
                self.pos += i;
                // An unknown name is reported as such.
                self.placeholder()?;
                return Err(self.error(TemplateErrorKind::InHeredoc { placeholder }));
            }
            let done = line.trim() == marker;
            self.copy(line_len);
            if done {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues {
        TemplateValues::default()
            .with("lease_id", "lbx_0123456789ab")
            .with("task", "leasebox")
            .with("owner", "a\"b\\c${d}%{e}")
            .with("workdir", "${NOMAD_ALLOC_DIR}/leasebox")
    }

    #[test]
    fn placeholders_are_recognised_exactly() {
        assert_eq!(placeholder_at("{{owner}} x"), Some(("owner", 9)));
        assert_eq!(placeholder_at("{{job_id2}}"), Some(("job_id2", 11)));
        for not in [
            "{{ owner }}",
            "{{owner}",
            "{{}}",
            "{{2x}}",
            "{{.Name}}",
            "{x}",
        ] {
            assert_eq!(placeholder_at(not), None, "{not}");
        }
    }

    #[test]
    fn json_values_are_escaped_inside_strings() {
        let out = render(
            r#"{"ID": "{{lease_id}}", "Meta": {"o": "{{owner}} {{ env \"X\" }}"}}"#,
            TemplateFormat::Json,
            &values(),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ID"], "lbx_0123456789ab");
        assert_eq!(v["Meta"]["o"], "a\"b\\c${d}%{e} {{ env \"X\" }}");
    }

    #[test]
    fn hcl_values_are_escaped_inside_strings() {
        assert_eq!(hcl_escape("a\"b\\c${d}%{e}\n"), "a\\\"b\\\\c$${d}%%{e}\\n");
        let out = render(
            "job \"{{lease_id}}\" {\n  meta { o = \"{{owner}}\" w = \"{{workdir}}\" }\n}\n",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap();
        assert_eq!(
            out,
            "job \"lbx_0123456789ab\" {\n  meta { o = \"a\\\"b\\\\c$${d}%%{e}\" w = \"$${NOMAD_ALLOC_DIR}/leasebox\" }\n}\n"
        );
    }

    #[test]
    fn a_trailing_dollar_before_a_brace_cannot_open_a_sequence() {
        let v = TemplateValues::default()
            .with("owner", "x$")
            .with("task", "{y}");
        let out = render("a = \"{{owner}}{z}\"", TemplateFormat::Hcl, &v).unwrap();
        assert_eq!(out, "a = \"x$${z}\"");
        let out = render("a = \"{{owner}}{{task}}\"", TemplateFormat::Hcl, &v).unwrap();
        assert_eq!(out, "a = \"x$${y}\"");
        let out = render("a = \"{{owner}}-\"", TemplateFormat::Hcl, &v).unwrap();
        assert_eq!(out, "a = \"x$-\"");
        // Found by the `template_render` fuzz target: a value ending in `$` or `%` before the
        // template's own `${…}` or `%{…}` turned it into the literal `$${…}` / `%%{…}`.
        let v = TemplateValues::default()
            .with("owner", "x$")
            .with("task", "y%");
        let out = render(
            "a = \"{{owner}}${NOMAD_ALLOC_DIR}{{task}}%{ if true }z%{ endif }\"",
            TemplateFormat::Hcl,
            &v,
        )
        .unwrap();
        assert_eq!(
            out,
            "a = \"x\\u0024${NOMAD_ALLOC_DIR}y\\u0025%{ if true }z%{ endif }\""
        );
        // Found by the fuzz target too: an empty value between the trailing `$` and the brace.
        let v = TemplateValues::default()
            .with("owner", "$")
            .with("lease_id", "");
        let out = render("a = \"{{owner}}{{lease_id}}{x}\"", TemplateFormat::Hcl, &v).unwrap();
        assert_eq!(out, "a = \"$${x}\"");
        let out = render(
            "a = \"{{owner}}{{lease_id}}${NOMAD_ALLOC_DIR}\"",
            TemplateFormat::Hcl,
            &v,
        )
        .unwrap();
        assert_eq!(out, "a = \"\\u0024${NOMAD_ALLOC_DIR}\"");
    }

    #[test]
    fn hcl_sequences_comments_and_escapes_are_followed() {
        let text = "# {{nope}} in a comment\njob \"x\" {\n  a = \"${NOMAD_ALLOC_DIR} $${x} \\\" {{task}}\"\n  /* {{lease_id}} */\n}\n";
        let out = render(text, TemplateFormat::Hcl, &values()).unwrap();
        assert!(out.contains("\\\" leasebox\""), "{out}");
        assert!(out.contains("# {{nope}}"));
        // Inside `${…}` a placeholder is code, not string contents.
        let (line, kind) = render(
            "job \"x\" {\n  a = \"${upper({{task}})}\"\n}",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap_err();
        assert_eq!(line, 2);
        assert!(matches!(kind, TemplateErrorKind::OutsideString { .. }));
        // A string nested in a sequence is a string again.
        let out = render(
            "a = \"${lower(\"{{task}}\")}\"",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap();
        assert_eq!(out, "a = \"${lower(\"leasebox\")}\"");
    }

    #[test]
    fn placeholders_outside_strings_and_unknown_names_are_errors() {
        let (line, kind) = render(
            "{\n  \"ID\": {{lease_id}}\n}",
            TemplateFormat::Json,
            &values(),
        )
        .unwrap_err();
        assert_eq!(line, 2);
        assert_eq!(
            kind.to_string(),
            "the placeholder `{{lease_id}}` is outside a string literal; put it inside quotes, as `\"{{lease_id}}\"`"
        );
        let (line, kind) = render("\n\n\"{{ownr}}\"", TemplateFormat::Json, &values()).unwrap_err();
        assert_eq!(line, 3);
        let text = kind.to_string();
        assert!(
            text.contains("`{{ownr}}`") && text.contains("did you mean `{{owner}}`"),
            "{text}"
        );
        let (line, kind) = render(
            "job \"x\" {\n  a = <<EOF\n{{ env \"X\" }} {{task}}\nEOF\n}",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap_err();
        assert_eq!(line, 3);
        assert!(matches!(kind, TemplateErrorKind::InHeredoc { .. }));
        // A quote in a heredoc does not open a string.
        let out = render(
            "a = <<EOF\nsay \"hi\nEOF\nb = \"{{task}}\"\n",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap();
        assert!(out.ends_with("b = \"leasebox\"\n"), "{out}");
    }
}
