//! The recipe table decoding (`host/decode.rs`): Lua values, as a recipe writes them, into the
//! session's requests. The input becomes Lua source for a value (or, sometimes, is Lua source
//! itself), which `host::fuzzing::decode_lua` evaluates in the recipe sandbox and hands to every
//! decoder. Oracle: no decoder panics, and what each accepts is what the recipe API promises:
//! an `exec` has a program, and a table of strings and integers keeps its items as its argv (a
//! string is `sh -c` of it); `env` names are variable names, sorted, once each; a timeout is
//! longer than zero; fetch paths and the fetch destination, and the directory to sync, never
//! leave their root.

use std::path::{Component, Path};

use leasebox::host::fuzzing::decode_lua;

use super::input::Input;

/// What the generator knows about the value it wrote.
struct Written {
    source: String,
    /// For a table whose array part is strings (valid UTF-8) and integers only: those items as
    /// argv, and whether its other keys are all ones `exec` accepts with valid values.
    argv: Option<Vec<String>>,
    /// For a string: its text (when valid UTF-8).
    text: Option<String>,
}

fn lua_string(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b' ' | b'_' | b'.' | b'/' | b'-' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

fn string_bytes(input: &mut Input<'_>) -> Vec<u8> {
    match input.below(6) {
        0 => input.bytes(8),
        1 => (input.pick(&["20m", "1h 30m", "0s", "-5s", "", "90", "1y", "10 ms"]))
            .as_bytes()
            .to_vec(),
        2 => (input.pick(&["..", "../x", "/etc", "a/../..", ".", "a/b", "-rf", "./a"]))
            .as_bytes()
            .to_vec(),
        3 => (input.pick(&["PATH", "A_1", "1A", "A-B", "", "_", "É"]))
            .as_bytes()
            .to_vec(),
        _ => input.text(8).into_bytes(),
    }
}

fn scalar(input: &mut Input<'_>) -> String {
    (input.pick(&[
        "nil",
        "true",
        "false",
        "0",
        "-1",
        "3",
        "9223372036854775807",
        "math.mininteger",
        "0.5",
        "-0.0",
        "1/0",
        "0/0",
        "1e300",
        "1e12",
        "print",
        "coroutine.create(print)",
    ]))
    .to_owned()
}

fn value(input: &mut Input<'_>, depth: usize) -> Written {
    match input.below(if depth > 2 { 3 } else { 6 }) {
        0 => Written {
            source: scalar(input),
            argv: None,
            text: None,
        },
        1 | 2 => {
            let bytes = string_bytes(input);
            Written {
                source: lua_string(&bytes),
                argv: None,
                text: String::from_utf8(bytes).ok(),
            }
        }
        _ => table(input, depth),
    }
}

fn table(input: &mut Input<'_>, depth: usize) -> Written {
    let mut source = String::from("{ ");
    let mut argv = Some(Vec::new());
    for _ in 0..input.below(5) {
        if input.one_in(3) {
            let n = input.below(1000);
            source.push_str(&format!("{n}, "));
            if let Some(a) = argv.as_mut() {
                a.push(n.to_string());
            }
        } else {
            let item = value(input, depth + 1);
            match (&item.text, argv.as_mut()) {
                (Some(t), Some(a)) if item.source.starts_with('"') => a.push(t.clone()),
                _ => argv = None,
            }
            source.push_str(&item.source);
            source.push_str(", ");
        }
    }
    for _ in 0..input.below(4) {
        let key = input.pick(&[
            "env", "timeout", "capture", "cwd", "stdin", "exclude", "bogus", "[1]", "[0]", "[2.5]",
            "[-1]", "[true]", "[\"1\"]", "[100]",
        ]);
        let item = value(input, depth + 1);
        source.push_str(&format!("{key} = {}, ", item.source));
        // Keyed entries may change what `exec` accepts; the argv model only holds without them.
        argv = None;
    }
    source.push('}');
    Written {
        source,
        argv,
        text: None,
    }
}

fn stays_relative(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Run the oracle on one input; true when the source ran and its value was decoded.
///
/// # Panics
/// When a decoder panics or accepts what the recipe API refuses.
pub fn check(data: &[u8]) -> bool {
    let mut input = Input::new(data);
    let written = if input.byte().is_multiple_of(8) {
        Written {
            source: input.rest_text(),
            argv: None,
            text: None,
        }
    } else {
        let w = value(&mut input, 0);
        Written {
            source: format!("return {}", w.source),
            ..w
        }
    };
    check_source(
        &written.source,
        written.argv.as_deref(),
        written.text.as_deref(),
    )
}

/// The oracle for one chunk of Lua source; `argv` is the argv its value must decode to as an
/// `exec` (a table of strings and integers only, when non-empty), `text` the text of a string
/// value.
///
/// # Panics
/// When a decoder panics or accepts what the recipe API refuses.
pub fn check_source(source: &str, argv: Option<&[String]>, text: Option<&str>) -> bool {
    let repo_root = Path::new("/repo/root");
    let fetch_root = Path::new("/here");
    let Ok(d) = decode_lua(source, repo_root, fetch_root) else {
        return false;
    };
    let ctx = || format!("source {source:?}");
    if let Ok(command) = &d.command {
        assert!(
            !command.argv.is_empty(),
            "an exec without a program, {}",
            ctx()
        );
    }
    if let Some(text) = text {
        let command = d
            .command
            .as_ref()
            .unwrap_or_else(|e| panic!("{e}, {}", ctx()));
        assert_eq!(command.argv, ["sh", "-c", text], "{}", ctx());
    }
    if let Some(argv) = argv.filter(|a| !a.is_empty()) {
        let command = d
            .command
            .as_ref()
            .unwrap_or_else(|e| panic!("{e}, {}", ctx()));
        assert_eq!(command.argv, argv, "{}", ctx());
    }
    if let Ok(env) = &d.env {
        for (k, _) in env {
            let mut chars = k.chars();
            assert!(
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "env name {k:?}, {}",
                ctx()
            );
        }
        assert!(
            env.windows(2).all(|w| w[0].0 < w[1].0),
            "env not sorted once each, {}",
            ctx()
        );
    }
    if let Ok(t) = &d.timeout {
        assert!(!t.is_zero(), "a zero timeout, {}", ctx());
    }
    if let Ok(paths) = &d.fetch_paths {
        assert!(!paths.is_empty(), "a fetch of nothing, {}", ctx());
        for p in paths {
            assert!(stays_relative(Path::new(p)), "fetch path {p:?}, {}", ctx());
        }
    }
    if let Some(Ok(dest)) = &d.fetch_dest {
        let rest = dest
            .strip_prefix(fetch_root)
            .unwrap_or_else(|_| panic!("fetch destination {dest:?}, {}", ctx()));
        assert!(
            stays_relative(rest),
            "fetch destination {dest:?}, {}",
            ctx()
        );
    }
    if let Some(Ok(sync)) = &d.sync {
        let rest = sync
            .root
            .strip_prefix(repo_root)
            .unwrap_or_else(|_| panic!("sync root {:?}, {}", sync.root, ctx()));
        assert!(stays_relative(rest), "sync root {:?}, {}", sync.root, ctx());
    }
    true
}
