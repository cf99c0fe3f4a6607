//! Writes `torch.save`-compatible `.pth` files: a zip with a protocol-2 pickle of a flat
//! `{name: tensor}` dict and one storage member per tensor, laid out as torch writes them.
//! The official `rwkv` package and [`crate::pth`] read the result. Used for state files
//! that other RWKV tools understand, and by the tests to build checkpoints (including
//! deliberately malformed ones) without torch.

use std::io::{Cursor, Write};

use crate::checkpoint::{DType, Tensor};

/// One tensor for [`build_pth`]: name, dtype, shape, stride, storage offset,
/// storage key, storage elements (little-endian bytes).
#[doc(hidden)]
pub struct Spec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub stride: Option<Vec<u64>>,
    pub offset: u64,
    pub key: String,
    pub storage: Vec<u8>,
}

fn storage_class(d: DType) -> &'static str {
    match d {
        DType::BF16 => "BFloat16Storage",
        DType::F16 => "HalfStorage",
        DType::F32 => "FloatStorage",
    }
}

fn unicode(p: &mut Vec<u8>, s: &str) {
    p.push(b'X');
    p.extend((s.len() as u32).to_le_bytes());
    p.extend(s.as_bytes());
}

fn int(p: &mut Vec<u8>, v: u64) {
    if v < 256 {
        p.extend([b'K', v as u8]);
    } else if v < 65536 {
        p.push(b'M');
        p.extend((v as u16).to_le_bytes());
    } else if v < (1 << 31) {
        p.push(b'J');
        p.extend((v as i32).to_le_bytes());
    } else {
        p.extend([0x8a, 8]);
        p.extend(v.to_le_bytes());
    }
}

fn tuple_of_ints(p: &mut Vec<u8>, v: &[u64]) {
    match v.len() {
        0 => p.push(b')'),
        1..=3 => {
            for &x in v {
                int(p, x);
            }
            p.push(0x84 + v.len() as u8);
        }
        _ => {
            p.push(b'(');
            for &x in v {
                int(p, x);
            }
            p.push(b't');
        }
    }
}

/// The pickle `torch.save` (protocol 2) writes for a dict of tensors, with memo use
/// like torch's (BINPUT of every object, BINGET of repeated globals).
#[doc(hidden)]
pub fn pickle_for(specs: &[Spec]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
    let mut memo = 1u8;
    let mut put = |p: &mut Vec<u8>| {
        p.extend([b'q', memo]);
        memo = memo.wrapping_add(1);
    };
    let mut rebuild_memo = None;
    let mut od_memo = None;
    for s in specs {
        unicode(&mut p, &s.name);
        put(&mut p);
        match rebuild_memo {
            Some(m) => p.extend([b'h', m]),
            None => {
                p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
                p.extend([b'q', 251]);
                rebuild_memo = Some(251);
            }
        }
        p.push(b'(');
        p.push(b'(');
        unicode(&mut p, "storage");
        p.extend(format!("ctorch\n{}\n", storage_class(s.dtype)).as_bytes());
        unicode(&mut p, &s.key);
        unicode(&mut p, "cpu");
        int(&mut p, (s.storage.len() / s.dtype.size()) as u64);
        p.push(b't');
        p.push(b'Q');
        int(&mut p, s.offset);
        tuple_of_ints(&mut p, &s.shape);
        let stride = s.stride.clone().unwrap_or_else(|| {
            let mut st = vec![1u64; s.shape.len()];
            for i in (0..s.shape.len().saturating_sub(1)).rev() {
                st[i] = st[i + 1] * s.shape[i + 1];
            }
            st
        });
        tuple_of_ints(&mut p, &stride);
        p.push(0x89);
        match od_memo {
            Some(m) => p.extend([b'h', m]),
            None => {
                p.extend(b"ccollections\nOrderedDict\n");
                p.extend([b'q', 250]);
                od_memo = Some(250);
            }
        }
        p.push(b')');
        p.push(b'R');
        p.push(b't');
        p.push(b'R');
        put(&mut p);
    }
    p.extend([b'u', b'.']);
    p
}

/// A torch-like zip: `<stem>/data.pkl`, `<stem>/byteorder`, `<stem>/data/<key>`.
#[doc(hidden)]
pub fn build_zip(stem: &str, pickle: &[u8], storages: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    try_build_zip(stem, pickle, storages, deflate).unwrap_or_else(|e| unreachable!("zip into memory: {e}"))
}

fn try_build_zip(
    stem: &str,
    pickle: &[u8],
    storages: &[(&str, &[u8])],
    deflate: bool,
) -> zip::result::ZipResult<Vec<u8>> {
    let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    zw.start_file(format!("{stem}/data.pkl"), opts)?;
    zw.write_all(pickle)?;
    zw.start_file(format!("{stem}/byteorder"), opts)?;
    zw.write_all(b"little")?;
    for (k, data) in storages {
        zw.start_file(format!("{stem}/data/{k}"), opts)?;
        zw.write_all(data)?;
    }
    zw.start_file(format!("{stem}/version"), opts)?;
    zw.write_all(b"3\n")?;
    Ok(zw.finish()?.into_inner())
}

#[doc(hidden)]
pub fn build_pth(specs: &[Spec], deflate: bool) -> Vec<u8> {
    let pickle = pickle_for(specs);
    let mut storages: Vec<(&str, &[u8])> = Vec::new();
    for s in specs {
        if !storages.iter().any(|(k, _)| *k == s.key) {
            storages.push((&s.key, &s.storage));
        }
    }
    build_zip("archive", &pickle, &storages, deflate)
}

/// Writer specs for `tensors`: contiguous, one storage each, keyed by position.
#[doc(hidden)]
pub fn specs_for(tensors: &[Tensor]) -> Vec<Spec> {
    tensors
        .iter()
        .enumerate()
        .map(|(i, t)| Spec {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            stride: None,
            offset: 0,
            key: i.to_string(),
            storage: t.data.as_slice().to_vec(),
        })
        .collect()
}

/// The bytes of a `.pth` holding `tensors` (contiguous, one storage each), in order.
pub fn to_pth_bytes(tensors: &[Tensor]) -> Vec<u8> {
    build_pth(&specs_for(tensors), false)
}
