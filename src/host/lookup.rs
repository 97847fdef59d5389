//! Finding recipes for `leasebox run NAME` (DESIGN §9): an existing path first, then
//! `.leasebox/recipes/NAME.lua`, then `recipes/NAME.lua` under the repository root; both of the
//! latter existing is an error naming both. A name that matches nothing lists the recipes
//! found.

use std::path::{Path, PathBuf};

use super::error::HostError;

/// A recipe found in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeEntry {
    /// The name `leasebox run NAME` takes.
    pub name: String,
    /// The file, relative to the repository root (`recipes/hello.lua`).
    pub path: PathBuf,
}

const DIRS: [&str; 2] = [".leasebox/recipes", "recipes"];

/// The recipes under `.leasebox/recipes/` and `recipes/`, sorted by name (a name in both
/// directories appears twice).
#[must_use]
pub fn list_recipes(repo_root: &Path) -> Vec<RecipeEntry> {
    let mut found = Vec::new();
    for dir in DIRS {
        let Ok(entries) = std::fs::read_dir(repo_root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "lua")
                && path.is_file()
                && let Some(stem) = path.file_stem()
            {
                found.push(RecipeEntry {
                    name: stem.to_string_lossy().into_owned(),
                    path: Path::new(dir).join(entry.file_name()),
                });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    found
}

/// Resolve `leasebox run NAME`: a path relative to `cwd` (or absolute) that exists, else a
/// recipe of that name in the repository.
///
/// # Errors
///
/// [`HostError::Lookup`] (a usage error) when nothing matches (listing the recipes found) or
/// when both `.leasebox/recipes/NAME.lua` and `recipes/NAME.lua` exist.
pub fn find_recipe(repo_root: &Path, cwd: &Path, name: &str) -> Result<PathBuf, HostError> {
    let as_path = cwd.join(name);
    if as_path.is_file() {
        return Ok(as_path);
    }
    let candidates: Vec<PathBuf> = DIRS
        .iter()
        .map(|dir| Path::new(dir).join(format!("{name}.lua")))
        .filter(|relative| !name.contains(['/', '\\']) && repo_root.join(relative).is_file())
        .collect();
    match candidates.as_slice() {
        [one] => Ok(repo_root.join(one)),
        [a, b] => Err(HostError::Lookup {
            message: format!(
                "recipe `{name}` is ambiguous: both `{}` and `{}` exist; run one by its path",
                a.display(),
                b.display()
            ),
        }),
        _ => Err(HostError::Lookup {
            message: format!(
                "no recipe `{name}`: not a file, and neither `.leasebox/recipes/{name}.lua` nor \
                 `recipes/{name}.lua` exists in the repository\n{}",
                recipe_listing(repo_root)
            ),
        }),
    }
}

/// The listing a bare `leasebox run` prints (also part of the "no recipe" error).
#[must_use]
pub fn recipe_listing(repo_root: &Path) -> String {
    let found = list_recipes(repo_root);
    if found.is_empty() {
        return "no recipes found (looked in `.leasebox/recipes/` and `recipes/`)".to_owned();
    }
    let mut out = String::from("recipes found:");
    for entry in found {
        out.push_str(&format!("\n  {:<20} {}", entry.name, entry.path.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("recipes")).unwrap();
        std::fs::create_dir_all(dir.path().join(".leasebox/recipes")).unwrap();
        std::fs::write(dir.path().join("recipes/hello.lua"), "").unwrap();
        std::fs::write(dir.path().join("recipes/both.lua"), "").unwrap();
        std::fs::write(dir.path().join(".leasebox/recipes/both.lua"), "").unwrap();
        std::fs::write(dir.path().join(".leasebox/recipes/ci.lua"), "").unwrap();
        dir
    }

    #[test]
    fn lookup_order() {
        let dir = repo();
        let root = dir.path();
        assert_eq!(
            find_recipe(root, root, "hello").unwrap(),
            root.join("recipes/hello.lua")
        );
        assert_eq!(
            find_recipe(root, root, "ci").unwrap(),
            root.join(".leasebox/recipes/ci.lua")
        );
        assert_eq!(
            find_recipe(root, root, "recipes/hello.lua").unwrap(),
            root.join("recipes/hello.lua")
        );
        let err = find_recipe(root, root, "both").unwrap_err().to_string();
        assert!(
            err.contains(".leasebox/recipes/both.lua") && err.contains("recipes/both.lua"),
            "{err}"
        );
        let err = find_recipe(root, root, "nope").unwrap_err().to_string();
        assert!(
            err.contains("no recipe `nope`") && err.contains("hello") && err.contains("ci"),
            "{err}"
        );
    }
}
