//! Streaming UTF-8 decoding of token bytes.

/// Turns a stream of byte chunks (token byte strings) into text, holding back an incomplete UTF-8
/// sequence at the end of a chunk until the bytes that complete it arrive.
///
/// Invalid bytes never panic. They become U+FFFD exactly as [`String::from_utf8_lossy`] does on
/// the concatenation of all chunks, however the bytes are split: each *maximal subpart* of an
/// ill-formed sequence (the longest prefix of a valid UTF-8 sequence, or one byte when no such
/// prefix exists) becomes one U+FFFD (Unicode §3.9, "U+FFFD substitution of maximal subparts").
/// For example `F0 9F 99 41` gives `"\u{FFFD}A"`, `80 80` gives two U+FFFD, and a sequence still
/// incomplete when [`finish`](Self::finish) is called gives one U+FFFD.
///
/// The official `PIPELINE.generate` instead waits until the decoded text has no U+FFFD at all, so
/// after an invalid byte token it prints nothing more; this decoder keeps streaming.
///
/// It holds at most 3 bytes and never allocates. `emit` is called with consecutive pieces of the
/// text, never with an empty string.
///
/// [`String::from_utf8_lossy`]: https://doc.rust-lang.org/std/string/struct.String.html#method.from_utf8_lossy
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Stream {
    buf: [u8; 4],
    len: u8,
}

/// The length of the UTF-8 sequence a valid lead byte starts.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Stream {
    /// An empty decoder.
    pub const fn new() -> Self {
        Utf8Stream { buf: [0; 4], len: 0 }
    }

    /// The held-back bytes of an incomplete sequence (0 to 3 bytes).
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Decodes `bytes`, calling `emit` with every complete piece of text.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        let mut rest = bytes;
        let held = self.len as usize;
        if held > 0 {
            // The held bytes are a proper prefix of a valid sequence; add just enough to finish it.
            let take = (sequence_len(self.buf[0]) - held).min(rest.len());
            let mut tmp = self.buf;
            tmp[held..held + take].copy_from_slice(&rest[..take]);
            match core::str::from_utf8(&tmp[..held + take]) {
                Ok(s) => {
                    emit(s);
                    self.len = 0;
                    rest = &rest[take..];
                }
                Err(e) => match e.error_len() {
                    None => {
                        // Still incomplete: the input is used up.
                        self.buf = tmp;
                        self.len = (held + take) as u8;
                        return;
                    }
                    Some(bad) => {
                        // The maximal subpart covers all held bytes and `bad - held` new ones.
                        emit("\u{FFFD}");
                        self.len = 0;
                        rest = &rest[bad.saturating_sub(held).min(take)..];
                    }
                },
            }
        }
        loop {
            match core::str::from_utf8(rest) {
                Ok(s) => {
                    if !s.is_empty() {
                        emit(s);
                    }
                    return;
                }
                Err(e) => {
                    let (good, after) = rest.split_at(e.valid_up_to());
                    if !good.is_empty() {
                        // `from_utf8` just validated this prefix.
                        emit(core::str::from_utf8(good).unwrap_or_default());
                    }
                    match e.error_len() {
                        Some(bad) => {
                            emit("\u{FFFD}");
                            rest = &after[bad..];
                        }
                        None => {
                            // An incomplete sequence (at most 3 bytes) at the end: hold it back.
                            self.buf[..after.len()].copy_from_slice(after);
                            self.len = after.len() as u8;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: held-back bytes of an incomplete sequence become one U+FFFD.
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if self.len > 0 {
            emit("\u{FFFD}");
            self.len = 0;
        }
    }

    /// Drops any held-back bytes.
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    fn run(chunks: &[&[u8]]) -> String {
        let mut d = Utf8Stream::new();
        let mut out = String::new();
        for c in chunks {
            d.push(c, |s| {
                assert!(!s.is_empty());
                out.push_str(s)
            });
        }
        d.finish(|s| out.push_str(s));
        out
    }

    #[test]
    fn split_characters_reassemble() {
        let s = "a你🙂é";
        let b = s.as_bytes();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                assert_eq!(run(&[&b[..i], &b[i..j], &b[j..]]), s);
            }
        }
        let mut d = Utf8Stream::new();
        let mut out = String::new();
        d.push(b"\xf0\x9f", |s| out.push_str(s));
        assert_eq!((out.as_str(), d.pending()), ("", &b"\xf0\x9f"[..]));
        d.push(b"\x99\x82", |s| out.push_str(s));
        assert_eq!((out.as_str(), d.pending()), ("🙂", &b""[..]));
    }

    #[test]
    fn matches_from_utf8_lossy_for_every_split() {
        let samples: [&[u8]; 9] = [
            b"\xf0\x9f\x99A",
            b"\x80\x80",
            b"\xe4\xbd",
            b"\xed\xa0\x80x",
            b"\xc0\xaf\xf5\x80",
            b"a\xf0\x9f\x99\x82\xe4\xbd\xa0\xff\xfe",
            b"\xf4\x90\x80\x80\xe0\x80",
            b"\xe2\x82\xe2\x82\xac",
            b"\xf0\x9f\x99\xf0\x9f\x99\x82",
        ];
        for b in samples {
            let want = String::from_utf8_lossy(b).into_owned();
            for i in 0..=b.len() {
                for j in i..=b.len() {
                    assert_eq!(run(&[&b[..i], &b[i..j], &b[j..]]), want, "{b:x?} split at {i},{j}");
                }
            }
            // One byte at a time.
            let singles: std::vec::Vec<&[u8]> = b.chunks(1).collect();
            assert_eq!(run(&singles), want);
        }
    }
}
