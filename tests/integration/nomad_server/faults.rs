//! Injected faults, one test each.

use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::json;

use super::client::*;
use crate::support::nomad::{AllocFailure, NomadServer, Profile};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn http_500_on_the_nth_call_to_a_route() {
    let nomad = NomadServer::start_modern();
    nomad.fail_http("GET /v1/job/*/allocations", 2, 1);
    assert_eq!(get(&nomad, "/v1/job/a/allocations").await.status, 200);
    let r = get(&nomad, "/v1/job/b/allocations").await;
    assert_eq!((r.status, r.text().as_str()), (500, "injected fault"));
    assert_eq!(get(&nomad, "/v1/job/c/allocations").await.status, 200);
    assert_eq!(
        get(&nomad, "/v1/jobs").await.status,
        200,
        "other routes are untouched"
    );
}

#[tokio::test]
async fn added_latency() {
    let nomad = NomadServer::start_modern();
    nomad.add_latency("/v1/nodes", Duration::from_secs(1));
    let t = Instant::now();
    assert_eq!(get(&nomad, "/v1/nodes").await.status, 200);
    assert!(t.elapsed() >= Duration::from_secs(1));
    let t = Instant::now();
    get(&nomad, "/v1/jobs").await;
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn exec_dropped_before_exited_while_the_process_keeps_running() {
    let nomad = NomadServer::start_modern();
    let alloc = running_keepalive(&nomad, "drop").await;
    nomad.drop_next_exec(1);
    let mut ws = ws_connect(
        &nomad,
        &exec_target(&alloc, "t", &["/bin/sh", "-c", "echo one; sleep 30"], ""),
        &[],
    )
    .await
    .unwrap();
    ws.send(stdin_close()).await.unwrap();
    let s = read_session(&mut ws, T).await;
    assert_eq!(s.stdout, b"one\n");
    assert!(s.dropped && s.exit_code().is_none() && s.close.is_none());
    assert!(nomad.alive_processes().iter().any(|p| p.kind == "exec"));
}

#[tokio::test]
async fn an_allocation_that_fails_is_replaced_after_a_delayed_reschedule() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .reschedule_delay(Duration::from_millis(300))
        .start();
    nomad.fail_next_allocation(AllocFailure::FailAndReplace);
    put_json(&nomad, "/v1/jobs", &keepalive_job("flaky", KEEPALIVE)).await;
    let mut new = String::new();
    for _ in 0..1000 {
        let stubs = get(&nomad, "/v1/job/flaky/allocations").await.json();
        let list = stubs.as_array().unwrap().clone();
        if list.len() == 2
            && let Some(a) = list.iter().find(|a| a["ClientStatus"] == "running")
        {
            new = a["ID"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!new.is_empty(), "a running replacement");
    let full = get(&nomad, &format!("/v1/allocation/{new}")).await.json();
    let old = full["PreviousAllocation"]
        .as_str()
        .expect("PreviousAllocation")
        .to_string();
    assert_eq!(full["RescheduleTracker"]["Events"][0]["PrevAllocID"], old);
    let old_full = get(&nomad, &format!("/v1/allocation/{old}")).await.json();
    assert_eq!(old_full["ClientStatus"], "failed");
    assert_eq!(old_full["NextAllocation"], new.as_str());
    assert_eq!(old_full["DesiredStatus"], "stop");
    assert_eq!(
        old_full["DesiredDescription"],
        "alloc was rescheduled because it failed"
    );
    assert_eq!(old_full["DesiredTransition"]["Reschedule"], true);
    let followup = old_full["FollowupEvalID"].as_str().unwrap();
    let eval = get(&nomad, &format!("/v1/evaluation/{followup}"))
        .await
        .json();
    assert_eq!(eval["TriggeredBy"], "alloc-failure");
    assert!(eval["WaitUntil"].is_string());
    // 1.1 stubs: FollowupEvalID on the old one, the tracker on the new one, no links.
    let stubs = get(&nomad, "/v1/job/flaky/allocations").await.json();
    assert_eq!(stubs.as_array().unwrap().len(), 2);
    for s in stubs.as_array().unwrap() {
        assert!(s.get("NextAllocation").is_none() && s.get("PreviousAllocation").is_none());
    }
}

#[tokio::test]
async fn a_failing_task_follows_the_jobs_own_reschedule_policy() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .reschedule_delay(Duration::from_millis(100))
        .start();
    let mut job = keepalive_job("failer", "echo failing; exit 1");
    job["Job"]["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 1, "Interval": 3_600_000_000_000i64, "Delay": 5_000_000_000i64, "DelayFunction": "constant", "Unlimited": false});
    assert_eq!(put_json(&nomad, "/v1/jobs", &job).await.status, 200);
    let mut done = false;
    for _ in 0..1000 {
        let stubs = get(&nomad, "/v1/job/failer/allocations").await.json();
        let list = stubs.as_array().unwrap();
        if list.len() == 2 && list.iter().all(|a| a["ClientStatus"] == "failed") {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "two failed allocations");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(&nomad, "/v1/job/failer/allocations")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2,
        "no third"
    );
    let job = get(&nomad, "/v1/job/failer").await.json();
    assert_eq!(
        (job["Status"].as_str(), job["Stop"].as_bool()),
        (Some("dead"), Some(false))
    );
}

#[tokio::test]
async fn a_job_that_cannot_be_placed() {
    let nomad = NomadServer::start_v1_1();
    nomad.make_unplaceable("*", "computed class ineligible");
    let reply = put_json(&nomad, "/v1/jobs", &keepalive_job("stuck", KEEPALIVE))
        .await
        .json();
    let eval = settled_eval(&nomad, reply["EvalID"].as_str().unwrap()).await;
    assert_eq!(eval["Status"], "complete");
    assert_eq!(
        eval["FailedTGAllocs"]["g"]["ConstraintFiltered"],
        json!({"computed class ineligible": 1})
    );
    assert_eq!(eval["QueuedAllocations"], json!({"g": 1}));
    let blocked = get(
        &nomad,
        &format!("/v1/evaluation/{}", eval["BlockedEval"].as_str().unwrap()),
    )
    .await
    .json();
    assert_eq!(blocked["Status"], "blocked");
    assert_eq!(blocked["TriggeredBy"], "queued-allocs");
    assert_eq!(
        get(&nomad, "/v1/job/stuck/summary").await.json()["Summary"]["g"]["Queued"],
        1
    );
    assert_eq!(
        get(&nomad, "/v1/job/stuck").await.json()["Status"],
        "pending"
    );
}

#[tokio::test]
async fn a_lost_node() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "lost").await;
    nomad.lose_node();
    assert_eq!(
        nomad.wait_alloc_terminal(&alloc, T).as_deref(),
        Some("lost")
    );
    assert_eq!(get(&nomad, "/v1/nodes").await.json()[0]["Status"], "down");
    for _ in 0..100 {
        if nomad.alive_processes().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(nomad.alive_processes().is_empty());
    let reply = put_json(&nomad, "/v1/jobs", &keepalive_job("after", KEEPALIVE))
        .await
        .json();
    let eval = settled_eval(&nomad, reply["EvalID"].as_str().unwrap()).await;
    assert!(eval["FailedTGAllocs"]["g"].is_object());
}

#[tokio::test]
async fn a_server_that_stops_answering() {
    let nomad = NomadServer::start_modern();
    nomad.set_unresponsive(true);
    let r =
        tokio::time::timeout(Duration::from_millis(300), get(&nomad, "/v1/status/leader")).await;
    assert!(r.is_err(), "no answer");
    nomad.set_unresponsive(false);
    assert_eq!(get(&nomad, "/v1/status/leader").await.status, 200);
}

#[tokio::test]
async fn paused_starts_keep_allocations_pending() {
    let nomad = NomadServer::start_modern();
    nomad.pause_starts(true);
    put_json(&nomad, "/v1/jobs", &keepalive_job("slow", KEEPALIVE)).await;
    for _ in 0..1000 {
        let stubs = get(&nomad, "/v1/job/slow/allocations").await.json();
        if !stubs.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stubs = get(&nomad, "/v1/job/slow/allocations").await.json();
    assert_eq!(stubs[0]["ClientStatus"], "pending");
    assert!(nomad.alive_processes().is_empty());
    nomad.pause_starts(false);
    wait_running(&nomad, "slow").await;
}

#[tokio::test]
async fn driver_health_changes_at_run_time() {
    let nomad = NomadServer::start_modern();
    nomad.set_driver("raw_exec", crate::support::nomad::DriverHealth::Unhealthy);
    assert_eq!(
        get(&nomad, "/v1/nodes").await.json()[0]["Drivers"]["raw_exec"]["Healthy"],
        false
    );
    let reply = put_json(&nomad, "/v1/jobs", &keepalive_job("nodriver", KEEPALIVE))
        .await
        .json();
    let eval = settled_eval(&nomad, reply["EvalID"].as_str().unwrap()).await;
    assert_eq!(
        eval["FailedTGAllocs"]["g"]["ConstraintFiltered"],
        json!({"missing drivers": 1})
    );
}
