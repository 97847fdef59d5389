//! `leasebox.args`: the arguments after `--` of `leasebox run RECIPE -- ARGS`.
//!
//! `key=value` pairs (a key is a Lua identifier) become fields of the table; every other
//! argument goes, in order, into the sequence part (`args[1]`, `args[2]`, …).

use mlua::{Lua, Table};

/// Recipe arguments, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipeArgs {
    /// Arguments that are not `key=value`, in order.
    pub positional: Vec<String>,
    /// `key=value` pairs, in order (a later key wins).
    pub named: Vec<(String, String)>,
}

impl RecipeArgs {
    /// Split raw arguments into positional ones and `key=value` pairs.
    #[must_use]
    pub fn parse(raw: &[String]) -> Self {
        let mut args = RecipeArgs::default();
        for arg in raw {
            match arg.split_once('=') {
                Some((key, value)) if is_identifier(key) => {
                    args.named.push((key.to_owned(), value.to_owned()));
                }
                _ => args.positional.push(arg.clone()),
            }
        }
        args
    }

    /// The Lua table `leasebox.args`.
    pub(crate) fn to_table(&self, lua: &Lua) -> mlua::Result<Table> {
        let table = lua.create_sequence_from(self.positional.iter().map(String::as_str))?;
        for (key, value) in &self.named {
            table.raw_set(key.as_str(), value.as_str())?;
        }
        Ok(table)
    }
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_positionals() {
        let raw: Vec<String> = ["fast", "mode=release", "a=b=c", "=x", "1=y", "--flag"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let args = RecipeArgs::parse(&raw);
        assert_eq!(args.positional, ["fast", "=x", "1=y", "--flag"]);
        assert_eq!(
            args.named,
            [
                ("mode".to_owned(), "release".to_owned()),
                ("a".to_owned(), "b=c".to_owned())
            ]
        );
        let lua = Lua::new();
        let table = args.to_table(&lua).unwrap();
        assert_eq!(table.raw_len(), 4);
        assert_eq!(table.raw_get::<String>("mode").unwrap(), "release");
    }
}
