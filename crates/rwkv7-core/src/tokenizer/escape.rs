//! The escaped token strings llama.cpp stores in `tokenizer.ggml.tokens` for RWKV vocabularies
//! (`docs/FORMAT.md` §4.2–4.3).

use core::fmt;

/// Decodes one stored token string to its bytes exactly as llama.cpp's `llama_unescape_rwkv_token`.
///
/// Left to right: a byte other than `\` is copied; after `\`, `t`, `n` and `r` give 0x09, 0x0A and
/// 0x0D, `x` takes the next two characters as hex digits, and any other character is emitted
/// literally (so `\\`, `\'` and `\"` give the character).
///
/// llama.cpp's quirks are kept, because the same file must give the same bytes here and there:
/// - a hex digit is decoded as `c - 'a' + 10` when `c >= 'a'` (as a signed `char`, as on x86) and
///   as `c - '0'` otherwise, with 8-bit wrap-around, so upper-case or non-hex digits decode to
///   garbage rather than failing;
/// - a trailing lone `\`, or a `\x` with fewer than two characters left, produces nothing.
///
/// Unescaping never lengthens the string. Iterating yields the bytes; nothing is allocated.
#[derive(Clone, Debug)]
pub struct Unescape<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Unescape<'a> {
    /// Unescapes `escaped`.
    pub fn new(escaped: &'a [u8]) -> Self {
        Unescape { s: escaped, i: 0 }
    }
}

/// One llama.cpp hex digit (see [`Unescape`]).
fn hex_value(c: u8) -> u8 {
    if (c as i8) >= (b'a' as i8) { c.wrapping_sub(b'a').wrapping_add(10) } else { c.wrapping_sub(b'0') }
}

impl Iterator for Unescape<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        self.i += 1;
        if c != b'\\' {
            return Some(c);
        }
        let e = *self.s.get(self.i)?;
        self.i += 1;
        Some(match e {
            b't' => b'\t',
            b'n' => b'\n',
            b'r' => b'\r',
            b'x' => {
                let (Some(&h), Some(&l)) = (self.s.get(self.i), self.s.get(self.i + 1)) else {
                    self.i = self.s.len();
                    return None;
                };
                self.i += 2;
                (hex_value(h) << 4).wrapping_add(hex_value(l))
            }
            other => other,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.s.len() - self.i;
        (left.div_ceil(4), Some(left))
    }
}

/// Unescapes `escaped` into `out` and returns the number of bytes written, or `None` when `out`
/// is too short (`escaped.len()` bytes always suffice).
pub fn unescape_token(escaped: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    for b in Unescape::new(escaped) {
        *out.get_mut(n)? = b;
        n += 1;
    }
    Some(n)
}

/// Writes `bytes` the way the llama.cpp converter stores a RWKV token: CPython's `repr(bytes)`
/// without the `b'`…`'` (`docs/FORMAT.md` §4.2). The result is ASCII, and [`Unescape`] turns it
/// back into `bytes`.
///
/// The quote is `"` when the bytes contain `'` but no `"`, else `'`; the quote and `\` are
/// backslash-escaped, 0x09/0x0A/0x0D become `\t`/`\n`/`\r`, other bytes below 0x20 or from 0x7F
/// become `\xhh` (lower-case hex), and the rest are copied.
pub fn escape_token(bytes: &[u8], out: &mut impl fmt::Write) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { b'"' } else { b'\'' };
    for &c in bytes {
        match c {
            b'\\' => out.write_str("\\\\")?,
            b'\t' => out.write_str("\\t")?,
            b'\n' => out.write_str("\\n")?,
            b'\r' => out.write_str("\\r")?,
            _ if c == quote => {
                out.write_char('\\')?;
                out.write_char(c as char)?;
            }
            0x20..=0x7E => out.write_char(c as char)?,
            _ => {
                out.write_str("\\x")?;
                out.write_char(HEX[(c >> 4) as usize] as char)?;
                out.write_char(HEX[(c & 15) as usize] as char)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf<const N: usize> {
        b: [u8; N],
        n: usize,
    }

    impl<const N: usize> fmt::Write for Buf<N> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.n + s.len();
            self.b.get_mut(self.n..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }

    fn escaped(bytes: &[u8]) -> Buf<512> {
        let mut b = Buf { b: [0; 512], n: 0 };
        escape_token(bytes, &mut b).unwrap();
        b
    }

    #[test]
    fn format_md_examples() {
        let cases: [(&[u8], &str); 10] = [
            (b"\x00", "\\x00"),
            (b"\n", "\\n"),
            (b" ", " "),
            (b"\"", "\""),
            (b"'", "'"),
            (b"\\", "\\\\"),
            (b"\x7f", "\\x7f"),
            (b"\n\n", "\\n\\n"),
            (b"\xc2\x80", "\\xc2\\x80"),
            ("你".as_bytes(), "\\xe4\\xbd\\xa0"),
        ];
        for (bytes, want) in cases {
            let e = escaped(bytes);
            assert_eq!(&e.b[..e.n], want.as_bytes());
            let mut back = [0u8; 64];
            let n = unescape_token(&e.b[..e.n], &mut back).unwrap();
            assert_eq!(&back[..n], bytes);
        }
        // Both quote kinds: ' is escaped, " is not.
        let e = escaped(b"'\"");
        assert_eq!(&e.b[..e.n], b"\\'\"");
    }

    #[test]
    fn every_byte_pair_round_trips() {
        for a in 0..=255u8 {
            for b in [0u8, b'\'', b'"', b'\\', b'x', 0x80, 0xff, a] {
                let bytes = [a, b, b'\\', a];
                let e = escaped(&bytes);
                assert!(e.b[..e.n].is_ascii());
                let mut back = [0u8; 64];
                let n = unescape_token(&e.b[..e.n], &mut back).unwrap();
                assert_eq!(&back[..n], &bytes);
            }
        }
    }

    #[test]
    fn llama_cpp_quirks() {
        let un = |s: &[u8]| {
            let mut out = [0u8; 16];
            let n = unescape_token(s, &mut out).unwrap();
            (out, n)
        };
        // Upper-case hex: 'A' < 'a', so it counts as 'A' - '0' = 17; (17 << 4) + 0xb wraps to 0x1b.
        let (o, n) = un(b"\\xAb");
        assert_eq!(&o[..n], &[0x1b]);
        // Trailing backslash and truncated \x produce nothing.
        let (o, n) = un(b"ab\\");
        assert_eq!(&o[..n], b"ab");
        let (o, n) = un(b"ab\\x4");
        assert_eq!(&o[..n], b"ab");
        // Unknown escapes give the character itself.
        let (o, n) = un(b"\\q\\'\\\"");
        assert_eq!(&o[..n], b"q'\"");
        assert_eq!(unescape_token(b"abc", &mut [0u8; 2]), None);
    }
}
