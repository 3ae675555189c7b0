#!/usr/bin/env bash
# CPU time and context switches of the gateway per request: a steadier A/B figure than throughput on a
# shared machine, where the load generator, the backend and the gateway compete for the same cores.
#
#   bench/cpu.sh                                   # this checkout's release build
#   bench/cpu.sh /tmp/rampart.before target/release/rampart     # two builds, alternated
#   ROUNDS=3 DURATION=5s DISCOVERY=off bench/cpu.sh
#
# Starts the shared baseline's static backend (../shared/bench/baseline/setup.sh with UPSTREAM_PORT=9001),
# then, for each round and each binary, runs the gateway (route mode MODE, default off; discovery on
# unless DISCOVERY=off) on 127.0.0.1:8091, warms it up for a second, and drives small GETs with
# `wrk -t2 -c64` for DURATION. Reads the gateway's CPU time (utime + stime of /proc/PID/stat) and its
# threads' voluntary context switches before and after, and prints per request: CPU microseconds and
# context switches, with the throughput wrk saw. Loopback only, bounded in time.
set -euo pipefail
# shellcheck source=bench/front.sh
source "$(dirname "${BASH_SOURCE[0]}")/front.sh"
DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
PORT=8091
WORK="$(mktemp -d)"
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_static_backend
if [[ $# -eq 0 ]]; then
  cargo build --release -q -p rampart --manifest-path "$ROOT/Cargo.toml"
  set -- "${CARGO_TARGET_DIR:-$ROOT/target}/release/rampart"
fi
write_front_config "$WORK/rampart.toml" "$PORT"
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done  # the gateway runs in its own data directory

switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
hz=$(getconf CLK_TCK)

echo "# $(date -u +%FT%TZ) wrk -t2 -c64 -d$DURATION GET, mode ${MODE:-off}, discovery ${DISCOVERY:-on}, $(nproc) cores"
printf '%-40s %12s %14s %16s\n' binary "req/s" "CPU us/req" "switches/req"
for _ in $(seq 1 "$ROUNDS"); do
  for bin in "${bins[@]}"; do
    rm -rf "$WORK/data" && mkdir -p "$WORK/data"
    (cd "$WORK/data" && exec "$bin" run --config "$WORK/rampart.toml" >/dev/null 2>&1) &
    PID=$!
    up=""
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && up=1 && break; sleep 0.1; done
    [[ -n "$up" ]] || { echo "$bin never answered on 127.0.0.1:$PORT" >&2; exit 1; }
    wrk -t2 -c64 -d1s "http://127.0.0.1:$PORT/api/v1/items" >/dev/null
    t0=$(cpu_ticks "$PID"); s0=$(switches "$PID")
    out=$(wrk -t2 -c64 -d"$DURATION" "http://127.0.0.1:$PORT/api/v1/items")
    t1=$(cpu_ticks "$PID"); s1=$(switches "$PID")
    kill "$PID"; wait "$PID" 2>/dev/null || true
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    awk -v b="$bin" -v r="$rps" -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v n="$n" -v hz="$hz" \
      'BEGIN {printf "%-40s %12.0f %14.2f %16.3f\n", b, r, t * 1e6 / hz / n, s / n}'
  done
done
