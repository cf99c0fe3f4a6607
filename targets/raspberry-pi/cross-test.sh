#!/usr/bin/env bash
# The portable crates' tests for a Raspberry Pi CPU, cross-compiled and run under qemu-user:
# the kernels, the core, the end-to-end golden tests (on the kernel set that CPU gets) and
# rwkv7-pi's own tests (board detection, and the HTTP server on loopback).
#
#   targets/raspberry-pi/cross-test.sh aarch64-a72   # Pi 4 / Pi 3 (plain NEON), Pi OS 64-bit
#   targets/raspberry-pi/cross-test.sh aarch64-a76   # Pi 5 (NEON + dotprod), Pi OS 64-bit
#   targets/raspberry-pi/cross-test.sh aarch64-max   # every feature qemu has (dotprod, i8mm, ...)
#   targets/raspberry-pi/cross-test.sh armv7         # Pi OS 32-bit (scalar kernels)
#
# A second argument `quick` (what CI runs for armv7, where everything is a cold 32-bit
# build) builds once and runs the kernels' and the core's tests and the golden and
# demo-model end-to-end tests; it leaves out the quantization-quality and state-tuning
# tests and rwkv7-pi's (board detection and the server), which the other runs cover.
#
# tests/setup.sh installs the cross linkers, qemu-user and the Rust targets.
set -euo pipefail
cd "$(dirname "$0")/../.."

case "${1:-}" in
  aarch64-a72) target=aarch64-unknown-linux-gnu cpu=cortex-a72 set=aarch64-neon ;;
  aarch64-a76) target=aarch64-unknown-linux-gnu cpu=cortex-a76 set=aarch64-neon-dotprod ;;
  aarch64-max) target=aarch64-unknown-linux-gnu cpu=max set=aarch64-neon-dotprod ;;
  armv7) target=armv7-unknown-linux-gnueabihf cpu=cortex-a7 set=scalar ;;
  *)
    echo "usage: $0 aarch64-a72|aarch64-a76|aarch64-max|armv7 [quick]" >&2
    exit 2
    ;;
esac

case "$target" in
  aarch64-*) runner="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $cpu" ;;
  armv7-*) runner="qemu-arm -L /usr/arm-linux-gnueabihf -cpu $cpu" ;;
esac
runner_var="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_RUNNER"
export "$runner_var=$runner"
# The golden tests run only on the set this CPU gets, and fail if it is not detected.
export RWKV7_E2E_KERNELS="$set"

if [ "${2:-}" = quick ]; then
  cargo test -p rwkv7-kernels -p rwkv7-core -p rwkv7-e2e --features rwkv7-kernels/std --lib \
    --test elementwise --test matmul --test quant --test vecmath --test sampler --test tokenizer \
    --test golden --test demo_model --target "$target" --locked
else
  cargo test -p rwkv7-kernels --features std --target "$target" --locked
  cargo test -p rwkv7-core -p rwkv7-e2e -p rwkv7-pi --target "$target" --locked
fi
