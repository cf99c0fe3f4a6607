//! A GGUF v3 writer (docs/FORMAT.md §1).
//!
//! Metadata of every value type (arrays included), then tensor infos with offsets packed
//! in order at the file's alignment (32 unless `general.alignment` says otherwise), then
//! the data, zero-padded after every tensor. Tensor data can be given as bytes or as a
//! closure that streams it, so large conversions never hold a whole file in memory.
//!
//! [`GgufWriter::write_file`] writes to a temporary file in the destination directory
//! and renames it over the destination only once everything succeeded, so a failure
//! never destroys an existing file.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
pub use rwkv7_core::gguf::{DEFAULT_ALIGNMENT, GgmlType, ValueType};

/// A metadata value. Strings are bytes (GGUF says UTF-8, but odd files can be written).
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Vec<u8>),
    /// Elements of one non-array type (given explicitly so empty arrays have a type).
    Array(ValueType, Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    /// The GGUF value type.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(..) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// A string value.
    pub fn str(s: impl AsRef<str>) -> Self {
        MetaValue::String(s.as_ref().as_bytes().to_vec())
    }

    /// An array of strings.
    pub fn string_array<S: AsRef<[u8]>>(items: impl IntoIterator<Item = S>) -> Self {
        MetaValue::Array(ValueType::String, items.into_iter().map(|s| MetaValue::String(s.as_ref().to_vec())).collect())
    }

    /// An array of i32.
    pub fn i32_array(items: impl IntoIterator<Item = i32>) -> Self {
        MetaValue::Array(ValueType::I32, items.into_iter().map(MetaValue::I32).collect())
    }

    /// An array of u32.
    pub fn u32_array(items: impl IntoIterator<Item = u32>) -> Self {
        MetaValue::Array(ValueType::U32, items.into_iter().map(MetaValue::U32).collect())
    }

    /// An array of f32.
    pub fn f32_array(items: impl IntoIterator<Item = f32>) -> Self {
        MetaValue::Array(ValueType::F32, items.into_iter().map(MetaValue::F32).collect())
    }

    /// Checks an array's elements: one declared type, no nesting.
    fn validate(&self) -> Result<()> {
        if let MetaValue::Array(ty, items) = self {
            ensure!(*ty != ValueType::Array, "arrays of arrays are not supported by GGUF readers");
            for item in items {
                ensure!(item.value_type() == *ty, "array declared as {ty:?} holds a {:?} element", item.value_type());
            }
        }
        Ok(())
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        match self {
            MetaValue::U8(v) => w.write_all(&[*v]),
            MetaValue::I8(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::U16(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::I16(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::U32(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::I32(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::F32(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::Bool(v) => w.write_all(&[u8::from(*v)]),
            MetaValue::String(s) => write_string(w, s),
            MetaValue::Array(ty, items) => {
                w.write_all(&(*ty as u32).to_le_bytes())?;
                w.write_all(&(items.len() as u64).to_le_bytes())?;
                items.iter().try_for_each(|i| i.write(w))
            }
            MetaValue::U64(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::I64(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::F64(v) => w.write_all(&v.to_le_bytes()),
        }
    }
}

macro_rules! meta_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for MetaValue {
            fn from(v: $t) -> Self {
                MetaValue::$v(v)
            }
        }
    )*};
}
meta_from!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32, bool => Bool,
    u64 => U64, i64 => I64, f64 => F64);

impl From<&str> for MetaValue {
    fn from(v: &str) -> Self {
        MetaValue::str(v)
    }
}

impl From<String> for MetaValue {
    fn from(v: String) -> Self {
        MetaValue::String(v.into_bytes())
    }
}

fn write_string(w: &mut impl Write, s: &[u8]) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s)
}

/// Streams a tensor's bytes into the file.
pub type TensorSource<'a> = Box<dyn FnOnce(&mut dyn Write) -> Result<()> + 'a>;

enum Data<'a> {
    Bytes(Cow<'a, [u8]>),
    Stream(TensorSource<'a>),
}

struct PendingTensor<'a> {
    name: String,
    ne: Vec<u64>,
    type_code: u32,
    n_bytes: u64,
    data: Data<'a>,
}

/// Size in bytes of a tensor of type `ty` and shape `ne`, checking the block rule.
pub fn tensor_bytes(ne: &[u64], ty: GgmlType) -> Result<u64> {
    let n = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).context("element count overflows")?;
    let ne0 = ne.first().copied().unwrap_or(1);
    ensure!(
        ne0 % ty.block_len() == 0,
        "ne[0] = {ne0} is not a multiple of the {} block size {}",
        ty.name(),
        ty.block_len()
    );
    (n / ty.block_len()).checked_mul(ty.block_bytes()).context("tensor size overflows")
}

/// Builds a GGUF v3 file: add metadata and tensors, then write it.
pub struct GgufWriter<'a> {
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor<'a>>,
    /// The tensors' names, for the duplicate check (a scan per tensor made writing
    /// quadratic in the tensor count).
    names: std::collections::HashSet<String>,
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> GgufWriter<'a> {
    /// An empty file with the default alignment (32).
    pub fn new() -> Self {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
            names: Default::default(),
        }
    }

    /// The data alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Sets the data alignment (a power of two). A value other than 32 is recorded as
    /// `general.alignment` (UINT32), as readers require.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<()> {
        ensure!(alignment.is_power_of_two(), "alignment {alignment} is not a power of two");
        self.alignment = alignment.into();
        self.metadata.retain(|(k, _)| k != "general.alignment");
        if self.alignment != DEFAULT_ALIGNMENT {
            self.metadata.push(("general.alignment".into(), MetaValue::U32(alignment)));
        }
        Ok(())
    }

    /// Adds a metadata key. Keys must be non-empty and unique; `general.alignment` must be
    /// a UINT32 power of two and also sets the alignment.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: impl Into<MetaValue>) -> Result<()> {
        let key = key.into();
        let value = value.into();
        ensure!(!key.is_empty(), "empty metadata key");
        ensure!(!self.has_metadata(&key), "metadata key `{key}` added twice");
        value.validate().with_context(|| format!("metadata key `{key}`"))?;
        if key == "general.alignment" {
            let MetaValue::U32(a) = value else { bail!("general.alignment must be a UINT32") };
            ensure!(a.is_power_of_two(), "general.alignment {a} is not a power of two");
            self.alignment = a.into();
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Whether `key` was added.
    pub fn has_metadata(&self, key: &str) -> bool {
        self.metadata.iter().any(|(k, _)| k == key)
    }

    /// Number of tensors added.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    fn check_new_tensor(&self, name: &str, ne: &[u64]) -> Result<()> {
        ensure!((1..=4).contains(&ne.len()), "tensor `{name}` has {} dimensions (1 to 4 allowed)", ne.len());
        ensure!(!ne.contains(&0), "tensor `{name}` has a zero dimension {ne:?}");
        ensure!(!self.names.contains(name), "tensor `{name}` added twice");
        Ok(())
    }

    /// Adds a tensor with its data; `ne` is innermost first. The data length must match.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ne: &[u64],
        ty: GgmlType,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<()> {
        let name = name.into();
        let data = data.into();
        self.check_new_tensor(&name, ne)?;
        let n_bytes = tensor_bytes(ne, ty).with_context(|| format!("tensor `{name}`"))?;
        ensure!(
            data.len() as u64 == n_bytes,
            "tensor `{name}` {} {ne:?} needs {n_bytes} bytes, got {}",
            ty.name(),
            data.len()
        );
        self.push_tensor(PendingTensor {
            name,
            ne: ne.to_vec(),
            type_code: ty.code(),
            n_bytes,
            data: Data::Bytes(data),
        });
        Ok(())
    }

    /// Adds a tensor whose data `source` writes at write time; it must write exactly the
    /// tensor's size in bytes.
    pub fn add_tensor_with(
        &mut self,
        name: impl Into<String>,
        ne: &[u64],
        ty: GgmlType,
        source: TensorSource<'a>,
    ) -> Result<()> {
        let name = name.into();
        self.check_new_tensor(&name, ne)?;
        let n_bytes = tensor_bytes(ne, ty).with_context(|| format!("tensor `{name}`"))?;
        self.push_tensor(PendingTensor {
            name,
            ne: ne.to_vec(),
            type_code: ty.code(),
            n_bytes,
            data: Data::Stream(source),
        });
        Ok(())
    }

    /// Adds a tensor record exactly as given, without any check: any type code, any
    /// dimensions, duplicate names, data of any length. For building deliberately broken
    /// files in tests. Offsets still advance by the data length, padded.
    pub fn add_raw_tensor(
        &mut self,
        name: impl Into<String>,
        ne: &[u64],
        type_code: u32,
        data: impl Into<Cow<'a, [u8]>>,
    ) {
        let data = data.into();
        self.push_tensor(PendingTensor {
            name: name.into(),
            ne: ne.to_vec(),
            type_code,
            n_bytes: data.len() as u64,
            data: Data::Bytes(data),
        });
    }

    /// Appends `t`, recording its name for [`GgufWriter::check_new_tensor`].
    fn push_tensor(&mut self, t: PendingTensor<'a>) {
        self.names.insert(t.name.clone());
        self.tensors.push(t);
    }

    /// Writes the whole file to `w`; returns the number of bytes written.
    pub fn write_to<W: Write>(self, w: W) -> Result<u64> {
        let align = self.alignment;
        let mut w = Counting { inner: w, pos: 0 };
        w.write_all(&rwkv7_core::gguf::MAGIC)?;
        w.write_all(&rwkv7_core::gguf::VERSION.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            write_string(&mut w, key.as_bytes())?;
            w.write_all(&(value.value_type() as u32).to_le_bytes())?;
            value.write(&mut w)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_string(&mut w, t.name.as_bytes())?;
            w.write_all(&(t.ne.len() as u32).to_le_bytes())?;
            for d in &t.ne {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.type_code.to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            offset =
                offset.checked_add(t.n_bytes.div_ceil(align) * align).context("total tensor data size overflows")?;
        }
        // Always pad, even without tensors: our reader (and ggml's) expects the data
        // section to start at an aligned offset inside the file.
        w.pad(align)?;
        for t in self.tensors {
            let start = w.pos;
            match t.data {
                Data::Bytes(b) => w.write_all(&b)?,
                Data::Stream(source) => source(&mut w).with_context(|| format!("tensor `{}`", t.name))?,
            }
            let written = w.pos - start;
            ensure!(written == t.n_bytes, "tensor `{}`: wrote {written} bytes, expected {}", t.name, t.n_bytes);
            w.pad(align)?;
        }
        w.flush()?;
        Ok(w.pos)
    }

    /// The whole file in memory.
    pub fn to_bytes(self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Writes the file to `path` through a temporary file in the same directory that is
    /// renamed over `path` at the end. Returns the file size.
    pub fn write_file(self, path: &Path) -> Result<u64> {
        self.write_file_checked(path, |_| Ok(()))
    }

    /// Like [`write_file`](Self::write_file), running `check` on the finished temporary
    /// file before it replaces `path`; if `check` fails, `path` is left untouched.
    pub fn write_file_checked(self, path: &Path, check: impl FnOnce(&Path) -> Result<()>) -> Result<u64> {
        let mut tmp = TempFile::create(path)?;
        let file = tmp.file.take().context("temporary file already closed")?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let size = self.write_to(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        check(&tmp.path)?;
        tmp.persist()?;
        Ok(size)
    }
}

/// Counts bytes written, for offsets and padding.
struct Counting<W> {
    inner: W,
    pos: u64,
}

impl<W: Write> Counting<W> {
    fn pad(&mut self, align: u64) -> io::Result<()> {
        let pad = self.pos.div_ceil(align) * align - self.pos;
        const ZEROS: [u8; 64] = [0; 64];
        let mut left = pad;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64) as usize;
            self.write_all(ZEROS.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        Ok(())
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary file next to the destination, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    /// The file it replaces (a symbolic link's target, resolved).
    dest: PathBuf,
    file: Option<File>,
    keep: bool,
}

impl TempFile {
    fn create(dest: &Path) -> Result<Self> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        dest.file_name().context("the output path has no file name")?;
        // A rename over a device or FIFO would replace it with the model file.
        let dest = match rwkv7::atomic_target(dest) {
            Ok(Some(dest)) => dest,
            Ok(None) => bail!("the output path is not a regular file (a device, FIFO or socket)"),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => bail!("the output path is a directory"),
            Err(e) => return Err(e).context("cannot inspect the output path"),
        };
        let name = dest.file_name().context("the output path has no file name")?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!(".{}.{}-{n}.tmp", name.to_string_lossy(), std::process::id());
        let path = dir.join(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        Ok(TempFile { path, dest, file: Some(file), keep: false })
    }

    fn persist(mut self) -> Result<()> {
        std::fs::rename(&self.path, &self.dest).context("cannot move the finished file into place")?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.file = None;
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwkv7_core::Gguf;
    use rwkv7_core::gguf::Value;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn round_trips_through_the_core_reader() {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", "rwkv7").unwrap();
        w.add_metadata("u8", 7u8).unwrap();
        w.add_metadata("i8", -7i8).unwrap();
        w.add_metadata("u16", 700u16).unwrap();
        w.add_metadata("i16", -700i16).unwrap();
        w.add_metadata("u32", 70000u32).unwrap();
        w.add_metadata("i32", -70000i32).unwrap();
        w.add_metadata("f32", 1.5f32).unwrap();
        w.add_metadata("bool", true).unwrap();
        w.add_metadata("u64", u64::MAX).unwrap();
        w.add_metadata("i64", i64::MIN).unwrap();
        w.add_metadata("f64", -2.25f64).unwrap();
        w.add_metadata("strings", MetaValue::string_array(["<s>", "\\n", ""])).unwrap();
        w.add_metadata("ints", MetaValue::i32_array([1, -3, 5])).unwrap();
        w.add_metadata("empty", MetaValue::Array(ValueType::U8, vec![])).unwrap();
        w.add_tensor("a", &[3], GgmlType::F32, f32s(&[1., 2., 3.])).unwrap();
        let half: Vec<u8> = (0..6u16).flat_map(|i| half::f16::from_f32(f32::from(i)).to_le_bytes()).collect();
        w.add_tensor("b", &[3, 2], GgmlType::F16, half.clone()).unwrap();
        w.add_tensor_with(
            "c",
            &[2, 1, 1, 2],
            GgmlType::BF16,
            Box::new(|out: &mut dyn Write| Ok(out.write_all(&[1, 2, 3, 4, 5, 6, 7, 8])?)),
        )
        .unwrap();
        let bytes = w.to_bytes().unwrap();
        assert_eq!(bytes.len() % 32, 0);

        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.alignment(), 32);
        assert_eq!(g.get("general.architecture").unwrap().as_str(), Some("rwkv7"));
        assert_eq!(g.get("u8"), Some(Value::U8(7)));
        assert_eq!(g.get("i8"), Some(Value::I8(-7)));
        assert_eq!(g.get("u16"), Some(Value::U16(700)));
        assert_eq!(g.get("i16"), Some(Value::I16(-700)));
        assert_eq!(g.get("u32"), Some(Value::U32(70000)));
        assert_eq!(g.get("i32"), Some(Value::I32(-70000)));
        assert_eq!(g.get("f32"), Some(Value::F32(1.5)));
        assert_eq!(g.get("bool"), Some(Value::Bool(true)));
        assert_eq!(g.get("u64"), Some(Value::U64(u64::MAX)));
        assert_eq!(g.get("i64"), Some(Value::I64(i64::MIN)));
        assert_eq!(g.get("f64"), Some(Value::F64(-2.25)));
        let strings: Vec<_> =
            g.get("strings").unwrap().as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(strings, ["<s>", "\\n", ""]);
        let ints: Vec<_> = g.get("ints").unwrap().as_array().unwrap().iter().collect();
        assert_eq!(ints, [Value::I32(1), Value::I32(-3), Value::I32(5)]);
        assert!(g.get("empty").unwrap().as_array().unwrap().is_empty());

        let t: Vec<_> = g.tensors().collect();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].name, t[0].dims(), t[0].ggml_type), ("a", &[3u64][..], GgmlType::F32));
        assert_eq!(t[0].data, f32s(&[1., 2., 3.]));
        assert_eq!((t[1].dims(), t[1].ggml_type), (&[3u64, 2][..], GgmlType::F16));
        assert_eq!(t[1].data, half);
        assert_eq!((t[2].dims(), t[2].ggml_type), (&[2u64, 1, 1, 2][..], GgmlType::BF16));
        assert_eq!(t[2].data, [1, 2, 3, 4, 5, 6, 7, 8]);
        // Packed in order at 32-byte alignment.
        assert_eq!(t[1].offset - t[0].offset, 32);
        assert_eq!(t[2].offset - t[1].offset, 32);
        assert_eq!(t[0].offset as usize, g.data_start());
        assert_eq!(g.data_start() % 32, 0);
    }

    #[test]
    fn custom_alignment_is_recorded() {
        let mut w = GgufWriter::new();
        w.set_alignment(64).unwrap();
        w.add_tensor("a", &[1], GgmlType::F32, f32s(&[1.])).unwrap();
        w.add_tensor("b", &[1], GgmlType::F32, f32s(&[2.])).unwrap();
        let bytes = w.to_bytes().unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.alignment(), 64);
        assert_eq!(g.get("general.alignment"), Some(Value::U32(64)));
        let t: Vec<_> = g.tensors().collect();
        assert_eq!(t[1].offset - t[0].offset, 64);
        assert!(GgufWriter::new().set_alignment(48).is_err());
    }

    #[test]
    fn refuses_inconsistent_input() {
        let mut w = GgufWriter::new();
        w.add_metadata("k", 1u32).unwrap();
        assert!(w.add_metadata("k", 2u32).is_err());
        assert!(w.add_metadata("", 2u32).is_err());
        assert!(w.add_metadata("mixed", MetaValue::Array(ValueType::U32, vec![MetaValue::I32(1)])).is_err());
        assert!(w.add_metadata("nested", MetaValue::Array(ValueType::Array, vec![])).is_err());
        assert!(w.add_metadata("general.alignment", 3u32).is_err());
        assert!(w.add_tensor("t", &[3], GgmlType::F32, vec![0u8; 8]).is_err());
        assert!(w.add_tensor("t", &[], GgmlType::F32, vec![]).is_err());
        assert!(w.add_tensor("t", &[0], GgmlType::F32, vec![]).is_err());
        assert!(w.add_tensor("q", &[16], GgmlType::Q8_0, vec![0u8; 17]).is_err());
        w.add_tensor("t", &[2], GgmlType::F32, vec![0u8; 8]).unwrap();
        assert!(w.add_tensor("t", &[2], GgmlType::F32, vec![0u8; 8]).is_err());
        // A streaming source that writes the wrong amount fails the write.
        w.add_tensor_with("s", &[2], GgmlType::F32, Box::new(|out: &mut dyn Write| Ok(out.write_all(&[0; 4])?)))
            .unwrap();
        let err = w.to_bytes().unwrap_err();
        assert!(format!("{err:#}").contains("tensor `s`: wrote 4 bytes, expected 8"), "{err:#}");
    }

    #[test]
    fn raw_tensors_allow_odd_files() {
        let mut w = GgufWriter::new();
        w.add_raw_tensor("x", &[4], 99, vec![0u8; 4]);
        let bytes = w.to_bytes().unwrap();
        assert!(matches!(Gguf::parse(&bytes), Err(rwkv7_core::GgufError::UnsupportedType { code: 99, .. })));
    }

    #[test]
    fn failed_write_keeps_the_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.gguf");
        std::fs::write(&path, b"precious").unwrap();
        let mut w = GgufWriter::new();
        w.add_tensor_with("t", &[1], GgmlType::F32, Box::new(|_: &mut dyn Write| bail!("source failed"))).unwrap();
        assert!(w.write_file(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        // A failing check also leaves it, and no temporary file stays behind.
        let mut w = GgufWriter::new();
        w.add_tensor("t", &[1], GgmlType::F32, f32s(&[1.])).unwrap();
        assert!(w.write_file_checked(&path, |_| bail!("check failed")).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A successful write replaces it.
        let mut w = GgufWriter::new();
        w.add_tensor("t", &[1], GgmlType::F32, f32s(&[1.])).unwrap();
        let size = w.write_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert!(Gguf::parse(&std::fs::read(&path).unwrap()).is_ok());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
