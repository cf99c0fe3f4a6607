//! A zero-copy GGUF v3 reader over borrowed bytes.
//!
//! [`Gguf::parse`] walks the whole header once and checks every count, length, offset,
//! alignment and type, so that every later accessor works on validated data and can
//! neither panic nor read out of bounds. Nothing is copied or allocated.
//! The byte layout is documented in `docs/FORMAT.md`.

use core::fmt;

/// `GGUF` in the first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The only GGUF version this reader accepts (v1 and v2 use other integer widths).
pub const VERSION: u32 = 3;
/// Tensor data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// GGML tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;

/// The element types a GGUF tensor can have, with ggml's numeric codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs, non_camel_case_types)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
}

impl GgmlType {
    /// The type for a ggml code, if this reader knows its block layout.
    pub fn from_code(code: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match code {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            _ => return None,
        })
    }

    /// The ggml code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Elements per block (1 for plain types, 32 for Q*_0/Q*_1, 256 for K-quants).
    pub fn block_len(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | I32 => 4,
            F16 | BF16 | I16 => 2,
            I8 => 1,
            I64 | F64 => 8,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
        }
    }

    /// ggml's lower-case name, e.g. `q8_0`.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            Q4_0 => "q4_0",
            Q4_1 => "q4_1",
            Q5_0 => "q5_0",
            Q5_1 => "q5_1",
            Q8_0 => "q8_0",
            Q8_1 => "q8_1",
            Q2_K => "q2_K",
            Q3_K => "q3_K",
            Q4_K => "q4_K",
            Q5_K => "q5_K",
            Q6_K => "q6_K",
            Q8_K => "q8_K",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            F64 => "f64",
            BF16 => "bf16",
        }
    }
}

/// The type code of a metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// The value type for a GGUF code.
    pub fn from_code(code: u32) -> Option<Self> {
        use ValueType::*;
        Some(match code {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Size in bytes of a fixed-size value; `None` for strings and arrays.
    fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }
}

/// Which part of the file a problem was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Magic, version and counts.
    Header,
    /// The key/value metadata.
    Metadata,
    /// The tensor info records.
    TensorInfo,
    /// The tensor data.
    TensorData,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Metadata => "metadata",
            Section::TensorInfo => "tensor table",
            Section::TensorData => "tensor data",
        })
    }
}

/// Why a GGUF file was rejected. Payloads borrow from the file; nothing is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GgufError<'a> {
    /// The file does not start with `GGUF`.
    BadMagic([u8; 4]),
    /// A GGUF version other than 3.
    UnsupportedVersion(u32),
    /// The file ends inside `section`, at byte `offset`.
    Truncated {
        /// Where.
        section: Section,
        /// Byte offset at which more data was needed.
        offset: u64,
    },
    /// A count or length cannot fit in what is left of the file.
    CountTooLarge {
        /// Where.
        section: Section,
        /// The count read.
        count: u64,
        /// Bytes left in the file after the count.
        left: u64,
    },
    /// A key or tensor name is not valid UTF-8.
    NotUtf8 {
        /// Where.
        section: Section,
        /// Index of the record.
        index: u64,
    },
    /// A metadata value has an unknown type code.
    BadValueType {
        /// The key.
        key: &'a str,
        /// The code read.
        code: u32,
    },
    /// An array of arrays (not used by any known writer, and refused here).
    NestedArray {
        /// The key.
        key: &'a str,
    },
    /// `general.alignment` is zero, not a power of two, or not a u32.
    BadAlignment(u64),
    /// A tensor with zero or more than four dimensions.
    BadDimCount {
        /// Tensor name.
        tensor: &'a str,
        /// Dimensions read.
        n_dims: u32,
    },
    /// A dimension is zero or the element count overflows.
    BadShape {
        /// Tensor name.
        tensor: &'a str,
    },
    /// A ggml type code this reader does not know.
    UnsupportedType {
        /// Tensor name.
        tensor: &'a str,
        /// The code read.
        code: u32,
    },
    /// The innermost dimension is not a whole number of blocks of the tensor's type.
    PartialBlock {
        /// Tensor name.
        tensor: &'a str,
        /// Innermost dimension.
        ne0: u64,
        /// Block length of the type.
        block: u64,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    Misaligned {
        /// Tensor name.
        tensor: &'a str,
        /// Offset from the start of the data section.
        offset: u64,
        /// Required alignment.
        alignment: u64,
    },
    /// A tensor's data extends past the end of the file.
    OutOfBounds {
        /// Tensor name.
        tensor: &'a str,
        /// Absolute end offset of the data.
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// Two tensors share a name.
    DuplicateTensor {
        /// Tensor name.
        tensor: &'a str,
    },
    /// The tensors' data add up to more than the data section holds, so some share bytes.
    OverlappingData {
        /// Bytes of data the tensor records add up to.
        declared: u64,
        /// Bytes from the start of the data section to the end of the file.
        available: u64,
    },
}

impl fmt::Display for GgufError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufError::*;
        match *self {
            BadMagic(m) => write!(f, "not a GGUF file (magic bytes {m:02x?}, expected \"GGUF\")"),
            UnsupportedVersion(v) => write!(f, "GGUF version {v} is not supported (only version {VERSION})"),
            Truncated { section, offset } => write!(f, "file is truncated in the {section} at byte {offset}"),
            CountTooLarge { section, count, left } => write!(
                f,
                "the {section} gives a count of {count}, which does not fit in the {left} bytes that follow (truncated or corrupt file)"
            ),
            NotUtf8 { section, index } => write!(f, "name of record {index} in the {section} is not valid UTF-8"),
            BadValueType { key, code } => write!(f, "metadata key `{}` has unknown value type {code}", Name(key)),
            NestedArray { key } => {
                write!(f, "metadata key `{}` is an array of arrays, which is not supported", Name(key))
            }
            BadAlignment(a) => write!(f, "general.alignment {a} is not a power of two"),
            BadDimCount { tensor, n_dims } => {
                write!(f, "tensor `{}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)", Name(tensor))
            }
            BadShape { tensor } => write!(f, "tensor `{}` has a zero dimension or too many elements", Name(tensor)),
            UnsupportedType { tensor, code } => {
                write!(f, "tensor `{}` has ggml type {code}, which this runtime does not support", Name(tensor))
            }
            PartialBlock { tensor, ne0, block } => {
                write!(
                    f,
                    "tensor `{}` has rows of {ne0} elements, not a multiple of its block size {block}",
                    Name(tensor)
                )
            }
            Misaligned { tensor, offset, alignment } => {
                write!(
                    f,
                    "tensor `{}` data offset {offset} is not a multiple of the alignment {alignment}",
                    Name(tensor)
                )
            }
            OutOfBounds { tensor, end, file_len } => {
                write!(
                    f,
                    "tensor `{}` data ends at byte {end}, past the end of the file ({file_len} bytes)",
                    Name(tensor)
                )
            }
            DuplicateTensor { tensor } => write!(f, "tensor `{}` appears twice", Name(tensor)),
            OverlappingData { declared, available } => write!(
                f,
                "the tensors' data add up to {declared} bytes, more than the {available} bytes of the data section: tensors share data"
            ),
        }
    }
}

impl core::error::Error for GgufError<'_> {}

/// A name read from a file, as an error message shows it: control characters escaped
/// (`\n`, `\u{1b}`), so that the message stays one line and cannot drive a terminal, and
/// cut after [`Name::MAX_CHARS`] characters (a corrupt length can make a "name" of
/// megabytes).
pub struct Name<'a>(pub &'a str);

impl Name<'_> {
    /// Characters shown before the name is cut (the longest tensor and key names of
    /// RWKV-7 files are about 40).
    pub const MAX_CHARS: usize = 96;
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == Self::MAX_CHARS {
                return f.write_str("…");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A little-endian cursor that never reads past the end.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    section: Section,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError<'a>> {
        let truncated = GgufError::Truncated { section: self.section, offset: self.pos as u64 };
        let n = usize::try_from(n).map_err(|_| truncated)?;
        let end = self.pos.checked_add(n).ok_or(truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError<'a>> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, GgufError<'a>> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError<'a>> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A GGUF string: u64 length, then that many bytes.
    fn string(&mut self) -> Result<&'a [u8], GgufError<'a>> {
        let len = self.u64()?;
        self.take(len)
    }

    /// A count that must be coverable by at least `min_bytes_each` bytes per item of
    /// what is left of the file, so huge counts are refused before any loop runs.
    fn count(&mut self, min_bytes_each: u64) -> Result<u64, GgufError<'a>> {
        let count = self.u64()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if count.checked_mul(min_bytes_each).is_none_or(|need| need > left) {
            return Err(GgufError::CountTooLarge { section: self.section, count, left });
        }
        Ok(count)
    }
}

/// A metadata value. Strings are raw bytes (GGUF says UTF-8; use [`Value::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a [u8]),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    /// Any non-negative integer value as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float value (f32 or f64) as f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// A string value, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(s) => core::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// An array value.
    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A validated metadata array: `len` elements of `elem_type` stored in `bytes`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    elem_type: ValueType,
    len: u64,
    bytes: &'a [u8],
}

impl<'a> Array<'a> {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in order. Arrays were validated at parse time, so this yields
    /// exactly `len` values.
    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let mut cur = Cursor { bytes: self.bytes, pos: 0, section: Section::Metadata };
        let ty = self.elem_type;
        (0..self.len).map_while(move |_| read_scalar(&mut cur, ty).ok())
    }
}

/// Reads one non-array value of type `ty`.
fn read_scalar<'a>(cur: &mut Cursor<'a>, ty: ValueType) -> Result<Value<'a>, GgufError<'a>> {
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.array::<1>()?[0]),
        ValueType::I8 => Value::I8(cur.array::<1>()?[0] as i8),
        ValueType::Bool => Value::Bool(cur.array::<1>()?[0] != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array()?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array()?)),
        ValueType::U32 => Value::U32(cur.u32()?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array()?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array()?)),
        ValueType::U64 => Value::U64(cur.u64()?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array()?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array()?)),
        ValueType::String => Value::String(cur.string()?),
        // Arrays are handled by `read_value`; an array element of type Array is refused there.
        ValueType::Array => return Err(GgufError::Truncated { section: cur.section, offset: cur.pos as u64 }),
    })
}

/// Reads one key/value record, validating arrays element by element.
fn read_kv<'a>(cur: &mut Cursor<'a>, index: u64) -> Result<(&'a str, Value<'a>), GgufError<'a>> {
    let key =
        core::str::from_utf8(cur.string()?).map_err(|_| GgufError::NotUtf8 { section: Section::Metadata, index })?;
    let code = cur.u32()?;
    let ty = ValueType::from_code(code).ok_or(GgufError::BadValueType { key, code })?;
    if ty != ValueType::Array {
        return Ok((key, read_scalar(cur, ty)?));
    }
    let elem_code = cur.u32()?;
    let elem_type = ValueType::from_code(elem_code).ok_or(GgufError::BadValueType { key, code: elem_code })?;
    if elem_type == ValueType::Array {
        return Err(GgufError::NestedArray { key });
    }
    // Every element takes at least one byte (strings take eight for their length).
    let len = cur.count(elem_type.fixed_size().unwrap_or(8))?;
    let start = cur.pos;
    match elem_type.fixed_size() {
        Some(size) => {
            cur.take(len * size)?; // `count` guaranteed len·size fits in what is left.
        }
        None => {
            for _ in 0..len {
                cur.string()?;
            }
        }
    }
    let bytes = &cur.bytes[start..cur.pos];
    Ok((key, Value::Array(Array { elem_type, len, bytes })))
}

/// One tensor record: name, shape, type and the bytes of its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// Tensor name, e.g. `blk.0.time_mix_key.weight`.
    pub name: &'a str,
    /// `ne[0..n_dims]`, innermost first; unused dimensions are 1.
    pub ne: [u64; MAX_DIMS],
    /// Number of dimensions recorded in the file.
    pub n_dims: u32,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// The data (exactly `n_bytes()` long).
    pub data: &'a [u8],
}

impl TensorInfo<'_> {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// The shape as recorded, innermost first.
    pub fn dims(&self) -> &[u64] {
        &self.ne[..self.n_dims as usize]
    }
}

/// Reads one tensor info record; `data_start` is not known yet, so the offset is relative.
fn read_tensor_info<'a>(cur: &mut Cursor<'a>, index: u64) -> Result<(TensorInfo<'a>, u64), GgufError<'a>> {
    let name =
        core::str::from_utf8(cur.string()?).map_err(|_| GgufError::NotUtf8 { section: Section::TensorInfo, index })?;
    let n_dims = cur.u32()?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(GgufError::BadDimCount { tensor: name, n_dims });
    }
    let mut ne = [1u64; MAX_DIMS];
    for d in ne.iter_mut().take(n_dims as usize) {
        *d = cur.u64()?;
    }
    let code = cur.u32()?;
    let rel_offset = cur.u64()?;
    let ggml_type = GgmlType::from_code(code).ok_or(GgufError::UnsupportedType { tensor: name, code })?;
    let bad_shape = GgufError::BadShape { tensor: name };
    if ne.contains(&0) {
        return Err(bad_shape);
    }
    ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).ok_or(bad_shape)?;
    if ne[0] % ggml_type.block_len() != 0 {
        return Err(GgufError::PartialBlock { tensor: name, ne0: ne[0], block: ggml_type.block_len() });
    }
    let info = TensorInfo { name, ne, n_dims, ggml_type, offset: rel_offset, data: &[] };
    Ok((info, rel_offset))
}

/// Size in bytes of a tensor's data, or `None` on overflow.
fn data_size(ne: &[u64; MAX_DIMS], ty: GgmlType) -> Option<u64> {
    let n: u64 = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    (n / ty.block_len()).checked_mul(ty.block_bytes())
}

/// A validated GGUF file borrowed from `bytes`.
#[derive(Clone, Copy, Debug)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    kv_count: u64,
    tensor_count: u64,
    kv_start: usize,
    tensors_start: usize,
    data_start: usize,
    alignment: u64,
}

impl<'a> Gguf<'a> {
    /// Parses and validates the whole header and tensor table.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError<'a>> {
        let mut cur = Cursor { bytes, pos: 0, section: Section::Header };
        let magic = cur.array::<4>()?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = cur.u32()?;
        if version != VERSION {
            return Err(GgufError::UnsupportedVersion(version));
        }
        // A tensor record takes at least 8 (name length) + 4 + 8 + 4 + 8 = 32 bytes,
        // a key/value record at least 8 (key length) + 4 + 1 = 13 bytes.
        let tensor_count = cur.u64()?;
        let kv_count = cur.u64()?;
        let left = (bytes.len() - cur.pos) as u64;
        for (count, min) in [(tensor_count, 32u64), (kv_count, 13)] {
            if count.checked_mul(min).is_none_or(|need| need > left) {
                return Err(GgufError::CountTooLarge { section: Section::Header, count, left });
            }
        }

        cur.section = Section::Metadata;
        let kv_start = cur.pos;
        let mut alignment = DEFAULT_ALIGNMENT;
        for i in 0..kv_count {
            let (key, value) = read_kv(&mut cur, i)?;
            if key == "general.alignment" {
                alignment = match value {
                    Value::U32(a) if a.is_power_of_two() => a.into(),
                    other => return Err(GgufError::BadAlignment(other.as_u64().unwrap_or(0))),
                };
            }
        }

        cur.section = Section::TensorInfo;
        let tensors_start = cur.pos;
        let (mut max_end, mut total) = (0u64, 0u64);
        for i in 0..tensor_count {
            let (info, rel) = read_tensor_info(&mut cur, i)?;
            if rel % alignment != 0 {
                return Err(GgufError::Misaligned { tensor: info.name, offset: rel, alignment });
            }
            let size = data_size(&info.ne, info.ggml_type).ok_or(GgufError::BadShape { tensor: info.name })?;
            total = total.saturating_add(size);
            let file_len = bytes.len() as u64;
            let past_end = GgufError::OutOfBounds { tensor: info.name, end: u64::MAX, file_len };
            let end = rel.checked_add(size).ok_or(past_end)?;
            max_end = max_end.max(end);
        }
        let data_start = (cur.pos as u64).div_ceil(alignment).saturating_mul(alignment);
        let file_len = bytes.len() as u64;
        let gguf = Gguf { bytes, kv_count, tensor_count, kv_start, tensors_start, data_start: 0, alignment };
        if tensor_count > 0 && data_start.checked_add(max_end).is_none_or(|end| end > file_len) {
            // Name the first tensor that does not fit.
            for info in gguf.raw_tensors() {
                let end = data_start
                    .saturating_add(info.offset)
                    .saturating_add(data_size(&info.ne, info.ggml_type).unwrap_or(u64::MAX));
                if end > file_len {
                    return Err(GgufError::OutOfBounds { tensor: info.name, end, file_len });
                }
            }
            return Err(GgufError::Truncated { section: Section::TensorData, offset: file_len });
        }
        // Tensors that share bytes would let a small file describe a huge model (and a
        // recurrent state of gigabytes: found by fuzzing); writers never overlap them.
        let available = file_len.saturating_sub(data_start);
        if total > available {
            return Err(GgufError::OverlappingData { declared: total, available });
        }
        let gguf = Gguf { data_start: data_start as usize, ..gguf };
        gguf.check_unique_names()?;
        Ok(gguf)
    }

    /// Refuses duplicate tensor names, which would make lookups ambiguous. With `alloc`,
    /// by sorting the names: O(n log n), where comparing every pair (re-reading the table
    /// for each tensor) took 160 s on a 1.5 MB file of 40 000 one-element tensors (found
    /// by fuzzing). Without `alloc` (microcontroller builds, whose models sit in their own
    /// flash), pair by pair.
    fn check_unique_names(&self) -> Result<(), GgufError<'a>> {
        #[cfg(feature = "alloc")]
        {
            let mut names: alloc::vec::Vec<&'a str> = self.raw_tensors().map(|t| t.name).collect();
            names.sort_unstable();
            match names.windows(2).find(|w| w[0] == w[1]) {
                Some(w) => Err(GgufError::DuplicateTensor { tensor: w[0] }),
                None => Ok(()),
            }
        }
        #[cfg(not(feature = "alloc"))]
        {
            for (i, a) in self.raw_tensors().enumerate() {
                if self.raw_tensors().skip(i + 1).any(|b| b.name == a.name) {
                    return Err(GgufError::DuplicateTensor { tensor: a.name });
                }
            }
            Ok(())
        }
    }

    /// Tensor records with offsets relative to the data section and no data attached.
    fn raw_tensors(&self) -> impl Iterator<Item = TensorInfo<'a>> + 'a {
        self.raw_tensors_from(self.first_tensor()).map(|(t, _)| t)
    }

    /// [`Gguf::raw_tensors`] from record `at` on, each with the cursor of its own record.
    fn raw_tensors_from(&self, at: TensorCursor) -> impl Iterator<Item = (TensorInfo<'a>, TensorCursor)> + 'a {
        let mut cur = Cursor { bytes: self.bytes, pos: at.pos, section: Section::TensorInfo };
        (at.index..self.tensor_count).map_while(move |index| {
            let here = TensorCursor { index, pos: cur.pos };
            read_tensor_info(&mut cur, index).ok().map(|(t, _)| (t, here))
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Tensor data alignment in bytes.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// Number of metadata records.
    pub fn kv_count(&self) -> u64 {
        self.kv_count
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> u64 {
        self.tensor_count
    }

    /// All metadata records in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let mut cur = Cursor { bytes: self.bytes, pos: self.kv_start, section: Section::Metadata };
        (0..self.kv_count).map_while(move |i| read_kv(&mut cur, i).ok())
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// All tensors in file order, with absolute offsets and their data.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo<'a>> + 'a {
        self.tensors_from(self.first_tensor()).map(|(t, _)| t)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|t| t.name == name)
    }

    /// Where the tensor table starts.
    pub fn first_tensor(&self) -> TensorCursor {
        TensorCursor { index: 0, pos: self.tensors_start }
    }

    /// The tensors from record `at` to the end of the table, each with the cursor of its
    /// own record.
    pub fn tensors_from(&self, at: TensorCursor) -> impl Iterator<Item = (TensorInfo<'a>, TensorCursor)> + 'a {
        let (bytes, data_start) = (self.bytes, self.data_start as u64);
        self.raw_tensors_from(at).filter_map(move |(mut t, here)| {
            // Bounds were checked in `parse`; `get` keeps this panic-free regardless.
            let size = data_size(&t.ne, t.ggml_type)?;
            t.offset += data_start;
            t.data = bytes.get(usize::try_from(t.offset).ok()?..usize::try_from(t.offset + size).ok()?)?;
            Some((t, here))
        })
    }

    /// The first tensor whose name passes `wanted`, searched from record `near` to the
    /// end of the table and then from its start. Lookups that start near the tensor (a
    /// model's tensors come layer by layer) then read a few records, not the whole
    /// table: one lookup per tensor from the start made loading quadratic (about 15 ms
    /// for the 678 tensors of a 0.4B model).
    pub fn find_tensor_near(
        &self,
        near: TensorCursor,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<(TensorInfo<'a>, TensorCursor)> {
        let before_near = usize::try_from(near.index).unwrap_or(usize::MAX);
        self.tensors_from(near)
            .chain(self.tensors_from(self.first_tensor()).take(before_near))
            .find(|(t, _)| wanted(t.name))
    }
}

/// The position of a record in the tensor table (from [`Gguf::first_tensor`] or
/// [`Gguf::tensors_from`]), to start a search near it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorCursor {
    index: u64,
    pos: usize,
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// A GGUF of `names.len()` one-element f32 tensors, each in its own aligned slot
    /// (`shared`: all at offset 0).
    fn tiny_tensors(names: &[std::string::String], shared: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend((names.len() as u64).to_le_bytes());
        b.extend(0u64.to_le_bytes());
        for (i, name) in names.iter().enumerate() {
            b.extend((name.len() as u64).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(1u32.to_le_bytes()); // dimensions
            b.extend(1u64.to_le_bytes()); // ne[0]
            b.extend(0u32.to_le_bytes()); // F32
            let offset = if shared { 0 } else { i as u64 * DEFAULT_ALIGNMENT };
            b.extend(offset.to_le_bytes());
        }
        let slots = if shared { 1 } else { names.len() };
        b.resize(b.len().next_multiple_of(DEFAULT_ALIGNMENT as usize) + slots * DEFAULT_ALIGNMENT as usize, 0);
        b
    }

    /// Tensors whose data add up to more than the data section are refused: 1024 layers'
    /// worth of tensors sharing a few bytes made an 11 MB file ask for a 68 GB recurrent
    /// state (found by fuzzing). Here 20 one-element tensors share one 32-byte slot.
    #[test]
    fn shared_tensor_data_is_refused() {
        let names: Vec<_> = (0..20).map(|i| std::format!("t{i}")).collect();
        assert!(Gguf::parse(&tiny_tensors(&names, false)).is_ok());
        let file = tiny_tensors(&names[..8], true);
        assert!(Gguf::parse(&file).is_ok(), "8 × 4 bytes fit the 32-byte data section");
        let file = tiny_tensors(&names, true);
        let err = Gguf::parse(&file).map(|g| g.tensor_count());
        assert!(matches!(err, Err(GgufError::OverlappingData { declared: 80, available: 32 })), "{err:?}");
    }

    /// A search from any record finds every tensor, those before it included (it wraps
    /// around), reads only up to the tensor when the start lies before it, and the cursor
    /// it returns is the tensor's own record.
    #[test]
    fn find_tensor_near_wraps_and_returns_the_records_cursor() {
        let names: Vec<_> = (0..10).map(|i| std::format!("t{i}")).collect();
        let file = tiny_tensors(&names, false);
        let gguf = Gguf::parse(&file).unwrap();
        let cursors: Vec<_> = gguf.tensors_from(gguf.first_tensor()).map(|(_, at)| at).collect();
        assert_eq!(cursors.len(), 10);
        for (from, &near) in cursors.iter().enumerate() {
            for (i, name) in names.iter().enumerate() {
                let (t, at) = gguf.find_tensor_near(near, |n| n == name).unwrap();
                assert_eq!((t.name, at), (name.as_str(), cursors[i]), "from record {from}");
                assert_eq!(t.offset, gguf.tensor(name).unwrap().offset);
            }
            assert!(gguf.find_tensor_near(near, |n| n == "missing").is_none());
            let read = core::cell::Cell::new(0);
            let wanted = |n: &str| {
                read.set(read.get() + 1);
                n == "t9"
            };
            assert!(gguf.find_tensor_near(near, wanted).is_some());
            assert_eq!(read.get(), 10 - from, "records read from record {from}");
        }
    }

    /// Many tensors are checked for duplicate names in O(n log n): 20 000 of them took
    /// about 20 s when every pair was compared by re-reading the table (found by fuzzing).
    #[test]
    fn duplicate_names_are_found_among_many_tensors() {
        let mut names: Vec<_> = (0..20_000).map(|i| std::format!("t{i}")).collect();
        let file = tiny_tensors(&names, false);
        let count = Gguf::parse(&file).map(|g| g.tensor_count());
        assert!(matches!(count, Ok(20_000)), "{count:?}");
        names.push("t12345".into());
        let file = tiny_tensors(&names, false);
        let err = Gguf::parse(&file).map(|g| g.tensor_count());
        assert!(matches!(err, Err(GgufError::DuplicateTensor { tensor: "t12345" })), "{err:?}");
    }
}
