#!/usr/bin/env bash
# Static throughput estimates (llvm-mca's scheduling model, not a measurement) of the
# integer tiles' inner loop: one group of 8 blocks × one token × one row, in the AVX2
# form and the VNNI (`vpdpbusd`) form, for Q8_0 and Q4_0. The .s files are written out
# by hand from the tiles in crates/rwkv7-kernels/src/arch/x86_64.rs and x86_64/vnni.rs:
# the row's prepared pairs in ymm0-7, the token's prepared pairs and scales loaded from
# the stack, the accumulator in ymm15 (KERNELS.md, "VNNI sets").
#
#   tools/mca/run.sh [CPU]     (default icelake-server; llvm-mca from apt `llvm`)
set -euo pipefail
cd "$(dirname "$0")"
cpu=${1:-icelake-server}
mca=$(command -v llvm-mca || command -v llvm-mca-14 || true)
[ -n "$mca" ] || { echo "run.sh: llvm-mca not found (apt install llvm)" >&2; exit 1; }
printf '%-10s %s\n' "tile" "block reciprocal throughput (cycles), -mcpu=$cpu"
for f in q8_0-avx2 q8_0-vnni q4_0-avx2 q4_0-vnni; do
  rt=$("$mca" -mcpu="$cpu" -iterations=200 "$f.s" | awk '/Block RThroughput/ {print $3}')
  printf '%-10s %s\n' "$f" "$rt"
done
