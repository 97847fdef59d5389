//! The jobspec template renderer (`backends::nomad::template::render`). Oracle: the template is
//! rendered twice, once with inert markers for values (private-use characters, which need no
//! escaping in JSON or HCL) and once with hostile values. Whether it renders must not depend on
//! the values; when the marker rendering parses (serde_json for `.json`, `hcl-rs` for `.hcl`),
//! the hostile rendering parses too, to the same document with each marker replaced by its
//! value literally: no value can end its string, start an interpolation, or change anything
//! else. (The HCL documents are compared as `hcl::edit` parses them: `hcl::Body` re-encodes
//! each template, and that encoding turns a literal `%` before a directive into `%%{`; the
//! bodies of directives are compared too, their text decoded as HCL reads it, see [`element`].)

use leasebox::backends::nomad::template::{PLACEHOLDERS, TemplateFormat, TemplateValues, render};
use serde_json::{Value, json};

use super::input::Input;

const MARK_OPEN: char = '\u{e000}';
const MARK_CLOSE: char = '\u{e001}';

fn marker(i: usize) -> String {
    format!(
        "{MARK_OPEN}{}{MARK_CLOSE}",
        char::from(b'A' + u8::try_from(i).unwrap_or(0))
    )
}

/// Run the oracle on one input; true when the renderings were compared as documents.
///
/// # Panics
/// When the renderer breaks the oracle.
pub fn check(data: &[u8]) -> bool {
    let mut input = Input::new(data);
    let format = if input.byte().is_multiple_of(2) {
        TemplateFormat::Json
    } else {
        TemplateFormat::Hcl
    };
    let values: Vec<String> = PLACEHOLDERS.iter().map(|_| input.text(12)).collect();
    let text = if input.byte().is_multiple_of(4) {
        input.rest_text()
    } else if format == TemplateFormat::Json {
        let mut out = String::new();
        json_value(&mut input, &mut out, 0);
        out
    } else {
        let mut out = String::new();
        hcl_body(&mut input, &mut out, 0);
        out
    };
    check_template(&text, format, &values)
}

/// The oracle for one template and its values (one per [`PLACEHOLDERS`] entry); true when
/// the renderings were compared as documents.
///
/// # Panics
/// When the renderer breaks the oracle.
pub fn check_template(text: &str, format: TemplateFormat, values: &[String]) -> bool {
    if text.contains(MARK_OPEN) || values.iter().any(|v| v.contains(MARK_OPEN)) {
        return false;
    }
    let markers: Vec<String> = (0..PLACEHOLDERS.len()).map(marker).collect();
    let with = |vals: &[String]| {
        PLACEHOLDERS
            .iter()
            .zip(vals)
            .fold(TemplateValues::default(), |acc, (name, value)| {
                acc.with(name, value.clone())
            })
    };
    let reference = render(text, format, &with(&markers));
    let real = render(text, format, &with(values));
    let (reference, real) = match (reference, real) {
        (Ok(a), Ok(b)) => (a, b),
        (Err((la, ka)), Err((lb, kb))) => {
            assert_eq!((la, ka.to_string()), (lb, kb.to_string()), "errors differ");
            return false;
        }
        (a, b) => panic!("rendering depends on the values: {a:?} vs {b:?}\n{text:?}"),
    };
    let swap = |s: &str| {
        let mut out = s.to_owned();
        for (m, v) in markers.iter().zip(values) {
            out = out.replace(m.as_str(), v);
        }
        out
    };
    match format {
        TemplateFormat::Json => {
            let Ok(expected) = serde_json::from_str::<Value>(&reference) else {
                return false;
            };
            let Some(expected) = subst_json(&expected, &swap) else {
                return false;
            };
            let got: Value = serde_json::from_str(&real).unwrap_or_else(|e| {
                panic!("rendered JSON does not parse: {e}\n{text:?}\n{real:?}")
            });
            assert_eq!(
                got, expected,
                "a value did not come back literally\n{text:?}\n{real:?}"
            );
        }
        TemplateFormat::Hcl => {
            let Ok(expected) = hcl::edit::parser::parse_body(&reference) else {
                return false;
            };
            let Some(expected) = subst_canon(&canon_body(&expected), &swap) else {
                return false;
            };
            let got = hcl::edit::parser::parse_body(&real)
                .unwrap_or_else(|e| panic!("rendered HCL does not parse: {e}\n{text:?}\n{real:?}"));
            assert_eq!(
                canon_body(&got),
                expected,
                "a value did not come back literally\n{text:?}\n{real:?}"
            );
        }
    }
    true
}

/// `value` with `swap` applied to every string and key; `None` when two keys become one.
fn subst_json(value: &Value, swap: &dyn Fn(&str) -> String) -> Option<Value> {
    Some(match value {
        Value::String(s) => Value::String(swap(s)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| subst_json(v, swap))
                .collect::<Option<_>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if out.insert(swap(k), subst_json(v, swap)?).is_some() {
                    return None;
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A parsed HCL body (`hcl-rs`'s parser, `hcl::edit`, whose tree keeps each template's
/// elements as parsed) as a tree in which every string is its list of pieces (`["L", text]`
/// for literal text, already unescaped, adjacent literals joined; `{"i": …}` for an
/// interpolation), so a string that parses as a plain string and one that parses as a
/// template with literal parts only compare equal. Expressions this does not look into are
/// `{"opaque": debug}` (without spans or whitespace).
fn canon_body(body: &hcl::edit::structure::Body) -> Value {
    use hcl::edit::structure::{BlockLabel, Structure};
    Value::Array(
        body.iter()
            .map(|s| match s {
                Structure::Attribute(a) => {
                    json!({"attr": a.key.value().as_str(), "expr": canon_expr(&a.value)})
                }
                Structure::Block(b) => json!({
                    "block": b.ident.value().as_str(),
                    "labels": b.labels.iter().map(|l| match l {
                        BlockLabel::Ident(i) => json!({"id": i.value().as_str()}),
                        BlockLabel::String(s) => pieces(vec![lit(s.value())]),
                    }).collect::<Vec<_>>(),
                    "body": canon_body(&b.body),
                }),
            })
            .collect(),
    )
}

fn lit(s: &str) -> Value {
    json!(["L", s])
}

/// `{"s": pieces}`, adjacent literals joined and empty ones dropped.
fn pieces(parts: Vec<Value>) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for part in parts {
        if let Some(text) = part
            .get(1)
            .and_then(Value::as_str)
            .filter(|_| part[0] == "L")
        {
            if text.is_empty() {
                continue;
            }
            if let Some(last) = out.last_mut()
                && last[0] == "L"
            {
                let joined = format!("{}{text}", last[1].as_str().unwrap_or_default());
                *last = lit(&joined);
                continue;
            }
        }
        out.push(part);
    }
    json!({ "s": out })
}

fn opaque(expr: &hcl::edit::expr::Expression) -> Value {
    json!({"opaque": format!("{:?}", hcl::Expression::from(expr.clone()))})
}

/// One element of a quoted string's template. `nested` says it sits in a directive's
/// template, where `hcl-edit` keeps the literal text raw, escapes still in (it parses a
/// directive's body as it parses a heredoc's), while HCL decodes the escapes of a quoted
/// string throughout, directives included: such text is decoded here, so the tree says what
/// HCL reads.
fn element(element: &hcl::edit::template::Element, nested: bool) -> Value {
    use hcl::edit::template::{Directive, Element};
    let template = |t: &hcl::edit::template::Template| {
        pieces(t.iter().map(|e| self::element(e, true)).collect())
    };
    match element {
        Element::Literal(s) if nested => lit(&unescape_quoted(s.value())),
        Element::Literal(s) => lit(s.value()),
        Element::Interpolation(i) => {
            json!({"i": canon_expr(&i.expr), "strip": format!("{:?}", i.strip)})
        }
        Element::Directive(d) => match &**d {
            Directive::If(d) => json!({
                "if": canon_expr(&d.if_expr.cond_expr),
                "then": template(&d.if_expr.template),
                "else": d.else_expr.as_ref().map(|e| template(&e.template)),
                "strip": format!(
                    "{:?} {:?} {:?}",
                    d.if_expr.strip,
                    d.else_expr.as_ref().map(|e| e.strip),
                    d.endif_expr.strip
                ),
            }),
            Directive::For(d) => json!({
                "for": [
                    d.for_expr.key_var.as_ref().map(|k| k.value().as_str()),
                    d.for_expr.value_var.value().as_str(),
                ],
                "in": canon_expr(&d.for_expr.collection_expr),
                "do": template(&d.for_expr.template),
                "strip": format!("{:?} {:?}", d.for_expr.strip, d.endfor_expr.strip),
            }),
        },
    }
}

/// The escapes of an HCL quoted string decoded (`\\`, `\"`, `\n`, `\r`, `\t`, `\uNNNN`,
/// `\UNNNNNNNN`); anything else is kept as written.
fn unescape_quoted(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = chars.as_str();
        let hex = |n: usize| {
            rest.get(1..=n)
                .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
        };
        let (decoded, used) = match rest.chars().next() {
            Some('\\') => (Some('\\'), 1),
            Some('"') => (Some('"'), 1),
            Some('n') => (Some('\n'), 1),
            Some('r') => (Some('\r'), 1),
            Some('t') => (Some('\t'), 1),
            Some('u') => (hex(4), 5),
            Some('U') => (hex(8), 9),
            _ => (None, 0),
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars = rest[used..].chars();
            }
            None => out.push(c),
        }
    }
    out
}

fn canon_expr(expr: &hcl::edit::expr::Expression) -> Value {
    use hcl::edit::expr::{Expression as E, ObjectKey};
    match expr {
        E::String(s) => pieces(vec![lit(s.value())]),
        E::StringTemplate(t) => pieces(t.iter().map(|e| element(e, false)).collect()),
        E::Array(items) => Value::Array(items.iter().map(canon_expr).collect()),
        E::Object(map) => Value::Array(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        ObjectKey::Ident(i) => json!({"id": i.value().as_str()}),
                        ObjectKey::Expression(e) => canon_expr(e),
                    };
                    json!([key, canon_expr(v.expr())])
                })
                .collect(),
        ),
        E::FuncCall(f) => json!({
            "f": f.name.name.value().as_str(),
            "args": f.args.iter().map(canon_expr).collect::<Vec<_>>(),
            "expand": f.args.expand_final(),
        }),
        E::Parenthesis(p) => json!({"p": canon_expr(p.inner())}),
        other => opaque(other),
    }
}

/// The canonical tree of the marker rendering with `swap` applied to its literal text;
/// `None` when a marker sits where the tree does not look (an opaque expression) or object
/// keys would merge, so there is nothing exact to compare.
fn subst_canon(value: &Value, swap: &dyn Fn(&str) -> String) -> Option<Value> {
    Some(match value {
        Value::Array(items) if items.len() == 2 && items[0] == "L" => {
            lit(&swap(items[1].as_str().unwrap_or_default()))
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| subst_canon(v, swap))
                .collect::<Option<_>>()?,
        ),
        Value::Object(map) => {
            if let Some(opaque) = map.get("opaque").and_then(Value::as_str)
                && opaque.contains(MARK_OPEN)
            {
                return None;
            }
            if let Some(Value::Array(parts)) = map.get("s") {
                // A value may be empty: join the pieces again.
                return Some(pieces(
                    parts
                        .iter()
                        .map(|p| subst_canon(p, swap))
                        .collect::<Option<_>>()?,
                ));
            }
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), subst_canon(v, swap)?);
            }
            Value::Object(out)
        }
        Value::String(s) if s.contains(MARK_OPEN) => return None,
        other => other.clone(),
    })
}

/// A placeholder as the template would write it: mostly a known one, sometimes a near miss.
fn placeholder(input: &mut Input<'_>) -> String {
    match input.below(10) {
        0 => "{{ env \\\"X\\\" }}".to_owned(),
        1 => "{{lease_idd}}".to_owned(),
        2 => "{{.Name}}".to_owned(),
        _ => format!("{{{{{}}}}}", input.pick(&PLACEHOLDERS)),
    }
}

/// JSON string contents: escaped literal text and placeholders.
fn json_string(input: &mut Input<'_>, out: &mut String) {
    out.push('"');
    for _ in 0..input.below(4) {
        if input.one_in(2) {
            out.push_str(&placeholder(input));
        } else {
            let s = Value::String(input.text(6)).to_string();
            out.push_str(&s[1..s.len() - 1]);
        }
    }
    out.push('"');
}

fn json_value(input: &mut Input<'_>, out: &mut String, depth: usize) {
    match input.below(if depth > 3 { 4 } else { 7 }) {
        0 => out.push_str(input.pick(&["0", "-1.5e3", "true", "null"])),
        1..=3 => json_string(input, out),
        4 => out.push_str(&placeholder(input)),
        5 => {
            out.push('[');
            for i in 0..input.below(4) {
                if i > 0 {
                    out.push(',');
                }
                json_value(input, out, depth + 1);
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            for i in 0..input.below(5) {
                if i > 0 {
                    out.push_str(",\n");
                }
                json_string(input, out);
                out.push_str(": ");
                json_value(input, out, depth + 1);
            }
            out.push('}');
        }
    }
}

/// Literal text of an HCL quoted string, escaped as HCL wants it (written here, not with the
/// renderer's own escaping).
fn hcl_literal(input: &mut Input<'_>, out: &mut String) {
    let text = input.text(6);
    let mut chars = text.chars().peekable();
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
            // A literal `$`/`%` right before a placeholder would start a sequence in the
            // template itself.
            '$' | '%' => out.push_str(if c == '$' { "\\u0024" } else { "\\u0025" }),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
}

fn hcl_string(input: &mut Input<'_>, out: &mut String, depth: usize) {
    out.push('"');
    for _ in 0..input.below(5) {
        match input.below(8) {
            0..=2 => out.push_str(&placeholder(input)),
            3 if depth < 2 => {
                out.push_str("${lower(");
                hcl_string(input, out, depth + 1);
                out.push_str(")}");
            }
            4 => out.push_str(input.pick(&[
                "${NOMAD_ALLOC_DIR}",
                "$${x}",
                "%%{y}",
                "%{ if true }ok%{ endif }",
                "${var.a}",
            ])),
            _ => hcl_literal(input, out),
        }
    }
    out.push('"');
}

fn hcl_expr(input: &mut Input<'_>, out: &mut String, depth: usize) {
    match input.below(if depth > 2 { 5 } else { 8 }) {
        0 => out.push_str(input.pick(&["1", "true", "null", "2.5", "var.x"])),
        1..=3 => hcl_string(input, out, 0),
        4 => out.push_str(&placeholder(input)),
        5 => {
            out.push('[');
            for i in 0..input.below(4) {
                if i > 0 {
                    out.push_str(", ");
                }
                hcl_expr(input, out, depth + 1);
            }
            out.push(']');
        }
        6 => {
            out.push_str("{\n");
            for _ in 0..input.below(4) {
                out.push_str(input.pick(&["a", "b", "c"]));
                out.push_str(" = ");
                hcl_expr(input, out, depth + 1);
                out.push('\n');
            }
            out.push('}');
        }
        _ => out.push_str(input.pick(&[
            "<<EOF\nliteral ${x} \"q\n{{ env \"X\" }}\nEOF\n",
            "<<-EOT\n  indented\n  EOT\n",
        ])),
    }
}

fn hcl_body(input: &mut Input<'_>, out: &mut String, depth: usize) {
    for _ in 0..input.below(5) {
        match input.below(if depth > 2 { 5 } else { 7 }) {
            0 => {
                let opener = input.pick(&["# ", "// ", "/* "]);
                out.push_str(opener);
                out.push_str(&placeholder(input));
                out.push_str(if opener == "/* " { " */\n" } else { "\n" });
            }
            1..=4 => {
                out.push_str(input.pick(&["driver", "image", "command", "meta_x", "args"]));
                out.push_str(" = ");
                hcl_expr(input, out, depth);
                out.push('\n');
            }
            _ => {
                out.push_str(input.pick(&["job", "group", "task", "config", "meta"]));
                for _ in 0..input.below(3) {
                    out.push(' ');
                    hcl_string(input, out, 1);
                }
                out.push_str(" {\n");
                hcl_body(input, out, depth + 1);
                out.push_str("}\n");
            }
        }
    }
}
