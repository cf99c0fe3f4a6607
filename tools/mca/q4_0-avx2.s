# Q4_0, AVX2: per pair two maddubs of the nibbles and an i16 add; the i16 reduction, one madd, the 8*sum(x) offset, convert, scale, FMA.
# One group of 8 blocks x one token x one row (tools/mca/run.sh).
vpmaddubsw 0(%rsp), %ymm0, %ymm12
vpmaddubsw 32(%rsp), %ymm1, %ymm13
vpaddw %ymm13, %ymm12, %ymm8
vpmaddubsw 64(%rsp), %ymm2, %ymm12
vpmaddubsw 96(%rsp), %ymm3, %ymm13
vpaddw %ymm13, %ymm12, %ymm9
vpmaddubsw 128(%rsp), %ymm4, %ymm12
vpmaddubsw 160(%rsp), %ymm5, %ymm13
vpaddw %ymm13, %ymm12, %ymm10
vpmaddubsw 192(%rsp), %ymm6, %ymm12
vpmaddubsw 224(%rsp), %ymm7, %ymm13
vpaddw %ymm13, %ymm12, %ymm11
vpunpckldq %ymm9, %ymm8, %ymm12
vpunpckhdq %ymm9, %ymm8, %ymm13
vpaddw %ymm13, %ymm12, %ymm8
vpunpckldq %ymm11, %ymm10, %ymm12
vpunpckhdq %ymm11, %ymm10, %ymm13
vpaddw %ymm13, %ymm12, %ymm10
vpunpcklqdq %ymm10, %ymm8, %ymm12
vpunpckhqdq %ymm10, %ymm8, %ymm13
vpaddw %ymm13, %ymm12, %ymm8
vpmaddwd %ymm14, %ymm8, %ymm8
vpsubd 640(%rsp), %ymm8, %ymm8
vcvtdq2ps %ymm8, %ymm8
vmulps 512(%rsp), %ymm14, %ymm12
vfmadd231ps %ymm12, %ymm8, %ymm15
