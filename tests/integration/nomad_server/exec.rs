//! Exec websocket frame rules (NOMAD-WIRE.md §3, §9, §10) with real processes.

use std::time::Duration;

use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use super::client::*;
use crate::support::nomad::NomadServer;

const T: Duration = Duration::from_secs(10);

async fn exec(nomad: &NomadServer, alloc: &str, cmd: &[&str], close_stdin: bool) -> Session {
    let mut ws = ws_connect(nomad, &exec_target(alloc, "t", cmd, ""), &[])
        .await
        .expect("upgrade");
    if close_stdin {
        ws.send(stdin_close()).await.unwrap();
    }
    read_session(&mut ws, T).await
}

#[tokio::test]
async fn output_exit_code_and_frame_order_on_1_1() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "ex").await;
    let s = exec(
        &nomad,
        &alloc,
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
        true,
    )
    .await;
    assert_eq!(s.stdout, b"out\n");
    assert_eq!(s.stderr, b"err\n");
    assert_eq!(s.control(), ["stderr-close", "stdout-close", "exited"]);
    assert_eq!(s.exit_code(), Some(3));
    assert_eq!(
        s.close,
        Some((1000, String::new())),
        "1.1 sends close 1000 after exited"
    );
    assert!(!s.tcp_held_after_close, "and closes TCP at once");
}

#[tokio::test]
async fn modern_drops_tcp_after_exited_and_exit_0_is_an_empty_result() {
    let nomad = NomadServer::start_modern();
    let alloc = running_keepalive(&nomad, "ex").await;
    let s = exec(&nomad, &alloc, &["true"], true).await;
    let exited = s.frames.iter().find(|f| f["exited"] == true).unwrap();
    assert_eq!(exited["result"], serde_json::json!({}));
    assert_eq!(s.exit_code(), Some(0));
    assert_eq!(s.close, None);
    assert!(s.dropped, "modern agents drop TCP without a close frame");
}

#[tokio::test]
async fn stdin_reaches_eof_only_on_close_and_nothing_ends_while_it_is_open() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "cat").await;
    let mut ws = ws_connect(&nomad, &exec_target(&alloc, "t", &["cat"], ""), &[])
        .await
        .unwrap();
    ws.send(stdin_data(b"hello\n")).await.unwrap();
    let s = read_until(&mut ws, |s| s.stdout == b"hello\n", T).await;
    assert_eq!(s.stdout, b"hello\n");
    let s = read_session(&mut ws, Duration::from_millis(300)).await;
    assert!(
        s.timed_out && s.control().is_empty(),
        "no close or exited while stdin is open"
    );
    ws.send(stdin_close()).await.unwrap();
    let s = read_session(&mut ws, T).await;
    assert_eq!(s.control(), ["stderr-close", "stdout-close", "exited"]);
    assert_eq!(s.exit_code(), Some(0));
}

#[tokio::test]
async fn no_stdin_close_hangs_and_a_client_close_is_answered_with_tcp_left_open() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "hang").await;
    let mut ws = ws_connect(&nomad, &exec_target(&alloc, "t", &["echo", "hi"], ""), &[])
        .await
        .unwrap();
    let s = read_until(&mut ws, |s| s.stdout == b"hi\n", T).await;
    assert_eq!(s.stdout, b"hi\n");
    let s = read_session(&mut ws, Duration::from_millis(300)).await;
    assert!(s.control().is_empty() && s.timed_out);
    ws.send(Message::Close(Some(
        tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "".into(),
        },
    )))
    .await
    .unwrap();
    let s = read_session(&mut ws, T).await;
    assert_eq!(s.close.as_ref().map(|c| c.0), Some(1000));
    assert!(s.tcp_held_after_close);
}

#[tokio::test]
async fn tty_size_with_tty_off_breaks_the_session() {
    // 1.1: hangs like a session whose stdin never closes.
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "tty").await;
    let mut ws = ws_connect(&nomad, &exec_target(&alloc, "t", &["echo", "hi"], ""), &[])
        .await
        .unwrap();
    ws.send(Message::text(r#"{"tty_size":{"height":40,"width":100}}"#))
        .await
        .unwrap();
    ws.send(stdin_close()).await.unwrap();
    let s = read_until(&mut ws, |s| s.stdout == b"hi\n", T).await;
    assert_eq!(s.stdout, b"hi\n");
    let s = read_session(&mut ws, Duration::from_millis(300)).await;
    assert!(s.timed_out && s.control().is_empty());
    // Modern: close 1011 after the command exits.
    let nomad = NomadServer::start_modern();
    let alloc = running_keepalive(&nomad, "tty").await;
    let mut ws = ws_connect(&nomad, &exec_target(&alloc, "t", &["echo", "hi"], ""), &[])
        .await
        .unwrap();
    ws.send(Message::text(r#"{"tty_size":{"height":40,"width":100}}"#))
        .await
        .unwrap();
    ws.send(stdin_close()).await.unwrap();
    let s = read_session(&mut ws, T).await;
    assert_eq!(
        s.close,
        Some((
            1011,
            "failed to resize tty: attempted to resize a non-tty session".into()
        ))
    );
}

#[tokio::test]
async fn heartbeats_are_ignored() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "hb").await;
    let mut ws = ws_connect(
        &nomad,
        &exec_target(&alloc, "t", &["/bin/sh", "-c", "sleep 0.2; echo ok"], ""),
        &[],
    )
    .await
    .unwrap();
    ws.send(Message::text("{}")).await.unwrap();
    ws.send(stdin_close()).await.unwrap();
    ws.send(Message::text("{}")).await.unwrap();
    let s = read_session(&mut ws, T).await;
    assert_eq!(s.stdout, b"ok\n");
    assert_eq!(s.exit_code(), Some(0));
}

#[tokio::test]
async fn large_output_arrives_in_frames_of_at_most_4096_bytes() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "big").await;
    let s = exec(
        &nomad,
        &alloc,
        &["/bin/sh", "-c", "head -c 300000 /dev/zero"],
        true,
    )
    .await;
    assert_eq!(s.stdout.len(), 300_000);
    let data_frames = s
        .frames
        .iter()
        .filter(|f| f["stdout"]["data"].is_string())
        .count();
    assert!(data_frames >= 300_000 / 4096);
    assert_eq!(s.exit_code(), Some(0));
}

#[tokio::test]
async fn signal_death_reports_128_plus_signo() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "sig").await;
    let s = exec(&nomad, &alloc, &["/bin/sh", "-c", "kill -9 $$"], true).await;
    assert_eq!(s.exit_code(), Some(137));
}

#[tokio::test]
async fn exec_runs_in_root_with_the_task_environment() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "envx").await;
    let s = exec(&nomad, &alloc, &["/bin/sh", "-c", "pwd; echo $NOMAD_ALLOC_ID; echo $NOMAD_JOB_NAME; test -d \"$NOMAD_ALLOC_DIR\" && echo dir"], true).await;
    assert_eq!(
        String::from_utf8_lossy(&s.stdout),
        format!("/\n{alloc}\nenvx\ndir\n")
    );
}

#[tokio::test]
async fn error_closes_and_codes_on_1_1() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "errs").await;
    let cases: Vec<(String, u16, String)> = vec![
        (exec_target(&alloc, "nope", &["true"], ""), 1011, "task not found".into()),
        (exec_target(&alloc, "", &["true"], ""), 1008, "must provide task name".into()),
        (exec_target(&alloc, "t", &[], ""), 1008, "command is not present".into()),
        (exec_target("6c1f1d2e-0000-0000-0000-000000000000", "t", &["true"], ""), 1008, "Unknown allocation \"6c1f1d2e-0000-0000-0000-000000000000\"".into()),
        (
            exec_target(&alloc, "t", &["/nonexistent"], ""),
            1011,
            "rpc error: code = Unknown desc = failed to start command: fork/exec /nonexistent: no such file or directory".into(),
        ),
    ];
    for (target, code, reason) in cases {
        let mut ws = ws_connect(&nomad, &target, &[])
            .await
            .expect("upgrade first");
        let s = read_session(&mut ws, T).await;
        assert_eq!(s.close, Some((code, reason)), "{target}");
    }
    let r = ws_connect(
        &nomad,
        &format!("/v1/client/allocation/{alloc}/exec?task=t&tty=false&command=%2Fbin%2Ftrue"),
        &[],
    )
    .await;
    assert_eq!(
        r.err(),
        Some((500, "failed to marshal command into json: invalid character '/' looking for beginning of value".into()))
    );
    let r = ws_connect(
        &nomad,
        &exec_target(&alloc, "t", &["true"], ""),
        &[("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.err().map(|e| e.0), Some(403));
}

#[tokio::test]
async fn modern_error_codes_differ() {
    let nomad = NomadServer::start_modern();
    let alloc = running_keepalive(&nomad, "errs").await;
    let mut ws = ws_connect(&nomad, &exec_target(&alloc, "nope", &["true"], ""), &[])
        .await
        .unwrap();
    assert_eq!(
        read_session(&mut ws, T).await.close,
        Some((1008, "unknown task name \"nope\"".into()))
    );
    let mut ws = ws_connect(
        &nomad,
        &format!("/v1/client/allocation/{alloc}/exec?task=t&command=%2Fbin%2Ftrue"),
        &[],
    )
    .await
    .expect("modern upgrades first");
    let s = read_session(&mut ws, T).await;
    assert_eq!(s.close.as_ref().map(|c| c.0), Some(1011));
    assert!(
        s.close
            .unwrap()
            .1
            .starts_with("failed to marshal command into json: ")
    );
}

#[tokio::test]
async fn stopped_task_is_not_running() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "stopped").await;
    delete(&nomad, "/v1/job/stopped").await;
    nomad.wait_alloc_terminal(&alloc, T).unwrap();
    let mut ws = ws_connect(&nomad, &exec_target(&alloc, "t", &["true"], ""), &[])
        .await
        .unwrap();
    assert_eq!(
        read_session(&mut ws, T).await.close,
        Some((1008, "task \"t\" is not running.".into()))
    );
}

#[tokio::test]
async fn handshake_frame_rules() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "hs").await;
    let mut ws = ws_connect(
        &nomad,
        &exec_target(
            &alloc,
            "t",
            &["/bin/sh", "-c", "exit 4"],
            "&ws_handshake=true",
        ),
        &[],
    )
    .await
    .unwrap();
    ws.send(Message::text(r#"{"version":1,"auth_token":""}"#))
        .await
        .unwrap();
    ws.send(stdin_close()).await.unwrap();
    assert_eq!(read_session(&mut ws, T).await.exit_code(), Some(4));
    let mut ws = ws_connect(
        &nomad,
        &exec_target(&alloc, "t", &["true"], "&ws_handshake=true"),
        &[],
    )
    .await
    .unwrap();
    ws.send(Message::text(r#"{"version":2,"auth_token":""}"#))
        .await
        .unwrap();
    let s = read_session(&mut ws, T).await;
    assert_eq!(
        s.close,
        Some((1008, "unexpected handshake value: 2".into()))
    );
    assert!(
        s.tcp_held_after_close,
        "1.1 leaves TCP open after a bad handshake"
    );
}

#[tokio::test]
async fn a_client_disconnect_leaves_the_process_running_until_the_task_stops() {
    let nomad = NomadServer::start_v1_1();
    let alloc = running_keepalive(&nomad, "orphan").await;
    let mut ws = ws_connect(
        &nomad,
        &exec_target(
            &alloc,
            "t",
            &["/bin/sh", "-c", "echo started; sleep 60"],
            "",
        ),
        &[],
    )
    .await
    .unwrap();
    ws.send(stdin_close()).await.unwrap();
    let s = read_until(&mut ws, |s| s.stdout == b"started\n", T).await;
    assert_eq!(s.stdout, b"started\n");
    drop(ws);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(nomad.alive_processes().iter().any(|p| p.kind == "exec"));
    delete(&nomad, "/v1/job/orphan").await;
    nomad.wait_alloc_terminal(&alloc, T).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        nomad.alive_processes().is_empty(),
        "{:?}",
        nomad.alive_processes()
    );
}
