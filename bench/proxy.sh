#!/usr/bin/env bash
# Proxy throughput and latency: rampart vs plain nginx, same backend, same load, one run.
#
#   bench/proxy.sh                 # default: 10 s per case, 64 connections, 2 wrk threads
#   DURATION=20s CONNS=128 bench/proxy.sh
#
# Starts the shared baseline (../shared/bench/baseline/setup.sh with UPSTREAM_PORT=9001: nginx serving a
# static 200 "ok" on 9001, plain nginx proxying to it on 8082), then rampart (release build, access log on,
# all limits on; MODE=off (default: no detection, as issue 3 measures) or MODE=block (detection on);
# DISCOVERY=off without API discovery) on 127.0.0.1:8090 proxying to the same 9001 backend.
# wrk drives both with identical settings: small GETs, then 64 KiB JSON POSTs. Prints req/s, p50 and p99
# per case and the rampart/nginx ratios. Everything is on loopback and bounded in time.
set -euo pipefail
# shellcheck source=bench/front.sh
source "$(dirname "${BASH_SOURCE[0]}")/front.sh"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
RAMPART_PORT=8090
WORK="$(mktemp -d)"
trap 'kill "${RAMPART_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_static_backend

# RAMPART_BIN=path runs that binary instead of building this checkout (A/B runs of two builds).
if [[ -n "${RAMPART_BIN:-}" ]]; then
  BIN="$RAMPART_BIN"
else
  cargo build --release -q -p rampart --manifest-path "$ROOT/Cargo.toml"
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/rampart"
fi

write_front_config "$WORK/rampart.toml" "$RAMPART_PORT"
"$BIN" run --config "$WORK/rampart.toml" > "$WORK/access.log" 2>&1 &
RAMPART_PID=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$RAMPART_PORT/" && break; sleep 0.1; done

# wrk --latency prints "50% 1.23ms"; normalise to microseconds.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}'; }
run_case() { # name url [script]
  local out
  if [[ -n "${3:-}" ]]; then
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$3" "$2")
  else
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2")
  fi
  local rps p50 p99 errs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}' | to_us)
  p99=$(echo "$out" | awk '$1=="99%" {print $2}' | to_us)
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  printf '%-28s %12s req/s   p50 %8s us   p99 %8s us  %s\n' "$1" "$rps" "$p50" "$p99" "$errs" >&2
  echo "$rps $p50 $p99"
}

echo "# $(date -u +%FT%TZ) wrk -t$THREADS -c$CONNS -d$DURATION, backend nginx static on 9001, $(nproc) cores" >&2
read -r n_get_rps n_get_p50 n_get_p99 < <(run_case "nginx   GET /"    "http://127.0.0.1:8082/")
read -r r_get_rps r_get_p50 r_get_p99 < <(run_case "rampart GET /"    "http://127.0.0.1:$RAMPART_PORT/")
read -r n_post_rps n_post_p50 n_post_p99 < <(run_case "nginx   POST 64KiB" "http://127.0.0.1:8082/" "$SHARED/bench/post64k.lua")
read -r r_post_rps r_post_p50 r_post_p99 < <(run_case "rampart POST 64KiB" "http://127.0.0.1:$RAMPART_PORT/" "$SHARED/bench/post64k.lua")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "| case | nginx req/s | rampart req/s | throughput ratio | nginx p50/p99 us | rampart p50/p99 us | p99 ratio |"
echo "|---|---|---|---|---|---|---|"
echo "| GET / | $n_get_rps | $r_get_rps | $(ratio "$r_get_rps" "$n_get_rps") | $n_get_p50 / $n_get_p99 | $r_get_p50 / $r_get_p99 | $(ratio "$r_get_p99" "$n_get_p99") |"
echo "| POST 64 KiB JSON | $n_post_rps | $r_post_rps | $(ratio "$r_post_rps" "$n_post_rps") | $n_post_p50 / $n_post_p99 | $r_post_p50 / $r_post_p99 | $(ratio "$r_post_p99" "$n_post_p99") |"
echo
echo "access log lines written by rampart: $(wc -l < "$WORK/access.log")"
