//! A minimal HTTP/1.1 and websocket client for the server's own tests: one request per
//! connection (as the recordings were made), raw status, headers and body.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::support::nomad::NomadServer;

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn index(&self) -> u64 {
        self.header("X-Nomad-Index")
            .and_then(|v| v.parse().ok())
            .expect("X-Nomad-Index")
    }
}

pub async fn request_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    stream.write_all(&bytes).await.expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read reply");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..pos]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[pos + 2..pos + 2 + size]);
            rest = &rest[pos + 2 + size + 2..];
        }
        body = out;
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// One HTTP request to an instance, over its own TCP connection.
pub async fn call(
    server: &NomadServer,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let stream = TcpStream::connect(server.addr()).await.expect("connect");
    request_on(stream, method, target, headers, body).await
}

pub async fn get(server: &NomadServer, target: &str) -> Reply {
    call(server, "GET", target, &[], None).await
}

pub async fn get_with(server: &NomadServer, target: &str, token: &str) -> Reply {
    call(server, "GET", target, &[("X-Nomad-Token", token)], None).await
}

pub async fn put_json(server: &NomadServer, target: &str, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    call(server, "PUT", target, &[], Some(&bytes)).await
}

pub async fn put_json_with(server: &NomadServer, target: &str, token: &str, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    call(
        server,
        "PUT",
        target,
        &[("X-Nomad-Token", token)],
        Some(&bytes),
    )
    .await
}

pub async fn delete(server: &NomadServer, target: &str) -> Reply {
    call(server, "DELETE", target, &[], None).await
}

/// The recorded keepalive job, with a configurable ID and command.
pub fn keepalive_job(id: &str, script: &str) -> Value {
    serde_json::json!({
        "Job": {
            "ID": id, "Name": id, "Type": "service", "Datacenters": ["dc1"],
            "Meta": {"owner": "tests", "purpose": "keepalive"},
            "TaskGroups": [{
                "Name": "g", "Count": 1,
                "Tasks": [{"Name": "t", "Driver": "raw_exec",
                           "Config": {"command": "/bin/sh", "args": ["-c", script]}}],
                "RestartPolicy": {"Attempts": 0, "Interval": 1_800_000_000_000i64, "Delay": 15_000_000_000i64, "Mode": "fail"},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": false}
            }]
        },
        "EnforceIndex": true,
        "JobModifyIndex": 0
    })
}

pub const KEEPALIVE: &str = "while :; do sleep 3600; done";

/// Registers a keepalive job and waits for its allocation to run; returns the allocation ID.
pub async fn running_keepalive(server: &NomadServer, id: &str) -> String {
    let reply = put_json(server, "/v1/jobs", &keepalive_job(id, KEEPALIVE)).await;
    assert_eq!(reply.status, 200, "register: {}", reply.text());
    wait_running(server, id).await
}

pub async fn wait_running(server: &NomadServer, job: &str) -> String {
    for _ in 0..1500 {
        let allocs = get(server, &format!("/v1/job/{job}/allocations"))
            .await
            .json();
        if let Some(a) =
            allocs.as_array().into_iter().flatten().find(|a| {
                a["ClientStatus"] == "running" && a["TaskStates"]["t"]["State"] == "running"
            })
        {
            return a["ID"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {job} never ran");
}

pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens an exec websocket; `Err((status, body))` when the upgrade is refused.
pub async fn ws_connect(
    server: &NomadServer,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, (u16, String)> {
    let url = format!("ws://{}{}", server.addr(), target);
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let stream = TcpStream::connect(server.addr()).await.expect("connect");
    match tokio_tungstenite::client_async(req, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((status, body))
        }
        Err(e) => panic!("websocket: {e}"),
    }
}

pub fn exec_target(alloc: &str, task: &str, command: &[&str], extra: &str) -> String {
    let cmd = serde_json::to_string(command).unwrap();
    format!(
        "/v1/client/allocation/{alloc}/exec?task={task}&tty=false&command={}{extra}",
        form_encode(&cmd)
    )
}

pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What a session produced, frame by frame.
#[derive(Debug, Default)]
pub struct Session {
    pub frames: Vec<Value>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The server's close frame, if one came.
    pub close: Option<(u16, String)>,
    /// The connection ended (EOF/reset) without a close frame.
    pub dropped: bool,
    /// Nothing more came within the read timeout.
    pub timed_out: bool,
    /// After the close frame, the server kept the TCP connection open (for at least 500 ms).
    pub tcp_held_after_close: bool,
}

impl Session {
    pub fn exit_code(&self) -> Option<i64> {
        self.frames
            .iter()
            .find(|f| f["exited"] == true)
            .map(|f| f["result"]["exit_code"].as_i64().unwrap_or(0))
    }

    /// The non-data frames in order, e.g. `stderr-close`, `stdout-close`, `exited`.
    pub fn control(&self) -> Vec<String> {
        self.frames
            .iter()
            .filter_map(|f| {
                if f["stdout"]["close"] == true {
                    Some("stdout-close".to_string())
                } else if f["stderr"]["close"] == true {
                    Some("stderr-close".to_string())
                } else if f["exited"] == true {
                    Some("exited".to_string())
                } else {
                    None
                }
            })
            .collect()
    }
}

pub fn stdin_close() -> Message {
    Message::text(r#"{"stdin":{"close":true}}"#)
}

pub fn stdin_data(data: &[u8]) -> Message {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    Message::text(serde_json::json!({"stdin": {"data": b64}}).to_string())
}

/// Reads frames until the server closes, drops, or `timeout` passes with nothing new.
pub async fn read_session(ws: &mut Ws, timeout: Duration) -> Session {
    use base64::Engine;
    use futures::StreamExt;
    let mut s = Session::default();
    loop {
        match tokio::time::timeout(timeout, ws.next()).await {
            Err(_) => {
                s.timed_out = true;
                return s;
            }
            Ok(None) | Ok(Some(Err(_))) => {
                s.dropped = s.close.is_none();
                return s;
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                for (name, buf) in [("stdout", &mut s.stdout), ("stderr", &mut s.stderr)] {
                    if let Some(d) = v[name]["data"].as_str() {
                        let bytes = base64::engine::general_purpose::STANDARD.decode(d).unwrap();
                        assert!(bytes.len() <= 4096, "frame over 4096 decoded bytes");
                        buf.extend(bytes);
                    }
                }
                s.frames.push(v);
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                s.close = Some(
                    frame
                        .map(|f: CloseFrame| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new())),
                );
                // What follows on TCP (EOF, or nothing) is part of the rule.
                // Answer the close as the recording client did, then watch the TCP connection.
                let _ = futures::SinkExt::flush(ws).await;
                let mut buf = [0u8; 64];
                s.tcp_held_after_close =
                    tokio::time::timeout(Duration::from_millis(500), ws.get_mut().read(&mut buf))
                        .await
                        .is_err();
                return s;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Reads frames into `s` for up to `d`; true when the session ended (close frame or EOF).
pub async fn read_for(ws: &mut Ws, s: &mut Session, d: Duration) -> bool {
    use base64::Engine;
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => {
                s.dropped = s.close.is_none();
                return true;
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                for (name, buf) in [("stdout", &mut s.stdout), ("stderr", &mut s.stderr)] {
                    if let Some(d) = v[name]["data"].as_str() {
                        let bytes = base64::engine::general_purpose::STANDARD.decode(d).unwrap();
                        assert!(bytes.len() <= 4096, "frame over 4096 decoded bytes");
                        buf.extend(bytes);
                    }
                }
                s.frames.push(v);
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                s.close = Some(
                    frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new())),
                );
                // Answer the close as the recording client did, then watch the TCP connection.
                let _ = futures::SinkExt::flush(ws).await;
                let mut buf = [0u8; 64];
                s.tcp_held_after_close =
                    tokio::time::timeout(Duration::from_millis(500), ws.get_mut().read(&mut buf))
                        .await
                        .is_err();
                return true;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Reads until `done` holds, the session ends, or `timeout` passes.
pub async fn read_until(
    ws: &mut Ws,
    done: impl Fn(&Session) -> bool,
    timeout: Duration,
) -> Session {
    let mut s = Session::default();
    let deadline = Instant::now() + timeout;
    while !done(&s) && Instant::now() < deadline {
        if read_for(ws, &mut s, Duration::from_millis(50)).await {
            break;
        }
    }
    s
}

/// Polls an evaluation until the scheduler has processed it.
pub async fn settled_eval(server: &NomadServer, id: &str) -> Value {
    for _ in 0..1000 {
        let e = get(server, &format!("/v1/evaluation/{id}")).await.json();
        if e["Status"] != "pending" {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("evaluation {id} never settled");
}
