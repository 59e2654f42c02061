#!/usr/bin/env bash
# cpu-host.sh — the CPU backend's whole measurement on the GPU machine's many-core CPU, against
# ONNX Runtime's CPU EP, in the order that matters most when a run is cut short (every step writes
# its own file under OUT, which comes back however far the run got): the three CNNs at 1 thread
# (5 rounds), the sigmoid epilogues' division against their reciprocal (GPUX_DIVIDE) on
# EfficientNet-B0, a base build against this one where bench/device-pack.sh packed one
# (GPUX_BASE), the three transformers at 1 thread (4 rounds), all six at the machine's thread
# count, then MobileNetV3's and EfficientNet-B0's layers at 1 thread. About 9 minutes on the
# 16-core host.
#
# Here:   bash bench/device-pack.sh      (GPUX_BASE=OTHER_BUILD/gpux to compare two builds)
# There:  bash .gpuxdist/cpu-host.sh     (OUT, default $OUT or /tmp/cpu-host; T, default nproc)
set -u
d=$(cd "$(dirname "$0")" && pwd)
[ -f "$d/../.devkit/activate.sh" ] && source "$d/../.devkit/activate.sh"
out=${OUT:-/tmp/cpu-host} models=/tmp/models t=${T:-$(nproc)}
mkdir -p "$out"
stamp() { echo "$(date -u +%T) $1" >> "$out/steps.txt"; }
lscpu > "$out/lscpu.txt"
stamp start
python3 "$d/export_models.py" "$models" mobilenet_v3_large efficientnet_b0 resnet50 > "$out/export.log" 2>&1
cnns=("$models/mobilenet_v3_large" "$models/efficientnet_b0" "$models/resnet50")
CHRT=1 THREADS=1 ROUNDS=5 RUNS=20 bash "$d/cpu-rounds.sh" "$d/gpux.tar.xz" "${cnns[@]}" > "$out/cnn-1t.txt" 2>&1
stamp "cnn 1t"
# cpu-rounds.sh unpacked this build into /opt/gpux; bench/ab-rounds.sh takes commands
wrap() { # wrap FILE LIBS BIN [ENV=VALUE]: a command running BIN with LIBS first on the library path
  printf '#!/bin/sh\nexport LD_LIBRARY_PATH=%s\n%s exec %s "$@"\n' "$2" "${4:-}" "$3" > "$1" && chmod +x "$1"
}
wrap /tmp/gpux-now /opt/gpux/gpux/lib /opt/gpux/gpux/gpux
wrap /tmp/gpux-div /opt/gpux/gpux/lib /opt/gpux/gpux/gpux GPUX_DIVIDE=div
wrap /tmp/gpux-rcp /opt/gpux/gpux/lib /opt/gpux/gpux/gpux GPUX_DIVIDE=rcp
THREADS=1 ROUNDS=6 RUNS=20 chrt -f 10 bash "$d/ab-rounds.sh" /tmp/gpux-div /tmp/gpux-rcp "$models/efficientnet_b0" > "$out/divide.txt" 2>&1
THREADS=$t ROUNDS=4 RUNS=20 chrt -f 10 bash "$d/ab-rounds.sh" /tmp/gpux-div /tmp/gpux-rcp "$models/efficientnet_b0" >> "$out/divide.txt" 2>&1
stamp divide
if [ -f "$d/gpux-base.tar.xz" ]; then
  mkdir -p /opt/gpux-base && tar xJf "$d/gpux-base.tar.xz" -C /opt/gpux-base
  wrap /tmp/gpux-base /opt/gpux/gpux/lib:/opt/gpux-base/gpux/lib /opt/gpux-base/gpux/gpux
  THREADS=1 ROUNDS=5 RUNS=20 chrt -f 10 bash "$d/ab-rounds.sh" /tmp/gpux-base /tmp/gpux-now "${cnns[@]}" > "$out/base.txt" 2>&1
  stamp base
fi
python3 "$d/export_models.py" "$models" bert_base vit_b_16 gpt2 >> "$out/export.log" 2>&1
tfs=("$models/bert_base" "$models/vit_b_16" "$models/gpt2")
CHRT=1 THREADS=1 ROUNDS=4 RUNS=8 bash "$d/cpu-rounds.sh" "$d/gpux.tar.xz" "${tfs[@]}" > "$out/tf-1t.txt" 2>&1
stamp "transformers 1t"
CHRT=1 THREADS=$t ROUNDS=3 RUNS=30 bash "$d/cpu-rounds.sh" "$d/gpux.tar.xz" "${cnns[@]}" > "$out/cnn-${t}t.txt" 2>&1
CHRT=1 THREADS=$t ROUNDS=3 RUNS=20 bash "$d/cpu-rounds.sh" "$d/gpux.tar.xz" "${tfs[@]}" > "$out/tf-${t}t.txt" 2>&1
stamp "all ${t}t"
THREADS=1 ROUNDS=2 RUNS=30 TOP=40 bash "$d/node-rounds.sh" "$d/gpux.tar.xz" "$models/mobilenet_v3_large" "$models/efficientnet_b0" > "$out/layers-1t.txt" 2>&1
stamp layers
tail -n 8 "$out"/cnn-1t.txt "$out"/divide.txt "$out"/tf-1t.txt "$out"/cnn-"${t}"t.txt "$out"/tf-"${t}"t.txt
[ -f "$out/base.txt" ] && cat "$out/base.txt"
exit 0
