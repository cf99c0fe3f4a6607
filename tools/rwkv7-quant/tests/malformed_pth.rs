//! A corpus of malformed `.pth` checkpoints, each of which must make `rwkv7-quant
//! quantize` exit with status 1 and a one-line message naming the file and the problem,
//! never a panic (exit 101) or a signal, and never touch an existing output file.
//! The corpus is built from the committed golden fixture `h1_l3_bf16/model.pth`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rwkv7_quant::checkpoint::Bytes;
use rwkv7_quant::pth::read_pth;
use rwkv7_quant::pth_write::{Spec, build_zip, pickle_for, specs_for};
use rwkv7_quant::{DType, Tensor};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/h1_l3_bf16/model.pth")
}

/// The fixture's tensors as writer specs (one storage each, keyed by position).
fn specs() -> Vec<Spec> {
    specs_for(&read_pth(&fixture()).expect("fixture reads"))
}

fn zip_of(specs: &[Spec], pickle: &[u8]) -> Vec<u8> {
    let storages: Vec<(&str, &[u8])> = specs.iter().map(|s| (s.key.as_str(), s.storage.as_slice())).collect();
    build_zip("archive", pickle, &storages, false)
}

fn pth_of(specs: &[Spec]) -> Vec<u8> {
    zip_of(specs, &pickle_for(specs))
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack.windows(from.len()).position(|w| w == from).expect("pattern present");
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}

fn edit(specs: &mut [Spec], name: &str, f: impl FnOnce(&mut Spec)) {
    f(specs.iter_mut().find(|s| s.name == name).expect("tensor present"))
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: &'static str,
}

fn corpus() -> Vec<Case> {
    let good = std::fs::read(fixture()).unwrap();
    let base = specs();
    let mut cases = Vec::new();
    let mut case = |name, bytes, expect| cases.push(Case { name, bytes, expect });

    // Truncated files and non-zip data.
    case("empty", vec![], "");
    case("cut-at-10", good[..10].to_vec(), "");
    case("cut-at-half", good[..good.len() / 2].to_vec(), "");
    case("cut-in-central-directory", good[..good.len() - 30].to_vec(), "");
    case("cut-last-byte", good[..good.len() - 1].to_vec(), "");
    case("gguf-not-pth", b"GGUF\x03\x00\x00\x00garbage".to_vec(), "");

    // Damaged pickles.
    let pickle = pickle_for(&base);
    case("pickle-truncated", zip_of(&base, &pickle[..pickle.len() / 2]), "data.pkl");
    case("pickle-bad-opcode", zip_of(&base, &replace(&pickle, b"}q\x00(", b"}q\x00\xfe")), "opcode");
    case(
        "pickle-forbidden-global",
        zip_of(&base, &replace(&pickle, b"ctorch._utils\n_rebuild_tensor_v2\n", b"cos\nsystem\n")),
        "os",
    );
    case("pickle-unknown-storage-type", zip_of(&base, &replace(&pickle, b"BFloat16Storage", b"LongStorage")), "Long");
    case("name-not-utf8", zip_of(&base, &replace(&pickle, b"emb.weight", b"\xffmb.weight")), "UTF-8");
    let huge_numel = {
        // The storage element count of the first tensor, as written by `pickle_for`.
        let mut p = pickle.clone();
        let at = p.windows(3).position(|w| w == b"cpu").unwrap() + 3;
        let tail = p.split_off(at);
        p.extend([0x8a, 8]);
        p.extend(u64::MAX.to_le_bytes());
        // Skip the original count (K n, M nn or J nnnn) in the tail.
        let skip = match tail[0] {
            b'K' => 2,
            b'M' => 3,
            _ => 5,
        };
        p.extend(&tail[skip..]);
        p
    };
    case("storage-count-overflows", zip_of(&base, &huge_numel), "");

    // Storages.
    let mut s = specs();
    let missing_key = s[3].key.clone();
    let storages: Vec<(&str, &[u8])> =
        s.iter().filter(|x| x.key != missing_key).map(|x| (x.key.as_str(), x.storage.as_slice())).collect();
    case("storage-missing", build_zip("archive", &pickle_for(&s), &storages, false), "");
    edit(&mut s, "head.weight", |t| t.storage.truncate(t.storage.len() / 2));
    case("storage-too-short", pth_of(&s), "head.weight");

    // Shapes, dims and tensor sets.
    let mut s = specs();
    edit(&mut s, "blocks.1.att.key.weight", |t| {
        t.shape = vec![64, 32];
        t.storage.truncate(64 * 32 * 2);
    });
    case("wrong-shape", pth_of(&s), "blocks.1.att.key.weight");
    let mut s = specs();
    edit(&mut s, "head.weight", |t| t.shape = vec![1 << 40, 1 << 40]);
    case("shape-overflows", pth_of(&s), "head.weight");
    let mut s = specs();
    s.retain(|t| t.name != "blocks.2.ffn.value.weight");
    case("missing-tensor", pth_of(&s), "blocks.2.ffn.value.weight");
    let mut s = specs();
    edit(&mut s, "blocks.0.att.w0", |t| t.name = "blocks.0.att.time_decay".into());
    case("rwkv-v6-keys", pth_of(&s), "time_decay");
    let mut s = specs();
    let mut extra = Spec { name: "blocks.0.ffn.s_emb.weight".into(), ..specs().remove(0) };
    extra.key = "extra".into();
    s.push(extra);
    case("rwkv7a-deepembed", pth_of(&s), "s_emb");
    cases
}

fn quantize(input: &Path, output: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rwkv7-quant"))
        .arg("quantize")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(["--type", "f32", "-q"])
        .output()
        .expect("rwkv7-quant runs")
}

#[test]
fn every_malformed_checkpoint_fails_cleanly_and_keeps_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("existing.gguf");
    let corpus = corpus();
    for case in &corpus {
        std::fs::write(&output, b"previous contents").unwrap();
        let input = dir.path().join(format!("{}.pth", case.name));
        std::fs::write(&input, &case.bytes).unwrap();
        let result = quantize(&input, &output);
        let stderr = String::from_utf8_lossy(&result.stderr);
        let name = case.name;
        assert_eq!(result.status.code(), Some(1), "{name}: expected exit 1 (not a panic or signal): {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: expected one line: {stderr}");
        assert!(lines[0].contains(&format!("{name}.pth")), "{name}: message does not name the file: {stderr}");
        assert!(lines[0].contains(case.expect), "{name}: message does not say `{}`: {stderr}", case.expect);
        assert_eq!(std::fs::read(&output).unwrap(), b"previous contents", "{name}: existing output was touched");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: temporary files left behind");
        eprintln!("{name:<28} {}", lines[0]);
    }
    eprintln!("{} malformed .pth files rejected cleanly", corpus.len());
}

#[test]
fn the_unmodified_corpus_base_converts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("base.pth");
    std::fs::write(&input, pth_of(&specs())).unwrap();
    let result = quantize(&input, &dir.path().join("out.gguf"));
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    // The writer round-trips through the reader.
    let tensors: Vec<Tensor> = read_pth(&input).unwrap();
    assert_eq!(tensors.len(), specs().len());
    assert!(tensors.iter().all(|t| t.dtype == DType::BF16));
    let _ = Bytes::from_vec(Vec::new());
}
