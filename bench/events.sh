#!/usr/bin/env bash
# Events pipeline: (1) events per second through the real pipeline into SQLite and PostgreSQL; (2) traffic
# latency with every sink down or slow against a healthy sink, as a ratio in one run.
#
#   bench/events.sh                    # EVENTS=200000 BATCHES=256,1024 DURATION=10s CONNS=16 THREADS=2
#   PART=1 bench/events.sh             # only the throughput part (PART=2: only the latency part)
#   PG_SYNC=on bench/events.sh         # PostgreSQL with synchronous_commit=on (default off, see below)
#
# Part 1 builds crates/events/examples/throughput.rs (release), starts a throwaway PostgreSQL (initdb into a
# temporary directory, a free loopback port; as root the server runs as the `postgres` user through setpriv
# or runuser, like crates/events/tests/support/postgres.rs) and runs the example for SQLite and PostgreSQL:
# N events through a real Pipeline into one sink at a time, timed from the first emit until delivered +
# dropped == N. PostgreSQL runs with synchronous_commit=off, the analogue of the SQLite sink's WAL with
# synchronous=NORMAL (a crash may lose the last commits, never corrupts); fsync stays on.
#
# Part 2 builds the rampart binary (release), starts a private nginx (static 200 "ok", like the baseline's
# 9001 backend in bench/proxy.sh, but its own instance on a free port, stopped at the end) and runs rampart
# twice with one `monitor` route, so that attacks pass and every request is an event:
#   A: only the default SQLite sink;
#   B: every sink away: a webhook to a tarpit (accepts, never answers), a syslog TCP sink to a closed port,
#      a PostgreSQL sink to a closed port (no SQLite sink);
# both driven by the same wrk run on an attack URL. Prints req/s, p50 and p99 for A and B and the B/A ratios.
# Everything is on 127.0.0.1, bounded in time, and stopped and removed on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
EVENTS="${EVENTS:-200000}"
BATCHES="${BATCHES:-256,1024}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-16}"
THREADS="${THREADS:-2}"
PART="${PART:-all}"
PG_SYNC="${PG_SYNC:-off}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d /tmp/rampart-events-bench.XXXXXX)"
chmod 755 "$WORK"

PG_BIN="" PG_DATA="" PG_PID="" RUN_AS=()
cleanup() {
  set +e
  [[ -n "${RAMPART_PID:-}" ]] && kill "$RAMPART_PID" 2>/dev/null && wait "$RAMPART_PID" 2>/dev/null
  [[ -n "${TARPIT_PID:-}" ]] && kill "$TARPIT_PID" 2>/dev/null && wait "$TARPIT_PID" 2>/dev/null
  [[ -n "${NGINX_PID:-}" ]] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  if [[ -n "$PG_PID" ]]; then
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast -w -t 20 >/dev/null 2>&1 || kill -KILL "$PG_PID" 2>/dev/null
    wait "$PG_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
note() { echo "# $*" >&2; }

# ------------------------------------------------------------------------------------------ part 1
pg_start() {
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  if [[ -z "$PG_BIN" ]] && command -v pg_config >/dev/null; then PG_BIN="$(pg_config --bindir)"; fi
  [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/postgres" ]] || { note "no PostgreSQL server binaries: PostgreSQL skipped"; return 1; }
  if [[ "$(id -u)" == 0 ]]; then
    if command -v setpriv >/dev/null; then
      RUN_AS=(setpriv "--reuid=$(id -u postgres)" "--regid=$(id -g postgres)" --clear-groups --)
    else
      RUN_AS=(runuser -u postgres --)
    fi
    mkdir -p "$WORK/pg" && chown postgres: "$WORK/pg"
  else
    RUN_AS=(env)
    mkdir -p "$WORK/pg"
  fi
  PG_DATA="$WORK/pg/data"
  (cd "$WORK/pg" && "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null)
  PG_PORT="$(free_port)"
  # setpriv execs postgres (this pid is the postmaster); runuser forks (the postmaster is its child).
  (cd "$WORK/pg" && exec "${RUN_AS[@]}" "$PG_BIN/postgres" -D "$PG_DATA" -p "$PG_PORT" -k "$WORK/pg" \
      -c listen_addresses=127.0.0.1 -c shared_buffers=128MB -c max_connections=20 \
      -c synchronous_commit="$PG_SYNC" >"$WORK/pg/postgres.log" 2>&1) &
  PG_PID=$!
  for _ in $(seq 1 300); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && return 0
    kill -0 "$PG_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/pg/postgres.log" >&2
  note "PostgreSQL did not start"
  return 1
}

part1() {
  note "building the throughput example (release)"
  cargo build --release -q -p rampart-events --example throughput --manifest-path "$ROOT/Cargo.toml"
  local bin="$TARGET/release/examples/throughput" pg_args=()
  if pg_start; then
    pg_args=(--pg "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres")
    note "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (synchronous_commit=$PG_SYNC)"
  fi
  note "$(date -u +%FT%TZ) throughput: $EVENTS events per run, batch sizes $BATCHES, $(nproc) cores"
  "$bin" --events "$EVENTS" --batch "$BATCHES" --dir "$WORK" "${pg_args[@]}"
  if [[ -n "$PG_PID" ]]; then
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast -w -t 20 >/dev/null 2>&1 || kill -KILL "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=""
  fi
}

# ------------------------------------------------------------------------------------------ part 2
# wrk --latency prints "50% 1.23ms"; normalise to microseconds.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}'; }
metric() { # port name{labels}: the sample's value, 0 when absent
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" 'index($0, n" ") == 1 {print $2; f=1} END {if (!f) print 0}'
}

start_rampart() { # case-name sinks-toml
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
mode = "monitor"

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

run_case() { # name sinks-toml: sets RPS P50 P99 (not in a subshell, so that cleanup sees RAMPART_PID)
  local out errs url emitted delivered dropped
  start_rampart "$1" "$2"
  url="http://127.0.0.1:$RAMPART_PORT/search?q=%3Cscript%3Ealert(1)%3C/script%3E"
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" == 200 ]] || { note "$1: the attack URL did not pass (monitor mode?)"; exit 1; }
  wrk -t"$THREADS" -c"$CONNS" -d2s "$url" >/dev/null   # warm-up (events too)
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")
  RPS=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  P50=$(echo "$out" | awk '$1=="50%" {print $2}' | to_us)
  P99=$(echo "$out" | awk '$1=="99%" {print $2}' | to_us)
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  emitted=$(metric "$CONSOLE_PORT" rampart_events_emitted_total)
  delivered=$(curl -s "http://127.0.0.1:$CONSOLE_PORT/metrics" | awk '/^rampart_events_delivered_total/ {s = s $1 "=" $2 " "} END {print s}')
  dropped=$(curl -s "http://127.0.0.1:$CONSOLE_PORT/metrics" | awk '/^rampart_events_dropped_total/ && $2 > 0 {s = s $1 "=" $2 " "} END {print s}')
  printf '%-60s %10s req/s   p50 %7s us   p99 %7s us  %s\n' "$1" "$RPS" "$P50" "$P99" "$errs" >&2
  printf '    events emitted %s; %s%s\n' "$emitted" "${delivered:-nothing delivered }" "${dropped:+; $dropped}" >&2
  stop_rampart
}

part2() {
  command -v wrk >/dev/null || { note "installing wrk"; apt-get install -y -q wrk >/dev/null; }
  if ! command -v nginx >/dev/null; then
    note "installing nginx (its default site is not started)"
    local had_policy=0
    [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
    ((had_policy)) || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null
    ((had_policy)) || rm -f /usr/sbin/policy-rc.d
  fi
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

  # The tarpit: accepts connections and never answers (holds them until killed).
  TARPIT_PORT="$(free_port)"
  python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$TARPIT_PORT" &
  TARPIT_PID=$!
  local syslog_port pg_port
  syslog_port="$(free_port)"; pg_port="$(free_port)"   # nobody listens on these

  local healthy='
[[events.sinks]]
name = "store"
type = "sqlite"
'
  local away="
[[events.sinks]]
name = \"hook\"
type = \"webhook\"
url = \"http://127.0.0.1:$TARPIT_PORT/events\"
deliver = \"all\"
timeout = \"1s\"

[[events.sinks]]
name = \"siem\"
type = \"syslog\"
addr = \"127.0.0.1:$syslog_port\"
transport = \"tcp\"
format = \"json\"

[[events.sinks]]
name = \"fleet\"
type = \"postgres\"
url = \"host=127.0.0.1 port=$pg_port user=rampart dbname=rampart connect_timeout=1\"
"
  local url_note="/search?q=%3Cscript%3Ealert(1)%3C/script%3E"
  note "$(date -u +%FT%TZ) sinks away vs healthy: wrk -t$THREADS -c$CONNS -d$DURATION on $url_note, monitor route, nginx backend, $(nproc) cores"
  local a_rps a_p50 a_p99 b_rps b_p50 b_p99
  run_case "A: healthy (default sqlite sink)" "$healthy"
  a_rps=$RPS a_p50=$P50 a_p99=$P99
  run_case "B: sinks away (webhook tarpit, syslog and postgres closed)" "$away"
  b_rps=$RPS b_p50=$P50 b_p99=$P99
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
  echo
  echo "| case | req/s | p50 us | p99 us |"
  echo "|---|---|---|---|"
  echo "| A: healthy (default sqlite sink) | $a_rps | $a_p50 | $a_p99 |"
  echo "| B: every sink away (webhook tarpit, syslog tcp and postgres closed) | $b_rps | $b_p50 | $b_p99 |"
  echo "| B/A | $(ratio "$b_rps" "$a_rps") | $(ratio "$b_p50" "$a_p50") | $(ratio "$b_p99" "$a_p99") |"
}

case "$PART" in
  1) part1 ;;
  2) part2 ;;
  *) part1; echo; part2 ;;
esac
