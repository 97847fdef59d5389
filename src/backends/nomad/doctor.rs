//! `leasebox doctor` on Nomad: read-only checks of the address, reachability, auth (across the
//! versions of `acl/token/self`), region, namespace, nodes with the driver, what the image
//! needs, and whether the token's policies grant exec, each with a fix when it fails. Nothing
//! is registered, changed or executed.

use std::collections::BTreeMap;

use super::NomadBackend;
use super::client::CallError;
use super::wire::{AclToken, NodeStub};
use crate::lease::{Check, CheckStatus};

fn ok(name: &str, detail: impl Into<String>) -> Check {
    Check::new(name, CheckStatus::Ok, detail, None)
}

fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check::new(name, CheckStatus::Fail, detail, Some(fix.into()))
}

fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check::new(name, CheckStatus::Warn, detail, Some(fix.into()))
}

/// Run every check in order; later checks are skipped when the agent cannot be reached.
pub async fn run(backend: &NomadBackend) -> Vec<Check> {
    let client = backend.client();
    let mut checks = vec![ok(
        "address",
        format!("{} (from {})", client.address().shown(), client.origin()),
    )];
    match client.get::<String>("/v1/status/leader", &[]).await {
        Ok((leader, _)) if leader.is_empty() => {
            checks.push(fail(
                "reachable",
                "the agent answers but the cluster has no leader",
                "wait for the servers to elect a leader, or check the servers' logs",
            ));
        }
        Ok((leader, _)) => checks.push(ok("reachable", format!("cluster leader {leader}"))),
        Err(CallError::Transport(t)) => {
            checks.push(fail(
                "reachable",
                t,
                "start the agent, or fix `nomad.address` / `NOMAD_ADDR`",
            ));
            return checks;
        }
        Err(CallError::Api(api)) => {
            checks.push(fail(
                "reachable",
                format!("{} {}", api.status, api.body),
                "check that the address is a Nomad agent's HTTP API",
            ));
            return checks;
        }
    }
    let token_var = client.token_env().to_owned();
    let mut management = false;
    // No token, or the agent answered with the anonymous token: lists are filtered to what
    // anonymous access may see.
    let mut anonymous = client.token().is_none();
    let mut policies: Vec<String> = Vec::new();
    match client.get::<AclToken>("/v1/acl/token/self", &[]).await {
        Ok((token, _)) if token.accessor_id == "acls-disabled" => {
            checks.push(ok("auth", "ACLs are disabled on this cluster"));
            management = true;
        }
        Ok((token, _)) if token.accessor_id == "anonymous" => {
            anonymous = true;
            checks.push(warn(
                "auth",
                format!("no token: requests are anonymous (`{token_var}` is not set)"),
                format!("set `{token_var}` to a token with the policy in docs/nomad.md"),
            ));
        }
        Ok((token, _)) => {
            management = token.kind == "management";
            policies = token.policies.unwrap_or_default();
            checks.push(ok(
                "auth",
                format!(
                    "token `{}` ({}), policies: {}",
                    token.name,
                    token.kind,
                    if policies.is_empty() {
                        "none".to_owned()
                    } else {
                        policies.join(", ")
                    }
                ),
            ));
        }
        Err(CallError::Api(api)) if api.body.contains("ACL support disabled") => {
            checks.push(ok("auth", "ACLs are disabled on this cluster"));
            management = true;
        }
        Err(CallError::Api(api)) if api.body.contains("missing secret id") => {
            checks.push(fail(
                "auth",
                format!("ACLs are on and no token is set in `{token_var}`"),
                format!("set `{token_var}` to a token with the policy in docs/nomad.md"),
            ));
        }
        Err(CallError::Api(api)) if api.status == 403 || api.status == 404 => {
            checks.push(fail(
                "auth",
                format!(
                    "the token in `{token_var}` is not known to the cluster ({})",
                    api.body
                ),
                format!("set `{token_var}` to a valid token (`nomad acl token self` checks one)"),
            ));
        }
        Err(e) => checks.push(fail("auth", describe(e), "check the agent's logs")),
    }
    match client.get::<Vec<String>>("/v1/regions", &[]).await {
        Ok((regions, _)) if regions.iter().any(|r| r == client.region()) => {
            checks.push(ok("region", format!("`{}`", client.region())));
        }
        Ok((regions, _)) => checks.push(fail(
            "region",
            format!(
                "`{}` is not one of the cluster's regions ({})",
                client.region(),
                regions.join(", ")
            ),
            "set `nomad.region` (or `NOMAD_REGION`) to one of them",
        )),
        Err(e) => checks.push(warn("region", describe(e), "check `nomad.region`")),
    }
    match client
        .get::<Vec<BTreeMap<String, serde_json::Value>>>("/v1/namespaces", &[])
        .await
    {
        Ok((spaces, _)) => {
            let names: Vec<String> = spaces
                .iter()
                .filter_map(|n| n.get("Name").and_then(|v| v.as_str()).map(str::to_owned))
                .collect();
            let who = if anonymous {
                format!("anonymous access (no token in `{token_var}`)")
            } else {
                format!("the token in `{token_var}`")
            };
            if names.iter().any(|n| n == client.namespace()) {
                checks.push(ok("namespace", format!("`{}`", client.namespace())));
            } else if names.is_empty() && !management {
                // `default` always exists: an empty list is a list filtered to nothing.
                checks.push(warn(
                    "namespace",
                    format!(
                        "the namespace list could not be read: Nomad lists only the namespaces a \
                         token may use, and {who} may use none, so whether `{}` exists is unknown",
                        client.namespace()
                    ),
                    format!(
                        "set `{token_var}` to a token whose policy covers namespace `{}` (see docs/nomad.md)",
                        client.namespace()
                    ),
                ));
            } else if !management {
                checks.push(fail(
                    "namespace",
                    format!(
                        "`{}` is not among the namespaces {who} may use ({}): it does not exist, or the token's policy does not cover it",
                        client.namespace(),
                        names.join(", ")
                    ),
                    "set `nomad.namespace` (or `NOMAD_NAMESPACE`) to one of them, or grant the token that namespace",
                ));
            } else {
                checks.push(fail(
                    "namespace",
                    format!(
                        "`{}` does not exist (there are: {})",
                        client.namespace(),
                        names.join(", ")
                    ),
                    "set `nomad.namespace` (or `NOMAD_NAMESPACE`) to an existing namespace",
                ));
            }
        }
        Err(e) => checks.push(warn(
            "namespace",
            format!("cannot list namespaces: {}", describe(e)),
            "nothing to do if runs work; the token may lack `list` on namespaces",
        )),
    }
    match client.get::<Vec<NodeStub>>("/v1/nodes", &[]).await {
        Ok((nodes, _)) => {
            let ready: Vec<&NodeStub> = nodes.iter().filter(|n| n.status == "ready").collect();
            let with_driver: Vec<&&NodeStub> = ready
                .iter()
                .filter(|n| {
                    n.drivers
                        .as_ref()
                        .and_then(|d| d.get(&backend.driver))
                        .is_some_and(|d| d.detected && d.healthy)
                })
                .collect();
            if with_driver.is_empty() {
                checks.push(fail(
                    "driver",
                    format!(
                        "none of the {} ready node(s) has the `{}` driver detected and healthy",
                        ready.len(),
                        backend.driver
                    ),
                    "enable the driver on a client, or set `nomad.driver` to one the nodes have",
                ));
            } else {
                let mut dcs: Vec<&str> =
                    with_driver.iter().map(|n| n.datacenter.as_str()).collect();
                dcs.sort_unstable();
                dcs.dedup();
                checks.push(ok(
                    "driver",
                    format!(
                        "`{}` healthy on {} of {} ready node(s), datacenters {}",
                        backend.driver,
                        with_driver.len(),
                        ready.len(),
                        dcs.join(", ")
                    ),
                ));
            }
        }
        Err(e) => checks.push(warn(
            "driver",
            format!("cannot list nodes: {}", describe(e)),
            "grant `node:read`, or set `nomad.datacenters` so leasebox need not read them",
        )),
    }
    if super::job::IMAGE_DRIVERS.contains(&backend.driver.as_str()) {
        checks.push(ok(
            "image",
            format!(
                "`{}` must provide sh, tar, tee, cat, tail, mv, rm, mkdir, ls, wc, sleep and setsid (most images with a shell do)",
                backend.image
            ),
        ));
    } else {
        checks.push(ok(
            "image",
            format!(
                "no image with `{}`: the client's own sh, tar, tee, cat, tail, mv, rm, mkdir, ls, wc, sleep and setsid are used",
                backend.driver
            ),
        ));
    }
    let needs = if backend.driver == "raw_exec" {
        "`alloc-exec` and `alloc-node-exec`"
    } else {
        "`alloc-exec`"
    };
    if management {
        checks.push(ok("exec", format!("the token may exec ({needs})")));
    } else if policies.is_empty() {
        checks.push(warn(
            "exec",
            format!("cannot tell whether the token grants {needs}"),
            "see docs/nomad.md for the policy leasebox needs",
        ));
    } else {
        let mut rules = String::new();
        let mut readable = true;
        for p in &policies {
            match client
                .get::<BTreeMap<String, serde_json::Value>>(&format!("/v1/acl/policy/{p}"), &[])
                .await
            {
                Ok((policy, _)) => {
                    rules.push_str(policy.get("Rules").and_then(|r| r.as_str()).unwrap_or(""));
                }
                Err(_) => readable = false,
            }
        }
        // `write` includes `alloc-exec`, never `alloc-node-exec` (Nomad's policy expansion).
        let write = rules.contains("policy = \"write\"") || rules.contains("policy=\"write\"");
        let exec = write || rules.contains("\"alloc-exec\"");
        let node_exec = rules.contains("\"alloc-node-exec\"") || backend.driver != "raw_exec";
        let missing: Vec<&str> = [("`alloc-exec`", exec), ("`alloc-node-exec`", node_exec)]
            .into_iter()
            .filter(|(_, granted)| !granted)
            .map(|(name, _)| name)
            .collect();
        if missing.is_empty() {
            checks.push(ok("exec", format!("the token's policies grant {needs}")));
        } else if readable {
            let missing = missing.join(" and ");
            checks.push(fail(
                "exec",
                format!(
                    "the token's policies do not grant {missing}, which the `{}` driver needs",
                    backend.driver
                ),
                format!(
                    "add {missing} to one of its policies' `namespace \"{}\"` rules (see docs/nomad.md)",
                    client.namespace()
                ),
            ));
        } else {
            checks.push(warn(
                "exec",
                format!("cannot read the token's policies to tell whether they grant {needs}"),
                "see docs/nomad.md for the policy leasebox needs",
            ));
        }
    }
    checks
}

fn describe(e: CallError) -> String {
    match e {
        CallError::Transport(t) => t,
        CallError::Api(api) => format!("{} {}", api.status, api.body),
    }
}
