//! Entry points for the fuzz targets (`fuzz/`) and their seeded property tests: not part of the
//! API. [`replay_exec`] plays a sequence of frames, as an agent would send them, to the exec
//! session's reader over an in-memory websocket and returns the events it made of them.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;

use super::exec::{ExecTimings, session};
use crate::lease::ExecEvent;

/// One websocket message from the agent's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// A text frame (the agent's frames are JSON text).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A ping (its payload cut to the 125 bytes a control frame may carry).
    Ping(Vec<u8>),
    /// A close frame: code and reason (cut to the 123 bytes a close frame may carry), or none.
    Close(Option<(u16, String)>),
}

fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Serve `frames` to a fresh exec session reader (stdin closed at once, as for a command
/// without stdin), then a plain close (a connection that ends without an exit code); return every event the reader sent, in order,
/// or `None` when the reader had not ended within 10 s (a hang).
///
/// # Panics
/// When no tokio runtime can be built or the in-memory handshake fails (neither depends on
/// the frames).
#[must_use]
pub fn replay_exec(frames: Vec<ServerFrame>) -> Option<Vec<ExecEvent>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(server_io).await else {
                return;
            };
            'send: for frame in frames {
                let message = match frame {
                    ServerFrame::Text(t) => Message::text(t),
                    ServerFrame::Binary(b) => Message::binary(b),
                    ServerFrame::Ping(mut p) => {
                        p.truncate(125);
                        Message::Ping(p.into())
                    }
                    ServerFrame::Close(close) => {
                        Message::Close(close.map(|(code, reason)| CloseFrame {
                            code: code.into(),
                            reason: cut(&reason, 123).into(),
                        }))
                    }
                };
                if ws.send(message).await.is_err() {
                    break 'send;
                }
            }
            // Then a plain close, and the connection stays open until the reader is done
            // with it, as over TCP (an in-memory stream dropped early would fail the reader's
            // next write, which TCP would still accept).
            let _ = ws.send(Message::Close(None)).await;
            while let Some(Ok(_)) = ws.next().await {}
        });
        let (ws, _) = tokio_tungstenite::client_async("ws://127.0.0.1/", client_io)
            .await
            .expect("the in-memory websocket handshake");
        let (tx, mut rx) = mpsc::channel(64);
        let timings = ExecTimings {
            hang_after_close: Duration::from_millis(50),
            connect: Duration::from_secs(5),
        };
        tokio::spawn(session(
            ws,
            None,
            None,
            tx,
            CancellationToken::new(),
            timings,
            "Permission denied".to_owned(),
        ));
        let collect = async {
            let mut events = Vec::new();
            while let Some(event) = rx.recv().await {
                events.push(event);
            }
            events
        };
        let events = tokio::time::timeout(Duration::from_secs(10), collect)
            .await
            .ok();
        server.abort();
        events
    })
}
