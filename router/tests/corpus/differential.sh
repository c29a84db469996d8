#!/usr/bin/env bash
# Differential check: runs the federation corpus against our router and against Hive Router
# (same subgraphs, same supergraphs, same expectations) and prints, check by check, where the
# two routers' outcomes differ. Not part of `cargo test`.
#
# Usage: router/tests/corpus/differential.sh [cargo test filter]
# Hive Router binary: $CORPUS_HIVE_BIN (default /work/tools/hive/bin/hive_router), installed with
#   cargo install hive-router@0.2.19 --locked --features graphiql --root /work/tools/hive
set -euo pipefail

root="$(cd "$(dirname "$0")/../../.." && pwd)"
hive="${CORPUS_HIVE_BIN:-/work/tools/hive/bin/hive_router}"
filter="${1:-}"
[ -x "$hive" ] || { echo "Hive Router not found at $hive (set CORPUS_HIVE_BIN)" >&2; exit 2; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Outcome lines look like `corpus: PASS case/check`; libtest may print its own progress on the
# same line, so extract them rather than match whole lines.
outcomes() {
  grep -o 'corpus: [A-Z-]* [a-z0-9_]*/[a-z0-9_]*' | awk '{ print $3, $2 }' | sort
}

cd "$root"
echo "running the corpus against shippy-router..."
cargo test -q -p shippy-router --test corpus $filter -- --nocapture --test-threads 2 2>&1 | outcomes >"$out/shippy" || true
echo "running the corpus against Hive Router ($hive)..."
CORPUS_ROUTER=hive CORPUS_HIVE_BIN="$hive" \
  cargo test -q -p shippy-router --test corpus $filter -- --nocapture --test-threads 2 2>&1 | outcomes >"$out/hive" || true

join -a1 -a2 -e MISSING -o 0,1.2,2.2 "$out/shippy" "$out/hive" >"$out/both"
printf '\n%-64s %-12s %s\n' "check" "shippy" "hive"
awk '{ s = ($2 == "PASS") ? "pass" : "FAIL"; h = ($3 == "PASS") ? "pass" : "FAIL"; if (s != h) printf "%-64s %-12s %s\n", $1, $2, $3 }' "$out/both"
printf '\nshippy: %s of %s pass; hive: %s of %s pass\n' \
  "$(grep -c ' PASS$' "$out/shippy" || true)" "$(wc -l <"$out/shippy")" \
  "$(grep -c ' PASS$' "$out/hive" || true)" "$(wc -l <"$out/hive")"
