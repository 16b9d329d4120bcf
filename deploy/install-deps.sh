#!/usr/bin/env bash
# Installs every Debian package acrida's build, tests and demo need. Idempotent: packages that are
# already installed are skipped, and nothing is done when all are present.
# Usage: deploy/install-deps.sh [--bench]   (--bench adds nginx, wrk and python3-locust)
set -euo pipefail

pkgs=(build-essential pkg-config libuv1-dev libzmq3-dev libmsgpack-dev node-llhttp libssl-dev
      libluajit2-5.1-dev lua-cjson libjansson-dev libcmocka-dev python3 python3-pytest python3-zmq
      python3-msgpack python3-locust openssl ca-certificates clang-format clang libclang-rt-14-dev
      valgrind stress-ng chromium prometheus)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(nginx-light wrk procps util-linux linux-perf)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
