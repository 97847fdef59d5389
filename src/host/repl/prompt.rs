//! The interactive prompt (rustyline on a thread of its own, so the editor and the terminal
//! never cross threads while the async runtime runs the calls) and the piped mode (stdin is not
//! a terminal: the whole input is one chunk).

use std::path::{Path, PathBuf};

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};

use super::complete::ReplHelper;
use super::eval;
use super::state::{Flow, Repl};
use crate::host::error::HostError;

/// What the editor thread read.
enum Line {
    Entry(String),
    Interrupted,
    Eof,
    Failed(String),
}

/// The prompt shown for the first line of an entry (more lines follow without one).
const PROMPT: &str = "lb> ";

/// Read and run entries until `:quit` or Ctrl-D. History (whole entries, multi-line ones too)
/// is appended to `history` after every entry.
pub(crate) async fn interactive(
    repl: &mut Repl<'_>,
    history: Option<PathBuf>,
) -> Result<(), HostError> {
    let _open = repl.interrupts.open();
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<Line>(1);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let lua = repl.lua.clone();
    let editor_thread = std::thread::Builder::new()
        .name("leasebox-repl-editor".to_owned())
        .spawn(move || editor_worker(lua, history.as_deref(), &go_rx, &line_tx))
        .map_err(|err| HostError::Runtime {
            message: format!("cannot start the prompt: {err}"),
        })?;
    let mut outcome = Ok(());
    loop {
        if go_tx.send(()).is_err() {
            break;
        }
        let Some(line) = line_rx.recv().await else {
            break;
        };
        match line {
            Line::Entry(entry) => {
                if entry.trim().is_empty() {
                    continue;
                }
                if repl.entry(&entry).await == Flow::Quit {
                    break;
                }
            }
            Line::Interrupted => eprintln!("(Ctrl-D or `:quit` leaves)"),
            Line::Eof => break,
            Line::Failed(message) => {
                outcome = Err(HostError::Runtime {
                    message: format!("the prompt failed: {message}"),
                });
                break;
            }
        }
    }
    drop(go_tx);
    let _ = tokio::task::spawn_blocking(move || editor_thread.join()).await;
    outcome
}

fn editor_worker(
    lua: mlua::Lua,
    history: Option<&Path>,
    go: &std::sync::mpsc::Receiver<()>,
    lines: &tokio::sync::mpsc::Sender<Line>,
) {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)
        .and_then(|b| b.max_history_size(1000))
        .map(|b| b.completion_type(CompletionType::List).build());
    let editor = config.and_then(Editor::<ReplHelper, FileHistory>::with_config);
    let mut editor = match editor {
        Ok(e) => e,
        Err(err) => {
            let _ = lines.blocking_send(Line::Failed(err.to_string()));
            return;
        }
    };
    editor.set_helper(Some(ReplHelper::new(lua)));
    if let Some(path) = history {
        match editor.load_history(path) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => eprintln!(
                "leasebox: cannot read the REPL history `{}`: {err}; starting without it",
                path.display()
            ),
        }
    }
    let mut warned = false;
    while go.recv().is_ok() {
        let line = match editor.readline(PROMPT) {
            Ok(entry) => {
                if !entry.trim().is_empty() {
                    let _ = editor.add_history_entry(entry.as_str());
                    if let Some(path) = history
                        && let Err(err) = save_history(&mut editor, path)
                        && !warned
                    {
                        warned = true;
                        eprintln!(
                            "leasebox: cannot write the REPL history `{}`: {err}",
                            path.display()
                        );
                    }
                }
                Line::Entry(entry)
            }
            Err(ReadlineError::Interrupted) => Line::Interrupted,
            Err(ReadlineError::Eof) => Line::Eof,
            Err(err) => Line::Failed(err.to_string()),
        };
        if lines.blocking_send(line).is_err() {
            break;
        }
    }
}

fn save_history(
    editor: &mut Editor<ReplHelper, FileHistory>,
    path: &Path,
) -> rustyline::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    editor.append_history(path)?;
    // Entries can hold anything typed at the prompt: private to the user.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Run the whole input as one chunk (an expression's values are printed, as at the prompt).
pub(crate) async fn piped(repl: &mut Repl<'_>, input: &str) -> Result<(), HostError> {
    let input = input.strip_prefix("#!").map_or(input, |rest| {
        // A shebang line stays a (blank) line, so line numbers hold.
        rest.find('\n').map_or("", |i| &rest[i..])
    });
    let function = eval::compile(&repl.lua, input, "@stdin")
        .map_err(|e| HostError::from_lua(&e, repl.limit))?;
    let values = function
        .call_async::<mlua::MultiValue>(())
        .await
        .map_err(|e| HostError::from_lua(&e, repl.limit))?;
    if !values.is_empty() {
        let text: Vec<String> = values.iter().map(super::pretty::result).collect();
        println!("{}", text.join("\t"));
    }
    Ok(())
}
