//! The recipe host: the only module that knows Lua.
//!
//! A recipe runs in a sandboxed Lua 5.4 VM (`sandbox`) whose `require` reaches the embedded
//! stdlib and the repository's own `.lua` files only (`loader`). The host primitives
//! (`leasebox.warmup`, the `lease` userdata, `leasebox.parallel`, …) are registered in
//! `bindings`; the Lua tables they take are decoded into the session layer's requests in
//! `decode`; a recipe's lease options (`warmup{}`, `recipe{ lease = … }`) are resolved by the
//! config (`lease`: `Config::with_recipe` decides what a recipe may set); `runner` runs a
//! recipe file, imperative or declarative (`plan`); `lookup` finds recipes by name. Errors
//! ([`HostError`]) keep their kind across the Lua boundary.
//!
//! The host reaches boxes through one seam, [`engine`]: a [`LeaseProvider`] hands out
//! [`LeasedBox`]es. The CLI calls [`find_recipe`] / [`recipe_listing`] and then [`run_recipe`]
//! with a [`RecipeLeases`] (the provider over the lease lifecycle of `leases`, whose boxes are
//! [`HeldLease`](crate::leases::HeldLease)s, `held_lease`), and turns the [`RecipeReport`]
//! into an exit code with [`HostError::failure`]. The lease a recipe sees is the `LuaLease`
//! userdata of `bindings`. The host's unit tests keep the seam for one fake, a
//! scratch-directory double (`scratch`: fault injection, release counts); the tests over the
//! real engine use `RecipeLeases` on the local backend.
//!
//! Lua-side pieces: `prelude.lua` (the sandbox guards) here, the `leasebox` stdlib and its
//! LuaLS annotations in `stdlib/`; the user documentation is `docs/recipes.md`.

mod args;
mod bindings;
mod decode;
pub mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod held_lease;
mod junit;
mod last;
mod lease;
mod loader;
mod lookup;
mod plan;
mod provider;
mod repl;
mod runner;
mod sandbox;
#[cfg(test)]
mod scratch;
mod split;
#[cfg(test)]
mod tests;

pub use args::RecipeArgs;
pub use engine::{EngineError, LeaseOptions, LeaseProvider, LeasedBox, TransferSummary};
pub use error::{HostError, KindedError};
pub use lookup::{RecipeEntry, find_recipe, list_recipes, recipe_listing};
pub use provider::RecipeLeases;
pub use repl::{Interrupts, ReplInput, ReplOnFailure, ReplOptions, run_repl};
pub use runner::{RecipeReport, RecipeRun, StepReport, StepStatus, run_recipe};
pub use sandbox::{ALWAYS_DENIED_ENV, DEFAULT_MEMORY_LIMIT, SandboxOptions};
