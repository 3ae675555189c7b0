#!/usr/bin/env bash
# Shared state (issue 7): (1) rate-limit decisions per second and per-decision latency, memory store vs
# Redis, as ratios; (2) the per-request overhead of a rate limit through the proxy, memory vs Redis, as
# ratios against the same proxy without limits, in one run.
#
#   bench/guard.sh                     # DECISIONS=1000000 TASKS=64 KEYS=10000 TIMEOUT_MS=50
#                                      # DURATION=10s CONNS=16 THREADS=2
#   PART=1 bench/guard.sh              # only the decisions part (PART=2: only the proxy part)
#   STATE_TIMEOUT=50ms bench/guard.sh  # case C with this [state] timeout instead of the default (5ms)
#
# Both parts use a private redis-server (`--save '' --appendonly no`, a free loopback port, stopped at the
# end); without redis-server installed the Redis cases are skipped (part 1) or the script stops (part 2).
#
# Part 1 builds crates/guard/examples/decisions.rs (release) and runs it twice. First the main table:
# DECISIONS decisions per case from TASKS concurrent tasks on a multi-thread runtime, keys at random among
# KEYS, for `gcra` and `window`, through `rampart_guard::Guarded` over the memory store and over
# `RedisStore` (on_error local, a TIMEOUT_MS deadline generous enough that no decision falls back; the
# fallbacks are counted anyway). Then the same with one task and fewer decisions: the unloaded round trip.
# Prints decisions/s, p50 and p99 per case, the fallbacks, and the redis/memory ratios.
#
# Part 2 builds the rampart binary (release), starts a private nginx (static 200 "ok", as in
# bench/events.sh) and runs rampart three times with one route in mode "off" (no detection cost) in front
# of it:
#   A: no rate limits;
#   B: one [[rate_limits]] keyed on client_ip whose rate never rejects ("10000000/1s"), [state] memory;
#   C: the same limit with [state] backend = "redis" on the private server (the default timeout, 5 ms, or
#      STATE_TIMEOUT); a decision Redis does not answer in time falls back to memory (on_error local) and
#      opens the breaker for 0.5 s, so C's figures hold some fallback decisions: they are counted.
# Each case gets the same wrk run (2 s warm-up, then THREADS/CONNS/DURATION with --latency). Prints req/s,
# p50 and p99, the ratios B/A, C/A and C/B, and per case the console's rampart_state_decisions counters (by
# decided_by: memory, store, fallback) and Redis's EVALSHA count, so that C is seen to decide on Redis.
# Everything is on 127.0.0.1, bounded in time, and stopped and removed on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DECISIONS="${DECISIONS:-1000000}"
TASKS="${TASKS:-64}"
KEYS="${KEYS:-10000}"
TIMEOUT_MS="${TIMEOUT_MS:-50}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-16}"
THREADS="${THREADS:-2}"
PART="${PART:-all}"
STATE_TIMEOUT="${STATE_TIMEOUT:-}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d /tmp/rampart-guard-bench.XXXXXX)"

REDIS_PID="" REDIS_PORT=""
cleanup() {
  set +e
  [[ -n "${RAMPART_PID:-}" ]] && kill "$RAMPART_PID" 2>/dev/null && wait "$RAMPART_PID" 2>/dev/null
  [[ -n "${NGINX_PID:-}" ]] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  [[ -n "$REDIS_PID" ]] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
note() { echo "# $*" >&2; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

redis_start() { # starts the private redis-server once; fails when there is none
  [[ -n "$REDIS_PID" ]] && return 0
  command -v redis-server >/dev/null || { note "no redis-server"; return 1; }
  REDIS_PORT="$(free_port)"
  mkdir -p "$WORK/redis"
  (cd "$WORK/redis" && exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize no >"$WORK/redis/redis.log" 2>&1) &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' \
      "$REDIS_PORT" 2>/dev/null && { note "$(redis-server --version | awk '{print $1, $3}') on 127.0.0.1:$REDIS_PORT"; return 0; }
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/redis/redis.log" >&2
  note "redis-server did not start"
  return 1
}

redis_evalsha() { # EVALSHA calls the private server has served so far (0 without redis-cli)
  command -v redis-cli >/dev/null || { echo 0; return; }
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info commandstats | tr -d '\r' |
    awk -F'[:=,]' '$1 == "cmdstat_evalsha" {print $3; f=1} END {if (!f) print 0}'
}

# ------------------------------------------------------------------------------------------ part 1
part1() {
  note "building the decisions example (release)"
  cargo build --release -q -p rampart-guard --example decisions --manifest-path "$ROOT/Cargo.toml"
  local bin="$TARGET/release/examples/decisions" redis_args=()
  if redis_start; then redis_args=(--redis "redis://127.0.0.1:$REDIS_PORT"); else note "Redis cases skipped"; fi
  local common=(--keys "$KEYS" --timeout-ms "$TIMEOUT_MS" "${redis_args[@]}")
  note "$(date -u +%FT%TZ) decisions: $DECISIONS per case, $TASKS tasks, $KEYS keys, $(nproc) cores"
  "$bin" --decisions "$DECISIONS" --tasks "$TASKS" "${common[@]}"
  echo
  note "the unloaded round trip: one task, $((DECISIONS / 10)) decisions per case"
  "$bin" --decisions "$((DECISIONS / 10))" --tasks 1 "${common[@]}"
}

# ------------------------------------------------------------------------------------------ part 2
# wrk --latency prints "50% 1.23ms"; normalise to microseconds.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}'; }
metrics_of() { # console-port prefix: "name{labels}=value ..." of every sample starting with prefix
  curl -s "http://127.0.0.1:$1/metrics" | awk -v p="$2" 'index($0, p) == 1 {s = s $1 "=" $2 " "} END {print s}'
}

start_rampart() { # case-name extra-toml
  local dir="$WORK/$1" port console
  port="$(free_port)"; console="$(free_port)"
  mkdir -p "$dir"
  cat > "$dir/rampart.toml" <<EOF
data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:$port"

[upstreams.app]
targets = ["http://127.0.0.1:$BACKEND_PORT"]

[[routes]]
name = "api"
path = "/"
upstream = "app"
mode = "off"

[console]
listen = "127.0.0.1:$console"
$2
EOF
  (cd "$dir" && exec "$RAMPART" run --config "$dir/rampart.toml" >"$dir/rampart.log" 2>&1) &
  RAMPART_PID=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { cat "$dir/rampart.log" >&2; note "rampart did not start"; exit 1; }
  RAMPART_PORT=$port CONSOLE_PORT=$console
}

stop_rampart() {
  kill "$RAMPART_PID" 2>/dev/null || true
  wait "$RAMPART_PID" 2>/dev/null || true
  RAMPART_PID=""
}

run_case() { # name extra-toml: sets RPS P50 P99 (not in a subshell, so that cleanup sees RAMPART_PID)
  local out errs url evalsha_before evalsha_after
  start_rampart "$1" "$2"
  url="http://127.0.0.1:$RAMPART_PORT/api/items?id=42"
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" == 200 ]] || { note "$1: $url did not answer 200"; exit 1; }
  wrk -t"$THREADS" -c"$CONNS" -d2s "$url" >/dev/null   # warm-up (and time for the Redis connection)
  evalsha_before=$(redis_evalsha)
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")
  evalsha_after=$(redis_evalsha)
  RPS=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  P50=$(echo "$out" | awk '$1=="50%" {print $2}' | to_us)
  P99=$(echo "$out" | awk '$1=="99%" {print $2}' | to_us)
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  printf '%-44s %10s req/s   p50 %7s us   p99 %7s us  %s\n' "$1" "$RPS" "$P50" "$P99" "$errs" >&2
  printf '    decisions (warm-up and run): %s\n' "$(metrics_of "$CONSOLE_PORT" rampart_state_decisions)" >&2
  printf '    store errors: %s; redis EVALSHA during the run: %s\n' \
    "$(metrics_of "$CONSOLE_PORT" rampart_state_store_errors)" "$((evalsha_after - evalsha_before))" >&2
  local failed
  failed=$(grep -c 'state store failed' "$WORK/$1/rampart.log" || true)
  if ((failed > 0)); then
    printf '    %s "state store failed" warnings in the log; the first: %s\n' "$failed" \
      "$(grep -m1 'state store failed' "$WORK/$1/rampart.log" | cut -c1-300)" >&2
  fi
  stop_rampart
}

part2() {
  command -v wrk >/dev/null || { note "wrk is not installed"; exit 1; }
  command -v nginx >/dev/null || { note "nginx is not installed"; exit 1; }
  redis_start || { note "part 2 needs redis-server"; exit 1; }
  note "building rampart (release)"
  cargo build --release -q -p rampart --manifest-path "$ROOT/Cargo.toml"
  RAMPART="$TARGET/release/rampart"

  # The backend: a private nginx answering 200 "ok" (one worker, like a small fast upstream).
  BACKEND_PORT="$(free_port)"
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
EOF
  nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" 2>/dev/null &
  NGINX_PID=$!
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$BACKEND_PORT/" && break; sleep 0.1; done

  local limit='
[[rate_limits]]
name = "per-ip"
key = ["client_ip"]
rate = "10000000/1s"
'
  local memory="$limit
[state]
backend = \"memory\"
"
  local redis="$limit
[state]
backend = \"redis\"
url = \"redis://127.0.0.1:$REDIS_PORT\"
${STATE_TIMEOUT:+timeout = \"$STATE_TIMEOUT\"}
"
  note "$(date -u +%FT%TZ) rate-limit overhead: wrk -t$THREADS -c$CONNS -d$DURATION, route mode off, nginx backend, $(nproc) cores"
  local a_rps a_p50 a_p99 b_rps b_p50 b_p99 c_rps c_p50 c_p99
  run_case "A: no rate limits" ""
  a_rps=$RPS a_p50=$P50 a_p99=$P99
  run_case "B: one limit, [state] memory" "$memory"
  b_rps=$RPS b_p50=$P50 b_p99=$P99
  run_case "C: one limit, [state] redis${STATE_TIMEOUT:+ timeout $STATE_TIMEOUT}" "$redis"
  c_rps=$RPS c_p50=$P50 c_p99=$P99
  echo
  echo "| case | req/s | p50 us | p99 us |"
  echo "|---|---|---|---|"
  echo "| A: no rate limits | $a_rps | $a_p50 | $a_p99 |"
  echo "| B: one limit (client_ip, never rejects), memory | $b_rps | $b_p50 | $b_p99 |"
  echo "| C: the same limit, Redis (timeout ${STATE_TIMEOUT:-5ms}) | $c_rps | $c_p50 | $c_p99 |"
  echo "| B/A | $(ratio "$b_rps" "$a_rps") | $(ratio "$b_p50" "$a_p50") | $(ratio "$b_p99" "$a_p99") |"
  echo "| C/A | $(ratio "$c_rps" "$a_rps") | $(ratio "$c_p50" "$a_p50") | $(ratio "$c_p99" "$a_p99") |"
  echo "| C/B | $(ratio "$c_rps" "$b_rps") | $(ratio "$c_p50" "$b_p50") | $(ratio "$c_p99" "$b_p99") |"
}

case "$PART" in
  1) part1 ;;
  2) part2 ;;
  *) part1; echo; part2 ;;
esac
