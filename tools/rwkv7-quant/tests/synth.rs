//! `synth`: random checkpoints of the released layout convert, load and run, give finite
//! logits that depend on the input, and are reproducible from the seed.

use rwkv7::{LoadedModel, Runner, ThreadPool};
use rwkv7_kernels::{CpuFeatures, KernelSet};
use rwkv7_quant::synth::{ShapeDims, synth_dims};
use rwkv7_quant::{ConvertOptions, InputFormat, OutType, convert_checkpoint};

/// A 2-layer model with the layout of the released ones (C = 128: two heads of 64).
const SMALL: ShapeDims =
    ShapeDims { n_layer: 2, n_embd: 128, decay_rank: 32, iclr_rank: 32, value_rank: 32, gate_rank: 64 };

#[test]
fn synthetic_models_run_and_are_reproducible() {
    // The file name becomes `general.name`, so every file is `m.gguf` in its own directory.
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let write = |seed: u64, dir: &tempfile::TempDir| {
        let ckpt = synth_dims(SMALL, 1000, seed).unwrap();
        let path = dir.path().join("m.gguf");
        convert_checkpoint(&ckpt, InputFormat::Synthetic, &path, None, &path, &ConvertOptions::new(OutType::Q8_0))
            .unwrap();
        std::fs::read(&path).unwrap()
    };
    let a = write(1, &dirs[0]);
    assert!(a == write(1, &dirs[1]), "same seed, same file");
    assert!(a != write(2, &dirs[2]), "another seed, other weights");

    let model = LoadedModel::open(dirs[0].path().join("m.gguf")).unwrap();
    assert_eq!(model.hparams().n_embd, 128);
    let mut runner = Runner::with_pool(&model, KernelSet::best(CpuFeatures::detect()), 8, ThreadPool::single());
    let logits = runner.logits_seq(&[1, 500, 999]).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()), "random weights must not produce NaN or infinity");
    let (first, last) = (&logits[..1000], &logits[2000..]);
    assert!(first.iter().zip(last).any(|(x, y)| (x - y).abs() > 1e-3), "logits must depend on the input");
}

/// The output goes through a temporary file renamed over it, so a symbolic link keeps
/// pointing at the (new) model, and a device or FIFO is refused, never replaced.
#[cfg(unix)]
#[test]
fn output_through_a_link_replaces_its_target_and_special_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = synth_dims(SMALL, 1000, 1).unwrap();
    let convert = |path: &std::path::Path| {
        convert_checkpoint(&ckpt, InputFormat::Synthetic, path, None, path, &ConvertOptions::new(OutType::Q8_0))
    };
    let target = dir.path().join("m.gguf");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link.gguf");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    convert(&link).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert!(LoadedModel::open(&target).is_ok(), "the link's target holds the model");

    let fifo = dir.path().join("fifo.gguf");
    match std::process::Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => {
            let err = format!("{:#}", convert(&fifo).unwrap_err());
            assert!(err.contains("not a regular file"), "{err}");
            use std::os::unix::fs::FileTypeExt;
            assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
        }
        _ => eprintln!("SKIPPED: the FIFO case (no mkfifo here)"),
    }
}
