//! The box-side `sh` scripts of the incremental sync: [`SYNC_PROBE`] (what the box holds: its
//! revision stamp, optionally its manifest, and the paths changed since the last sync) and
//! [`SYNC_APPLY`] (deletions, then a tar of the new and changed files, then the manifest, the
//! drift marker and the revision stamp, in that order). The full replace stays in
//! [`SYNC_RECEIVE`](super::scripts::SYNC_RECEIVE).
//!
//! POSIX `sh`, `find`, `tar`, `rm`, `rmdir`, `mv`, `mkdir` and `cat` only (dash, BusyBox; paths
//! are printed with `printf %s`, never `echo`, and decoded with `printf %b`); the
//! `${NOMAD_ALLOC_DIR}` prefix and the pruning of run records are the ones of
//! [`scripts`](super::scripts) (an apply prunes, as a full sync does).
//!
//! # Box-side state added by the incremental sync
//!
//! ```text
//! W.lbx/synced            touched at the end of every incremental apply, before the revision
//!                         stamp is written: `find -newer` against it lists what the box changed
//!                         since (a file written in the same second is missed by a `find` that
//!                         compares whole seconds, as BusyBox's does)
//! W.lbx/manifest.jsonl    as for the full sync; an incremental apply appends its changes (a
//!                         header line with the new revision, changed entries, and
//!                         `{"path":…,"gone":true}` for deletions): a later line wins
//! ```
//!
//! # The probe's output
//!
//! ```text
//! revision REV|-          the box's stamp (`-`: none)
//! workdir empty|used      whether the workdir has anything in it
//! manifest                (only when asked) the box's manifest.jsonl, then a line `.`
//! drift                   then records `f PATH`, `l PATH`, `d PATH` (files, links,
//!                         directories newer than the marker, `./`-prefixed) and, after each
//!                         `d`, `e PATH` for every entry the directory still holds, each ended
//!                         by a NUL byte, not a newline (a name may hold newlines; `printf %s`,
//!                         never `echo`, which dash and BusyBox let expand backslashes)
//! end
//! ```
//!
//! # The apply's stdin
//!
//! `leasebox-sync 1`, then `rev=NEW`, then lines `d=PATH` (delete), `r=DIR` (remove if empty,
//! with its empty parents), `a=DIR` (must be a directory: a file or link in the way goes),
//! `p=PATH` (a directory or link in the way goes), values escaped for `printf '%b'`, an
//! empty line, then a tar of the files to write, whose last member is
//! `.leasebox-sync-NEW/manifest.jsonl` (the manifest, full or the lines to append; `full` as
//! its first line's `full` key says). The member proves the stream arrived whole.

use super::scripts::{alloc_dir, prune};

/// Reports what the box holds. Arguments: workdir, state dir, `1` to print the manifest
/// whatever the stamp, `auto` to print it when the stamp is not the expected one, `0` never;
/// the expected stamp (`-`: none); then the top-level names the sync owns as `find -name`
/// patterns (none: nothing owned, no drift; a single `*`: walk everything).
pub const SYNC_PROBE: &str = concat!(
    "lbx_w=$1; lbx_st=$2; lbx_m=$3; lbx_e=$4; shift 4\n",
    alloc_dir!("lbx_w"),
    alloc_dir!("lbx_st"),
    r#"lbx_r=; [ -f "$lbx_st/revision" ] && read -r lbx_r <"$lbx_st/revision"
echo "revision ${lbx_r:--}"
lbx_u=empty
for lbx_x in "$lbx_w"/* "$lbx_w"/.[!.]* "$lbx_w"/..?*; do
  if [ -e "$lbx_x" ] || [ -h "$lbx_x" ]; then lbx_u=used; break; fi
done
echo "workdir $lbx_u"
if [ "$lbx_m" = 1 ] || { [ "$lbx_m" = auto ] && [ "${lbx_r:--}" != "$lbx_e" ]; }; then
  echo manifest
  [ -f "$lbx_st/manifest.jsonl" ] && cat "$lbx_st/manifest.jsonl"
  echo .
fi
echo drift
lbx_ref=$lbx_st/synced
if [ -f "$lbx_st/revision" ]; then
  # The later of the two marks the end of the last sync (`-nt`: dash, BusyBox and bash have it;
  # a shell without it keeps the drift marker, which can only report more, never less).
  if [ ! -f "$lbx_ref" ] || [ "$lbx_st/revision" -nt "$lbx_ref" ] 2>/dev/null; then
    lbx_ref=$lbx_st/revision
  fi
fi
if [ $# -gt 0 ] && [ -f "$lbx_ref" ] && [ "$lbx_u" = used ] && cd "$lbx_w" 2>/dev/null; then
  lbx_n=$#
  for lbx_x; do set -- "$@" -o -name "$lbx_x"; done
  shift "$lbx_n"; shift
  find . \( -path './*' ! -path './*/*' ! \( "$@" \) \) -prune -o -newer "$lbx_ref" -exec sh -c '
for p; do
  if [ -h "$p" ]; then printf "l %s\000" "$p"
  elif [ -d "$p" ]; then printf "d %s\000" "$p"
    for e in "$p"/* "$p"/.[!.]* "$p"/..?*; do
      if [ -e "$e" ] || [ -h "$e" ]; then printf "e %s\000" "$e"; fi
    done
  else printf "f %s\000" "$p"; fi
done' leasebox-drift {} + 2>/dev/null
fi
echo end
"#
);

/// Applies an incremental sync. Arguments: workdir, state dir, the stamp the probe saw (`-`:
/// none). Refuses (exit 3) when the stamp changed since; removes the stamp before the tree
/// changes and writes the new one last, so a broken apply leaves a box whose stamp is
/// missing, never a mixed tree under a valid stamp.
pub const SYNC_APPLY: &str = concat!(
    prune!(),
    "lbx_w=$1; lbx_st=$2\n",
    alloc_dir!("lbx_w"),
    alloc_dir!("lbx_st"),
    r#"lbx_r=; [ -f "$lbx_st/revision" ] && read -r lbx_r <"$lbx_st/revision"
[ "${lbx_r:--}" = "$3" ] || { cat >/dev/null; echo "leasebox: the box was changed by another client during this sync (revision ${lbx_r:-none}, expected $3)" >&2; exit 3; }
IFS= read -r lbx_l; [ "$lbx_l" = 'leasebox-sync 1' ] || { cat >/dev/null; echo 'leasebox: sync header missing' >&2; exit 5; }
IFS= read -r lbx_l; lbx_new=${lbx_l#rev=}
case $lbx_new in ''|*[!0-9a-f]*) cat >/dev/null; echo 'leasebox: bad sync header' >&2; exit 5;; esac
{ { [ -d "$lbx_w" ] && [ -d "$lbx_st" ]; } || mkdir -p -- "$lbx_w" "$lbx_st"; } && cd "$lbx_w" || { cat >/dev/null; printf 'leasebox: cannot write %s in the box\n' "$lbx_w" >&2; exit 4; }
rm -f -- "$lbx_st/revision" || { cat >/dev/null; printf 'leasebox: cannot write %s in the box\n' "$lbx_st" >&2; exit 4; }
for lbx_x in ./.leasebox-sync-*; do [ -e "$lbx_x" ] && rm -rf ./.leasebox-sync-*; break; done
lbx_dec() { case $1 in *\\*) lbx_x=$(printf '%bx' "$1"); lbx_x=${lbx_x%x};; *) lbx_x=$1;; esac; }
# Nothing is deleted through a link the box put where a synced directory was.
lbx_safe() { lbx_p=$1; while :; do case $lbx_p in */*) lbx_p=${lbx_p%/*}; [ -h "$lbx_p" ] && return 1;; *) return 0;; esac; done; }
set --
lbx_op=
while :; do
  IFS= read -r lbx_l || lbx_l=
  lbx_k=${lbx_l%%=*}
  if [ $# -gt 0 ] && { [ "$lbx_k" != "$lbx_op" ] || [ $# -ge 256 ]; }; then
    case $lbx_op in d) rm -f -- "$@";; r) rmdir -p -- "$@" 2>/dev/null;; esac
    set --
  fi
  [ -n "$lbx_l" ] || break
  lbx_op=$lbx_k
  lbx_dec "${lbx_l#*=}"
  case $lbx_k in
    d|r) if lbx_safe "$lbx_x"; then set -- "$@" "$lbx_x"; fi;;
    a) if [ -h "$lbx_x" ] || { [ -e "$lbx_x" ] && [ ! -d "$lbx_x" ]; }; then rm -f -- "$lbx_x"; fi;;
    p) if [ -h "$lbx_x" ]; then rm -f -- "$lbx_x"; elif [ -d "$lbx_x" ]; then rm -rf -- "$lbx_x"; fi;;
  esac
done
tar -xmof - || { echo 'leasebox: tar failed to unpack the sync stream in the box; the next sync repairs the workdir' >&2; exit 5; }
lbx_mf=./.leasebox-sync-$lbx_new/manifest.jsonl
[ -f "$lbx_mf" ] || { echo 'leasebox: the sync stream was cut short; the next sync repairs the workdir' >&2; exit 5; }
IFS= read -r lbx_l <"$lbx_mf"
case $lbx_l in
  *'"full":true'*) mv -f "$lbx_mf" "$lbx_st/manifest.jsonl" || exit 6;;
  *) cat "$lbx_mf" >>"$lbx_st/manifest.jsonl" || exit 6;;
esac
rm -rf "./.leasebox-sync-$lbx_new"
echo "$lbx_new" >"$lbx_st/synced" || exit 6
# Written in place: a reader that finds it cut short or empty sees a mismatch, as it does a
# missing stamp.
echo "$lbx_new" >"$lbx_st/revision" || exit 6
# Old run records go away off the run's path, detached from the session.
{ lbx_prune "$lbx_st/runs"; } </dev/null >/dev/null 2>&1 &
"#
);
