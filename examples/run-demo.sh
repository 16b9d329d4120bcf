#!/usr/bin/env bash
# `make run`: a real headless load test on this machine. Starts the bundled target server on an
# ephemeral port, runs acrida-master with two local workers against it for 10 s, prints acrida's
# summary, then the target's own count of what it served, so both can be compared.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/target.sh"
echo "running: acrida-master -f examples/quickstart.lua -H http://127.0.0.1:$port -u 20 -r 10 -t 10s --headless --local-workers 2 --master-bind-host 127.0.0.1 --master-bind-port 0"
status=0
"$build/acrida-master" -f "$here/quickstart.lua" -H "http://127.0.0.1:$port" -u 20 -r 10 -t 10s \
  --headless --local-workers 2 --master-bind-host 127.0.0.1 --master-bind-port 0 || status=$?

count=$(/usr/bin/python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen("http://127.0.0.1:%s/_count" % sys.argv[1]))["served"])' "$port" 2>/dev/null || echo "?")
echo
echo "acrida-target served $count requests (compare with the Aggregated '# reqs' above)."
echo "master exit code: $status (1 = some requests failed, as the quickstart's /status/500 task intends)"
