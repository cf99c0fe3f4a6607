#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, and nothing that is
# already there: the pinned Rust toolchain (rust-toolchain.toml), the no_std target,
# qemu-user (qemu-x86_64 runs the suite on a CPU without AVX2, qemu-aarch64 runs the
# kernels, the core and the end-to-end tests on emulated Arm CPUs, qemu-arm the armv7
# ones), and the aarch64 and armv7 cross linkers and libcs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v qemu-x86_64 >/dev/null || need_apt+=(qemu-user)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
# libc6-dev-arm64-cross is only a Recommends of the cross gcc: name it, or linking fails.
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
[ -e /usr/aarch64-linux-gnu/lib/crt1.o ] || need_apt+=(libc6-dev-arm64-cross)
# tools/check-inlining disassembles the x86_64 and aarch64 release binaries.
command -v objdump >/dev/null || need_apt+=(binutils)
command -v aarch64-linux-gnu-objdump >/dev/null || need_apt+=(binutils-aarch64-linux-gnu)
# Raspberry Pi OS 32-bit (armv7): the cross gcc and its libc, run under qemu-arm.
command -v arm-linux-gnueabihf-gcc >/dev/null || need_apt+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
[ -e /usr/arm-linux-gnueabihf/lib/crt1.o ] || need_apt+=(libc6-dev-armhf-cross)
command -v qemu-arm >/dev/null || need_apt+=(qemu-user)
# tools/bochs/run.sh: the AVX512-VNNI set's kernel tests on an emulated Tiger Lake (Bochs
# boots a Debian kernel from a CD image; the tests are static musl binaries).
command -v bochs-bin >/dev/null || need_apt+=(bochs bochsbios vgabios bochs-term)
[ -e /usr/lib/ISOLINUX/isolinux.bin ] || need_apt+=(isolinux)
[ -e /usr/lib/syslinux/modules/bios/ldlinux.c32 ] || need_apt+=(syslinux-common)
command -v xorriso >/dev/null || need_apt+=(xorriso)
command -v cpio >/dev/null || need_apt+=(cpio)
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
# The Android JNI layer's host tests (targets/android/test-host.sh) compile Java with javac 17.
command -v javac >/dev/null || need_apt+=(openjdk-17-jdk-headless)
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# rustup reads rust-toolchain.toml and installs the pinned toolchain on first use.
rustup show active-toolchain >/dev/null
installed=$(rustup target list --installed)
# Raspberry Pi: aarch64 (glibc and static musl) and armv7 (targets/raspberry-pi/README.md).
for target in thumbv7em-none-eabihf aarch64-unknown-linux-gnu aarch64-unknown-linux-musl \
  armv7-unknown-linux-gnueabihf; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
# The kernel tests that run under Bochs (tools/bochs/run.sh) are static musl binaries.
grep -qx x86_64-unknown-linux-musl <<<"$installed" || rustup target add x86_64-unknown-linux-musl
# Android: cargo check and a staticlib build only; without an NDK a cdylib cannot link
# (targets/android/README.md).
for target in aarch64-linux-android armv7-linux-androideabi x86_64-linux-android; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
