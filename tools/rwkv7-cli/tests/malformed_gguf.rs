//! A corpus of malformed GGUF files, each of which must make `rwkv7 logits` exit with
//! status 1 and a one-line message that names the file and the problem — never a
//! panic (exit 101) or a signal. The corpus is built here, byte by byte, from a small
//! valid RWKV-7 file, so every defect sits exactly where the test says it does.

use std::path::Path;
use std::process::Command;

/// A GGUF metadata value, for the hand-built files.
#[derive(Clone)]
enum Val {
    U32(u32),
    F32(f32),
    Str(Vec<u8>),
    ArrU32(Vec<u32>),
}

#[derive(Clone)]
struct Tensor {
    name: Vec<u8>,
    ne: Vec<u64>,
    ty: u32,
    /// Offset override; by default tensors are packed in order at 32-byte alignment.
    offset: Option<u64>,
    data: Vec<u8>,
}

/// A GGUF file under construction, with every field open to corruption.
#[derive(Clone)]
struct Builder {
    version: u32,
    kv_count: Option<u64>,
    tensor_count: Option<u64>,
    kvs: Vec<(Vec<u8>, Val)>,
    tensors: Vec<Tensor>,
}

const ALIGN: usize = 32;
const F32: u32 = 0;
const F16: u32 = 1;
const I32: u32 = 26;

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s);
}

impl Builder {
    /// A valid RWKV-7 model: L = 2, C = 64 (one head), V = 16, every rank 8, FFN 128.
    fn valid() -> Builder {
        let (c, v, r, f) = (64u64, 16u64, 8u64, 128u64);
        let kvs = vec![
            (b"general.architecture".to_vec(), Val::Str(b"rwkv7".to_vec())),
            (b"rwkv7.block_count".to_vec(), Val::U32(2)),
            (b"rwkv7.embedding_length".to_vec(), Val::U32(c as u32)),
            (b"rwkv7.wkv.head_size".to_vec(), Val::U32(64)),
            (b"rwkv7.attention.layer_norm_epsilon".to_vec(), Val::F32(1e-5)),
            (b"rwkv7.feed_forward_length".to_vec(), Val::U32(f as u32)),
        ];
        let mut tensors = Vec::new();
        let mut add = |name: String, ne: Vec<u64>| {
            let n: u64 = ne.iter().product();
            // Small deterministic values: the model must run without NaNs.
            let data = (0..n).flat_map(|i| (((i * 37 % 17) as f32 - 8.0) * 0.01).to_le_bytes()).collect();
            tensors.push(Tensor { name: name.into_bytes(), ne, ty: F32, offset: None, data });
        };
        add("token_embd.weight".into(), vec![c, v]);
        for n in ["token_embd_norm", "output_norm"] {
            add(format!("{n}.weight"), vec![c]);
            add(format!("{n}.bias"), vec![c]);
        }
        add("output.weight".into(), vec![c, v]);
        for l in 0..2 {
            let b = |s: &str| format!("blk.{l}.{s}");
            for n in ["attn_norm", "attn_norm_2", "time_mix_ln"] {
                add(b(&format!("{n}.weight")), vec![c]);
                add(b(&format!("{n}.bias")), vec![c]);
            }
            add(b("time_mix_lerp_fused.weight"), vec![c, 1, 1, 6]);
            for p in ["w", "a", "v", "g"] {
                if p != "g" {
                    add(b(&format!("time_mix_{p}0.weight")), vec![c]);
                }
                add(b(&format!("time_mix_{p}1.weight")), vec![c, r]);
                add(b(&format!("time_mix_{p}2.weight")), vec![r, c]);
            }
            for n in ["k_k", "k_a", "r_k"] {
                add(b(&format!("time_mix_{n}.weight")), vec![c]);
            }
            for n in ["receptance", "key", "value", "output"] {
                add(b(&format!("time_mix_{n}.weight")), vec![c, c]);
            }
            add(b("channel_mix_lerp_k.weight"), vec![c]);
            add(b("channel_mix_key.weight"), vec![c, f]);
            add(b("channel_mix_value.weight"), vec![f, c]);
        }
        Builder { version: 3, kv_count: None, tensor_count: None, kvs, tensors }
    }

    fn tensor(&mut self, name: &str) -> &mut Tensor {
        self.tensors.iter_mut().find(|t| t.name == name.as_bytes()).expect("tensor exists")
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.tensor_count.unwrap_or(self.tensors.len() as u64).to_le_bytes());
        out.extend(self.kv_count.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for (key, val) in &self.kvs {
            string(&mut out, key);
            match val {
                Val::U32(v) => {
                    out.extend(4u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                Val::F32(v) => {
                    out.extend(6u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                Val::Str(s) => {
                    out.extend(8u32.to_le_bytes());
                    string(&mut out, s);
                }
                Val::ArrU32(a) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(4u32.to_le_bytes());
                    out.extend((a.len() as u64).to_le_bytes());
                    a.iter().for_each(|v| out.extend(v.to_le_bytes()));
                }
            }
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            string(&mut out, &t.name);
            out.extend((t.ne.len() as u32).to_le_bytes());
            t.ne.iter().for_each(|d| out.extend(d.to_le_bytes()));
            out.extend(t.ty.to_le_bytes());
            out.extend(t.offset.unwrap_or(offset).to_le_bytes());
            offset += (t.data.len() as u64).div_ceil(ALIGN as u64) * ALIGN as u64;
        }
        pad_to(&mut out, ALIGN);
        for t in &self.tensors {
            out.extend(&t.data);
            pad_to(&mut out, ALIGN);
        }
        out
    }

    /// Offsets where each section starts: (metadata, tensor infos, data).
    fn section_starts(&self) -> (usize, usize, usize) {
        let header = 24;
        let mut probe = self.clone();
        probe.tensors.clear();
        probe.tensor_count = Some(self.tensors.len() as u64);
        let infos = probe.bytes().len();
        let full = self.bytes();
        let data_len: usize = self.tensors.iter().map(|t| t.data.len().div_ceil(ALIGN) * ALIGN).sum();
        (header, infos, full.len() - data_len)
    }
}

fn rwkv7() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rwkv7"))
}

/// Runs `rwkv7 logits` on `path` and checks the failure is clean. Returns the message.
fn expect_clean_failure(path: &Path, out_dir: &Path, case: &str) -> String {
    let out = out_dir.join("logits.f32");
    let result = rwkv7()
        .args(["logits", "-m"])
        .arg(path)
        .args(["--tokens", "1,2,3", "-o"])
        .arg(&out)
        .output()
        .expect("rwkv7 runs");
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(1), "{case}: expected exit 1 (not a panic or signal), stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{case}: expected a one-line message, got: {stderr}");
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(lines[0].contains(&*name), "{case}: message does not name the file: {stderr}");
    assert!(!out.exists(), "{case}: an output file was written");
    lines[0].to_owned()
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// A phrase the message must contain, so it says what is wrong.
    expect: &'static str,
}

fn corpus() -> Vec<Case> {
    let valid = Builder::valid();
    let good = valid.bytes();
    let (meta, infos, data) = valid.section_starts();
    let mut cases = Vec::new();
    let mut case = |name, bytes, expect| cases.push(Case { name, bytes, expect });

    // Truncated inside each section.
    case("empty", vec![], "truncated");
    case("cut-in-magic", good[..2].to_vec(), "truncated");
    case("cut-in-header", good[..12].to_vec(), "truncated");
    case("cut-in-metadata", good[..meta + 10].to_vec(), "truncated or corrupt");
    case("cut-mid-metadata", good[..(meta + infos) / 2].to_vec(), "");
    case("cut-in-tensor-table", good[..infos + 40].to_vec(), "truncated");
    let mut no_tensors = valid.clone();
    no_tensors.tensors.clear();
    case("cut-in-metadata-no-tensors", no_tensors.bytes()[..meta + 100].to_vec(), "truncated in the metadata");
    case("cut-end-of-tensor-table", good[..data - 40].to_vec(), "");
    case("cut-in-tensor-data", good[..data + 100].to_vec(), "past the end");
    case("cut-last-byte", good[..good.len() - 1].to_vec(), "past the end");

    // Bad magic and version.
    let mut b = good.clone();
    b[..4].copy_from_slice(b"GGML");
    case("bad-magic", b, "not a GGUF file");
    let mut v = valid.clone();
    v.version = 2;
    case("version-2", v.bytes(), "version 2");

    // Counts and offsets that overflow or point past the end.
    let mut v = valid.clone();
    v.tensor_count = Some(u64::MAX);
    case("tensor-count-max", v.bytes(), "does not fit");
    let mut v = valid.clone();
    v.kv_count = Some(1 << 61);
    case("kv-count-huge", v.bytes(), "does not fit");
    let mut v = valid.clone();
    v.kv_count = Some(valid.kvs.len() as u64 + 1);
    case("kv-count-one-too-many", v.bytes(), "");
    let mut b = good.clone();
    b[meta..meta + 8].copy_from_slice(&u64::MAX.to_le_bytes()); // first key's length
    case("key-length-max", b, "truncated");
    let mut v = valid.clone();
    v.kvs.push((b"tokenizer.ggml.token_type".to_vec(), Val::ArrU32(vec![1, 2, 3])));
    let mut b = v.bytes();
    let pos = b.windows(25).position(|w| w == b"tokenizer.ggml.token_type").unwrap() + 25 + 8;
    b[pos..pos + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes()); // array count
    case("array-count-huge", b, "does not fit");
    let mut v = valid.clone();
    v.tensor("output.weight").offset = Some(1 << 40);
    case("offset-past-end", v.bytes(), "past the end");
    let mut v = valid.clone();
    v.tensor("output.weight").offset = Some(u64::MAX - 31);
    case("offset-overflows", v.bytes(), "past the end");
    let mut v = valid.clone();
    v.tensor("output.weight").ne = vec![1 << 32, 1 << 32, 1 << 32];
    case("element-count-overflows", v.bytes(), "too many elements");
    let mut v = valid.clone();
    v.tensor("output.weight").ne = vec![64, 16, 1, 1, 1];
    case("five-dimensions", v.bytes(), "dimensions");
    let mut v = valid.clone();
    v.tensor("output.weight").ne = vec![64, 0];
    case("zero-dimension", v.bytes(), "zero dimension");

    // Misaligned data.
    let mut v = valid.clone();
    let off = {
        let mut o = 0;
        for t in &v.tensors {
            if t.name == b"output.weight" {
                break;
            }
            o += t.data.len().div_ceil(ALIGN) * ALIGN;
        }
        o
    };
    v.tensor("output.weight").offset = Some(off as u64 + 4);
    case("misaligned-offset", v.bytes(), "not a multiple of the alignment");
    let mut v = valid.clone();
    v.kvs.push((b"general.alignment".to_vec(), Val::U32(24)));
    case("alignment-not-power-of-two", v.bytes(), "alignment");

    // Wrong shapes and types, missing tensors, wrong metadata.
    let mut v = valid.clone();
    v.tensor("blk.1.time_mix_key.weight").ne = vec![64, 32];
    v.tensor("blk.1.time_mix_key.weight").data.truncate(64 * 32 * 4);
    case("wrong-shape", v.bytes(), "blk.1.time_mix_key.weight");
    let mut v = valid.clone();
    let t = v.tensor("blk.0.time_mix_k_k.weight");
    t.ty = F16;
    t.data.truncate(64 * 2);
    case("vector-as-f16", v.bytes(), "blk.0.time_mix_k_k.weight");
    let mut v = valid.clone();
    v.tensor("blk.0.channel_mix_key.weight").ty = I32;
    case("matrix-as-i32", v.bytes(), "blk.0.channel_mix_key.weight");
    let mut v = valid.clone();
    v.tensor("output.weight").ty = 99;
    case("unknown-type", v.bytes(), "ggml type 99");
    let mut v = valid.clone();
    v.tensors.retain(|t| t.name != b"blk.1.time_mix_value.weight");
    case("missing-tensor", v.bytes(), "blk.1.time_mix_value.weight");
    let mut v = valid.clone();
    v.tensors.retain(|t| t.name != b"output.weight");
    case("missing-head", v.bytes(), "output.weight");
    let mut v = valid.clone();
    let dup = v.tensors[0].clone();
    v.tensors.push(dup);
    case("duplicate-tensor", v.bytes(), "twice");
    let mut v = valid.clone();
    v.kvs[0].1 = Val::Str(b"llama".to_vec());
    case("wrong-architecture", v.bytes(), "llama");
    let mut v = valid.clone();
    v.kvs.retain(|(k, _)| k != b"rwkv7.block_count");
    case("missing-block-count", v.bytes(), "rwkv7.block_count");
    let mut v = valid.clone();
    v.kvs[1].1 = Val::U32(3);
    case("block-count-too-large", v.bytes(), "blk.2");
    let mut v = valid.clone();
    v.kvs[3].1 = Val::U32(48);
    case("head-size-not-dividing", v.bytes(), "head_size");
    let mut v = valid.clone();
    v.kvs[3].1 = Val::U32(0);
    case("head-size-zero", v.bytes(), "head_size");

    // Names that are not UTF-8.
    let mut v = valid.clone();
    v.tensors[3].name = vec![b'b', 0xff, 0xfe];
    case("tensor-name-not-utf8", v.bytes(), "UTF-8");
    let mut v = valid.clone();
    v.kvs.push((vec![0xc3, 0x28], Val::U32(1)));
    case("key-not-utf8", v.bytes(), "UTF-8");

    // Names with control characters: the message escapes them and stays one line (a
    // newline in a name once split it; an escape sequence could drive the terminal).
    let mut v = valid.clone();
    v.tensors[3].name = b"a\nfake\x1b[2J".to_vec();
    v.tensors[3].ne = vec![0];
    case("tensor-name-with-newline", v.bytes(), "`a\\nfake\\u{1b}[2J`");
    let mut v = valid.clone();
    v.kvs[0].1 = Val::Str(b"line1\nline2".to_vec());
    case("architecture-with-newline", v.bytes(), "`line1\\nline2`");
    cases
}

/// A fresh directory, removed when the returned guard drops (also when a test fails).
fn tmp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("rwkv7-malformed-").tempdir().unwrap()
}

#[test]
fn the_valid_base_file_runs() {
    let tmp = tmp_dir();
    let dir = tmp.path().to_path_buf();
    let path = dir.join("valid.gguf");
    std::fs::write(&path, Builder::valid().bytes()).unwrap();
    let out = dir.join("logits.f32");
    let result =
        rwkv7().args(["logits", "-m"]).arg(&path).args(["--tokens", "1,2,3", "-o"]).arg(&out).output().unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let logits = std::fs::read(&out).unwrap();
    assert_eq!(logits.len(), 3 * 16 * 4, "three rows of 16 logits");
    assert!(logits.chunks(4).all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()));
}

#[test]
fn every_malformed_file_fails_cleanly() {
    let tmp = tmp_dir();
    let dir = tmp.path().to_path_buf();
    let corpus = corpus();
    for case in &corpus {
        let path = dir.join(format!("{}.gguf", case.name));
        std::fs::write(&path, &case.bytes).unwrap();
        let message = expect_clean_failure(&path, &dir, case.name);
        assert!(message.contains(case.expect), "{}: message does not say `{}`: {message}", case.name, case.expect);
        eprintln!("{:<28} {message}", case.name);
    }
    eprintln!("{} malformed GGUF files rejected cleanly", corpus.len());
}

#[test]
fn bad_token_ids_and_missing_files_fail_cleanly() {
    let tmp = tmp_dir();
    let dir = tmp.path().to_path_buf();
    let path = dir.join("valid.gguf");
    std::fs::write(&path, Builder::valid().bytes()).unwrap();
    let out = dir.join("logits.f32");
    let result = rwkv7().args(["logits", "-m"]).arg(&path).args(["--tokens", "1,16", "-o"]).arg(&out).output().unwrap();
    assert_eq!(result.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&result.stderr).contains("token id 16 is out of range"));
    expect_clean_failure(&dir.join("does-not-exist.gguf"), &dir, "missing file");
}

/// Flags that size buffers or thread counts are bounded: out-of-range values are usage
/// errors (exit 2, naming the flag's value), where `--chunk 4294967295` once aborted on a
/// terabyte allocation and `-t 20000` aborted part-way through starting threads.
#[test]
fn buffer_and_thread_flags_out_of_range_are_usage_errors() {
    let tmp = tmp_dir();
    let path = tmp.path().join("valid.gguf");
    std::fs::write(&path, Builder::valid().bytes()).unwrap();
    let out = tmp.path().join("logits.f32");
    let out = out.to_str().unwrap();
    let cases: [&[&str]; 5] = [
        &["logits", "--tokens", "1", "-o", out, "--chunk", "4294967295"],
        &["logits", "--tokens", "1", "-o", out, "--chunk", "0"],
        &["bench", "-p", "18446744073709551615"],
        &["bench", "--probe-mib", "18446744073709551615"],
        &["bench", "-t", "20000"],
    ];
    for args in cases {
        let result = rwkv7().arg(args[0]).arg("-m").arg(&path).args(&args[1..]).output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[args.len() - 1]), "{args:?}: the message does not name the value: {stderr}");
    }
}
