//! ACL policies and token resolution: namespace policies and capabilities, `node`, `agent`;
//! tokens from `X-Nomad-Token` only on 1.1 (`Authorization: Bearer` too on modern agents).

use std::collections::BTreeMap;

use super::hcl::{self, Item};
use super::state::State;

/// One policy's rules, with namespace policies expanded into capabilities.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub namespaces: BTreeMap<String, Vec<String>>,
    pub node: Option<String>,
    pub agent: Option<String>,
}

fn expand(policy: &str) -> Vec<&'static str> {
    const READ: &[&str] = &[
        "list-jobs",
        "parse-job",
        "read-job",
        "read-job-scaling",
        "read-logs",
        "read-fs",
    ];
    const WRITE: &[&str] = &[
        "submit-job",
        "dispatch-job",
        "alloc-exec",
        "alloc-lifecycle",
        "scale-job",
        "submit-recommendation",
    ];
    match policy {
        "read" => READ.to_vec(),
        "write" => READ.iter().chain(WRITE).copied().collect(),
        "scale" => vec![
            "list-scaling-policies",
            "read-scaling-policy",
            "read-job-scaling",
            "scale-job",
        ],
        _ => Vec::new(),
    }
}

/// Parses policy rules; the error text is the HCL diagnostic.
pub fn parse_rules(src: &str) -> Result<Rules, String> {
    let items = hcl::parse(src).map_err(|e| e.0)?;
    let mut rules = Rules::default();
    for item in items {
        let Item::Block {
            kind, labels, body, ..
        } = item
        else {
            continue;
        };
        let map = hcl::body_to_map(&body);
        let policy = map
            .get("policy")
            .and_then(|p| p.as_str())
            .map(str::to_string);
        match kind.as_str() {
            "namespace" => {
                let name = labels.first().cloned().unwrap_or_else(|| "default".into());
                let mut caps: Vec<String> = policy
                    .as_deref()
                    .map(expand)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                if policy.as_deref() == Some("deny") {
                    caps = vec!["deny".into()];
                }
                if let Some(list) = map.get("capabilities").and_then(|c| c.as_array()) {
                    caps.extend(list.iter().filter_map(|c| c.as_str()).map(str::to_string));
                }
                rules.namespaces.entry(name).or_default().extend(caps);
            }
            "node" => rules.node = policy,
            "agent" => rules.agent = policy,
            _ => {}
        }
    }
    Ok(rules)
}

/// Who is asking, once the token has been looked up.
#[derive(Clone, Debug)]
pub enum Identity {
    /// ACLs are disabled: everything is allowed.
    Disabled,
    Management,
    Client(Vec<Rules>),
    /// No token: the anonymous policy, if any.
    Anonymous(Vec<Rules>),
}

impl Identity {
    fn rules(&self) -> Option<&[Rules]> {
        match self {
            Identity::Disabled | Identity::Management => None,
            Identity::Client(r) | Identity::Anonymous(r) => Some(r),
        }
    }

    pub fn allow_ns(&self, namespace: &str, cap: &str) -> bool {
        let Some(rules) = self.rules() else {
            return true;
        };
        let mut allowed = false;
        for r in rules {
            let caps = r
                .namespaces
                .get(namespace)
                .or_else(|| r.namespaces.get("*"));
            if let Some(caps) = caps {
                if caps.iter().any(|c| c == "deny") {
                    return false;
                }
                if caps.iter().any(|c| c == cap) {
                    allowed = true;
                }
            }
        }
        allowed
    }

    pub fn allow_node_read(&self) -> bool {
        self.rules().is_none_or(|rs| {
            rs.iter()
                .any(|r| matches!(r.node.as_deref(), Some("read" | "write")))
        })
    }

    pub fn allow_agent_read(&self) -> bool {
        self.rules().is_none_or(|rs| {
            rs.iter()
                .any(|r| matches!(r.agent.as_deref(), Some("read" | "write")))
        })
    }

    pub fn is_management(&self) -> bool {
        matches!(self, Identity::Management | Identity::Disabled)
    }
}

/// Why a token could not be resolved.
pub enum TokenError {
    /// An unknown secret: 403 `ACL token not found` (404 on 1.1's token/self).
    NotFound,
}

pub fn rules_for(state: &State, policies: &[String]) -> Vec<Rules> {
    policies
        .iter()
        .filter_map(|p| state.policies.get(p))
        .map(|p| p.parsed.clone())
        .collect()
}

/// Resolves a secret (already taken from the allowed headers) into an identity.
pub fn resolve(
    state: &State,
    acl_enabled: bool,
    secret: Option<&str>,
) -> Result<Identity, TokenError> {
    if !acl_enabled {
        return Ok(Identity::Disabled);
    }
    match secret {
        None | Some("") => Ok(Identity::Anonymous(rules_for(
            state,
            &["anonymous".to_string()],
        ))),
        Some(s) => {
            let token = state
                .tokens
                .values()
                .find(|t| t.secret_id == s)
                .ok_or(TokenError::NotFound)?;
            if token.token_type == "management" {
                Ok(Identity::Management)
            } else {
                Ok(Identity::Client(rules_for(state, &token.policies)))
            }
        }
    }
}
