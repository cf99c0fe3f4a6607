# Q4_0, VNNI (not adopted): per pair two vpdpbusd from zero; the i32 reduction, the offset, convert, scale, FMA.
# One group of 8 blocks x one token x one row (tools/mca/run.sh).
vpxor %ymm8, %ymm8, %ymm8
vpdpbusd 0(%rsp), %ymm0, %ymm8
vpdpbusd 32(%rsp), %ymm1, %ymm8
vpxor %ymm9, %ymm9, %ymm9
vpdpbusd 64(%rsp), %ymm2, %ymm9
vpdpbusd 96(%rsp), %ymm3, %ymm9
vpxor %ymm10, %ymm10, %ymm10
vpdpbusd 128(%rsp), %ymm4, %ymm10
vpdpbusd 160(%rsp), %ymm5, %ymm10
vpxor %ymm11, %ymm11, %ymm11
vpdpbusd 192(%rsp), %ymm6, %ymm11
vpdpbusd 224(%rsp), %ymm7, %ymm11
vpunpckldq %ymm9, %ymm8, %ymm12
vpunpckhdq %ymm9, %ymm8, %ymm13
vpaddd %ymm13, %ymm12, %ymm8
vpunpckldq %ymm11, %ymm10, %ymm12
vpunpckhdq %ymm11, %ymm10, %ymm13
vpaddd %ymm13, %ymm12, %ymm10
vpunpcklqdq %ymm10, %ymm8, %ymm12
vpunpckhqdq %ymm10, %ymm8, %ymm13
vpaddd %ymm13, %ymm12, %ymm8
vpsubd 640(%rsp), %ymm8, %ymm8
vcvtdq2ps %ymm8, %ymm8
vmulps 512(%rsp), %ymm14, %ymm12
vfmadd231ps %ymm12, %ymm8, %ymm15
