//! `--json` on failure: every command that takes `--json` prints one JSON object on stdout with
//! `error_kind`, `message` and `exit_code` (the exit code the process ends with); clap's own
//! usage errors stay text.

use std::process::Output;

use crate::support::{Scratch, code, describe, stdout};

fn repo() -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello\n");
    s.commit();
    s
}

/// The one JSON object of a failed `--json` command, checked against the exit code.
fn error_object(out: &Output, kind: &str) -> serde_json::Value {
    let text = stdout(out);
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", describe(out)));
    assert_eq!(value["error_kind"], kind, "{}", describe(out));
    assert_eq!(value["exit_code"], code(out), "{}", describe(out));
    assert!(
        value["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        describe(out)
    );
    value
}

#[test]
fn every_json_command_fails_with_one_object() {
    let s = repo();
    let unknown = "lbx_000000000000";
    for args in [
        &["status", unknown, "--json"][..],
        &["stop", unknown, "--json"][..],
    ] {
        let out = s.run(args);
        assert_eq!(code(&out), 78, "{args:?}: {}", describe(&out));
        error_object(&out, "ownership_refused");
    }
    let out = s.run(&["status", "not-an-id", "--json"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    error_object(&out, "usage");

    // A state dir that is a file: every lease command fails the same way.
    let file = s.path().join("state-file");
    std::fs::write(&file, "x").unwrap();
    for args in [
        &["list", "--json"][..],
        &["cleanup", "--json"][..],
        &["cleanup", "--dry-run", "--json"][..],
        &["warmup", "--json"][..],
        &["trust", "--list", "--json"][..],
    ] {
        let out = s
            .leasebox(args)
            .env("LEASEBOX_STATE_DIR", &file)
            .output()
            .unwrap();
        assert_eq!(code(&out), 78, "{args:?}: {}", describe(&out));
        error_object(&out, "config_error");
    }

    // An untrusted boundary.
    let t = repo();
    t.write(".leasebox.toml", "[nomad]\nnamespace = \"ci\"\n");
    for args in [&["config", "--json"][..], &["list", "--json"][..]] {
        let out = t.run(args);
        assert_eq!(code(&out), 78, "{args:?}: {}", describe(&out));
        let v = error_object(&out, "trust_refused");
        assert!(v["message"].as_str().unwrap().contains("leasebox trust"));
    }

    // Doctor: its checks and the error in one object.
    let out = s
        .leasebox(&["doctor", "--json"])
        .env("NOMAD_ADDR", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(code(&out), 75, "{}", describe(&out));
    let v = error_object(&out, "transport_lost");
    let checks = v["checks"].as_array().expect("the checks");
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "reachable" && c["status"] == "fail")
    );
}

#[test]
fn usage_errors_stay_text() {
    let s = repo();
    let out = s.run(&["list", "--json", "--no-such-flag"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
}
