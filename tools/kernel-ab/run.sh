#!/usr/bin/env bash
# Paired A/B timing of the matrix kernels: this work tree's rwkv7-kernels against the
# copy at a baseline revision, linked side by side and called alternately.
#
#   tools/kernel-ab/run.sh BASE_REV [--types q8_0,q4_k] [--shapes 768x768x1,4096x1024x64]
#                                   [--calls 200] [--kernels x86_64-avx2] [--same-bits]
#
# Why: on a shared machine criterion's time of one build moves by up to 50 % between
# runs, so two builds timed minutes apart cannot be compared. Called call by call in
# one process, both meet the same noise and their ratio holds still.
#
# Caveat: the two copies sit at different addresses, and a loop's alignment can move a
# kernel's time. An A/A run (the work tree equal to HEAD) gave the f16 and f32 products
# 1.14-1.21 (768x768x64 and x8, medians, repeated), the quantized ones 0.99-1.01; built
# with RUSTFLAGS="-C llvm-args=-align-loops=64" the same A/A run gave 0.99-1.02 for all.
# Run an A/A pass on the shapes in question before trusting a few per cent.
#
# The baseline is `git archive BASE_REV crates/rwkv7-kernels`, renamed
# rwkv7-kernels-base, under target/kernel-ab/base. Its manifest is written here with the
# dependencies the kernels crate has today (bytemuck, half, libm): a revision whose
# kernels crate needs others, or whose public API (Matrix, MatrixData, KernelSet::matmul,
# the quantizers) differs, does not build.
set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
base_rev=$1
shift
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=$root/target/kernel-ab
base=$out/base

rm -rf "$base"
mkdir -p "$base"
git -C "$root" archive "$base_rev" crates/rwkv7-kernels/src | tar -x -C "$base" --strip-components=2
cat > "$base/Cargo.toml" <<MANIFEST
# Written by tools/kernel-ab/run.sh: rwkv7-kernels at $base_rev.
[package]
name = "rwkv7-kernels-base"
version = "0.0.0"
edition = "2024"
publish = false
autobenches = false
autotests = false
autoexamples = false

[features]
std = []

[dependencies]
bytemuck = { version = "1", features = ["derive"] }
half = { version = "2", default-features = false }
libm = "0.2"

[lints.rust]
unsafe_op_in_unsafe_fn = "deny"

[workspace]
MANIFEST

cargo build --release -q --manifest-path "$root/tools/kernel-ab/Cargo.toml" --target-dir "$out/target"
echo "baseline: $base_rev ($(git -C "$root" rev-parse --short "$base_rev")); new: the work tree"
"$out/target/release/kernel-ab" "$@"
