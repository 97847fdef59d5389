//! Jobspec templates (`nomad.jobspec_template`) end to end: the real binary against the Nomad
//! API test server in both version profiles, with the raw_exec driver; `.json` templates
//! rendered by leasebox, `.hcl` templates through the agent's `/v1/jobs/parse`.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::support::nomad::NomadServer;
use crate::support::{Scratch, code, describe, stderr, stdout};

/// An owner with quotes, backslashes and template sequences, to prove the escaping.
const AWKWARD_OWNER: &str = r#"o"w\n${er}x$"#;

const JSON_TEMPLATE: &str = r#"{"Job": {
  "ID": "{{lease_id}}",
  "Name": "{{job_id}}",
  "Type": "service",
  "Meta": {"note": "{{owner}}", "leasebox.owner": "{{owner}}", "where": "{{workdir}}"},
  "TaskGroups": [{
    "Name": "box",
    "Count": 1,
    "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
    "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
    "Tasks": [{
      "Name": "{{task}}",
      "Driver": "raw_exec",
      "Config": {"command": "/bin/sh", "args": ["-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]},
      "Env": {"LEASE_OWNER": "{{owner}}", "LEASE_SCOPE": "{{scope}}"},
      "Resources": {"CPU": 100, "MemoryMB": 64}
    }]
  }]
}}
"#;

const HCL_TEMPLATE: &str = r#"# A lease job for leasebox.
job "{{lease_id}}" {
  type = "service"
  meta = {
    "note" = "{{owner}}"
    "leasebox.workdir" = "{{workdir}}"
    "where" = "{{workdir}}"
  }

  group "box" {
    count = 1
    restart {
      attempts = 0
      mode = "fail"
    }
    reschedule {
      attempts = 0
      unlimited = false
    }
    task "{{task}}" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args = ["-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
      }
      env {
        LEASE_OWNER = "{{owner}}"
      }
      resources {
        cpu = 100
        memory = 64
      }
    }
  }
}
"#;

fn repo() -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello from the repo\n");
    s.commit();
    s
}

/// Write a template beside the repository (not in it) and return its path.
fn template(s: &Scratch, name: &str, text: &str) -> PathBuf {
    let path = s.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Run leasebox against `nomad` with the raw_exec driver and the template given by
/// `LEASEBOX_NOMAD_JOBSPEC_TEMPLATE`.
fn run(s: &Scratch, nomad: &NomadServer, template: &PathBuf, args: &[&str]) -> Output {
    s.leasebox(args)
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .env("LEASEBOX_NOMAD_JOBSPEC_TEMPLATE", template)
        .env("LEASEBOX_OWNER", AWKWARD_OWNER)
        .output()
        .expect("run leasebox")
}

fn profiles() -> [NomadServer; 2] {
    [NomadServer::start_v1_1(), NomadServer::start_modern()]
}

fn no_jobs_left(nomad: &NomadServer) {
    let jobs = nomad.jobs();
    assert!(jobs.is_empty(), "jobs left behind: {jobs:?}");
}

fn no_claims_left(s: &Scratch) {
    let claims = s.claims();
    assert!(claims.is_empty(), "claims left behind: {claims:?}");
}

/// The jobs leasebox asked the agent to register.
fn registered(nomad: &NomadServer) -> Vec<Value> {
    nomad
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == "/v1/jobs")
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["Job"].clone())
        .collect()
}

fn parse_calls(nomad: &NomadServer) -> usize {
    nomad
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/jobs/parse")
        .count()
}

#[test]
fn json_and_hcl_templates_run_end_to_end() {
    for nomad in profiles() {
        for (name, text) in [("lease.json", JSON_TEMPLATE), ("lease.hcl", HCL_TEMPLATE)] {
            nomad.clear_requests();
            let s = repo();
            let path = template(&s, name, text);
            let out = run(
                &s,
                &nomad,
                &path,
                &["run", "--", "sh", "-c", "cat hello.txt; exit 3"],
            );
            let what = format!("{:?} {name}", nomad.profile());
            assert_eq!(code(&out), 3, "{what}: {}", describe(&out));
            assert_eq!(stdout(&out), "hello from the repo\n", "{what}");
            let jobs = registered(&nomad);
            assert_eq!(jobs.len(), 1, "{what}");
            // The template's job, completed by leasebox.
            assert_eq!(jobs[0]["TaskGroups"][0]["Name"], "box", "{what}");
            assert_eq!(jobs[0]["Meta"]["leasebox.managed"], "true", "{what}");
            assert!(
                jobs[0]["Datacenters"]
                    .as_array()
                    .is_some_and(|d| !d.is_empty()),
                "{what}: datacenters are always sent"
            );
            let expect_parse = usize::from(name.ends_with(".hcl"));
            assert_eq!(parse_calls(&nomad), expect_parse, "{what}");
            no_jobs_left(&nomad);
            no_claims_left(&s);
        }
    }
}

#[test]
fn the_flag_and_a_config_file_name_the_template_too() {
    let nomad = NomadServer::start_modern();
    let s = repo();
    let path = template(&s, "flag.hcl", HCL_TEMPLATE);
    let out = s
        .leasebox(&[
            "run",
            "--nomad-jobspec-template",
            path.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "exit 4",
        ])
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", describe(&out));
    assert_eq!(parse_calls(&nomad), 1);
    // In the user config, a relative path is relative to the config file.
    let dir = s.path().join("config/leasebox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lease.json"), JSON_TEMPLATE).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[nomad]\njobspec_template = \"lease.json\"\n",
    )
    .unwrap();
    nomad.clear_requests();
    let out = s
        .leasebox(&["run", "--", "sh", "-c", "exit 5"])
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", describe(&out));
    assert_eq!(registered(&nomad)[0]["TaskGroups"][0]["Name"], "box");
    no_jobs_left(&nomad);
    no_claims_left(&s);
}

#[test]
fn quotes_backslashes_and_sequences_survive_escaping() {
    for nomad in profiles() {
        for (name, text) in [("lease.json", JSON_TEMPLATE), ("lease.hcl", HCL_TEMPLATE)] {
            let s = repo();
            let path = template(&s, name, text);
            let out = run(&s, &nomad, &path, &["warmup"]);
            let what = format!("{:?} {name}", nomad.profile());
            assert_eq!(code(&out), 0, "{what}: {}", describe(&out));
            let id = stdout(&out).trim().to_owned();
            let job = nomad.job("default", &id).expect("the job exists");
            let meta = &job["Meta"];
            assert_eq!(meta["note"], AWKWARD_OWNER, "{what}: {job}");
            assert_eq!(meta["leasebox.owner"], AWKWARD_OWNER, "{what}");
            assert_eq!(meta["leasebox.lease_id"], id.as_str(), "{what}");
            // `${NOMAD_ALLOC_DIR}` stays a literal for the client to interpolate.
            assert_eq!(meta["where"], "${NOMAD_ALLOC_DIR}/leasebox", "{what}");
            assert_eq!(meta["leasebox.workdir"], "${NOMAD_ALLOC_DIR}/leasebox");
            let task = &job["TaskGroups"][0]["Tasks"][0];
            assert_eq!(task["Name"], "leasebox", "{what}");
            assert_eq!(task["Env"]["LEASE_OWNER"], AWKWARD_OWNER, "{what}");
            // The lease works: its workdir resolved inside the allocation.
            let out = run(
                &s,
                &nomad,
                &path,
                &["run", "--lease", &id, "--", "sh", "-c", "cat hello.txt"],
            );
            assert_eq!(code(&out), 0, "{what}: {}", describe(&out));
            assert_eq!(stdout(&out), "hello from the repo\n");
            let out = run(&s, &nomad, &path, &["stop", &id]);
            assert_eq!(code(&out), 0, "{what}: {}", describe(&out));
            no_jobs_left(&nomad);
            no_claims_left(&s);
        }
    }
}

#[test]
fn a_template_with_the_wrong_id_task_or_meta_is_refused_before_registering() {
    let cases = [
        (
            "id.json",
            JSON_TEMPLATE.replace("\"ID\": \"{{lease_id}}\"", "\"ID\": \"my-box\""),
            "the job ID is `my-box`, but it must be the lease id",
        ),
        (
            "task.json",
            JSON_TEMPLATE.replace("\"Name\": \"{{task}}\"", "\"Name\": \"main\""),
            "no task named `leasebox`",
        ),
        (
            "meta.json",
            JSON_TEMPLATE.replace(
                "\"leasebox.owner\": \"{{owner}}\"",
                "\"leasebox.owner\": \"someone-else\"",
            ),
            "Meta `leasebox.owner` is `someone-else`",
        ),
        (
            "id.hcl",
            HCL_TEMPLATE.replace("job \"{{lease_id}}\"", "job \"my-box\""),
            "the job ID is `my-box`",
        ),
        (
            "task.hcl",
            HCL_TEMPLATE.replace("task \"{{task}}\"", "task \"main\""),
            "no task named `leasebox`",
        ),
        (
            "meta.hcl",
            HCL_TEMPLATE.replace(
                "\"leasebox.workdir\" = \"{{workdir}}\"",
                "\"leasebox.workdir\" = \"/elsewhere\"",
            ),
            "Meta `leasebox.workdir` is `/elsewhere`",
        ),
    ];
    for nomad in profiles() {
        for (name, text, want) in &cases {
            nomad.clear_requests();
            let s = repo();
            let path = template(&s, name, text);
            let out = run(&s, &nomad, &path, &["run", "--", "true"]);
            let what = format!("{:?} {name}", nomad.profile());
            assert_eq!(code(&out), 78, "{what}: {}", describe(&out));
            let err = stderr(&out);
            assert!(err.contains(want), "{what}: {err}");
            assert!(err.contains(&format!("{name}:")), "{what}: {err}");
            assert!(registered(&nomad).is_empty(), "{what}: registered");
            no_jobs_left(&nomad);
            no_claims_left(&s);
        }
    }
}

#[test]
fn a_placeholder_outside_a_string_is_named_with_file_and_line() {
    let nomad = NomadServer::start_v1_1();
    for (name, text, want) in [
        (
            "bare.json",
            JSON_TEMPLATE.replace("\"{{lease_id}}\"", "{{lease_id}}"),
            "bare.json:2: the placeholder `{{lease_id}}` is outside a string literal",
        ),
        (
            "bare.hcl",
            HCL_TEMPLATE.replace("count = 1", "count = {{task}}"),
            "bare.hcl:11: the placeholder `{{task}}` is outside a string literal",
        ),
        (
            "unknown.hcl",
            HCL_TEMPLATE.replace("\"{{owner}}\"", "\"{{ownr}}\""),
            "unknown.hcl:5: unknown placeholder `{{ownr}}`; did you mean `{{owner}}`?",
        ),
    ] {
        nomad.clear_requests();
        let s = repo();
        let path = template(&s, name, &text);
        let out = run(&s, &nomad, &path, &["run", "--", "true"]);
        assert_eq!(code(&out), 78, "{name}: {}", describe(&out));
        assert!(stderr(&out).contains(want), "{name}: {}", describe(&out));
        // Refused before anything reached the agent.
        assert_eq!(parse_calls(&nomad), 0, "{name}");
        assert!(registered(&nomad).is_empty(), "{name}");
        no_claims_left(&s);
    }
    no_jobs_left(&nomad);
}

#[test]
fn bad_hcl_gives_the_agents_parser_message() {
    for nomad in profiles() {
        let s = repo();
        let path = template(
            &s,
            "broken.hcl",
            &HCL_TEMPLATE.replace("count = 1", "count = "),
        );
        let out = run(&s, &nomad, &path, &["run", "--", "true"]);
        let what = format!("{:?}", nomad.profile());
        assert_eq!(code(&out), 78, "{what}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("broken.hcl: Nomad could not parse it"),
            "{what}: {err}"
        );
        // The agent's own diagnostic, with the template's line.
        assert!(
            err.contains("input.hcl:11,") && err.contains("Invalid expression"),
            "{what}: {err}"
        );
        assert_eq!(parse_calls(&nomad), 1);
        assert!(registered(&nomad).is_empty(), "{what}");
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn a_template_job_that_fails_after_registering_is_purged() {
    for nomad in profiles() {
        let s = repo();
        // The agent accepts this job, but its task cannot start.
        let path = template(
            &s,
            "nostart.json",
            &JSON_TEMPLATE.replace("\"command\": \"/bin/sh\"", "\"command\": \"/no/such/sh\""),
        );
        let out = run(&s, &nomad, &path, &["run", "--", "true"]);
        assert_eq!(code(&out), 75, "{:?}: {}", nomad.profile(), describe(&out));
        assert_eq!(registered(&nomad).len(), 1);
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn a_missing_or_misnamed_template_is_a_config_error() {
    let nomad = NomadServer::start_modern();
    let s = repo();
    let missing = s.path().join("missing.json");
    let misnamed = template(&s, "lease.nomad", HCL_TEMPLATE);
    for (path, want) in [
        (missing, "missing.json: cannot read it"),
        (
            misnamed,
            "lease.nomad: the file name must end in `.json` or `.hcl`",
        ),
    ] {
        let out = run(&s, &nomad, &path, &["run", "--", "true"]);
        assert_eq!(code(&out), 78, "{}", describe(&out));
        assert!(stderr(&out).contains(want), "{}", describe(&out));
    }
    assert!(nomad.requests().iter().all(|r| r.method == "GET"));
    no_jobs_left(&nomad);
    no_claims_left(&s);
}

#[test]
fn a_token_that_cannot_parse_is_named_with_the_capability() {
    let nomad = NomadServer::builder()
        .profile(crate::support::nomad::Profile::V1_1)
        .acl(true)
        .start();
    // The `read` policy grants `parse-job`: give only what lists and reads jobs.
    nomad.create_policy(
        "reader",
        "namespace \"default\" { capabilities = [\"list-jobs\", \"read-job\"] }\nnode { policy = \"read\" }",
    );
    let token = nomad.create_token("reader", &["reader"]);
    let s = repo();
    let path = template(&s, "lease.hcl", HCL_TEMPLATE);
    let out = s
        .leasebox(&["run", "--", "true"])
        .env("NOMAD_ADDR", nomad.url())
        .env("NOMAD_TOKEN", &token)
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .env("LEASEBOX_NOMAD_JOBSPEC_TEMPLATE", &path)
        .output()
        .unwrap();
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("parsing the jobspec template"), "{err}");
    assert!(err.contains("`parse-job` or `submit-job`"), "{err}");
    assert!(
        err.contains("NOMAD_TOKEN") && !err.contains(&token),
        "{err}"
    );
    no_jobs_left(&nomad);
    no_claims_left(&s);
}

/// A repository whose `.leasebox.toml` sets `driver` and names `tmpl.hcl`, whose task uses
/// `template_driver`.
fn trusted_template_repo(driver: &str, template_driver: &str) -> Scratch {
    let s = repo();
    s.write(
        ".leasebox.toml",
        &format!("[nomad]\ndriver = \"{driver}\"\njobspec_template = \"tmpl.hcl\"\n"),
    );
    s.write(
        "tmpl.hcl",
        &HCL_TEMPLATE.replace(
            "driver = \"raw_exec\"",
            &format!("driver = \"{template_driver}\""),
        ),
    );
    s.commit();
    s
}

fn run_in_repo(s: &Scratch, nomad: &NomadServer, args: &[&str]) -> Output {
    s.leasebox(args)
        .env("NOMAD_ADDR", nomad.url())
        .output()
        .expect("run leasebox")
}

#[test]
fn a_trusted_template_is_pinned_and_an_edit_lapses_the_trust() {
    for nomad in profiles() {
        let s = trusted_template_repo("raw_exec", "raw_exec");
        let out = s.run(&["trust"]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
        let template = s.repo().canonicalize().unwrap().join("tmpl.hcl");
        let shown = stdout(&out);
        assert!(
            shown.contains("files it makes leasebox read, pinned with it:")
                && shown.contains(&template.display().to_string())
                && shown.contains("nomad.jobspec_template"),
            "{shown}"
        );
        let out = s.run(&["trust", "--list", "--json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list[0]["state"], "trusted", "{list}");
        assert_eq!(list[0]["files"][0]["key"], "nomad.jobspec_template");
        assert_eq!(
            list[0]["files"][0]["path"],
            template.display().to_string().as_str()
        );
        assert!(
            stdout(&s.run(&["trust", "--list"])).contains(&format!("pins {}", template.display()))
        );

        let out = run_in_repo(&s, &nomad, &["run", "--", "sh", "-c", "exit 6"]);
        assert_eq!(code(&out), 6, "{:?}: {}", nomad.profile(), describe(&out));
        assert_eq!(
            registered(&nomad)[0]["TaskGroups"][0]["Tasks"][0]["Driver"],
            "raw_exec"
        );

        // Only the template changes: the trust lapses, naming the file; nothing is sent.
        s.write(
            "tmpl.hcl",
            &HCL_TEMPLATE.replace("driver = \"raw_exec\"", "driver = \"exec\""),
        );
        nomad.clear_requests();
        for args in [&["run", "--", "true"][..], &["config", "--explain"][..]] {
            let out = run_in_repo(&s, &nomad, args);
            assert_eq!(code(&out), 78, "{args:?}: {}", describe(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!(
                    "{} (named by `nomad.jobspec_template`) changed since you trusted it",
                    template.display()
                )) && err.contains("leasebox trust"),
                "{err}"
            );
        }
        assert!(nomad.requests().is_empty(), "a lapsed trust sends nothing");
        let out = s.run(&["trust", "--list", "--json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list[0]["state"], "file changed", "{list}");

        // Trusted again, the template's driver disagrees with `nomad.driver`: refused before
        // registering, naming both drivers and the file.
        assert_eq!(code(&s.run(&["trust"])), 0);
        let out = run_in_repo(&s, &nomad, &["run", "--", "true"]);
        assert_eq!(code(&out), 78, "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("tmpl.hcl")
                && err.contains("uses the driver `exec`, but `nomad.driver` is `raw_exec`"),
            "{err}"
        );
        assert!(registered(&nomad).is_empty(), "nothing was registered");
        no_jobs_left(&nomad);
        no_claims_left(&s);
    }
}

#[test]
fn a_template_outside_the_repository_cannot_be_trusted() {
    let s = repo();
    std::fs::write(s.path().join("outside.hcl"), HCL_TEMPLATE).unwrap();
    s.write(
        ".leasebox.toml",
        "[nomad]\njobspec_template = \"../outside.hcl\"\n",
    );
    s.commit();
    for args in [&["trust"][..], &["config"][..]] {
        let out = s.run(args);
        assert_eq!(code(&out), 78, "{args:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("`nomad.jobspec_template`")
                && err.contains("names `../outside.hcl`")
                && err.contains("outside the repository root"),
            "{err}"
        );
    }
    let list: Value =
        serde_json::from_slice(&s.run(&["trust", "--list", "--json"]).stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn a_template_whose_driver_is_not_nomad_driver_is_refused_before_registering() {
    let nomad = NomadServer::start_v1_1();
    let s = repo();
    let json = template(
        &s,
        "lease.json",
        &JSON_TEMPLATE.replace("\"raw_exec\"", "\"exec\""),
    );
    let out = run(&s, &nomad, &json, &["run", "--", "true"]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("lease.json")
            && err.contains(
                "the task `leasebox` uses the driver `exec`, but `nomad.driver` is `raw_exec`"
            ),
        "{err}"
    );
    assert!(registered(&nomad).is_empty());
    no_jobs_left(&nomad);
    no_claims_left(&s);
}
