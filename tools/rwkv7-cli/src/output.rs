//! Output helpers. Result files are written with the runtime's `rwkv7::write_atomic`
//! (temporary file beside the target, then renamed), so an existing file is never left
//! half-written.

use std::io::Write;

use anyhow::Result;

/// f32s as little-endian bytes.
pub fn f32_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Prints `text` to stdout. A reader that went away (`rwkv7 inspect m.gguf | head`) is not
/// an error: the output simply ends there.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!("stdout: {e}")),
        _ => Ok(()),
    }
}
