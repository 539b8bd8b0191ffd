# scripts/bench/lib.sh — what the benchmark scripts share: progress lines, and stopping every
# process a script started (PIDS) and removing its temporary directory (TMP) on exit.
# Sourced after TMP is set; a script adds each process it starts to PIDS.

step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: a process that does not stop in 5 s is killed.
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
