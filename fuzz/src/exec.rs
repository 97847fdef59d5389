//! The exec frame decoder: the reader of the allocation exec websocket
//! (`backends::nomad::exec`), fed frames as an agent (or anything on the agent's port) could
//! send them. Oracle: the session always ends (no hang), with exactly one terminal event, last;
//! the output events are, in order, the decoded `stdout`/`stderr` data of the frames before
//! the end; and the end is the one the frames call for: the `exited` frame's code (negative is
//! unknown, so lost), a refusal for a policy/error close with a reason (a permission refusal is
//! never a transport loss), else a lost connection.

use base64::Engine;
use leasebox::backends::nomad::fuzzing::{ServerFrame, replay_exec};
use leasebox::error::ErrorKind;
use leasebox::lease::ExecEvent;
use serde_json::{Value, json};

use super::input::Input;

/// What the model expects the session to end with.
#[derive(Debug)]
enum End {
    Exited(i32),
    Lost,
    Refused { reason: String },
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn stream_part(input: &mut Input<'_>) -> Value {
    let mut part = serde_json::Map::new();
    match input.below(5) {
        0 => {}
        1 => {
            part.insert("data".into(), json!("not base64!"));
        }
        2 => {
            part.insert("data".into(), json!(7));
        }
        _ => {
            part.insert("data".into(), json!(b64().encode(input.bytes(40))));
        }
    }
    match input.below(4) {
        0 => {
            part.insert("close".into(), json!(true));
        }
        1 => {
            part.insert("close".into(), json!("true"));
        }
        _ => {}
    }
    Value::Object(part)
}

fn frame(input: &mut Input<'_>) -> ServerFrame {
    match input.below(12) {
        0 => ServerFrame::Text(input.text(30)),
        1 => ServerFrame::Binary(input.bytes(20)),
        2 => ServerFrame::Ping(input.bytes(10)),
        3 => {
            let code = input.pick(&[1000, 1001, 1006, 1008, 1011, 1005, 4000, 999, 3000]);
            let reason = match input.below(4) {
                0 => String::new(),
                1 => "Permission denied".to_owned(),
                2 => "task not running".to_owned(),
                _ => input.text(20),
            };
            ServerFrame::Close(if input.one_in(4) {
                None
            } else {
                Some((code, reason))
            })
        }
        4 | 5 => {
            let mut f = serde_json::Map::new();
            f.insert(
                "exited".into(),
                [json!(true), json!(true), json!(false), json!(1)][input.below(4)].clone(),
            );
            let code = input.pick(&[0_i64, 1, 2, 127, 137, 255, -1, i64::from(i32::MAX) + 1]);
            let result = match input.below(5) {
                0 => Value::Null,
                1 => json!({}),
                2 => json!({"exit_code": "3"}),
                _ => json!({ "exit_code": code }),
            };
            if !input.one_in(6) {
                f.insert("result".into(), result);
            }
            if input.one_in(3) {
                f.insert("stdout".into(), stream_part(input));
            }
            ServerFrame::Text(Value::Object(f).to_string())
        }
        _ => {
            let mut f = serde_json::Map::new();
            if !input.one_in(4) {
                f.insert("stdout".into(), stream_part(input));
            }
            if input.one_in(2) {
                f.insert("stderr".into(), stream_part(input));
            }
            ServerFrame::Text(Value::Object(f).to_string())
        }
    }
}

/// The model: the output events and the end these frames call for.
fn expect(frames: &[ServerFrame]) -> (Vec<ExecEvent>, End) {
    let mut out = Vec::new();
    for f in frames {
        match f {
            ServerFrame::Text(t) => {
                let Ok(v) = serde_json::from_str::<Value>(t) else {
                    continue;
                };
                if v.get("exited") == Some(&json!(true))
                    && v.get("result").is_some_and(|r| !r.is_null())
                {
                    let code = v["result"]
                        .get("exit_code")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    return (
                        out,
                        if code < 0 {
                            End::Lost
                        } else {
                            End::Exited(i32::try_from(code).unwrap_or(255))
                        },
                    );
                }
                for name in ["stdout", "stderr"] {
                    if let Some(data) = v
                        .get(name)
                        .and_then(|p| p.get("data"))
                        .and_then(Value::as_str)
                        && let Ok(bytes) = b64().decode(data)
                    {
                        out.push(if name == "stdout" {
                            ExecEvent::Stdout(bytes.into())
                        } else {
                            ExecEvent::Stderr(bytes.into())
                        });
                    }
                }
            }
            ServerFrame::Binary(_) | ServerFrame::Ping(_) => {}
            ServerFrame::Close(close) => {
                let end = match close {
                    Some((1008 | 1011, reason)) if !cut(reason).is_empty() => End::Refused {
                        reason: cut(reason),
                    },
                    _ => End::Lost,
                };
                return (out, end);
            }
        }
    }
    (out, End::Lost)
}

/// A close reason as the frame carries it (at most 123 bytes).
fn cut(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Run the oracle on one input; true when the session ended with an exit code.
///
/// # Panics
/// When the reader breaks the oracle.
pub fn check(data: &[u8]) -> bool {
    let mut input = Input::new(data);
    let mut frames = Vec::new();
    if input.byte().is_multiple_of(4) {
        // As written: a text frame a line, `close CODE REASON` a close frame.
        for line in input.rest_text().lines().take(20) {
            frames.push(match line.strip_prefix("close ") {
                Some(close) => {
                    let (code, reason) = close.split_once(' ').unwrap_or((close, ""));
                    ServerFrame::Close(Some((code.parse().unwrap_or(1000), reason.to_owned())))
                }
                None => ServerFrame::Text(line.to_owned()),
            });
        }
        return check_frames(frames);
    }
    while !input.is_empty() && frames.len() < 10 {
        frames.push(frame(&mut input));
    }
    check_frames(frames)
}

/// The oracle for one sequence of frames; true when the session ended with an exit code.
///
/// # Panics
/// When the reader breaks the oracle.
pub fn check_frames(frames: Vec<ServerFrame>) -> bool {
    let (output, end) = expect(&frames);
    let events = replay_exec(frames.clone())
        .unwrap_or_else(|| panic!("the exec session hung on {frames:?}"));
    let (last, before) = events
        .split_last()
        .unwrap_or_else(|| panic!("no terminal event for {frames:?}"));
    assert_eq!(before, output.as_slice(), "output events for {frames:?}");
    match (&end, last) {
        (End::Exited(want), ExecEvent::Exited(got)) => assert_eq!(want, got, "{frames:?}"),
        (End::Lost, ExecEvent::Lost(_)) => {}
        (End::Refused { reason }, ExecEvent::Refused { message, kind }) => {
            if reason.contains("Permission denied") {
                // Said in leasebox's words (the capability the token lacks).
                assert!(!message.is_empty(), "{frames:?}");
                assert_ne!(*kind, ErrorKind::TransportLost, "{frames:?}");
            } else {
                assert!(
                    message.contains(reason.as_str()),
                    "{message:?} lacks {reason:?}"
                );
                assert_eq!(*kind, ErrorKind::TransportLost, "{frames:?}");
            }
        }
        (want, got) => panic!("expected {want:?}, got {got:?} for {frames:?}"),
    }
    matches!(end, End::Exited(_))
}
