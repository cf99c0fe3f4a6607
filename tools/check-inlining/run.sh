#!/usr/bin/env bash
# Fails if a release binary calls a SIMD intrinsic, or a closure of the kernels' ISA
# code, out of line.
#
#   tools/check-inlining/run.sh BINARY [OBJDUMP]    (OBJDUMP for the binary's architecture)
#
# Why: an intrinsic is a function with a target feature. Inlined into a kernel compiled
# for AVX2 (or NEON) it is one instruction; left out of line in code that lacks the
# feature (a closure or a `core::array::from_fn` callback that LLVM did not inline:
# closures do not inherit the target features of the function that calls them) it is a
# call per operation. That made the AVX2 K-quant kernels 17-50x slower in a build with
# one codegen unit, while the default build, with 16 units, happened to inline them
# (crates/rwkv7-kernels/KERNELS.md). Tests cannot see it: the results are the same bits.
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
symbols=$("$objdump" -t "$binary")
if ! grep -q 'rwkv7_kernels' <<<"$symbols"; then
    echo "check-inlining: $binary has no rwkv7_kernels symbols (stripped?); nothing was checked" >&2
    exit 1
fi
listing=$(mktemp)
trap 'rm -f "$listing"' EXIT
# A failed disassembly (say, the host's objdump on an aarch64 file) stops the script
# here rather than leaving nothing to match.
"$objdump" -d -C --no-show-raw-insn "$binary" >"$listing"
if ! grep -q -E '(callq?|bl)[[:space:]]+[0-9a-f]+ <' "$listing"; then
    echo "check-inlining: $objdump found no calls in $binary (wrong architecture?)" >&2
    exit 1
fi
# Calls and tail jumps (x86 call/jmp, aarch64 bl/b) to an intrinsic or to a closure of
# the ISA code, in both closure spellings (`{{closure}}` and v0's `{closure#0}`).
target='(core::core_arch::|rwkv7_kernels::arch::.*\{(\{closure\}|closure#[0-9]+)\})'
calls=$(grep -E "(callq?|jmpq?|bl?)[[:space:]]+[0-9a-f]+ <.*$target" "$listing" | grep -v '_xgetbv' || true)
if [ -n "$calls" ]; then
    echo "check-inlining: $binary calls intrinsics or kernel closures out of line:" >&2
    echo "$calls" | sed -E 's/.*(callq?|jmpq?|bl?)[[:space:]]+[0-9a-f]+ //; s/\+0x[0-9a-f]+>/>/' | sort | uniq -c | sort -rn >&2
    exit 1
fi
echo "check-inlining: $binary: no out-of-line intrinsic or kernel closure calls"
