#!/usr/bin/env bash
# `make run`: a real headless load test on this machine. Starts the bundled target server on an
# ephemeral port, runs acrida-master with two local workers against it for 10 s, prints acrida's
# summary, then the target's own count of what it served, so both can be compared.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
target_pid=""
cleanup() {
  if [ -n "$target_pid" ] && kill -0 "$target_pid" 2>/dev/null; then
    kill -TERM "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$build/acrida-target" --port 0 --port-file "$tmp/target.port" 2>"$tmp/target.log" &
target_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/target.port" ] && break; sleep 0.05; done
port=$(sed -n 's/^port=//p' "$tmp/target.port")
[ -n "$port" ] || { echo "acrida-target did not start:" >&2; cat "$tmp/target.log" >&2; exit 1; }

echo "acrida-target listening on 127.0.0.1:$port"
echo "running: acrida-master -f examples/quickstart.lua -H http://127.0.0.1:$port -u 20 -r 10 -t 10s --headless --local-workers 2 --master-bind-host 127.0.0.1 --master-bind-port 0"
status=0
"$build/acrida-master" -f "$here/quickstart.lua" -H "http://127.0.0.1:$port" -u 20 -r 10 -t 10s \
  --headless --local-workers 2 --master-bind-host 127.0.0.1 --master-bind-port 0 || status=$?

count=$(/usr/bin/python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen("http://127.0.0.1:%s/_count" % sys.argv[1]))["served"])' "$port" 2>/dev/null || echo "?")
echo
echo "acrida-target served $count requests (compare with the Aggregated '# reqs' above)."
echo "master exit code: $status (1 = some requests failed, as the quickstart's /status/500 task intends)"
