//! Ownership validation and `leasebox cleanup`, on the local backend and on the Nomad API test
//! server: abandoned, expired and orphaned leases are released; foreign or mismatching boxes are
//! never touched; `kill -9` at any phase leaves nothing that cleanup cannot resolve.

use std::io::{Read, Write};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::support::nomad::{NomadServer, Profile};
use crate::support::{Scratch, code, describe, stderr, stdout, wait_for};

fn repo() -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello\n");
    s.commit();
    s
}

fn cleanup_json(out: &Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(out)));
    v["leases"].as_array().cloned().unwrap_or_default()
}

fn action_of(items: &[serde_json::Value], id: &str) -> String {
    items.iter().find(|i| i["id"] == id).map_or_else(
        || "absent".to_owned(),
        |i| i["action"].as_str().unwrap_or("").to_owned(),
    )
}

/// A raw HTTP/1.1 request to the test server, standing in for another Nomad client.
fn http(nomad: &NomadServer, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(nomad.addr()).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn nomad_run(s: &Scratch, nomad: &NomadServer, args: &[&str]) -> Output {
    s.leasebox(args)
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .output()
        .unwrap()
}

/// Start `leasebox run` of a long command, wait until the command runs, and `kill -9`
/// leasebox; returns the file holding the command's pid.
fn kill_9_mid_command(s: &Scratch, env: &[(&str, String)]) -> std::path::PathBuf {
    let pidfile = s.path().join("pid");
    let _ = std::fs::remove_file(&pidfile);
    let script = format!("echo $$ > {}; sleep 60", pidfile.display());
    let mut child = s
        .leasebox(&["run", "--", "sh", "-c", &script])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the command", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    pidfile
}

#[test]
fn kill_9_during_a_command_is_cleaned_up_locally() {
    let s = repo();
    let pidfile = kill_9_mid_command(&s, &[]);
    assert_eq!(s.claims().len(), 1);
    let dry = s.run(&["cleanup", "--dry-run", "--json"]);
    assert_eq!(code(&dry), 0, "{}", describe(&dry));
    let id = s.claims()[0]["id"].as_str().unwrap().to_owned();
    // `list` says so before `cleanup` does.
    let list = s.run(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["state"], "abandoned", "{}", describe(&list));
    assert_eq!(rows[0]["in_use"], false);
    let text = stdout(&s.run(&["list"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.contains("abandoned")),
        "{text}"
    );
    let status = stdout(&s.run(&["status", &id]));
    assert!(status.contains("state:      abandoned"), "{status}");
    assert_eq!(action_of(&cleanup_json(&dry), &id), "released");
    assert_eq!(s.claims().len(), 1, "--dry-run changed something");
    assert_eq!(s.lease_dirs().len(), 1);

    let out = s.run(&["cleanup", "--json"]);
    assert_eq!(
        action_of(&cleanup_json(&out), &id),
        "released",
        "{}",
        describe(&out)
    );
    assert!(s.claims().is_empty());
    assert_eq!(s.lease_dirs().len(), 0);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the command to be stopped", || !crate::support::alive(pid));
}

#[test]
fn kept_leases_stay_until_they_expire() {
    let s = repo();
    let long = s.run(&["warmup"]);
    let long_id = stdout(&long).trim().to_owned();
    let short = s.run(&["warmup", "--lease-ttl", "1s"]);
    let short_id = stdout(&short).trim().to_owned();
    std::thread::sleep(Duration::from_millis(2100));
    let out = s.run(&["cleanup", "--json"]);
    let items = cleanup_json(&out);
    assert_eq!(action_of(&items, &long_id), "kept", "{}", describe(&out));
    assert_eq!(
        action_of(&items, &short_id),
        "released",
        "{}",
        describe(&out)
    );
    let reason = items.iter().find(|i| i["id"] == short_id.as_str()).unwrap()["reason"].to_string();
    assert!(reason.contains("ttl") || reason.contains("TTL"), "{reason}");
    assert_eq!(s.claims().len(), 1);
    assert_eq!(code(&s.run(&["stop", &long_id])), 0);
}

#[test]
fn keep_on_failure_keeps_only_failed_runs() {
    let s = repo();
    let ok = s.run(&["run", "--keep-on-failure", "--", "true"]);
    assert_eq!(code(&ok), 0, "{}", describe(&ok));
    assert!(s.claims().is_empty());
    let failed = s.run(&["run", "--keep-on-failure", "--", "sh", "-c", "exit 9"]);
    assert_eq!(code(&failed), 9, "{}", describe(&failed));
    let left = s.claims();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["keep"], true);
    assert!(stderr(&failed).contains("leasebox stop"));
    let out = s.run(&["cleanup", "--json"]);
    let id = left[0]["id"].as_str().unwrap();
    assert_eq!(
        action_of(&cleanup_json(&out), id),
        "kept",
        "{}",
        describe(&out)
    );
    assert_eq!(code(&s.run(&["stop", id])), 0);
}

#[test]
fn orphans_are_kept_until_expiry_or_released_with_orphans() {
    let s = repo();
    let id = stdout(&s.run(&["warmup"])).trim().to_owned();
    std::fs::remove_file(s.state().join(format!("claims/{id}.json"))).unwrap();
    let out = s.run(&["cleanup", "--json"]);
    assert_eq!(
        action_of(&cleanup_json(&out), &id),
        "kept",
        "{}",
        describe(&out)
    );
    assert_eq!(s.lease_dirs().len(), 1);
    let dry = s.run(&["cleanup", "--orphans", "--dry-run", "--json"]);
    assert_eq!(action_of(&cleanup_json(&dry), &id), "released");
    assert_eq!(s.lease_dirs().len(), 1);
    let out = s.run(&["cleanup", "--orphans"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(s.lease_dirs().len(), 0);
}

#[test]
fn ten_runs_at_once_keep_their_claims_apart() {
    let s = repo();
    let children: Vec<_> = (0..10)
        .map(|i| {
            s.leasebox(&["run", "--keep", "--", "sh", "-c", &format!("echo {i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", describe(&out));
    }
    let all = s.claims();
    assert_eq!(all.len(), 10);
    let mut ids: Vec<_> = all
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    let list = s.run(&["list", "--json"]);
    assert!(stderr(&list).is_empty(), "{}", describe(&list));
    for id in ids {
        assert_eq!(code(&s.run(&["stop", &id])), 0);
    }
}

#[test]
fn a_job_deleted_behind_our_back_drops_its_claim() {
    let nomad = NomadServer::start_v1_1();
    let s = repo();
    let id = stdout(&nomad_run(&s, &nomad, &["warmup"]))
        .trim()
        .to_owned();
    let (status, _) = http(&nomad, "DELETE", &format!("/v1/job/{id}?purge=true"), "");
    assert_eq!(status, 200);
    let out = nomad_run(&s, &nomad, &["cleanup", "--json"]);
    assert_eq!(
        action_of(&cleanup_json(&out), &id),
        "dropped",
        "{}",
        describe(&out)
    );
    assert!(s.claims().is_empty());
    let reuse = nomad_run(&s, &nomad, &["run", "--lease", &id, "--", "true"]);
    assert_eq!(code(&reuse), 78, "{}", describe(&reuse));
}

fn set_meta(nomad: &NomadServer, id: &str, key: &str, value: &str) {
    let mut job = nomad.job("default", id).expect("job");
    job["Meta"][key] = serde_json::json!(value);
    let body = serde_json::json!({"Job": job}).to_string();
    let (status, text) = http(nomad, "PUT", "/v1/jobs", &body);
    assert_eq!(status, 200, "{text}");
}

#[test]
fn a_meta_that_disagrees_with_the_claim_is_refused_field_by_field() {
    for (key, value, field) in [
        ("leasebox.owner", "someone-else", "owner"),
        ("leasebox.lease_id", "lbx_000000000000", "lease id"),
        ("leasebox.scope", "0000", "scope"),
        ("leasebox.workdir", "/elsewhere", "workdir"),
        ("leasebox.managed", "false", "managed"),
    ] {
        let nomad = NomadServer::start_modern();
        let s = repo();
        let id = stdout(&nomad_run(&s, &nomad, &["warmup"]))
            .trim()
            .to_owned();
        set_meta(&nomad, &id, key, value);
        for args in [
            vec!["stop", id.as_str()],
            vec!["status", id.as_str()],
            vec!["run", "--lease", id.as_str(), "--", "true"],
        ] {
            let out = nomad_run(&s, &nomad, &args);
            assert_eq!(code(&out), 78, "{key}: {}", describe(&out));
            assert!(stderr(&out).contains(field), "{key}: {}", describe(&out));
        }
        let out = nomad_run(&s, &nomad, &["cleanup", "--orphans", "--json"]);
        assert_eq!(
            action_of(&cleanup_json(&out), &id),
            "skipped",
            "{key}: {}",
            describe(&out)
        );
        assert!(
            nomad.job("default", &id).is_some(),
            "{key}: the job was touched"
        );
    }
}

#[test]
fn a_foreign_job_with_look_alike_meta_is_never_touched() {
    let nomad = NomadServer::start_modern();
    let s = repo();
    // Learn our owner and scope from a real lease, then forge jobs around them.
    let id = stdout(&nomad_run(&s, &nomad, &["warmup"]))
        .trim()
        .to_owned();
    let ours = nomad.job("default", &id).unwrap();
    let owner = ours["Meta"]["leasebox.owner"].as_str().unwrap().to_owned();
    let scope = ours["Meta"]["leasebox.scope"].as_str().unwrap().to_owned();
    assert_eq!(code(&nomad_run(&s, &nomad, &["stop", &id])), 0);
    let forge = |job_id: &str, meta: serde_json::Value| {
        let job = serde_json::json!({"Job": {
            "ID": job_id, "Datacenters": ["dc1"], "Meta": meta,
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["600"]}}]}]}});
        let (status, text) = http(&nomad, "PUT", "/v1/jobs", &job.to_string());
        assert_eq!(status, 200, "{text}");
    };
    let past = "2000-01-01T00:00:00Z";
    forge(
        "lbx_aaaaaaaaaaaa",
        serde_json::json!({"leasebox.managed": "true", "leasebox.lease_id": "lbx_aaaaaaaaaaaa", "leasebox.owner": "someone-else", "leasebox.scope": scope, "leasebox.expires_at": past}),
    );
    forge(
        "lbx_bbbbbbbbbbbb",
        serde_json::json!({"leasebox.managed": "true", "leasebox.lease_id": "lbx_bbbbbbbbbbbb", "leasebox.owner": owner, "leasebox.scope": "another-cluster", "leasebox.expires_at": past}),
    );
    forge(
        "lbx_cccccccccccc",
        serde_json::json!({"leasebox.managed": "true", "leasebox.lease_id": "lbx_dddddddddddd", "leasebox.owner": owner, "leasebox.scope": scope, "leasebox.expires_at": past}),
    );
    forge(
        "lbx_eeeeeeeeeeee",
        serde_json::json!({"leasebox.owner": owner, "leasebox.scope": scope, "leasebox.lease_id": "lbx_eeeeeeeeeeee", "leasebox.expires_at": past}),
    );
    let out = nomad_run(&s, &nomad, &["cleanup", "--orphans", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    for job in [
        "lbx_aaaaaaaaaaaa",
        "lbx_bbbbbbbbbbbb",
        "lbx_cccccccccccc",
        "lbx_eeeeeeeeeeee",
    ] {
        assert!(
            nomad.job("default", job).is_some(),
            "{job} was touched: {}",
            describe(&out)
        );
    }
    // A real orphan of ours past its expiry is released.
    forge(
        "lbx_ffffffffffff",
        serde_json::json!({"leasebox.managed": "true", "leasebox.lease_id": "lbx_ffffffffffff", "leasebox.owner": owner, "leasebox.scope": scope, "leasebox.workdir": "/workspace/leasebox", "leasebox.expires_at": past}),
    );
    let out = nomad_run(&s, &nomad, &["cleanup", "--json"]);
    assert_eq!(
        action_of(&cleanup_json(&out), "lbx_ffffffffffff"),
        "released",
        "{}",
        describe(&out)
    );
    assert!(nomad.job("default", "lbx_ffffffffffff").is_none());
}

#[test]
fn kill_9_at_each_phase_then_cleanup_leaves_nothing() {
    for profile in [Profile::V1_1, Profile::Modern] {
        // During warmup: the allocation list answers slowly, so leasebox sits in readiness.
        let nomad = NomadServer::builder().profile(profile).start();
        nomad.add_latency("GET /v1/job/*/allocations", Duration::from_secs(3));
        let s = repo();
        let mut child = s
            .leasebox(&["run", "--", "true"])
            .env("NOMAD_ADDR", nomad.url())
            .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the job to be registered", || !nomad.jobs().is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(s.claims()[0]["state"], "registering");
        nomad.add_latency("GET /v1/job/*/allocations", Duration::ZERO);
        let out = nomad_run(&s, &nomad, &["cleanup", "--json"]);
        assert_eq!(code(&out), 0, "{profile:?}: {}", describe(&out));
        assert!(s.claims().is_empty(), "{}", describe(&out));
        assert!(nomad.jobs().is_empty(), "{:?}", nomad.jobs());

        // During a command.
        let pidfile = kill_9_mid_command(
            &s,
            &[
                ("NOMAD_ADDR", nomad.url()),
                ("LEASEBOX_NOMAD_DRIVER", "raw_exec".to_owned()),
            ],
        );
        let out = nomad_run(&s, &nomad, &["cleanup", "--json"]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
        assert!(s.claims().is_empty(), "{}", describe(&out));
        assert!(nomad.jobs().is_empty(), "{:?}", nomad.jobs());
        std::fs::remove_file(&pidfile).unwrap();
    }
}

#[test]
fn a_claim_that_changes_while_stop_waits_is_not_purged_on_stale_data() {
    let nomad = NomadServer::start_modern();
    let s = repo();
    let id = stdout(&nomad_run(&s, &nomad, &["warmup"]))
        .trim()
        .to_owned();
    // Another leasebox holds the claim's lock and is about to hand the lease elsewhere.
    let store = leasebox::ownership::ClaimStore::new(s.state().join("claims"));
    let lock = store.lock(&id).unwrap();
    let child = s
        .leasebox(&["stop", &id])
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let claim = lock.load().unwrap();
    lock.update(claim.revision, |c| c.owner = "new-owner".into())
        .unwrap();
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 78, "{}", describe(&out));
    assert!(stderr(&out).contains("owner"), "{}", describe(&out));
    assert!(
        nomad.job("default", &id).is_some(),
        "the job was purged on stale data"
    );
}
