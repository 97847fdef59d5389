//! An interactive shell in the box: [`Session::shell`] runs a command (the box's `$SHELL`, else
//! `/bin/sh`) on a terminal exec ([`ExecRequest::tty`]) with this process's terminal attached
//! in raw mode (`terminal.rs`): typed bytes go to the box (Ctrl-C among them), output comes
//! back as it is, window changes (SIGWINCH) are forwarded, and the command's exit code is the
//! outcome.
//!
//! A shell is interactive, so it does not run under the verified-exec wrapper: nothing records
//! it, and a dropped connection ends it with [`SessionError::TransportLost`].
//!
//! The environment never travels in argv or a URL. When there is any (the request's `env`, and
//! this terminal's `TERM`), a non-TTY exec first writes it to a private file in the box-side
//! state (`<state>/shell/env.<random>`, mode 0600 in a 0700 directory, from stdin); the
//! terminal exec's first command, a small `sh` prologue ([`PROLOGUE`]), sources the file and
//! removes it before it `exec`s the shell, so the file is gone even when the shell cannot start.
//! If the terminal exec never starts, the session removes the file itself.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::terminal::{Input, RawMode, stdin_is_terminal, window_size};
use super::{Session, SessionError, elapsed_ms, scripts};
use crate::lease::{ExecEvent, ExecRequest, ExecStream};

/// The terminal exec's first command: `$1` the env file (or empty), `$2` the workdir, `$3` a
/// directory inside it to start in when it exists (or empty), then the command (none: the
/// box's `$SHELL`, else `/bin/sh`).
pub const PROLOGUE: &str = r#"lbx_f=$1; lbx_w=$2; lbx_s=$3; shift 3
if [ -n "$lbx_f" ]; then
  trap 'rm -f "$lbx_f"' EXIT
  . "$lbx_f"
  rm -f "$lbx_f"
  trap - EXIT
fi
cd "$lbx_w" || exit 1
[ -z "$lbx_s" ] || cd "$lbx_s" 2>/dev/null || :
unset lbx_f lbx_w lbx_s
[ $# -gt 0 ] || set -- "${SHELL:-/bin/sh}"
exec "$@"
"#;

/// Writes stdin to the private env file `$1` (0600, its directory 0700).
pub const ENV_WRITE: &str = r#"set -e
umask 077
mkdir -p "${1%/*}"
cat > "$1"
"#;

/// Removes the env file `$1`.
pub const ENV_REMOVE: &str = r#"rm -f "$1""#;

/// How long the clean-up of an env file left behind may take (the connection may be gone).
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// An interactive command to run on a terminal in the box.
#[derive(Debug, Clone, Default)]
pub struct ShellRequest {
    /// The program and its arguments; empty: the box's `$SHELL`, else `/bin/sh`.
    pub argv: Vec<String>,
    /// Environment variables for it (on top of the box's own, and of this terminal's `TERM`).
    pub env: Vec<(String, String)>,
    /// Where to start, relative to the workdir, when that directory exists in the box; `None`:
    /// the workdir.
    pub cwd: Option<String>,
}

/// How a shell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellOutcome {
    /// The exit code of the shell (signals as 128+n).
    pub code: i32,
    /// Wall time in milliseconds.
    pub ms: u64,
}

/// The refusal when stdin is not a terminal (the usage code).
fn not_a_terminal() -> SessionError {
    SessionError::Invalid(
        "a shell needs a terminal, and stdin is not one; run a command without a terminal with \
         `leasebox run -- CMD…`"
            .into(),
    )
}

/// The env file's text: one `export NAME='value'` line a variable.
fn env_script(env: &[(String, String)]) -> Result<String, SessionError> {
    let mut out = String::new();
    for (name, value) in env {
        if !scripts::valid_env_name(name) {
            return Err(SessionError::Invalid(format!(
                "`{name}` is not a valid environment variable name (letters, digits and `_`, not starting with a digit)"
            )));
        }
        if value.contains('\0') {
            return Err(SessionError::Invalid(format!(
                "the value of `{name}` contains a NUL byte, which no environment can hold"
            )));
        }
        out.push_str("export ");
        out.push_str(name);
        out.push_str("='");
        out.push_str(&value.replace('\'', r"'\''"));
        out.push_str("'\n");
    }
    Ok(out)
}

impl Session {
    /// Run `request` on a terminal in the box with this process's terminal attached, until it
    /// exits; `cancel` ends it (the command is stopped).
    ///
    /// # Errors
    /// Stdin is not a terminal ([`SessionError::Invalid`], before anything runs), a bad
    /// variable, the box refused, the connection was lost ([`SessionError::TransportLost`]), or
    /// cancellation.
    pub async fn shell(
        &self,
        request: &ShellRequest,
        cancel: &CancellationToken,
    ) -> Result<ShellOutcome, SessionError> {
        if !stdin_is_terminal() {
            return Err(not_a_terminal());
        }
        let start = Instant::now();
        let mut env = Vec::new();
        if let Ok(term) = std::env::var("TERM")
            && !request.env.iter().any(|(k, _)| k == "TERM")
        {
            env.push(("TERM".to_owned(), term));
        }
        env.extend(request.env.iter().cloned());
        let script = env_script(&env)?;
        let env_file = if script.is_empty() {
            None
        } else {
            let path = format!(
                "{}/shell/env.{}",
                self.lease().state_dir(),
                hex::encode(rand::random::<[u8; 8]>())
            );
            let out = self
                .control(
                    "shell-env",
                    ENV_WRITE,
                    std::slice::from_ref(&path),
                    Some(Bytes::from(script)),
                    cancel,
                )
                .await?;
            out.check("shell")?;
            Some(path)
        };
        let mut argv = scripts::argv(
            "shell",
            PROLOGUE,
            [
                env_file.clone().unwrap_or_default(),
                self.lease().workdir.clone(),
                request.cwd.clone().unwrap_or_default(),
            ],
        );
        argv.extend(request.argv.iter().cloned());
        let opened = self
            .open(ExecRequest {
                argv,
                cwd: None,
                stdin: true,
                tty: Some(window_size()),
            })
            .await;
        let result = match opened {
            Ok(stream) => attach(stream, self.lease().id.as_str(), cancel).await,
            Err(e) => Err(e),
        };
        // The prologue removed the file if it ran; when it may not have, remove it here.
        if let (Some(path), Err(_) | Ok(Ended::BeforeStart(_))) = (&env_file, &result) {
            self.remove_env_file(path).await;
        }
        let code = match result? {
            Ended::Exited(code) => code,
            Ended::BeforeStart(e) => return Err(e),
        };
        self.timing().record_since("shell", start);
        Ok(ShellOutcome {
            code,
            ms: elapsed_ms(start),
        })
    }

    async fn remove_env_file(&self, path: &str) {
        let args = [path.to_owned()];
        let cancel = CancellationToken::new();
        let remove = self.control("shell-env-remove", ENV_REMOVE, &args, None, &cancel);
        match tokio::time::timeout(REMOVE_TIMEOUT, remove).await {
            Ok(Ok(out)) if out.code == 0 => {}
            _ => eprintln!(
                "leasebox: could not remove the shell's environment file `{path}` in lease `{}`; releasing the lease removes it",
                self.lease().id
            ),
        }
    }
}

/// How an attached terminal exec ended.
enum Ended {
    /// The command exited with this code.
    Exited(i32),
    /// The box refused the exec: nothing ran.
    BeforeStart(SessionError),
}

/// Attach this terminal to `stream` in raw mode until the command exits.
async fn attach(
    mut stream: ExecStream,
    lease: &str,
    cancel: &CancellationToken,
) -> Result<Ended, SessionError> {
    let resize = stream.resize.take();
    let Some(stdin) = stream.take_stdin() else {
        return Err(SessionError::Invalid(
            "the box opened the terminal without an input".into(),
        ));
    };
    let signals = (
        signal(SignalKind::window_change()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    let (Ok(mut winch), Ok(mut term), Ok(mut hup)) = signals else {
        stream.kill();
        return Err(SessionError::Invalid(
            "cannot watch the terminal's signals".into(),
        ));
    };
    let raw = match RawMode::enter() {
        Ok(raw) => raw,
        Err(e) => {
            stream.kill();
            return Err(SessionError::local(
                "cannot put the terminal in raw mode",
                e,
            ));
        }
    };
    let input = match Input::start(stdin) {
        Ok(input) => input,
        Err(e) => {
            stream.kill();
            drop(raw);
            return Err(SessionError::local("cannot read the terminal", e));
        }
    };
    let ended = pump(
        &mut stream,
        lease,
        resize.as_ref(),
        cancel,
        &mut winch,
        &mut term,
        &mut hup,
    )
    .await;
    drop(input);
    if !matches!(ended, Ok(Ended::Exited(_))) {
        // Leave the cursor at the start of a fresh line for the message that follows.
        write_out(b"\r\n");
    }
    drop(raw);
    ended
}

fn write_out(data: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(data);
    let _ = out.flush();
}

async fn pump(
    stream: &mut ExecStream,
    lease: &str,
    resize: Option<&mpsc::Sender<crate::lease::TtySize>>,
    cancel: &CancellationToken,
    winch: &mut tokio::signal::unix::Signal,
    term: &mut tokio::signal::unix::Signal,
    hup: &mut tokio::signal::unix::Signal,
) -> Result<Ended, SessionError> {
    let mut started = false;
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => {
                stream.kill();
                return Err(SessionError::Cancelled);
            }
            _ = term.recv() => {
                stream.kill();
                return Err(SessionError::Cancelled);
            }
            _ = hup.recv() => {
                stream.kill();
                return Err(SessionError::Cancelled);
            }
            _ = winch.recv() => {
                if let Some(tx) = resize {
                    // A full queue drops this size; the next change sends the current one.
                    let _ = tx.try_send(window_size());
                }
                continue;
            }
            event = stream.events.recv() => event,
        };
        match event {
            Some(ExecEvent::Stdout(data) | ExecEvent::Stderr(data)) => {
                started = true;
                write_out(&data);
            }
            Some(ExecEvent::Exited(code)) => return Ok(Ended::Exited(code)),
            Some(ExecEvent::Refused { message, kind }) if !started => {
                return Ok(Ended::BeforeStart(SessionError::Refused { message, kind }));
            }
            Some(ExecEvent::Refused { message, kind }) => {
                return Err(SessionError::Refused { message, kind });
            }
            Some(ExecEvent::Lost(reason)) => return Err(lost(lease, &reason)),
            None => return Err(lost(lease, "the exec stream ended without an exit code")),
        }
    }
}

fn lost(lease: &str, reason: &str) -> SessionError {
    SessionError::TransportLost(format!(
        "the connection to the box was lost, so the shell session ended ({reason}); a shell is \
         interactive and not recorded, so what it was running may still run in lease `{lease}` \
         until the lease is released"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_file_quotes_every_value_for_sh() {
        let env = vec![
            ("A".to_owned(), "it's $HOME `x`".to_owned()),
            ("B".to_owned(), "two\nlines".to_owned()),
        ];
        let text = env_script(&env).unwrap();
        assert_eq!(
            text,
            "export A='it'\\''s $HOME `x`'\nexport B='two\nlines'\n"
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{text}printf '%s|%s' \"$A\" \"$B\""))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "it's $HOME `x`|two\nlines"
        );
    }

    #[test]
    fn bad_names_and_nul_bytes_are_refused() {
        assert!(env_script(&[("1A".into(), "x".into())]).is_err());
        assert!(env_script(&[("A".into(), "x\0y".into())]).is_err());
    }
}
