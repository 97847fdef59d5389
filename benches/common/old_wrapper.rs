//! The verified-exec wrapper as it was before the command moved under a detached supervisor
//! (commit 56f2553), kept only as the benchmarks' baseline: it ran the command as its own
//! child, so an agent that killed it lost the exit code. Never run by leasebox.

/// The old wrapper. Arguments: `$1` the box state dir, then the command's argv; the header is
/// [`old_header`]'s.
pub const OLD_WRAPPER: &str = r#"lbx_st=$1; shift
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

/// The header the old wrapper reads (`leasebox-exec 1`, values escaped alike).
pub fn old_header(run_id: &str, cwd: &str) -> String {
    format!("leasebox-exec 1\nrun={run_id}\ncwd={cwd}\n\n")
}

/// Prepare a state dir as the old `prepare` did: the `tee-p` marker where `tee -p` works.
pub fn old_prepare(state_dir: &str) {
    let ok = std::process::Command::new("tee")
        .args(["-p", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        std::fs::write(format!("{state_dir}/tee-p"), "").expect("write tee-p");
    }
}
