//! Endpoint shapes, meta headers, error texts and blocking queries (NOMAD-WIRE.md §1, §2, §4).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::*;
use crate::support::nomad::{NomadServer, Profile};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

fn has_keys(v: &Value, want: &[&str]) {
    for k in want {
        assert!(v.get(*k).is_some(), "missing {k} in {v}");
    }
}

#[tokio::test]
async fn status_leader_regions_and_agent_self_have_no_meta_headers() {
    let nomad = NomadServer::start_v1_1();
    let r = get(&nomad, "/v1/status/leader").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!("127.0.0.1:4647"));
    assert!(r.header("X-Nomad-Index").is_none());
    let r = get(&nomad, "/v1/regions").await;
    assert_eq!(r.json(), json!(["global"]));
    assert!(r.header("X-Nomad-Index").is_none());
    let r = get(&nomad, "/v1/agent/self").await;
    assert_eq!(r.status, 200);
    assert!(r.header("X-Nomad-Index").is_none());
    let v = r.json();
    assert_eq!(keys(&v), ["config", "member", "stats"]);
    assert_eq!(v["config"]["Datacenter"], "dc1");
    assert_eq!(v["config"]["Version"]["Version"], "1.1.2");
    assert!(
        v["stats"].as_object().unwrap().values().all(|m| m
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string))
    );
}

#[tokio::test]
async fn reads_carry_index_leader_and_contact_headers_and_go_canonical_names() {
    let nomad = NomadServer::start_v1_1();
    let r = get(&nomad, "/v1/namespaces").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("X-Nomad-Knownleader"), Some("true"));
    assert_eq!(r.header("X-Nomad-Lastcontact"), Some("0"));
    assert!(r.index() >= 1);
    // Go canonical spelling on the wire.
    assert!(r.headers.iter().any(|(k, _)| k == "X-Nomad-Knownleader"));
    let ns = r.json();
    assert_eq!(ns[0]["Name"], "default");
    assert_eq!(ns[0]["Description"], "Default shared namespace");
    assert_eq!(
        keys(&ns[0]),
        [
            "CreateIndex",
            "Description",
            "Hash",
            "ModifyIndex",
            "Name",
            "Quota"
        ]
    );
}

#[tokio::test]
async fn nodes_list_drivers_and_configurable_health() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .driver("docker", crate::support::nomad::DriverHealth::Healthy)
        .start();
    let r = get(&nomad, "/v1/nodes").await;
    let n = &r.json()[0];
    has_keys(
        n,
        &[
            "ID",
            "Name",
            "Address",
            "Datacenter",
            "NodeClass",
            "Version",
            "Drain",
            "SchedulingEligibility",
            "Status",
            "StatusDescription",
            "Drivers",
            "CreateIndex",
            "ModifyIndex",
        ],
    );
    assert!(n.get("NodePool").is_none(), "1.1 nodes have no NodePool");
    assert_eq!(n["Status"], "ready");
    assert_eq!(n["Drivers"]["raw_exec"]["Healthy"], true);
    assert_eq!(n["Drivers"]["docker"]["Healthy"], true);
    assert_eq!(n["Drivers"]["exec"]["Detected"], false);
}

#[tokio::test]
async fn register_reply_job_and_list_shapes() {
    let nomad = NomadServer::start_v1_1();
    let r = put_json(&nomad, "/v1/jobs", &keepalive_job("ka", KEEPALIVE)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("X-Nomad-Knownleader").is_none(),
        "writes set only X-Nomad-Index"
    );
    let reply = r.json();
    assert_eq!(
        keys(&reply),
        [
            "EvalCreateIndex",
            "EvalID",
            "Index",
            "JobModifyIndex",
            "KnownLeader",
            "LastContact",
            "Warnings"
        ]
    );
    assert_eq!(reply["Index"].as_u64(), Some(r.index()));
    let job = get(&nomad, "/v1/job/ka").await.json();
    assert_eq!(
        job["Status"]
            .as_str()
            .map(|s| s == "pending" || s == "running"),
        Some(true)
    );
    assert_eq!(job["Priority"], 50);
    assert_eq!(job["Region"], "global");
    assert_eq!(job["Namespace"], "default");
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"], 100);
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"],
        300
    );
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["KillTimeout"],
        5_000_000_000i64
    );
    assert_eq!(job["TaskGroups"][0]["EphemeralDisk"]["SizeMB"], 300);
    let rp = &job["TaskGroups"][0]["ReschedulePolicy"];
    assert_eq!(rp["Delay"], 30_000_000_000i64);
    assert_eq!(rp["Unlimited"], false);
    assert_eq!(job["Meta"]["owner"], "tests");
    let list = get(&nomad, "/v1/jobs?meta=true").await.json();
    assert_eq!(list[0]["ID"], "ka");
    assert!(list[0].get("Meta").is_none(), "1.1 ignores meta=true");
    has_keys(
        &list[0],
        &[
            "JobSummary",
            "Status",
            "Stop",
            "SubmitTime",
            "JobModifyIndex",
        ],
    );
    let alloc = wait_running(&nomad, "ka").await;
    let stubs = get(&nomad, "/v1/job/ka/allocations").await.json();
    let stub = &stubs[0];
    assert!(stub.get("NextAllocation").is_none() && stub.get("PreviousAllocation").is_none());
    assert_eq!(stub["Name"], "ka.g[0]");
    assert_eq!(stub["AllocatedResources"], Value::Null);
    let full = get(&nomad, &format!("/v1/allocation/{alloc}")).await.json();
    assert_eq!(full["Job"]["ID"], "ka");
    assert!(full.get("DesiredDescription").is_none() && full.get("NextAllocation").is_none());
    assert!(full["TaskStates"]["t"]["StartedAt"].is_string());
    let events: Vec<&str> = full["TaskStates"]["t"]["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["Received", "Task Setup", "Started"]);
    let eval = get(
        &nomad,
        &format!("/v1/evaluation/{}", reply["EvalID"].as_str().unwrap()),
    )
    .await
    .json();
    assert_eq!(eval["TriggeredBy"], "job-register");
    assert_eq!(eval["Status"], "complete");
    assert!(eval.get("BlockedEval").is_none() && eval.get("FailedTGAllocs").is_none());
    let summary = get(&nomad, "/v1/job/ka/summary").await.json();
    assert_eq!(summary["Summary"]["g"]["Running"], 1);
}

#[tokio::test]
async fn task_environment_and_alloc_dir() {
    let nomad = NomadServer::start_modern();
    let script = "env > \"$NOMAD_ALLOC_DIR/env.txt\"; pwd > \"$NOMAD_ALLOC_DIR/pwd.txt\"; while :; do sleep 3600; done";
    let r = put_json(&nomad, "/v1/jobs", &keepalive_job("envjob", script)).await;
    assert_eq!(r.status, 200);
    let alloc = wait_running(&nomad, "envjob").await;
    let dir = nomad.alloc_dir(&alloc);
    let mut env = String::new();
    for _ in 0..200 {
        env = std::fs::read_to_string(dir.join("alloc/env.txt")).unwrap_or_default();
        if env.contains("NOMAD_JOB_NAME") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for var in [
        "NOMAD_ALLOC_DIR=",
        "NOMAD_TASK_DIR=",
        "NOMAD_SECRETS_DIR=",
        "NOMAD_ALLOC_ID=",
        "NOMAD_JOB_NAME=envjob",
        "PATH=",
    ] {
        assert!(env.contains(var), "{var} missing from {env}");
    }
    assert!(env.contains(&format!("NOMAD_ALLOC_ID={alloc}")));
}

#[tokio::test]
async fn stop_kills_after_kill_timeout_and_keeps_the_job_dead() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .tasks_ignore_sigint(true)
        .start();
    let alloc = running_keepalive(&nomad, "stopme").await;
    let r = delete(&nomad, "/v1/job/stopme").await;
    assert_eq!(r.status, 200);
    let reply = r.json();
    assert_eq!(
        keys(&reply),
        [
            "EvalCreateIndex",
            "EvalID",
            "Index",
            "JobModifyIndex",
            "KnownLeader",
            "LastContact",
            "VolumeEvalID",
            "VolumeEvalIndex"
        ]
    );
    let job = get(&nomad, "/v1/job/stopme").await.json();
    assert_eq!(job["Stop"], true);
    assert_eq!(job["Status"], "dead");
    assert_eq!(job["Version"], 1);
    assert_eq!(
        nomad
            .wait_alloc_terminal(&alloc, Duration::from_secs(10))
            .as_deref(),
        Some("complete")
    );
    let full = get(&nomad, &format!("/v1/allocation/{alloc}")).await.json();
    assert_eq!(full["DesiredStatus"], "stop");
    assert_eq!(
        full["DesiredDescription"],
        "alloc not needed due to job update"
    );
    let events: Vec<&Value> = full["TaskStates"]["t"]["Events"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["Type"].as_str().unwrap()).collect();
    assert_eq!(&types[3..], ["Killing", "Terminated", "Killed"]);
    assert_eq!(events[4]["ExitCode"], 137);
    assert_eq!(events[4]["Signal"], 9);
    let eval = get(
        &nomad,
        &format!("/v1/evaluation/{}", reply["EvalID"].as_str().unwrap()),
    )
    .await
    .json();
    assert_eq!(eval["TriggeredBy"], "job-deregister");
    let again = put_json(&nomad, "/v1/jobs", &keepalive_job("stopme", KEEPALIVE)).await;
    assert_eq!(again.status, 500);
    assert_eq!(
        again.text(),
        "Enforcing job modify index 0: job already exists"
    );
    assert!(nomad.alive_processes().is_empty());
}

#[tokio::test]
async fn purge_removes_the_job_but_keeps_allocations_readable() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "purgeme").await;
    let r = delete(&nomad, "/v1/job/purgeme?purge=true").await;
    assert_eq!(r.status, 200);
    let missing = get(&nomad, "/v1/job/purgeme").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text(), "job not found");
    assert!(
        missing.header("X-Nomad-Index").is_some(),
        "404 reads keep the index headers"
    );
    assert_eq!(
        nomad
            .wait_alloc_terminal(&alloc, Duration::from_secs(10))
            .as_deref(),
        Some("complete")
    );
    let stubs = get(&nomad, "/v1/job/purgeme/allocations?all=true")
        .await
        .json();
    assert_eq!(stubs[0]["DesiredStatus"], "stop");
    assert_eq!(
        get(&nomad, &format!("/v1/allocation/{alloc}")).await.status,
        200
    );
    assert_eq!(get(&nomad, "/v1/jobs").await.json(), json!([]));
    // A new incarnation with the same ID.
    let again = put_json(&nomad, "/v1/jobs", &keepalive_job("purgeme", KEEPALIVE)).await;
    assert_eq!(again.status, 200);
    wait_running(&nomad, "purgeme").await;
    assert_eq!(
        get(&nomad, "/v1/job/purgeme/allocations?all=true")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        get(&nomad, "/v1/job/purgeme/allocations")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn deregister_missing_differs_by_profile() {
    let old = NomadServer::start_v1_1();
    let r = delete(&old, "/v1/job/never").await.json();
    let eval_id = r["EvalID"].as_str().unwrap();
    assert!(!eval_id.is_empty(), "1.1 creates a real eval");
    let eval = get(&old, &format!("/v1/evaluation/{eval_id}")).await.json();
    assert_eq!(eval["TriggeredBy"], "job-deregister");
    assert_eq!(eval["Status"], "complete");
    assert_eq!(
        get(&old, "/v1/job/never/allocations").await.json(),
        json!([])
    );
    let new = NomadServer::start_modern();
    assert_eq!(delete(&new, "/v1/job/never").await.json()["EvalID"], "");
}

#[tokio::test]
async fn error_texts() {
    let nomad = NomadServer::start_v1_1();
    let r = call(&nomad, "PUT", "/v1/jobs", &[], Some(b"")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Request body is empty")
    );
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let r = put_json(
        &nomad,
        "/v1/jobs",
        &json!({"Job": {"ID": "x", "Datacenters": ["dc1"]}}),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "1 error occurred:\n\t* Missing job task groups\n\n")
    );
    let mut job = keepalive_job("x", KEEPALIVE);
    job["Job"].as_object_mut().unwrap().remove("Datacenters");
    let r = put_json(&nomad, "/v1/jobs", &job).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "1 error occurred:\n\t* Missing job datacenters\n\n")
    );
    let mut job = keepalive_job("x", KEEPALIVE);
    job["Job"]["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 1, "Interval": 3_600_000_000_000i64, "Delay": 1_000_000_000, "DelayFunction": "constant", "Unlimited": false});
    let r = put_json(&nomad, "/v1/jobs", &job).await;
    assert_eq!(
        r.text(),
        "1 error occurred:\n\t* Task group g validation failed: 1 error occurred:\n\t* 1 error occurred:\n\t* Delay cannot be less than 5s (got 1s)\n\n\n\n\n\n"
    );
    let r = put_json(&nomad, "/v1/job/other", &keepalive_job("x", KEEPALIVE)).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Job ID does not match name")
    );
    let r = put_json(&nomad, "/v1/jobs", &json!({"Nope": 1})).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Job must be specified")
    );
    let r = get(&nomad, "/v1/job/nope").await;
    assert_eq!((r.status, r.text().as_str()), (404, "job not found"));
    let r = get(
        &nomad,
        "/v1/allocation/00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (404, "alloc not found"));
    let r = get(
        &nomad,
        "/v1/evaluation/00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (404, "eval not found"));
    let r = call(&nomad, "PATCH", "/v1/jobs", &[], None).await;
    assert_eq!((r.status, r.text().as_str()), (405, "Invalid method"));
    let r = get(&nomad, "/v1/nothing/here").await;
    assert_eq!((r.status, r.body.len()), (404, 0));
    let r = get(&nomad, "/v1/jobs?region=elsewhere").await;
    assert_eq!((r.status, r.text().as_str()), (500, "No path to region"));
    let r = delete(&nomad, "/v1/job/x?purge=maybe").await;
    assert_eq!(r.status, 500);
}

#[tokio::test]
async fn partial_policies_are_filled_in() {
    let nomad = NomadServer::start_v1_1();
    let mut job = keepalive_job("partial", KEEPALIVE);
    job["Job"]["TaskGroups"][0]["RestartPolicy"] = json!({"Attempts": 0, "Mode": "fail"});
    assert_eq!(put_json(&nomad, "/v1/jobs", &job).await.status, 200);
    let j = get(&nomad, "/v1/job/partial").await.json();
    assert_eq!(
        j["TaskGroups"][0]["RestartPolicy"],
        json!({"Attempts": 0, "Interval": 1_800_000_000_000i64, "Delay": 15_000_000_000i64, "Mode": "fail"})
    );
    assert_eq!(
        j["TaskGroups"][0]["ReschedulePolicy"]["DelayFunction"],
        "exponential"
    );
    assert_eq!(
        j["TaskGroups"][0]["ReschedulePolicy"]["MaxDelay"],
        3_600_000_000_000i64
    );
}

#[tokio::test]
async fn namespace_precedence_on_register() {
    let nomad = NomadServer::builder()
        .namespace("dev")
        .namespace("ops")
        .start();
    let mut job = keepalive_job("nsjob", KEEPALIVE);
    job["Job"]["Namespace"] = json!("ops");
    job["Namespace"] = json!("dev");
    assert_eq!(put_json(&nomad, "/v1/jobs", &job).await.status, 200);
    assert_eq!(
        nomad.jobs()[0].namespace,
        "dev",
        "the body's Namespace beats Job.Namespace"
    );
    let mut job = keepalive_job("nsjob2", KEEPALIVE);
    job["Namespace"] = json!("dev");
    assert_eq!(
        put_json(&nomad, "/v1/jobs?namespace=ops", &job)
            .await
            .status,
        200
    );
    let j = get(&nomad, "/v1/job/nsjob2?namespace=ops").await.json();
    assert_eq!(
        j["Namespace"], "ops",
        "?namespace wins and is written into the job"
    );
    assert_eq!(get(&nomad, "/v1/job/nsjob2").await.status, 404);
    assert_eq!(
        get(&nomad, "/v1/jobs?namespace=*")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn create_only_register_and_update() {
    let nomad = NomadServer::start_modern();
    let first = put_json(&nomad, "/v1/jobs", &keepalive_job("co", KEEPALIVE))
        .await
        .json();
    let r = put_json(&nomad, "/v1/jobs", &keepalive_job("co", KEEPALIVE)).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Enforcing job modify index 0: job already exists")
    );
    let mut update = keepalive_job("co", KEEPALIVE);
    update["JobModifyIndex"] = first["JobModifyIndex"].clone();
    assert_eq!(put_json(&nomad, "/v1/jobs", &update).await.status, 200);
    // POST works too, without EnforceIndex.
    let body = serde_json::to_vec(&json!({"Job": keepalive_job("co", KEEPALIVE)["Job"]})).unwrap();
    assert_eq!(
        call(&nomad, "POST", "/v1/jobs", &[], Some(&body))
            .await
            .status,
        200
    );
    assert_eq!(get(&nomad, "/v1/job/co").await.json()["Version"], 2);
}

#[tokio::test]
async fn blocking_query_times_out_with_200_and_wakes_on_change() {
    let nomad = NomadServer::start_v1_1();
    running_keepalive(&nomad, "block").await;
    let idx = get(&nomad, "/v1/job/block/allocations").await.index();
    let t = Instant::now();
    let r = get(
        &nomad,
        &format!("/v1/job/block/allocations?index={idx}&wait=300ms"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.index(), idx);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "returned after {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    let target = format!("/v1/job/block/allocations?index={idx}&wait=30s");
    let (a, b) = tokio::join!(get(&nomad, &target), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        delete(&nomad, "/v1/job/block").await
    });
    assert_eq!(b.status, 200);
    assert!(a.index() > idx);
    assert_eq!(a.json()[0]["DesiredStatus"], "stop");
    let r = get(&nomad, "/v1/job/block/allocations?index=abc").await;
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid index"));
    let r = get(
        &nomad,
        &format!("/v1/job/block/allocations?index={idx}&wait=60"),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid wait time"));
}

#[tokio::test]
async fn blocking_without_wait_uses_the_configured_default() {
    let nomad = NomadServer::builder()
        .default_blocking_wait(Duration::from_millis(200))
        .start();
    let idx = get(&nomad, "/v1/nodes").await.index();
    let t = Instant::now();
    let r = get(&nomad, &format!("/v1/nodes?index={idx}")).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn index_is_monotonic_across_writes_and_starts_at_zero_for_allocs() {
    let nomad = NomadServer::start_v1_1();
    assert_eq!(get(&nomad, "/v1/job/x/allocations").await.index(), 0);
    let mut last = 0;
    for i in 0..3 {
        let r = put_json(
            &nomad,
            "/v1/jobs",
            &keepalive_job(&format!("mono{i}"), KEEPALIVE),
        )
        .await;
        assert!(r.index() > last);
        last = r.index();
    }
    let r = get(&nomad, "/v1/jobs").await;
    assert!(r.index() >= last);
}

#[tokio::test]
async fn jobs_parse_shapes_and_errors() {
    let nomad = NomadServer::start_v1_1();
    let hcl = "job \"parsed\" {\n  datacenters = [\"dc1\"]\n  meta {\n    owner = \"fixtures\"\n  }\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config {\n        command = \"/bin/sh\"\n        args    = [\"-c\", \"sleep 60\"]\n      }\n      resources {\n        cpu = 200\n        memory = 64\n      }\n    }\n  }\n}\n";
    let r = put_json(
        &nomad,
        "/v1/jobs/parse",
        &json!({"JobHCL": hcl, "Canonicalize": false}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("X-Nomad-Index").is_none());
    let job = r.json();
    assert_eq!(job["ID"], "parsed");
    assert_eq!(job["Priority"], Value::Null);
    assert_eq!(job["Meta"]["owner"], "fixtures");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["args"],
        json!(["-c", "sleep 60"])
    );
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"],
        64
    );
    let r = put_json(
        &nomad,
        "/v1/jobs/parse",
        &json!({"JobHCL": hcl, "Canonicalize": true}),
    )
    .await;
    let job = r.json();
    assert_eq!(job["Priority"], 50);
    assert_eq!(job["TaskGroups"][0]["Count"], 1);
    let broken =
        "job \"broken\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \n    }\n  }\n}\n";
    let r = put_json(&nomad, "/v1/jobs/parse", &json!({"JobHCL": broken})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "input.hcl:4,16-5,1: Invalid expression; Expected the start of an expression, but found an invalid expression token.\ninput.hcl:4,16-5,1: Unsuitable value type; Unsuitable value: value must be known"
    );
    let r = put_json(
        &nomad,
        "/v1/jobs/parse",
        &json!({"JobHCL": "job \"x\" {\n  vault {}\n}\n"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Unsupported block type"), "{}", r.text());
    let r = put_json(&nomad, "/v1/jobs/parse", &json!({"JobHCL": ""})).await;
    assert_eq!((r.status, r.text().as_str()), (400, "Job spec is empty"));
}

#[tokio::test]
async fn parsed_jobs_register_and_run() {
    let nomad = NomadServer::start_modern();
    let hcl = "job \"fromhcl\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config {\n        command = \"/bin/sh\"\n        args = [\"-c\", \"while :; do sleep 3600; done\"]\n      }\n    }\n  }\n}\n";
    let job = put_json(
        &nomad,
        "/v1/jobs/parse",
        &json!({"JobHCL": hcl, "Canonicalize": true}),
    )
    .await
    .json();
    let r = put_json(&nomad, "/v1/jobs", &json!({"Job": job})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    wait_running(&nomad, "fromhcl").await;
}

#[tokio::test]
async fn pretty_output_and_job_status_wakes_blocking_job_reads() {
    let nomad = NomadServer::start_modern();
    let r = get(&nomad, "/v1/nodes?pretty").await;
    assert!(r.text().contains("\n  "), "indented");
    put_json(&nomad, "/v1/jobs", &keepalive_job("wake", KEEPALIVE)).await;
    let first = get(&nomad, "/v1/job/wake").await;
    let idx = first.index();
    if first.json()["Status"] != "running" {
        let r = get(&nomad, &format!("/v1/job/wake?index={idx}&wait=5s")).await;
        assert!(r.index() > idx);
    }
    wait_running(&nomad, "wake").await;
    assert_eq!(
        get(&nomad, "/v1/job/wake").await.json()["Status"],
        "running"
    );
}

#[tokio::test]
async fn allocation_stop_and_validate() {
    let nomad = NomadServer::start_modern();
    let alloc = running_keepalive(&nomad, "astop").await;
    let r = call(
        &nomad,
        "POST",
        &format!("/v1/allocation/{alloc}/stop"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let reply = r.json();
    assert!(reply["EvalID"].is_string() && reply["Index"].is_u64());
    assert_eq!(
        nomad
            .wait_alloc_terminal(&alloc, Duration::from_secs(5))
            .as_deref(),
        Some("complete")
    );
    let r = put_json(
        &nomad,
        "/v1/validate/job",
        &json!({"Job": {"ID": "v", "TaskGroups": []}}),
    )
    .await;
    let v = r.json();
    assert_eq!(
        v["Error"],
        "1 error occurred:\n\t* Missing job task groups\n\n"
    );
    assert!(v["ValidationErrors"].is_array());
}

#[tokio::test]
async fn paging_with_per_page_and_next_token() {
    let nomad = NomadServer::start_modern();
    for id in ["a", "b", "c"] {
        put_json(&nomad, "/v1/jobs", &keepalive_job(id, KEEPALIVE)).await;
    }
    let r = get(&nomad, "/v1/jobs?per_page=2").await;
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["ID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(r.header("X-Nomad-Nexttoken"), Some("c"));
    let r = get(&nomad, "/v1/jobs?per_page=2&next_token=c").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert!(
        r.header("X-Nomad-Nexttoken").is_none(),
        "only when more pages exist"
    );
}

#[tokio::test]
async fn more_validation_texts() {
    let nomad = NomadServer::start_v1_1();
    let mut job = keepalive_job("v", KEEPALIVE);
    job["Job"]["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 1, "Interval": 1_000_000_000, "Delay": 5_000_000_000i64, "DelayFunction": "constant", "Unlimited": false});
    let r = put_json(&nomad, "/v1/jobs", &job).await;
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("Interval cannot be less than 15s (got 1s)"),
        "{}",
        r.text()
    );
    let mut job = keepalive_job("v", KEEPALIVE);
    job["Job"]["TaskGroups"][0]["RestartPolicy"]["Mode"] = json!("sometimes");
    let r = put_json(&nomad, "/v1/jobs", &job).await;
    assert!(
        r.text().contains("Unsupported restart mode: \"sometimes\""),
        "{}",
        r.text()
    );
    let mut job = keepalive_job("has space", KEEPALIVE);
    job["Job"]["Name"] = json!("x");
    let r = put_json(&nomad, "/v1/jobs", &job).await;
    assert_eq!(
        r.text(),
        "1 error occurred:\n\t* Job ID contains a space\n\n"
    );
    let mut job = keepalive_job("v", KEEPALIVE);
    job["Job"]["Type"] = json!("weird");
    assert_eq!(
        put_json(&nomad, "/v1/jobs", &job).await.text(),
        "1 error occurred:\n\t* Invalid job type: \"weird\"\n\n"
    );
    let mut job = keepalive_job("v", KEEPALIVE);
    job["Job"]["TaskGroups"][0]["Tasks"][0]["Driver"] = json!("");
    let r = put_json(&nomad, "/v1/jobs", &job).await;
    assert!(
        r.text().contains("Task t validation failed") && r.text().contains("Missing task driver"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn many_instances_in_parallel() {
    let servers: Vec<NomadServer> = (0..6).map(|_| NomadServer::start_modern()).collect();
    let runs = servers.iter().enumerate().map(|(i, s)| async move {
        running_keepalive(s, &format!("par{i}")).await;
        s.url()
    });
    let urls = futures::future::join_all(runs).await;
    let mut unique = urls.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), urls.len());
}

/// The field names a recorded 1.1.2 agent gave for each kind of object, over every recording
/// (empty fields are omitted from full allocations and evaluations, so one recording is not
/// enough): node stubs, allocation stubs, full allocations, evaluations and placement metrics.
fn recorded_fields() -> std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>>
{
    use std::collections::{BTreeMap, BTreeSet};
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/nomad-1.1.2");
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut add = |kind: &'static str, v: &Value| {
        if let Some(o) = v.as_object() {
            out.entry(kind).or_default().extend(o.keys().cloned());
        }
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the 1.1.2 recordings in {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files {
        let recording: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for step in recording["steps"].as_array().into_iter().flatten() {
            let req = &step["request"];
            if req["method"] != "GET" {
                continue;
            }
            let path = req["path"].as_str().unwrap_or("");
            let body = &step["response"]["body"];
            let parts: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
            match parts.as_slice() {
                ["nodes"] => body
                    .as_array()
                    .into_iter()
                    .flatten()
                    .for_each(|n| add("node stub", n)),
                ["job", _, "allocations"] => {
                    body.as_array()
                        .into_iter()
                        .flatten()
                        .for_each(|a| add("allocation stub", a));
                }
                ["allocation", _] => add("allocation", body),
                ["evaluation", _] => {
                    add("evaluation", body);
                    for metric in body["FailedTGAllocs"]
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.values())
                    {
                        add("placement metric", metric);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[tokio::test]
async fn a_multi_node_1_1_cluster_emits_no_field_a_recorded_1_1_agent_lacks() {
    let recorded = recorded_fields();
    for kind in [
        "node stub",
        "allocation stub",
        "allocation",
        "evaluation",
        "placement metric",
    ] {
        assert!(recorded.contains_key(kind), "no recorded {kind}");
    }
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .nodes(3, 2000)
        .node("leasebox-test-node-small", 500)
        .start();
    let check = |kind: &str, v: &Value| {
        let extra: Vec<&String> = v
            .as_object()
            .unwrap_or_else(|| panic!("{kind} is not an object: {v}"))
            .keys()
            .filter(|k| !recorded[kind].contains(*k))
            .collect();
        assert!(
            extra.is_empty(),
            "{kind} has fields a 1.1.2 agent lacks: {extra:?}\n{v}"
        );
    };
    let nodes = get(&nomad, "/v1/nodes").await.json();
    assert_eq!(nodes.as_array().map(Vec::len), Some(4), "{nodes}");
    for n in nodes.as_array().unwrap() {
        check("node stub", n);
        assert!(n["Name"].is_string() && n["ID"].is_string(), "{n}");
    }

    // A spread group of 4 (placed over the three big nodes), then one that cannot be placed
    // whole (distinct_hosts, 4 boxes, three nodes with room and a small one).
    let mut spread = keepalive_job("spread", KEEPALIVE);
    spread["Job"]["TaskGroups"][0]["Count"] = json!(4);
    spread["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 1000, "MemoryMB": 64});
    spread["Job"]["TaskGroups"][0]["Spreads"] =
        json!([{"Attribute": "${node.unique.id}", "Weight": 100}]);
    let reply = put_json(&nomad, "/v1/jobs", &spread).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    wait_running(&nomad, "spread").await;
    let stubs = get(&nomad, "/v1/job/spread/allocations").await.json();
    let mut names = std::collections::BTreeSet::new();
    for a in stubs.as_array().unwrap() {
        check("allocation stub", a);
        // What the client reads for a box's node is in a 1.1 stub.
        assert!(a["NodeID"].is_string() && a["NodeName"].is_string(), "{a}");
        names.insert(a["NodeName"].as_str().unwrap().to_owned());
        let id = a["ID"].as_str().unwrap();
        check(
            "allocation",
            &get(&nomad, &format!("/v1/allocation/{id}")).await.json(),
        );
    }
    assert_eq!(names.len(), 3, "{names:?}");
    delete(&nomad, "/v1/job/spread?purge=true").await;

    let mut distinct = keepalive_job("distinct", KEEPALIVE);
    distinct["Job"]["TaskGroups"][0]["Count"] = json!(4);
    distinct["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"] =
        json!({"CPU": 1000, "MemoryMB": 64});
    distinct["Job"]["TaskGroups"][0]["Constraints"] =
        json!([{"Operand": "distinct_hosts", "RTarget": "true"}]);
    let reply = put_json(&nomad, "/v1/jobs", &distinct).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let eval_id = reply.json()["EvalID"].as_str().unwrap().to_owned();
    let eval = settled_eval(&nomad, &eval_id).await;
    check("evaluation", &eval);
    let metric = &eval["FailedTGAllocs"]["g"];
    check("placement metric", metric);
    assert!(
        metric["ConstraintFiltered"]["distinct_hosts"].is_number(),
        "{metric}"
    );
    assert!(metric["DimensionExhausted"]["cpu"].is_number(), "{metric}");
    delete(&nomad, "/v1/job/distinct?purge=true").await;
}
