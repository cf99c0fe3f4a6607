//! Reads an official BlinkDL `.pth` checkpoint without torch (spec §3.1).
//!
//! A `torch.save` file is a zip archive: `<stem>/data.pkl` is a pickle of a flat
//! `{name: tensor}` dict, and each tensor's storage is a member `<stem>/data/<key>`.
//! The pickle is run by a small, strict interpreter that knows exactly the opcodes
//! `torch.save` emits. It never imports or calls anything: the only "globals" it accepts
//! are `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the
//! `torch.{BFloat16,Half,Float}Storage` markers, which it interprets itself. Any other
//! opcode or global is an error naming it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;
use std::rc::Rc;

use crate::checkpoint::{Bytes, DType, Tensor, map_file};

/// Upper bound on the size of `data.pkl`; a real one is ~100 bytes per tensor.
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// Upper bound on the values the pickle machine holds at once on its stack, its MARKs and
/// its memo (each): a checkpoint's pickle needs a few per tensor. Without it, a few MB of
/// `MARK` or `BINGET` opcodes grew the stack to gigabytes (found by fuzzing).
const MAX_PICKLE_VALUES: usize = 1 << 20;

/// Upper bound on a tensor's dimensions (torch allows 64; checkpoints use 1 to 4).
/// Checked before a size or stride tuple is copied: a tiny pickle calling
/// `_rebuild_tensor_v2` a thousand times on one memoized 100 000-element tuple grew to
/// gigabytes (found by fuzzing).
const MAX_DIMS: usize = 64;

/// Why a `.pth` file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PthError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a zip archive, or a damaged one.
    #[error("not a readable torch zip archive: {0}")]
    Zip(String),
    /// A pre-1.6 torch file (a bare pickle, not a zip).
    #[error(
        "this is a legacy (pre-zip) torch file; re-save it with torch >= 1.6 (`torch.save(torch.load(f), f2)`) and convert that"
    )]
    Legacy,
    /// The archive has no (or more than one) `<stem>/data.pkl`.
    #[error("{0}")]
    Layout(String),
    /// The pickle uses an opcode this reader does not implement.
    #[error("data.pkl: unsupported pickle opcode 0x{opcode:02x} ({name}) at byte {offset}")]
    Opcode {
        /// The opcode byte.
        opcode: u8,
        /// Its pickle name, or `unknown`.
        name: &'static str,
        /// Offset in `data.pkl`.
        offset: usize,
    },
    /// A malformed or unexpected pickle.
    #[error("data.pkl: {msg} (at byte {offset})")]
    Pickle {
        /// What is wrong.
        msg: String,
        /// Offset in `data.pkl`.
        offset: usize,
    },
    /// A tensor whose storage or layout cannot be used.
    #[error("tensor `{tensor}`: {msg}")]
    Tensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        msg: String,
    },
}

/// Reads the tensors of the `.pth` file at `path`, in file order. Stored (uncompressed)
/// storages are memory-mapped, not copied.
pub fn read_pth(path: &Path) -> Result<Vec<Tensor>, PthError> {
    parse_pth(map_file(path)?)
}

/// Reads the tensors of a `.pth` file held in `file`, in file order.
pub fn parse_pth(file: Bytes) -> Result<Vec<Tensor>, PthError> {
    let bytes = file.as_slice();
    if !bytes.starts_with(b"PK") {
        // torch's legacy format starts with a pickled magic number (protocol 2).
        if bytes.starts_with(&[0x80, 0x02]) {
            return Err(PthError::Legacy);
        }
        return Err(PthError::Zip("the file does not start with a zip header".into()));
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| PthError::Zip(e.to_string()))?;

    let mut stems = Vec::new();
    for name in zip.file_names() {
        let name = name.map_err(|e| PthError::Zip(e.to_string()))?;
        if let Some(stem) = name.strip_suffix("/data.pkl")
            && !stem.is_empty()
            && !stem.contains('/')
        {
            stems.push(stem.to_string());
        }
    }
    let stem = match stems.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(PthError::Layout(
                "the zip archive has no `<name>/data.pkl`; is this a torch.save file?".into(),
            ));
        }
        _ => return Err(PthError::Layout(format!("the zip archive has several pickles: {}", stems.join(", ")))),
    };

    if let Some(order) = read_member(&mut zip, &format!("{stem}/byteorder"), 64)?
        && order.trim_ascii() != b"little"
    {
        return Err(PthError::Layout(format!(
            "byte order is `{}`; only little-endian checkpoints are supported",
            String::from_utf8_lossy(order.trim_ascii())
        )));
    }

    let pickle = read_member(&mut zip, &format!("{stem}/data.pkl"), MAX_PICKLE_BYTES)?
        .ok_or_else(|| PthError::Layout("data.pkl disappeared".into()))?;
    let entries = Machine::new(&pickle).run()?;

    let mut storages: HashMap<String, (DType, Bytes)> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        let terr = |msg: String| PthError::Tensor { tensor: name.clone(), msg };
        let storage = &t.storage;
        let data = match storages.get(&storage.key) {
            Some((dtype, data)) if *dtype == storage.dtype => data.clone(),
            Some((dtype, _)) => {
                return Err(terr(format!("storage `{}` is used as both {dtype} and {}", storage.key, storage.dtype)));
            }
            None => {
                let member = format!("{stem}/data/{}", storage.key);
                let expected = storage.numel.checked_mul(storage.dtype.size() as u64);
                // The size is checked against the zip entry's before anything is read or
                // decompressed: a 1 MB file can hold a 1 GiB deflated storage.
                let data = storage_bytes(&mut zip, &file, &member, |size| {
                    (expected == Some(size)).then_some(()).ok_or_else(|| {
                        format!(
                            "storage `{}` has {size} bytes, but its header says {} {} elements",
                            storage.key, storage.numel, storage.dtype
                        )
                    })
                })
                .map_err(|e| match e {
                    PthError::Layout(msg) => terr(msg),
                    other => other,
                })?;
                storages.insert(storage.key.clone(), (storage.dtype, data.clone()));
                data
            }
        };
        let (start, len) = t.byte_range().map_err(terr)?;
        let bytes =
            data.slice(start, len).ok_or_else(|| terr(format!("its data lies outside storage `{}`", storage.key)))?;
        let shape = t
            .size
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| terr("dimension too large".into())))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Tensor::new(name.clone(), storage.dtype, shape, bytes).map_err(|e| terr(e.to_string()))?);
    }
    Ok(out)
}

/// Reads a small member fully; `None` if absent.
fn read_member(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, limit: u64) -> Result<Option<Vec<u8>>, PthError> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(PthError::Zip(format!("{name}: {e}"))),
    };
    if f.size() > limit {
        return Err(PthError::Layout(format!("{name} is {} bytes, more than the {limit} allowed", f.size())));
    }
    let mut buf = Vec::with_capacity(usize::try_from(f.size()).unwrap_or(0));
    f.read_to_end(&mut buf).map_err(|e| PthError::Zip(format!("{name}: {e}")))?;
    Ok(Some(buf))
}

/// The bytes of a storage member: a slice of the file when stored uncompressed (as
/// torch does), otherwise decompressed into memory.
fn storage_bytes(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    file: &Bytes,
    member: &str,
    check_size: impl FnOnce(u64) -> Result<(), String>,
) -> Result<Bytes, PthError> {
    let mut f = match zip.by_name(member) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(PthError::Layout(format!("its storage `{member}` is not in the archive")));
        }
        Err(e) => return Err(PthError::Zip(format!("{member}: {e}"))),
    };
    let size = f.size();
    check_size(size).map_err(PthError::Layout)?;
    if f.compression() == zip::CompressionMethod::Stored && !f.encrypted() {
        if f.compressed_size() != size {
            return Err(PthError::Zip(format!("{member}: stored entry with two different sizes")));
        }
        let start = f.data_start().ok_or_else(|| PthError::Zip(format!("{member}: unknown data offset")))?;
        let range = usize::try_from(start).ok().zip(usize::try_from(size).ok());
        return range
            .and_then(|(start, len)| file.slice(start, len))
            .ok_or_else(|| PthError::Zip(format!("{member}: data runs past the end of the file (truncated?)")));
    }
    let cap = usize::try_from(size).map_err(|_| PthError::Zip(format!("{member}: too large")))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(cap).map_err(|_| PthError::Zip(format!("{member}: {size} bytes do not fit in memory")))?;
    (&mut f).take(size).read_to_end(&mut buf).map_err(|e| PthError::Zip(format!("{member}: {e}")))?;
    if buf.len() as u64 != size {
        return Err(PthError::Zip(format!("{member}: {} bytes decompressed, the archive says {size}", buf.len())));
    }
    Ok(Bytes::from_vec(buf))
}

/// A storage reference from a persistent id: `('storage', <type>, key, location, numel)`.
#[derive(Clone, Debug, PartialEq)]
struct StorageRef {
    dtype: DType,
    key: String,
    numel: u64,
}

/// The arguments of `_rebuild_tensor_v2`.
#[derive(Clone, Debug, PartialEq)]
struct TensorRef {
    storage: StorageRef,
    offset: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
}

impl TensorRef {
    fn numel(&self) -> Option<u64> {
        self.size.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Byte range within the storage, after checking the strides are contiguous.
    fn byte_range(&self) -> Result<(usize, usize), String> {
        let numel = self.numel().ok_or("too many elements")?;
        if numel > 0 {
            let mut expected = 1u64;
            for (&d, &s) in self.size.iter().zip(&self.stride).rev() {
                // torch calls a tensor contiguous whatever the stride of a size-1 dimension.
                if d != 1 && s != expected {
                    return Err(format!(
                        "size {:?} with stride {:?} is not contiguous; save it with .contiguous()",
                        self.size, self.stride
                    ));
                }
                expected = expected.saturating_mul(d);
            }
        }
        let es = self.storage.dtype.size() as u64;
        if self.offset.checked_add(numel).is_none_or(|end| end > self.storage.numel) {
            return Err(format!(
                "elements {}..{} lie outside storage `{}` of {} elements",
                self.offset,
                self.offset.saturating_add(numel),
                self.storage.key,
                self.storage.numel
            ));
        }
        let bytes = |n: u64| n.checked_mul(es).and_then(|b| usize::try_from(b).ok()).ok_or("tensor too large");
        let (start, len) = (bytes(self.offset)?, bytes(numel)?);
        Ok((start, len))
    }
}

/// The callables the interpreter knows. They are interpreted, never imported.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    Storage(DType),
}

/// A pickle value. Containers are reference-counted so the memo and the stack share them
/// (as in Python) and memo lookups cost O(1).
#[derive(Clone, Debug)]
enum Val {
    None,
    Bool,
    Int(i64),
    Str(Rc<str>),
    Tuple(Rc<Items>),
    Dict(Rc<RefCell<Entries>>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

/// A tuple's items. Dropped iteratively ([`drop_nested`]): a pickle can nest tuples a
/// million deep in a few hundred bytes (`TUPLE1` after `TUPLE1`), and dropping them
/// recursively overflowed the stack (found by fuzzing).
#[derive(Debug)]
struct Items(Vec<Val>);

/// A dict's entries, in insertion order; dropped iteratively like [`Items`].
#[derive(Debug, Default)]
struct Entries(Vec<(Val, Val)>);

impl std::ops::Deref for Items {
    type Target = [Val];
    fn deref(&self) -> &[Val] {
        &self.0
    }
}

impl std::ops::Deref for Entries {
    type Target = Vec<(Val, Val)>;
    fn deref(&self) -> &Vec<(Val, Val)> {
        &self.0
    }
}

impl std::ops::DerefMut for Entries {
    fn deref_mut(&mut self) -> &mut Vec<(Val, Val)> {
        &mut self.0
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        drop_nested(std::mem::take(&mut self.0));
    }
}

impl Entries {
    /// Takes every key and value out, leaving the dict empty.
    fn drain_values(&mut self) -> impl Iterator<Item = Val> + '_ {
        self.0.drain(..).flat_map(|(k, v)| [k, v])
    }
}

impl Drop for Entries {
    fn drop(&mut self) {
        drop_nested(self.drain_values().collect());
    }
}

/// Drops `values` with a work list instead of recursion: the children of every container
/// this was the last owner of join the list before the (then empty) container drops.
fn drop_nested(mut values: Vec<Val>) {
    while let Some(v) = values.pop() {
        match v {
            Val::Tuple(mut t) => {
                if let Some(items) = Rc::get_mut(&mut t) {
                    values.append(&mut items.0);
                }
            }
            Val::Dict(mut d) => {
                if let Some(entries) = Rc::get_mut(&mut d) {
                    values.extend(entries.get_mut().drain_values());
                }
            }
            _ => {}
        }
    }
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::None => "None",
            Val::Bool => "a bool",
            Val::Int(_) => "an int",
            Val::Str(_) => "a string",
            Val::Tuple(_) => "a tuple",
            Val::Dict(_) => "a dict",
            Val::Global(_) => "a global",
            Val::Storage(_) => "a storage",
            Val::Tensor(_) => "a tensor",
        }
    }
}

/// The pickle opcode names, for error messages.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        _ => "unknown",
    }
}

/// The pickle virtual machine for the `torch.save` subset.
struct Machine<'a> {
    code: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed, for messages.
    op_pos: usize,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u32, Val>,
}

type Res<T> = Result<T, PthError>;

impl<'a> Machine<'a> {
    fn new(code: &'a [u8]) -> Self {
        Machine { code, pos: 0, op_pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }
    }

    fn err<T>(&self, msg: impl Into<String>) -> Res<T> {
        Err(PthError::Pickle { msg: msg.into(), offset: self.op_pos })
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let code = self.code;
        match self.pos.checked_add(n).and_then(|end| code.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => self.err("the pickle ends in the middle of an instruction"),
        }
    }

    fn arr<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.arr::<1>()?[0])
    }

    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    /// A newline-terminated ASCII line (GLOBAL arguments).
    fn line(&mut self) -> Res<&'a str> {
        let rest = self.code.get(self.pos..).unwrap_or_default();
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("GLOBAL argument is not newline-terminated");
        };
        let line = self.take(n + 1)?;
        match std::str::from_utf8(line.get(..n).unwrap_or_default()) {
            Ok(s) if s.is_ascii() => Ok(s),
            _ => self.err("GLOBAL argument is not ASCII"),
        }
    }

    fn utf8(&mut self, n: usize) -> Res<Val> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Val::Str(Rc::from(s))),
            Err(_) => self.err("string is not valid UTF-8"),
        }
    }

    fn push(&mut self, v: Val) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Res<Val> {
        if self.stack.len() <= self.marks.last().copied().unwrap_or(0) {
            return self.err("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    /// Pops everything above the innermost mark, and the mark.
    fn pop_mark(&mut self) -> Res<Vec<Val>> {
        let Some(mark) = self.marks.pop() else { return self.err("no MARK to pop to") };
        Ok(self.stack.split_off(mark))
    }

    fn top(&self) -> Res<&Val> {
        match self.stack.last() {
            Some(v) if self.stack.len() > self.marks.last().copied().unwrap_or(0) => Ok(v),
            _ => self.err("stack underflow"),
        }
    }

    fn memo_put(&mut self, idx: u32) -> Res<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Res<()> {
        match self.memo.get(&idx) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => self.err(format!("memo entry {idx} is read before it is written")),
        }
    }

    fn global(&self, module: &str, name: &str) -> Res<Val> {
        let g = match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch", "BFloat16Storage") => Global::Storage(DType::BF16),
            ("torch", "HalfStorage") => Global::Storage(DType::F16),
            ("torch", "FloatStorage") => Global::Storage(DType::F32),
            ("torch", s) if s.ends_with("Storage") => {
                return self.err(format!(
                    "tensor storage type torch.{s} is not supported (only BFloat16Storage, HalfStorage, FloatStorage)"
                ));
            }
            _ => {
                return self.err(format!(
                    "the pickle refers to `{module}.{name}`, which a plain tensor checkpoint never needs; refusing it"
                ));
            }
        };
        Ok(Val::Global(g))
    }

    fn int_of(&self, v: &Val, what: &str) -> Res<u64> {
        match v {
            Val::Int(i) if *i >= 0 => Ok(*i as u64),
            Val::Int(i) => self.err(format!("{what} must be a non-negative int, not {i}")),
            other => self.err(format!("{what} must be a non-negative int, not {}", other.kind())),
        }
    }

    fn ints_of(&self, v: &Val, what: &str) -> Res<Vec<u64>> {
        match v {
            Val::Tuple(items) if items.len() > MAX_DIMS => {
                self.err(format!("{what} has {} dimensions (at most {MAX_DIMS})", items.len()))
            }
            Val::Tuple(items) => items.iter().map(|i| self.int_of(i, what)).collect(),
            other => self.err(format!("{what} must be a tuple, not {}", other.kind())),
        }
    }

    fn is_empty_dict(v: &Val) -> bool {
        matches!(v, Val::Dict(d) if d.borrow().is_empty())
    }

    /// `persistent_load(('storage', <type>, key, location, numel))`.
    fn persistent_load(&self, pid: Val) -> Res<Val> {
        let Val::Tuple(items) = &pid else {
            return self.err(format!("persistent id must be a tuple, not {}", pid.kind()));
        };
        match &items[..] {
            [Val::Str(tag), Val::Global(Global::Storage(dtype)), Val::Str(key), Val::Str(_location), numel]
                if &**tag == "storage" =>
            {
                let numel = self.int_of(numel, "storage size")?;
                Ok(Val::Storage(Rc::new(StorageRef { dtype: *dtype, key: key.to_string(), numel })))
            }
            _ => self.err("persistent id is not ('storage', torch.<Type>Storage, key, location, numel)"),
        }
    }

    /// `callable(*args)` for the known callables.
    fn reduce(&self, callable: Val, args: Val) -> Res<Val> {
        let Val::Tuple(args) = args else {
            return self.err(format!("REDUCE arguments must be a tuple, not {}", args.kind()));
        };
        match callable {
            Val::Global(Global::OrderedDict) if args.is_empty() => Ok(Val::Dict(Rc::default())),
            Val::Global(Global::OrderedDict) => self.err("OrderedDict(...) with arguments is not supported"),
            Val::Global(Global::RebuildTensorV2) => {
                let (storage, offset, size, stride, requires_grad, hooks, meta) = match &args[..] {
                    [a, b, c, d, e, f] => (a, b, c, d, e, f, None),
                    [a, b, c, d, e, f, g] => (a, b, c, d, e, f, Some(g)),
                    _ => return self.err(format!("_rebuild_tensor_v2 takes 6 or 7 arguments, got {}", args.len())),
                };
                let Val::Storage(storage) = storage else {
                    return self.err(format!("tensor storage must be a persistent storage, not {}", storage.kind()));
                };
                let offset = self.int_of(offset, "storage offset")?;
                let size = self.ints_of(size, "tensor size")?;
                let stride = self.ints_of(stride, "tensor stride")?;
                if size.len() != stride.len() {
                    return self.err(format!("size {size:?} and stride {stride:?} have different lengths"));
                }
                if !matches!(requires_grad, Val::Bool) {
                    return self.err("requires_grad must be a bool");
                }
                if !Self::is_empty_dict(hooks) {
                    return self.err("tensors with backward hooks are not supported");
                }
                if meta.is_some_and(|m| !Self::is_empty_dict(m)) {
                    return self.err("tensors with extra metadata (e.g. conjugate or negative bits) are not supported");
                }
                Ok(Val::Tensor(Rc::new(TensorRef { storage: (**storage).clone(), offset, size, stride })))
            }
            Val::Global(Global::Storage(_)) => self.err("calling a storage type is not supported"),
            other => self.err(format!("cannot call {}", other.kind())),
        }
    }

    fn set_items(&mut self, items: Vec<Val>) -> Res<()> {
        if !items.len().is_multiple_of(2) {
            return self.err("SETITEMS with an odd number of items");
        }
        let Val::Dict(d) = self.top()? else {
            let kind = self.top()?.kind();
            return self.err(format!("SETITEM(S) on {kind}"));
        };
        let d = d.clone();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.borrow_mut().push((k, v));
        }
        Ok(())
    }

    /// Runs to STOP and returns the top-level dict's (name, tensor) entries in order.
    fn run(mut self) -> Res<Vec<(String, TensorRef)>> {
        loop {
            self.op_pos = self.pos;
            // Each opcode adds at most one value, MARK or memo entry, so checking here bounds them.
            if self.stack.len().max(self.marks.len()).max(self.memo.len()) > MAX_PICKLE_VALUES {
                return self.err(format!("more than {MAX_PICKLE_VALUES} values, MARKs or memo entries at once"));
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return self.err(format!("pickle protocol {proto} is not supported"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only.
                }
                b'}' => self.push(Val::Dict(Rc::default())),
                b')' => self.push(Val::Tuple(Rc::new(Items(Vec::new())))),
                b'(' => self.marks.push(self.stack.len()),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Val::Tuple(Rc::new(Items(items))));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Val::Tuple(Rc::new(Items(items))));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.utf8(n)?;
                    self.push(v);
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.utf8(n)?;
                    self.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let v = self.global(module, name)?;
                    self.push(v);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Val::Str(module), Val::Str(name)) = (&module, &name) else {
                        return self.err("STACK_GLOBAL needs two strings");
                    };
                    let v = self.global(module, name)?;
                    self.push(v);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v);
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Val::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Val::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr()?);
                    self.push(Val::Int(v.into()));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?;
                    if n > 8 {
                        return self.err(format!("LONG1 of {n} bytes does not fit in 64 bits"));
                    }
                    // Two's complement, little-endian, sign-extended from the top byte.
                    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
                    let mut buf = [if negative { 0xff } else { 0 }; 8];
                    buf.get_mut(..n).unwrap_or_default().copy_from_slice(bytes);
                    self.push(Val::Int(i64::from_le_bytes(buf)));
                }
                0x88 | 0x89 => self.push(Val::Bool),
                b'N' => self.push(Val::None),
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    match (self.top()?, &state) {
                        // OrderedDict's attributes (a state_dict's `_metadata`): not needed.
                        (Val::Dict(_), Val::Dict(_) | Val::None) => {}
                        (obj, _) => {
                            let msg = format!("BUILD of {} with {} is not supported", obj.kind(), state.kind());
                            return self.err(msg);
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(i.into())?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(i.into())?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'.' => return self.finish(),
                other => {
                    return Err(PthError::Opcode { opcode: other, name: opcode_name(other), offset: self.op_pos });
                }
            }
        }
    }

    fn finish(mut self) -> Res<Vec<(String, TensorRef)>> {
        if !self.marks.is_empty() || self.stack.len() != 1 {
            return self.err(format!("STOP with {} values and {} marks left", self.stack.len(), self.marks.len()));
        }
        let Some(Val::Dict(d)) = self.stack.pop() else {
            return self.err("the pickled object is not a dict of tensors");
        };
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in d.borrow().iter() {
            let Val::Str(name) = k else {
                return self.err(format!("a dict key is {}, not a tensor name", k.kind()));
            };
            let Val::Tensor(t) = v else {
                return self.err(format!("entry `{name}` is {}, not a tensor", v.kind()));
            };
            if !seen.insert(name.clone()) {
                return self.err(format!("tensor `{name}` appears twice"));
            }
            out.push((name.to_string(), (**t).clone()));
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pth_write::{Spec, build_pth, build_zip, pickle_for};

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn spec(name: &str, dtype: DType, shape: &[u64], key: &str, storage: Vec<u8>) -> Spec {
        Spec { name: name.into(), dtype, shape: shape.to_vec(), stride: None, offset: 0, key: key.into(), storage }
    }

    fn parse(bytes: Vec<u8>) -> Result<Vec<Tensor>, PthError> {
        parse_pth(Bytes::from_vec(bytes))
    }

    #[test]
    fn reads_all_dtypes_offsets_and_shared_storages() {
        let bf: Vec<u8> =
            [1.0f32, -2.0, 3.5, 0.25, 8.0, 9.0].iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
        let f16: Vec<u8> = [0.5f32, 1.5].iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
        let mut shared = spec("b", DType::BF16, &[2], "0", bf.clone());
        shared.offset = 4;
        let specs = [
            spec("a", DType::BF16, &[1, 1, 4], "0", bf.clone()),
            shared,
            spec("h", DType::F16, &[2], "1", f16),
            spec("f", DType::F32, &[2, 3], "2", f32_bytes(&[1., 2., 3., 4., 5., 6.])),
            spec("big", DType::F32, &[70000], "3", f32_bytes(&vec![0.5; 70000])),
        ];
        for deflate in [false, true] {
            let tensors = parse(build_pth(&specs, deflate)).unwrap();
            let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["a", "b", "h", "f", "big"]);
            assert_eq!(tensors[0].shape, [1, 1, 4]);
            assert_eq!(tensors[0].to_f32(), [1.0, -2.0, 3.5, 0.25]);
            assert_eq!(tensors[1].to_f32(), [8.0, 9.0]);
            assert_eq!(tensors[2].dtype, DType::F16);
            assert_eq!(tensors[2].to_f32(), [0.5, 1.5]);
            assert_eq!(tensors[3].shape, [2, 3]);
            assert_eq!(tensors[3].to_f32(), [1., 2., 3., 4., 5., 6.]);
            assert_eq!(tensors[4].numel(), 70000);
        }
    }

    #[test]
    fn size_one_dimensions_may_have_any_stride() {
        let mut s = spec("a", DType::F32, &[1, 1, 3], "0", f32_bytes(&[1., 2., 3.]));
        s.stride = Some(vec![99, 7, 1]);
        assert_eq!(parse(build_pth(&[s], false)).unwrap()[0].to_f32(), [1., 2., 3.]);
    }

    #[test]
    fn rejects_non_contiguous() {
        let mut s = spec("t", DType::F32, &[2, 2], "0", f32_bytes(&[1., 2., 3., 4.]));
        s.stride = Some(vec![1, 2]); // a transposed view
        let err = parse(build_pth(&[s], false)).unwrap_err().to_string();
        assert!(err.starts_with("tensor `t`: size [2, 2] with stride [1, 2] is not contiguous"), "{err}");
    }

    #[test]
    fn rejects_storage_too_short() {
        // The tensor claims 4 elements from offset 1 of a 4-element storage.
        let mut s = spec("t", DType::F32, &[4], "0", f32_bytes(&[1., 2., 3., 4.]));
        s.offset = 1;
        let err = parse(build_pth(&[s], false)).unwrap_err().to_string();
        assert!(err.contains("elements 1..5 lie outside storage `0` of 4 elements"), "{err}");

        // The storage member is shorter than its header's element count.
        let s = spec("t", DType::F32, &[4], "0", f32_bytes(&[1., 2., 3., 4.]));
        let pickle = pickle_for(&[s]);
        let zip = build_zip("m", &pickle, &[("0", &f32_bytes(&[1., 2., 3.]))], false);
        let err = parse(zip).unwrap_err().to_string();
        assert!(err.contains("storage `0` has 12 bytes, but its header says 4 f32 elements"), "{err}");

        // The storage member is missing.
        let zip = build_zip("m", &pickle, &[], false);
        let err = parse(zip).unwrap_err().to_string();
        assert!(err.contains("storage `m/data/0` is not in the archive"), "{err}");
    }

    #[test]
    fn rejects_truncated_zip() {
        let good = build_pth(&[spec("t", DType::F32, &[4], "0", f32_bytes(&[1., 2., 3., 4.]))], false);
        for cut in [good.len() / 2, good.len() - 10, 30] {
            let err = parse(good[..cut].to_vec()).unwrap_err();
            assert!(matches!(err, PthError::Zip(_)), "cut at {cut}: {err}");
        }
        assert!(matches!(parse(b"hello".to_vec()).unwrap_err(), PthError::Zip(_)));
        assert!(matches!(parse(vec![0x80, 2, b'}', b'.']).unwrap_err(), PthError::Legacy));
    }

    fn run_pickle(p: &[u8]) -> Result<Vec<Tensor>, PthError> {
        parse(build_zip("m", p, &[], false))
    }

    #[test]
    fn deep_nesting_and_floods_fail_cleanly() {
        // 300 000 nested one-tuples: dropped recursively, they overflowed the stack.
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 300_000));
        p.push(b'.');
        let err = run_pickle(&p).unwrap_err().to_string();
        assert!(err.contains("not a dict of tensors"), "{err}");
        // More MARKs than the machine holds.
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'(', MAX_PICKLE_VALUES + 2));
        let err = run_pickle(&p).unwrap_err().to_string();
        assert!(err.contains("MARKs or memo entries at once"), "{err}");
    }

    #[test]
    fn rejects_bad_opcodes_and_globals() {
        let err = run_pickle(&[0x80, 2, b']', b'.']).unwrap_err();
        assert!(matches!(err, PthError::Opcode { opcode: b']', name: "EMPTY_LIST", offset: 2 }), "{err}");
        assert_eq!(err.to_string(), "data.pkl: unsupported pickle opcode 0x5d (EMPTY_LIST) at byte 2");

        let err = run_pickle(b"\x80\x02cos\nsystem\n.").unwrap_err().to_string();
        assert!(err.contains("`os.system`") && err.contains("refusing"), "{err}");

        let err = run_pickle(b"\x80\x02ctorch\nDoubleStorage\n.").unwrap_err().to_string();
        assert!(err.contains("torch.DoubleStorage is not supported"), "{err}");

        let err = run_pickle(&[0x80, 2, b'}', b'K']).unwrap_err().to_string();
        assert!(err.contains("ends in the middle"), "{err}");

        let err = run_pickle(&[0x80, 2, b'}', b'h', 7, b'.']).unwrap_err().to_string();
        assert!(err.contains("memo entry 7"), "{err}");

        let err = run_pickle(&[0x80, 2, b'}', b'X', 1, 0, 0, 0, b'k', b'K', 1, b's', b'.']).unwrap_err().to_string();
        assert!(err.contains("entry `k` is an int, not a tensor"), "{err}");

        let err = run_pickle(&[0x80, 2, b'K', 1, b'.']).unwrap_err().to_string();
        assert!(err.contains("not a dict of tensors"), "{err}");

        let err = run_pickle(&[0x80, 2, b'R', b'.']).unwrap_err().to_string();
        assert!(err.contains("stack underflow"), "{err}");
    }

    #[test]
    fn accepts_protocol_4_framing_and_ordered_dict_with_metadata() {
        // PROTO 4, FRAME, STACK_GLOBAL of OrderedDict, MEMOIZE, BUILD with `_metadata`.
        let mut p = vec![0x80, 4, 0x95];
        p.extend(0u64.to_le_bytes());
        p.extend([0x8c, 11]);
        p.extend(b"collections");
        p.push(0x94);
        p.extend([0x8c, 11]);
        p.extend(b"OrderedDict");
        p.extend([0x94, 0x93, 0x94, b')', b'R', 0x94]);
        // state: {'_metadata': {'': {'version': 1}}} via SETITEM
        p.extend([b'}', 0x94, 0x8c, 9]);
        p.extend(b"_metadata");
        p.extend([b'}', 0x8c, 0, b'}', 0x8c, 7]);
        p.extend(b"version");
        p.extend([b'K', 1, b's', b's', b's', b'b', b'.']);
        assert!(run_pickle(&p).unwrap().is_empty());
    }
}
