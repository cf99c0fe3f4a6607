#!/usr/bin/env bash
# Static throughput estimates (llvm-mca's scheduling model, not a measurement) of the
# integer tiles' inner loop: one group of 8 blocks × one token × one row, in the AVX2
# form, for Q8_0 and Q4_0, and the VNNI (`vpdpbusd`) column form of both, as tiles.py writes them out
# (KERNELS.md, "VNNI sets").
#
#   tools/mca/run.sh [CPU]     (default icelake-server; llvm-mca from apt `llvm`)
set -euo pipefail
cd "$(dirname "$0")"
cpu=${1:-icelake-server}
mca=$(command -v llvm-mca || command -v llvm-mca-14 || true)
[ -n "$mca" ] || { echo "run.sh: llvm-mca not found (apt install llvm)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 tiles.py "$dir"
printf '%-10s %s\n' "tile" "block reciprocal throughput (cycles), -mcpu=$cpu"
for f in q8_0-avx2 q4_0-avx2 vnni; do
  rt=$("$mca" -mcpu="$cpu" -iterations=200 "$dir/$f.s" | awk '/Block RThroughput/ {print $3}')
  printf '%-10s %s\n' "$f" "$rt"
done
