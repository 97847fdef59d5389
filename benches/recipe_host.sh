#!/bin/sh
# Benchmarks of the recipe host, each against a baseline measured in the same run:
#
#   1. start-up: `leasebox run` of a trivial imperative recipe (VM + stdlib + recipe, no lease)
#      against `leasebox --version`;
#   2. per-step overhead: a declarative recipe of 100 sequential `true` steps on the local
#      backend against 100 direct spawns of `sh -c true`.
#
# Usage: benches/recipe_host.sh [path/to/leasebox] [runs]   (default: target/release/leasebox, 20)
# Runs in a scratch git repository with its own state and cache dirs; prints milliseconds.
set -eu

bin=$(cd "$(dirname "${1:-target/release/leasebox}")" && pwd)/$(basename "${1:-target/release/leasebox}")
runs=${2:-20}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export LEASEBOX_STATE_DIR="$scratch/state" XDG_CACHE_HOME="$scratch/cache" XDG_CONFIG_HOME="$scratch/config"
mkdir -p "$scratch/repo/recipes"
cd "$scratch/repo"
git init -q
echo 'local x = require("leasebox").args' > recipes/trivial.lua
{
  echo 'local steps = {}'
  echo 'for i = 1, 100 do steps[i] = { "s" .. i, { "true" } } end'
  echo 'return require("leasebox").recipe { steps = steps, sync = false }'
} > recipes/hundred.lua
git add -A && git -c user.name=b -c user.email=b@example.invalid commit -qm bench

now_ms() { date +%s%3N; }

# Median of N wall-clock runs of a command, in milliseconds.
median() {
  n=$1; shift
  i=0
  : > "$scratch/times"
  while [ "$i" -lt "$n" ]; do
    t0=$(now_ms); "$@" >/dev/null 2>&1; t1=$(now_ms)
    echo $((t1 - t0)) >> "$scratch/times"
    i=$((i + 1))
  done
  sort -n "$scratch/times" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

spawns() { i=0; while [ "$i" -lt 100 ]; do sh -c true; i=$((i + 1)); done; }

version=$(median "$runs" "$bin" --version)
trivial=$(median "$runs" "$bin" run trivial)
echo "start-up: leasebox --version ${version} ms, run trivial ${trivial} ms, difference $((trivial - version)) ms"

direct=$(median 5 spawns)
hundred=$(median 5 "$bin" run hundred)
per_step=$(awk -v r="$hundred" -v d="$direct" 'BEGIN { printf "%.1f", (r - d) / 100 }')
echo "100 steps: direct spawns ${direct} ms, recipe ${hundred} ms, overhead per step ${per_step} ms"
