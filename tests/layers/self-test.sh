#!/bin/bash
# self-test.sh — shows that check-layers.py fails where it should: a small source tree with one
# violation of each kind (upward include and call, sibling layers, a circle of calls and one of
# headers, a CLI that reaches past the public API, internal names without gpux__, a file in no
# layer, an include of a file not in the tree), compiled, must fail with each expected line; the same tree with the violations removed
# must pass; a pending violation passes and a pending line that no longer occurs fails.
#   self-test.sh CHECK_LAYERS_PY
set -u
check=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

put() { mkdir -p "$(dirname "$tmp/tree/$1")"; cat > "$tmp/tree/$1"; }
objects() {  # compiles every .c of the tree; prints the object paths
  (cd "$tmp/tree" && find src cli -name '*.c' 2>/dev/null | sort) | while read -r c; do
    mkdir -p "$(dirname "$tmp/obj/$c")"
    cc -std=c11 -c -I "$tmp/tree/src" -I "$tmp/tree/include" "$tmp/tree/$c" -o "$tmp/obj/$c.o" || exit 1
    echo "$tmp/obj/$c.o"
  done
}
expect() {  # expect EXIT-STATUS LINE...: runs the checker on the tree, checks status and lines
  local want=$1; shift
  rm -rf "$tmp/obj"
  local objs
  objs=$(objects) || { echo "self-test: the test tree does not compile"; fail=1; return; }
  # shellcheck disable=SC2086
  python3 "$check" $pending_arg "$tmp/tree" $objs > "$tmp/out"
  local rc=$?
  if [ "$rc" != "$want" ]; then
    echo "self-test: check-layers exited $rc, expected $want; it printed:"; cat "$tmp/out"; fail=1
  fi
  for line in "$@"; do
    grep -qxF "$line" "$tmp/out" || { echo "self-test: missing line: $line"; echo "--- got:"; cat "$tmp/out"; fail=1; }
  done
}
pending_arg=

# A tree that keeps the rules.
put include/gpux/gpux.h <<'C'
int gpux_run(void);
C
put src/core/util.h <<'C'
#include "gpux/gpux.h"
int gpux__util(void);
C
put src/core/util.c <<'C'
#include "core/util.h"
int gpux__util(void) { return 1; }
C
put src/ops/kernel.c <<'C'
#include "core/util.h"
int gpux__kernel(void) { return gpux__util(); }
C
put src/runtime/session.c <<'C'
#include "core/util.h"
int gpux__kernel(void);
int gpux_run(void) { return gpux__kernel(); }
C
put cli/cli.h <<'C'
#include "gpux/gpux.h"
C
put cli/main.c <<'C'
#include "cli.h"
int main(void) { return gpux_run(); }
C
expect 0

# Each kind of violation.
put src/runtime/cache.h <<'C'
int gpux__cache_get(void);
C
put src/runtime/cache.c <<'C'
#include "runtime/cache.h"
int gpux__cache_get(void) { return 2; }
C
put src/ops/kernel.c <<'C'
#include "core/util.h"
#include "runtime/cache.h"
int gpux__kernel(void) { return gpux__util() + gpux__cache_get(); }
C
put src/graph/optimize.c <<'C'
int gpux__kernel(void);
int gpux__optimize(void) { return gpux__kernel(); }
C
put src/ops/a.c <<'C'
int gpux__b(int);
int gpux__a(int n) { return n ? gpux__b(n - 1) : 0; }
C
put src/ops/b.c <<'C'
int gpux__a(int);
int gpux__b(int n) { return n ? gpux__a(n - 1) : 1; }
C
put src/ops/names.c <<'C'
int helper(void) { return 3; }
int gpux_secret(void) { return helper(); }
C
put src/store/store.c <<'C'
#include "spec/spec.h"
C
put src/spec/spec.h <<'C'
/* spec */
C
put src/prepost/pre.c <<'C'
int gpux__store_put(void);
int gpux__pre(void) { return gpux__store_put(); }
C
put src/store/put.c <<'C'
int gpux__store_put(void) { return 4; }
C
put src/core/a.h <<'C'
#include "core/b.h"
C
put src/core/b.h <<'C'
#include "core/a.h"
C
put src/nowhere/x.c <<'C'
int gpux__nowhere;
C
put cli/main.c <<'C'
#include "cli.h"
#include "core/util.h"
int main(void) { return gpux_run() + gpux__util(); }
C
put src/core/orphan.h <<'C'
#include "nothere.h"
C
put src/core/types.h <<'C'
typedef struct { int a; } gpux_thing;
typedef int (*gpux_callback)(void);
struct gpux_tagged { int b; };
typedef struct { int c; } gpux__fine;
C
expect 1 \
  'src/core/types.h declares the type gpux_thing, which is not in include/gpux/gpux.h: internal names start with gpux__' \
  'src/core/types.h declares the type gpux_callback, which is not in include/gpux/gpux.h: internal names start with gpux__' \
  'src/core/types.h declares the type gpux_tagged, which is not in include/gpux/gpux.h: internal names start with gpux__' \
  'src/ops/kernel.c includes runtime/cache.h: ops may not include runtime' \
  'src/ops/kernel.c calls gpux__cache_get (src/runtime/cache.c): ops may not call into runtime' \
  'src/graph/optimize.c calls gpux__kernel (src/ops/kernel.c): graph may not call into ops' \
  'src/store/store.c includes spec/spec.h: store may not include spec' \
  'src/prepost/pre.c calls gpux__store_put (src/store/put.c): prepost may not call into store (sibling layers)' \
  'source files call each other in a circle: src/ops/a.c, src/ops/b.c' \
  'headers include each other in a circle: src/core/a.h, src/core/b.h' \
  'src/ops/names.c defines helper: make it static, or name it gpux__helper' \
  'src/ops/names.c defines gpux_secret, which is not in include/gpux/gpux.h: internal names start with gpux__' \
  'cli/main.c includes core/util.h: cli may include only the public API (gpux/gpux.h)' \
  'cli/main.c calls gpux__util (src/core/util.c): cli may call into only the public API (gpux/gpux.h)' \
  'src/core/orphan.h includes "nothere.h", which is not in the source tree' \
  'src/nowhere/x.c is in no layer (see LAYERS in check-layers.py)'

# A pending violation passes; a pending line that no longer occurs fails.
rm -rf "$tmp/tree"
put include/gpux/gpux.h <<'C'
int gpux_run(void);
C
put src/ops/kernel.c <<'C'
#include "runtime/cache.h"
int gpux_run(void) { return 0; }
C
put src/runtime/cache.h <<'C'
C
printf '# why\nsrc/ops/kernel.c includes runtime/cache.h: ops may not include runtime\n' > "$tmp/pending"
pending_arg="--pending $tmp/pending"
expect 0 'pending: src/ops/kernel.c includes runtime/cache.h: ops may not include runtime'
echo 'src/ops/x.c includes runtime/y.h: ops may not include runtime' >> "$tmp/pending"
expect 1 "$tmp/pending: no longer occurs, remove it from the list: src/ops/x.c includes runtime/y.h: ops may not include runtime"

[ "$fail" = 0 ] && echo "self-test: check-layers fails and passes where it should"
exit "$fail"
