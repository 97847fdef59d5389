//! The `--events` stream and the closing summary of real runs on the local backend: every
//! record of a passing and a failing run is valid against `docs/events.schema.json` (checked
//! with the `jsonschema` crate), the records tell the run in order, `--events -` moves the
//! command's stdout to stderr, and the summary names each step, the parallel group, the step
//! that gave the exit code and the lease's fate.

use serde_json::Value;

use crate::support::{Scratch, code, describe, stderr, stdout};

const RECIPE: &str = r#"return require("leasebox").recipe {
  steps = {
    { "build", "echo building" },
    { "checks", parallel = {
      { "lint", "echo linting" },
      { "unit", "echo testing; exit $UNIT_CODE" },
    } },
    { "deploy", "echo deploying > out.txt" },
  },
  env = { UNIT_CODE = require("leasebox").args.unit or "0" },
  artifacts = { "out.txt" },
}
"#;

/// The schema, compiled.
pub fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json");
    let text = std::fs::read_to_string(path).expect("docs/events.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// Parse an NDJSON stream and validate every record, failing with the record and the errors.
pub fn validated(text: &str) -> Vec<Value> {
    let validator = schema();
    let mut records = Vec::new();
    for line in text.lines() {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        let errors: Vec<String> = validator
            .iter_errors(&record)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{line}\nis not valid: {errors:#?}");
        records.push(record);
    }
    assert!(!records.is_empty(), "no events");
    records
}

/// The kinds of the records, in order.
pub fn kinds(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["event"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn repo() -> Scratch {
    let s = Scratch::new();
    s.write(".leasebox/recipes/ci.lua", RECIPE);
    s.write(".gitignore", "events.ndjson\nout.txt\n");
    s.write("src/main.txt", "some content\n");
    s.commit();
    s
}

fn check_run_shape(records: &[Value]) {
    let run_id = records[0]["run_id"].as_str().unwrap().to_owned();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["run_id"], run_id.as_str(), "one run id: {r}");
        assert_eq!(r["seq"], i as u64, "in sequence: {r}");
        assert_eq!(r["schema"], 1);
    }
    let kinds = kinds(records);
    assert_eq!(kinds.first().map(String::as_str), Some("run_start"));
    assert_eq!(kinds.last().map(String::as_str), Some("run_end"));
    let at = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("no `{k}` in {kinds:?}"))
    };
    assert!(at("lease_requested") < at("lease_placed"));
    assert!(at("lease_placed") < at("lease_ready"));
    assert!(at("lease_ready") < at("sync_start"));
    assert!(at("sync_start") < at("sync_end"));
    assert!(at("sync_end") < at("step_start"));
    assert!(at("lease_released") < at("run_end"));
}

#[test]
fn every_event_of_a_passing_and_a_failing_recipe_is_valid_against_the_schema() {
    let s = repo();
    let out = s.run(&["run", "ci", "--events", "events.ndjson"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = std::fs::read_to_string(s.repo().join("events.ndjson")).unwrap();
    let records = validated(&text);
    check_run_shape(&records);
    let end = records.last().unwrap();
    assert_eq!(end["passed"], true);
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["error_kind"], Value::Null);
    let steps: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["event"] == "step_end")
        .map(|r| (r["name"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps.len(), 4, "{steps:?}");
    for name in ["build", "lint", "unit", "deploy"] {
        assert!(steps.contains(&(name, "passed")), "{steps:?}");
    }
    let unit = records
        .iter()
        .find(|r| r["event"] == "step_end" && r["name"] == "unit")
        .unwrap();
    assert_eq!(unit["group"], "checks");
    assert_eq!(unit["lane"], 1);
    let sync = records.iter().find(|r| r["event"] == "sync_end").unwrap();
    assert!(sync["files"].as_u64().unwrap() >= 3, "{sync}");
    assert_eq!(sync["incremental"], false);
    let fetch = records.iter().find(|r| r["event"] == "fetch_end").unwrap();
    assert_eq!(fetch["paths"][0], "out.txt");
    assert_eq!(fetch["files"], 1);
    assert_eq!(fetch["error_kind"], Value::Null);

    let failing = s.run(&["run", "ci", "--events", "events.ndjson", "--", "unit=3"]);
    assert_eq!(code(&failing), 3, "{}", describe(&failing));
    let text = std::fs::read_to_string(s.repo().join("events.ndjson")).unwrap();
    let records = validated(&text);
    check_run_shape(&records);
    let end = records.last().unwrap();
    assert_eq!(end["passed"], false);
    assert_eq!(end["exit_code"], 3);
    assert_eq!(end["error_kind"], "command_failed");
    let status_of = |name: &str| {
        records
            .iter()
            .find(|r| r["event"] == "step_end" && r["name"] == name)
            .map(|r| (r["status"].clone(), r["code"].clone()))
            .unwrap()
    };
    assert_eq!(status_of("unit"), (Value::from("failed"), Value::from(3)));
    assert_eq!(status_of("deploy"), (Value::from("skipped"), Value::Null));
}

#[test]
fn a_failing_command_run_and_a_failed_warmup_are_valid_events_too() {
    let s = repo();
    let out = s.run(&[
        "run",
        "--events",
        "events.ndjson",
        "--",
        "sh",
        "-c",
        "echo out; exit 4",
    ]);
    assert_eq!(code(&out), 4, "{}", describe(&out));
    let records = validated(&std::fs::read_to_string(s.repo().join("events.ndjson")).unwrap());
    check_run_shape(&records);
    assert_eq!(records[0]["command"][0], "sh");
    let step = records.iter().find(|r| r["event"] == "step_end").unwrap();
    assert_eq!(step["name"], "command");
    assert_eq!(step["status"], "failed");
    assert_eq!(step["code"], 4);

    // A lease that cannot be reused: the run ends with the error kind and no step.
    let out = s.run(&[
        "run",
        "--events",
        "events.ndjson",
        "--lease",
        "lbx_000000000000",
        "--",
        "true",
    ]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let records = validated(&std::fs::read_to_string(s.repo().join("events.ndjson")).unwrap());
    assert_eq!(kinds(&records), ["run_start", "run_end"]);
    assert_eq!(records[1]["error_kind"], "ownership_refused");
}

#[test]
fn events_on_stdout_move_the_commands_stdout_to_stderr() {
    let s = repo();
    let out = s.run(&[
        "run",
        "--events",
        "-",
        "--",
        "sh",
        "-c",
        "echo from-the-box",
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let records = validated(&stdout(&out));
    check_run_shape(&records);
    assert!(
        stderr(&out).contains("from-the-box\n"),
        "{}",
        describe(&out)
    );
}

#[test]
fn an_unwritable_events_file_is_a_usage_error_naming_it() {
    let s = repo();
    let out = s.run(&["run", "--events", "no/such/dir/e.ndjson", "--", "true"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("no/such/dir/e.ndjson"),
        "{}",
        describe(&out)
    );
    assert!(s.claims().is_empty());
}

#[test]
fn the_schema_lists_every_error_kind() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/events.schema.json"
    ))
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let listed: Vec<String> = schema["$defs"]["error_kind_or_null"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let mut known: Vec<String> = leasebox::error::ErrorKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    known.sort();
    assert_eq!(listed_sorted, known);
}

/// The summary block of a run's stderr: from `==> summary` (or the verdict) to the end.
fn summary_of(err: &str) -> Vec<String> {
    let lines: Vec<&str> = err.lines().collect();
    let from = lines
        .iter()
        .position(|l| *l == "==> summary")
        .or_else(|| {
            lines
                .iter()
                .position(|l| l.starts_with("==> passed") || l.starts_with("==> failed"))
        })
        .unwrap_or_else(|| panic!("no summary in:\n{err}"));
    lines[from..]
        .iter()
        .take_while(|l| !l.starts_with("leasebox: error"))
        .map(|l| {
            // Times vary: `12ms`, `1.2s` become `T`; lease ids become `lbx_ID`.
            l.split_whitespace()
                .map(|w| {
                    let t = w.trim_end_matches(':');
                    if t.ends_with("ms") && t[..t.len() - 2].parse::<u64>().is_ok()
                        || t.ends_with('s') && t[..t.len() - 1].parse::<f64>().is_ok()
                    {
                        if w.ends_with(':') {
                            "T:".to_owned()
                        } else {
                            "T".to_owned()
                        }
                    } else if let Some(at) = w.find("lbx_") {
                        let end = (at + 16).min(w.len());
                        format!("{}lbx_ID{}", &w[..at], &w[end..])
                    } else {
                        w.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn the_summary_of_a_passing_a_failing_and_a_parallel_recipe() {
    let s = repo();
    let out = s.run(&["run", "ci"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        summary_of(&stderr(&out)),
        [
            "==> summary",
            "sync synced T full · 3 files sent (384 B)",
            "build passed T",
            "checks parallel T 2 steps, passed",
            "lint passed T",
            "unit passed T",
            "deploy passed T",
            "==> passed in T · lease lbx_ID released",
        ],
        "{}",
        stderr(&out)
    );

    let out = s.run(&["run", "ci", "--", "unit=3"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert_eq!(
        summary_of(&stderr(&out)),
        [
            "==> summary",
            "sync synced T full · 3 files sent (384 B)",
            "build passed T",
            "checks parallel T 2 steps, failed",
            "lint passed T",
            "unit failed T exit 3",
            "deploy skipped",
            "==> failed in T: step `unit` exited with code 3 · lease lbx_ID released",
        ],
        "{}",
        stderr(&out)
    );
    // Piped, without CLICOLOR_FORCE: no colour.
    assert!(!stderr(&out).contains('\x1b'), "{}", stderr(&out));

    // A kept lease is named with how to release it.
    let out = s.run(&["run", "--keep", "--", "true"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let summary = summary_of(&stderr(&out));
    assert_eq!(
        summary,
        [
            "==> summary",
            "sync synced T full · 3 files sent (384 B)",
            "command passed T",
            "==> passed in T · lease lbx_ID kept (`leasebox stop lbx_ID` releases it)"
        ],
        "{}",
        stderr(&out)
    );
    let id = s.claims()[0]["id"].as_str().unwrap().to_owned();

    // A rerun on the kept lease sends only what changed, and the summary and the events say so.
    s.write("src/main.txt", "changed\n");
    std::fs::remove_file(s.repo().join(".leasebox/recipes/ci.lua")).unwrap();
    let out = s.run(&[
        "run",
        "--lease",
        &id,
        "--events",
        "events.ndjson",
        "--",
        "true",
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        summary_of(&stderr(&out)),
        [
            "==> summary",
            "sync synced T incremental · 1 file sent (8 B), 1 deleted",
            "command passed T",
            "==> passed in T · lease lbx_ID kept (`leasebox stop lbx_ID` releases it)"
        ],
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(s.repo().join("events.ndjson")).unwrap();
    let records = validated(&text);
    let sync = records.iter().find(|r| r["event"] == "sync_end").unwrap();
    assert_eq!(
        (
            &sync["files"],
            &sync["bytes"],
            &sync["deleted"],
            &sync["incremental"]
        ),
        (
            &Value::from(1),
            &Value::from(8),
            &Value::from(1),
            &Value::Bool(true)
        ),
        "{sync}"
    );
    let start = records.iter().find(|r| r["event"] == "sync_start").unwrap();
    assert_eq!(
        (&start["files"], &start["bytes"]),
        (&Value::from(1), &Value::from(8))
    );
    assert_eq!(code(&s.run(&["stop", &id])), 0);
}

#[test]
fn colour_is_forced_by_clicolor_force_and_stopped_by_no_color() {
    let s = repo();
    let forced = s
        .leasebox(&["run", "--", "sh", "-c", "exit 2"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert_eq!(code(&forced), 2);
    assert!(
        stderr(&forced).contains("\x1b[1;31mfailed in "),
        "{}",
        describe(&forced)
    );
    let stopped = s
        .leasebox(&["run", "--", "sh", "-c", "exit 2"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!stderr(&stopped).contains('\x1b'), "{}", describe(&stopped));
}

#[test]
fn quiet_leaves_the_commands_output_and_the_error_only() {
    let s = repo();
    let out = s.run(&["--quiet", "run", "ci", "--", "unit=3"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let err = stderr(&out);
    assert!(!err.contains("==>"), "{err}");
    assert!(stdout(&out).contains("testing\n"), "{}", describe(&out));
    assert!(err.contains("leasebox: error:"), "{err}");
}

#[test]
fn the_schema_refuses_what_leasebox_never_writes() {
    let validator = schema();
    let good = serde_json::json!({"schema": 1, "ts": "2025-01-02T03:04:05.678Z", "run_id": "run_0123456789ab",
        "seq": 3, "event": "lease_released", "lease_id": "lbx_0123456789ab", "ms": 12});
    assert!(validator.is_valid(&good));
    for (key, value) in [
        ("extra", serde_json::json!(1)),
        ("event", serde_json::json!("lease_exploded")),
        ("schema", serde_json::json!(2)),
        ("ms", serde_json::json!(-1)),
        ("lease_id", serde_json::json!("nope")),
    ] {
        let mut bad = good.clone();
        bad[key] = value;
        assert!(!validator.is_valid(&bad), "accepted {bad}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("ts");
    assert!(!validator.is_valid(&missing));

    // A watch run's `run_start`: its `watch` is null or a well-formed place in the watch.
    let start = serde_json::json!({"schema": 1, "ts": "2025-01-02T03:04:05.678Z", "run_id": "run_0123456789ab",
        "seq": 0, "event": "run_start", "recipe": "ci", "command": null,
        "watch": {"number": 2, "trigger": "change", "changed": ["src/a.rs"], "changed_count": 1}});
    assert!(validator.is_valid(&start));
    let mut plain = start.clone();
    plain["watch"] = serde_json::Value::Null;
    assert!(validator.is_valid(&plain));
    for (key, value) in [
        ("trigger", serde_json::json!("typed")),
        ("number", serde_json::json!(0)),
        ("changed", serde_json::json!("src/a.rs")),
        ("extra", serde_json::json!(true)),
    ] {
        let mut bad = start.clone();
        bad["watch"][key] = value;
        assert!(!validator.is_valid(&bad), "accepted {bad}");
    }
    let mut no_watch = start.clone();
    no_watch.as_object_mut().unwrap().remove("watch");
    assert!(
        !validator.is_valid(&no_watch),
        "every key is always present"
    );
}
