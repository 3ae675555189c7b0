#!/usr/bin/env bash
# Memory: rampart's RSS idle, with 10,000 open idle connections, and before/after 1,000 config reloads.
#
#   bench/rss.sh
#
# Reloads go through the console's admin API (POST /api/reload), which compiles the file and swaps the
# runtime exactly as a file change or SIGHUP does, without the 200 ms debounce of the file watcher.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CONNS="${CONNS:-10000}"
RELOADS="${RELOADS:-1000}"
WORK="$(mktemp -d)"
trap 'kill "${RAMPART_PID:-}" "${BACKEND_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n "$(ulimit -Hn)"  # 10,000 connections need as many descriptors on each side

cargo build --release -q -p rampart --manifest-path "$ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/rampart"

python3 -m http.server 9011 --bind 127.0.0.1 >/dev/null 2>&1 &
BACKEND_PID=$!
printf '%s\n' \
  '[[listeners]]' 'addr = "127.0.0.1:8091"' 'max_connections_per_ip = 20000' '' \
  '[limits]' 'idle_timeout = "10m"' 'header_read_timeout = "10m"' '' \
  '[upstreams.backend]' 'targets = ["http://127.0.0.1:9011"]' '' \
  '[[routes]]' 'path = "/"' 'upstream = "backend"' '' \
  '[console]' 'listen = "127.0.0.1:9911"' 'token = "bench-token"' > "$WORK/rampart.toml"
"$BIN" run --config "$WORK/rampart.toml" > /dev/null 2>&1 &
RAMPART_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:9911/healthz" && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$RAMPART_PID/status"; }

idle=$(rss)
before_reloads=$(rss)
for _ in $(seq 1 "$RELOADS"); do
  curl -s -o /dev/null -X POST -H 'authorization: Bearer bench-token' http://127.0.0.1:9911/api/reload
done
sleep 1
after_reloads=$(rss)
reloads_ok=$(curl -s http://127.0.0.1:9911/metrics | awk '/^rampart_reloads_total\{result="ok"\}/ {print $2}')

READY="$WORK/ready"
python3 -c '
import socket, sys, time, os
socks = [socket.create_connection(("127.0.0.1", 8091)) for _ in range(int(sys.argv[1]))]
open(sys.argv[2], "w").close()
time.sleep(10)
' "$CONNS" "$READY" &
HOLDER=$!
for _ in $(seq 1 600); do [[ -e "$READY" ]] && break; sleep 0.1; done
sleep 2
open_conns=$(curl -s http://127.0.0.1:9911/metrics | awk '/^rampart_connections_active/ {s+=$2} END {print s+0}')
with_conns=$(rss)
wait "$HOLDER" || true
sleep 1
after_conns=$(rss)

echo "| measure | RSS KiB |"
echo "|---|---|"
echo "| idle, after start | $idle |"
echo "| before $RELOADS reloads | $before_reloads |"
echo "| after $RELOADS reloads ($reloads_ok ok) | $after_reloads |"
echo "| $open_conns open idle connections | $with_conns |"
echo "| after those connections closed | $after_conns |"
