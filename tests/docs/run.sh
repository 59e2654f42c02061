#!/usr/bin/env bash
# Docs that run: every shell example in README.md's "Using it" section and in the sh/bash/shell
# (or unlabelled, starting with `gpux `) code blocks of docs/*.md is run as written, from a folder
# that holds `examples/` and `build/` as the repository does, with a temporary GPUX_HOME. Each line
# must exit 0; a `# -> TEXT` comment is what the line prints first (numbers in it match any
# number). Lines run in document order, so an example may use an image an earlier line built.
#
# Skipped, and why (each skip is printed):
#   - gpux serve without `-d --port 0`: it runs in the foreground until stopped, or binds a fixed
#     port another program may hold; tests/serve/serve.sh covers serve, ps, logs and stop.
#   - gpux login, logout, push, pull: they need an OCI registry; tests/registry/*.sh runs them
#     against a local one.
#   - lines with a command other than gpux (curl needs a running server; make/cmake build gpux).
#   - lines with placeholders (NAME, PATH, FILE, ... in capitals): templates, not commands.
#   - gpux verify build/node: it runs all of ONNX's node cases, which the conformance tests do.
#   - gpux bench build/models/... when build/models is missing: the models-cpu test makes it.
#   tests/docs/run.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
need node
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

# why_skip COMMAND: prints the reason a line is not run, or nothing
why_skip() {
  local line=$1 cmd
  local bare=${line//\$PATH/}
  if grep -Eq '\b(NAME|PATH|FILE|TAG|VALUE|DIR|REF|HOST)\b' <<<"${bare//export PATH=/}"; then echo "a template with placeholders"; return; fi
  while IFS= read -r cmd; do
    cmd=${cmd#"${cmd%%[![:space:]]*}"}
    [ -z "$cmd" ] && continue
    case $cmd in
      "export PATH="*) ;;
      gpux\ serve*) [[ $cmd == *" -d"* && $cmd == *"--port 0"* ]] || { echo "gpux serve in the foreground or on a fixed port (tests/serve/serve.sh)"; return; } ;;
      gpux\ login*|gpux\ logout*|gpux\ push*|gpux\ pull*) echo "needs an OCI registry (tests/registry/)"; return ;;
      gpux\ verify*build/node*) echo "runs all 1,884 ONNX node cases (the conformance tests do)"; return ;;
      gpux\ bench*build/models*) [ -d "$work/build/models" ] || { echo "build/models is made by the models-cpu test"; return; } ;;
      gpux\ *) ;;
      *) echo "not a gpux command: ${cmd%% *}"; return ;;
    esac
  done < <(sed -E 's/(;|&&|\|\|)/\n/g' <<<"$line")
}

# A `# -> TEXT` comment as an extended regex for the first line printed: numbers match any number.
expected() {
  local c=$1
  [[ $c == *"# -> "* ]] || return 0
  c=${c#*"# -> "}
  c=$(sed -E 's/ {2,}.*$//' <<<"$c")
  printf '^%s' "$(sed -E 's/[][\.*^$+?(){}|]/\\&/g; s/[0-9]+(\\\.[0-9]+)?/[0-9]+(\\.[0-9]+)?/g' <<<"$c")"
}

n_lines=0
while IFS=$'\t' read -r where line; do
  n_lines=$((n_lines + 1))
  where=${where#"$root/"}
  cmd=$(sed -E 's/[[:space:]]+#[[:space:]].*$//' <<<"$line")
  reason=$(why_skip "$cmd")
  if [ -n "$reason" ]; then
    echo "SKIP $where: $cmd  ($reason)"
    skipped=$((skipped + 1))
    continue
  fi
  want=$(expected "$line")
  out=$(cd "$work" && timeout 300 bash -ec "$cmd" 2>&1 </dev/null); rc=$?
  first=$(head -1 <<<"$out")
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
