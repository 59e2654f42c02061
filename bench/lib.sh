# lib.sh — shell functions the bench/*.sh scripts source: unpacking the gpux build that
# bench/device-pack.sh packs, and the ratio column of their tables. device-pack.sh copies it into
# .gpuxdist/ next to them.

# unpack_gpux TARBALL DIR: unpacks a build packed by device-pack.sh into DIR (DIR/gpux/gpux, its
# libraries in DIR/gpux/lib), puts those libraries first on LD_LIBRARY_PATH and sets GPUX to the
# binary.
unpack_gpux() {
  mkdir -p "$2"
  tar xJf "$1" -C "$2"
  export LD_LIBRARY_PATH=$2/gpux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  GPUX=$2/gpux/gpux
}

# ratio A B [NONE]: A / B to two decimals, or NONE ("-" unless given) where B is empty or not above 0.
ratio() {
  awk -v a="${1:-0}" -v b="${2:-0}" -v none="${3:--}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print none }'
}
