//! The RWKV World vocabulary text file (`rwkv_vocab_v20230424.txt`, spec §6).
//!
//! Each line is `<id> <python literal> <byte length>`: the id is the text before the first space,
//! the literal the text between the first and the last space, the length the text after the last
//! space. The literal is a Python `str` literal (`'…'` or `"…"`, UTF-8-encoded) or a `bytes`
//! literal (`b'…'` or `b"…"`). Escapes are read left to right as Python does:
//!
//! | escape | in a `str` literal | in a `bytes` literal |
//! |---|---|---|
//! | `\\` `\'` `\"` `\a` `\b` `\f` `\n` `\r` `\t` `\v` | that character | that byte |
//! | `\xHH` | code point U+00HH (two UTF-8 bytes when ≥ 0x80) | the byte 0xHH |
//! | `\ooo` (1–3 octal digits) | code point | byte (≤ 0o377) |
//! | `\uHHHH`, `\UHHHHHHHH` | code point | not an escape (kept as is) |
//! | `\` + newline | nothing | nothing |
//! | `\` + any other character | kept: backslash and character | same |
//!
//! `\N{…}` (named characters) and surrogate code points are refused. The byte length column is
//! checked against the decoded bytes.

use core::fmt;

/// Why a vocabulary line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VocabErrorKind {
    /// The line has fewer than two spaces.
    MissingField,
    /// The id is not a decimal `u32`.
    BadId,
    /// The trailing byte length is not a decimal number.
    BadLength,
    /// The literal is not a `'…'`, `"…"`, `b'…'` or `b"…"` Python literal (other prefixes, such
    /// as raw strings, are not supported), or it contains an unescaped closing quote.
    BadLiteral,
    /// An escape this parser does not support (`\N{…}`), a malformed `\x`/`\u`/`\U`, a code point
    /// beyond U+10FFFF or a surrogate, or an octal escape above 0o377 in a bytes literal.
    BadEscape,
    /// A non-ASCII character inside a `bytes` literal (a Python syntax error).
    NonAsciiInBytes,
    /// The decoded bytes do not have the declared length.
    LengthMismatch {
        /// The length column.
        declared: usize,
        /// Bytes decoded from the literal (counting stops one past `declared`).
        decoded: usize,
    },
    /// The output buffer is shorter than the declared length.
    BufferTooSmall {
        /// The length column.
        declared: usize,
    },
    /// Id 0 is end-of-text and never appears in the file.
    ReservedId,
    /// The same id appears twice.
    DuplicateId(u32),
    /// An id above [`MAX_TOKEN_ID`](super::MAX_TOKEN_ID), or (in a whole file) above the
    /// file's length in bytes.
    IdTooLarge(u32),
}

/// A vocabulary file error and the 1-based line it was found on (0 when parsing a single line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VocabError {
    /// 1-based line number.
    pub line: usize,
    /// What went wrong.
    pub kind: VocabErrorKind,
}

impl fmt::Display for VocabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use VocabErrorKind::*;
        write!(f, "vocabulary line {}: ", self.line)?;
        match self.kind {
            MissingField => f.write_str("expected `<id> <literal> <length>`"),
            BadId => f.write_str("the id is not a decimal number"),
            BadLength => f.write_str("the byte length is not a decimal number"),
            BadLiteral => f.write_str("not a Python 'str' or b'bytes' literal"),
            BadEscape => f.write_str("unsupported or malformed escape sequence"),
            NonAsciiInBytes => f.write_str("non-ASCII character in a bytes literal"),
            LengthMismatch { declared, decoded } => {
                write!(f, "the literal decodes to {decoded} bytes but the line declares {declared}")
            }
            BufferTooSmall { declared } => write!(f, "output buffer shorter than the declared {declared} bytes"),
            ReservedId => f.write_str("id 0 is reserved for end-of-text"),
            DuplicateId(id) => write!(f, "id {id} appears twice"),
            IdTooLarge(id) => write!(f, "id {id} is too large"),
        }
    }
}

impl core::error::Error for VocabError {}

/// One parsed line: the token id and the length of its bytes (written to the caller's buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VocabLine {
    /// Token id.
    pub id: u32,
    /// Number of bytes written.
    pub len: usize,
}

/// Writes bytes into a bounded buffer, counting one past the declared length at most.
struct Out<'a> {
    buf: &'a mut [u8],
    n: usize,
    declared: usize,
}

impl Out<'_> {
    fn byte(&mut self, b: u8) -> Result<(), VocabErrorKind> {
        if self.n >= self.declared {
            return Err(VocabErrorKind::LengthMismatch { declared: self.declared, decoded: self.n + 1 });
        }
        self.buf[self.n] = b;
        self.n += 1;
        Ok(())
    }

    fn bytes(&mut self, bs: &[u8]) -> Result<(), VocabErrorKind> {
        bs.iter().try_for_each(|&b| self.byte(b))
    }

    fn code_point(&mut self, cp: u32) -> Result<(), VocabErrorKind> {
        let c = char::from_u32(cp).ok_or(VocabErrorKind::BadEscape)?;
        self.bytes(c.encode_utf8(&mut [0u8; 4]).as_bytes())
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn hex_digits(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |acc, &c| Some(acc * 16 + (c as char).to_digit(16)?))
}

/// Parses one line of the World vocabulary file into `out` (which must hold at least the declared
/// byte length; the line's own length always suffices). A trailing `\r` is ignored.
pub fn parse_vocab_line(line: &str, out: &mut [u8]) -> Result<VocabLine, VocabError> {
    let err = |kind| VocabError { line: 0, kind };
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (first, last) = match (line.find(' '), line.rfind(' ')) {
        (Some(f), Some(l)) if f < l => (f, l),
        _ => return Err(err(VocabErrorKind::MissingField)),
    };
    let id = parse_decimal(&line[..first]).and_then(|v| u32::try_from(v).ok()).ok_or(err(VocabErrorKind::BadId))?;
    let declared =
        parse_decimal(&line[last + 1..]).and_then(|v| usize::try_from(v).ok()).ok_or(err(VocabErrorKind::BadLength))?;
    if declared > out.len() {
        return Err(err(VocabErrorKind::BufferTooSmall { declared }));
    }
    let mut o = Out { buf: out, n: 0, declared };
    parse_literal(&line[first + 1..last], &mut o).map_err(err)?;
    if o.n != declared {
        return Err(err(VocabErrorKind::LengthMismatch { declared, decoded: o.n }));
    }
    Ok(VocabLine { id, len: declared })
}

/// Decodes a Python `str` or `bytes` literal (see the module docs).
fn parse_literal(lit: &str, out: &mut Out<'_>) -> Result<(), VocabErrorKind> {
    use VocabErrorKind::*;
    let (is_bytes, rest) = match lit.strip_prefix('b') {
        Some(r) => (true, r),
        None => (false, lit),
    };
    let quote = match rest.as_bytes().first() {
        Some(&q @ (b'\'' | b'"')) => q,
        _ => return Err(BadLiteral),
    };
    if rest.len() < 2 || rest.as_bytes()[rest.len() - 1] != quote {
        return Err(BadLiteral);
    }
    let body = &rest[1..rest.len() - 1];
    let s = body.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == quote {
            return Err(BadLiteral);
        }
        if c != b'\\' {
            // Copy one whole character (UTF-8 in the file; bytes literals must be ASCII).
            let ch = body[i..].chars().next().ok_or(BadLiteral)?;
            if is_bytes && !ch.is_ascii() {
                return Err(NonAsciiInBytes);
            }
            out.bytes(&s[i..i + ch.len_utf8()])?;
            i += ch.len_utf8();
            continue;
        }
        let e = *s.get(i + 1).ok_or(BadLiteral)?; // a final lone backslash would escape the quote
        i += 2;
        let simple = match e {
            b'\\' => Some(b'\\'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            _ => None,
        };
        if let Some(b) = simple {
            out.byte(b)?;
            continue;
        }
        match e {
            b'\n' => {}
            b'0'..=b'7' => {
                let start = i - 1;
                let mut end = i;
                while end < s.len() && end < start + 3 && (b'0'..=b'7').contains(&s[end]) {
                    end += 1;
                }
                let v = s[start..end].iter().fold(0u32, |acc, &d| acc * 8 + u32::from(d - b'0'));
                i = end;
                if is_bytes {
                    out.byte(u8::try_from(v).map_err(|_| BadEscape)?)?;
                } else {
                    out.code_point(v)?;
                }
            }
            b'x' | b'u' | b'U' if !(is_bytes && e != b'x') => {
                let n = match e {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let v = s.get(i..i + n).and_then(hex_digits).ok_or(BadEscape)?;
                i += n;
                if is_bytes {
                    out.byte(v as u8)?;
                } else {
                    out.code_point(v)?;
                }
            }
            b'N' if !is_bytes => return Err(BadEscape),
            _ => {
                // Python keeps unknown escapes verbatim (with a warning).
                out.byte(b'\\')?;
                i -= 1;
            }
        }
    }
    Ok(())
}

/// Parses a whole World vocabulary file into a table indexed by token id: entry 0 (end-of-text)
/// and any id missing from the file are empty. Empty lines are skipped; CRLF is accepted.
///
/// Ids may leave gaps, but none may exceed the file's length in bytes: the table has an
/// entry (24 bytes) for every id up to the largest, and a 15-byte file naming id 16777214
/// made it take 450 MB. A file of `B` bytes holds fewer than `B / 7` entries (`1 'a' 1`
/// and its newline), so a dense vocabulary is far inside the bound.
#[cfg(feature = "alloc")]
pub fn parse_vocab_file(text: &str) -> Result<alloc::vec::Vec<alloc::vec::Vec<u8>>, VocabError> {
    use alloc::vec;
    use alloc::vec::Vec;
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new()];
    let mut seen: Vec<bool> = vec![true];
    let mut buf = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let at = |kind| VocabError { line: n + 1, kind };
        if line.is_empty() || line == "\r" {
            continue;
        }
        buf.clear();
        buf.resize(line.len(), 0);
        let VocabLine { id, len } = parse_vocab_line(line, &mut buf).map_err(|e| at(e.kind))?;
        if id == 0 {
            return Err(at(VocabErrorKind::ReservedId));
        }
        if id > super::MAX_TOKEN_ID || id as usize > text.len() {
            return Err(at(VocabErrorKind::IdTooLarge(id)));
        }
        let i = id as usize;
        if i >= tokens.len() {
            tokens.resize(i + 1, Vec::new());
            seen.resize(i + 1, false);
        }
        if seen[i] {
            return Err(at(VocabErrorKind::DuplicateId(id)));
        }
        seen[i] = true;
        tokens[i] = buf[..len].to_vec();
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn parse(line: &str) -> Result<([u8; 64], usize, u32), VocabErrorKind> {
        let mut out = [0u8; 64];
        let VocabLine { id, len } = parse_vocab_line(line, &mut out).map_err(|e| e.kind)?;
        Ok((out, len, id))
    }

    fn bytes_of(line: &str) -> std::vec::Vec<u8> {
        let (o, n, _) = parse(line).unwrap();
        o[..n].to_vec()
    }

    #[test]
    fn literals() {
        assert_eq!(bytes_of("33 ' ' 1"), b" ");
        assert_eq!(bytes_of("11 '\\n' 1"), b"\n");
        assert_eq!(bytes_of("2423 '\\x80' 2"), b"\xc2\x80");
        assert_eq!(bytes_of("129 b'\\x80' 1"), b"\x80");
        assert_eq!(bytes_of("40 \"'\" 1"), b"'");
        assert_eq!(bytes_of("93 '\\\\' 1"), b"\\");
        assert_eq!(bytes_of("5 '\\\\x' 2"), b"\\x");
        assert_eq!(bytes_of("10464 '你' 3"), "你".as_bytes());
        assert_eq!(bytes_of("7 '\\u4f60' 3"), "你".as_bytes());
        assert_eq!(bytes_of("7 '\\U0001F642' 4"), "🙂".as_bytes());
        assert_eq!(bytes_of("7 '\\101\\0' 2"), b"A\0");
        assert_eq!(bytes_of("7 b'\\377' 1"), b"\xff");
        assert_eq!(bytes_of("7 '\\q' 2"), b"\\q");
        assert_eq!(bytes_of("7 b'\\u' 2"), b"\\u");
        assert_eq!(bytes_of("7 'a b' 3\r"), b"a b");
        assert_eq!(parse("12 '\\n' 1").unwrap().2, 12);
    }

    #[test]
    fn errors() {
        use VocabErrorKind::*;
        assert_eq!(parse("1 'a'").unwrap_err(), MissingField);
        assert_eq!(parse("x 'a' 1").unwrap_err(), BadId);
        assert_eq!(parse("1 'a' z").unwrap_err(), BadLength);
        assert_eq!(parse("1 'a' 2").unwrap_err(), LengthMismatch { declared: 2, decoded: 1 });
        assert_eq!(parse("1 'ab' 1").unwrap_err(), LengthMismatch { declared: 1, decoded: 2 });
        assert_eq!(parse("1 r'a' 1").unwrap_err(), BadLiteral);
        assert_eq!(parse("1 'a\" 1").unwrap_err(), BadLiteral);
        assert_eq!(parse("1 'a'b' 3").unwrap_err(), BadLiteral);
        assert_eq!(parse("1 '\\N{DASH}' 3").unwrap_err(), BadEscape);
        assert_eq!(parse("1 '\\ud800' 3").unwrap_err(), BadEscape);
        assert_eq!(parse("1 '\\x4' 1").unwrap_err(), BadEscape);
        assert_eq!(parse("1 b'\\777' 1").unwrap_err(), BadEscape);
        assert_eq!(parse("1 b'é' 2").unwrap_err(), NonAsciiInBytes);
        assert_eq!(parse("1 'a' 65").unwrap_err(), BufferTooSmall { declared: 65 });
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn file() {
        let t = parse_vocab_file("1 '\\x00' 1\r\n3 'ab' 2\n\n2 b'\\xff' 1\n").unwrap();
        assert_eq!(t, [&b""[..], b"\0", b"\xff", b"ab"]);
        let e = parse_vocab_file("1 'a' 1\n1 'b' 1\n").unwrap_err();
        assert_eq!(e, VocabError { line: 2, kind: VocabErrorKind::DuplicateId(1) });
        let e = parse_vocab_file("0 'a' 1\n").unwrap_err();
        assert_eq!(e.kind, VocabErrorKind::ReservedId);
        // Gaps are allowed, up to the file's length in bytes (a larger id once sized the
        // table to 16.7M entries from a 15-byte file).
        assert_eq!(parse_vocab_file("1 'a' 1\n12 'b' 1\n").unwrap().len(), 13);
        let e = parse_vocab_file("16777214 'a' 1\n").unwrap_err();
        assert_eq!(e, VocabError { line: 1, kind: VocabErrorKind::IdTooLarge(16777214) });
    }
}
