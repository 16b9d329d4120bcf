#!/usr/bin/env bash
# `make bench`: installs its own tools (nginx, wrk, python3-locust), then runs bench/bench.py.
# Usage: bench/run.sh [BUILD_DIR] [extra bench.py options]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}; shift || true
bash "$here/../deploy/install-deps.sh" --bench
exec /usr/bin/python3 "$here/bench.py" --build "$build" "$@"
