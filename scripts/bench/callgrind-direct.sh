#!/usr/bin/env bash
# scripts/bench/callgrind-direct.sh — instructions per direct check, tollgate vs governor 0.10,
# counted by callgrind: the load-independent figure of BENCHMARKS.md ("In-process").
#
# Builds crates/memory/examples/direct_checks.rs (release profile), runs N checks of each
# kind under `valgrind --tool=callgrind`, collecting only inside the loop functions
# (`direct_checks::run_*`), and prints instructions per check. The count includes the loop and
# the `black_box` of each result, the same for every row. Instruction counts do not depend on
# the machine's load, so this is the comparison to trust on a busy machine; the nanoseconds
# still need `cargo bench`. Needs valgrind.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bench/callgrind-direct.sh [N] [--keep DIR]

Counts instructions per direct check (allowing and denying) for tollgate's
DirectLimiter::check and ::admit and governor's RateLimiter::check.

  N           checks per run (default 200000)
  --keep DIR  keep the callgrind output files in DIR (for callgrind_annotate)
EOF
}

N=200000
KEEP=""
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --keep) KEEP="${2:?--keep needs a directory}"; shift 2 ;;
    *[!0-9]* | "") echo "not a number of checks: $1" >&2; usage >&2; exit 2 ;;
    *) N="$1"; shift ;;
  esac
done
if ((N == 0)); then
  echo "N must be at least 1" >&2
  exit 2
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

cd "$(dirname "$0")/../.."
TMP="$(mktemp -d)"
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh

step "building the example (release profile)"
# The executable's path as cargo reports it (CARGO_TARGET_DIR is honoured).
BIN="$(cargo build --release --quiet -p tollgate-memory --example direct_checks \
  --message-format=json | sed -n 's/.*"executable":"\([^"]*direct_checks[^"]*\)".*/\1/p')"
[[ -x "$BIN" ]] || { echo "could not find the built example (got '$BIN')" >&2; exit 1; }
OUT="${KEEP:-$TMP}"
mkdir -p "$OUT"

step "callgrind, $N checks per run"
printf '%-16s %-6s %14s\n' "limiter" "mode" "instr/check"
for mode in allow deny; do
  for which in tollgate_check tollgate_admit governor; do
    file="$OUT/callgrind.$which.$mode.out"
    log="$TMP/$which.$mode.log"
    valgrind --tool=callgrind --dump-instr=yes --toggle-collect='direct_checks::run_*' \
      --callgrind-out-file="$file" "$BIN" "$which" "$mode" "$N" >"$log" 2>&1 ||
      { cat "$log" >&2; exit 1; }
    total="$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log")"
    awk -v w="$which" -v m="$mode" -v t="$total" -v n="$N" \
      'BEGIN { printf "%-16s %-6s %14.1f\n", w, m, t / n }'
  done
done
if [[ -n "$KEEP" ]]; then
  note "callgrind files in $KEEP; e.g. callgrind_annotate --auto=yes $KEEP/callgrind.tollgate_check.allow.out"
fi
