//! The table of layers and what each may import, read from the one place it is written: the
//! ```` ```text ```` block under `# Layers` in the crate-root docs of `src/lib.rs`.
//!
//! A line that starts in the first column names a module and describes it; an indented line
//! starting with `->` lists the modules the one above may import. A module with no `->` line
//! imports only the universal modules, those whose description says "every layer may import it".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The phrase in a module's description that makes it importable from every layer.
const UNIVERSAL_MARK: &str = "every layer may import it";

/// The heading the table sits under in the crate-root docs.
const HEADING: &str = "# Layers";

/// One module of the table.
#[derive(Debug)]
struct TableEntry {
    /// Line of its module line (in `src/lib.rs` when read from the crate docs).
    line: usize,
    universal: bool,
    imports: BTreeSet<String>,
}

/// The parsed table: for each module, the modules it may import.
#[derive(Debug)]
pub struct LayerTable {
    entries: BTreeMap<String, TableEntry>,
}

/// Why a table could not be read; lists every problem found, each with its line.
#[derive(Debug)]
pub struct TableError {
    /// Where the table was read from (`src/lib.rs`, or `layer table` for a bare text).
    pub origin: String,
    pub problems: Vec<(usize, String)>,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the layer table in {} is malformed:", self.origin)?;
        for (line, problem) in &self.problems {
            writeln!(f, "  {}:{line}: {problem}", self.origin)?;
        }
        Ok(())
    }
}

impl std::error::Error for TableError {}

impl LayerTable {
    /// Reads the table from the crate-root docs (`//!` lines) of a `lib.rs` source text;
    /// problems name lines of that file.
    pub fn from_crate_docs(lib_rs: &str) -> Result<Self, TableError> {
        let origin = "src/lib.rs";
        let fail = |line: usize, problem: String| TableError {
            origin: origin.to_owned(),
            problems: vec![(line, problem)],
        };
        let file = syn::parse_file(lib_rs).map_err(|e| {
            fail(
                e.span().start().line,
                format!("does not parse as Rust: {e}"),
            )
        })?;
        let mut doc_lines = Vec::new();
        for attr in &file.attrs {
            if !matches!(attr.style, syn::AttrStyle::Inner(_)) || !attr.path().is_ident("doc") {
                continue;
            }
            let syn::Meta::NameValue(nv) = &attr.meta else {
                continue;
            };
            let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(text),
                ..
            }) = &nv.value
            else {
                continue;
            };
            let first_line = attr.pound_token.span.start().line;
            let value = text.value();
            for (offset, line) in value.lines().enumerate() {
                let line = line.strip_prefix(' ').unwrap_or(line);
                doc_lines.push((first_line + offset, line.to_owned()));
            }
        }
        let Some(heading) = doc_lines.iter().position(|(_, l)| l.trim() == HEADING) else {
            return Err(fail(
                1,
                format!("the crate docs have no `{HEADING}` heading holding the table"),
            ));
        };
        let heading_line = doc_lines[heading].0;
        let Some(open) = doc_lines[heading..]
            .iter()
            .position(|(_, l)| l.trim() == "```text")
            .map(|p| p + heading)
        else {
            return Err(fail(
                heading_line,
                format!("no ```text block follows the `{HEADING}` heading"),
            ));
        };
        let Some(close) = doc_lines[open + 1..]
            .iter()
            .position(|(_, l)| l.trim() == "```")
            .map(|p| p + open + 1)
        else {
            return Err(fail(
                doc_lines[open].0,
                "the ```text block of the layer table is never closed".to_owned(),
            ));
        };
        let body: Vec<(usize, &str)> = doc_lines[open + 1..close]
            .iter()
            .map(|(n, l)| (*n, l.as_str()))
            .collect();
        Self::parse_lines(origin, &body)
    }

    /// Parses a bare table text (lines numbered from 1).
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
        Self::parse_lines("layer table", &lines)
    }

    fn parse_lines(origin: &str, lines: &[(usize, &str)]) -> Result<Self, TableError> {
        let mut problems = Vec::new();
        let mut entries: BTreeMap<String, TableEntry> = BTreeMap::new();
        // Arrow lines, checked once every module is known: (line, from, names).
        let mut arrows: Vec<(usize, String, Vec<String>)> = Vec::new();
        let mut current: Option<String> = None;
        for &(line, text) in lines {
            if text.trim().is_empty() {
                continue;
            }
            if let Some(list) = text.trim_start().strip_prefix("->") {
                if !text.starts_with(char::is_whitespace) {
                    problems.push((
                        line,
                        "an `->` line must be indented under its module".into(),
                    ));
                    continue;
                }
                let Some(from) = &current else {
                    problems.push((line, "an `->` line comes before any module line".into()));
                    continue;
                };
                if arrows.iter().any(|(_, f, _)| f == from) {
                    problems.push((line, format!("`{from}` has a second `->` line")));
                    continue;
                }
                let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
                if names.iter().any(String::is_empty) {
                    problems.push((line, format!("`->{list}` has an empty module name")));
                    continue;
                }
                arrows.push((line, from.clone(), names));
                continue;
            }
            if text.starts_with(char::is_whitespace) {
                problems.push((
                    line,
                    format!(
                        "`{}` is neither a module line (a name in the first column) nor an \
                         indented `->` line",
                        text.trim()
                    ),
                ));
                continue;
            }
            let name = text.split_whitespace().next().unwrap_or_default();
            if !is_module_name(name) {
                problems.push((line, format!("`{name}` is not a module name")));
                current = None;
                continue;
            }
            if let Some(earlier) = entries.get(name) {
                problems.push((
                    line,
                    format!("`{name}` is listed twice (first on line {})", earlier.line),
                ));
                current = None;
                continue;
            }
            let universal = text.contains(UNIVERSAL_MARK);
            entries.insert(
                name.to_owned(),
                TableEntry {
                    line,
                    universal,
                    imports: BTreeSet::new(),
                },
            );
            current = Some(name.to_owned());
        }
        for (line, from, names) in arrows {
            for name in names {
                if !entries.contains_key(&name) {
                    problems.push((
                        line,
                        format!(
                            "`{from}` may import `{name}`, which is not a module of the table \
                             (known: {})",
                            entries.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                } else if name == from {
                    problems.push((line, format!("`{from}` lists itself after `->`")));
                } else if entries[&from].universal && !entries[&name].universal {
                    problems.push((
                        line,
                        format!(
                            "`{from}` may be imported by every layer, so it may not import \
                             `{name}` (that is a cycle)"
                        ),
                    ));
                } else if let Some(entry) = entries.get_mut(&from) {
                    entry.imports.insert(name);
                }
            }
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push((
                lines.first().map_or(1, |l| l.0),
                "the table lists no module".into(),
            ));
        }
        let table = LayerTable { entries };
        if problems.is_empty()
            && let Some((line, cycle)) = table.find_cycle()
        {
            problems.push((
                line,
                format!("the imports form a cycle: {}", cycle.join(" -> ")),
            ));
        }
        if problems.is_empty() {
            Ok(table)
        } else {
            Err(TableError {
                origin: origin.to_owned(),
                problems,
            })
        }
    }

    /// A cycle among the `->` lines, with the line of the module it starts at.
    fn find_cycle(&self) -> Option<(usize, Vec<String>)> {
        fn visit<'a>(
            table: &'a LayerTable,
            name: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(at) = stack.iter().position(|n| *n == name) {
                let mut cycle: Vec<String> = stack[at..].iter().map(|n| (*n).to_owned()).collect();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            if !done.insert(name) {
                return None;
            }
            stack.push(name);
            for next in &table.entries[name].imports {
                if let Some(cycle) = visit(table, next, stack, done) {
                    return Some(cycle);
                }
            }
            stack.pop();
            None
        }
        let mut done = BTreeSet::new();
        for name in self.entries.keys() {
            if let Some(cycle) = visit(self, name, &mut Vec::new(), &mut done) {
                return Some((self.entries[&cycle[0]].line, cycle));
            }
        }
        None
    }

    /// Whether the table lists `module`.
    pub fn contains(&self, module: &str) -> bool {
        self.entries.contains_key(module)
    }

    /// Every module of the table with the line it is listed on.
    pub fn modules(&self) -> impl Iterator<Item = (&str, usize)> {
        self.entries.iter().map(|(n, e)| (n.as_str(), e.line))
    }

    /// Whether every layer may import `module`.
    pub fn is_universal(&self, module: &str) -> bool {
        self.entries.get(module).is_some_and(|e| e.universal)
    }

    /// Whether code of layer `from` may refer to the top-level module `to` (its own layer,
    /// a universal module, or one listed after its `->`).
    pub fn may_import(&self, from: &str, to: &str) -> bool {
        from == to
            || self.is_universal(to)
            || self
                .entries
                .get(from)
                .is_some_and(|e| e.imports.contains(to))
    }

    /// What `from` may import besides itself, for messages: its `->` list, then the universal
    /// modules.
    pub fn allowed(&self, from: &str) -> Vec<String> {
        let mut allowed: Vec<String> = self
            .entries
            .get(from)
            .map(|e| e.imports.iter().cloned().collect())
            .unwrap_or_default();
        allowed.extend(
            self.universal_modules()
                .filter(|u| *u != from)
                .map(str::to_owned),
        );
        allowed
    }

    /// The modules every layer may import.
    pub fn universal_modules(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|(_, e)| e.universal)
            .map(|(n, _)| n.as_str())
    }
}

/// A Rust module name as the table writes it: lowercase ASCII, digits and `_`.
fn is_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
