#!/usr/bin/env bash
# scripts/bench/http.sh — the HTTP service benchmark of BENCHMARKS.md ("HTTP service").
#
# Runs, in one go and against loopback only:
#   1. `tollgate serve` (release build, a temp copy of tollgate.example.yaml on free ports,
#      gRPC on) and the baseline `tollgate-example-hello` (axum answering POST /v1/check
#      without rate limiting), both started here;
#   2. wrk against each, POST /v1/check, at two loads (-c64 and -c16 by default), hello first
#      then tollgate at each load, after a short warm-up of each;
#   3. tollgate-example-grpc-load against tollgate's gRPC port (ShouldRateLimit);
#   4. a summary table, with tollgate's allow/deny counts from /metrics.
# Every process started here is stopped on exit.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bench/http.sh [options]

Benchmarks tollgate's POST /v1/check against an axum hello-world, then the Envoy gRPC API.
Everything runs on 127.0.0.1; every run is bounded in time.

Options:
  --duration SECS     length of each measured run (default 10)
  --warmup SECS       warm-up per server before measuring, 0 for none (default 2)
  --threads N         wrk threads (default 2)
  --loads "C1 C2"     wrk connection counts, one run each (default "64 16")
  --grpc-loads "C.."  grpc-load concurrencies, over 4 connections (default "64 16")
  --keys N            distinct keys user:0..N-1, and descriptor values for gRPC (default
                      10000: with policy enterprise, 1000/min and a burst of 200 per key,
                      nearly every check is allowed at ~100k checks/s)
  --policy NAME       the policy the checks name (default enterprise)
  --no-pin            do not pin; by default servers run on CPU 1 and load generators on
                      CPU 0 (taskset), the same for both servers
  --no-build          use the existing target/release binaries
  --wait-idle SECS    before measuring, wait up to SECS for the machine to be idle (less
                      than 15% CPU busy over 2 s); then go on, with a warning (default 300)
  --out DIR           where raw outputs go (default target/bench/http-<time>)
  -h, --help          this help

Needs wrk (installed with apt-get if missing; root), curl and python3.
EOF
}

DURATION=10
WARMUP=2
THREADS=2
LOADS="64 16"
GRPC_LOADS="64 16"
KEYS=10000
POLICY=enterprise
PIN=1
BUILD=1
WAIT_IDLE=300
OUT=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --loads) LOADS="$2"; shift 2 ;;
    --grpc-loads) GRPC_LOADS="$2"; shift 2 ;;
    --keys) KEYS="$2"; shift 2 ;;
    --policy) POLICY="$2"; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --wait-idle) WAIT_IDLE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

for n in "$DURATION" "$WARMUP" "$THREADS" "$KEYS" "$WAIT_IDLE"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "not a whole number: $n" >&2; exit 2; }
done
(( DURATION >= 1 && DURATION <= 600 )) || { echo "--duration must be 1..600" >&2; exit 2; }
(( WARMUP <= 60 )) || { echo "--warmup must be 0..60" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
LUA="$ROOT/scripts/bench/check.lua"
BIN="$ROOT/target/release"
OUT="${OUT:-$ROOT/target/bench/http-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
TMP="$(mktemp -d)"

# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

# --- tools ---------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  step "installing wrk (apt-get)"
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

CPUS="$(nproc)"
if (( PIN )) && (( CPUS < 2 )); then
  note "only $CPUS CPU: not pinning"
  PIN=0
fi
if (( PIN )); then
  SERVER_PIN=(taskset -c 1)
  LOAD_PIN=(taskset -c 0)
else
  SERVER_PIN=()
  LOAD_PIN=()
fi

# --- build ---------------------------------------------------------------------------------
if (( BUILD )); then
  step "building (release): tollgate-cli, tollgate-example-hello, tollgate-example-grpc-load"
  cargo build --release -p tollgate-cli -p tollgate-example-hello -p tollgate-example-grpc-load
fi
for b in tollgate tollgate-example-hello tollgate-example-grpc-load; do
  [[ -x "$BIN/$b" ]] || { echo "missing $BIN/$b (build first, or drop --no-build)" >&2; exit 1; }
done

# --- machine state -------------------------------------------------------------------------
# CPU jiffies, busy and total, of the whole machine.
cpu_jiffies() {
  awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; total=busy+$5+$6; print busy, total}' /proc/stat
}
# Busy share (%) of the whole machine over 2 s.
busy_percent() {
  local b1 t1 b2 t2
  read -r b1 t1 < <(cpu_jiffies)
  sleep 2
  read -r b2 t2 < <(cpu_jiffies)
  echo $(( (b2 - b1) * 100 / (t2 - t1 > 0 ? t2 - t1 : 1) ))
}
# utime + stime of a process, in jiffies.
proc_jiffies() {
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
compilers() { pgrep -c -x rustc 2>/dev/null || true; }

if (( WAIT_IDLE > 0 )); then
  step "waiting for an idle machine (up to ${WAIT_IDLE}s)"
  waited=0
  while true; do
    busy="$(busy_percent)"
    waited=$((waited + 2))
    note "CPU busy ${busy}%, rustc processes: $(compilers), load: $(cut -d' ' -f1-3 /proc/loadavg)"
    (( busy < 15 )) && break
    if (( waited >= WAIT_IDLE )); then
      note "WARNING: still busy after ${WAIT_IDLE}s; measuring anyway (figures will be low)"
      break
    fi
    sleep 8
    waited=$((waited + 8))
  done
fi

# --- servers -------------------------------------------------------------------------------
read -r HTTP_PORT GRPC_PORT HELLO_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)
TOLLGATE="127.0.0.1:$HTTP_PORT"
GRPC="127.0.0.1:$GRPC_PORT"
HELLO="127.0.0.1:$HELLO_PORT"

CONFIG="$TMP/tollgate.yaml"
sed -e "s/^http: .*/http: $TOLLGATE/" -e "s/^grpc: .*/grpc: $GRPC/" tollgate.example.yaml >"$CONFIG"
grep -q "^  $POLICY:" "$CONFIG" || { echo "no policy $POLICY in tollgate.example.yaml" >&2; exit 1; }

step "starting servers"
"${SERVER_PIN[@]}" "$BIN/tollgate" serve --config "$CONFIG" --http "$TOLLGATE" --grpc "$GRPC" \
  >"$OUT/tollgate.log" 2>&1 &
TOLLGATE_PID=$!
PIDS+=("$TOLLGATE_PID")
"${SERVER_PIN[@]}" "$BIN/tollgate-example-hello" --addr "$HELLO" >"$OUT/hello.log" 2>&1 &
HELLO_PID=$!
PIDS+=("$HELLO_PID")

wait_ready() { # name url pid
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$1 exited; log:" >&2; cat "$OUT/$1.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$1 did not answer $2 within 10 s" >&2
  exit 1
}
wait_ready tollgate "http://$TOLLGATE/healthz" "$TOLLGATE_PID"
wait_ready hello "http://$HELLO/healthz" "$HELLO_PID"
note "tollgate: http $TOLLGATE, grpc $GRPC (pid $TOLLGATE_PID); hello: $HELLO (pid $HELLO_PID)"
if (( PIN )); then
  note "pinned: servers on CPU 1, wrk and grpc-load on CPU 0"
else
  note "not pinned: servers and load generators share all $CPUS CPUs"
fi

BODY="{\"key\":\"user:1\",\"policy\":\"$POLICY\"}"
for target in "$TOLLGATE" "$HELLO"; do
  code="$(curl -sS -o "$TMP/answer" -w '%{http_code}' -H 'content-type: application/json' \
    -d "$BODY" "http://$target/v1/check")"
  note "POST http://$target/v1/check -> $code $(cat "$TMP/answer")"
  [[ "$code" == 200 ]] || { echo "the check was not answered 200" >&2; exit 1; }
done

# tollgate_decisions_total for the policy: "allowed denied".
decisions() {
  curl -fsS "http://$TOLLGATE/metrics" | awk -v p="$1" '
    /^tollgate_decisions_total\{/ && index($0, "policy=\"" p "\"") {
      if (index($0, "outcome=\"allowed\"")) a += $NF; else if (index($0, "outcome=\"denied\"")) d += $NF
    }
    END { printf "%d %d\n", a, d }'
}

# --- HTTP runs -----------------------------------------------------------------------------
# kv KEY LINE: the value of KEY=… in a RESULT line.
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

declare -A RPS P50 P99 MAX NON2XX SOCKERR OTHERS SRVCPU GENCPU ALLOWED DENIED
run_wrk() { # server target conns seconds out
  local server="$1" target="$2" conns="$3" secs="$4" out="$5" pid b1 t1 b2 t2 s1 s2 a1 d1 a2 d2
  pid="$([[ $server == tollgate ]] && echo "$TOLLGATE_PID" || echo "$HELLO_PID")"
  [[ $server == tollgate ]] && read -r a1 d1 < <(decisions "$POLICY")
  read -r b1 t1 < <(cpu_jiffies)
  s1="$(proc_jiffies "$pid")"
  TIMEFORMAT='%U %S'
  { time timeout $((secs + 30)) "${LOAD_PIN[@]}" wrk -t"$THREADS" -c"$conns" -d"${secs}s" \
      --latency -s "$LUA" "http://$target/v1/check" -- "$KEYS" "$POLICY" >"$out" 2>&1 ; } \
    2>"$out.time"
  s2="$(proc_jiffies "$pid")"
  read -r b2 t2 < <(cpu_jiffies)
  local line
  line="$(grep '^RESULT ' "$out" || true)"
  [[ -n "$line" ]] || { echo "wrk printed no RESULT line; its output:" >&2; cat "$out" >&2; exit 1; }
  [[ "$out" == *warmup* ]] && return 0
  local key="$server/$conns" hz wrk_j
  hz="$(getconf CLK_TCK)"
  wrk_j="$(awk -v hz="$hz" '{printf "%d", ($1 + $2) * hz}' "$out.time")"
  RPS[$key]="$(kv rps "$line")"
  P50[$key]="$(kv p50_us "$line")"
  P99[$key]="$(kv p99_us "$line")"
  MAX[$key]="$(kv max_us "$line")"
  NON2XX[$key]="$(kv non2xx "$line")"
  SOCKERR[$key]=$(( $(kv connect_err "$line") + $(kv read_err "$line") + $(kv write_err "$line") + $(kv timeout_err "$line") ))
  # CPU used during the run, in % of one CPU: by the server, by wrk, by anything else.
  local span=$(( t2 - t1 > 0 ? t2 - t1 : 1 ))
  SRVCPU[$key]="$(( (s2 - s1) * 100 * CPUS / span ))"
  GENCPU[$key]="$(( wrk_j * 100 * CPUS / span ))"
  OTHERS[$key]="$(( ((b2 - b1) - (s2 - s1) - wrk_j) * 100 * CPUS / span ))"
  if [[ $server == tollgate ]]; then
    read -r a2 d2 < <(decisions "$POLICY")
    ALLOWED[$key]=$((a2 - a1))
    DENIED[$key]=$((d2 - d1))
  fi
  note "$(printf '%-8s -c%-3s %9s req/s  p50 %6s us  p99 %6s us  max %7s us  non-2xx %s  CPU%%: server %s wrk %s others %s' \
    "$server" "$conns" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${MAX[$key]}" \
    "${NON2XX[$key]}" "${SRVCPU[$key]}" "${GENCPU[$key]}" "${OTHERS[$key]}")"
}

if (( WARMUP > 0 )); then
  step "warm-up: ${WARMUP}s of wrk -c16 against each server"
  run_wrk hello "$HELLO" 16 "$WARMUP" "$OUT/warmup-hello.txt"
  run_wrk tollgate "$TOLLGATE" 16 "$WARMUP" "$OUT/warmup-tollgate.txt"
fi

LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for c in $LOADS; do
  step "wrk -t$THREADS -c$c -d${DURATION}s --latency, POST /v1/check ($KEYS keys, policy $POLICY)"
  run_wrk hello "$HELLO" "$c" "$DURATION" "$OUT/wrk-hello-c$c.txt"
  run_wrk tollgate "$TOLLGATE" "$c" "$DURATION" "$OUT/wrk-tollgate-c$c.txt"
done

# --- gRPC runs -----------------------------------------------------------------------------
declare -A GRPC_JSON GRPC_CPU
GRPC_KEYS=$(( KEYS > 65536 ? 65536 : KEYS ))  # grpc-load draws from at most 65536 addresses
for c in $GRPC_LOADS; do
  step "grpc-load --connections 4 --concurrency $c --duration $DURATION, domain edge, remote_address"
  read -r b1 t1 < <(cpu_jiffies)
  s1="$(proc_jiffies "$TOLLGATE_PID")"
  TIMEFORMAT='%U %S'
  { time timeout $((DURATION + 30)) "${LOAD_PIN[@]}" "$BIN/tollgate-example-grpc-load" \
      --addr "$GRPC" --connections 4 --concurrency "$c" --duration "$DURATION" --domain edge \
      --keys "$GRPC_KEYS" >"$OUT/grpc-c$c.json" ; } 2>"$OUT/grpc-c$c.time"
  s2="$(proc_jiffies "$TOLLGATE_PID")"
  read -r b2 t2 < <(cpu_jiffies)
  gen_j="$(awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($1 + $2) * hz}' "$OUT/grpc-c$c.time")"
  span=$(( t2 - t1 > 0 ? t2 - t1 : 1 ))
  GRPC_CPU[$c]="$(( (s2 - s1) * 100 * CPUS / span )) / $(( gen_j * 100 * CPUS / span )) / $(( ((b2 - b1) - (s2 - s1) - gen_j) * 100 * CPUS / span ))"
  GRPC_JSON[$c]="$(cat "$OUT/grpc-c$c.json")"
  note "${GRPC_JSON[$c]}"
  note "CPU % server / grpc-load / others: ${GRPC_CPU[$c]}"
done
LOAD_AT_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- summary -------------------------------------------------------------------------------
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
{
  echo
  echo "## tollgate HTTP benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "machine: $CPUS CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load average at start $LOAD_AT_START, at end $LOAD_AT_END"
  if (( PIN )); then
    echo "pinning: servers on CPU 1, wrk/grpc-load on CPU 0"
  else
    echo "pinning: none (servers and load generators share all CPUs)"
  fi
  echo "wrk: -t$THREADS -d${DURATION}s --latency -s scripts/bench/check.lua ($KEYS keys, policy $POLICY)"
  echo
  echo "| server | wrk -c | req/s | p50 | p99 | max | ratio to hello | non-2xx | socket errors | CPU % server / wrk / others |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in $LOADS; do
    for s in hello tollgate; do
      k="$s/$c"
      ratio="$(awk -v a="${RPS[$k]}" -v b="${RPS[hello/$c]}" 'BEGIN { printf "%.2f", a / b }')"
      echo "| $s | $c | ${RPS[$k]} | $(ms "${P50[$k]}") | $(ms "${P99[$k]}") | $(ms "${MAX[$k]}") | $ratio | ${NON2XX[$k]} | ${SOCKERR[$k]} | ${SRVCPU[$k]} / ${GENCPU[$k]} / ${OTHERS[$k]} |"
    done
  done
  echo
  for c in $LOADS; do
    k="tollgate/$c"
    total=$(( ALLOWED[$k] + DENIED[$k] ))
    share="$(awk -v a="${ALLOWED[$k]}" -v t="$total" 'BEGIN { printf "%.1f", t ? 100 * a / t : 0 }')"
    verdict="$(awk -v a="${RPS[$k]}" -v b="${RPS[hello/$c]}" -v p="${P99[$k]}" 'BEGIN {
      r = a / b; ok1 = r >= 0.70; ok2 = p <= 2000
      printf "ratio %.2f (%s 0.70), p99 %.2f ms (%s 2 ms): %s", r, ok1 ? ">=" : "<", p / 1000,
        ok2 ? "<=" : ">", (ok1 && ok2) ? "TARGET MET" : "TARGET NOT MET" }')"
    echo "- -c$c: tollgate decisions ${ALLOWED[$k]} allowed, ${DENIED[$k]} denied (${share}% allowed); $verdict"
  done
  echo
  echo "| gRPC concurrency (4 connections) | req/s | p50 | p99 | max | OK | OVER_LIMIT | errors | CPU % server / grpc-load / others |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in $GRPC_LOADS; do
    python3 - "$c" "${GRPC_JSON[$c]}" "${GRPC_CPU[$c]}" <<'EOF'
import json, sys
c, r, cpu = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
l = r["latency_us"]
ms = lambda us: f"{us / 1000:.2f} ms"
print(f"| {c} | {r['requests_per_sec']:.0f} | {ms(l['p50'])} | {ms(l['p99'])} | {ms(l['max'])} "
      f"| {r['ok']} | {r['over_limit']} | {r['errors']} | {cpu} |")
EOF
  done
  echo
  echo "raw outputs: $OUT"
} | tee "$OUT/summary.md"
