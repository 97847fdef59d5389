//! The checker: parses a source file of `src/` with `syn` and reports every reference that
//! breaks the layer table, with its file, line and the rule.
//!
//! A file belongs to its top-level layer (`src/<layer>.rs`, `src/<layer>/…`); `src/lib.rs` is
//! the crate root (it declares the layers and may use only the universal modules) and
//! `src/main.rs` (or `src/bin/…`) is the binary (it may use `cli`). References are found in
//! `use` trees (grouped, renamed, globbed, `pub use` re-exports), in every path of an
//! expression, type, pattern or attribute, and in the tokens of macro calls and attribute
//! arguments. `crate::`, `self::`, `super::` (resolved against the file's module and inline
//! `mod` blocks) and the library's own name lead to a top-level module; other paths name an
//! external crate or a local item. Comments, doc comments and string literals are not code and
//! are never looked at.

use std::collections::BTreeSet;
use std::fmt;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::visit::{self, Visit};

use super::table::LayerTable;

/// What a file of `src/` is, for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRole {
    /// `src/lib.rs`: declares the layers; may use the universal modules only.
    CrateRoot,
    /// `src/main.rs` or `src/bin/…`: a separate crate; may use `cli` (and the universal modules).
    Binary,
    /// A file of the named top-level layer.
    Layer(String),
}

impl FileRole {
    fn describe(&self) -> String {
        match self {
            FileRole::CrateRoot => "the crate root".to_owned(),
            FileRole::Binary => "the binary".to_owned(),
            FileRole::Layer(name) => format!("`{name}`"),
        }
    }
}

/// A source file's place in `src/`: its role and the module path of its top (`cli/run.rs` is
/// `cli::run`, `cli/mod.rs` is `cli`).
#[derive(Debug, Clone)]
pub struct FilePlace {
    /// The path shown in failures (`src/cli/run.rs`).
    pub display: String,
    pub role: FileRole,
    pub module_path: Vec<String>,
    /// Inside `src/backends/nomad/` (or `src/backends/nomad.rs`): may use the wire types.
    pub in_nomad_backend: bool,
}

impl FilePlace {
    /// Places a file given its path relative to `src/`, with `/` separators.
    pub fn from_relative(rel: &str) -> Self {
        let display = format!("src/{rel}");
        let in_nomad_backend = rel.starts_with("backends/nomad/") || rel == "backends/nomad.rs";
        if rel == "lib.rs" {
            return FilePlace {
                display,
                role: FileRole::CrateRoot,
                module_path: Vec::new(),
                in_nomad_backend,
            };
        }
        if rel == "main.rs" || rel.starts_with("bin/") {
            return FilePlace {
                display,
                role: FileRole::Binary,
                module_path: Vec::new(),
                in_nomad_backend,
            };
        }
        let stem = rel.strip_suffix(".rs").unwrap_or(rel);
        let mut module_path: Vec<String> = stem.split('/').map(str::to_owned).collect();
        if module_path.len() > 1 && module_path.last().is_some_and(|m| m == "mod") {
            module_path.pop();
        }
        FilePlace {
            display,
            role: FileRole::Layer(module_path[0].clone()),
            module_path,
            in_nomad_backend,
        }
    }
}

/// The rule a reference breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A layer (or the crate root, or the binary) refers to a module it may not import.
    LayerImport {
        from: FileRole,
        to: String,
        allowed: Vec<String>,
    },
    /// `crate::x` where `x` is neither a module of the table nor a layer of `src/`.
    UnknownModule { name: String },
    /// `super::` climbs above the crate root.
    AboveCrateRoot,
    /// A glob of the crate root (`use crate::*`) imports every layer at once.
    CrateRootGlob,
    /// `mlua` outside `host`.
    Mlua,
    /// `clap` outside `cli`.
    Clap,
    /// A Nomad wire type (`backends::nomad::wire`) outside `src/backends/nomad/`.
    NomadWire,
    /// A top-level module of `src/` that the table does not list.
    LayerNotInTable { layer: String },
    /// A module of the table that `src/` does not have.
    ModuleMissing { name: String },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::LayerImport { from, to, allowed } => {
                let allowed = if allowed.is_empty() {
                    "nothing".to_owned()
                } else {
                    allowed.join(", ")
                };
                write!(
                    f,
                    "{} may not import `{to}` (it may import: {allowed}; see the layer table \
                     in src/lib.rs)",
                    from.describe()
                )
            }
            Rule::UnknownModule { name } => write!(
                f,
                "`crate::{name}` is not a module of the layer table in src/lib.rs"
            ),
            Rule::AboveCrateRoot => f.write_str("`super::` climbs above the crate root"),
            Rule::CrateRootGlob => f.write_str(
                "a glob of the crate root imports every layer; name the modules instead",
            ),
            Rule::Mlua => f.write_str("`mlua` is used outside `host` (the only Lua)"),
            Rule::Clap => f.write_str("`clap` is used outside `cli` (the only clap)"),
            Rule::NomadWire => f.write_str(
                "a Nomad wire type (`backends::nomad::wire`) is used outside src/backends/nomad/",
            ),
            Rule::LayerNotInTable { layer } => write!(
                f,
                "the layer `{layer}` is not in the layer table in src/lib.rs; add it with what \
                 it may import"
            ),
            Rule::ModuleMissing { name } => write!(
                f,
                "the layer table lists `{name}`, but src/ has no `{name}.rs` or `{name}/`"
            ),
        }
    }
}

/// One broken rule, where it is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub file: String,
    pub line: usize,
    /// 1-based.
    pub column: usize,
    pub rule: Rule,
    /// The path as written (`crate::backends::open`), empty for file-level rules.
    pub path: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.rule
        )?;
        if !self.path.is_empty() {
            write!(f, " [`{}`]", self.path)?;
        }
        Ok(())
    }
}

/// A file that could not be checked because it does not parse.
#[derive(Debug)]
pub struct ParseFailure {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: does not parse as Rust, so its layers cannot be checked: {}",
            self.file, self.line, self.message
        )
    }
}

impl std::error::Error for ParseFailure {}

/// What the checker needs beyond the file: the table, the library's name (`leasebox`, how
/// the binary and doc tests name it) and every top-level module `src/` has.
pub struct CheckContext<'a> {
    pub table: &'a LayerTable,
    pub crate_name: &'a str,
    pub known_modules: &'a BTreeSet<String>,
}

/// Checks one file; returns every violation in it, in source order.
pub fn check_file(
    ctx: &CheckContext<'_>,
    place: &FilePlace,
    source: &str,
) -> Result<Vec<Violation>, ParseFailure> {
    let file = syn::parse_file(source).map_err(|e| ParseFailure {
        file: place.display.clone(),
        line: e.span().start().line,
        message: e.to_string(),
    })?;
    let mut checker = FileChecker {
        ctx,
        place,
        module_path: place.module_path.clone(),
        violations: Vec::new(),
    };
    checker.visit_file(&file);
    let mut violations = checker.violations;
    violations.sort_by_key(|v| (v.line, v.column));
    Ok(violations)
}

/// A path segment as written, with where it was written.
struct Segment {
    name: String,
    span: Span,
}

/// Where a path leads.
enum Target {
    /// An external crate or an item in scope: not a layer of this crate.
    Elsewhere,
    /// The top-level module `name`, named by segment `at`; `explicit` when reached through
    /// `crate::`, `self::`, `super::` or the library's name (not a bare name at the root).
    Module {
        name: String,
        at: usize,
        explicit: bool,
    },
    CrateRootGlob {
        at: usize,
    },
    AboveCrateRoot {
        at: usize,
    },
}

struct FileChecker<'c, 'a> {
    ctx: &'c CheckContext<'a>,
    place: &'c FilePlace,
    /// The module the visitor is in: the file's, plus any inline `mod x { … }` entered.
    module_path: Vec<String>,
    violations: Vec<Violation>,
}

impl FileChecker<'_, '_> {
    fn report(&mut self, span: Span, rule: Rule, path: &str) {
        let start = span.start();
        self.violations.push(Violation {
            file: self.place.display.clone(),
            line: start.line,
            column: start.column + 1,
            rule,
            path: path.to_owned(),
        });
    }

    /// Applies every rule to one path; `from_use` when it comes from a `use` tree (a bare
    /// name there is a path, not possibly a local variable).
    fn check_path(&mut self, leading_colon: bool, segments: &[Segment], from_use: bool) {
        if segments.is_empty() {
            return;
        }
        let written = format!(
            "{}{}",
            if leading_colon { "::" } else { "" },
            segments
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join("::")
        );
        self.check_crates(segments, &written);
        self.check_wire(segments, &written);
        match self.resolve(leading_colon, segments, from_use) {
            Target::Elsewhere => {}
            Target::AboveCrateRoot { at } => {
                self.report(segments[at].span, Rule::AboveCrateRoot, &written);
            }
            Target::CrateRootGlob { at } => {
                self.report(segments[at].span, Rule::CrateRootGlob, &written);
            }
            Target::Module { name, at, explicit } => {
                self.check_module(&name, segments[at].span, explicit, &written);
            }
        }
    }

    /// `mlua` only in `host`, `clap` only in `cli`: any segment naming the crate counts
    /// (`mlua::Lua`, `::clap::Parser`, a re-export `crate::host::mlua::Value`).
    fn check_crates(&mut self, segments: &[Segment], written: &str) {
        let layer = match &self.place.role {
            FileRole::Layer(name) => name.as_str(),
            _ => "",
        };
        for segment in segments {
            if segment.name == "mlua" && layer != "host" {
                self.report(segment.span, Rule::Mlua, written);
            } else if segment.name == "clap" && layer != "cli" {
                self.report(segment.span, Rule::Clap, written);
            }
        }
    }

    /// The wire types: any path through `nomad::wire`, or `wire::…`, outside the Nomad backend.
    fn check_wire(&mut self, segments: &[Segment], written: &str) {
        if self.place.in_nomad_backend {
            return;
        }
        let hit = segments.iter().enumerate().find(|(i, s)| {
            s.name == "wire"
                && ((*i > 0 && segments[i - 1].name == "nomad") || i + 1 < segments.len())
        });
        if let Some((_, segment)) = hit {
            self.report(segment.span, Rule::NomadWire, written);
        }
    }

    fn check_module(&mut self, name: &str, span: Span, explicit: bool, written: &str) {
        let ctx = self.ctx;
        let known = ctx.table.contains(name) || ctx.known_modules.contains(name);
        if !known {
            if explicit {
                self.report(
                    span,
                    Rule::UnknownModule {
                        name: name.to_owned(),
                    },
                    written,
                );
            }
            return;
        }
        let allowed = match &self.place.role {
            FileRole::Layer(layer) => {
                if !ctx.table.contains(layer) {
                    // Reported once for the layer (`LayerNotInTable`); its imports cannot be
                    // judged without a row.
                    return;
                }
                if ctx.table.may_import(layer, name) {
                    return;
                }
                ctx.table.allowed(layer)
            }
            FileRole::Binary => {
                if name == "cli" || ctx.table.is_universal(name) {
                    return;
                }
                std::iter::once("cli".to_owned())
                    .chain(ctx.table.universal_modules().map(str::to_owned))
                    .collect()
            }
            FileRole::CrateRoot => {
                if ctx.table.is_universal(name) {
                    return;
                }
                ctx.table.universal_modules().map(str::to_owned).collect()
            }
        };
        self.report(
            span,
            Rule::LayerImport {
                from: self.place.role.clone(),
                to: name.to_owned(),
                allowed,
            },
            written,
        );
    }

    fn resolve(&self, leading_colon: bool, segments: &[Segment], from_use: bool) -> Target {
        let names: Vec<&str> = segments.iter().map(|s| s.name.as_str()).collect();
        let binary = self.place.role == FileRole::Binary;
        let (mut base, mut at, explicit) = if leading_colon {
            if names[0] == self.ctx.crate_name {
                (Vec::new(), 1, true)
            } else {
                return Target::Elsewhere;
            }
        } else {
            match names[0] {
                // The binary's `crate` is the binary itself, which has no layers.
                "crate" if binary => return Target::Elsewhere,
                "crate" => (Vec::new(), 1, true),
                n if n == self.ctx.crate_name => (Vec::new(), 1, true),
                "self" if binary => return Target::Elsewhere,
                "self" => (self.module_path.clone(), 1, true),
                "super" if binary => return Target::Elsewhere,
                "super" => (self.module_path.clone(), 0, true),
                // At the crate root a bare name may be a layer (`pub use cli::main;`);
                // elsewhere it is an external crate or an item in scope.
                _ if self.module_path.is_empty() && !binary && (from_use || names.len() > 1) => {
                    (Vec::new(), 0, false)
                }
                _ => return Target::Elsewhere,
            }
        };
        while at < names.len() && names[at] == "super" {
            if base.pop().is_none() {
                return Target::AboveCrateRoot { at };
            }
            at += 1;
        }
        if let Some(first) = base.first() {
            return Target::Module {
                name: first.clone(),
                at: at.min(names.len() - 1),
                explicit,
            };
        }
        match names.get(at) {
            None | Some(&"self") => Target::Elsewhere,
            Some(&"*") => Target::CrateRootGlob { at },
            Some(name) => Target::Module {
                name: (*name).to_owned(),
                at,
                explicit,
            },
        }
    }

    /// Every path of a `use` tree, flattened (`use crate::{a, b::{c, d}}` is three paths).
    fn check_use_tree(
        &mut self,
        leading_colon: bool,
        prefix: &mut Vec<Segment>,
        tree: &syn::UseTree,
    ) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(segment(&p.ident));
                self.check_use_tree(leading_colon, prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                if n.ident == "self" {
                    self.check_path(leading_colon, prefix, true);
                } else {
                    prefix.push(segment(&n.ident));
                    self.check_path(leading_colon, prefix, true);
                    prefix.pop();
                }
            }
            syn::UseTree::Rename(r) => {
                if r.ident == "self" {
                    self.check_path(leading_colon, prefix, true);
                } else {
                    prefix.push(segment(&r.ident));
                    self.check_path(leading_colon, prefix, true);
                    prefix.pop();
                }
            }
            syn::UseTree::Glob(g) => {
                prefix.push(Segment {
                    name: "*".to_owned(),
                    span: g.star_token.span,
                });
                self.check_path(leading_colon, prefix, true);
                prefix.pop();
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.check_use_tree(leading_colon, prefix, tree);
                }
            }
        }
    }

    /// The paths in raw tokens (a macro call's arguments, an attribute's list): runs of
    /// identifiers joined by `::`. String literals are single tokens and never match.
    fn check_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            if let TokenTree::Group(group) = &tokens[i] {
                self.check_tokens(group.stream());
                i += 1;
                continue;
            }
            let (leading_colon, segments, next) = read_token_path(&tokens, i);
            if !segments.is_empty() {
                self.check_path(leading_colon, &segments, false);
            }
            i = next.max(i + 1);
        }
    }
}

fn segment(ident: &syn::Ident) -> Segment {
    Segment {
        name: ident.to_string(),
        span: ident.span(),
    }
}

/// Whether `tokens[i..]` starts with `::`.
fn is_path_separator(tokens: &[TokenTree], i: usize) -> bool {
    matches!(
        (tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == proc_macro2::Spacing::Joint && b.as_char() == ':'
    )
}

/// Reads a path (`::`? ident (`::` ident)*) at `tokens[start]`, with `$crate` read as `crate`;
/// returns it and the index after it.
fn read_token_path(tokens: &[TokenTree], start: usize) -> (bool, Vec<Segment>, usize) {
    let mut i = start;
    let leading_colon = is_path_separator(tokens, i);
    if leading_colon {
        i += 2;
    }
    let mut segments = Vec::new();
    loop {
        match (tokens.get(i), tokens.get(i + 1)) {
            (Some(TokenTree::Punct(dollar)), Some(TokenTree::Ident(id)))
                if dollar.as_char() == '$' && id == "crate" =>
            {
                segments.push(Segment {
                    name: "crate".to_owned(),
                    span: id.span(),
                });
                i += 2;
            }
            (Some(TokenTree::Ident(id)), _) => {
                segments.push(Segment {
                    name: id.to_string(),
                    span: id.span(),
                });
                i += 1;
            }
            _ => break,
        }
        if is_path_separator(tokens, i) {
            i += 2;
        } else {
            break;
        }
    }
    (leading_colon, segments, i)
}

impl<'ast> Visit<'ast> for FileChecker<'_, '_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.module_path.push(item.ident.to_string());
            visit::visit_item_mod(self, item);
            self.module_path.pop();
        } else {
            visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.check_use_tree(item.leading_colon.is_some(), &mut Vec::new(), &item.tree);
        visit::visit_item_use(self, item);
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        self.check_path(true, &[segment(&item.ident)], true);
        visit::visit_item_extern_crate(self, item);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<Segment> = path.segments.iter().map(|s| segment(&s.ident)).collect();
        self.check_path(path.leading_colon.is_some(), &segments, false);
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.check_tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }

    fn visit_meta_list(&mut self, list: &'ast syn::MetaList) {
        self.check_tokens(list.tokens.clone());
        visit::visit_meta_list(self, list);
    }
}
