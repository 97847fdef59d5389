//! The allocation exec websocket (`/v1/client/allocation/<id>/exec`): the token in the upgrade
//! headers (never in the URL), no `Origin`, stdin streamed as base64 frames and always closed (a
//! session whose stdin stays open never ends), a `{}` heartbeat every 10 s, stdout and stderr
//! streamed, the exit code from the `exited` frame (a missing code is 0), close frames before
//! `exited` turned into errors with their text, and a session that hangs after its output ended
//! detected and ended.
//!
//! TTY off (every exec but an interactive shell's) never sends `tty_size`: it breaks the
//! session. TTY on (`tty=true`, NOMAD-WIRE §3): the first frame is the terminal's `tty_size`,
//! every window change sends another, and the output comes as `stdout` frames only (the pty
//! merges stderr, with CR/LF line ends), closed by one `stdout` close before `exited`.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::client::{Address, Client};
use crate::error::ErrorKind;
use crate::lease::{ExecEvent, ExecStream, LeaseError, TtySize};

/// How often an idle session sends a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Tunables of an exec session.
#[derive(Debug, Clone, Copy)]
pub struct ExecTimings {
    /// After both output streams closed, how long to wait for `exited` before ending the
    /// session as hung.
    pub hang_after_close: Duration,
    /// How long the upgrade may take.
    pub connect: Duration,
}

impl Default for ExecTimings {
    fn default() -> Self {
        ExecTimings {
            hang_after_close: Duration::from_secs(10),
            connect: Duration::from_secs(30),
        }
    }
}

async fn dial(client: &Client) -> Result<Box<dyn Io>, LeaseError> {
    let fail = |e: std::io::Error| {
        LeaseError::Transport(format!(
            "cannot reach Nomad at {} (from {}) for exec: {e}",
            client.address().shown(),
            client.origin()
        ))
    };
    match client.address() {
        Address::Unix(path) => Ok(Box::new(
            tokio::net::UnixStream::connect(path).await.map_err(fail)?,
        )),
        Address::Tcp { authority, .. } => {
            let tcp = tokio::net::TcpStream::connect(authority.as_str())
                .await
                .map_err(fail)?;
            let _ = tcp.set_nodelay(true);
            match client.tls() {
                None => Ok(Box::new(tcp)),
                Some(config) => {
                    let host = authority
                        .rsplit_once(':')
                        .map_or(authority.as_str(), |(h, _)| h)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned();
                    let name = rustls::pki_types::ServerName::try_from(host)
                        .map_err(|e| LeaseError::Config(format!("bad TLS server name: {e}")))?;
                    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(config));
                    Ok(Box::new(connector.connect(name, tcp).await.map_err(fail)?))
                }
            }
        }
    }
}

/// Open an exec session for `argv` in `task` (run by `driver`) of allocation `alloc_id`, on a
/// terminal of size `tty` when given.
///
/// A session the agent ends with `Permission denied` (NOMAD-WIRE §9: the token lacks the exec
/// capability the driver needs) is [`ExecEvent::Refused`] of kind
/// [`ErrorKind::PermissionDenied`], its message naming the capability, the driver and the
/// token variable ([`Client::exec_denied`]).
///
/// # Errors
/// The agent cannot be reached, or refuses the upgrade (its status and text are given).
#[expect(
    clippy::too_many_arguments,
    reason = "the exec endpoint's own parameters; a struct would only rename them"
)]
pub async fn open(
    client: &Client,
    alloc_id: &str,
    task: &str,
    driver: &str,
    argv: &[String],
    stdin: bool,
    tty: Option<TtySize>,
    timings: ExecTimings,
) -> Result<ExecStream, LeaseError> {
    let command = serde_json::to_string(argv)
        .map_err(|e| LeaseError::Internal(format!("cannot encode the command: {e}")))?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("task", task)
        .append_pair("tty", if tty.is_some() { "true" } else { "false" })
        .append_pair("command", &command)
        .append_pair("region", client.region())
        .append_pair("namespace", client.namespace())
        .finish();
    let host = match client.address() {
        Address::Tcp { authority, .. } => authority.clone(),
        Address::Unix(_) => "127.0.0.1".to_owned(),
    };
    let url = format!("ws://{host}/v1/client/allocation/{alloc_id}/exec?{query}");
    let mut request = url
        .into_client_request()
        .map_err(|e| LeaseError::Internal(format!("cannot build the exec request: {e}")))?;
    if let Some(token) = client.token() {
        let value = token.parse().map_err(|_| {
            LeaseError::Config(format!(
                "the token in `{}` is not a valid header value",
                client.token_env()
            ))
        })?;
        request.headers_mut().insert("X-Nomad-Token", value);
    }
    let connect = async {
        let io = dial(client).await?;
        tokio_tungstenite::client_async(request, io)
            .await
            .map_err(|e| upgrade_error(client, driver, e))
    };
    let (ws, _) = tokio::time::timeout(timings.connect, connect)
        .await
        .map_err(|_| {
            LeaseError::Transport(format!(
                "Nomad at {} did not open the exec session in time",
                client.address().shown()
            ))
        })??;

    let (events_tx, events_rx) = mpsc::channel(64);
    let kill = CancellationToken::new();
    let (stdin_tx, stdin_rx) = if stdin {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (resize_tx, resize_rx) = match tty {
        Some(_) => {
            let (tx, rx) = mpsc::channel::<TtySize>(4);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let terminal = tty.map(|size| Terminal {
        size,
        resize: resize_rx,
    });
    let denied = client.exec_denied(driver);
    tokio::spawn(session(
        ws,
        stdin_rx,
        terminal,
        events_tx,
        kill.clone(),
        timings,
        denied,
    ));
    Ok(ExecStream {
        stdin: stdin_tx,
        events: events_rx,
        kill,
        resize: resize_tx,
    })
}

fn upgrade_error(
    client: &Client,
    driver: &str,
    e: tokio_tungstenite::tungstenite::Error,
) -> LeaseError {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            let text = format!(
                "Nomad at {} refused the exec session ({status}{}{body})",
                client.address().shown(),
                if body.is_empty() { "" } else { ": " }
            );
            if status == 403 && body.contains("ACL token not found") {
                client.token_not_found("opening an exec session")
            } else if status == 403 {
                LeaseError::PermissionDenied(format!("{text}: {}", client.exec_denied(driver)))
            } else {
                LeaseError::Transport(text)
            }
        }
        other => LeaseError::Transport(format!(
            "exec session with Nomad at {} failed: {other}",
            client.address().shown()
        )),
    }
}

fn frame(value: &Value) -> Message {
    Message::text(value.to_string())
}

/// How many recent `stdin` data frames [`stdin_frame`] keeps. A shard group's sync hands the
/// same chunk to every box's session, and the slowest box is at most its stdin channel (16
/// chunks) and the chunk in flight behind the fastest: twice that is room enough.
const SHARED_FRAMES: usize = 32;

/// The most recently encoded `stdin` data frames, by the chunk they carry. Each entry keeps
/// its chunk alive, so a chunk with the same address and length is the same bytes.
static STDIN_FRAMES: std::sync::Mutex<std::collections::VecDeque<(Bytes, Utf8Bytes)>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// The `{"stdin":{"data":"<base64>"}}` frame of `data`. The sessions of a shard group's sync
/// are handed one shared buffer per chunk; the first to send it encodes it and the others
/// reuse the text (the websocket still masks each copy with its own key), so the client
/// encodes the archive once however many boxes receive it.
fn stdin_frame(data: &Bytes) -> Message {
    let same = |b: &Bytes| b.as_ptr() == data.as_ptr() && b.len() == data.len();
    if !data.is_empty() {
        let cache = STDIN_FRAMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, text)) = cache.iter().find(|(b, _)| same(b)) {
            return Message::Text(text.clone());
        }
    }
    // Base64 needs no JSON escaping: the frame is written as it is.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut text = String::with_capacity(data.len().div_ceil(3) * 4 + 24);
    text.push_str(r#"{"stdin":{"data":""#);
    b64.encode_string(data, &mut text);
    text.push_str(r#""}}"#);
    let text = Utf8Bytes::from(text);
    if !data.is_empty() {
        let mut cache = STDIN_FRAMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !cache.iter().any(|(b, _)| same(b)) {
            if cache.len() == SHARED_FRAMES {
                cache.pop_front();
            }
            cache.push_back((data.clone(), text.clone()));
        }
    }
    Message::Text(text)
}

fn tty_size(size: TtySize) -> Message {
    frame(&json!({"tty_size": {"height": size.rows, "width": size.cols}}))
}

/// The terminal of a TTY-on session: its size at the start and where new sizes come from.
pub(crate) struct Terminal {
    size: TtySize,
    resize: Option<mpsc::Receiver<TtySize>>,
}

pub(crate) async fn session<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    mut stdin: Option<mpsc::Receiver<Bytes>>,
    terminal: Option<Terminal>,
    events: mpsc::Sender<ExecEvent>,
    kill: CancellationToken,
    timings: ExecTimings,
    denied: String,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let b64 = base64::engine::general_purpose::STANDARD;
    let (mut sink, mut stream) = ws.split();
    let tty = terminal.is_some();
    let mut resize = None;
    if let Some(terminal) = terminal {
        // Sized before anything else, so the command starts on the right size.
        if sink.send(tty_size(terminal.size)).await.is_err() {
            let _ = events
                .send(ExecEvent::Lost("the exec session closed at once".into()))
                .await;
            return;
        }
        resize = terminal.resize;
    }
    if stdin.is_none()
        && sink
            .send(frame(&json!({"stdin": {"close": true}})))
            .await
            .is_err()
    {
        let _ = events
            .send(ExecEvent::Lost("the exec session closed at once".into()))
            .await;
        return;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut stdout_closed = false;
    // A terminal has one output stream: only `stdout` closes.
    let mut stderr_closed = tty;
    let mut hang_deadline: Option<tokio::time::Instant> = None;
    let outcome: ExecEvent = loop {
        let hang = async {
            match hang_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = kill.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                break ExecEvent::Lost("the exec session was closed on request".into());
            }
            () = hang => {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                break ExecEvent::Lost("the exec session hung: the output ended but no exit code came".into());
            }
            size = async {
                match resize.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match size {
                    Some(size) => {
                        if sink.send(tty_size(size)).await.is_err() {
                            break ExecEvent::Lost("the exec connection broke".into());
                        }
                    }
                    None => resize = None,
                }
            }
            _ = heartbeat.tick() => {
                if let Err(e) = sink.send(frame(&json!({}))).await {
                    break ExecEvent::Lost(format!("the exec connection broke: {e}"));
                }
            }
            chunk = async {
                match stdin.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let message = match chunk {
                    Some(data) => stdin_frame(&data),
                    None => {
                        stdin = None;
                        frame(&json!({"stdin": {"close": true}}))
                    }
                };
                if let Err(e) = sink.send(message).await {
                    break ExecEvent::Lost(format!("the exec connection broke while sending stdin: {e}"));
                }
            }
            message = stream.next() => {
                let message = match message {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => break ExecEvent::Lost(format!("the exec connection broke: {e}")),
                    None => break ExecEvent::Lost("the exec connection closed before the exit code arrived".into()),
                };
                let text = match message {
                    Message::Text(t) => t.to_string(),
                    Message::Close(close) => {
                        break match close {
                            Some(f) if !f.reason.is_empty() && matches!(f.code, CloseCode::Policy | CloseCode::Error) => {
                                let reason = f.reason.to_string();
                                if reason.contains("Permission denied") {
                                    ExecEvent::Refused { message: denied, kind: ErrorKind::PermissionDenied }
                                } else {
                                    ExecEvent::Refused { message: format!("Nomad ended the exec session: {reason}"), kind: ErrorKind::TransportLost }
                                }
                            }
                            Some(f) => ExecEvent::Lost(format!("websocket closed before receiving exit code (close {})", u16::from(f.code))),
                            None => ExecEvent::Lost("websocket closed before receiving exit code".into()),
                        };
                    }
                    _ => continue,
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                if value.get("exited").and_then(Value::as_bool) == Some(true) && value.get("result").is_some_and(|r| !r.is_null()) {
                    let code = value["result"].get("exit_code").and_then(Value::as_i64).unwrap_or(0);
                    let _ = tokio::time::timeout(Duration::from_millis(500), sink.close()).await;
                    break if code < 0 {
                        ExecEvent::Lost(format!("Nomad reported exit code {code}: the command's status is unknown"))
                    } else {
                        ExecEvent::Exited(i32::try_from(code).unwrap_or(255))
                    };
                }
                for (name, closed) in [("stdout", &mut stdout_closed), ("stderr", &mut stderr_closed)] {
                    let Some(part) = value.get(name) else { continue };
                    if let Some(data) = part.get("data").and_then(Value::as_str)
                        && let Ok(bytes) = b64.decode(data)
                    {
                        let bytes = Bytes::from(bytes);
                        let event = if name == "stdout" { ExecEvent::Stdout(bytes) } else { ExecEvent::Stderr(bytes) };
                        if events.send(event).await.is_err() {
                            // Nobody listens: drop the connection, leave the command running.
                            return;
                        }
                    }
                    if part.get("close").and_then(Value::as_bool) == Some(true) {
                        *closed = true;
                    }
                }
                if stdout_closed && stderr_closed && hang_deadline.is_none() {
                    hang_deadline = Some(tokio::time::Instant::now() + timings.hang_after_close);
                }
            }
        }
    };
    let _ = events.send(outcome).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    #[test]
    fn a_shared_chunk_is_encoded_once_and_every_frame_carries_its_bytes() {
        let text_of = |m: Message| match m {
            Message::Text(t) => t,
            other => panic!("not a text frame: {other:?}"),
        };
        let chunk = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<u8>>());
        let first = text_of(stdin_frame(&chunk));
        let second = text_of(stdin_frame(&chunk.clone()));
        // The same text, not an equal copy: the second session reused the first's encoding.
        assert_eq!(first.as_str().as_ptr(), second.as_str().as_ptr());
        let value: Value = serde_json::from_str(first.as_str()).unwrap();
        let data = base64::engine::general_purpose::STANDARD
            .decode(value["stdin"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, chunk);
        // Equal bytes in another buffer, and a prefix of the same buffer, are frames of their own.
        let other = text_of(stdin_frame(&Bytes::from(chunk.to_vec())));
        assert_eq!(other.as_str(), first.as_str());
        assert_ne!(other.as_str().as_ptr(), first.as_str().as_ptr());
        let prefix = text_of(stdin_frame(&chunk.slice(..3)));
        assert_eq!(prefix.as_str(), r#"{"stdin":{"data":"AAEC"}}"#);
        assert_eq!(
            text_of(stdin_frame(&Bytes::new())).as_str(),
            r#"{"stdin":{"data":""}}"#
        );
    }

    /// Serve `frames` as a server would, then keep the connection open; return the reader's
    /// events and its kill token.
    async fn replay(frames: Vec<Message>) -> (mpsc::Receiver<ExecEvent>, CancellationToken) {
        let (server, client_io) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let mut ws = tokio_tungstenite::accept_async(server).await.unwrap();
            for f in frames {
                if ws.send(f).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(_)) = ws.next().await {}
        });
        let (ws, _) = tokio_tungstenite::client_async("ws://127.0.0.1/", client_io)
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(64);
        let kill = CancellationToken::new();
        let timings = ExecTimings {
            hang_after_close: Duration::from_millis(300),
            connect: Duration::from_secs(5),
        };
        let denied = "Permission denied: the token lacks `alloc-exec`".to_owned();
        tokio::spawn(session(ws, None, None, tx, kill.clone(), timings, denied));
        (rx, kill)
    }

    #[tokio::test]
    async fn every_recorded_exec_transcript_reaches_its_recorded_outcome() {
        let dir = crate::backends::nomad::recorded_fixtures();
        assert!(
            dir.is_dir(),
            "the recordings are missing: {}",
            dir.display()
        );
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("exec-") {
                continue;
            }
            let doc: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            for step in doc["steps"].as_array().unwrap() {
                let Some(ws) = step.get("ws") else { continue };
                if ws["upgrade"]["status"] != 101 {
                    continue;
                }
                let client_closed = ws["close"].get("initiated_by").is_some();
                let mut frames = Vec::new();
                let mut stdout = Vec::new();
                let mut expected_exit = None;
                let mut expected_refusal = None;
                for r in ws["received"].as_array().unwrap() {
                    if let Some(frame) = r.get("frame") {
                        frames.push(Message::text(frame.to_string()));
                        if let Some(d) = frame["stdout"]["data"].as_str() {
                            stdout.extend(
                                base64::engine::general_purpose::STANDARD.decode(d).unwrap(),
                            );
                        }
                        if frame["exited"] == true {
                            expected_exit =
                                Some(frame["result"]["exit_code"].as_i64().unwrap_or(0));
                        }
                    } else if let Some(close) = r.get("close") {
                        if client_closed || expected_exit.is_some() {
                            continue;
                        }
                        let code = u16::try_from(close["code"].as_u64().unwrap()).unwrap();
                        let reason = close["reason"].as_str().unwrap().to_owned();
                        if code != 1000 {
                            expected_refusal = Some(reason.clone());
                        }
                        frames.push(Message::Close(Some(CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        })));
                    }
                }
                let (mut rx, kill) = replay(frames).await;
                let mut got_stdout = Vec::new();
                let terminal = loop {
                    let next = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
                    match next {
                        Ok(Some(ExecEvent::Stdout(b))) => got_stdout.extend_from_slice(&b),
                        Ok(Some(ExecEvent::Stderr(_))) => {}
                        Ok(Some(e)) => break Some(e),
                        Ok(None) => break None,
                        Err(_) => {
                            // A hung session (stdin never closed, or tty_size sent): the reader
                            // waits; ending it on request yields a transport loss.
                            assert!(client_closed, "{name}: the reader hung");
                            kill.cancel();
                            break rx.recv().await;
                        }
                    }
                };
                assert_eq!(got_stdout, stdout, "{name}: stdout");
                match (expected_exit, expected_refusal) {
                    (Some(code), _) => {
                        assert_eq!(
                            terminal,
                            Some(ExecEvent::Exited(i32::try_from(code).unwrap())),
                            "{name}"
                        );
                    }
                    (None, Some(reason)) => match terminal {
                        Some(ExecEvent::Refused { message, kind }) => {
                            assert!(message.contains(&reason), "{name}: {message}");
                            let want = if reason == "Permission denied" {
                                ErrorKind::PermissionDenied
                            } else {
                                ErrorKind::TransportLost
                            };
                            assert_eq!(kind, want, "{name}");
                        }
                        other => panic!("{name}: expected a refusal, got {other:?}"),
                    },
                    (None, None) => assert!(
                        matches!(terminal, Some(ExecEvent::Lost(_))),
                        "{name}: {terminal:?}"
                    ),
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} exec transcripts found");
    }

    #[tokio::test]
    async fn a_terminal_session_is_sized_first_resized_on_request_and_ends_on_stdout_close() {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(crate::backends::nomad::recorded_fixtures().join("exec-tty.json"))
                .expect("exec-tty.json"),
        )
        .unwrap();
        let ws = &doc["steps"][0]["ws"];
        let recorded: Vec<Message> = ws["received"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r.get("frame"))
            .map(|f| Message::text(f.to_string()))
            .collect();
        let (server, client_io) = tokio::io::duplex(1 << 20);
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            let mut ws = tokio_tungstenite::accept_async(server).await.unwrap();
            // The client's first two frames (the size, then a resize) before the output.
            for _ in 0..2 {
                if let Some(Ok(Message::Text(t))) = ws.next().await {
                    let _ = seen_tx.send(serde_json::from_str(t.as_str()).unwrap());
                }
            }
            for f in recorded {
                let _ = ws.send(f).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        });
        let (ws, _) = tokio_tungstenite::client_async("ws://127.0.0.1/", client_io)
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let (resize_tx, resize_rx) = mpsc::channel(4);
        let (_stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(4);
        let terminal = Terminal {
            size: TtySize {
                rows: 40,
                cols: 100,
            },
            resize: Some(resize_rx),
        };
        let timings = ExecTimings {
            hang_after_close: Duration::from_secs(5),
            connect: Duration::from_secs(5),
        };
        tokio::spawn(session(
            ws,
            Some(stdin_rx),
            Some(terminal),
            tx,
            CancellationToken::new(),
            timings,
            "Permission denied".to_owned(),
        ));
        assert_eq!(
            seen_rx.recv().await.unwrap(),
            json!({"tty_size": {"height": 40, "width": 100}})
        );
        resize_tx
            .send(TtySize {
                rows: 50,
                cols: 120,
            })
            .await
            .unwrap();
        assert_eq!(
            seen_rx.recv().await.unwrap(),
            json!({"tty_size": {"height": 50, "width": 120}})
        );
        let mut out = Vec::new();
        let end = loop {
            match rx.recv().await {
                Some(ExecEvent::Stdout(b)) => out.extend_from_slice(&b),
                other => break other,
            }
        };
        assert_eq!(String::from_utf8_lossy(&out), "40 100\r\nerr\r\n");
        assert_eq!(end, Some(ExecEvent::Exited(5)));
    }

    #[tokio::test]
    async fn output_ended_without_exit_is_a_detected_hang() {
        let frames = vec![
            Message::text(json!({"stdout": {"data": "aGkK"}}).to_string()),
            Message::text(json!({"stdout": {"close": true}}).to_string()),
            Message::text(json!({"stderr": {"close": true}}).to_string()),
        ];
        let (mut rx, _kill) = replay(frames).await;
        assert_eq!(
            rx.recv().await,
            Some(ExecEvent::Stdout(Bytes::from_static(b"hi\n")))
        );
        match rx.recv().await {
            Some(ExecEvent::Lost(m)) => assert!(m.contains("hung"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_close_without_exit_is_never_success() {
        let frames = vec![Message::Close(Some(CloseFrame {
            code: 1000.into(),
            reason: "".into(),
        }))];
        let (mut rx, _kill) = replay(frames).await;
        assert!(matches!(rx.recv().await, Some(ExecEvent::Lost(_))));
    }
}
