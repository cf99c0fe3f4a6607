#!/usr/bin/env python3
"""Writes the llvm-mca inputs of tools/mca/run.sh into the directory given: the inner
loop of the Q8_0 and Q4_0 integer tiles, one group of 8 blocks x one token x one row,
in the AVX2 form and the VNNI (vpdpbusd) column form, written out by hand from
crates/rwkv7-kernels/src/arch/x86_64.rs and x86_64/vnni.rs.

Registers: the row's 4 prepared pairs in ymm0-7 (lo, hi halves; VNNI: its 8 columns),
the token's prepared pairs (VNNI: columns) at 0(%rsp) + 64*p (+32 for the high half),
its scales at 512(%rsp), its code offset at 640(%rsp), |w| for AVX2 Q8_0 at
1024(%rsp) + 64*p, ones (i16) in ymm14, the accumulator in ymm15.
"""
import sys
from pathlib import Path


def reduce(add):
    """The group reduction: 4 vectors (ymm8-11) to one (ymm8), by unpck and `add`."""
    out = []
    for a, b in ((8, 9), (10, 11)):
        out += [f"vpunpckldq %ymm{b}, %ymm{a}, %ymm12", f"vpunpckhdq %ymm{b}, %ymm{a}, %ymm13",
                f"{add} %ymm13, %ymm12, %ymm{a}"]
    out += ["vpunpcklqdq %ymm10, %ymm8, %ymm12", "vpunpckhqdq %ymm10, %ymm8, %ymm13", f"{add} %ymm13, %ymm12, %ymm8"]
    return out


def finish(offset):
    """The exact sums to the accumulator: (the Q4_0 offset,) convert, d_w*d_x, FMA."""
    sub = ["vpsubd 640(%rsp), %ymm8, %ymm8"] if offset else []
    return sub + ["vcvtdq2ps %ymm8, %ymm8", "vmulps 512(%rsp), %ymm14, %ymm12", "vfmadd231ps %ymm12, %ymm8, %ymm15"]


def per_pair(body):
    return [line for p in range(4) for line in body(p)]


TILES = {
    "q8_0-avx2": (
        "Q8_0, AVX2: per pair of blocks vpsignb, maddubs (|w|), madd with ones, twice, and an add",
        per_pair(lambda p: [
            f"vpsignb {64 * p}(%rsp), %ymm{2 * p}, %ymm12", f"vpsignb {64 * p + 32}(%rsp), %ymm{2 * p + 1}, %ymm13",
            f"vpmaddubsw {1024 + 64 * p}(%rsp), %ymm12, %ymm12", f"vpmaddubsw {1024 + 64 * p + 32}(%rsp), %ymm13, %ymm13",
            "vpmaddwd %ymm14, %ymm12, %ymm12", "vpmaddwd %ymm14, %ymm13, %ymm13", f"vpaddd %ymm13, %ymm12, %ymm{8 + p}"])
        + reduce("vpaddd") + finish(False),
    ),
    "q4_0-avx2": (
        "Q4_0, AVX2: per pair two maddubs of the nibbles and an i16 add; i16 reduction, one madd",
        per_pair(lambda p: [
            f"vpmaddubsw {64 * p}(%rsp), %ymm{2 * p}, %ymm12", f"vpmaddubsw {64 * p + 32}(%rsp), %ymm{2 * p + 1}, %ymm13",
            f"vpaddw %ymm13, %ymm12, %ymm{8 + p}"])
        + reduce("vpaddw") + ["vpmaddwd %ymm14, %ymm8, %ymm8"] + finish(True),
    ),
    "vnni": (
        "Q8_0 and Q4_0, VNNI: one vpdpbusd per column into one accumulator, no reduction",
        ["vpxor %ymm8, %ymm8, %ymm8"] + [f"vpdpbusd {32 * c}(%rsp), %ymm{c}, %ymm8" for c in range(8)]
        + finish(True),
    ),
}

if __name__ == "__main__":
    out = Path(sys.argv[1])
    for name, (what, lines) in TILES.items():
        (out / f"{name}.s").write_text(f"# {what}.\n" + "\n".join(lines) + "\n")
