//! The recipe host: the only module that knows Lua.
//!
//! A recipe runs in a sandboxed Lua 5.4 VM (`sandbox`) whose `require` reaches the embedded
//! stdlib and the repository's own `.lua` files only (`loader`). The host primitives
//! (`leasebox.warmup`, the `lease` userdata, `leasebox.parallel`, …) are bound in
//! `bindings` over the engine seam of [`engine`]; a recipe's lease options (`warmup{}`,
//! `recipe{ lease = … }`) are resolved by the config (`lease`: `Config::with_recipe` decides
//! what a recipe may set); `runner` runs a recipe file, imperative or declarative (`plan`);
//! `lookup` finds recipes by name. Errors ([`HostError`]) keep their kind across the Lua
//! boundary.
//!
//! The CLI calls [`find_recipe`] / [`recipe_listing`] and then [`run_recipe`] with a
//! [`RecipeLeases`] (the [`LeaseProvider`] over the lease lifecycle of `backends`, whose boxes
//! are [`SessionBox`]es over the session layer), and turns the [`RecipeReport`] into an exit
//! code with [`HostError::failure`]. The host's own tests run over a scratch-directory double
//! of the engine (`scratch`) and over the real local backend.
//!
//! Lua-side pieces: `prelude.lua` (the sandbox guards) here, the `leasebox` stdlib and its
//! LuaLS annotations in `stdlib/`; the user documentation is `docs/recipes.md`.

mod args;
mod bindings;
pub mod engine;
mod error;
mod lease;
mod loader;
mod lookup;
mod plan;
mod provider;
mod runner;
mod sandbox;
#[cfg(test)]
mod scratch;
mod session_box;
#[cfg(test)]
mod tests;

pub use args::RecipeArgs;
pub use engine::{
    EngineError, ExecResult, ExecSpec, LeaseOptions, LeaseProvider, LeasedBox, SyncSpec,
    TransferSummary,
};
pub use error::{HostError, KindedError};
pub use lookup::{RecipeEntry, find_recipe, list_recipes, recipe_listing};
pub use provider::RecipeLeases;
pub use runner::{RecipeReport, RecipeRun, StepReport, StepStatus, run_recipe};
pub use sandbox::{ALWAYS_DENIED_ENV, DEFAULT_MEMORY_LIMIT, SandboxOptions};
pub use session_box::{Releaser, SessionBox};
