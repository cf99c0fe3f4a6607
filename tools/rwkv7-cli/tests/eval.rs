//! `rwkv7 eval` end to end: a golden fixture converted to f32 / q8_0 / q4_0 GGUF files,
//! evaluated on its token sequence against the f32 file.

use std::path::{Path, PathBuf};
use std::process::Command;

use rwkv7_quant::{ConvertOptions, OutType, convert};

fn rwkv7() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rwkv7"))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/h2_l3_fp32")
}

/// The fixture's golden tokens, as written in golden.json (`"tokens": [..]`).
fn golden_tokens() -> Vec<u32> {
    let text = std::fs::read_to_string(fixture().join("golden.json")).unwrap();
    let start = text.find("\"tokens\": [").unwrap() + "\"tokens\": [".len();
    let end = start + text[start..].find(']').unwrap();
    text[start..end].split(',').map(|s| s.trim().parse().unwrap()).collect()
}

/// Runs `rwkv7 eval` and returns the parsed fields of its JSON line.
fn eval(args: &[&str]) -> Vec<(String, f64)> {
    let out = rwkv7().arg("eval").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "eval failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    line[1..line.len() - 1]
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once(':').unwrap();
            (k.trim_matches('"').to_string(), v.parse().unwrap())
        })
        .collect()
}

fn field(fields: &[(String, f64)], name: &str) -> f64 {
    fields.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name} in {fields:?}")).1
}

#[test]
fn eval_reports_ppl_kl_and_top1() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture().join("model.pth");
    let path = |t: &str| dir.path().join(format!("m.{t}.gguf"));
    for (t, ty) in [("f32", OutType::F32), ("q8_0", OutType::Q8_0), ("q4_0", OutType::Q4_0)] {
        convert(&input, &path(t), &ConvertOptions::new(ty)).unwrap();
    }
    let tokens = golden_tokens();
    let ids = dir.path().join("tokens.txt");
    let text: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    // Mixed separators: commas, spaces, newlines.
    std::fs::write(&ids, format!("{},\n{}\n", text[..5].join(","), text[5..].join(" "))).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (f32_file, ids) = (s(&path("f32")), s(&ids));

    let alone = eval(&["-m", &f32_file, "--tokens-file", &ids]);
    assert_eq!(alone.len(), 2, "{alone:?}");
    assert_eq!(field(&alone, "tokens"), tokens.len() as f64);
    let ppl = field(&alone, "ppl");
    // A random model over 512 tokens: perplexity of the order of the vocabulary.
    assert!(ppl > 50.0 && ppl < 5000.0, "{ppl}");

    let same = eval(&["-m", &f32_file, "--tokens-file", &ids, "--reference", &f32_file, "--chunk", "5"]);
    assert_eq!(field(&same, "kl_mean"), 0.0);
    assert_eq!(field(&same, "top1_agree"), 1.0);
    assert!((field(&same, "ppl") - ppl).abs() < 1e-3 * ppl, "chunking changed ppl");

    let q8 = eval(&["-m", &s(&path("q8_0")), "--tokens-file", &ids, "--reference", &f32_file]);
    let q4 = eval(&["-m", &s(&path("q4_0")), "--tokens-file", &ids, "--reference", &f32_file]);
    let (kl8, kl4) = (field(&q8, "kl_mean"), field(&q4, "kl_mean"));
    assert!(kl8 > 0.0 && kl8 < 1e-3, "{kl8}");
    assert!(kl4 > kl8 && kl4 < 0.05, "{kl4}");
    assert!(field(&q4, "top1_agree") >= 0.5);
    let limited = eval(&["-m", &s(&path("q8_0")), "--tokens-file", &ids, "--max-tokens", "7"]);
    assert_eq!(field(&limited, "tokens"), 7.0);
}

/// Failures are one line naming the file, exit status 1.
#[test]
fn eval_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    convert(&fixture().join("model.pth"), &model, &ConvertOptions::new(OutType::Q8_0)).unwrap();
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "hello").unwrap();
    let bad_ids = dir.path().join("ids.txt");
    std::fs::write(&bad_ids, "1 2 x").unwrap();
    let one_id = dir.path().join("one.txt");
    std::fs::write(&one_id, "7").unwrap();
    let big_id = dir.path().join("big.txt");
    std::fs::write(&big_id, "1 99999").unwrap();
    let m = model.to_str().unwrap();
    for (args, expect) in [
        (vec!["-m", m, "--file", text.to_str().unwrap()], "has no tokenizer"),
        (vec!["-m", m, "--tokens-file", bad_ids.to_str().unwrap()], "`x` is not a token id"),
        (vec!["-m", m, "--tokens-file", one_id.to_str().unwrap()], "perplexity needs at least 2"),
        (vec!["-m", m, "--tokens-file", big_id.to_str().unwrap()], "token id 99999 is out of range"),
        (vec!["-m", "/nonexistent/m.gguf", "--tokens-file", one_id.to_str().unwrap()], "/nonexistent/m.gguf"),
    ] {
        let out = rwkv7().arg("eval").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
