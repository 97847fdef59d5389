//! Tests of the key table: unique names, the naming rule for twins and flags, the `NOMAD_*`
//! fallbacks, the trust classes of DESIGN §5, suggestions.

use super::*;

#[test]
fn names_are_unique_and_in_known_sections() {
    let mut seen = std::collections::BTreeSet::new();
    for k in KEYS {
        assert!(seen.insert(k.name), "duplicate key {}", k.name);
        if let Some(section) = k.section() {
            assert!(
                SECTIONS.contains(&section),
                "{} is in an unknown section",
                k.name
            );
        }
    }
}

#[test]
fn twins_and_flags_follow_the_naming_rule() {
    for k in KEYS {
        let env = if k.name == "nomad.address" {
            "LEASEBOX_NOMAD_ADDR".to_owned()
        } else {
            format!("LEASEBOX_{}", k.name.replace('.', "_").to_uppercase())
        };
        assert_eq!(k.env, env, "environment twin of {}", k.name);
        assert_eq!(
            k.flag,
            k.name.replace(['.', '_'], "-"),
            "flag of {}",
            k.name
        );
    }
    assert_eq!(
        KeyDef::find("nomad.image").unwrap().flag_arg(),
        "--nomad-image"
    );
    assert_eq!(KeyDef::find("lease.ttl").unwrap().env, "LEASEBOX_LEASE_TTL");
    assert_eq!(
        KeyDef::find("exec_timeout").unwrap().flag_arg(),
        "--exec-timeout"
    );
}

#[test]
fn nomad_fallbacks_are_the_nomad_cli_variables() {
    let with: Vec<_> = KEYS
        .iter()
        .filter_map(|k| k.nomad_env.map(|v| (k.name, v)))
        .collect();
    assert_eq!(
        with,
        [
            ("nomad.address", "NOMAD_ADDR"),
            ("nomad.ca_cert", "NOMAD_CACERT"),
            ("nomad.ca_path", "NOMAD_CAPATH"),
            ("nomad.client_cert", "NOMAD_CLIENT_CERT"),
            ("nomad.client_key", "NOMAD_CLIENT_KEY"),
            ("nomad.tls_server_name", "NOMAD_TLS_SERVER_NAME"),
            ("nomad.skip_verify", "NOMAD_SKIP_VERIFY"),
            ("nomad.region", "NOMAD_REGION"),
            ("nomad.namespace", "NOMAD_NAMESPACE"),
        ]
    );
}

#[test]
fn classes_follow_the_design_table() {
    let class = |n| KeyDef::find(n).unwrap().class;
    for n in [
        "backend",
        "owner",
        "max_cpu",
        "lua_env_allow",
        "nomad.address",
    ] {
        assert_eq!(class(n), TrustClass::UserOnly, "{n}");
    }
    for n in ["nomad.token_env", "nomad.ca_cert", "nomad.skip_verify"] {
        assert_eq!(class(n), TrustClass::UserOnly, "{n}");
    }
    for n in [
        "nomad.region",
        "nomad.constraints",
        "lease.ttl",
        "nomad.alloc_ready_timeout",
    ] {
        assert_eq!(class(n), TrustClass::Boundary, "{n}");
    }
    for n in [
        "nomad.image",
        "nomad.disk_mb",
        "exec_timeout",
        "sync.exclude",
    ] {
        assert_eq!(class(n), TrustClass::Own, "{n}");
    }
}

#[test]
fn suggestions() {
    assert_eq!(suggest("nomad.imgae"), Some("nomad.image"));
    assert_eq!(suggest("image"), Some("nomad.image"));
    assert_eq!(suggest("nomda"), Some("nomad"));
    assert_eq!(suggest("lease.tll"), Some("lease.ttl"));
    assert_eq!(suggest("completely_different"), None);
    assert_eq!(
        suggest_env("LEASEBOX_NOMAD_IMAGES"),
        Some("LEASEBOX_NOMAD_IMAGE")
    );
    assert_eq!(suggest_env("LEASEBOX_STATE_DIR"), None);
}
