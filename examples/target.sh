# Sourced by the example scripts: starts the bundled target server (acrida-target) on an
# ephemeral port in a temporary directory, stops it and removes the directory at exit.
# Needs $build (the build directory). Sets $tmp (the directory) and $port (the target's port).
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
