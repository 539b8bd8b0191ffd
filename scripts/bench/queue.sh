#!/usr/bin/env bash
# scripts/bench/queue.sh — the job-queue benchmark of BENCHMARKS.md ("Job queues vs BullMQ").
#
# Runs, in one go, against one freshly started redis-server (127.0.0.1, a free port, no
# persistence), tollgate's Redis queues (examples/queue-bench) and BullMQ from npm
# (scripts/bench/bullmq/bench.js), one after the other on the same Redis:
#   1. throughput: N no-op tasks pushed, then drained by one worker process with C slots;
#      tasks/s from the first start to the last ack (BullMQ: last 'completed' event). Each
#      round runs tollgate and BullMQ (removeOnComplete true — tollgate too deletes a
#      finished task — and, with --bullmq-keep-completed, BullMQ's default of keeping them),
#      the order alternating between rounds; Redis is flushed before each run;
#   2. precision: a 10/1s limit (tollgate: a strict queue; BullMQ: its limiter {max: 10,
#      duration: 1000}), 100 tasks, 3 workers of 2 slots; the most starts in any 1 s window
#      and the smallest gap between starts;
#   3. a profile (--profile-tasks, small): the commands each client sends per task, counted
#      from a MONITOR log between the ECHO markers both programs send around the work;
#   4. a summary table, and the verdict on the target (tollgate ≥ 2× BullMQ's throughput).
# Each run also reports Redis's side per task (INFO commandstats and INFO cpu deltas).
# Every process started here is stopped on exit.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bench/queue.sh [options]

Benchmarks tollgate's Redis job queues against BullMQ (npm) on one loopback Redis:
no-op throughput, and the precision of a 10/1s limit. Every run is bounded in time.

Options:
  --tasks N               no-op tasks per throughput run (default 50000)
  --concurrency C         worker slots for throughput (default 50)
  --rounds R              throughput rounds, each running both (default 3)
  --bullmq-keep-completed also run BullMQ with its default removeOnComplete: false
  --precision-tasks N     tasks for the precision runs (default 100)
  --workers W             precision: workers, each with its own connections (default 3)
  --slots S               precision: slots per worker (default 2)
  --profile-tasks N       tasks for the MONITOR profile, 0 to skip (default 2000)
  --no-pin                do not pin; by default redis-server runs on CPU 1 and the
                          clients (tollgate's and BullMQ's) on CPU 0 (taskset)
  --no-build              use the existing release binary
  --wait-idle SECS        before measuring, wait up to SECS for the machine to be idle (less
                          than 15% CPU busy over 2 s and no rustc); then go on, with a
                          warning (default 300)
  --out DIR               where raw outputs go (default target/bench/queue-<time>)
  -h, --help              this help

Needs redis-server and redis-cli, node and npm (installed with apt-get if missing; root),
python3; `npm ci` installs BullMQ into scripts/bench/bullmq/node_modules when it is missing.
The release binary is looked for in $CARGO_TARGET_DIR/release (default target/release).
EOF
}

TASKS=50000
CONCURRENCY=50
ROUNDS=3
KEEP_COMPLETED=0
PTASKS=100
WORKERS=3
SLOTS=2
PROFILE_TASKS=2000
PIN=1
BUILD=1
WAIT_IDLE=300
OUT=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --tasks) TASKS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --bullmq-keep-completed) KEEP_COMPLETED=1; shift ;;
    --precision-tasks) PTASKS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --slots) SLOTS="$2"; shift 2 ;;
    --profile-tasks) PROFILE_TASKS="$2"; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --wait-idle) WAIT_IDLE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

for n in "$TASKS" "$CONCURRENCY" "$ROUNDS" "$PTASKS" "$WORKERS" "$SLOTS" "$PROFILE_TASKS" "$WAIT_IDLE"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "not a whole number: $n" >&2; exit 2; }
done
(( TASKS >= 1 && TASKS <= 10000000 )) || { echo "--tasks must be 1..10^7" >&2; exit 2; }
(( CONCURRENCY >= 1 && CONCURRENCY <= 4096 )) || { echo "--concurrency must be 1..4096" >&2; exit 2; }
(( ROUNDS >= 1 && ROUNDS <= 20 )) || { echo "--rounds must be 1..20" >&2; exit 2; }
(( PTASKS >= 2 && PTASKS <= 100000 )) || { echo "--precision-tasks must be 2..100000" >&2; exit 2; }
(( WORKERS >= 1 && WORKERS <= 64 )) || { echo "--workers must be 1..64" >&2; exit 2; }
(( SLOTS >= 1 && SLOTS <= 256 )) || { echo "--slots must be 1..256" >&2; exit 2; }
(( PROFILE_TASKS <= 100000 )) || { echo "--profile-tasks must be 0..100000" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BULLMQ_DIR="$ROOT/scripts/bench/bullmq"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
QB="$TARGET_DIR/release/tollgate-example-queue-bench"
OUT="${OUT:-$ROOT/target/bench/queue-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
TMP="$(mktemp -d)"

# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

# --- tools ---------------------------------------------------------------------------------
apt_updated=0
need_apt() { # need_apt PACKAGE: install a Debian package
  if (( ! apt_updated )); then apt-get update -qq; apt_updated=1; fi
  step "installing $1 (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
command -v redis-server >/dev/null || need_apt redis-server
command -v redis-cli >/dev/null || need_apt redis-tools
command -v node >/dev/null || need_apt nodejs
command -v npm >/dev/null || need_apt npm
for tool in redis-server redis-cli node npm python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if [[ ! -d "$BULLMQ_DIR/node_modules/bullmq" || ! -d "$BULLMQ_DIR/node_modules/ioredis" ]]; then
  step "installing BullMQ (npm ci in scripts/bench/bullmq)"
  # npm 11 refuses this lock file with `ci` (it lacks other platforms' optional native
  # add-ons); `install` then installs the same pinned versions and leaves the lock as it is.
  (cd "$BULLMQ_DIR" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi
BULLMQ_VERSION="$(cd "$BULLMQ_DIR" && node -p 'require("bullmq/package.json").version')"
IOREDIS_VERSION="$(cd "$BULLMQ_DIR" && node -p 'require("ioredis/package.json").version')"

CPUS="$(nproc)"
if (( PIN )) && (( CPUS < 2 )); then
  note "only $CPUS CPU: not pinning"
  PIN=0
fi
if (( PIN )); then
  PIN0=(taskset -c 0)
  PIN1=(taskset -c 1)
else
  PIN0=()
  PIN1=()
fi

# --- build ---------------------------------------------------------------------------------
if (( BUILD )); then
  step "building (release): tollgate-example-queue-bench (target dir $TARGET_DIR)"
  cargo build --release -p tollgate-example-queue-bench
fi
[[ -x "$QB" ]] || { echo "missing $QB (build first, or drop --no-build)" >&2; exit 1; }

# --- machine state -------------------------------------------------------------------------
cpu_jiffies() {
  awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; total=busy+$5+$6; print busy, total}' /proc/stat
}
busy_percent() {
  local b1 t1 b2 t2
  read -r b1 t1 < <(cpu_jiffies)
  sleep 2
  read -r b2 t2 < <(cpu_jiffies)
  echo $(( (b2 - b1) * 100 / (t2 - t1 > 0 ? t2 - t1 : 1) ))
}
compilers() { pgrep -c -x rustc 2>/dev/null || true; }

if (( WAIT_IDLE > 0 )); then
  step "waiting for an idle machine (up to ${WAIT_IDLE}s)"
  waited=0
  while true; do
    busy="$(busy_percent)"
    rustcs="$(compilers)"
    waited=$((waited + 2))
    note "CPU busy ${busy}%, rustc processes: ${rustcs:-0}, load: $(cut -d' ' -f1-3 /proc/loadavg)"
    (( busy < 15 && ${rustcs:-0} == 0 )) && break
    if (( waited >= WAIT_IDLE )); then
      note "WARNING: still busy after ${WAIT_IDLE}s; measuring anyway (figures will be low)"
      break
    fi
    sleep 8
    waited=$((waited + 8))
  done
fi
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"
BUSY_AT_START="$(busy_percent)"
RUSTC_AT_START="$(compilers)"

# --- redis-server --------------------------------------------------------------------------
REDIS_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="redis://127.0.0.1:$REDIS_PORT/0"
rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

step "starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
mkdir -p "$TMP/redis"
"${PIN1[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no --dir "$TMP/redis" --logfile "$OUT/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 100); do
  [[ "$(rcli ping 2>/dev/null || true)" == PONG ]] && break
  kill -0 "$REDIS_PID" 2>/dev/null || { echo "redis-server exited; log:" >&2; cat "$OUT/redis.log" >&2; exit 1; }
  sleep 0.1
done
[[ "$(rcli ping)" == PONG ]] || { echo "redis-server did not answer PING within 10 s" >&2; exit 1; }
REDIS_VERSION="$(rcli info server | sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')"
note "redis-server $REDIS_VERSION, pid $REDIS_PID"
note "BullMQ $BULLMQ_VERSION (ioredis $IOREDIS_VERSION), node $(node --version)"
(( PIN )) && note "pinned: redis-server on CPU 1; tollgate's and BullMQ's clients on CPU 0"

# run NAME -- COMMAND...: flushes Redis, runs COMMAND (pinned), keeps its JSON line.
run() {
  local name="$1"; shift; shift
  rcli flushall >/dev/null
  timeout 900 "${PIN0[@]}" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err" \
    || { echo "$name failed:" >&2; cat "$OUT/$name.err" >&2; exit 1; }
  python3 - "$OUT/$name.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
red = r["redis"]
if r["bench"] == "throughput":
    print(f"    {r['impl']:9} {r['tasks_per_sec']:>8.0f} tasks/s  ({r['completed']} in {r['work_secs']} s; "
          f"pushed at {r['pushed_per_sec']:.0f}/s)  per task: Redis CPU {red['cpu_usec_per_task']} us, "
          f"client CPU {r.get('client_cpu_usec_per_task')} us, {red['scripts_per_task']} scripts, "
          f"{red['commands_per_task']} Redis commands")
else:
    c = r.get("redis_clock") or r["local_clock"]
    print(f"    {r['impl']:9} most in 1 s: {c['most_in_window']}, smallest gap {c['min_gap_ms']} ms, "
          f"{c['starts_per_sec']} starts/s ({r['starts']} starts)")
EOF
}

# --- throughput ----------------------------------------------------------------------------
BULL_VARIANTS=(true)
(( KEEP_COMPLETED )) && BULL_VARIANTS+=(false)
for round in $(seq "$ROUNDS"); do
  step "throughput, round $round of $ROUNDS: $TASKS no-op tasks, $CONCURRENCY slots"
  order=(tollgate bullmq)
  (( round % 2 == 0 )) && order=(bullmq tollgate)
  for impl in "${order[@]}"; do
    if [[ "$impl" == tollgate ]]; then
      run "throughput-tollgate-$round" -- "$QB" throughput --url "$URL" --tasks "$TASKS" \
        --concurrency "$CONCURRENCY" --label "$round"
    else
      for keep in "${BULL_VARIANTS[@]}"; do
        suffix=""; [[ "$keep" == false ]] && suffix="-keep"
        run "throughput-bullmq$suffix-$round" -- node "$BULLMQ_DIR/bench.js" throughput \
          --url "$URL" --tasks "$TASKS" --concurrency "$CONCURRENCY" \
          --remove-on-complete "$keep" --label "$round"
      done
    fi
  done
done

# --- precision -----------------------------------------------------------------------------
step "precision: 10/1s, $PTASKS tasks, $WORKERS workers x $SLOTS slots (about $((PTASKS / 10)) s each)"
run precision-tollgate -- "$QB" precision --url "$URL" --tasks "$PTASKS" --rate 10/1s \
  --workers "$WORKERS" --slots "$SLOTS"
run precision-bullmq -- node "$BULLMQ_DIR/bench.js" precision --url "$URL" --tasks "$PTASKS" \
  --max 10 --duration 1000 --workers "$WORKERS" --slots "$SLOTS"

# --- profile: commands sent per task (MONITOR) ---------------------------------------------
if (( PROFILE_TASKS > 0 )); then
  step "profile: $PROFILE_TASKS tasks each under MONITOR (commands the client sends per task)"
  for impl in tollgate bullmq; do
    rcli flushall >/dev/null
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" monitor >"$OUT/monitor-$impl.log" 2>/dev/null &
    MON_PID=$!
    PIDS+=("$MON_PID")
    sleep 0.3
    if [[ "$impl" == tollgate ]]; then
      timeout 300 "$QB" throughput --url "$URL" --tasks "$PROFILE_TASKS" \
        --concurrency "$CONCURRENCY" >"$OUT/profile-$impl.json" 2>"$OUT/profile-$impl.err"
    else
      timeout 300 node "$BULLMQ_DIR/bench.js" throughput --url "$URL" --tasks "$PROFILE_TASKS" \
        --concurrency "$CONCURRENCY" >"$OUT/profile-$impl.json" 2>"$OUT/profile-$impl.err"
    fi
    sleep 0.3
    kill -TERM "$MON_PID" 2>/dev/null || true
    wait "$MON_PID" 2>/dev/null || true
    python3 - "$OUT/monitor-$impl.log" "$PROFILE_TASKS" >"$OUT/profile-$impl.txt" <<'EOF'
import collections, re, sys
path, tasks = sys.argv[1], int(sys.argv[2])
line_re = re.compile(r'^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]*)"')
inside, client, script = False, collections.Counter(), collections.Counter()
for line in open(path, errors="replace"):
    if "queue-bench:work:start" in line:
        inside = True
        continue
    if "queue-bench:work:end" in line:
        break
    m = line_re.match(line)
    if not inside or not m:
        continue
    (script if m.group(1) == "lua" else client)[m.group(2).lower()] += 1
client.pop("info", None)
print(f"client {sum(client.values()) / tasks:.2f} " +
      " ".join(f"{k}={v / tasks:.2f}" for k, v in client.most_common()))
print(f"inside-scripts {sum(script.values()) / tasks:.2f} " +
      " ".join(f"{k}={v / tasks:.2f}" for k, v in script.most_common(12)))
EOF
    note "$impl: commands sent per task: $(sed -n 1p "$OUT/profile-$impl.txt" | cut -d' ' -f2-)"
    note "$impl: commands run inside scripts per task: $(sed -n 2p "$OUT/profile-$impl.txt" | cut -d' ' -f2-)"
  done
fi
LOAD_AT_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- summary -------------------------------------------------------------------------------
{
  echo
  echo "## tollgate job queues vs BullMQ — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "machine: $CPUS CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); redis-server $REDIS_VERSION; BullMQ $BULLMQ_VERSION (ioredis $IOREDIS_VERSION), node $(node --version)"
  echo "load average at start $LOAD_AT_START (CPU busy ${BUSY_AT_START}% just before, rustc processes ${RUSTC_AT_START:-0}), at end $LOAD_AT_END (rustc processes $(compilers))"
  if (( PIN )); then
    echo "pinning: redis-server on CPU 1; each client process on CPU 0"
  else
    echo "pinning: none"
  fi
  echo
  python3 - "$OUT" "$ROUNDS" "$KEEP_COMPLETED" <<'EOF'
import json, os, statistics, sys
out, rounds, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
def load(name):
    return json.load(open(os.path.join(out, name + ".json")))
impls = [("tollgate", "tollgate"), ("bullmq", "BullMQ (removeOnComplete)")]
if keep:
    impls.append(("bullmq-keep", "BullMQ (default: keep completed)"))
runs = {k: [load(f"throughput-{k}-{r}") for r in range(1, rounds + 1)] for k, _ in impls}
t0 = runs["tollgate"][0]
print(f"Throughput: {t0['tasks']} no-op tasks, one worker process with {t0['concurrency']} slots, "
      f"{rounds} round(s); tasks/s from the first start to the last ack/completion")
print()
print("| | tasks/s, each round | median | pushed/s (median) | Redis CPU µs/task | client CPU µs/task | scripts/task | Redis commands/task |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
med = {}
for k, label in impls:
    rs = runs[k]
    rates = [r["tasks_per_sec"] for r in rs]
    med[k] = statistics.median(rates)
    print(f"| {label} | {' / '.join(f'{x:.0f}' for x in rates)} | {med[k]:.0f} | "
          f"{statistics.median(r['pushed_per_sec'] for r in rs):.0f} | "
          f"{statistics.median(r['redis']['cpu_usec_per_task'] for r in rs):.1f} | "
          f"{statistics.median(r.get('client_cpu_usec_per_task', 0) for r in rs):.1f} | "
          f"{statistics.median(r['redis']['scripts_per_task'] for r in rs):.2f} | "
          f"{statistics.median(r['redis']['commands_per_task'] for r in rs):.1f} |")
print()
best_bull = max(med[k] for k, _ in impls if k != "tollgate")
ratio = med["tollgate"] / best_bull if best_bull else float("inf")
print(f"- tollgate / BullMQ (its faster setting), medians: {ratio:.2f}x — "
      f"{'TARGET MET' if ratio >= 2 else 'TARGET NOT MET'} (target >= 2x)")
for k, label in impls[1:]:
    per_round = [t["tasks_per_sec"] / b["tasks_per_sec"] for t, b in zip(runs["tollgate"], runs[k])]
    print(f"- tollgate / {label}: {med['tollgate'] / med[k]:.2f}x of the medians; round by round "
          f"{' / '.join(f'{x:.2f}' for x in per_round)} (median {statistics.median(per_round):.2f}x)")
print("- Redis CPU µs/task, round by round: " + "; ".join(
    f"{label} " + " / ".join(f"{r['redis']['cpu_usec_per_task']:.0f}" for r in runs[k]) for k, label in impls))
bad = [(k, r["label"]) for k, _ in impls for r in runs[k]
       if r["completed"] != r["tasks"] or r.get("lost", 0) or r.get("failed", 0) or r.get("ran_twice", 0)]
print(f"- every run completed every task exactly once: {'yes' if not bad else 'NO: ' + str(bad)}")
print()
pt, pb = load("precision-tollgate"), load("precision-bullmq")
print(f"Precision: a 10/1s limit, {pt['tasks']} tasks, {pt['workers']} workers x {pt['slots_per_worker']} slots "
      f"(tollgate: strict queue; BullMQ: limiter {{max: 10, duration: 1000}})")
print()
print("| | clock | most starts in any 1 s window | smallest gap | mean gap | starts/s |")
print("|---|---|---:|---:|---:|---:|")
rows = [("tollgate", "Redis (Lease::started_us)", pt["redis_clock"]),
        ("tollgate", "local (handler called)", pt["local_clock"]),
        ("BullMQ", "local (processor called, µs)", pb["local_clock"]),
        ("BullMQ", "Date.now() (processor called)", pb["date_now"]),
        ("BullMQ", "job.processedOn (worker's clock)", pb["processed_on"])]
for who, clock, c in rows:
    print(f"| {who} | {clock} | {c['most_in_window']} | {c['min_gap_ms']} ms | {c['mean_gap_ms']} ms | {c['starts_per_sec']} |")
print()
print(f"- tollgate: grant (Redis) to handler (local) p50 {pt['grant_to_handler_ms']['p50']} ms, "
      f"max {pt['grant_to_handler_ms']['max']} ms; reserve calls {pt['calls']['reserve']} "
      f"({pt['calls']['reserve_rate_limited']} rate-limited) for {pt['starts']} starts")
EOF
  if (( PROFILE_TASKS > 0 )); then
    echo
    echo "Commands per task under MONITOR ($PROFILE_TASKS tasks, $CONCURRENCY slots; work phase only):"
    for impl in tollgate bullmq; do
      echo "- $impl: sent by the client $(sed -n 1p "$OUT/profile-$impl.txt" | cut -d' ' -f2-)"
      echo "  run inside scripts $(sed -n 2p "$OUT/profile-$impl.txt" | cut -d' ' -f2-)"
    done
  fi
  echo
  echo "raw outputs: $OUT"
} | tee "$OUT/summary.md"
