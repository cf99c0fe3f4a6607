#!/usr/bin/env bash
# The whole test suite, as CI runs it. Usage: tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "no_std core for thumbv7em-none-eabihf (no allocator)"
cargo build -p rwkv7-core --target thumbv7em-none-eabihf --locked

step "tests (best kernel set of this CPU, and every other set it can run)"
cargo test --workspace --locked

step "tests with the scalar kernel set forced through RWKV7_KERNELS"
RWKV7_KERNELS=scalar cargo test --workspace --locked

step "tests on a CPU without AVX2 (qemu-x86_64 -cpu Westmere)"
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu Westmere" \
  cargo test --workspace --locked

step "kernels on aarch64 under qemu -cpu max (NEON and NEON+SDOT sets)"
cargo test -p rwkv7-kernels --features std --target aarch64-unknown-linux-gnu --locked

step "kernels on aarch64 under qemu -cpu cortex-a72 (no dotprod: plain NEON set)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72" \
  cargo test -p rwkv7-kernels --features std --target aarch64-unknown-linux-gnu --locked
