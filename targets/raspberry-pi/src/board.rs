//! Which board this is and how many threads to run: parsed from `/proc/device-tree/model`
//! and `/proc/cpuinfo` by pure functions (tested on sample contents), read by [`detect`].

use std::fmt;

/// One core kind, from the `CPU implementer` / `CPU part` pair of `/proc/cpuinfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreKind {
    /// `CPU implementer` (0x41 is Arm).
    pub implementer: u16,
    /// `CPU part`.
    pub part: u16,
}

/// Arm cores found on single-board computers: part number, name, whether it is a small
/// in-order ("LITTLE") core, and whether it has the dot-product instructions (Armv8.2+).
const ARM_CORES: &[(u16, &str, bool, bool)] = &[
    (0xb76, "ARM1176", true, false),
    (0xc07, "Cortex-A7", true, false),
    (0xc08, "Cortex-A8", true, false),
    (0xc09, "Cortex-A9", false, false),
    (0xc0f, "Cortex-A15", false, false),
    (0xd03, "Cortex-A53", true, false),
    (0xd04, "Cortex-A35", true, false),
    (0xd05, "Cortex-A55", true, true),
    (0xd07, "Cortex-A57", false, false),
    (0xd08, "Cortex-A72", false, false),
    (0xd09, "Cortex-A73", false, false),
    (0xd0a, "Cortex-A75", false, true),
    (0xd0b, "Cortex-A76", false, true),
    (0xd0d, "Cortex-A77", false, true),
    (0xd41, "Cortex-A78", false, true),
    (0xd44, "Cortex-X1", false, true),
    (0xd46, "Cortex-A510", true, true),
    (0xd47, "Cortex-A710", false, true),
    (0xd4d, "Cortex-A715", false, true),
    (0xd48, "Cortex-X2", false, true),
];

const ARM: u16 = 0x41;

impl CoreKind {
    fn known(&self) -> Option<(&'static str, bool, bool)> {
        if self.implementer != ARM {
            return None;
        }
        ARM_CORES.iter().find(|c| c.0 == self.part).map(|c| (c.1, c.2, c.3))
    }

    /// Whether the core has the dot-product instructions (SDOT/UDOT).
    pub fn has_dotprod(&self) -> bool {
        self.known().is_some_and(|k| k.2)
    }

    /// The core's name, e.g. `Cortex-A76`, if known.
    pub fn name(&self) -> Option<&'static str> {
        self.known().map(|k| k.0)
    }

    /// Whether this is a small in-order core (A53, A55, A7, …).
    pub fn is_little(&self) -> bool {
        self.known().is_some_and(|k| k.1)
    }
}

impl fmt::Display for CoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "implementer {:#x} part {:#x}", self.implementer, self.part),
        }
    }
}

/// What was learnt about the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// The device-tree model, e.g. `Raspberry Pi 5 Model B Rev 1.0`.
    pub model: Option<String>,
    /// The kind of each processor listed in `/proc/cpuinfo` (empty where it names none,
    /// e.g. on x86).
    pub cores: Vec<CoreKind>,
}

/// Parses the device-tree model file (NUL-terminated, may end with newlines).
pub fn parse_model(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!text.is_empty()).then(|| text.to_string())
}

fn parse_hex(value: &str) -> Option<u16> {
    let value = value.trim();
    let digits = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X"))?;
    u16::from_str_radix(digits, 16).ok()
}

/// The core kind of every `processor` block of `/proc/cpuinfo` that names its part. The
/// implementer, when a block omits it, is taken from the previous block (or Arm).
pub fn parse_cpuinfo(text: &str) -> Vec<CoreKind> {
    let mut cores = Vec::new();
    let mut implementer = ARM;
    for block in text.split("\n\n") {
        let mut part = None;
        for line in block.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            match key.trim() {
                "CPU implementer" => implementer = parse_hex(value).unwrap_or(implementer),
                "CPU part" => part = parse_hex(value),
                _ => {}
            }
        }
        if let Some(part) = part {
            cores.push(CoreKind { implementer, part });
        }
    }
    cores
}

impl Board {
    /// The board from the two files' contents.
    pub fn parse(model: Option<&[u8]>, cpuinfo: &str) -> Board {
        Board { model: model.and_then(parse_model), cores: parse_cpuinfo(cpuinfo) }
    }

    /// The cores to run on: the big ones when the board mixes big and LITTLE cores, else all.
    pub fn big_cores(&self) -> usize {
        let big = self.cores.iter().filter(|c| !c.is_little()).count();
        if big > 0 { big } else { self.cores.len() }
    }

    /// Threads to run: one per big core (all cores when they are alike), at most
    /// `available` (what the scheduler lets this process use), at least one. Without core
    /// information, `available`.
    pub fn threads(&self, available: usize) -> usize {
        let available = available.max(1);
        if self.cores.is_empty() { available } else { self.big_cores().clamp(1, available) }
    }

    /// The cores as `4× Cortex-A76` or `4× Cortex-A55 + 4× Cortex-A76`.
    pub fn core_summary(&self) -> String {
        let mut kinds: Vec<(CoreKind, usize)> = Vec::new();
        for core in &self.cores {
            match kinds.iter_mut().find(|k| k.0 == *core) {
                Some(k) => k.1 += 1,
                None => kinds.push((*core, 1)),
            }
        }
        if kinds.is_empty() {
            return "cores not listed".to_string();
        }
        kinds.iter().map(|(k, n)| format!("{n}× {k}")).collect::<Vec<_>>().join(" + ")
    }

    /// The kernel set this board's cores should get: dotprod from the Cortex-A76 (Pi 5)
    /// on (when every core has it), plain NEON on the A53/A72 (Pi 3, Pi 4) in 64-bit mode,
    /// scalar in 32-bit mode. `None` off Arm or without core information.
    pub fn expected_kernels(&self) -> Option<&'static str> {
        if self.cores.is_empty() {
            return None;
        }
        let dotprod = self.cores.iter().all(CoreKind::has_dotprod);
        if cfg!(target_arch = "aarch64") {
            Some(if dotprod { "aarch64-neon-dotprod" } else { "aarch64-neon" })
        } else if cfg!(target_arch = "arm") {
            Some("scalar")
        } else {
            None
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.model.as_deref().unwrap_or("unknown board"), self.core_summary())
    }
}

/// Reads the board from `/proc` (missing files give an unknown board).
pub fn detect() -> Board {
    let model = std::fs::read("/proc/device-tree/model").ok();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Board::parse(model.as_deref(), &cpuinfo)
}

/// The number of processors this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
