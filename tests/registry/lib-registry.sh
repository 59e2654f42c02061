# lib-registry.sh — starts Debian's docker-registry (the distribution v2 server) for the registry
# tests: a storage folder in $tmp, a free loopback port, optional htpasswd or token auth; every
# registry started is stopped when the test exits.
#   start_registry NAME ADDR [AUTH_YAML]   sets reg_port (and reg_dir=$tmp/NAME)
# Debian's python3 (with python3-cryptography from scripts/install-deps.sh), whatever else is on PATH
export PATH=/usr/bin:$PATH
reg_pids=()
trap 'for p in "${reg_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_registry() {
  local name=$1 addr=$2 auth=${3:-}
  reg_dir=$tmp/$name
  reg_port=$(free_port)
  mkdir -p "$reg_dir/data"
  cat > "$reg_dir/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $reg_dir/data
http:
  addr: $addr:$reg_port
$auth
YAML
  docker-registry serve "$reg_dir/config.yml" >"$reg_dir/log" 2>&1 &
  reg_pids+=($!)
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://$addr:$reg_port/v2/" && return 0
    sleep 0.1
  done
  echo "docker-registry did not start:"; cat "$reg_dir/log"; exit 1
}
