//! `leasebox doctor`'s sequence: which backend and from where, the state dir, then the checks
//! of the chosen backend (`backends::local::doctor`, `backends::nomad::doctor`). Read-only.

use std::collections::BTreeMap;

use super::open::open_nomad;
use crate::backends::{local, nomad};
use crate::config::{BackendChoice, Config};
use crate::lease::{Check, CheckStatus};
use crate::ownership::StateDir;

/// `leasebox doctor`: read-only checks of the configured backend, in order.
pub async fn doctor(
    config: &Config,
    env: &BTreeMap<String, String>,
    state: &StateDir,
) -> Vec<Check> {
    let mut checks = vec![backend_check(config), state_check(state)];
    match config.settings().backend {
        BackendChoice::Local => checks.extend(local::doctor::run(env)),
        BackendChoice::Nomad => match open_nomad(config, env) {
            Ok(backend) => checks.extend(nomad::doctor::run(&backend).await),
            Err(e) => checks.push(Check::new(
                "address",
                CheckStatus::Fail,
                e.to_string(),
                Some("fix `nomad.address` (or `NOMAD_ADDR`) and the TLS settings".into()),
            )),
        },
    }
    checks
}

/// Which backend, and which config layer chose it.
fn backend_check(config: &Config) -> Check {
    Check::new(
        "backend",
        CheckStatus::Ok,
        format!(
            "`{}` ({})",
            config.settings().backend,
            config
                .get("backend")
                .map_or_else(String::new, |r| format!("from {}", r.source))
        ),
        None,
    )
}

/// The state dir exists (or can be created) and is writable.
fn state_check(state: &StateDir) -> Check {
    match state.ensure() {
        Ok(()) => Check::new(
            "state dir",
            CheckStatus::Ok,
            state.path().display().to_string(),
            None,
        ),
        Err(e) => Check::new(
            "state dir",
            CheckStatus::Fail,
            e.to_string(),
            Some("set `LEASEBOX_STATE_DIR` to a writable directory".into()),
        ),
    }
}
