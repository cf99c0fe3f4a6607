//! The bundled demo model (models/demo/demo-q8_0.gguf) is what `rwkv7 generate` runs when
//! no model is given, and its greedy continuation of a fixed prompt is pinned to the
//! official implementation's: `models/demo/greedy.json` was written by
//! `tools/train-demo/make_greedy_golden.py` with the official `rwkv` package (cpu fp32) on
//! the bf16 export of the same weights.

use std::path::Path;
use std::process::Command;

#[derive(serde::Deserialize)]
struct Greedy {
    prompt: String,
    n: usize,
    text: String,
}

#[test]
fn generate_without_a_model_runs_the_bundled_model_and_matches_the_official_greedy_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let golden: Greedy =
        serde_json::from_str(&std::fs::read_to_string(root.join("models/demo/greedy.json")).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv7"))
        .current_dir(&root)
        .env_remove("RWKV7_MODEL")
        .args(["generate", "-p", &golden.prompt, "-n", &golden.n.to_string()])
        // Greedy as the official notes define it: temperature 0, top-p 0, no penalties.
        .args(["--temp", "0", "--top-p", "0", "--presence-penalty", "0", "--frequency-penalty", "0"])
        .args(["--eot", "allow"])
        .output()
        .expect("rwkv7 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert_eq!(text.trim_end_matches('\n'), golden.text, "greedy continuation differs from the official one");
}
