#!/usr/bin/env bash
# The dashboard on this machine: starts the bundled target server on an ephemeral port and
# acrida-master in web mode with two local workers against it, prints the dashboard's URL, and
# runs until Ctrl-C (which stops a running test, writes the results and ends both processes).
# Usage: examples/dashboard.sh [build-dir] [web-port]   (defaults: build, 8089; 0 = a free port)
set -euo pipefail
build=${1:-build}
web_port=${2:-8089}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/target.sh"
# The URL once the master has bound its web port (the real one when web-port is 0). The master
# runs in the foreground, so that Ctrl-C reaches it.
(
  for _ in $(seq 1 200); do [ -s "$tmp/master.ports" ] && break; sleep 0.05; done
  web=$(sed -n 's/^web=//p' "$tmp/master.ports" 2>/dev/null)
  [ -n "$web" ] && echo "dashboard: http://127.0.0.1:$web/  (New test: type a user count and a spawn rate, press Start; Ctrl-C here ends it)"
) &
status=0
"$build/acrida-master" -f "$here/quickstart.lua" -H "http://127.0.0.1:$port" --local-workers 2 \
  --web-port "$web_port" --master-bind-host 127.0.0.1 --master-bind-port 0 \
  --port-file "$tmp/master.ports" || status=$?
echo "master exit code: $status"
