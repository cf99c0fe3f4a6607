//! Board detection on sample /proc contents.

use rwkv7_pi::board::{Board, parse_cpuinfo, parse_model};

fn cpuinfo(parts: &[u16]) -> String {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {p:#05x}\nCPU revision\t: 3\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_device_tree_model_loses_its_nul_and_newline() {
    assert_eq!(parse_model(b"Raspberry Pi 5 Model B Rev 1.0\0").as_deref(), Some("Raspberry Pi 5 Model B Rev 1.0"));
    assert_eq!(parse_model(b"\0\n"), None);
}

#[test]
fn pi_boards_use_all_four_cores() {
    for (model, part, name) in [
        ("Raspberry Pi 3 Model B Plus Rev 1.3", 0xd03, "Cortex-A53"),
        ("Raspberry Pi 4 Model B Rev 1.4", 0xd08, "Cortex-A72"),
        ("Raspberry Pi 5 Model B Rev 1.0", 0xd0b, "Cortex-A76"),
    ] {
        let board = Board::parse(Some(format!("{model}\0").as_bytes()), &cpuinfo(&[part; 4]));
        assert_eq!(board.cores.len(), 4);
        assert_eq!(board.threads(4), 4, "{model}");
        assert_eq!(board.threads(2), 2, "an affinity mask of two cores wins");
        assert_eq!(board.core_summary(), format!("4× {name}"));
        assert_eq!(board.to_string(), format!("{model} (4× {name})"));
    }
}

#[test]
fn big_little_boards_use_the_big_cores() {
    // RK3588: 4× Cortex-A55 + 4× Cortex-A76.
    let board =
        Board::parse(Some(b"Radxa ROCK 5B\0"), &cpuinfo(&[0xd05, 0xd05, 0xd05, 0xd05, 0xd0b, 0xd0b, 0xd0b, 0xd0b]));
    assert_eq!(board.big_cores(), 4);
    assert_eq!(board.threads(8), 4);
    assert_eq!(board.core_summary(), "4× Cortex-A55 + 4× Cortex-A76");
    // All LITTLE: all of them.
    assert_eq!(Board::parse(None, &cpuinfo(&[0xd03; 4])).threads(8), 4);
}

#[test]
fn kernel_expectations_follow_the_cores() {
    let pi4 = Board::parse(None, &cpuinfo(&[0xd08; 4]));
    let pi5 = Board::parse(None, &cpuinfo(&[0xd0b; 4]));
    if cfg!(target_arch = "aarch64") {
        assert_eq!(pi4.expected_kernels(), Some("aarch64-neon"));
        assert_eq!(pi5.expected_kernels(), Some("aarch64-neon-dotprod"));
    } else if cfg!(target_arch = "arm") {
        assert_eq!(pi5.expected_kernels(), Some("scalar"));
    } else {
        assert_eq!(pi5.expected_kernels(), None);
    }
    assert_eq!(Board::parse(None, "").expected_kernels(), None);
}

#[test]
fn a_32_bit_kernel_and_an_x86_machine() {
    // Pi OS 32-bit on a Pi 4 names the part the same way.
    let armv7 = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\nprocessor\t: 1\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\nHardware\t: BCM2711\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
    let cores = parse_cpuinfo(armv7);
    assert_eq!(cores.len(), 2);
    assert_eq!(cores[0].name(), Some("Cortex-A72"));
    // x86: no CPU part lines, so the scheduler's count is used.
    let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n";
    let board = Board::parse(None, x86);
    assert!(board.cores.is_empty());
    assert_eq!(board.threads(2), 2);
    assert_eq!(board.threads(0), 1);
    // An unknown implementer is named by its numbers and counts as a big core.
    let other = Board::parse(None, "processor : 0\nCPU implementer : 0x61\nCPU part : 0x022\n");
    assert_eq!(other.core_summary(), "1× implementer 0x61 part 0x22");
    assert_eq!(other.threads(4), 1);
}
