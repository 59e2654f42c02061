#!/usr/bin/env bash
# device-pack.sh — packs what the GPU benchmark machine needs from this machine into .gpuxdist/
# (git-ignored; send it with `.devkit`): the gpux binary built here with its shared libraries
# (the GPU machine has no Debian -dev packages to build with), the ONNX Runtime peer script and
# ../shared/tools/export_models.py, the generation benchmark's scripts and the Attention
# benchmark's, and the thread pool's (bench/pool-bench.sh, with pool-micro where it was built).
# Then run bench/device-bench.sh (or bench/generate-bench.sh, bench/attention-bench.sh,
# bench/pool-bench.sh) there. With GPUX_BASE=PATH a second gpux build (another commit, built the
# same way) is packed too, and timed in the same run as "gpux-base-*": the way to show what a
# change does to speed on the GPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist=$root/.gpuxdist
gpux=${GPUX:-$root/build/gpux}
[ -x "$gpux" ] || { echo "device-pack.sh: build gpux first (make)" >&2; exit 3; }
# git's own exclude file (a linked worktree's .git is a file; git knows where the file is)
exclude=$(git -C "$root" rev-parse --git-path info/exclude 2>/dev/null) || exclude=$root/.git/info/exclude
case $exclude in /*) ;; *) exclude=$root/$exclude ;; esac
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpuxdist/' "$exclude" 2>/dev/null || echo '/.gpuxdist/' >> "$exclude"
rm -rf "$dist" && mkdir -p "$dist"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gpux/lib"
cp "$gpux" "$work/gpux/gpux"
strip --strip-debug "$work/gpux/gpux"   # the kit, the project and this must fit 64 MiB together
# every shared library of BIN but the C library itself (the GPU machine's glibc is used: gpux needs 2.34)
libs_of() { ldd "$1" | awk '/=> \// {print $3}' | grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv)\.so'; }
libs_of "$gpux" | while read -r lib; do cp -L "$lib" "$work/gpux/lib/"; done
# the thread pool's micro-benchmark, where it was built (bench/pool-bench.sh runs it)
[ -x "$(dirname "$gpux")/pool-micro" ] && cp "$(dirname "$gpux")/pool-micro" "$work/gpux/" && strip --strip-debug "$work/gpux/pool-micro"
# the convolution shapes' benchmark, where it was built (CONV_SHAPES_THREADS=16 times each shape on 16 threads)
[ -x "$(dirname "$gpux")/conv-shapes" ] && cp "$(dirname "$gpux")/conv-shapes" "$work/gpux/" && strip --strip-debug "$work/gpux/conv-shapes"
(cd "$work" && tar cf - gpux | xz -T0 -9e > "$dist/gpux.tar.xz")
if [ -n "${GPUX_BASE:-}" ]; then
  rm -rf "$work/gpux" && mkdir -p "$work/gpux/lib"
  cp "$GPUX_BASE" "$work/gpux/gpux"
  strip --strip-debug "$work/gpux/gpux"
  [ -x "$(dirname "$GPUX_BASE")/pool-micro" ] && cp "$(dirname "$GPUX_BASE")/pool-micro" "$work/gpux/"
  # only the libraries the first build does not bring (the bench puts its lib/ after this one)
  libs_of "$GPUX_BASE" | while read -r lib; do ldd "$gpux" | grep -qF "$lib" || cp -L "$lib" "$work/gpux/lib/"; done
  (cd "$work" && tar cf - gpux | xz -T0 -6 > "$dist/gpux-base.tar.xz")
fi
cp "$root/bench/lib.sh" "$root/bench/attention-bench.sh" "$root/bench/attention-cases.py" "$dist/"
cp "$root/bench/peer.mjs" "$root/bench/device-bench.sh" "$root/bench/torch-peer.py" "$root/bench/device-table.py" \
   "$root/bench/whisper-export.py" "$root/bench/coldstart.py" "$root/bench/coldstart-bench.sh" "$root/bench/cnn-cpu-bench.sh" "$root/bench/pool-bench.sh" "$root/bench/node-rounds.sh" "$root/bench/node-times.py" "$root/bench/cpu-rounds.sh" "$root/bench/ab-rounds.sh" "$root/bench/cpu-host.sh" "$root/../shared/tools/export_models.py" "$dist/"
# the generation benchmark (bench/generate-bench.sh): its exporter and its ONNX Runtime and PyTorch peers,
# and gen-steps.py (what each decode step costs, from gpux's verbose log)
cp "$root/bench/generate-bench.sh" "$root/bench/generate-export.py" "$root/bench/generate-peer.mjs" \
  "$root/bench/generate-torch.py" "$root/bench/gen-steps.py" "$dist/"
# GEMM tuning: untuned and tuned images of the same cases (bench/tune-bench.sh)
cp "$root/bench/tune-bench.sh" "$dist/"
du -sh "$dist"
# what the device call carries: the tracked tree, .devkit and .gpuxdist, which must stay under its
# 64 MiB (a call with 66.8 MB in all was refused for its size, one with 63.8 MB was not)
kit=$(du -sbL "$root/.devkit" 2>/dev/null | cut -f1)
tree=$(git -C "$root" ls-files -z | (cd "$root" && xargs -0 du -cb 2>/dev/null) | awk '/\ttotal$/ {s += $1} END {print s + 0}')
all=$(( ${kit:-0} + tree + $(du -sb "$dist" | cut -f1) ))
echo "device-pack: the tree, .devkit and .gpuxdist come to $((all / 1000000)) MB"
[ "$all" -le 64000000 ] || echo "device-pack: warning: over 64 MB, which the device may refuse to carry (leave out GPUX_BASE, or slim .devkit)" >&2
