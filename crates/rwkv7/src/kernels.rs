//! Kernel-set selection, with an environment override for A/B runs.

use rwkv7_kernels::{CpuFeatures, KernelSet};

/// Environment variable naming the kernel set to use (e.g. `scalar`).
pub const KERNELS_ENV: &str = "RWKV7_KERNELS";

/// The kernel set to run: `requested` (a flag), else `$RWKV7_KERNELS`, else the best
/// set this CPU supports. Unknown or unsupported names are an error listing the choices.
pub fn select_kernels(requested: Option<&str>) -> Result<KernelSet, String> {
    let cpu = CpuFeatures::detect();
    let from_env = std::env::var(KERNELS_ENV).ok().filter(|s| !s.is_empty());
    let Some(name) = requested.map(str::to_owned).or(from_env) else {
        return Ok(KernelSet::best(cpu));
    };
    KernelSet::by_name(cpu, &name).ok_or_else(|| {
        let choices: Vec<&str> = KernelSet::available(cpu).map(|k| k.name()).collect();
        format!("kernel set `{name}` is not available on this CPU (choices: {})", choices.join(", "))
    })
}
