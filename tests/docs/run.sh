#!/usr/bin/env bash
# Docs that run: every shell example in README.md's "Using it" section and in the sh/bash/shell
# (or unlabelled, starting with `gpux `) code blocks of docs/*.md is run as written, from a folder
# that holds `examples/` and `build/` as the repository does, with a temporary GPUX_HOME. Each line
# must exit 0 (a curl line must not answer {"error": ...}); a `# -> TEXT` comment is what the
# line prints first (numbers in it match any number). Lines run in document order, so an example may use an image an earlier line built.
#
# A foreground `gpux serve ... --port N` is started in the background and waited for (ready on
# /v2/health/ready); the curl lines right after it talk to it, and it is stopped before the next
# other line. Skipped, and why (each skip is printed):
#   - gpux serve, and curl to it, when its port is already in use on this machine (a fixed port
#     such as 8080 may be held by another program): tests/serve/serve.sh covers serve on a free
#     port.
#   - curl to a port where no example started a server.
#   - README's first block (make demo, make test): it builds and tests gpux itself.
#   - gpux login, logout, push, pull, and run/serve of a registry's image (localhost:PORT/...):
#     they need an OCI registry; tests/registry/*.sh runs them against a local one.
#   - lines with a command other than gpux or curl (make/cmake build gpux itself); a pipeline
#     of base64/sed/printf into curl or gpux runs.
#   - lines with placeholders (NAME, PATH, FILE, ... in capitals): templates, not commands.
#   - gpux verify build/node: it runs all of ONNX's node cases, which the conformance tests do.
#   - gpux bench build/models/... when build/models is missing: the models-cpu test makes it.
#   tests/docs/run.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
need node curl
work=$tmp/work
mkdir -p "$work"
ln -s "$root/examples" "$work/examples"
ln -s "$(dirname "$gpux")" "$work/build"
export PATH=$work/build:$PATH
ran=0 skipped=0

# The examples: "FILE:LINE<TAB>command" per line.
extract() {
  awk '
    FNR == 1 { using = 0; fence = 0; take = 0 }
    FILENAME ~ /README.md$/ && /^## / { using = ($0 == "## Using it") }
    /^```/ {
      if (fence) { fence = 0; take = 0; next }
      fence = 1; info = substr($0, 4); first = 1
      if (FILENAME ~ /README.md$/) take = using && (info == "sh" || info == "bash" || info == "")
      else take = (info == "sh" || info == "bash" || info == "shell" || info == "")
      plain = (info == "")
      next
    }
    fence && take {
      if (first && plain && FILENAME !~ /README.md$/ && $0 !~ /^gpux /) take = 0
      first = 0
      if (take && $0 !~ /^[ \t]*(#|$)/) printf "%s:%d\t%s\n", FILENAME, FNR, $0
    }
  ' "$root/README.md" "$root"/docs/*.md
}

# Servers started for foreground `gpux serve` examples: port -> pid.
declare -A servers
stop_servers() {
  local port
  for port in "${!servers[@]}"; do
    kill "${servers[$port]}" 2>/dev/null && wait "${servers[$port]}" 2>/dev/null
    unset "servers[$port]"
  done
}
trap 'stop_servers; rm -rf "$tmp"' EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The port a gpux serve command binds: --port N, else 8080 (the examples' serving.port).
serve_port() {
  if [[ $1 =~ --port[=\ ]([0-9]+) ]]; then echo "${BASH_REMATCH[1]}"; else echo 8080; fi
}

# why_skip COMMAND: prints the reason a line is not run, or nothing
why_skip() {
  local line=$1 cmd port
  local bare=${line//\$PATH/}
  if grep -Eq '\b(NAME|PATH|FILE|TAG|VALUE|DIR|REF|HOST)\b' <<<"${bare//export PATH=/}"; then echo "a template with placeholders"; return; fi
  while IFS= read -r cmd; do
    cmd=${cmd#"${cmd%%[![:space:]]*}"}
    [ -z "$cmd" ] && continue
    case $cmd in
      "export PATH="*) ;;
      gpux\ serve*)
        port=$(serve_port "$cmd")
        if [ "$port" != 0 ] && port_busy "$port"; then echo "port $port is in use on this machine"; return; fi ;;
      gpux\ login*|gpux\ logout*|gpux\ push*|gpux\ pull*|gpux\ *\ localhost:[0-9]*/*) echo "needs an OCI registry (tests/registry/)"; return ;;
      gpux\ verify*build/node*) echo "runs all 1,884 ONNX node cases (the conformance tests do)"; return ;;
      gpux\ bench*build/models*) [ -d "$work/build/models" ] || { echo "build/models is made by the models-cpu test"; return; } ;;
      gpux\ *) ;;
      curl\ *)
        [[ $cmd =~ (localhost|127\.0\.0\.1):([0-9]+) ]] || { echo "curl to no local server"; return; }
        [ -n "${servers[${BASH_REMATCH[2]}]:-}" ] || { echo "no example started a server on port ${BASH_REMATCH[2]}"; return; } ;;
      base64\ *\|*|printf\ *\|*|sed\ *\|*)   # a pipeline feeding curl or gpux: checked as its last command
        why_skip "${cmd##*| }"; return ;;
      *) echo "not a gpux command: ${cmd%% *}"; return ;;
    esac
  done < <(sed -E 's/(;|&&|\|\|)/\n/g' <<<"$line")
}

# start_server COMMAND: a foreground `gpux serve` in the background until it is ready
start_server() {
  local port i
  port=$(serve_port "$1")
  (cd "$work" && exec bash -c "exec $1") >"$tmp/serve-$port.log" 2>&1 </dev/null &
  servers[$port]=$!
  for ((i = 0; i < 600; i++)); do
    curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "${servers[$port]}" 2>/dev/null || break
    sleep 0.2
  done
  cat "$tmp/serve-$port.log"
  return 1
}

# A `# -> TEXT` comment as an extended regex for the first line printed: numbers match any number.
expected() {
  local c=$1
  [[ $c == *"# -> "* ]] || return 0
  c=${c#*"# -> "}
  c=$(sed -E 's/ {2,}.*$//' <<<"$c")
  printf '^%s' "$(sed -E 's/[][\.*^$+?(){}|]/\\&/g; s/[0-9]+(\\\.[0-9]+)?/[0-9]+(\\.[0-9]+)?/g' <<<"$c")"
}

n_lines=0 file=
while IFS=$'\t' read -r where line; do
  n_lines=$((n_lines + 1))
  where=${where#"$root/"}
  cmd=$(sed -E 's/[[:space:]]+#[[:space:]].*$//' <<<"$line")
  # a foreground server serves the curl lines right after it (as in a second terminal)
  is_curl=0
  [[ $cmd == curl* || $cmd == *"| curl "* ]] && is_curl=1
  { [ "${where%%:*}" != "$file" ] || [ "$is_curl" = 0 ]; } && stop_servers
  file=${where%%:*}
  reason=$(why_skip "$cmd")
  if [ -n "$reason" ]; then
    echo "SKIP $where: $cmd  ($reason)"
    skipped=$((skipped + 1))
    continue
  fi
  want=$(expected "$line")
  if [[ $cmd == "gpux serve "* && $cmd != *" -d"* && $cmd != *[\;\&\|]* ]]; then
    start_server "$cmd" >"$tmp/out" 2>&1; rc=$?   # not in $(...): servers[] must be set here
    out=$(cat "$tmp/out")
  else
    out=$(cd "$work" && timeout 300 bash -ec "$cmd" 2>&1 </dev/null); rc=$?
  fi
  first=$(head -1 <<<"$out")
  # curl exits 0 on an HTTP error: gpux's error bodies are {"error": "..."}
  [ "$is_curl" = 1 ] && [[ $first == *'"error"'* ]] && rc=22
  if [ "$rc" != 0 ] || { [ -n "$want" ] && ! grep -Eq -- "$want" <<<"$first"; }; then
    echo "FAIL $where: $cmd"
    echo "  exit $rc${want:+, first line must match $want}; output:"
    sed 's/^/  /' <<<"$out" | head -20
    fails=$((fails + 1))
  else
    echo "ok   $where: $cmd"
    passes=$((passes + 1))
  fi
  ran=$((ran + 1))
done < <(extract)

# the extraction itself must keep finding README's examples
[ "$n_lines" -ge 10 ] && [ "$ran" -ge 8 ] || { echo "FAIL: only $n_lines example lines found, $ran run"; fails=$((fails + 1)); }
echo "$ran run, $skipped skipped"
finish
