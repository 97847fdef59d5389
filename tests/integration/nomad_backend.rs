//! The Nomad backend end to end: the real binary with `NOMAD_ADDR` pointing at the Nomad API
//! test server, in both version profiles, with the raw_exec driver.

use std::process::Output;

use crate::support::nomad::{AllocFailure, NomadServer, Profile};
use crate::support::{Scratch, code, describe, stderr, stdout};

fn repo() -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello from the repo\n");
    s.commit();
    s
}

/// Run leasebox against `nomad` with the raw_exec driver.
fn run(s: &Scratch, nomad: &NomadServer, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = s.leasebox(args);
    cmd.env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec");
    if let Some(t) = token {
        cmd.env("NOMAD_TOKEN", t);
    }
    cmd.output().expect("run leasebox")
}

fn no_jobs_left(nomad: &NomadServer) {
    let jobs = nomad.jobs();
    assert!(jobs.is_empty(), "jobs left behind: {jobs:?}");
}

fn no_claims_left(s: &Scratch) {
    let claims = s.claims();
    assert!(claims.is_empty(), "claims left behind: {claims:?}");
}

fn profiles() -> [NomadServer; 2] {
    [NomadServer::start_v1_1(), NomadServer::start_modern()]
}

#[test]
fn a_command_runs_with_its_exit_code_and_leaves_no_job() {
    for nomad in profiles() {
        let s = repo();
        let out = run(
            &s,
            &nomad,
            None,
            &[
                "run",
                "--",
                "sh",
                "-c",
                "cat hello.txt; echo err >&2; exit 3",
            ],
        );
        assert_eq!(code(&out), 3, "{:?}: {}", nomad.profile(), describe(&out));
        assert_eq!(stdout(&out), "hello from the repo\n", "{}", describe(&out));
        assert!(stderr(&out).contains("err\n"));
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn sync_fetch_and_a_kept_lease() {
    for nomad in profiles() {
        let s = repo();
        let out = run(&s, &nomad, None, &["warmup"]);
        assert_eq!(code(&out), 0, "{:?}: {}", nomad.profile(), describe(&out));
        let id = stdout(&out).trim().to_owned();
        let job = nomad.job("default", &id).expect("the job exists");
        assert_eq!(job["Meta"]["leasebox.managed"], "true");
        assert_eq!(job["Meta"]["leasebox.lease_id"], id.as_str());
        assert!(job["Datacenters"].as_array().is_some_and(|d| !d.is_empty()));

        let out = run(
            &s,
            &nomad,
            None,
            &[
                "run",
                "--lease",
                &id,
                "--fetch",
                "out",
                "--",
                "sh",
                "-c",
                "mkdir -p out && cp hello.txt out/copy && pwd",
            ],
        );
        assert_eq!(code(&out), 0, "{}", describe(&out));
        assert!(
            stdout(&out).trim().ends_with("/leasebox"),
            "{}",
            describe(&out)
        );
        assert_eq!(
            std::fs::read_to_string(s.repo().join("out/copy")).unwrap(),
            "hello from the repo\n"
        );
        let list = run(&s, &nomad, None, &["list", "--json"]);
        let items: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        assert_eq!(items[0]["remote"], "ready", "{}", describe(&list));

        let stop = run(&s, &nomad, None, &["stop", &id]);
        assert_eq!(code(&stop), 0, "{}", describe(&stop));
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn the_token_goes_only_to_the_configured_address_and_never_in_a_url() {
    for profile in [Profile::V1_1, Profile::Modern] {
        let nomad = NomadServer::builder().profile(profile).acl(true).start();
        let token = nomad.management_token();
        nomad.clear_requests();
        let s = repo();
        let out = run(&s, &nomad, Some(&token), &["run", "--", "true"]);
        assert_eq!(code(&out), 0, "{profile:?}: {}", describe(&out));
        let requests = nomad.requests();
        assert!(!requests.is_empty());
        for r in &requests {
            assert_eq!(
                r.header("X-Nomad-Token"),
                Some(token.as_str()),
                "{} {}",
                r.method,
                r.path
            );
            assert!(
                !r.query.contains(&token),
                "token in a URL: {}?{}",
                r.path,
                r.query
            );
            assert!(!r.path.contains(&token));
            assert!(r.header("Authorization").is_none());
        }
        assert!(!stderr(&out).contains(&token));
        assert!(!stdout(&out).contains(&token));
        no_jobs_left(&nomad);
    }
}

#[test]
fn a_forbidden_token_names_the_variable_and_capability() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .acl(true)
        .start();
    nomad.create_policy(
        "readonly",
        "namespace \"default\" { policy = \"read\" }\nnode { policy = \"read\" }",
    );
    let token = nomad.create_token("ro", &["readonly"]);
    let s = repo();
    let out = run(&s, &nomad, Some(&token), &["run", "--", "true"]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("NOMAD_TOKEN"), "{err}");
    assert!(err.contains("submit-job"), "{err}");
    assert!(!err.contains(&token));
    no_jobs_left(&nomad);
    no_claims_left(&s);
}

#[test]
fn an_unplaceable_job_reports_the_reason_and_leaves_nothing() {
    for nomad in profiles() {
        nomad.make_unplaceable("*", "${attr.kernel.name} = windows");
        let s = repo();
        let out = run(
            &s,
            &nomad,
            None,
            &["run", "--timing-json", "t.json", "--", "true"],
        );
        assert_eq!(code(&out), 75, "{:?}: {}", nomad.profile(), describe(&out));
        assert!(
            stderr(&out).contains("could not place"),
            "{}",
            describe(&out)
        );
        let timing: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.repo().join("t.json")).unwrap()).unwrap();
        assert_eq!(timing["error_kind"], "placement_failed");
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn an_unreachable_agent_is_named_with_its_source() {
    let s = repo();
    let out = s
        .leasebox(&["run", "--", "true"])
        .env("NOMAD_ADDR", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(code(&out), 75, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("http://127.0.0.1:1"), "{err}");
    assert!(err.contains("NOMAD_ADDR"), "{err}");
    no_claims_left(&s);
}

#[test]
fn a_dropped_websocket_is_recovered_from_the_box_record() {
    for nomad in profiles() {
        let s = repo();
        let out = run(&s, &nomad, None, &["warmup"]);
        let id = stdout(&out).trim().to_owned();
        // The next exec session drops after its first data frame; the command goes on.
        nomad.drop_next_exec(1);
        let out = run(
            &s,
            &nomad,
            None,
            &[
                "run",
                "--lease",
                &id,
                "--no-sync",
                "--",
                "sh",
                "-c",
                "echo one; sleep 1; echo two; exit 5",
            ],
        );
        assert_eq!(code(&out), 5, "{:?}: {}", nomad.profile(), describe(&out));
        assert_eq!(stdout(&out), "one\ntwo\n", "{}", describe(&out));
        assert_eq!(code(&run(&s, &nomad, None, &["stop", &id])), 0);
        no_jobs_left(&nomad);
    }
}

#[test]
fn http_500s_during_warmup_leave_nothing() {
    for nomad in profiles() {
        nomad.fail_http("GET /v1/job/*/allocations", 1, 100);
        let s = repo();
        let out = run(&s, &nomad, None, &["run", "--", "true"]);
        assert_eq!(code(&out), 75, "{:?}: {}", nomad.profile(), describe(&out));
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn a_failed_allocation_is_reported() {
    let nomad = NomadServer::start_modern();
    nomad.fail_next_allocation(AllocFailure::Fail);
    let s = repo();
    let out = run(&s, &nomad, None, &["run", "--", "true"]);
    assert_eq!(code(&out), 75, "{}", describe(&out));
    no_jobs_left(&nomad);
    no_claims_left(&s);
}

fn doctor(
    s: &Scratch,
    nomad: &NomadServer,
    token: Option<&str>,
) -> (i32, serde_json::Value, Output) {
    let out = run(s, nomad, token, &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    // One object, success or not: the checks, the error kind and the exit code.
    assert_eq!(report["exit_code"], code(&out), "{}", describe(&out));
    if code(&out) == 0 {
        assert!(report["error_kind"].is_null(), "{report}");
    } else {
        assert!(report["error_kind"].is_string(), "{report}");
        assert!(report["message"].is_string(), "{report}");
    }
    (code(&out), report["checks"].clone(), out)
}

fn status_of<'a>(checks: &'a serde_json::Value, name: &str) -> &'a str {
    checks
        .as_array()
        .and_then(|a| a.iter().find(|c| c["check"] == name))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("missing")
}

#[test]
fn doctor_passes_on_a_healthy_cluster_in_both_profiles() {
    for nomad in profiles() {
        let s = repo();
        let (code, checks, out) = doctor(&s, &nomad, None);
        assert_eq!(code, 0, "{:?}: {}", nomad.profile(), describe(&out));
        for name in [
            "address",
            "reachable",
            "auth",
            "region",
            "namespace",
            "driver",
            "exec",
        ] {
            assert_eq!(status_of(&checks, name), "ok", "{name}: {}", describe(&out));
        }
        // Read-only: nothing was registered.
        no_jobs_left(&nomad);
        assert!(
            nomad.requests().iter().all(|r| r.method == "GET"),
            "doctor wrote something"
        );
    }
}

#[test]
fn doctor_names_what_is_wrong() {
    for profile in [Profile::V1_1, Profile::Modern] {
        let nomad = NomadServer::builder().profile(profile).acl(true).start();
        let s = repo();
        let (code, checks, out) = doctor(&s, &nomad, None);
        let auth = status_of(&checks, "auth");
        assert!(
            auth == "fail" || auth == "warn",
            "{profile:?}: {}",
            describe(&out)
        );
        if auth == "fail" {
            assert_eq!(code, 78, "{}", describe(&out));
        }
        nomad.create_policy("runner", "namespace \"default\" { policy = \"read\" capabilities = [\"submit-job\", \"alloc-exec\"] }\nnode { policy = \"read\" }");
        let token = nomad.create_token("runner", &["runner"]);
        let (_, checks, out) = doctor(&s, &nomad, Some(&token));
        assert_eq!(status_of(&checks, "auth"), "ok", "{}", describe(&out));
        // raw_exec needs alloc-node-exec too, which this policy lacks.
        assert_ne!(status_of(&checks, "exec"), "ok", "{}", describe(&out));
        assert!(!stdout(&out).contains(&token));
    }
    let s = repo();
    let out = s
        .leasebox(&["doctor"])
        .env("NOMAD_ADDR", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(code(&out), 75, "{}", describe(&out));
    assert!(
        stdout(&out).contains("FAIL  reachable"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_unix_socket_address_works() {
    let nomad = NomadServer::builder()
        .profile(Profile::Modern)
        .unix_socket(true)
        .start();
    let unix = nomad.unix_url().expect("a unix socket");
    let s = repo();
    let out = s
        .leasebox(&["run", "--", "sh", "-c", "cat hello.txt; exit 2"])
        .env("NOMAD_ADDR", &unix)
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from the repo\n");
    no_jobs_left(&nomad);
    for bad in ["unix://relative.sock", "unix://host/x.sock"] {
        let out = s
            .leasebox(&["run", "--", "true"])
            .env("NOMAD_ADDR", bad)
            .output()
            .unwrap();
        assert_eq!(code(&out), 78, "{bad}: {}", describe(&out));
        assert!(stderr(&out).contains("absolute path"), "{}", describe(&out));
    }
}

#[test]
fn every_recipe_in_recipes_runs_on_nomad() {
    let s = Scratch::new();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let copied = std::process::Command::new("cp")
        .arg("-R")
        .arg(&source)
        .arg(s.repo().join("recipes"))
        .status()
        .unwrap();
    assert!(copied.success());
    s.write(".gitignore", "target/\n");
    s.commit();
    let mut names: Vec<String> = std::fs::read_dir(&source)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".lua")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    for nomad in profiles() {
        for name in &names {
            let out = run(&s, &nomad, None, &["run", name]);
            assert_eq!(
                code(&out),
                0,
                "{:?} recipe {name}: {}",
                nomad.profile(),
                describe(&out)
            );
        }
        assert!(s.repo().join("target/hello/report.txt").exists());
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

/// A loopback HTTP server that answers every request with a redirect to `location(path)`,
/// counting connections; it stops when the test ends.
fn redirecting_server(
    location: impl Fn(&str) -> String + Send + 'static,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for conn in listener.incoming().take(200) {
            let Ok(mut conn) = conn else { return };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                conn,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                location(&path)
            );
        }
    });
    (addr, count)
}

#[test]
fn redirects_to_another_origin_are_not_followed_and_not_shown() {
    let (elsewhere, elsewhere_hits) = redirecting_server(|_| "http://127.0.0.1:9/".to_owned());
    let target = format!("http://{elsewhere}/secret-path-xyz");
    let (addr, _) = redirecting_server(move |_| target.clone());
    let s = repo();
    let out = s
        .leasebox(&["run", "--", "true"])
        .env("NOMAD_ADDR", format!("http://{addr}"))
        .env("NOMAD_TOKEN", "tok-should-stay-home")
        .output()
        .unwrap();
    assert_eq!(code(&out), 75, "{}", describe(&out));
    assert_eq!(elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let err = stderr(&out);
    assert!(err.contains("redirect"), "{err}");
    assert!(
        !err.contains("secret-path-xyz"),
        "the Location leaked: {err}"
    );
    assert!(!err.contains("tok-should-stay-home"));
    no_claims_left(&s);
}

#[test]
fn a_same_origin_redirect_loop_stops_after_ten() {
    let port = std::sync::Arc::new(std::sync::Mutex::new(0u16));
    let p = std::sync::Arc::clone(&port);
    let (addr, hits) =
        redirecting_server(move |path| format!("http://127.0.0.1:{}{path}", p.lock().unwrap()));
    *port.lock().unwrap() = addr.port();
    let s = repo();
    let out = s
        .leasebox(&["run", "--", "true"])
        .env("NOMAD_ADDR", format!("http://{addr}"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 75, "{}", describe(&out));
    assert!(stderr(&out).contains("redirect"), "{}", describe(&out));
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) <= 12);
}

#[test]
fn a_failed_allocation_replaced_in_time_still_gives_a_lease() {
    let nomad = NomadServer::start_v1_1();
    nomad.fail_next_allocation(AllocFailure::FailAndReplace);
    let s = repo();
    let out = run(&s, &nomad, None, &["run", "--", "sh", "-c", "exit 6"]);
    // The allocation dies right after it was seen running and is replaced: the replacement is
    // used, the command runs, and the failed one leaves nothing behind.
    assert_eq!(code(&out), 6, "{}", describe(&out));
    no_jobs_left(&nomad);
    no_claims_left(&s);
}

#[test]
fn a_server_that_stops_answering_is_a_transport_error_and_ctrl_c_still_works() {
    let nomad = NomadServer::start_modern();
    nomad.set_unresponsive(true);
    let s = repo();
    let child = s
        .leasebox(&["run", "--", "true"])
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "Ctrl-C took too long"
    );
    // Whatever is left is resolved once the server answers again.
    nomad.set_unresponsive(false);
    let cleaned = run(&s, &nomad, None, &["cleanup"]);
    assert_eq!(code(&cleaned), 0, "{}", describe(&cleaned));
    no_claims_left(&s);
    no_jobs_left(&nomad);

    // Without Ctrl-C, the request deadline turns the silence into a transport error.
    nomad.set_unresponsive(true);
    let out = run(&s, &nomad, None, &["run", "--", "true"]);
    assert_eq!(code(&out), 75, "{}", describe(&out));
    assert!(
        stderr(&out).contains("did not answer in time"),
        "{}",
        describe(&out)
    );
    nomad.set_unresponsive(false);
    let cleaned = run(&s, &nomad, None, &["cleanup"]);
    assert_eq!(code(&cleaned), 0, "{}", describe(&cleaned));
    no_claims_left(&s);
    no_jobs_left(&nomad);
}

/// A server with ACLs on, the `exec` driver healthy beside `raw_exec`, and a token whose
/// policy is `capabilities` on namespace `default` (plus `node:read`).
fn acl_server(profile: Profile, capabilities: &[&str]) -> (NomadServer, String) {
    let nomad = NomadServer::builder()
        .profile(profile)
        .acl(true)
        .driver("exec", crate::support::nomad::DriverHealth::Healthy)
        .start();
    let caps: Vec<String> = capabilities.iter().map(|c| format!("\"{c}\"")).collect();
    nomad.create_policy(
        "runner",
        &format!(
            "namespace \"default\" {{ policy = \"read\" capabilities = [{}] }}\nnode {{ policy = \"read\" }}",
            caps.join(", ")
        ),
    );
    let token = nomad.create_token("runner", &["runner"]);
    (nomad, token)
}

#[test]
fn an_exec_without_the_capability_is_permission_denied_naming_it() {
    for profile in [Profile::V1_1, Profile::Modern] {
        // (driver, the token's capabilities, the one it lacks)
        for (driver, caps, missing) in [
            ("exec", &["submit-job"][..], "alloc-exec"),
            (
                "raw_exec",
                &["submit-job", "alloc-exec"][..],
                "alloc-node-exec",
            ),
        ] {
            let (nomad, token) = acl_server(profile, caps);
            let s = repo();
            let timing = s.path().join("t.json");
            let mut cmd = s.leasebox(&[
                "run",
                "--timing-json",
                timing.to_str().unwrap(),
                "--",
                "true",
            ]);
            cmd.env("NOMAD_ADDR", nomad.url())
                .env("NOMAD_TOKEN", &token)
                .env("LEASEBOX_NOMAD_DRIVER", driver);
            if driver == "exec" {
                // Never the host's /workspace, whatever happens.
                cmd.env(
                    "LEASEBOX_NOMAD_WORKDIR",
                    s.path().join("box").to_str().unwrap(),
                );
            }
            let out = cmd.output().unwrap();
            let what = format!("{profile:?} {driver}");
            assert_eq!(code(&out), 78, "{what}: {}", describe(&out));
            let err = stderr(&out);
            assert!(
                err.contains("`Permission denied`")
                    && err.contains(&format!("lacks the `{missing}` capability"))
                    && err.contains(&format!("the `{driver}` driver needs"))
                    && err.contains("the token in `NOMAD_TOKEN`"),
                "{what}: {err}"
            );
            assert!(!err.contains("try again later"), "{what}: {err}");
            assert!(!err.contains(&token), "{what}: the token leaked");
            let t: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&timing).unwrap()).unwrap();
            assert_eq!(t["error_kind"], "permission_denied", "{what}: {t}");
            // The failed warmup is a phase of its own, with its error kind.
            let warmup = t["phases"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == "warmup"))
                .unwrap_or_else(|| panic!("{what}: no warmup phase: {t}"));
            assert_eq!(warmup["status"], "errored", "{what}: {t}");
            assert_eq!(warmup["error_kind"], "permission_denied", "{what}: {t}");
            no_jobs_left(&nomad);
            no_claims_left(&s);
        }
    }
}

#[test]
fn run_names_an_unknown_token_and_leads_with_a_missing_one() {
    for profile in [Profile::V1_1, Profile::Modern] {
        let (nomad, _token) = acl_server(profile, &["submit-job", "alloc-exec", "alloc-node-exec"]);
        let s = repo();
        let out = run(
            &s,
            &nomad,
            Some("00000000-1111-2222-3333-444444444444"),
            &["run", "--", "true"],
        );
        assert_eq!(code(&out), 78, "{profile:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("`ACL token not found`") && err.contains("`NOMAD_TOKEN`"),
            "{profile:?}: {err}"
        );
        assert!(!err.contains("lacks"), "{profile:?}: {err}");
        assert!(!err.contains("00000000-1111"), "the token leaked: {err}");

        let out = run(&s, &nomad, None, &["run", "--", "true"]);
        assert_eq!(code(&out), 78, "{profile:?}: {}", describe(&out));
        let err = stderr(&out);
        let message = err
            .lines()
            .find(|l| l.contains("leasebox:") || l.contains("error"))
            .unwrap_or(&err);
        let token_at = message.find("no token is set (`NOMAD_TOKEN`");
        assert!(token_at.is_some(), "{profile:?}: {err}");
        if let Some(dcs) = message.find("nomad.datacenters") {
            assert!(
                token_at.unwrap() < dcs,
                "{profile:?}: lead with the token: {err}"
            );
        }
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn doctor_says_why_the_namespace_list_is_empty_and_names_one_capability() {
    for profile in [Profile::V1_1, Profile::Modern] {
        let (nomad, token) = acl_server(profile, &["submit-job", "alloc-exec"]);
        let s = repo();
        let (_, checks, out) = doctor(&s, &nomad, None);
        let ns = checks
            .as_array()
            .and_then(|a| a.iter().find(|c| c["check"] == "namespace"))
            .cloned()
            .unwrap_or_default();
        let detail = ns["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("the namespace list could not be read")
                && detail.contains("no token in `NOMAD_TOKEN`"),
            "{profile:?}: {}",
            describe(&out)
        );
        assert!(!detail.contains("does not exist"), "{detail}");

        let (_, checks, out) = doctor(&s, &nomad, Some(&token));
        assert_eq!(status_of(&checks, "namespace"), "ok", "{}", describe(&out));
        let exec = checks
            .as_array()
            .and_then(|a| a.iter().find(|c| c["check"] == "exec"))
            .cloned()
            .unwrap_or_default();
        let detail = exec["detail"].as_str().unwrap_or_default();
        assert_eq!(exec["status"], "fail", "{}", describe(&out));
        assert!(detail.contains("`alloc-node-exec`"), "{detail}");
        assert!(
            !detail.contains("`alloc-exec`"),
            "only the missing one: {detail}"
        );
    }
}
