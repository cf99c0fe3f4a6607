//! CPU capabilities that select kernel sets.

/// What the CPU can run. Fields are crate-private: outside this crate a value comes
/// only from compile-time configuration, runtime detection, or an `unsafe` promise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub(crate) avx2_fma_f16c: bool,
    /// AVX512-VNNI and AVX512-VL (the 256-bit EVEX `vpdpbusd`), with AVX2, FMA and F16C.
    pub(crate) avx512_vnni: bool,
    /// AVX-VNNI (the VEX `vpdpbusd`), with AVX2, FMA and F16C.
    pub(crate) avx_vnni: bool,
    pub(crate) dotprod: bool,
}

impl CpuFeatures {
    /// What the compilation target guarantees. Always sound.
    pub const fn compile_time() -> Self {
        let avx2_fma_f16c =
            cfg!(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma", target_feature = "f16c"));
        CpuFeatures {
            avx2_fma_f16c,
            avx512_vnni: avx2_fma_f16c
                && cfg!(all(target_feature = "avx512f", target_feature = "avx512vnni", target_feature = "avx512vl")),
            avx_vnni: avx2_fma_f16c && cfg!(target_feature = "avxvnni"),
            dotprod: cfg!(all(target_arch = "aarch64", target_feature = "dotprod")),
        }
    }

    /// Runtime detection (std only; Linux and Android alike).
    #[cfg(feature = "std")]
    pub fn detect() -> Self {
        #[allow(unused_mut)]
        let mut f = Self::compile_time();
        #[cfg(target_arch = "x86_64")]
        {
            f.avx2_fma_f16c |= std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c");
            // `avx512vl` and `avx512vnni` imply AVX512-F to the compiler, which may then use
            // any AVX512-F instruction in those bodies: ask for it too (every such CPU has it).
            f.avx512_vnni |= f.avx2_fma_f16c
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl");
            f.avx_vnni |= f.avx2_fma_f16c && std::arch::is_x86_feature_detected!("avxvnni");
        }
        #[cfg(target_arch = "aarch64")]
        {
            f.dotprod |= std::arch::is_aarch64_feature_detected!("dotprod");
        }
        f
    }

    /// A CPU with no optional features: only the scalar (and baseline) kernels.
    pub const fn baseline() -> Self {
        CpuFeatures { avx2_fma_f16c: false, avx512_vnni: false, avx_vnni: false, dotprod: false }
    }

    /// Whether AVX2, FMA and F16C are all available.
    pub fn has_avx2(&self) -> bool {
        self.avx2_fma_f16c
    }

    /// Whether the 256-bit AVX512-VNNI `vpdpbusd` is available (with AVX2, FMA and F16C).
    pub fn has_avx512_vnni(&self) -> bool {
        self.avx512_vnni
    }

    /// Whether the AVX-VNNI (VEX) `vpdpbusd` is available (with AVX2, FMA and F16C).
    pub fn has_avx_vnni(&self) -> bool {
        self.avx_vnni
    }

    /// Whether the Armv8.2 dot-product instructions are available.
    pub fn has_dotprod(&self) -> bool {
        self.dotprod
    }
}
