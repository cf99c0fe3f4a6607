//! The RWKV "World" vocabulary file (`rwkv_vocab_v20230424.txt`, spec §6) and its
//! llama.cpp GGUF form (docs/FORMAT.md §4).
//!
//! Each line is `<id> <python literal> <byte length>`: the literal is a `str` (`'…'` or
//! `"…"`, UTF-8-encoded) or a `bytes` literal (`b'…'`). In a `str`, `\xHH` is the code
//! point U+00HH; in `bytes` it is the raw byte. Escapes are decoded left to right and the
//! byte length column is checked.

use std::path::Path;

/// The file name the official package and Hugging Face repos use.
pub const WORLD_VOCAB_FILE: &str = "rwkv_vocab_v20230424.txt";

/// A problem in a vocabulary file, with its 1-based line number.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct VocabError {
    /// 1-based line number (0 for problems with the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

fn verr<T>(line: usize, msg: impl Into<String>) -> Result<T, VocabError> {
    Err(VocabError { line, msg: msg.into() })
}

/// Reads and parses a World vocabulary file; see [`parse_vocab`].
pub fn read_vocab(path: &Path) -> Result<Vec<Vec<u8>>, VocabError> {
    let bytes = std::fs::read(path).map_err(|e| VocabError { line: 0, msg: e.to_string() })?;
    parse_vocab(&bytes)
}

/// Parses a World vocabulary file into `id → bytes`. Index 0 is the end-of-text token,
/// which the file does not list: its entry is empty. The ids in the file must be
/// 1, 2, 3, … in order. CRLF line endings and blank lines are accepted.
pub fn parse_vocab(file: &[u8]) -> Result<Vec<Vec<u8>>, VocabError> {
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new()];
    for (i, raw) in file.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            return verr(line_no, "not valid UTF-8");
        };
        let (Some(first), Some(last)) = (line.find(' '), line.rfind(' ')) else {
            return verr(line_no, "expected `<id> <literal> <length>`");
        };
        if first >= last {
            return verr(line_no, "expected `<id> <literal> <length>`");
        }
        let (id, literal, len) = (&line[..first], &line[first + 1..last], &line[last + 1..]);
        let Ok(id) = id.parse::<usize>() else {
            return verr(line_no, format!("token id `{id}` is not a number"));
        };
        if id != tokens.len() {
            return verr(line_no, format!("token id {id} out of sequence (expected {})", tokens.len()));
        }
        let Ok(len) = len.parse::<usize>() else {
            return verr(line_no, format!("byte length `{len}` is not a number"));
        };
        let bytes = parse_literal(literal).or_else(|msg| verr(line_no, msg))?;
        if bytes.len() != len {
            return verr(line_no, format!("token {id} decodes to {} bytes, but the line says {len}", bytes.len()));
        }
        tokens.push(bytes);
    }
    if tokens.len() == 1 {
        return verr(0, "the vocabulary file has no tokens");
    }
    Ok(tokens)
}

/// Decodes one Python `str` or `bytes` literal to bytes (`str` is UTF-8-encoded).
pub fn parse_literal(lit: &str) -> Result<Vec<u8>, String> {
    let (is_bytes, body) = match lit.strip_prefix('b') {
        Some(rest) => (true, rest),
        None => (false, lit),
    };
    let quote = match body.chars().next() {
        Some(q @ ('\'' | '"')) => q,
        _ => return Err(format!("`{lit}` is not a quoted Python literal")),
    };
    let Some(inner) = body.get(1..).and_then(|b| b.strip_suffix(quote)) else {
        return Err(format!("`{lit}` is not closed by {quote}"));
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    let push_char = |out: &mut Vec<u8>, c: char| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Result<u32, String> {
        let digits: String = chars.by_ref().take(n).collect();
        if digits.len() != n || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad hex escape `{digits}` in `{lit}`"));
        }
        u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())
    };
    while let Some(c) = chars.next() {
        if c == quote {
            return Err(format!("unescaped {quote} inside `{lit}`"));
        }
        if c != '\\' {
            if is_bytes && !c.is_ascii() {
                return Err(format!("non-ASCII character in bytes literal `{lit}`"));
            }
            push_char(&mut out, c);
            continue;
        }
        let Some(e) = chars.next() else {
            return Err(format!("`{lit}` ends with a lone backslash"));
        };
        match e {
            '\\' | '\'' | '"' => out.push(e as u8),
            'n' => out.push(b'\n'),
            't' => out.push(b'\t'),
            'r' => out.push(b'\r'),
            'a' => out.push(0x07),
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'v' => out.push(0x0b),
            '0'..='7' => {
                // Up to three octal digits.
                let mut v = e as u32 - '0' as u32;
                for _ in 0..2 {
                    match chars.clone().next() {
                        Some(d @ '0'..='7') => {
                            v = v * 8 + (d as u32 - '0' as u32);
                            chars.next();
                        }
                        _ => break,
                    }
                }
                push_code(&mut out, v, is_bytes, lit)?;
            }
            'x' => {
                let v = hex(&mut chars, 2)?;
                push_code(&mut out, v, is_bytes, lit)?;
            }
            'u' | 'U' if !is_bytes => {
                let v = hex(&mut chars, if e == 'u' { 4 } else { 8 })?;
                let Some(c) = char::from_u32(v) else {
                    return Err(format!("escape for U+{v:X} in `{lit}` is not a valid character"));
                };
                push_char(&mut out, c);
            }
            'N' if !is_bytes => return Err(format!("named escapes (\\N{{…}}) are not supported: `{lit}`")),
            other => {
                // Python keeps unknown escapes as written.
                out.push(b'\\');
                push_char(&mut out, other);
            }
        }
    }
    Ok(out)
}

/// A numeric escape: a raw byte in `bytes`, a code point in `str`.
fn push_code(out: &mut Vec<u8>, v: u32, is_bytes: bool, lit: &str) -> Result<(), String> {
    if is_bytes {
        let b = u8::try_from(v).map_err(|_| format!("octal escape above 0o377 in `{lit}`"))?;
        out.push(b);
    } else {
        let c = char::from_u32(v).ok_or_else(|| format!("bad escape in `{lit}`"))?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    Ok(())
}

/// The string llama.cpp stores for a token: CPython's `repr(bytes)[2:-1]` (FORMAT.md §4.2).
pub fn llama_token_text(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { b'"' } else { b'\'' };
    let mut s = String::with_capacity(bytes.len());
    for &c in bytes {
        match c {
            b'\\' => s.push_str("\\\\"),
            c if c == quote => {
                s.push('\\');
                s.push(c as char);
            }
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if !(0x20..0x7f).contains(&c) => s.push_str(&format!("\\x{c:02x}")),
            c => s.push(c as char),
        }
    }
    s
}

/// Decodes a llama.cpp token string back to bytes, exactly as `llama_unescape_rwkv_token`
/// does (used to check that every stored token round-trips).
pub fn llama_token_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut it = text.bytes();
    while let Some(c) = it.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'x') => {
                let digit =
                    |d: Option<u8>| d.map_or(0, |d| if d >= b'a' { d - b'a' + 10 } else { d.wrapping_sub(b'0') });
                let hi = digit(it.next());
                let lo = digit(it.next());
                out.push(hi.wrapping_shl(4).wrapping_add(lo));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_and_bytes_escapes() {
        // \x80 is U+0080 in a str (2 UTF-8 bytes) but one raw byte in bytes.
        assert_eq!(parse_literal(r"'\x80'").unwrap(), [0xc2, 0x80]);
        assert_eq!(parse_literal(r"b'\x80'").unwrap(), [0x80]);
        assert_eq!(parse_literal(r"b'\xf0\x9f'").unwrap(), [0xf0, 0x9f]);
        assert_eq!(parse_literal(r"'\\'").unwrap(), b"\\");
        assert_eq!(parse_literal(r"'\\x'").unwrap(), b"\\x");
        assert_eq!(parse_literal(r"'\''").unwrap(), b"'");
        assert_eq!(parse_literal(r#""'""#).unwrap(), b"'");
        assert_eq!(parse_literal(r#""a'b""#).unwrap(), b"a'b");
        assert_eq!(parse_literal(r"'\n\n'").unwrap(), b"\n\n");
        assert_eq!(parse_literal(r"'\t\r'").unwrap(), b"\t\r");
        assert_eq!(parse_literal(r"'\u4f60'").unwrap(), "你".as_bytes());
        assert_eq!(parse_literal(r"'\U0001F642'").unwrap(), "🙂".as_bytes());
        assert_eq!(parse_literal("'你好'").unwrap(), "你好".as_bytes());
        assert_eq!(parse_literal("' '").unwrap(), b" ");
        assert_eq!(parse_literal(r"b'\0'").unwrap(), [0]);
        assert_eq!(parse_literal(r"'\q'").unwrap(), b"\\q");
        // \u is not an escape in bytes.
        assert_eq!(parse_literal(r"b'\u00'").unwrap(), b"\\u00");
        for bad in [r"'abc", r"abc", r"'a'b'", r"'\x8'", r"'\x'", r"b'é'", r"'\ud800'", "'\\"] {
            assert!(parse_literal(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn parses_a_vocab_file() {
        let text = "1 '\\x00' 1\r\n2 ' ' 1\n3 b'\\xff' 1\n4 '\\x80' 2\n5 \"'\" 1\n6 'a b' 3\n\n";
        let v = parse_vocab(text.as_bytes()).unwrap();
        assert_eq!(v.len(), 7);
        assert!(v[0].is_empty());
        assert_eq!(v[1], [0]);
        assert_eq!(v[2], b" ");
        assert_eq!(v[3], [0xff]);
        assert_eq!(v[4], [0xc2, 0x80]);
        assert_eq!(v[5], b"'");
        assert_eq!(v[6], b"a b");
    }

    #[test]
    fn vocab_errors_name_the_line() {
        let e = parse_vocab(b"1 'a' 1\n2 'bc' 3\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: token 2 decodes to 2 bytes, but the line says 3");
        let e = parse_vocab(b"1 'a' 1\n3 'b' 1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_vocab(b"1 'a'\n").is_err());
        assert!(parse_vocab(b"").is_err());
        assert!(parse_vocab(b"x 'a' 1\n").is_err());
    }

    #[test]
    fn llama_token_text_matches_python_repr() {
        let cases: [(&[u8], &str); 12] = [
            (b"\x00", "\\x00"),
            (b"\n", "\\n"),
            (b" ", " "),
            (b"\"", "\""),
            (b"'", "'"),
            (b"\\", "\\\\"),
            (b"\x7f", "\\x7f"),
            (b"\n\n", "\\n\\n"),
            (&[0xc2, 0x80], "\\xc2\\x80"),
            ("你".as_bytes(), "\\xe4\\xbd\\xa0"),
            (b"'\"", "\\'\""),
            (b"a'b", "a'b"),
        ];
        for (bytes, text) in cases {
            assert_eq!(llama_token_text(bytes), text, "{bytes:?}");
            assert_eq!(llama_token_bytes(text), bytes, "{text}");
        }
        // Every byte string round-trips through llama.cpp's decoder.
        for b in 0..=255u8 {
            for q in [b'\'', b'"', b'x'] {
                let s = [b, q, b'\\', b];
                assert_eq!(llama_token_bytes(&llama_token_text(&s)), s);
            }
        }
    }
}
