//! Differences between the 1.1 and modern profiles.

use serde_json::json;

use super::client::*;
use crate::support::nomad::{DriverHealth, NomadServer, Profile};

#[tokio::test]
async fn datacenters_default_to_star_on_modern_and_star_is_never_placed_on_1_1() {
    let mut job = keepalive_job("nodc", KEEPALIVE);
    job["Job"].as_object_mut().unwrap().remove("Datacenters");
    let modern = NomadServer::start_modern();
    assert_eq!(put_json(&modern, "/v1/jobs", &job).await.status, 200);
    assert_eq!(
        get(&modern, "/v1/job/nodc").await.json()["Datacenters"],
        json!(["*"])
    );
    wait_running(&modern, "nodc").await;

    let old = NomadServer::start_v1_1();
    assert_eq!(put_json(&old, "/v1/jobs", &job).await.status, 500);
    job["Job"]["Datacenters"] = json!(["*"]);
    let reply = put_json(&old, "/v1/jobs", &job).await.json();
    let eval = settled_eval(&old, reply["EvalID"].as_str().unwrap()).await;
    assert!(eval["FailedTGAllocs"]["g"].is_object(), "{eval}");
    assert!(eval["BlockedEval"].is_string());
    assert_eq!(get(&old, "/v1/job/nodc").await.json()["Status"], "pending");
    assert_eq!(
        get(&old, "/v1/job/nodc/allocations").await.json(),
        json!([])
    );
}

#[tokio::test]
async fn stubs_differ_by_profile() {
    let modern = NomadServer::start_modern();
    running_keepalive(&modern, "stubs").await;
    let list = get(&modern, "/v1/jobs?meta=true").await.json();
    assert_eq!(list[0]["Meta"]["owner"], "tests");
    assert_eq!(list[0]["NodePool"], "default");
    assert!(
        get(&modern, "/v1/jobs").await.json()[0]
            .get("Meta")
            .is_none()
    );
    let allocs = get(&modern, "/v1/job/stubs/allocations").await.json();
    assert!(allocs[0].get("NextAllocation").is_some());
    assert_eq!(
        get(&modern, "/v1/nodes").await.json()[0]["NodePool"],
        "default"
    );
    let ns = get(&modern, "/v1/namespaces").await.json();
    assert!(ns[0].get("Capabilities").is_some() && ns[0].get("Meta").is_some());

    let old = NomadServer::start_v1_1();
    running_keepalive(&old, "stubs").await;
    let list = get(&old, "/v1/jobs?meta=true").await.json();
    assert!(list[0].get("Meta").is_none() && list[0].get("NodePool").is_none());
    let allocs = get(&old, "/v1/job/stubs/allocations").await.json();
    assert!(allocs[0].get("NextAllocation").is_none());
    assert_eq!(
        get(&old, "/v1/agent/self").await.json()["config"]["Version"]["Version"],
        "1.1.2"
    );
    assert!(
        get(&modern, "/v1/agent/self").await.json()["config"]["Version"]["Version"]
            .as_str()
            .unwrap()
            .starts_with('2')
    );
}

#[tokio::test]
async fn unix_socket_on_modern() {
    let nomad = NomadServer::builder().unix_socket(true).start();
    let url = nomad.unix_url().unwrap();
    assert!(url.starts_with("unix:///"));
    let stream = tokio::net::UnixStream::connect(nomad.unix_path().unwrap())
        .await
        .unwrap();
    let r = request_on(stream, "GET", "/v1/status/leader", &[], None).await;
    assert_eq!(r.json(), json!("127.0.0.1:4647"));
}

#[test]
#[should_panic(expected = "Nomad 1.1 has no unix address")]
fn no_unix_socket_on_1_1() {
    NomadServer::builder()
        .profile(Profile::V1_1)
        .unix_socket(true)
        .start();
}

#[tokio::test]
async fn docker_jobs_run_as_processes_once_docker_is_healthy() {
    let job = json!({"Job": {"ID": "dock", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "docker", "Config": {"image": "ubuntu:24.04", "command": "/bin/sh", "args": ["-c", KEEPALIVE]}}
    ]}]}});
    let without = NomadServer::start_v1_1();
    let reply = put_json(&without, "/v1/jobs", &job).await.json();
    let eval = settled_eval(&without, reply["EvalID"].as_str().unwrap()).await;
    assert_eq!(
        eval["FailedTGAllocs"]["g"]["ConstraintFiltered"],
        json!({"missing drivers": 1})
    );
    let with = NomadServer::builder()
        .profile(Profile::V1_1)
        .driver("docker", DriverHealth::Healthy)
        .start();
    put_json(&with, "/v1/jobs", &job).await;
    wait_running(&with, "dock").await;
    assert_eq!(with.alive_processes().len(), 1);
}

#[tokio::test]
async fn exec_over_the_unix_socket() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let nomad = NomadServer::builder().unix_socket(true).start();
    let alloc = running_keepalive(&nomad, "unixexec").await;
    let stream = tokio::net::UnixStream::connect(nomad.unix_path().unwrap())
        .await
        .unwrap();
    let target = exec_target(&alloc, "t", &["/bin/sh", "-c", "echo via-unix"], "");
    let req = format!("ws://127.0.0.1{target}")
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    ws.send(stdin_close()).await.unwrap();
    let mut out = Vec::new();
    let mut exited = false;
    while let Some(Ok(msg)) = futures::StreamExt::next(&mut ws).await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if let Some(d) = v["stdout"]["data"].as_str() {
                use base64::Engine;
                out.extend(base64::engine::general_purpose::STANDARD.decode(d).unwrap());
            }
            if v["exited"] == true {
                exited = true;
                break;
            }
        }
    }
    assert!(exited);
    assert_eq!(out, b"via-unix\n");
}
