#!/usr/bin/env bash
# Installs every Debian package acrida's build, tests and demo need, then the npm packages of
# package-lock.json (npm ci). Idempotent: what is already installed is skipped.
# Usage: deploy/install-deps.sh [--bench]   (--bench adds nginx, wrk and python3-locust)
set -euo pipefail

pkgs=(build-essential pkg-config libuv1-dev libzmq3-dev libmsgpack-dev node-llhttp libssl-dev
      libluajit2-5.1-dev lua-cjson libjansson-dev libcmocka-dev python3 python3-pytest python3-zmq
      python3-msgpack python3-locust openssl ca-certificates clang-format clang libclang-rt-14-dev
      valgrind stress-ng chromium prometheus curl systemd iproute2)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(nginx-light wrk procps util-linux linux-perf)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The dashboard's npm packages at the exact versions of package-lock.json: uPlot is embedded into
# acrida-master at build time, playwright-core drives Chromium in tests/browser/. Node.js and npm
# come from Debian only when no npm is on the PATH (a machine may have its own Node.js). npm ci
# runs only when node_modules/ was not installed from this very lock file.
if ! command -v npm >/dev/null; then
  echo "install-deps: installing nodejs npm" >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
cd "$(dirname "$0")/.."
if ! cmp -s package-lock.json node_modules/.acrida-lock.json; then
  echo "install-deps: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.acrida-lock.json
fi
