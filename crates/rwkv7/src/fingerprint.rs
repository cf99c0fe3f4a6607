//! FNV-1a 64 and the model fingerprint that state files carry (docs/STATE_FORMAT.md §3).

use rwkv7_core::Gguf;

/// FNV-1a, 64-bit: `h = 0xcbf29ce484222325; for each byte b: h = (h ^ b) · 0x100000001b3`.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv64 {
    /// The FNV-1a 64 offset basis.
    pub const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    /// The FNV 64-bit prime.
    pub const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hasher at the offset basis.
    pub const fn new() -> Self {
        Fnv64(Self::OFFSET_BASIS)
    }

    /// Hashes `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
        self.0 = h;
    }

    /// The hash of everything written so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }

    /// The hash of `bytes`.
    pub fn hash(bytes: &[u8]) -> u64 {
        let mut h = Self::new();
        h.write(bytes);
        h.finish()
    }
}

/// Bytes sampled from each end and from the middle of a tensor's data.
pub const SAMPLE_BYTES: usize = 4096;

/// The model fingerprint: FNV-1a 64 over, in order,
///
/// 1. the file's bytes before the tensor data (`0 .. data_start`): the GGUF header, all
///    metadata (hyperparameters, vocabulary) and the tensor table (names, shapes, types,
///    offsets), with the alignment padding;
/// 2. for each tensor in table order, its data if at most `3 · 4096` bytes, else three
///    4096-byte samples: at the start, at `len / 2 − 2048`, and at the end (`len − 4096`).
///
/// It reads a few pages per tensor plus the header, never the whole file.
pub fn model_fingerprint(gguf: &Gguf<'_>) -> u64 {
    let bytes = gguf.bytes();
    let mut h = Fnv64::new();
    h.write(&bytes[..gguf.data_start().min(bytes.len())]);
    for t in gguf.tensors() {
        let d = t.data;
        let n = d.len();
        if n <= 3 * SAMPLE_BYTES {
            h.write(d);
        } else {
            let mid = n / 2 - SAMPLE_BYTES / 2;
            h.write(&d[..SAMPLE_BYTES]);
            h.write(&d[mid..mid + SAMPLE_BYTES]);
            h.write(&d[n - SAMPLE_BYTES..]);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_test_vectors() {
        // From the FNV reference test suite.
        assert_eq!(Fnv64::hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv64::hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv64::hash(b"foobar"), 0x8594_4171_f739_67e8);
        let mut h = Fnv64::new();
        h.write(b"foo");
        h.write(b"bar");
        assert_eq!(h.finish(), Fnv64::hash(b"foobar"));
    }
}
