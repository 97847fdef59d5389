//! The allocation exec websocket (`/v1/client/allocation/:id/exec`) with real processes.
//!
//! Frame rules (NOMAD-WIRE.md §3, §9, §10): base64 data frames of at most 4096 decoded bytes;
//! stream-close frames and `exited` only once the client closed stdin and the process exited;
//! `exited` with `result.exit_code` (`{}` for 0); `tty_size` with TTY off breaks the stdin reader
//! (1.1: the session hangs; modern: close 1011 after the exit); errors as close 1008/1011 with
//! the bare text; 1.1 sends close 1000 after `exited`, modern drops TCP. A client that goes away
//! leaves its process running (it is in the task's process group, so stopping the task ends it),
//! unless the `exec_kill_on_broken_output` fault makes the server kill it as a raw_exec agent
//! does when output was flowing (NOMAD-WIRE.md §9).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Shared;
use super::http::{Query, go_json_error, header_secret, identity, parse_go_bool};
use super::process::{self, ProcessInfo, SpawnSpec};

fn plain(status: u16, msg: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(msg.to_string()))
        .unwrap()
}

fn parse_command(raw: Option<&str>) -> Result<Vec<String>, String> {
    let raw = raw.unwrap_or("");
    let parsed: Result<Vec<String>, _> = serde_json::from_str(raw);
    parsed.map_err(|e| {
        let text = if raw.trim().is_empty() {
            "unexpected end of JSON input".to_string()
        } else if raw
            .trim_start()
            .starts_with(['[', '{', '"', '-', 't', 'f', 'n'])
            || raw.trim_start().starts_with(|c: char| c.is_ascii_digit())
        {
            if raw.trim_start().starts_with('[') {
                "json: cannot unmarshal value into Go value of type []string".to_string()
            } else {
                let kind = if raw.trim_start().starts_with('"') {
                    "string"
                } else {
                    "value"
                };
                format!("json: cannot unmarshal {kind} into Go value of type []string")
            }
        } else {
            go_json_error(raw.as_bytes(), &e)
        };
        format!("failed to marshal command into json: {text}")
    })
}

fn origin_ok(parts: &Parts) -> bool {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

pub async fn handle(shared: Arc<Shared>, mut parts: Parts, q: Query, alloc_id: String) -> Response {
    let v11 = shared.config.profile.is_v1_1();
    if !origin_ok(&parts) {
        return plain(403, "Forbidden\n");
    }
    let tty = match q.get("tty") {
        None | Some("") => Ok(false),
        Some(v) => parse_go_bool(v)
            .ok_or_else(|| format!("strconv.ParseBool: parsing {v:?}: invalid syntax")),
    };
    let command = parse_command(q.get("command"));
    if v11 {
        if let Err(e) = &tty {
            return plain(500, e);
        }
        if let Err(e) = &command {
            return plain(500, e);
        }
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let secret = header_secret(&shared, &parts.headers);
    let req = ExecRequest {
        alloc_id,
        task: q.get("task").unwrap_or("").to_string(),
        tty: tty.unwrap_or(false),
        command,
        handshake: q
            .get("ws_handshake")
            .and_then(parse_go_bool)
            .unwrap_or(false),
        secret,
    };
    ws.on_upgrade(move |socket| session(shared, socket, req))
}

struct ExecRequest {
    alloc_id: String,
    task: String,
    tty: bool,
    command: Result<Vec<String>, String>,
    handshake: bool,
    secret: Option<String>,
}

fn close_msg(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

/// Sends a close frame and keeps the TCP connection open for a while, as 1.1.2 does after a
/// bad handshake or a hung session.
async fn close_and_hold(shared: &Shared, mut ws: WebSocket, code: u16, reason: &str) {
    let _ = ws.send(close_msg(code, reason)).await;
    hold(shared, ws).await;
}

async fn hold<S>(shared: &Shared, ws: S) {
    tokio::time::sleep(shared.config.timings.hung_exec_hold).await;
    drop(ws);
}

/// Close, then drop TCP.
async fn close_and_drop(mut ws: WebSocket, code: u16, reason: &str) {
    let _ = ws.send(close_msg(code, reason)).await;
    // Give the client a moment to read the frame before the TCP close.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), ws.recv()).await;
}

async fn session(shared: Arc<Shared>, mut ws: WebSocket, req: ExecRequest) {
    let v11 = shared.config.profile.is_v1_1();
    let mut secret = req.secret.clone();
    if req.handshake {
        let first = ws.recv().await;
        let frame: Option<Value> = match first {
            Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).ok(),
            Some(Ok(Message::Binary(b))) => serde_json::from_slice(&b).ok(),
            _ => None,
        };
        let Some(frame) = frame else {
            return close_and_hold(&shared, ws, 1008, "failed to read handshake").await;
        };
        let version = frame["version"].as_i64().unwrap_or(0);
        if version != 1 {
            let reason = format!("unexpected handshake value: {version}");
            if v11 {
                return close_and_hold(&shared, ws, 1008, &reason).await;
            }
            return close_and_drop(ws, 1008, &reason).await;
        }
        let token = frame["auth_token"].as_str().unwrap_or("").to_string();
        if !token.is_empty() {
            if !v11 && secret.as_deref().is_some_and(|s| s != token) {
                return close_and_drop(
                    ws,
                    1008,
                    "handshake auth token mismatched auth header token",
                )
                .await;
            }
            secret = Some(token);
        }
    }
    let command = match &req.command {
        Ok(c) => c.clone(),
        Err(e) => return close_and_drop(ws, 1011, e).await,
    };
    match prepare(&shared, &req, secret.as_deref(), &command) {
        Ok(prepared) => run(shared, ws, req, command, prepared).await,
        Err((code, reason)) => close_and_drop(ws, code, &reason).await,
    }
}

struct Prepared {
    pgid: i32,
    env: Vec<(String, String)>,
}

/// The checks a real agent makes before starting the command, with their close codes.
fn prepare(
    shared: &Shared,
    req: &ExecRequest,
    secret: Option<&str>,
    command: &[String],
) -> Result<Prepared, (u16, String)> {
    let v11 = shared.config.profile.is_v1_1();
    if req.task.is_empty() {
        return Err((1008, "must provide task name".into()));
    }
    if command.is_empty() {
        return Err((1008, "command is not present".into()));
    }
    let alloc = shared.read(|st| st.allocs.get(&req.alloc_id).cloned());
    let Some(alloc) = alloc else {
        return Err((1008, format!("Unknown allocation \"{}\"", req.alloc_id)));
    };
    let id = identity(shared, secret).map_err(|_| (1011, "Permission denied".to_string()))?;
    let group = alloc.job["TaskGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["Name"] == alloc.task_group)
        .cloned();
    let task = group
        .as_ref()
        .and_then(|g| g["Tasks"].as_array().cloned())
        .into_iter()
        .flatten()
        .find(|t| t["Name"] == req.task.as_str());
    let driver = task
        .as_ref()
        .and_then(|t| t["Driver"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut allowed = id.allow_ns(&alloc.namespace, "alloc-exec");
    if matches!(driver.as_str(), "raw_exec" | "") {
        allowed &= id.allow_ns(&alloc.namespace, "alloc-node-exec");
    }
    if !allowed || shared.config.disable_remote_exec {
        return Err((1011, "Permission denied".into()));
    }
    if task.is_none() {
        return Err(if v11 {
            (1011, "task not found".into())
        } else {
            (1008, format!("unknown task name {:?}", req.task))
        });
    }
    if !v11 && alloc.client_terminal() {
        return Err((
            1008,
            format!(
                "exec not possible, client status of allocation {} is {}",
                alloc.id, alloc.client_status
            ),
        ));
    }
    let state = alloc
        .task_states
        .get(&req.task)
        .cloned()
        .unwrap_or_default();
    if state.started_at.is_none() {
        return Err((1008, format!("task {:?} not started yet.", req.task)));
    }
    if state.state != "running" {
        return Err((1008, format!("task {:?} is not running.", req.task)));
    }
    // An injected failure's task exits at once: an exec that arrives while its state still
    // reads `running` finds it gone, as one that loses the race on an agent does (so the
    // allocation is always "seen running, then dead", never usable).
    let rt = shared
        .runtimes
        .lock()
        .unwrap()
        .get(&req.alloc_id)
        .filter(|r| r.failure.is_none())
        .and_then(|r| r.tasks.get(&req.task).cloned());
    let Some(rt) = rt else {
        return Err((1008, format!("task {:?} is not running.", req.task)));
    };
    Ok(Prepared {
        pgid: rt.pgid,
        env: rt.env,
    })
}

fn in_path(program: &str, env: &[(String, String)]) -> bool {
    if program.contains('/') {
        return true;
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    path.split(':')
        .any(|d| std::path::Path::new(d).join(program).is_file())
}

enum Event {
    Data(&'static str, Vec<u8>),
    Eof(&'static str),
    Exit(i64),
}

fn data_frame(stream: &str, bytes: &[u8]) -> Message {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    Message::Text(Utf8Bytes::from(json!({stream: {"data": b64}}).to_string()))
}

fn text_frame(v: Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

/// The session's view of the client's frames.
struct ClientState {
    stdin_tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    stdin_closed: bool,
    stdin_broken: bool,
    tty: bool,
    pty: Option<std::os::fd::OwnedFd>,
}

impl ClientState {
    fn on_text(&mut self, text: &str) {
        let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if !frame["tty_size"].is_null() {
            if self.tty {
                if let Some(m) = &self.pty {
                    let h = frame["tty_size"]["height"].as_u64().unwrap_or(24) as u16;
                    let w = frame["tty_size"]["width"].as_u64().unwrap_or(80) as u16;
                    process::resize_pty(m, h, w);
                }
            } else {
                // Executor drivers stop reading stdin after a failed resize.
                self.stdin_broken = true;
            }
        } else if let Some(stdin) = frame.get("stdin") {
            if self.stdin_broken {
                return;
            }
            if let Some(data) = stdin["data"].as_str()
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
                && let Some(tx) = &self.stdin_tx
            {
                let _ = tx.send(bytes);
            }
            if stdin["close"].as_bool() == Some(true) {
                self.stdin_closed = true;
                if self.tty {
                    // EOF on a terminal is ^D.
                    if let Some(tx) = &self.stdin_tx {
                        let _ = tx.send(vec![4]);
                    }
                } else {
                    drop(self.stdin_tx.take());
                }
            }
        }
    }
}

type BoxRead = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type BoxWrite = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

fn pty_file(fd: &std::os::fd::OwnedFd) -> std::io::Result<tokio::fs::File> {
    Ok(tokio::fs::File::from_std(std::fs::File::from(
        fd.try_clone()?,
    )))
}

async fn run(
    shared: Arc<Shared>,
    mut ws: WebSocket,
    req: ExecRequest,
    command: Vec<String>,
    p: Prepared,
) {
    let v11 = shared.config.profile.is_v1_1();
    if !in_path(&command[0], &p.env) {
        let msg = format!(
            "rpc error: code = Unknown desc = failed to start command: exec: {:?}: executable file not found in $PATH",
            command[0]
        );
        return close_and_drop(ws, 1011, &msg).await;
    }
    // With a TTY, a `tty_size` sent right after the upgrade sizes the terminal before the
    // command starts.
    let mut early: Option<Message> = None;
    let mut size = (24u16, 80u16);
    if req.tty
        && let Ok(Some(Ok(msg))) =
            tokio::time::timeout(std::time::Duration::from_millis(100), ws.recv()).await
    {
        let frame: Value = match &msg {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        if frame["tty_size"].is_object() {
            size = (
                frame["tty_size"]["height"].as_u64().unwrap_or(24) as u16,
                frame["tty_size"]["width"].as_u64().unwrap_or(80) as u16,
            );
        } else {
            early = Some(msg);
        }
    }
    let spec = SpawnSpec {
        program: &command[0],
        args: &command[1..],
        env: &p.env,
        cwd: std::path::Path::new("/"),
        group: Some(p.pgid),
        ignore_sigint: false,
        pipes: true,
    };
    if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let spawned = if req.tty {
        process::spawn_pty(&spec, size.0, size.1).map(|(c, m)| (c, Some(m)))
    } else {
        match process::spawn(&spec) {
            Ok(c) => Ok((c, None)),
            // The task's group is gone (its leader exited): start a group of our own.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => process::spawn(&SpawnSpec {
                group: None,
                ..spec
            })
            .map(|c| (c, None)),
            Err(e) => Err(e),
        }
    };
    let (mut child, pty) = match spawned {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "rpc error: code = Unknown desc = failed to start command: fork/exec {}: {}",
                command[0],
                super::scheduler::go_errno_text(&e)
            );
            return close_and_drop(ws, 1011, &msg).await;
        }
    };
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    let pgid = {
        // SAFETY: getpgid has no memory-safety requirements.
        let g = unsafe { libc::getpgid(pid) };
        if g > 0 { g } else { pid }
    };
    shared.procs.add(ProcessInfo {
        pid,
        pgid,
        alloc_id: req.alloc_id.clone(),
        task: req.task.clone(),
        kind: "exec".into(),
    });

    let (stdout, stderr, stdin): (Option<BoxRead>, Option<BoxRead>, Option<BoxWrite>) = match &pty {
        Some(m) => match (pty_file(m), pty_file(m)) {
            (Ok(r), Ok(w)) => (Some(Box::new(r)), None, Some(Box::new(w))),
            _ => (None, None, None),
        },
        None => (
            child.stdout.take().map(|s| Box::new(s) as BoxRead),
            child.stderr.take().map(|s| Box::new(s) as BoxRead),
            child.stdin.take().map(|s| Box::new(s) as BoxWrite),
        ),
    };
    // stdin: a writer task fed by a channel; dropping the sender closes the pipe (EOF).
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if let Some(mut pipe) = stdin {
        tokio::spawn(async move {
            while let Some(chunk) = stdin_rx.recv().await {
                if pipe.write_all(&chunk).await.is_err() || pipe.flush().await.is_err() {
                    break;
                }
            }
            drop(pipe);
        });
    }
    let (tx, mut rx) = mpsc::channel::<Event>(16);
    if stderr.is_none() {
        let _ = tx.send(Event::Eof("stderr")).await;
    }
    for (name, pipe) in [("stdout", stdout), ("stderr", stderr)] {
        let tx = tx.clone();
        let Some(mut pipe) = pipe else { continue };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match pipe.read(&mut buf).await {
                    // A PTY master reads EIO once the terminal's last user is gone.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Event::Data(name, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Event::Eof(name)).await;
        });
    }
    tokio::spawn(async move {
        let status = child.wait().await;
        let code = status.map(process::exit_of).map(|(c, _)| c).unwrap_or(-2);
        let _ = tx.send(Event::Exit(code)).await;
    });

    let drop_after = {
        let mut f = shared.faults.lock().unwrap();
        if req.tty && !f.tty_exec_drops.is_empty() {
            Some(f.tty_exec_drops.remove(0))
        } else if f.exec_drops.is_empty() {
            None
        } else {
            Some(f.exec_drops.remove(0))
        }
    };
    let broken_output_kill = shared.faults.lock().unwrap().exec_kill_on_broken_output;
    // The client is gone: with the agent's fault, the next output it cannot send gets the
    // exec'd process killed after a delay; otherwise (or once the process exits) the pipes
    // close and the process runs on.
    let gone = move |mut rx: mpsc::Receiver<Event>| {
        let Some(delay) = broken_output_kill else {
            return;
        };
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                match event {
                    Event::Data(..) => {
                        drop(rx);
                        tokio::time::sleep(delay).await;
                        process::signal(pid, libc::SIGKILL);
                        return;
                    }
                    Event::Exit(_) => return,
                    Event::Eof(_) => {}
                }
            }
        });
    };
    if drop_after == Some(0) {
        return gone(rx);
    }
    let mut client = ClientState {
        stdin_tx: Some(stdin_tx),
        stdin_closed: false,
        stdin_broken: false,
        tty: req.tty,
        pty,
    };
    if let Some(Message::Text(t)) = early {
        client.on_text(t.as_str());
    }
    let (mut sink, mut stream) = ws.split();
    let mut eof_stdout = false;
    let mut eof_stderr = false;
    let mut exit: Option<i64> = None;
    let mut sent_frames = 0usize;
    let mut events_done = false;
    loop {
        let complete = exit.is_some() && eof_stdout && eof_stderr;
        if complete && (req.tty || (client.stdin_closed && !client.stdin_broken)) {
            if req.tty {
                let _ = sink
                    .send(text_frame(json!({"stdout": {"close": true}})))
                    .await;
            } else {
                let _ = sink
                    .send(text_frame(json!({"stderr": {"close": true}})))
                    .await;
                let _ = sink
                    .send(text_frame(json!({"stdout": {"close": true}})))
                    .await;
            }
            let code = exit.unwrap_or(0);
            let result = if code == 0 {
                json!({})
            } else {
                json!({"exit_code": code})
            };
            let _ = sink
                .send(text_frame(json!({"exited": true, "result": result})))
                .await;
            if v11 {
                let _ = sink.send(close_msg(1000, "")).await;
            }
            let _ = sink.flush().await;
            return;
        }
        if complete && client.stdin_broken && !v11 {
            let _ = sink
                .send(close_msg(
                    1011,
                    "failed to resize tty: attempted to resize a non-tty session",
                ))
                .await;
            return;
        }
        tokio::select! {
            ev = rx.recv(), if !events_done => match ev {
                None => events_done = true,
                Some(Event::Data(stream_name, bytes)) => {
                    let _ = sink.send(data_frame(stream_name, &bytes)).await;
                    sent_frames += 1;
                    if drop_after == Some(sent_frames) {
                        // Drop TCP without a close frame; the process keeps running.
                        return gone(rx);
                    }
                }
                Some(Event::Eof("stdout")) => eof_stdout = true,
                Some(Event::Eof(_)) => eof_stderr = true,
                Some(Event::Exit(code)) => exit = Some(code),
            },
            msg = stream.next() => match msg {
                None | Some(Err(_)) => {
                    // The client went away: the process loses stdin and keeps running.
                    return gone(rx);
                }
                Some(Ok(Message::Close(_))) => {
                    // The library queued the echo of the client's close; flush it out.
                    let _ = sink.flush().await;
                    drop(client.stdin_tx.take());
                    hold(&shared, (sink, stream)).await;
                    return;
                }
                Some(Ok(Message::Text(t))) => client.on_text(t.as_str()),
                Some(Ok(_)) => {}
            },
        }
    }
}
