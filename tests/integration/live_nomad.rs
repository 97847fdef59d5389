//! The live suite: runs against a real Nomad cluster when `LEASEBOX_LIVE_NOMAD=1` and a Nomad
//! address (`NOMAD_ADDR` or `LEASEBOX_NOMAD_ADDR`) are set, and says it was skipped otherwise.
//! The token, TLS settings and driver come from the same variables a user would set
//! (`NOMAD_TOKEN`, `NOMAD_CACERT`…, `LEASEBOX_NOMAD_DRIVER`, default raw_exec).

use crate::support::{Scratch, describe};

fn live() -> Option<Vec<(String, String)>> {
    if std::env::var("LEASEBOX_LIVE_NOMAD").ok().as_deref() != Some("1") {
        return None;
    }
    let vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("NOMAD_") || k.starts_with("LEASEBOX_NOMAD_"))
        .collect();
    if !vars
        .iter()
        .any(|(k, _)| k == "NOMAD_ADDR" || k == "LEASEBOX_NOMAD_ADDR")
    {
        return None;
    }
    Some(vars)
}

#[test]
fn live_nomad_end_to_end() {
    let Some(vars) = live() else {
        eprintln!("live Nomad suite skipped: set LEASEBOX_LIVE_NOMAD=1 and NOMAD_ADDR to run it");
        return;
    };
    end_to_end(&vars);
}

/// The suite itself, checked against the test server so it is known to work before it meets a
/// real cluster.
#[test]
fn the_live_suite_passes_against_the_test_server() {
    for nomad in [
        crate::support::nomad::NomadServer::start_v1_1(),
        crate::support::nomad::NomadServer::start_modern(),
    ] {
        end_to_end(&[("NOMAD_ADDR".to_owned(), nomad.url())]);
        assert!(nomad.jobs().is_empty(), "{:?}", nomad.jobs());
    }
}

fn end_to_end(vars: &[(String, String)]) {
    let s = Scratch::new();
    s.write("hello.txt", "hello from the repo\n");
    s.commit();
    let run = |args: &[&str]| {
        let mut cmd = s.leasebox(args);
        cmd.envs(vars.iter().cloned());
        if !vars.iter().any(|(k, _)| k == "LEASEBOX_NOMAD_DRIVER") {
            cmd.env("LEASEBOX_NOMAD_DRIVER", "raw_exec");
        }
        cmd.output().expect("run leasebox")
    };
    let doctor = run(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(0), "{}", describe(&doctor));

    let warm = run(&["warmup"]);
    assert_eq!(warm.status.code(), Some(0), "{}", describe(&warm));
    let id = String::from_utf8_lossy(&warm.stdout).trim().to_owned();

    let first = run(&[
        "run",
        "--lease",
        &id,
        "--fetch",
        "out",
        "--",
        "sh",
        "-c",
        "mkdir -p out && cp hello.txt out/ && cat hello.txt && exit 3",
    ]);
    assert_eq!(first.status.code(), Some(3), "{}", describe(&first));
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "hello from the repo\n"
    );
    assert!(s.repo().join("out/hello.txt").exists());

    let rerun = run(&["run", "--lease", &id, "--", "true"]);
    assert_eq!(rerun.status.code(), Some(0), "{}", describe(&rerun));

    let stop = run(&["stop", &id]);
    assert_eq!(stop.status.code(), Some(0), "{}", describe(&stop));
    let list = run(&["list", "--json"]);
    let items: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
    assert!(
        items
            .as_array()
            .is_none_or(|a| a.iter().all(|i| i["id"] != id.as_str())),
        "{}",
        describe(&list)
    );
    let one_shot = run(&["run", "--", "sh", "-c", "exit 0"]);
    assert_eq!(one_shot.status.code(), Some(0), "{}", describe(&one_shot));

    // An abandoned lease (its claim says nobody holds it and it is not kept) is cleaned up.
    let abandoned = run(&["warmup"]);
    let abandoned_id = String::from_utf8_lossy(&abandoned.stdout).trim().to_owned();
    let claim_path = s.state().join(format!("claims/{abandoned_id}.json"));
    let mut claim: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&claim_path).unwrap()).unwrap();
    claim["keep"] = serde_json::json!(false);
    std::fs::write(&claim_path, serde_json::to_vec(&claim).unwrap()).unwrap();
    let dry = run(&["cleanup", "--dry-run", "--json"]);
    assert_eq!(dry.status.code(), Some(0), "{}", describe(&dry));
    assert!(claim_path.exists(), "--dry-run changed something");
    let cleaned = run(&["cleanup", "--json"]);
    assert_eq!(cleaned.status.code(), Some(0), "{}", describe(&cleaned));
    assert!(!claim_path.exists(), "{}", describe(&cleaned));
    let status = run(&["status", &abandoned_id]);
    assert_eq!(status.status.code(), Some(78), "{}", describe(&status));
}
