#!/usr/bin/env bash
# The whole test suite, as CI runs it. Usage: tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh

# Each step's header says when it starts (bash's SECONDS counts from this script's
# start, tests/setup.sh included), so a CI log shows where its time goes.
step() { printf '\n==> %s  [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

# Disk: a CI machine once ran out of space part-way through this script (the build
# directories of all targets together took 7.8 GB). Line tables keep panics' backtraces
# readable at a fraction of full debug info's size, incremental caches are of no use to a
# one-shot build, and each cross target's directory is removed once its last step is done.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
step "free disk space at the start"
df -h .
# Removes a target's build directory once no later step needs it.
drop_build_dir() {
  rm -rf "target/$1"
  df -h . | tail -n 1
}

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

# The paired A/B kernel timer (tools/kernel-ab) links a copy of the kernels crate at a
# revision next to the work tree's; here the copy is HEAD's, a few calls per shape, so
# that the harness keeps building against the kernels' API and runs every type.
step "kernel-ab: builds against HEAD's kernels and runs every storage type"
tools/kernel-ab/run.sh HEAD --calls 3 --types f32,f16,q8_0,q4_0,q4_k,q5_k,q6_k --shapes 64x256x1,32x512x8
cargo fmt --manifest-path tools/kernel-ab/Cargo.toml -- --check
cargo clippy --manifest-path tools/kernel-ab/Cargo.toml --target-dir target/kernel-ab/target -- -D warnings

# Intrinsics must be inlined into the kernels whatever the codegen-unit split: the
# release binary built with one codegen unit (as LTO profiles are) must not call an
# intrinsic or a kernel closure out of line (tools/check-inlining/run.sh says why).
step "x86_64 release binary with one codegen unit: every intrinsic inlined"
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 cargo build --release --bin rwkv7 --locked --target-dir target/one-cgu
tools/check-inlining/run.sh target/one-cgu/release/rwkv7
drop_build_dir one-cgu

# The command-line tools' integration tests start the tools' binaries as child processes:
# those run natively (with AVX2), so under the emulator they check nothing new, and a
# fork inside an emulated multi-threaded test process can deadlock in qemu-user (seen
# here: a child stuck in a futex for 20 minutes). The tools' unit tests still run here.
step "tests on a CPU without AVX2 (qemu-x86_64 -cpu Westmere)"
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu Westmere" \
  cargo test --workspace --locked --exclude rwkv7-cli --exclude rwkv7-quant
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu Westmere" \
  cargo test -p rwkv7-cli -p rwkv7-quant --locked --lib --bins

# qemu cannot execute VNNI (its TCG raises SIGILL on vpdpbusd); Bochs can, for the EVEX
# form. The kernels' VNNI tests and Q8_0 and Q4_0 products run there on all x86 sets, and the log
# must show the x86_64-avx512vnni set exercised (a kernel that turned AVX-512 off would
# otherwise let them pass on the other sets alone).
step "kernels on an emulated Tiger Lake (Bochs): the AVX512-VNNI set"
bochs_build=(cargo test -p rwkv7-kernels --features std --locked --release --target x86_64-unknown-linux-musl
  --no-run --lib --test matmul)
export CC_x86_64_unknown_linux_musl=musl-gcc
"${bochs_build[@]}"
# The same command again, now a no-op, for the binaries' paths (teeing the first one's
# output to /dev/stderr would reopen, and truncate, a log file that stderr goes to).
bochs_bins=$("${bochs_build[@]}" 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p')
bochs_log=$(mktemp)
tools/bochs/run.sh "$(grep /rwkv7_kernels- <<<"$bochs_bins")" vnni each_x86_set --nocapture \
  --- "$(grep /matmul- <<<"$bochs_bins")" vnni matmul_q8_0 matmul_q4_0 matmul_block_quant_exact --nocapture | tee "$bochs_log"
if ! grep -q "vnni vs avx2: kernel sets exercised: x86_64-avx512vnni" "$bochs_log" ||
  grep -q "SKIPPED: no AVX512-VNNI" "$bochs_log"; then
  echo "the x86_64-avx512vnni set did not run under Bochs" >&2
  exit 1
fi
rm -f "$bochs_log"
drop_build_dir x86_64-unknown-linux-musl

step "kernels on aarch64 under qemu -cpu max (NEON and NEON+SDOT sets)"
cargo test -p rwkv7-kernels --features std --target aarch64-unknown-linux-gnu --locked

# The end-to-end tests (golden fixtures via CARGO_MANIFEST_DIR, which the qemu-run test
# binaries read from the host tree) under emulation, 20-35x slower than native. Each
# qemu run gives the golden tests only the set no other step covers: scalar runs
# natively and under Westmere above, NEON+SDOT under -cpu max, plain NEON under
# cortex-a72 (RWKV7_E2E_KERNELS fails the run if the named set is not detected).
step "core and end-to-end tests on aarch64 under qemu -cpu max (golden tests on the NEON+SDOT set)"
RWKV7_E2E_KERNELS=aarch64-neon-dotprod \
  cargo test -p rwkv7-core -p rwkv7-e2e --target aarch64-unknown-linux-gnu --locked

step "kernels on aarch64 under qemu -cpu cortex-a72 (no dotprod: plain NEON set)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72" \
  cargo test -p rwkv7-kernels --features std --target aarch64-unknown-linux-gnu --locked

step "core and end-to-end tests on aarch64 under qemu -cpu cortex-a72 (golden tests on the plain NEON set)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72" \
  RWKV7_E2E_KERNELS=aarch64-neon \
  cargo test -p rwkv7-core -p rwkv7-e2e --target aarch64-unknown-linux-gnu --locked

# Raspberry Pi (targets/raspberry-pi/cross-test.sh): the Pi 5's Cortex-A76 (NEON+SDOT set,
# which must be detected) with rwkv7-pi's board and HTTP-server tests under emulation, and
# 32-bit Pi OS (armv7, scalar set) with the kernels, core, golden and demo-model tests.
step "Raspberry Pi 5: kernels, core, end-to-end and rwkv7-pi tests on aarch64 under qemu -cpu cortex-a76"
targets/raspberry-pi/cross-test.sh aarch64-a76

step "aarch64 release-pi binary (fat LTO, one codegen unit): every intrinsic inlined"
CARGO_PROFILE_RELEASE_PI_STRIP=none \
  cargo build --profile release-pi -p rwkv7-pi --target aarch64-unknown-linux-gnu --locked
tools/check-inlining/run.sh target/aarch64-unknown-linux-gnu/release-pi/rwkv7-pi aarch64-linux-gnu-objdump

drop_build_dir aarch64-unknown-linux-gnu

step "Raspberry Pi OS 32-bit: kernels, core, golden and demo-model tests on armv7 under qemu-arm"
targets/raspberry-pi/cross-test.sh armv7 quick
drop_build_dir armv7-unknown-linux-gnueabihf

# No NDK can be had here, so no Android .so: check and build the static library instead
# (the cdylib's link needs the NDK's crt and libs; targets/android/README.md).
step "Android JNI crate: cargo check for aarch64/armv7/x86_64-linux-android"
cargo check -p rwkv7-android --target aarch64-linux-android --target armv7-linux-androideabi \
  --target x86_64-linux-android --locked
for target in aarch64-linux-android armv7-linux-androideabi x86_64-linux-android; do
  step "Android JNI crate: staticlib for $target"
  cargo rustc -p rwkv7-android --lib --crate-type staticlib --target "$target" --locked
  drop_build_dir "$target"
done

step "Android JNI layer on the host JVM with -Xcheck:jni (Java; Kotlin when kotlinc can be had)"
targets/android/test-host.sh

step "all steps passed"
