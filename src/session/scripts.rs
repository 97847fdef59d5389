//! The box-side `sh` scripts the session layer runs through `Backend::exec`, and the header
//! format the verified-exec wrapper reads from stdin.
//!
//! Only POSIX `sh` and the tools every image with `sh` and `tar` has (`mkdir`, `mkfifo`, `tee`,
//! `cat`, `tail`, `mv`, `rm`, `kill`) are used, and the wrapper starts as few processes as it can
//! (each costs a millisecond or two on a busy box), so the same scripts run on the local backend, in a
//! raw_exec allocation and in a container.
//!
//! # Box-side state
//!
//! For a workdir `W` the state lives in the sibling directory `W.lbx` (never inside the synced
//! tree):
//!
//! ```text
//! W.lbx/manifest.jsonl    what the last sync wrote: {"version":1,"revision":..} then one
//!                         {path,size,mode,mtime,hash,link?} a line
//! W.lbx/revision          the revision stamp of the last sync (one line)
//! W.lbx/runs/RUN.pid      the command's pid, written before it starts
//! W.lbx/runs/RUN.out      everything the command wrote to stdout
//! W.lbx/runs/RUN.err      everything it wrote to stderr
//! W.lbx/runs/RUN.exit     its exit code, written after its output is complete
//! W.lbx/runs/RUN.o, .e    the fifos the command writes to (relayed to the files and the
//!                         connection)
//! W.lbx/tee-p             present when the box's `tee` has `-p` (it then survives a dropped
//!                         connection on its own, and the wrapper needs fewer processes)
//! ```
//!
//! A path starting with `${NOMAD_ALLOC_DIR}` is resolved inside the box by every script.
//!
//! # The verified-exec header
//!
//! The wrapper reads, on stdin, the line `leasebox-exec 1`, then `run=ID`, `cwd=PATH`, any
//! number of `env=NAME=VALUE` lines, and an empty line; the rest of stdin belongs to the command.
//! Values are escaped for `printf '%b'` (backslash and control bytes as octal escapes) so they
//! never contain a newline. Environment values therefore never travel in a URL or on argv.

/// The verified-exec wrapper. Arguments: `$1` the box state dir, then the command's argv.
pub const WRAPPER: &str = r#"lbx_st=$1; shift
case $lbx_st in '${NOMAD_ALLOC_DIR}'*) lbx_st=$NOMAD_ALLOC_DIR${lbx_st#'${NOMAD_ALLOC_DIR}'};; esac
lbx_dec() { case $1 in *\\*) lbx_x=$(printf '%bx' "$1"); lbx_x=${lbx_x%x};; *) lbx_x=$1;; esac; }
IFS= read -r lbx_l; [ "$lbx_l" = 'leasebox-exec 1' ] || { echo 'leasebox: exec header missing' >&2; exit 125; }
IFS= read -r lbx_l; lbx_run=${lbx_l#run=}
IFS= read -r lbx_l; lbx_dec "${lbx_l#cwd=}"; lbx_cwd=$lbx_x
case $lbx_cwd in '${NOMAD_ALLOC_DIR}'*) lbx_cwd=$NOMAD_ALLOC_DIR${lbx_cwd#'${NOMAD_ALLOC_DIR}'};; esac
lbx_d=$lbx_st/runs/$lbx_run
mkfifo "$lbx_d.o" "$lbx_d.e" && : >"$lbx_d.out" && : >"$lbx_d.err" || { echo "leasebox: cannot write the run record in $lbx_st/runs" >&2; exit 125; }
cd "$lbx_cwd" 2>/dev/null || { echo "leasebox: working directory $lbx_cwd does not exist in the box" >&2; exit 125; }
if [ -f "$lbx_st/tee-p" ]; then
  tee -p -a "$lbx_d.out" <"$lbx_d.o" &
  tee -p -a "$lbx_d.err" <"$lbx_d.e" >&2 &
else
  tee -a "$lbx_d.out" <"$lbx_d.o" | { cat || :; cat >/dev/null; } &
  tee -a "$lbx_d.err" <"$lbx_d.e" | { cat >&2 || :; cat >/dev/null; } &
fi
while IFS= read -r lbx_l && [ -n "$lbx_l" ]; do
  lbx_l=${lbx_l#env=}; lbx_dec "${lbx_l#*=}"; export "${lbx_l%%=*}=$lbx_x"
done
/bin/sh -c 'echo $$ >"$0"; exec "$@"' "$lbx_d.pid" "$@" >"$lbx_d.o" 2>"$lbx_d.e"
lbx_c=$?
wait
echo "$lbx_c" >"$lbx_d.exit"
exit "$lbx_c"
"#;

/// Reads the record of a run after a lost connection. Arguments: state dir, run id, stdout
/// offset, stderr offset. Prints one status line (`exited CODE`, `running PID`, `vanished PID`
/// or `unknown`), then the stdout bytes past the offset; the stderr bytes past its offset go to
/// stderr.
pub const CATCHUP: &str = r#"lbx_st=$1
case $lbx_st in '${NOMAD_ALLOC_DIR}'*) lbx_st=$NOMAD_ALLOC_DIR${lbx_st#'${NOMAD_ALLOC_DIR}'};; esac
lbx_d=$lbx_st/runs/$2
if [ -f "$lbx_d.exit" ]; then read -r lbx_c <"$lbx_d.exit"; echo "exited $lbx_c"
elif [ -f "$lbx_d.pid" ]; then read -r lbx_p <"$lbx_d.pid"
  if kill -0 "$lbx_p" 2>/dev/null; then echo "running $lbx_p"; else echo "vanished $lbx_p"; fi
else echo unknown; exit 0; fi
tail -c +$(($3 + 1)) "$lbx_d.out" 2>/dev/null
tail -c +$(($4 + 1)) "$lbx_d.err" >&2 2>/dev/null
exit 0
"#;

/// Stops a recorded run by its pid: TERM, then KILL after the grace period. Arguments: state
/// dir, run id, grace seconds.
pub const KILL: &str = r#"lbx_st=$1
case $lbx_st in '${NOMAD_ALLOC_DIR}'*) lbx_st=$NOMAD_ALLOC_DIR${lbx_st#'${NOMAD_ALLOC_DIR}'};; esac
lbx_d=$lbx_st/runs/$2
[ -f "$lbx_d.pid" ] || exit 0
read -r lbx_p <"$lbx_d.pid"
kill -TERM "$lbx_p" 2>/dev/null || exit 0
lbx_i=0
while [ "$lbx_i" -lt "$(($3 * 10))" ]; do
  kill -0 "$lbx_p" 2>/dev/null || exit 0
  sleep 0.1 2>/dev/null || sleep 1
  lbx_i=$((lbx_i + 1))
done
kill -KILL "$lbx_p" 2>/dev/null
exit 0
"#;

/// Prepares a box: creates the workdir and the state dir and checks the tools the session
/// layer needs. Arguments: workdir, state dir.
pub const PREPARE: &str = r#"for lbx_t in tar mkfifo tee cat tail; do
  command -v "$lbx_t" >/dev/null 2>&1 || { echo "leasebox: the box has no \`$lbx_t\` (leasebox needs sh, tar, mkfifo, tee, cat and tail in the image)" >&2; exit 3; }
done
lbx_w=$1; lbx_st=$2
case $lbx_w in '${NOMAD_ALLOC_DIR}'*) lbx_w=$NOMAD_ALLOC_DIR${lbx_w#'${NOMAD_ALLOC_DIR}'};; esac
case $lbx_st in '${NOMAD_ALLOC_DIR}'*) lbx_st=$NOMAD_ALLOC_DIR${lbx_st#'${NOMAD_ALLOC_DIR}'};; esac
mkdir -p "$lbx_w" "$lbx_st/runs" || { echo "leasebox: cannot create $lbx_w in the box" >&2; exit 4; }
# A tee that survives a dropped connection by itself lets the wrapper start fewer processes.
if tee -p "$lbx_st/tee-p" </dev/null >/dev/null 2>&1; then :; else rm -f "$lbx_st/tee-p"; fi
echo "$lbx_w"
"#;

/// Receives a sync: a tar on stdin holding `tree/…` (the new workdir) and `meta/manifest.jsonl`
/// and `meta/revision`, extracted into a staging dir and swapped into place so deleted files
/// disappear. Arguments: workdir, state dir, expected revision stamp or `-` for none.
pub const SYNC_RECEIVE: &str = r#"lbx_w=$1; lbx_st=$2
case $lbx_w in '${NOMAD_ALLOC_DIR}'*) lbx_w=$NOMAD_ALLOC_DIR${lbx_w#'${NOMAD_ALLOC_DIR}'};; esac
case $lbx_st in '${NOMAD_ALLOC_DIR}'*) lbx_st=$NOMAD_ALLOC_DIR${lbx_st#'${NOMAD_ALLOC_DIR}'};; esac
if [ "$3" != - ]; then
  lbx_r=; [ -f "$lbx_st/revision" ] && read -r lbx_r <"$lbx_st/revision"
  [ "$lbx_r" = "$3" ] || { cat >/dev/null; echo "leasebox: the box was changed by another client (revision ${lbx_r:-none}, expected $3)" >&2; exit 3; }
fi
mkdir -p "$lbx_st" && rm -rf "$lbx_st/incoming" && mkdir "$lbx_st/incoming" || { cat >/dev/null; echo "leasebox: cannot write $lbx_st in the box" >&2; exit 4; }
lbx_old=$lbx_st/old.$$
tar -xof - -C "$lbx_st/incoming" || { echo "leasebox: tar failed to unpack the sync stream in the box" >&2; exit 5; }
[ -f "$lbx_st/incoming/meta/revision" ] || { rm -rf "$lbx_st/incoming"; echo "leasebox: the sync stream was cut short; the workdir was left as it was" >&2; exit 5; }
mkdir -p "$lbx_st/incoming/tree"
if [ -e "$lbx_w" ]; then mv "$lbx_w" "$lbx_old" || exit 6; fi
mv "$lbx_st/incoming/tree" "$lbx_w" || { [ -e "$lbx_old" ] && mv "$lbx_old" "$lbx_w"; exit 6; }
mv -f "$lbx_st/incoming/meta/manifest.jsonl" "$lbx_st/manifest.jsonl" && mv -f "$lbx_st/incoming/meta/revision" "$lbx_st/revision" || exit 6
rmdir "$lbx_st/incoming/meta" "$lbx_st/incoming" 2>/dev/null
# The old tree (and any a crash left) goes away off the run's path, detached from the session.
rm -rf "$lbx_st"/old.* </dev/null >/dev/null 2>&1 &
"#;

/// Sends paths of the workdir as a tar on stdout. Arguments: workdir, then relative paths.
pub const FETCH_SEND: &str = r#"lbx_w=$1; shift
case $lbx_w in '${NOMAD_ALLOC_DIR}'*) lbx_w=$NOMAD_ALLOC_DIR${lbx_w#'${NOMAD_ALLOC_DIR}'};; esac
cd "$lbx_w" 2>/dev/null || { echo "leasebox: the workdir $lbx_w does not exist in the box" >&2; exit 4; }
for lbx_p; do
  [ -e "$lbx_p" ] || [ -h "$lbx_p" ] || { echo "leasebox: \`$lbx_p\` does not exist in the box's workdir" >&2; exit 3; }
done
exec tar -cf - "$@"
"#;

/// The argv that runs `script` under `sh`, named `leasebox-NAME` (its `$0`, as `ps` shows it),
/// with `args` as its positional parameters.
#[must_use]
pub fn argv(name: &str, script: &str, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        format!("leasebox-{name}"),
    ];
    argv.extend(args);
    argv
}

/// Escape a value for the header: backslash and control bytes become `printf '%b'` octal
/// escapes, so the value fits on one line and decodes byte for byte.
#[must_use]
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\0{:03o}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `name` can be an environment variable name in the box.
#[must_use]
pub fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Build the header the wrapper reads from stdin.
#[must_use]
pub fn header(run_id: &str, cwd: &str, env: &[(String, String)]) -> String {
    let mut out = format!("leasebox-exec 1\nrun={run_id}\ncwd={}\n", escape_value(cwd));
    for (name, value) in env {
        out.push_str("env=");
        out.push_str(name);
        out.push('=');
        out.push_str(&escape_value(value));
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_values_on_one_line() {
        assert_eq!(escape_value("a b"), "a b");
        assert_eq!(escape_value("a\nb"), "a\\0012b");
        assert_eq!(escape_value("back\\slash"), "back\\\\slash");
        assert!(!escape_value("x\r\n\t\u{7f}").contains(['\n', '\r']));
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("RUST_LOG"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
        assert!(!valid_env_name("A=B"));
    }

    #[test]
    fn wrapper_decodes_what_the_header_encodes() {
        // Both relay flavours: a box whose `tee` has `-p`, and one whose `tee` has not.
        for (run, tee_p) in [("r1", false), ("r2", true)] {
            wrapper_round_trip(run, tee_p);
        }
    }

    fn wrapper_round_trip(run: &str, tee_p: bool) {
        let value = "line1\nline2 \\ $HOME `x` 'q' \"d\" %s\t\u{1}end\n";
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("w.lbx");
        std::fs::create_dir_all(st.join("runs")).unwrap();
        if tee_p {
            std::fs::write(st.join("tee-p"), "").unwrap();
        }
        let input = header(
            run,
            dir.path().to_str().unwrap(),
            &[("V".to_owned(), value.to_owned())],
        );
        let out = std::process::Command::new("sh")
            .args(["-c", WRAPPER, "lbx", st.to_str().unwrap()])
            .args(["sh", "-c", "printf '%s' \"$V\"; cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(input.as_bytes())?;
                stdin.write_all(b"REST")?;
                drop(stdin);
                child.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{value}REST")
        );
        let record = std::fs::read_to_string(st.join(format!("runs/{run}.exit"))).unwrap();
        assert_eq!(record.trim(), "0");
        let recorded = std::fs::read_to_string(st.join(format!("runs/{run}.out"))).unwrap();
        assert_eq!(recorded, format!("{value}REST"));
    }
}
