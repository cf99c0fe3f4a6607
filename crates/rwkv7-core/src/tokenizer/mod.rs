//! The RWKV "World" tokenizer (spec §6): greedy longest match over UTF-8 bytes.
//!
//! [`Tokenizer`] produces the same ids as the official `TRIE_TOKENIZER`: at each position it takes
//! the longest vocabulary entry that is a prefix of the remaining bytes. There is no
//! normalisation, no pre-tokenisation, and no special-token parsing: the text `<|endoftext|>` is
//! encoded literally, and end-of-text (id [`END_OF_TEXT`] = 0) is never produced by encoding.
//!
//! # Vocabulary sources
//!
//! - A GGUF file written in llama.cpp's conventions (`docs/FORMAT.md` §4): the escaped strings of
//!   `tokenizer.ggml.tokens` are unescaped as llama.cpp does ([`Unescape`]), and only tokens
//!   whose `tokenizer.ggml.token_type` is NORMAL (1) are matchable and decodable. Id 0 (`<s>`,
//!   CONTROL) and the `[PADn]` pads (UNUSED) are never produced and decode to nothing. (llama.cpp
//!   itself also matches `<s>` and `[PADn]` in raw text; the official tokenizer does not.)
//!   Without a `token_type` array every token counts as NORMAL, as in llama.cpp.
//! - A table id → bytes ([`Tokenizer::from_tokens_in`]), e.g. from `parse_vocab_file` (feature
//!   `alloc`) or [`parse_vocab_line`]: every non-empty entry is matchable.
//!
//! Among byte-identical matchable tokens the lowest id wins. Every single byte 0x00..=0xFF must
//! be a matchable token, so that encoding always succeeds (the World vocabulary has them as ids
//! 1..=256).
//!
//! # Storage and index
//!
//! The tokenizer lives in one `u32` buffer: the caller's (`&mut [u32]`, no allocator needed) or,
//! with the `alloc` feature, an owned `Vec<u32>`. [`Tokenizer::storage_words_for_tokens`] /
//! [`storage_words_for_gguf`] give a cheap upper bound of the words needed to build;
//! [`Tokenizer::build_words`] the exact number (known after one build, e.g. on a host), and
//! [`TokenizerError::StorageTooSmall`] reports it too. Building uses scratch space at the end of
//! the buffer; the finished tokenizer uses only the first [`Tokenizer::storage_words`]. It holds:
//!
//! 1. `offsets`: `V + 1` byte offsets into the byte arena (token `i` is `arena[off[i]..off[i+1]]`);
//! 2. the byte arena with every matchable token's bytes;
//! 3. a byte trie of the matchable tokens, one record of two words per node:
//!    `first_child` and `(id + 1) << 8 | label` (0 in the id part: no token ends here);
//! 4. a 65536-entry table from the first two bytes to their depth-2 node.
//!
//! Nodes are numbered breadth-first, so the children of node `i` are the consecutive records
//! `first_child[i] .. first_child[i + 1]`, sorted by label, and the root's children are nodes
//! `1 + byte`. Encoding looks up the first two bytes in the table, then walks down: a step scans
//! (≤ 8 children) or binary-searches the children's records, and the record found already holds
//! the next node's token and first child, so a step costs about one cache miss. The trie is built
//! without allocation from a sort of the token ids by bytes: each token adds the nodes below its
//! longest common prefix with the previous one. For the World vocabulary from a GGUF (65536 ids,
//! 373 KB of token bytes) that is 116079 nodes and 456573 words (1.83 MB) of storage; building
//! needs 522360 words (2.09 MB), and the cheap upper bound is 1036920 words.
//!
//! [`storage_words_for_gguf`]: Tokenizer::storage_words_for_gguf

mod escape;
mod stream;
mod vocab_file;

use core::fmt;

pub use escape::{Unescape, escape_token, unescape_token};
pub use stream::Utf8Stream;
#[cfg(feature = "alloc")]
pub use vocab_file::parse_vocab_file;
pub use vocab_file::{VocabError, VocabErrorKind, VocabLine, parse_vocab_line};

use crate::gguf::{Array, Gguf, Value, ValueType};

/// The end-of-text / document separator token. Encoding never produces it; it decodes to nothing.
pub const END_OF_TEXT: u32 = 0;
/// The largest token id (and vocabulary size − 1) the index can hold.
pub const MAX_TOKEN_ID: u32 = (1 << 24) - 2;
/// `tokenizer.ggml.model`; must be `"rwkv"`.
pub const KEY_MODEL: &str = "tokenizer.ggml.model";
/// `tokenizer.ggml.tokens`: the escaped token strings.
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
/// `tokenizer.ggml.token_type`: llama.cpp token types (1 = NORMAL).
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
/// llama.cpp's NORMAL token type.
pub const TOKEN_TYPE_NORMAL: u64 = 1;

const NONE: u32 = u32::MAX;
/// Bits of the label in a node's second word; the token id + 1 is above them.
const LABEL_BITS: u32 = 8;
/// Child lists at most this long are scanned linearly.
const LINEAR_SCAN: usize = 8;
/// Entries of the first-two-bytes table.
const PAIRS: usize = 1 << 16;

/// Why a tokenizer could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A required GGUF key is absent.
    MissingKey(&'static str),
    /// A GGUF key has the wrong type (`tokens` must be an array of strings, `token_type` an
    /// array of integers, `model` a string).
    WrongType(&'static str),
    /// `tokenizer.ggml.model` is not `"rwkv"`.
    NotRwkv,
    /// `tokens` and `token_type` have different lengths.
    LengthMismatch {
        /// Number of token strings.
        tokens: u64,
        /// Number of token types.
        types: u64,
    },
    /// More than `MAX_TOKEN_ID + 1` tokens.
    TooManyTokens(u64),
    /// The token bytes add up to 4 GiB or more.
    TooManyBytes,
    /// A single byte has no matchable token, so some texts could not be encoded.
    MissingByte(u8),
    /// The storage given is too small.
    StorageTooSmall {
        /// Words needed.
        needed: usize,
        /// Words given.
        found: usize,
    },
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TokenizerError::*;
        match *self {
            MissingKey(k) => write!(f, "the GGUF file has no `{k}` (no tokenizer vocabulary)"),
            WrongType(k) => write!(f, "GGUF key `{k}` has an unexpected type"),
            NotRwkv => write!(f, "`{KEY_MODEL}` is not \"rwkv\": not an RWKV World vocabulary"),
            LengthMismatch { tokens, types } => {
                write!(f, "{tokens} token strings but {types} token types")
            }
            TooManyTokens(n) => write!(f, "{n} tokens is more than the {} this tokenizer supports", MAX_TOKEN_ID + 1),
            TooManyBytes => f.write_str("the token strings add up to 4 GiB or more"),
            MissingByte(b) => write!(f, "no token for the single byte 0x{b:02x}, so not every text can be encoded"),
            StorageTooSmall { needed, found } => {
                write!(f, "tokenizer storage holds {found} words, {needed} are needed")
            }
        }
    }
}

impl core::error::Error for TokenizerError {}

/// Where a vocabulary comes from; walked twice (sizing, then copying).
trait Source {
    fn len(&self) -> usize;
    /// Calls `f(id, bytes)` for every matchable token in id order; `bytes` yields the token bytes.
    fn for_each_matchable(&self, f: &mut dyn FnMut(usize, &mut dyn Iterator<Item = u8>));
}

struct ListSource<'a, T>(&'a [T]);

impl<T: AsRef<[u8]>> Source for ListSource<'_, T> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn for_each_matchable(&self, f: &mut dyn FnMut(usize, &mut dyn Iterator<Item = u8>)) {
        for (id, t) in self.0.iter().enumerate() {
            let t = t.as_ref();
            if !t.is_empty() {
                f(id, &mut t.iter().copied());
            }
        }
    }
}

struct GgufSource<'a> {
    tokens: Array<'a>,
    types: Option<Array<'a>>,
}

impl<'a> GgufSource<'a> {
    fn new(gguf: &Gguf<'a>) -> Result<Self, TokenizerError> {
        let model = gguf.get(KEY_MODEL).ok_or(TokenizerError::MissingKey(KEY_MODEL))?;
        if model.as_str().ok_or(TokenizerError::WrongType(KEY_MODEL))? != "rwkv" {
            return Err(TokenizerError::NotRwkv);
        }
        let tokens = gguf
            .get(KEY_TOKENS)
            .ok_or(TokenizerError::MissingKey(KEY_TOKENS))?
            .as_array()
            .filter(|a| a.elem_type() == ValueType::String)
            .ok_or(TokenizerError::WrongType(KEY_TOKENS))?;
        let types = match gguf.get(KEY_TOKEN_TYPE) {
            None => None,
            Some(v) => {
                let a = v
                    .as_array()
                    .filter(|a| {
                        !matches!(a.elem_type(), ValueType::String | ValueType::F32 | ValueType::F64 | ValueType::Bool)
                    })
                    .ok_or(TokenizerError::WrongType(KEY_TOKEN_TYPE))?;
                if a.len() != tokens.len() {
                    return Err(TokenizerError::LengthMismatch { tokens: tokens.len(), types: a.len() });
                }
                Some(a)
            }
        };
        if tokens.len() > u64::from(MAX_TOKEN_ID) + 1 {
            return Err(TokenizerError::TooManyTokens(tokens.len()));
        }
        Ok(GgufSource { tokens, types })
    }
}

impl Source for GgufSource<'_> {
    fn len(&self) -> usize {
        self.tokens.len() as usize
    }

    fn for_each_matchable(&self, f: &mut dyn FnMut(usize, &mut dyn Iterator<Item = u8>)) {
        let mut types = self.types.as_ref().map(|a| a.iter());
        for (id, v) in self.tokens.iter().enumerate() {
            let normal = match types.as_mut() {
                None => true,
                Some(it) => it.next().and_then(|t| t.as_u64()) == Some(TOKEN_TYPE_NORMAL),
            };
            if let (true, Value::String(s)) = (normal, v)
                && !s.is_empty()
            {
                f(id, &mut Unescape::new(s));
            }
        }
    }
}

/// Sizes from one pass over a source.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    n: usize,
    matchable: usize,
    total_bytes: usize,
    max_len: usize,
}

fn measure(src: &dyn Source) -> Result<Sizes, TokenizerError> {
    let n = src.len();
    if n > MAX_TOKEN_ID as usize + 1 {
        return Err(TokenizerError::TooManyTokens(n as u64));
    }
    let mut s = Sizes { n, matchable: 0, total_bytes: 0, max_len: 0 };
    src.for_each_matchable(&mut |_, bytes| {
        let len = bytes.count();
        if len > 0 {
            s.matchable += 1;
            s.total_bytes += len;
            s.max_len = s.max_len.max(len);
        }
    });
    if s.total_bytes >= u32::MAX as usize {
        return Err(TokenizerError::TooManyBytes);
    }
    Ok(s)
}

/// Words to build with `nodes` trie nodes: the final regions plus the build scratch.
fn words_for_nodes(s: &Sizes, nodes: usize) -> usize {
    let fixed = s.n + 1 + s.total_bytes.div_ceil(4) + PAIRS;
    fixed + 2 * (nodes + 1) + 2 * (s.max_len + 1) + s.matchable
}

/// An upper bound on the words needed to build (every byte of every token a new node).
fn words_needed(s: &Sizes) -> usize {
    words_for_nodes(s, 1 + s.total_bytes)
}

/// Where each region starts, in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    n: usize,
    arena: usize,
    pairs: usize,
    nodes: usize,
    n_nodes: usize,
    end: usize,
    build_words: usize,
}

/// An RWKV World tokenizer over its storage `S` (`&[u32]`, or `Vec<u32>` with `alloc`).
///
/// Build with [`from_gguf_in`](Tokenizer::from_gguf_in) / [`from_tokens_in`](Tokenizer::from_tokens_in)
/// into caller storage, or with the `alloc` feature, `Tokenizer::from_gguf` /
/// `Tokenizer::from_tokens` (an `OwnedTokenizer`).
#[derive(Clone, Debug)]
pub struct Tokenizer<S> {
    store: S,
    layout: Layout,
}

/// A tokenizer in caller-provided storage.
pub type TokenizerRef<'s> = Tokenizer<&'s [u32]>;
/// A tokenizer that owns its storage.
#[cfg(feature = "alloc")]
pub type OwnedTokenizer = Tokenizer<alloc::vec::Vec<u32>>;

/// Builds the tokenizer into `storage`; returns the layout (everything before `layout.end`).
fn build(src: &dyn Source, sizes: &Sizes, storage: &mut [u32]) -> Result<Layout, TokenizerError> {
    // Enough for everything but the trie; the exact need is checked once the nodes are counted.
    let found = storage.len();
    if found < words_for_nodes(sizes, 1) {
        return Err(TokenizerError::StorageTooSmall { needed: words_needed(sizes), found });
    }
    let n = sizes.n;
    let arena = n + 1;
    let pairs = arena + sizes.total_bytes.div_ceil(4);
    let nodes = pairs + PAIRS;
    let tmp_words = 2 * (sizes.max_len + 1);
    // Scratch at the very end: the sorted permutation, and below it the per-depth counters/path.
    let perm_start = storage.len() - sizes.matchable;
    let tmp_start = perm_start - tmp_words;
    let (front, tail) = storage.split_at_mut(tmp_start);
    let (tmp, perm) = tail.split_at_mut(tmp_words);
    let (count, path) = tmp.split_at_mut(sizes.max_len + 1);
    let (offsets, rest) = front.split_at_mut(arena);
    let (arena_words, rest) = rest.split_at_mut(pairs - arena);
    let (pair_table, trie) = rest.split_at_mut(PAIRS);
    let arena_bytes: &mut [u8] = bytemuck::cast_slice_mut(arena_words);

    // 1. Offsets and arena, in id order; the permutation of matchable ids.
    offsets.fill(0);
    let (mut pos, mut next_id, mut m) = (0usize, 0usize, 0usize);
    src.for_each_matchable(&mut |id, bytes| {
        while next_id <= id {
            offsets[next_id] = pos as u32;
            next_id += 1;
        }
        let start = pos;
        for b in bytes {
            if let Some(slot) = arena_bytes.get_mut(pos) {
                *slot = b;
                pos += 1;
            }
        }
        if pos > start && m < perm.len() {
            perm[m] = id as u32;
            m += 1;
        }
    });
    while next_id <= n {
        offsets[next_id] = pos as u32;
        next_id += 1;
    }
    let arena_bytes = &*arena_bytes;
    let offsets = &*offsets;
    let bytes_of = |id: u32| &arena_bytes[offsets[id as usize] as usize..offsets[id as usize + 1] as usize];
    let perm = &mut perm[..m];
    perm.sort_unstable_by(|&a, &b| bytes_of(a).cmp(bytes_of(b)).then(a.cmp(&b)));

    // 2. Nodes per depth: token j adds the depths lcp(j-1, j)+1 ..= len(j).
    let lcp = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    count.fill(0);
    for j in 0..perm.len() {
        let s = bytes_of(perm[j]);
        let l = if j > 0 { lcp(bytes_of(perm[j - 1]), s) } else { 0 };
        for c in &mut count[l + 1..=s.len()] {
            *c += 1;
        }
    }
    let n_nodes = 1 + count.iter().map(|&c| c as usize).sum::<usize>();
    let build_words = words_for_nodes(sizes, n_nodes);
    if found < build_words {
        return Err(TokenizerError::StorageTooSmall { needed: build_words, found });
    }
    // `count[d]` becomes the next free node id at depth d (breadth-first numbering).
    let mut next = 1u32;
    for c in count.iter_mut().skip(1) {
        let k = *c;
        *c = next;
        next += k;
    }
    // n_nodes records plus a sentinel whose first child is n_nodes.
    let rec = &mut trie[..2 * (n_nodes + 1)];
    rec[..2].fill(0);

    // 3. Create the nodes; a first child of 0 means "none yet" (0 is the root, nobody's child).
    path[0] = 0;
    for j in 0..perm.len() {
        let id = perm[j];
        let s = bytes_of(id);
        let l = if j > 0 { lcp(bytes_of(perm[j - 1]), s) } else { 0 };
        for d in l + 1..=s.len() {
            let node = count[d];
            count[d] += 1;
            let parent = path[d - 1] as usize;
            if rec[2 * parent] == 0 {
                rec[2 * parent] = node;
            }
            let tok = if d == s.len() { id + 1 } else { 0 };
            rec[2 * node as usize] = 0;
            rec[2 * node as usize + 1] = (tok << LABEL_BITS) | u32::from(s[d - 1]);
            path[d] = node;
        }
    }
    // Leaves get the next node's first child, so that children of i are fc[i]..fc[i+1].
    rec[2 * n_nodes] = n_nodes as u32;
    rec[2 * n_nodes + 1] = 0;
    for i in (0..n_nodes).rev() {
        if rec[2 * i] == 0 {
            rec[2 * i] = rec[2 * i + 2];
        }
    }

    // 4. Every byte must be a token: then the root's children are nodes 1 + byte.
    let children_of_root = rec[0] as usize..rec[2] as usize;
    for b in 0..=255u8 {
        let node = 1 + b as usize;
        let ok = children_of_root.contains(&node)
            && rec[2 * node + 1] & 0xff == u32::from(b)
            && rec[2 * node + 1] >> LABEL_BITS != 0;
        if !ok {
            // Name the first byte that has no token.
            let missing = (0..=255u8)
                .find(|&x| {
                    !children_of_root
                        .clone()
                        .any(|c| rec[2 * c + 1] & 0xff == u32::from(x) && rec[2 * c + 1] >> LABEL_BITS != 0)
                })
                .unwrap_or(b);
            return Err(TokenizerError::MissingByte(missing));
        }
    }
    // 5. The first-two-bytes table.
    pair_table.fill(NONE);
    for b0 in 0..256usize {
        let node = 1 + b0;
        for child in rec[2 * node] as usize..rec[2 * node + 2] as usize {
            pair_table[(b0 << 8) | (rec[2 * child + 1] & 0xff) as usize] = child as u32;
        }
    }
    Ok(Layout { n, arena, pairs, nodes, n_nodes, end: nodes + 2 * (n_nodes + 1), build_words })
}

impl<'s> Tokenizer<&'s [u32]> {
    /// Words of storage [`from_tokens_in`](Self::from_tokens_in) needs for `tokens`: a cheap upper
    /// bound ([`build_words`](Tokenizer::build_words) is the exact need,
    /// [`storage_words`](Tokenizer::storage_words) what the result uses).
    pub fn storage_words_for_tokens<T: AsRef<[u8]>>(tokens: &[T]) -> Result<usize, TokenizerError> {
        Ok(words_needed(&measure(&ListSource(tokens))?))
    }

    /// Words of storage [`from_gguf_in`](Self::from_gguf_in) needs (an upper bound).
    pub fn storage_words_for_gguf(gguf: &Gguf<'_>) -> Result<usize, TokenizerError> {
        Ok(words_needed(&measure(&GgufSource::new(gguf)?)?))
    }

    /// Builds a tokenizer for `tokens` (id → bytes; empty entries are not matchable) in `storage`.
    pub fn from_tokens_in<T: AsRef<[u8]>>(tokens: &[T], storage: &'s mut [u32]) -> Result<Self, TokenizerError> {
        let src = ListSource(tokens);
        let sizes = measure(&src)?;
        let layout = build(&src, &sizes, storage)?;
        let storage: &'s [u32] = storage;
        Ok(Tokenizer { store: &storage[..layout.end], layout })
    }

    /// Builds a tokenizer from the vocabulary of a llama.cpp-style GGUF file in `storage`.
    pub fn from_gguf_in(gguf: &Gguf<'_>, storage: &'s mut [u32]) -> Result<Self, TokenizerError> {
        let src = GgufSource::new(gguf)?;
        let sizes = measure(&src)?;
        let layout = build(&src, &sizes, storage)?;
        let storage: &'s [u32] = storage;
        Ok(Tokenizer { store: &storage[..layout.end], layout })
    }
}

#[cfg(feature = "alloc")]
impl Tokenizer<alloc::vec::Vec<u32>> {
    fn build_owned(src: &dyn Source) -> Result<Self, TokenizerError> {
        let sizes = measure(src)?;
        let mut store = alloc::vec![0u32; words_needed(&sizes)];
        let layout = build(src, &sizes, &mut store)?;
        store.truncate(layout.end);
        store.shrink_to_fit();
        Ok(Tokenizer { store, layout })
    }

    /// Builds an owning tokenizer for `tokens` (id → bytes; empty entries are not matchable).
    pub fn from_tokens<T: AsRef<[u8]>>(tokens: &[T]) -> Result<Self, TokenizerError> {
        Self::build_owned(&ListSource(tokens))
    }

    /// Builds an owning tokenizer from the vocabulary of a llama.cpp-style GGUF file.
    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Self, TokenizerError> {
        Self::build_owned(&GgufSource::new(gguf)?)
    }
}

impl<S: AsRef<[u32]>> Tokenizer<S> {
    fn words(&self) -> &[u32] {
        self.store.as_ref()
    }

    /// Number of token ids (the vocabulary size, including id 0 and pads).
    pub fn vocab_size(&self) -> usize {
        self.layout.n
    }

    /// Words of storage in use.
    pub fn storage_words(&self) -> usize {
        self.layout.end
    }

    /// Words of storage that building this tokenizer again needs, exactly (the used words plus
    /// build scratch: one word per matchable token and two per byte of the longest token).
    pub fn build_words(&self) -> usize {
        self.layout.build_words
    }

    /// Number of trie nodes (including the root).
    pub fn trie_nodes(&self) -> usize {
        self.layout.n_nodes
    }

    /// A view borrowing this tokenizer's storage.
    pub fn view(&self) -> TokenizerRef<'_> {
        Tokenizer { store: self.words(), layout: self.layout }
    }

    /// The bytes of token `id`: empty for end-of-text, non-NORMAL GGUF tokens, empty table entries
    /// and ids out of range.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let l = &self.layout;
        let w = self.words();
        let i = id as usize;
        if i >= l.n {
            return &[];
        }
        let bytes: &[u8] = bytemuck::cast_slice(&w[l.arena..l.pairs]);
        bytes.get(w[i] as usize..w[i + 1] as usize).unwrap_or(&[])
    }

    /// Whether `id` can be produced by encoding (it has bytes).
    pub fn is_matchable(&self, id: u32) -> bool {
        !self.token_bytes(id).is_empty()
    }

    /// The official occurrence weight of a sampled token (`PIPELINE.generate`): 0 when its text is
    /// a substring of `" \t0123456789"` (a space, a tab, a digit, or an ascending digit run such as
    /// `"12"` or `"89"`), else 1. Ids without bytes (end-of-text, pads) weigh 1, as the official
    /// decode of an unknown id is `"\u{FFFD}"`; so do tokens that are not valid UTF-8 alone.
    pub fn occurrence_weight(&self, id: u32) -> f64 {
        crate::sampler::occurrence_weight(Some(self.token_bytes(id)).filter(|b| !b.is_empty()))
    }

    fn parts(&self) -> Parts<'_> {
        let l = &self.layout;
        let w = self.words();
        Parts { pairs: &w[l.pairs..l.nodes], rec: &w[l.nodes..l.end] }
    }

    /// The longest token that is a prefix of `text`: `(id, length in bytes)`, or `None` for
    /// empty text.
    pub fn longest_match(&self, text: &[u8]) -> Option<(u32, usize)> {
        self.parts().longest(text)
    }

    /// Encodes `text` (any bytes; a `&str` via `.as_bytes()`), lazily.
    pub fn encode_iter<'t>(&'t self, text: &'t [u8]) -> Encode<'t> {
        Encode { parts: self.parts(), text }
    }

    /// Encodes `text` into `out`; returns the number of ids, or `Err(needed)` if `out` is too short
    /// (then `out` holds the first `out.len()` ids).
    pub fn encode_into(&self, text: &[u8], out: &mut [u32]) -> Result<usize, usize> {
        let mut n = 0;
        for id in self.encode_iter(text) {
            if let Some(slot) = out.get_mut(n) {
                *slot = id;
            }
            n += 1;
        }
        if n <= out.len() { Ok(n) } else { Err(n) }
    }

    /// Decodes `ids` to text, streaming pieces to `emit`, with U+FFFD for invalid UTF-8 as
    /// [`Utf8Stream`] documents (identical to `String::from_utf8_lossy` of all the bytes).
    pub fn decode_with(&self, ids: &[u32], mut emit: impl FnMut(&str)) {
        let mut d = Utf8Stream::new();
        for &id in ids {
            d.push(self.token_bytes(id), &mut emit);
        }
        d.finish(emit);
    }

    /// Encodes a string.
    #[cfg(feature = "alloc")]
    pub fn encode(&self, text: &str) -> alloc::vec::Vec<u32> {
        self.encode_iter(text.as_bytes()).collect()
    }

    /// The concatenated bytes of `ids`.
    #[cfg(feature = "alloc")]
    pub fn decode_bytes(&self, ids: &[u32]) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::new();
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id));
        }
        out
    }

    /// Decodes `ids` to a string, replacing invalid UTF-8 with U+FFFD as `String::from_utf8_lossy`.
    /// (The official `TRIE_TOKENIZER.decode` returns the single string `"\u{FFFD}"` instead.)
    #[cfg(feature = "alloc")]
    pub fn decode(&self, ids: &[u32]) -> alloc::string::String {
        let mut s = alloc::string::String::new();
        self.decode_with(ids, |p| s.push_str(p));
        s
    }
}

/// The index regions, borrowed.
#[derive(Clone, Copy, Debug)]
struct Parts<'a> {
    pairs: &'a [u32],
    rec: &'a [u32],
}

impl Parts<'_> {
    /// The child of `node` labelled `b`.
    #[inline]
    fn child(&self, node: usize, b: u8) -> Option<usize> {
        let (lo, hi) = (self.rec[2 * node] as usize, self.rec[2 * node + 2] as usize);
        let kids = self.rec.get(2 * lo..2 * hi)?;
        let label = |k: usize| (kids[2 * k + 1] & 0xff) as u8;
        let n = hi - lo;
        if n <= LINEAR_SCAN {
            (0..n).find(|&k| label(k) == b).map(|k| lo + k)
        } else {
            let (mut a, mut z) = (0, n);
            while a < z {
                let mid = (a + z) / 2;
                match label(mid).cmp(&b) {
                    core::cmp::Ordering::Less => a = mid + 1,
                    core::cmp::Ordering::Greater => z = mid,
                    core::cmp::Ordering::Equal => return Some(lo + mid),
                }
            }
            None
        }
    }

    #[inline]
    fn longest(&self, text: &[u8]) -> Option<(u32, usize)> {
        let &b0 = text.first()?;
        // Every single byte is a token, node 1 + byte (checked when building).
        let single = ((self.rec[2 * (1 + b0 as usize) + 1] >> LABEL_BITS).wrapping_sub(1), 1);
        let Some(&b1) = text.get(1) else { return Some(single) };
        let node = self.pairs[((b0 as usize) << 8) | b1 as usize];
        if node == NONE {
            return Some(single);
        }
        let mut node = node as usize;
        let tok = self.rec[2 * node + 1] >> LABEL_BITS;
        let mut best = if tok != 0 { (tok - 1, 2) } else { single };
        let mut i = 2;
        while let Some(&b) = text.get(i) {
            let Some(next) = self.child(node, b) else { break };
            node = next;
            i += 1;
            let tok = self.rec[2 * node + 1] >> LABEL_BITS;
            if tok != 0 {
                best = (tok - 1, i);
            }
        }
        Some(best)
    }
}

/// The ids of a text, from [`Tokenizer::encode_iter`].
#[derive(Clone, Debug)]
pub struct Encode<'a> {
    parts: Parts<'a>,
    text: &'a [u8],
}

impl Iterator for Encode<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        let (id, len) = self.parts.longest(self.text)?;
        self.text = &self.text[len..];
        Some(id)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.text.len().div_ceil(128), Some(self.text.len()))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// 256 bytes (id = byte + 1) plus some words, like a tiny World vocabulary.
    fn tiny() -> Vec<Vec<u8>> {
        let mut t: Vec<Vec<u8>> = std::vec![Vec::new()];
        t.extend((0..=255u8).map(|b| std::vec![b]));
        for w in ["ab", "abc", "abcd", "b", "bc", "xyz", "你", "\n\n", "aaaa"] {
            t.push(w.as_bytes().to_vec());
        }
        t.push(b"ab".to_vec()); // a duplicate: the lower id wins
        t
    }

    #[test]
    fn longest_match_and_round_trip() {
        let t = tiny();
        let mut storage = std::vec![0u32; Tokenizer::storage_words_for_tokens(&t).unwrap()];
        let tok = Tokenizer::from_tokens_in(&t, &mut storage).unwrap();
        let id = |s: &str| t.iter().position(|x| x == s.as_bytes()).unwrap() as u32;
        let enc: Vec<u32> = tok.encode_iter(b"abcdabcab xyzxy\n\n\n").collect();
        let want = [id("abcd"), id("abc"), id("ab"), 33, id("xyz"), 121, 122, id("\n\n"), 11];
        assert_eq!(enc, want);
        assert_eq!(tok.longest_match(b""), None);
        assert_eq!(tok.longest_match(b"aaaaa"), Some((id("aaaa"), 4)));
        let mut out = [0u32; 3];
        assert_eq!(tok.encode_into(b"abcdabc", &mut out), Ok(2));
        assert_eq!(tok.encode_into(b"xyzabcdabc", &mut out[..2]), Err(3));
        assert_eq!(tok.token_bytes(0), b"");
        assert_eq!(tok.token_bytes(100_000), b"");
        assert_eq!(tok.vocab_size(), t.len());
        assert!(tok.storage_words() <= storage_len(&t));
    }

    fn storage_len(t: &[Vec<u8>]) -> usize {
        Tokenizer::storage_words_for_tokens(t).unwrap()
    }

    #[test]
    fn missing_byte_is_an_error() {
        let mut t = tiny();
        t[0x42 + 1].clear();
        let mut storage = std::vec![0u32; storage_len(&t)];
        assert_eq!(Tokenizer::from_tokens_in(&t, &mut storage).unwrap_err(), TokenizerError::MissingByte(0x42));
        let t = tiny();
        let mut big = std::vec![0u32; storage_len(&t)];
        let exact = Tokenizer::from_tokens_in(&t, &mut big).unwrap().build_words();
        assert!(exact < storage_len(&t));
        let mut fits = std::vec![0u32; exact];
        let tok = Tokenizer::from_tokens_in(&t, &mut fits).unwrap();
        assert_eq!(tok.encode_iter(b"abcd").collect::<Vec<_>>(), [257 + 2]);
        let mut small = std::vec![0u32; exact - 1];
        assert_eq!(
            Tokenizer::from_tokens_in(&t, &mut small).unwrap_err(),
            TokenizerError::StorageTooSmall { needed: exact, found: exact - 1 }
        );
    }
}
