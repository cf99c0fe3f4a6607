#!/usr/bin/env bash
# Runs static x86_64 Linux programs on an emulated CPU with AVX-512 and AVX512-VNNI:
# Bochs (`tigerlake` model) boots a Debian kernel whose /init (init.c) runs them in order.
# No CPU here has VNNI, and qemu's TCG cannot execute it (7.2 and 10.0 raise SIGILL on
# vpdpbusd); Bochs 2.7 can, for the EVEX form (it has no AVX-VNNI, the VEX form).
#
#   tools/bochs/run.sh [-t SECONDS] EXE [ARGS...] [--- EXE [ARGS...]]...
#
# Prints each program's console output and exits with the first nonzero status (124 on
# timeout, 125 when the machine itself fails). A run takes about 2-3 minutes, nearly all
# of it the BIOS and the kernel booting. Needs the packages tests/setup.sh installs; the
# kernel is downloaded once into target/bochs.
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout_s=1800
if [ "${1:-}" = "-t" ]; then timeout_s=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: $0 [-t SECONDS] EXE [ARGS...] [--- EXE [ARGS...]]..." >&2; exit 125; }

cache=target/bochs
mkdir -p "$cache"
# The kernel: the version Debian's linux-image-amd64 points at, unpacked from its package.
if [ ! -s "$cache/vmlinuz" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || { echo "run.sh: no kernel package behind linux-image-amd64" >&2; exit 125; }
  rm -rf "$cache/kernel" && mkdir -p "$cache/kernel"
  (cd "$cache/kernel" && apt-get download "$pkg" >/dev/null 2>&1 && dpkg -x ./*.deb root)
  cp "$cache"/kernel/root/boot/vmlinuz-* "$cache/vmlinuz"
  rm -rf "$cache/kernel"
fi
[ "$cache/init" -nt tools/bochs/init.c ] || gcc -static -O2 -o "$cache/init" tools/bochs/init.c

work=$(mktemp -d "$PWD/$cache/run.XXXXXX")
bochs_pid=
cleanup() {
  [ -n "$bochs_pid" ] && kill -9 "$bochs_pid" 2>/dev/null
  [ -s "$work/bochs.pid" ] && kill -9 "$(cat "$work/bochs.pid")" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The initramfs: /init, and /run/N/{prog,args} per program (arguments NUL-separated).
root=$work/root
mkdir -p "$root"/{dev,proc,sys,tmp,run}
cp "$cache/init" "$root/init"
n=0
while [ $# -gt 0 ]; do
  [ -f "$1" ] || { echo "run.sh: no such program: $1" >&2; exit 125; }
  mkdir -p "$root/run/$n"
  cp "$1" "$root/run/$n/prog"
  shift
  : > "$root/run/$n/args"
  while [ $# -gt 0 ] && [ "$1" != "---" ]; do printf '%s\0' "$1" >> "$root/run/$n/args"; shift; done
  [ $# -gt 0 ] && shift
  n=$((n + 1))
done
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initrd.img"
rm -rf "$root"

# Kernel arguments. `clearcpuid=pku,xsaves,xsavec`: Bochs reports an XSAVE layout that
# Linux 6.1 rejects ("XSAVE consistency problem"), and then it turns off AVX and AVX-512
# altogether. Without the other cleared features and options the kernel hangs early on
# the `tigerlake` model (seen at 0.65 s guest time; `corei7_skylake_x` boots without).
kargs="console=ttyS0,115200 quiet loglevel=1 panic=-1 rdinit=/init nokaslr mitigations=off tsc=reliable"
kargs+=" nmi_watchdog=0 clearcpuid=pku,xsaves,xsavec,rdpid,umip,fsrm,md_clear,hwp,pln,pts,gfni,vaes,vpclmulqdq,sha_ni,split_lock_detect"
kargs+=" split_lock_detect=off nosmap nosmep intel_pstate=disable idle=poll nopcid noinvpcid lsm=capability"

# A CD image booted by isolinux.
iso=$work/iso
mkdir -p "$iso/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
cp "$cache/vmlinuz" "$iso/vmlinuz"
mv "$work/initrd.img" "$iso/initrd.img"
printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd.img %s\n' "$kargs" \
  > "$iso/isolinux/isolinux.cfg"
xorriso -as mkisofs -quiet -o "$work/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table "$iso" 2>"$work/xorriso.log" || { cat "$work/xorriso.log" >&2; exit 125; }
rm -rf "$iso"

cat > "$work/bochsrc" <<CFG
megs: 512
cpu: model=tigerlake, count=1, ips=100000000, reset_on_triple_fault=0, ignore_bad_msrs=1
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
display_library: term
ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14
ata0-master: type=cdrom, path=$work/boot.iso, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=$work/serial.out
clock: sync=none, time0=local
mouse: enabled=0
log: $work/bochs.log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
CFG
: > "$work/serial.out"
# Debian's Bochs has the internal debugger, which stops before the first instruction:
# `c` continues. The `term` display needs a terminal: script(1) gives it one.
printf 'c\n' > "$work/dbg.rc"
TERM=xterm setsid script -qfec "echo \$\$ > '$work/bochs.pid'; exec bochs-bin -q -f '$work/bochsrc' -rc '$work/dbg.rc' </dev/null" \
  /dev/null >/dev/null 2>&1 </dev/null &
bochs_pid=$!
disown "$bochs_pid" # no "Killed" notice when cleanup() stops it
start=$SECONDS
while ! grep -aq '@@BOCHS-RUN-EXIT@@' "$work/serial.out"; do
  if ! kill -0 "$bochs_pid" 2>/dev/null || ((SECONDS - start > timeout_s)); then
    tr -d '\r' < "$work/serial.out" | tail -n 40
    echo "run.sh: no exit marker after $((SECONDS - start)) s; bochs.log ends:" >&2
    tail -n 20 "$work/bochs.log" >&2
    kill -0 "$bochs_pid" 2>/dev/null && exit 124
    exit 125
  fi
  sleep 1
done
tr -d '\r' < "$work/serial.out" | sed -n '/@@BOCHS-RUN-START@@/,$p'
status=$(tr -d '\r' < "$work/serial.out" | awk '/@@BOCHS-RUN-EXIT@@/ {print $2}')
echo "run.sh: $((SECONDS - start)) s in Bochs; first failure status $status"
exit "$status"
