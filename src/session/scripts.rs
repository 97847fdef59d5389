//! The box-side `sh` scripts the session layer runs through `Backend::exec`, and the header
//! format the verified-exec wrapper reads from stdin. Together they are a protocol between
//! `session` and the box; this comment is its specification.
//!
//! Only POSIX `sh` and tools every image with `sh` and `tar` has are used (`tar`, `tee`, `cat`,
//! `tail`, `mv`, `rm`, `rmdir`, `mkdir`, `ls`, `wc`, `sleep`, `find`, and `setsid` or a `sh`
//! with job control; `find` for the incremental sync's scripts in `sync_scripts.rs`); they run under dash, BusyBox and bash alike, on the local backend, in a raw_exec
//! allocation and in a container. No shell arithmetic ever sees a byte offset (offsets travel
//! as decimal strings to `tail -c +N`), so nothing overflows. The wrapper starts as few
//! programs as it can (each costs a millisecond or so on a busy box).
//!
//! Every script gets its arguments as positional parameters after `$0` (`leasebox-NAME`, what
//! `ps` shows). A path starting with `${NOMAD_ALLOC_DIR}` is resolved inside the box.
//!
//! # Box-side state
//!
//! For a workdir `W` the state lives in the sibling directory `W.lbx` (never inside the synced
//! tree):
//!
//! ```text
//! W.lbx/manifest.jsonl    what the last sync wrote: {"version":1,"revision":..} then one
//!                         {path,size,mode,mtime,hash,link?} a line
//! W.lbx/revision          the revision stamp of the last sync (one line); absent while a
//!                         sync is changing the tree
//! W.lbx/runs/RUN.go       the run's claim, created (O_EXCL) by the supervisor before the
//!                         command starts, or by a reader that found no record (the run then
//!                         never starts)
//! W.lbx/runs/RUN.pid.PID.PGID
//!                         empty; its name is the record: the command's pid and its
//!                         process group (the supervisor's session)
//! W.lbx/runs/RUN.out      everything the command wrote to stdout
//! W.lbx/runs/RUN.err      everything it wrote to stderr
//! W.lbx/runs/RUN.exit.CODE
//!                         empty; its name is the record: the command's exit code (128+n
//!                         for signal n), created once its output is complete
//! W.lbx/runs/RUN.exit.t   the supervisor's scratch copy of the code (never read by others)
//! W.lbx/runs/RUN.read     present once the result was handed to a client
//! ```
//!
//! A reader trusts the pid and exit records as soon as they exist: each is one empty file
//! whose name carries the value, created by the shell itself in one `open(O_CREAT)` (the
//! directory entry appears whole, as a rename would make it, without a `mv` program per
//! record), so a killed writer leaves either nothing or a complete record. Readers accept
//! only a name of the exact form (digits, one dot between pid and group) and ignore anything
//! else, such as `RUN.exit.t`.
//!
//! # Scripts
//!
//! - [`WRAPPER`] `STATE ARGV…` (stdin: the header below, then the command's stdin): the
//!   process the backend execs. It reads `leasebox-exec 2`, `run=ID` and `cwd=PATH`, changes
//!   to the directory and starts the supervisor detached from itself (`setsid` in the
//!   foreground, else a background job under `set -m`: its own session or process group,
//!   which the agent's kill of the exec'd process, or a kill of its process group, cannot
//!   reach), handing it the rest of stdin. It then only waits: the supervisor's tees write the
//!   output to the connection and the record at once, and the wrapper exits with the
//!   supervisor's status, the command's exit code, after marking the run read. Exit 125 with
//!   a `leasebox:` line on stderr when the header is missing, the directory does not exist, or
//!   the box can detach nothing. Its `cd` leaves `OLDPWD` as the box gave it. The supervisor
//!   and its relays run with `LC_ALL=C` (each
//!   program then skips loading the box's locale, a third of a millisecond apiece under a
//!   UTF-8 locale); the box's own `LC_ALL`, set, empty or unset, is handed over and given back
//!   to the command.
//! - [`SUPERVISOR`] (started by the wrapper, never by the session) claims `RUN.go`, starts the
//!   command with stdout and stderr through two `tee -a` relays (SIGPIPE ignored in the relays
//!   only, so a dropped connection never stops them and never reaches the command; each relay
//!   is its pipeline member's last command, which the shell runs in place, found through its
//!   command table rather than by `exec`'s walk of `PATH`), waits, and records the exit code
//!   after the relays drained. Nothing on the way to the command is a background job: dash
//!   and BusyBox start a background job with SIGINT and SIGQUIT ignored for good (no `trap`
//!   can undo it, and an exec'd program keeps it), so the command is a foreground child whose
//!   own process records its pid before it execs (the name under `/proc/self/task`, else the
//!   `$PPID` of a child `sh`). Just before the command starts, that process reads the
//!   `env=NAME=VALUE` lines and the empty line that end the header and exports them, so the
//!   environment is the command's alone (a recipe's `PATH` cannot break the wrapper, a
//!   variable named like the wrapper's cannot clobber it). A command that does not exist exits
//!   127 with `NAME: not found` on stderr.
//! - [`CATCHUP`] `STATE RUN OUT ERR CLAIM`: the reader after a lost connection. `OUT` and
//!   `ERR` are 1-based byte positions to resume each stream at (`-`: send nothing). Prints one
//!   status line, then the stdout bytes from `OUT`; the stderr bytes from `ERR` go to stderr.
//!   Status: `exited CODE` (and the run is marked read), `running PID` (its process group
//!   lives), `starting` (claimed, pid not yet recorded), `vanished PID` (the group is gone
//!   without an exit record: killed from outside), `never` (no claim; with `CLAIM` = `claim`
//!   the reader claims the run so it can never start late). Exit 0.
//! - [`KILL`] `STATE RUN GRACE`: stops a run's whole process group: TERM, then KILL after
//!   `GRACE` seconds; a run not started yet is claimed so it never starts. Records
//!   the exit record (143 or 137) when the supervisor could not, and marks the run read. Exit 0.
//! - [`PREPARE`] `WORKDIR STATE`: checks the tools above (exit 78 with
//!   `leasebox: missing-tool NAME` on stderr when one is missing), creates the workdir and
//!   `STATE/runs` (exit 4 when it cannot), prunes old run records, prints the workdir.
//! - [`SYNC_RECEIVE`] `WORKDIR STATE EXPECTED` (stdin: a tar of `tree/…`,
//!   `meta/manifest.jsonl`, `meta/revision`): refuses with exit 3 when `STATE/revision` is not
//!   `EXPECTED` (`-`: no expectation); unpacks into `STATE/incoming`, removes the revision
//!   stamp, swaps the tree in, moves the manifest, writes the drift marker `STATE/synced` (which an incremental sync's probe compares the tree against) and the stamp last, so a swap that
//!   breaks part-way leaves no stamp and the next sync reports the mismatch. Exit 4 (cannot
//!   write), 5 (tar failed or the stream was cut), 6 (a rename failed). Prunes run records in
//!   the background.
//! - [`FETCH_SEND`] `WORKDIR PATH…`: a tar of those paths of the workdir on stdout; exit 3
//!   naming a path that does not exist, 4 when the workdir does not.
//!
//! Pruning keeps the newest 50 finished runs and at most 64 MiB of recorded output; it never
//! removes a run whose process group still lives, or whose result was never read.
//!
//! # The verified-exec header
//!
//! The wrapper reads, on stdin, the line `leasebox-exec 2`, then `run=ID`, `cwd=PATH`, any
//! number of `env=NAME=VALUE` lines, and an empty line; the rest of stdin belongs to the
//! command (EOF when the client closes it or the connection drops). Values are escaped for
//! `printf '%b'` (backslash and control bytes as octal escapes) so they never contain a
//! newline. Environment values therefore never travel in a URL or on any argv.

/// The exit code [`PREPARE`] gives when the box lacks a tool (`EX_CONFIG`).
pub const EXIT_UNSUITABLE: i32 = 78;

/// The tools the scripts need, as the error for a box without one lists them.
pub const NEEDED_TOOLS: &str = "`sh`, `tar`, `tee`, `cat`, `tail`, `mv`, `rm`, `rmdir`, `mkdir`, `ls`, `wc`, `sleep`, `find`, and `setsid` (or a `sh` with job control)";

/// Resolve a `${NOMAD_ALLOC_DIR}` prefix of variable `$1` (an `sh` snippet).
macro_rules! alloc_dir {
    ($var:literal) => {
        concat!(
            "case $",
            $var,
            " in '${NOMAD_ALLOC_DIR}'*) ",
            $var,
            "=$NOMAD_ALLOC_DIR${",
            $var,
            "#'${NOMAD_ALLOC_DIR}'};; esac\n"
        )
    };
}

pub(super) use alloc_dir;

/// The supervisor's text (no single quotes: the wrapper embeds it in them).
macro_rules! supervisor {
    () => {
        r#"lbx_d=$1
set -C
{ : >"$lbx_d.go"; } 2>/dev/null || { echo "leasebox: the run $lbx_d was claimed already; it was not started" >&2; exit 125; }
set +C
exec 5<&0 0</dev/null
{ {
  ( for lbx_p in /proc/self/task/*; do lbx_p=${lbx_p##*/}; break; done
    case $lbx_p in ""|*[!0-9]*) lbx_p=$(exec sh -c "echo \$PPID");; esac
    : >"$lbx_d.pid.$lbx_p.$$"
    if [ -n "$3" ]; then LC_ALL=$2; else unset LC_ALL; fi
    shift 3; set -- -lbx- "$@"
    while IFS= read -r lbx_l && [ -n "$lbx_l" ]; do set -- "$lbx_l" "$@"; done
    while [ "$1" != -lbx- ]; do
      case $1 in
        *\\*) lbx_n=${1#env=}; lbx_n=${lbx_n%%=*}; eval "export $lbx_n=\"\$(printf %bx \"\${1#env=*=}\")\"; $lbx_n=\${$lbx_n%x}";;
        *) export "${1#env=}";;
      esac
      shift
    done
    shift
    case $1 in -*) command -v -- "$1" >/dev/null 2>&1 && set -- "$(command -v -- "$1")" "$@" && shift;; esac
    command -v -- "$1" >/dev/null 2>&1 || { printf "%s: not found\n" "$1" >&2; exit 127; }
    exec "$@"
  ) <&5 5<&- 2>&1 >&3 3>&-
  echo "$?" >"$lbx_d.exit.t"
} | { trap "" PIPE; tee -a "$lbx_d.err" >&2 3>&- 5<&-; }; } 3>&1 | { trap "" PIPE; tee -a "$lbx_d.out" 5<&-; }
lbx_c=; read -r lbx_c <"$lbx_d.exit.t"
case $lbx_c in ""|*[!0-9]*) echo "leasebox: the command exit code of $lbx_d was not recorded" >&2; exit 125;; esac
: >"$lbx_d.exit.$lbx_c"
exit "$lbx_c"
"#
    };
}

/// The supervisor: started by [`WRAPPER`] in its own session (or process group), it runs the
/// command and records it. Arguments: the run's record path `STATE/runs/RUN`, the box's own
/// `LC_ALL` and `x` if it was set (the wrapper starts the supervisor and the relays with
/// `LC_ALL=C`; the command gets the box's value back), then the argv.
pub const SUPERVISOR: &str = supervisor!();

/// The verified-exec wrapper. Arguments: `$1` the box state dir, then the command's argv.
pub const WRAPPER: &str = concat!(
    "lbx_st=$1; shift\n",
    alloc_dir!("lbx_st"),
    r#"IFS= read -r lbx_l; [ "$lbx_l" = 'leasebox-exec 2' ] || { echo 'leasebox: exec header missing' >&2; exit 125; }
IFS= read -r lbx_l; lbx_d=$lbx_st/runs/${lbx_l#run=}
IFS= read -r lbx_l; lbx_l=${lbx_l#cwd=}
case $lbx_l in *\\*) lbx_l=$(printf '%bx' "$lbx_l"); lbx_l=${lbx_l%x};; esac
"#,
    alloc_dir!("lbx_l"),
    r#"lbx_o=${OLDPWD-}; lbx_x=${OLDPWD+x}
cd "$lbx_l" 2>/dev/null || { echo "leasebox: working directory $lbx_l does not exist in the box" >&2; exit 125; }
if [ -n "$lbx_x" ]; then OLDPWD=$lbx_o; else unset OLDPWD; fi
exec 4<&0 0</dev/null
lbx_s='"#,
    supervisor!(),
    r#"'
if command -v setsid >/dev/null 2>&1; then
  LC_ALL=C setsid sh -c "$lbx_s" leasebox-run "$lbx_d" "${LC_ALL-}" "${LC_ALL+x}" "$@" <&4 4<&-
  lbx_c=$?
else
  set -m 2>/dev/null
  case $- in *m*) ;; *) echo 'leasebox: missing-tool setsid: the box has no `setsid` and its sh has no job control (`set -m`)' >&2; exit 125;; esac
  LC_ALL=C sh -c "$lbx_s" leasebox-run "$lbx_d" "${LC_ALL-}" "${LC_ALL+x}" "$@" <&4 4<&- &
  set +m
  exec 4<&-
  wait "$!"
  lbx_c=$?
fi
{ : >"$lbx_d.read"; } 2>/dev/null
exit "$lbx_c"
"#
);

/// Reads the record of a run after a lost connection. Arguments: state dir, run id, stdout
/// and stderr resume positions (1-based, `-` for none), `claim` or `-`. See the module docs.
pub const CATCHUP: &str = concat!(
    records!(),
    "lbx_st=$1\n",
    alloc_dir!("lbx_st"),
    r#"lbx_d=$lbx_st/runs/$2
if lbx_exit "$lbx_d"; then echo "exited $lbx_c"; : >"$lbx_d.read"
elif lbx_pid "$lbx_d"; then
  if kill -0 -"$lbx_g" 2>/dev/null; then echo "running $lbx_p"
  elif lbx_exit "$lbx_d"; then echo "exited $lbx_c"; : >"$lbx_d.read"
  else echo "vanished $lbx_p"; fi
elif [ -f "$lbx_d.go" ]; then echo starting
elif [ "$5" = claim ]; then
  if (set -C; : >"$lbx_d.go") 2>/dev/null; then echo never; exit 0; else echo starting; fi
else echo never; exit 0; fi
[ "$3" = - ] || tail -c +"$3" "$lbx_d.out" 2>/dev/null
[ "$4" = - ] || tail -c +"$4" "$lbx_d.err" >&2 2>/dev/null
exit 0
"#
);

/// Stops a recorded run's process group: TERM, then KILL after the grace period. Arguments:
/// state dir, run id, grace seconds.
pub const KILL: &str = concat!(
    records!(),
    "lbx_st=$1\n",
    alloc_dir!("lbx_st"),
    r#"lbx_d=$lbx_st/runs/$2
lbx_i=0
until lbx_pid "$lbx_d" || lbx_exit "$lbx_d"; do
  if [ "$lbx_i" -eq 0 ] && (set -C; : >"$lbx_d.go") 2>/dev/null; then exit 0; fi
  [ "$lbx_i" -ge 50 ] && exit 0
  sleep 0.1 2>/dev/null || sleep 1
  lbx_i=$((lbx_i + 1))
done
lbx_exit "$lbx_d" && { : >"$lbx_d.read"; exit 0; }
case $lbx_g in ""|*[!0-9]*|0|1) exit 0;; esac
kill -TERM -"$lbx_g" 2>/dev/null || exit 0
lbx_c=143; lbx_i=0
while kill -0 -"$lbx_g" 2>/dev/null; do
  if [ "$lbx_i" -ge "$(($3 * 10))" ]; then kill -KILL -"$lbx_g" 2>/dev/null; lbx_c=137; break; fi
  sleep 0.1 2>/dev/null || sleep 1
  lbx_i=$((lbx_i + 1))
done
lbx_k=$lbx_c
lbx_exit "$lbx_d" || : >"$lbx_d.exit.$lbx_k"
: >"$lbx_d.read"
exit 0
"#
);

/// The readers of the name-carrying records, as `sh` functions: `lbx_exit RUN_PATH` sets
/// `lbx_c` to the recorded exit code, `lbx_pid RUN_PATH` sets `lbx_p` and `lbx_g` to the
/// command's pid and process group; each is false when there is no such record.
macro_rules! records {
    () => {
        r#"lbx_exit() {
  for lbx_f in "$1".exit.*; do
    lbx_f=${lbx_f##*.exit.}; case $lbx_f in ""|*[!0-9]*) ;; *) lbx_c=$lbx_f; return 0;; esac
  done; return 1
}
lbx_pid() {
  for lbx_f in "$1".pid.*; do
    lbx_f=${lbx_f##*.pid.}
    case $lbx_f in ""|*[!0-9.]*|.*|*.|*.*.*) ;; *.*) lbx_p=${lbx_f%.*}; lbx_g=${lbx_f#*.}; return 0;; esac
  done; return 1
}
"#
    };
}
pub(crate) use records;

/// The pruning of run records, as an `sh` function `lbx_prune RUNS_DIR` (with the record
/// readers it uses); with no record at all (a fresh box) it starts no program.
macro_rules! prune {
    () => {
        concat!(
            $crate::session::scripts::records!(),
            r#"lbx_prune() {
  for lbx_f in "$1"/r*; do [ -e "$lbx_f" ] || return 0; break; done
  lbx_prune_in "$1"
}
lbx_prune_in() (
  cd "$1" 2>/dev/null || exit 0
  lbx_keep=50; lbx_max=67108864; lbx_n=0; lbx_b=0
  for lbx_f in $(wc -c -- *.out *.err 2>/dev/null | while read -r lbx_s lbx_f; do case $lbx_f in r*.out|r*.err) echo "${lbx_f%.*}=$lbx_s";; esac; done); do
    lbx_r=${lbx_f%%=*}; case $lbx_r in *[!a-z0-9]*) continue;; esac
    eval "lbx_s=\${lbx_z_$lbx_r:-0}"
    eval "lbx_z_$lbx_r=$((lbx_s + ${lbx_f#*=}))"
  done
  set --
  for lbx_f in $(ls -t 2>/dev/null); do
    case $lbx_f in r*.exit.[0-9]*) ;; *) continue;; esac
    lbx_r=${lbx_f%%.*}; case $lbx_r in *[!a-z0-9]*) continue;; esac
    [ -f "$lbx_r.read" ] || continue
    eval "lbx_s=\${lbx_z_$lbx_r:-0}"
    lbx_n=$((lbx_n + 1)); lbx_b=$((lbx_b + lbx_s))
    if [ "$lbx_n" -gt "$lbx_keep" ] || [ "$lbx_b" -gt "$lbx_max" ]; then set -- "$@" "$lbx_r".*; fi
  done
  for lbx_f in r*.pid.*; do
    [ -f "$lbx_f" ] || continue; lbx_r=${lbx_f%%.*}
    lbx_exit "$lbx_r" && continue
    lbx_pid "$lbx_r" || continue
    case $lbx_g in ""|*[!0-9]*|0|1) continue;; esac
    kill -0 -"$lbx_g" 2>/dev/null || set -- "$@" "$lbx_r".*
  done
  [ "$#" -eq 0 ] || rm -f -- "$@"
)
"#
        )
    };
}

pub(super) use prune;

/// Prepares a box: checks the tools the scripts need, creates the workdir and the state dir,
/// prunes old run records. Arguments: workdir, state dir.
pub const PREPARE: &str = concat!(
    prune!(),
    r#"for lbx_t in tar tee cat tail mv rm rmdir mkdir ls wc sleep find; do
  command -v "$lbx_t" >/dev/null 2>&1 || { echo "leasebox: missing-tool $lbx_t" >&2; exit 78; }
done
if ! command -v setsid >/dev/null 2>&1; then
  set -m 2>/dev/null; case $- in *m*) set +m;; *) echo "leasebox: missing-tool setsid (and its sh has no job control)" >&2; exit 78;; esac
fi
lbx_w=$1; lbx_st=$2
"#,
    alloc_dir!("lbx_w"),
    alloc_dir!("lbx_st"),
    r#"mkdir -p -- "$lbx_w" "$lbx_st/runs" || { echo "leasebox: cannot create $lbx_w in the box" >&2; exit 4; }
lbx_prune "$lbx_st/runs"
echo "$lbx_w"
"#
);

/// Receives a sync: a tar on stdin holding `tree/…` (the new workdir) and `meta/manifest.jsonl`
/// and `meta/revision`, extracted into a staging dir and swapped into place so deleted files
/// disappear. Arguments: workdir, state dir, expected revision stamp or `-` for none.
pub const SYNC_RECEIVE: &str = concat!(
    prune!(),
    "lbx_w=$1; lbx_st=$2\n",
    alloc_dir!("lbx_w"),
    alloc_dir!("lbx_st"),
    r#"if [ "$3" != - ]; then
  lbx_r=; [ -f "$lbx_st/revision" ] && read -r lbx_r <"$lbx_st/revision"
  [ "$lbx_r" = "$3" ] || { cat >/dev/null; echo "leasebox: the box was changed by another client (revision ${lbx_r:-none}, expected $3)" >&2; exit 3; }
fi
mkdir -p -- "$lbx_st" && rm -rf -- "$lbx_st/incoming" && mkdir -- "$lbx_st/incoming" || { cat >/dev/null; echo "leasebox: cannot write $lbx_st in the box" >&2; exit 4; }
lbx_old=$lbx_st/old.$$
tar -xof - -C "$lbx_st/incoming" || { echo "leasebox: tar failed to unpack the sync stream in the box" >&2; exit 5; }
[ -f "$lbx_st/incoming/meta/revision" ] || { rm -rf -- "$lbx_st/incoming"; echo "leasebox: the sync stream was cut short; the workdir was left as it was" >&2; exit 5; }
mkdir -p -- "$lbx_st/incoming/tree"
# The stamp goes before the tree changes and comes back last: a swap that breaks part-way
# leaves no stamp, which the next sync reports as a mismatch.
rm -f -- "$lbx_st/revision" || exit 6
if [ -e "$lbx_w" ]; then mv -- "$lbx_w" "$lbx_old" || exit 6; fi
mv -- "$lbx_st/incoming/tree" "$lbx_w" || { [ -e "$lbx_old" ] && mv -- "$lbx_old" "$lbx_w"; exit 6; }
mv -f -- "$lbx_st/incoming/meta/manifest.jsonl" "$lbx_st/manifest.jsonl" || exit 6
# The drift marker an incremental sync's probe compares against (`find -newer`): made now,
# after the tree is in place (the tree keeps the local mtimes), before the stamp.
read -r lbx_r <"$lbx_st/incoming/meta/revision" && echo "$lbx_r" >"$lbx_st/synced" || exit 6
mv -f -- "$lbx_st/incoming/meta/revision" "$lbx_st/revision" || exit 6
rmdir -- "$lbx_st/incoming/meta" "$lbx_st/incoming" 2>/dev/null
# The old tree (and any a crash left) and old run records go away off the run's path,
# detached from the session.
{ rm -rf -- "$lbx_st"/old.*; lbx_prune "$lbx_st/runs"; } </dev/null >/dev/null 2>&1 &
"#
);

/// Sends paths of the workdir as a tar on stdout. Arguments: workdir, then relative paths.
pub const FETCH_SEND: &str = concat!(
    "lbx_w=$1; shift\n",
    alloc_dir!("lbx_w"),
    r#"cd "$lbx_w" 2>/dev/null || { echo "leasebox: the workdir $lbx_w does not exist in the box" >&2; exit 4; }
for lbx_p; do
  [ -e "$lbx_p" ] || [ -h "$lbx_p" ] || { echo "leasebox: \`$lbx_p\` does not exist in the box's workdir" >&2; exit 3; }
done
exec tar -cf - -- "$@"
"#
);

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
    let mut out = format!("leasebox-exec 2\nrun={run_id}\ncwd={}\n", escape_value(cwd));
    // The supervisor exports the lines last to first (so they go in reversed, and a later
    // value of a name still wins), using one variable of its own (`lbx_n`) while it does: a
    // variable of that name goes first, so it is exported last and nothing overwrites it.
    let (own, rest): (Vec<_>, Vec<_>) = env.iter().partition(|(name, _)| name == "lbx_n");
    for (name, value) in own.into_iter().rev().chain(rest.into_iter().rev()) {
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
    fn the_supervisor_can_sit_in_single_quotes() {
        assert!(!SUPERVISOR.contains('\''));
    }

    #[test]
    fn env_lines_go_in_reversed_with_the_supervisors_own_name_first() {
        let env = [
            ("A".to_owned(), "1".to_owned()),
            ("lbx_n".to_owned(), "x".to_owned()),
            ("A".to_owned(), "2".to_owned()),
        ];
        let h = header("r1", "/w", &env);
        assert_eq!(
            h,
            "leasebox-exec 2\nrun=r1\ncwd=/w\nenv=lbx_n=x\nenv=A=2\nenv=A=1\n\n"
        );
    }

    #[test]
    fn wrapper_decodes_what_the_header_encodes() {
        let value = "line1\nline2 \\ $HOME `x` 'q' \"d\" %s\t\u{1}end\n";
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("w.lbx");
        std::fs::create_dir_all(st.join("runs")).unwrap();
        let input = header(
            "r1",
            dir.path().to_str().unwrap(),
            &[("V".to_owned(), value.to_owned())],
        );
        let out = std::process::Command::new("sh")
            .args(["-c", WRAPPER, "lbx", st.to_str().unwrap()])
            .args(["sh", "-c", "printf '%s' \"$V\"; cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
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
        assert!(
            out.status.success(),
            "{:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{value}REST")
        );
        wait_for_record(&st.join("runs/r1.exit.0"));
        let recorded = std::fs::read_to_string(st.join("runs/r1.out")).unwrap();
        assert_eq!(recorded, format!("{value}REST"));
    }

    #[test]
    fn the_command_gets_the_boxs_lc_all_back_set_empty_or_unset() {
        for lc_all in [None, Some(""), Some("C.UTF-8")] {
            let dir = tempfile::tempdir().unwrap();
            let st = dir.path().join("w.lbx");
            std::fs::create_dir_all(st.join("runs")).unwrap();
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", WRAPPER, "lbx", st.to_str().unwrap()])
                .args(["sh", "-c", "echo \"${LC_ALL-unset} ${LC_ALL+set}\""])
                .env_remove("LC_ALL")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            if let Some(value) = lc_all {
                cmd.env("LC_ALL", value);
            }
            let out = cmd
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    let input = header("r1", dir.path().to_str().unwrap(), &[]);
                    child.stdin.take().unwrap().write_all(input.as_bytes())?;
                    child.wait_with_output()
                })
                .unwrap();
            let want = match lc_all {
                None => "unset \n".to_owned(),
                Some(v) => format!("{v} set\n"),
            };
            assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{lc_all:?}");
        }
    }

    fn catchup(st: &std::path::Path, out: &str, err: &str) -> (String, String) {
        let o = std::process::Command::new("sh")
            .args([
                "-c",
                CATCHUP,
                "lbx",
                st.to_str().unwrap(),
                "r1",
                out,
                err,
                "-",
            ])
            .output()
            .unwrap();
        assert!(o.status.success());
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    }

    #[test]
    fn catchup_positions_never_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("w.lbx");
        std::fs::create_dir_all(st.join("runs")).unwrap();
        std::fs::write(st.join("runs/r1.out"), "hello").unwrap();
        std::fs::write(st.join("runs/r1.err"), "oops").unwrap();
        std::fs::write(st.join("runs/r1.exit.3"), "").unwrap();
        // The supervisor's scratch copy is never taken for the record.
        std::fs::write(st.join("runs/r1.exit.t"), "9\n").unwrap();
        assert_eq!(
            catchup(&st, "1", "1"),
            ("exited 3\nhello".into(), "oops".into())
        );
        assert_eq!(
            catchup(&st, "3", "5"),
            ("exited 3\nllo".into(), String::new())
        );
        // Past the end, even past u64: nothing is re-sent.
        let huge = (u128::from(u64::MAX) + 1).to_string();
        assert_eq!(
            catchup(&st, &huge, &huge),
            ("exited 3\n".into(), String::new())
        );
        // The status-only probe.
        assert_eq!(catchup(&st, "-", "-"), ("exited 3\n".into(), String::new()));
        assert!(st.join("runs/r1.read").exists());
    }

    /// A record the supervisor creates just after it exits.
    fn wait_for_record(path: &std::path::Path) {
        for _ in 0..200 {
            if path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("no record at {}", path.display());
    }
}
