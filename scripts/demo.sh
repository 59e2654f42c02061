#!/usr/bin/env bash
# demo.sh — `make demo`: renders a line of text with ImageMagick (DejaVu Sans), builds
# examples/ocr (PaddleOCR v4 recognition, a real pretrained model from npm) into the local image
# store, and reads the line back with `gpux run`, then times it with --repeat.
#   scripts/demo.sh [TEXT]      (GPUX=path/to/gpux, GPUX_HOME=store; defaults build/gpux, ~/.gpux)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gpux=${GPUX:-$root/build/gpux}
text=${1:-Hello from gpux 2025}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { printf '\n$ %s\n' "$*" | sed "s|$root/||g; s|$tmp/||g"; "$@"; }

convert -background white -fill black -font DejaVu-Sans -pointsize 32 label:"$text" \
        -bordercolor white -border 10 "$tmp/line.png"
printf 'Rendered "%s" into line.png (%s)\n' "$text" "$(identify -format '%wx%h' "$tmp/line.png")"
run "$gpux" build --allow-outside "$root/examples/ocr"
run "$gpux" run ocr --input "$tmp/line.png"
run "$gpux" run ocr --input "$tmp/line.png" --repeat 5
got=$("$gpux" run ocr --input "$tmp/line.png")
if [ "$got" = "$text" ]; then echo; echo "OK: gpux read back \"$got\""; else echo; echo "MISMATCH: got \"$got\", rendered \"$text\""; exit 1; fi
