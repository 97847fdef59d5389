//! ACL mode: tokens, policies, capabilities, the headers that carry a token, and exec denial.

use std::time::Duration;

use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::client::*;
use crate::support::nomad::{NomadServer, Profile};

const T: Duration = Duration::from_secs(5);

struct Tokens {
    management: String,
    no_jobs: String,
    read: String,
    exec_only: String,
    exec_node: String,
}

fn setup(nomad: &NomadServer) -> Tokens {
    nomad.create_policy("no-jobs", "node {\n  policy = \"read\"\n}\n");
    nomad.create_policy(
        "read-no-exec",
        "namespace \"default\" {\n  policy = \"read\"\n}\n",
    );
    nomad.create_policy(
        "exec-only",
        "namespace \"default\" {\n  policy = \"read\"\n  capabilities = [\"alloc-exec\"]\n}\n",
    );
    nomad.create_policy(
        "exec-node",
        "namespace \"default\" {\n  policy = \"read\"\n  capabilities = [\"alloc-exec\", \"alloc-node-exec\"]\n}\n",
    );
    Tokens {
        management: nomad.management_token(),
        no_jobs: nomad.create_token("tok-no-jobs", &["no-jobs"]),
        read: nomad.create_token("tok-read", &["read-no-exec"]),
        exec_only: nomad.create_token("tok-exec-only", &["exec-only"]),
        exec_node: nomad.create_token("tok-exec-node", &["exec-node"]),
    }
}

async fn register_with(nomad: &NomadServer, token: &str, id: &str) -> String {
    let r = put_json_with(nomad, "/v1/jobs", token, &keepalive_job(id, KEEPALIVE)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..1500 {
        let allocs = get_with(nomad, &format!("/v1/job/{id}/allocations"), token)
            .await
            .json();
        if let Some(a) = allocs
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["ClientStatus"] == "running")
        {
            return a["ID"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never ran");
}

#[tokio::test]
async fn acl_admin_over_http_matches_the_recording() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .acl(true)
        .start();
    let r = call(&nomad, "POST", "/v1/acl/bootstrap", &[], None).await;
    assert_eq!(r.status, 200);
    let boot = r.json();
    assert_eq!(boot["Type"], "management");
    assert_eq!(boot["Name"], "Bootstrap Token");
    let secret = boot["SecretID"].as_str().unwrap().to_string();
    let body = serde_json::to_vec(
        &json!({"Name": "p", "Description": "d", "Rules": "node {\n  policy = \"read\"\n}\n"}),
    )
    .unwrap();
    let r = call(
        &nomad,
        "PUT",
        "/v1/acl/policy/p",
        &[("X-Nomad-Token", &secret)],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(
        r.header("Content-Type").is_none(),
        "policy PUT has no Content-Type"
    );
    assert!(r.header("X-Nomad-Index").is_some());
    let r = put_json_with(
        &nomad,
        "/v1/acl/token",
        &secret,
        &json!({"Name": "t", "Type": "client", "Policies": ["p"], "Global": false}),
    )
    .await;
    let tok = r.json();
    let mut keys: Vec<&String> = tok.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "AccessorID",
            "CreateIndex",
            "CreateTime",
            "Global",
            "Hash",
            "ModifyIndex",
            "Name",
            "Policies",
            "SecretID",
            "Type"
        ]
    );
    // A second bootstrap is refused.
    assert_eq!(
        call(&nomad, "POST", "/v1/acl/bootstrap", &[], None)
            .await
            .status,
        400
    );
    // Only management tokens administer ACLs.
    let client = tok["SecretID"].as_str().unwrap();
    let r = put_json_with(
        &nomad,
        "/v1/acl/token",
        client,
        &json!({"Name": "x", "Type": "client", "Policies": ["p"]}),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
}

#[tokio::test]
async fn token_self_texts_on_1_1() {
    let off = NomadServer::start_v1_1();
    let r = get(&off, "/v1/acl/token/self").await;
    assert_eq!((r.status, r.text().as_str()), (400, "ACL support disabled"));
    let on = NomadServer::builder()
        .profile(Profile::V1_1)
        .acl(true)
        .start();
    let t = setup(&on);
    let r = get(&on, "/v1/acl/token/self").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "acl token lookup failed: missing secret id")
    );
    let r = get_with(
        &on,
        "/v1/acl/token/self",
        "7b0e3c8e-0000-4000-8000-000000000000",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (404, "ACL token not found"));
    assert!(r.header("X-Nomad-Index").is_some());
    let r = get_with(&on, "/v1/acl/token/self", &t.management).await;
    assert_eq!(r.json()["Type"], "management");
    let r = get_with(&on, "/v1/acl/token/self", &t.read).await;
    assert_eq!(r.json()["Type"], "client");
    assert_eq!(r.json()["Policies"], json!(["read-no-exec"]));
    assert!(r.json().get("Roles").is_none());
}

#[tokio::test]
async fn token_self_texts_on_modern() {
    let off = NomadServer::start_modern();
    let r = get(&off, "/v1/acl/token/self").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["AccessorID"], "acls-disabled");
    assert_eq!(r.json()["Type"], "client");
    let on = NomadServer::builder().acl(true).start();
    setup(&on);
    assert_eq!(
        get(&on, "/v1/acl/token/self").await.json()["AccessorID"],
        "anonymous"
    );
    let r = get_with(
        &on,
        "/v1/acl/token/self",
        "7b0e3c8e-0000-4000-8000-000000000000",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
}

#[tokio::test]
async fn capabilities_and_token_headers() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .acl(true)
        .start();
    let t = setup(&nomad);
    register_with(&nomad, &t.management, "keepalive").await;
    let r = get_with(&nomad, "/v1/jobs", &t.no_jobs).await;
    assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
    let r = get_with(&nomad, "/v1/jobs", "7b0e3c8e-0000-4000-8000-000000000000").await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL token not found"));
    let r = get(&nomad, "/v1/jobs").await;
    assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
    let bearer = format!("Bearer {}", t.management);
    let r = call(
        &nomad,
        "GET",
        "/v1/jobs",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "Permission denied"),
        "1.1 reads only X-Nomad-Token"
    );
    assert_eq!(get_with(&nomad, "/v1/jobs", &t.read).await.status, 200);
    assert_eq!(get_with(&nomad, "/v1/nodes", &t.no_jobs).await.status, 200);
    assert_eq!(get_with(&nomad, "/v1/nodes", &t.read).await.status, 403);
    assert_eq!(
        get_with(&nomad, "/v1/agent/self", &t.read).await.status,
        403
    );
    assert_eq!(
        get_with(&nomad, "/v1/agent/self", &t.management)
            .await
            .status,
        200
    );
    let r = put_json_with(
        &nomad,
        "/v1/jobs",
        &t.read,
        &keepalive_job("nope", KEEPALIVE),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
    // The request log shows where the token went: headers only, never a URL.
    for req in nomad.requests() {
        assert!(!req.query.contains(&t.management) && !req.path.contains(&t.management));
    }
    assert!(
        nomad
            .requests()
            .iter()
            .any(|r| r.header("X-Nomad-Token") == Some(t.management.as_str()))
    );
}

#[tokio::test]
async fn modern_accepts_bearer_tokens() {
    let nomad = NomadServer::builder().acl(true).start();
    let t = setup(&nomad);
    let bearer = format!("Bearer {}", t.read);
    assert_eq!(
        call(
            &nomad,
            "GET",
            "/v1/jobs",
            &[("Authorization", &bearer)],
            None
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn exec_needs_alloc_exec_and_alloc_node_exec_on_raw_exec() {
    let nomad = NomadServer::builder()
        .profile(Profile::V1_1)
        .acl(true)
        .start();
    let t = setup(&nomad);
    let alloc = register_with(&nomad, &t.management, "keepalive").await;
    let target = exec_target(&alloc, "t", &["/bin/sh", "-c", "echo ok; exit 6"], "");
    for (token, denied) in [
        (Some(&t.read), true),
        (None, true),
        (Some(&t.exec_only), true),
        (Some(&t.exec_node), false),
    ] {
        let headers: Vec<(&str, &str)> = token
            .map(|t| vec![("X-Nomad-Token", t.as_str())])
            .unwrap_or_default();
        let mut ws = ws_connect(&nomad, &target, &headers)
            .await
            .expect("the upgrade succeeds");
        ws.send(stdin_close()).await.unwrap();
        let s = read_session(&mut ws, T).await;
        if denied {
            assert_eq!(s.close, Some((1011, "Permission denied".into())));
        } else {
            assert_eq!(s.exit_code(), Some(6));
            assert_eq!(s.stdout, b"ok\n");
        }
    }
    // The token in the handshake frame alone.
    let mut ws = ws_connect(&nomad, &format!("{target}&ws_handshake=true"), &[])
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"version": 1, "auth_token": t.exec_node}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(stdin_close()).await.unwrap();
    assert_eq!(read_session(&mut ws, T).await.exit_code(), Some(6));
}

#[tokio::test]
async fn modern_handshake_token_must_match_the_header() {
    let nomad = NomadServer::builder().acl(true).start();
    let t = setup(&nomad);
    let alloc = register_with(&nomad, &t.management, "keepalive").await;
    let target = exec_target(&alloc, "t", &["true"], "&ws_handshake=true");
    let mut ws = ws_connect(&nomad, &target, &[("X-Nomad-Token", &t.exec_node)])
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"version": 1, "auth_token": t.management}).to_string(),
    ))
    .await
    .unwrap();
    let s = read_session(&mut ws, T).await;
    assert_eq!(
        s.close,
        Some((
            1008,
            "handshake auth token mismatched auth header token".into()
        ))
    );
}
