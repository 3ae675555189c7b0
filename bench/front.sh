# Sourced by bench/proxy.sh and bench/cpu.sh: the backend and the gateway configuration they share.
#
#   start_static_backend           nginx's static 200 "ok" on 127.0.0.1:9001 (the shared baseline), wrk
#   write_front_config FILE PORT   rampart on 127.0.0.1:PORT with one catch-all route to 9001: route
#                                  mode MODE (default off), discovery on unless DISCOVERY=off
#   ROOT, SHARED                   this checkout and ../shared

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared}"

start_static_backend() {
  command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -q wrk >/dev/null; }
  UPSTREAM_PORT=9001 "$SHARED/bench/baseline/setup.sh" >/dev/null
}

write_front_config() { # file port
  local discovery=true
  [[ "${DISCOVERY:-on}" == off ]] && discovery=false
  cat > "$1" <<CONFIG
[[listeners]]
addr = "127.0.0.1:$2"

[upstreams.backend]
targets = ["http://127.0.0.1:9001"]

[[routes]]
path = "/"
upstream = "backend"
mode = "${MODE:-off}"

[console]
listen = "127.0.0.1:0"

[discovery]
enabled = $discovery
CONFIG
}
