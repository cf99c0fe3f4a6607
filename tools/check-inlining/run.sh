#!/usr/bin/env bash
# Fails if a release binary calls a SIMD intrinsic, or a closure of the kernels crate, out
# of line.
#
#   tools/check-inlining/run.sh BINARY [OBJDUMP]
#
# Why: an intrinsic is a function with a target feature. Inlined into a kernel compiled
# for AVX2 (or NEON) it is one instruction; left out of line in code that lacks the
# feature (a closure or a `core::array::from_fn` callback that LLVM did not inline:
# closures do not inherit the target features of the function that calls them) it is a
# call per operation. That made the AVX2 K-quant kernels 17-50x slower in a build with
# one codegen unit, while the default build, with 16 units, happened to inline them
# (KERNELS.md). Tests cannot see it: the results are the same bits.
#
# The binary needs its symbols (not stripped). `_xgetbv` is allowed: the run-time
# feature detection calls it once.
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
binary=$1
objdump=${2:-objdump}
calls=$("$objdump" -d -C --no-show-raw-insn "$binary" |
    grep -E '(call|bl)[[:space:]]+[0-9a-f]+ <(core::core_arch::|rwkv7_kernels::[^>]*\{\{closure\}\})' |
    grep -v '_xgetbv' || true)
if [ -z "$("$objdump" -t "$binary" | grep -m1 rwkv7_kernels || true)" ]; then
    echo "check-inlining: $binary has no rwkv7_kernels symbols (stripped?); nothing was checked" >&2
    exit 1
fi
if [ -n "$calls" ]; then
    echo "check-inlining: $binary calls intrinsics or kernel closures out of line:" >&2
    echo "$calls" | sed -E 's/.*(call|bl)[[:space:]]+[0-9a-f]+ //' | sort | uniq -c | sort -rn >&2
    exit 1
fi
echo "check-inlining: $binary: no out-of-line intrinsic or kernel closure calls"
