#!/usr/bin/env bash
# Profiles the standalone engine under the fan-out scenario with perf, and prints the top
# symbols (self time) and the syscall mix. Needs `perf` (apt-get install linux-perf).
#
#   bench/profile.sh                     1000 clients, 8 s of load, 5 s recorded
#   PROFILE_CLIENTS=500 PROFILE_SCENARIO=chat bench/profile.sh
#
# Leaves perf.data in bench/results/tmp/engine.perf.data for `perf report -i ...`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v perf >/dev/null || { echo "profile: perf is not installed" >&2; exit 1; }
SCENARIO=${PROFILE_SCENARIO:-fanout}
CLIENTS=${PROFILE_CLIENTS:-1000}
TMP=bench/results/tmp
mkdir -p "$TMP"
ulimit -n 20000 2>/dev/null || true
[[ "${BENCH_BUILD:-1}" == 1 ]] && cargo build --release -p switchboard -p switchboard-bench --bin switchboard --bin sb-load >&2

target/release/switchboard serve --host 127.0.0.1 --port 0 --jwt-secret profile-secret-0123456789 --rate-limit 0 >"$TMP/profile.server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  PORT=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$TMP/profile.server.log" | grep -o '[0-9]*$' || true)
  [[ -n "$PORT" ]] && break
  sleep 0.1
done
[[ -n "${PORT:-}" ]] || { echo "profile: the engine did not start" >&2; exit 1; }

extra=()
[[ "$SCENARIO" == chat ]] && extra=(--rooms $((CLIENTS / 10)))
target/release/sb-load "$SCENARIO" --addr "127.0.0.1:$PORT" --jwt-secret profile-secret-0123456789 --server-pid "$PID" \
  --target engine --clients "$CLIENTS" "${extra[@]}" --seconds 8 --warmup 2 >"$TMP/profile.json" &
LOAD=$!
sleep 5 # connect, join, warm up
perf record -F 999 -g -p "$PID" -o "$TMP/engine.perf.data" -- sleep 5 >/dev/null 2>&1 &
REC=$!
perf stat -e 'syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex' \
  -p "$PID" -- sleep 5 2>"$TMP/engine.perf.stat" >/dev/null || true
wait "$LOAD"
wait "$REC" || true
echo "== sb-load"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print({k: d.get(k) for k in ("deliveries_per_s","latency_ms","lost","disconnects","server","generator")})' "$TMP/profile.json" 2>/dev/null || cat "$TMP/profile.json"
echo "== syscalls over 5 s"
grep -E 'syscalls' "$TMP/engine.perf.stat" || true
echo "== where the time goes (by object)"
perf report -i "$TMP/engine.perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -5
echo "== top symbols (self)"
perf report -i "$TMP/engine.perf.data" --no-children --sort sym --stdio -g none --percent-limit 0.8 2>/dev/null | grep -E '^ +[0-9]' | head -30
