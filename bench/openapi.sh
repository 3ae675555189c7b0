#!/usr/bin/env bash
# OpenAPI validation overhead (issue 6): the exact request stage of the proxy (`rampart eval`, in
# process) over the same requests, with the routes' OpenAPI contracts and without them, in one run.
#
#   bench/openapi.sh              # RECORDS=20000 ROUNDS=3
#
# The requests are the valid cases of crates/apispec/tests/fixtures/cases.jsonl (the shop API, OpenAPI
# 3.0, and the bank API, OpenAPI 3.1: parameters, JSON, form and multipart bodies, credentials), repeated
# to RECORDS, as a corpus of benign records. Two configs route /v2 and /v1 to one upstream in block mode
# with detection on; one adds [routes.openapi] with the two specs. Each round evaluates both; the figure is
# the best requests/s of each, and the ratio with/without. Every record must pass with the contracts too
# (tn = RECORDS, fp = 0): a valid request the contract refused would show as a false positive.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RECORDS="${RECORDS:-20000}"
ROUNDS="${ROUNDS:-3}"
FIX="$ROOT/crates/apispec/tests/fixtures"
WORK="$(mktemp -d /tmp/rampart-openapi-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

cargo build --release -q -p rampart --manifest-path "$ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/rampart"

python3 - "$FIX/cases.jsonl" "$RECORDS" > "$WORK/valid.jsonl" <<'PY'
import json, sys
cases = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
valid = [c for c in cases if c["expect"] == "valid" and c["spec"] != "shop/openapi.v1.yaml"]
n = int(sys.argv[2])
for i in range(n):
    c = valid[i % len(valid)]
    headers = [["Host", "api.example"]] + [[k, v] for k, v in c["headers"].items()]
    body = c["body"] or ""
    if body:
        headers.append(["Content-Length", str(len(body.encode()))])
    print(json.dumps({"id": f"openapi:{i}", "source": "openapi-valid", "category": c["spec"].split("/")[0],
                      "label": "benign", "method": c["method"], "path": c["target"],
                      "http_version": "HTTP/1.1", "headers": headers, "body": body}))
PY

for variant in without with; do
  {
    echo '[[listeners]]'
    echo 'addr = "127.0.0.1:1"'
    echo '[upstreams.app]'
    echo 'targets = ["http://127.0.0.1:9"]'
    for r in "v2 shop/openapi.yaml" "v1 bank/openapi.json"; do
      set -- $r
      printf '[[routes]]\nname = "%s"\npath = "/%s"\nupstream = "app"\nmode = "block"\n' "$1" "$1"
      [[ $variant == with ]] && printf '[routes.openapi]\nspec = "%s"\n' "$FIX/$2"
    done
  } > "$WORK/$variant.toml"
done

best_without=0 best_with=0
for round in $(seq 1 "$ROUNDS"); do
  for variant in without with; do
    out="$("$BIN" eval --config "$WORK/$variant.toml" --json "$WORK/valid.jsonl")"
    rps="$(python3 -c 'import json,sys; print(round(json.load(sys.stdin)["total"]["requests_per_s"]))' <<<"$out")"
    counts="$(python3 -c 'import json,sys; s=json.load(sys.stdin)["sources"]["openapi-valid"]; print("tn=%d fp=%d" % (s["tn"], s["fp"]))' <<<"$out")"
    echo "# round $round $variant: $rps requests/s ($counts)" >&2
    if [[ $variant == with ]]; then (( rps > best_with )) && best_with=$rps; else (( rps > best_without )) && best_without=$rps; fi
  done
done
echo "| route | requests/s (best of $ROUNDS) |"
echo "|---|---|"
echo "| without a spec | $best_without |"
echo "| with the OpenAPI contract | $best_with |"
awk -v a="$best_with" -v b="$best_without" 'BEGIN { printf "| with / without | %.2fx |\n", a / b }'
