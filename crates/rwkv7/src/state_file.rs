//! The session state file (docs/STATE_FORMAT.md): versioned, little-endian, checksummed,
//! and tied to one model by its dimensions and fingerprint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rwkv7_core::{HyperParams, OccEntry, Utf8Stream};

use crate::Error;
use crate::fingerprint::Fnv64;

/// The first 8 bytes of every state file.
pub const STATE_MAGIC: [u8; 8] = *b"RWKV7SES";
/// The format version this build writes and reads.
pub const STATE_VERSION: u32 = 1;
/// Bytes before the first section.
pub const HEADER_LEN: usize = 96;
/// Header flag: the last logits are stored.
const FLAG_LOGITS: u32 = 1;
/// Bytes per stored occurrence entry: token u32, reserved u32, count f64.
const OCC_ENTRY_LEN: usize = 16;

/// The zip local-file signature that starts a `torch.save` file.
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// The dimensions a state file records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateDims {
    /// Layers `L`.
    pub n_layer: u32,
    /// Embedding width `C`.
    pub n_embd: u32,
    /// Head size `N`.
    pub head_size: u32,
    /// Vocabulary size `V`.
    pub vocab: u32,
}

impl StateDims {
    /// The dimensions of `hp`.
    pub fn of(hp: &HyperParams) -> Self {
        StateDims {
            n_layer: hp.n_layer as u32,
            n_embd: hp.n_embd as u32,
            head_size: hp.head_size as u32,
            vocab: hp.vocab as u32,
        }
    }

    /// f32s of recurrent state, `L · (2C + C·N)`, or `None` on overflow or `C` not a multiple of `N`.
    fn state_len(&self) -> Option<u64> {
        let (l, c, n) = (u64::from(self.n_layer), u64::from(self.n_embd), u64::from(self.head_size));
        if n == 0 || c % n != 0 {
            return None;
        }
        c.checked_mul(n)?.checked_add(2 * c)?.checked_mul(l)
    }
}

impl std::fmt::Display for StateDims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} layers, C = {}, head size {}, vocabulary {}",
            self.n_layer, self.n_embd, self.head_size, self.vocab
        )
    }
}

/// Everything a state file holds, borrowed for writing.
pub(crate) struct Parts<'a> {
    pub fingerprint: u64,
    pub dims: StateDims,
    pub position: u64,
    pub rng: (u128, u128),
    pub pending: &'a [u8],
    pub state: &'a [f32],
    pub logits: Option<&'a [f32]>,
    pub occurrence: &'a [OccEntry],
}

/// Everything a state file holds, read back.
pub(crate) struct Decoded {
    pub position: u64,
    pub rng: (u128, u128),
    pub pending: Utf8Stream,
    pub state: Vec<f32>,
    pub logits: Option<Vec<f32>>,
    pub occurrence: Vec<OccEntry>,
}

/// The bytes of a state file.
pub(crate) fn encode(p: &Parts<'_>) -> Vec<u8> {
    let n_logits = p.logits.map_or(0, <[f32]>::len);
    let len = HEADER_LEN + 4 * (p.state.len() + n_logits) + OCC_ENTRY_LEN * p.occurrence.len() + 8;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&STATE_MAGIC);
    out.extend_from_slice(&STATE_VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&p.fingerprint.to_le_bytes());
    for v in [p.dims.n_layer, p.dims.n_embd, p.dims.head_size, p.dims.vocab] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&p.position.to_le_bytes());
    out.extend_from_slice(&p.rng.0.to_le_bytes());
    out.extend_from_slice(&p.rng.1.to_le_bytes());
    let flags = if p.logits.is_some() { FLAG_LOGITS } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(p.occurrence.len() as u32).to_le_bytes());
    out.extend_from_slice(&(p.pending.len() as u32).to_le_bytes());
    let mut pending = [0u8; 4];
    pending[..p.pending.len()].copy_from_slice(p.pending);
    out.extend_from_slice(&pending);
    debug_assert_eq!(out.len(), HEADER_LEN);
    for v in p.state.iter().chain(p.logits.unwrap_or(&[])) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for e in p.occurrence {
        out.extend_from_slice(&e.token.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&e.count.to_le_bytes());
    }
    let sum = Fnv64::hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    debug_assert_eq!(out.len(), len);
    out
}

/// Little-endian field reader over a validated-length buffer.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().unwrap_or([0; N])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take())
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        let (head, rest) = self.0.split_at(4 * n);
        self.0 = rest;
        head.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}

/// Parses and checks a state file against the model (`fingerprint`, `dims`). `model_path`
/// is used in messages.
pub(crate) fn decode(
    bytes: &[u8],
    path: &Path,
    model_path: &Path,
    fingerprint: u64,
    dims: StateDims,
) -> Result<Decoded, Error> {
    let bad = |message: String| Error::StateFile { path: path.to_path_buf(), message };
    if bytes.starts_with(&ZIP_MAGIC) {
        return Err(bad("this is a zip (`.pth`) file, not an rwkv7 state file; a state-tuning `.pth` is imported, not loaded (`rwkv7 … --state FILE.pth` does that)".into()));
    }
    if bytes.len() < 8 || bytes[..8] != STATE_MAGIC {
        return Err(bad("not an rwkv7 state file (it does not start with `RWKV7SES`)".into()));
    }
    if bytes.len() < HEADER_LEN + 8 {
        return Err(bad(format!("truncated: {} bytes, shorter than the {}-byte header", bytes.len(), HEADER_LEN + 8)));
    }
    let mut r = Reader(&bytes[8..HEADER_LEN]);
    let version = r.u32();
    if version != STATE_VERSION {
        return Err(bad(format!(
            "state file version {version} is not supported (this build reads version {STATE_VERSION})"
        )));
    }
    let header_len = r.u32();
    if header_len as usize != HEADER_LEN {
        return Err(bad(format!("header length {header_len} is not {HEADER_LEN}")));
    }
    let file_fingerprint = r.u64();
    let file_dims = StateDims { n_layer: r.u32(), n_embd: r.u32(), head_size: r.u32(), vocab: r.u32() };
    let position = r.u64();
    let rng = (r.u128(), r.u128());
    let flags = r.u32();
    let n_occ = r.u32();
    let n_pending = r.u32();
    let pending_bytes: [u8; 4] = r.take();

    if flags & !FLAG_LOGITS != 0 {
        return Err(bad(format!("unknown flags 0x{flags:08x}")));
    }
    let state_len = file_dims.state_len().ok_or_else(|| bad(format!("impossible dimensions ({file_dims})")))?;
    let n_logits = if flags & FLAG_LOGITS != 0 { u64::from(file_dims.vocab) } else { 0 };
    let expected = (state_len + n_logits)
        .checked_mul(4)
        .and_then(|f| f.checked_add(OCC_ENTRY_LEN as u64 * u64::from(n_occ)))
        .and_then(|f| f.checked_add(HEADER_LEN as u64 + 8));
    if expected != Some(bytes.len() as u64) {
        let what = if expected.is_some_and(|e| e > bytes.len() as u64) { "truncated" } else { "wrong size" };
        return Err(bad(format!(
            "{what}: {} bytes, the header describes {}",
            bytes.len(),
            expected.map_or("more than 2^64".to_string(), |e| e.to_string())
        )));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let stored = u64::from_le_bytes(sum.try_into().unwrap_or([0; 8]));
    if Fnv64::hash(body) != stored {
        return Err(bad("damaged: the checksum does not match the contents".into()));
    }

    if file_dims != dims {
        return Err(Error::StateMismatch {
            path: path.to_path_buf(),
            message: format!("this state belongs to another model ({file_dims}); {} is {dims}", model_path.display()),
        });
    }
    if file_fingerprint != fingerprint {
        return Err(Error::StateMismatch {
            path: path.to_path_buf(),
            message: format!(
                "this state was saved from another model (fingerprint {file_fingerprint:016x}, same dimensions); {} has fingerprint {fingerprint:016x}",
                model_path.display()
            ),
        });
    }

    if rng.1 & 1 == 0 {
        return Err(bad("invalid random generator state (even increment)".into()));
    }
    if n_pending > 3 {
        return Err(bad(format!("{n_pending} pending UTF-8 bytes (at most 3)")));
    }
    let mut pending = Utf8Stream::new();
    let mut emitted = false;
    pending.push(&pending_bytes[..n_pending as usize], |_| emitted = true);
    if emitted || pending.pending().len() != n_pending as usize {
        return Err(bad("the pending UTF-8 bytes are not the start of a character".into()));
    }

    let mut r = Reader(&body[HEADER_LEN..]);
    let state = r.f32s(state_len as usize);
    let logits = (n_logits > 0).then(|| r.f32s(n_logits as usize));
    if state.iter().chain(logits.iter().flatten()).any(|v| !v.is_finite()) {
        return Err(bad("the state or logits hold NaN or infinity".into()));
    }
    let mut occurrence = Vec::with_capacity(n_occ as usize);
    for i in 0..n_occ {
        let token = r.u32();
        let _reserved = r.u32();
        let count = f64::from_bits(r.u64());
        // Counts are decayed tallies of generated tokens: finite and never negative (a
        // negative one turns the penalty into a bonus that can reach +inf).
        let count_ok = count.is_finite() && count >= 0.0;
        if token >= dims.vocab || !count_ok || occurrence.iter().any(|e: &OccEntry| e.token == token) {
            return Err(bad(format!("occurrence entry {i} (token {token}, count {count}) is invalid")));
        }
        occurrence.push(OccEntry { token, count });
    }
    Ok(Decoded { position, rng, pending, state, logits, occurrence })
}

/// Distinguishes temporary files of concurrent writers in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The file an atomic write of `path` replaces: `path` itself when it is a regular file or
/// does not exist yet, the file a symbolic link points to (so the link stays a link), or
/// `None` when `path` names something else that can be written to (`/dev/null`, a FIFO, a
/// terminal), which a rename would replace with a regular file: such a path is written in
/// place. A directory is an error.
pub fn atomic_target(path: &Path) -> std::io::Result<Option<PathBuf>> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory")),
        Ok(m) if m.is_file() => std::fs::canonicalize(path).map(Some),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(path.to_path_buf())),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same folder, synced,
/// then renamed over `path` (over the file a symbolic link `path` points to). A failed
/// write leaves `path` as it was. A `path` that is not a regular file (`/dev/null`, a
/// FIFO) is written in place instead, as a shell redirection would.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |error| Error::Io { path: path.to_path_buf(), error };
    let Some(target) = atomic_target(path).map_err(io)? else {
        return std::fs::OpenOptions::new().write(true).open(path).and_then(|mut f| f.write_all(bytes)).map_err(io);
    };
    let path = target.as_path();
    let name =
        path.file_name().ok_or_else(|| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path")))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp: PathBuf = dir.join(format!(".{}.{}.{n}.tmp", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_files_and_link_targets_never_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.bin");
        assert_eq!(atomic_target(&file).unwrap(), Some(file.clone()), "a path not yet there is created");
        write_atomic(&file, b"one").unwrap();
        assert_eq!(atomic_target(&file).unwrap(), Some(std::fs::canonicalize(&file).unwrap()));

        // Through a symbolic link the link's target is replaced and the link stays.
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        write_atomic(&link, b"two").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
        assert_eq!(std::fs::read(&file).unwrap(), b"two");

        let err = atomic_target(dir.path()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
        // Devices are written in place, never renamed over (only inspected here).
        assert_eq!(atomic_target(Path::new("/dev/null")).unwrap(), None);
        let fifo = dir.path().join("fifo");
        match std::process::Command::new("mkfifo").arg(&fifo).status() {
            Ok(s) if s.success() => assert_eq!(atomic_target(&fifo).unwrap(), None),
            _ => eprintln!("SKIPPED: the FIFO case (no mkfifo here)"),
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!left.iter().any(|n| n.to_string_lossy().starts_with('.')), "temporary files left behind: {left:?}");
    }
}
