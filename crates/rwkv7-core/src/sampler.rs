//! The official RWKV sampler, `rwkv.utils.PIPELINE` (spec §8.1), without allocation.
//!
//! [`sample_logits`] is `PIPELINE.sample_logits` (CPU path) and [`Sampler::step`] is one step of
//! `PIPELINE.generate`: banned tokens, presence/frequency penalties with decay, stop tokens.
//! The arithmetic follows the official code operation by operation, so that given the official
//! softmax output every later value is bit-identical (apart from `powf` for temperature ≠ 1):
//!
//! 1. `probs = softmax(logits)` in f32 (max-subtracted `exp`, an 8-lane f32 sum reduced like
//!    torch's AVX2 kernel, then multiplication by `1/sum`). Our [`exp_f32`] (≤ 2 ulp) and
//!    torch's exp and summation order differ in the last bits; the probabilities agree to a few
//!    1e-7 relative.
//! 2. Temperature 0 means greedy: temperature 1 and top-p 0.
//! 3. Top-p: sort descending, take the f32 **sequential** cumulative sum, find the first index
//!    where it is `>= top_p` (compared in f32, as numpy 2 casts the Python float), and zero every
//!    probability **below** that one. Quirks kept:
//!    - *ties at the cut-off are kept*: every token whose probability equals the cut-off value
//!      survives, so more than `top_p` mass (and more tokens) can remain;
//!    - *the `top_p = 1.0` quirk*: the f32 sum can end below 1.0 (e.g. 0.9999982), so no index
//!      qualifies, numpy's `argmax` of all-false is 0, the cut-off becomes the largest
//!      probability and sampling turns greedy. `top_p > 1` does the same, always.
//! 4. Top-k (`0 < top_k < n`): all but the `top_k` most probable tokens are zeroed. numpy breaks
//!    ties at the k-th place by its unstable sort order (platform-dependent); here the lower
//!    token id wins.
//! 5. Temperature `T ≠ 1` is applied **after** the cut-offs, **on probabilities**:
//!    `p = p^(1/T)` in f32 (exponent `(1/T)` computed in f64, then cast). A negative or NaN
//!    temperature is treated as 0 (greedy); the official code produces NaN there.
//! 6. Normalise: divide by the f32 sum, computed with numpy's pairwise summation (8 accumulators,
//!    blocks of 128) so that it is bit-identical.
//! 7. Draw: numpy's `choice(p=probs)` with a uniform `u` in [0, 1): `cdf = cumsum(f64(probs))`
//!    sequentially, `cdf /= cdf[-1]`, token = first index with `cdf > u`
//!    (`searchsorted(u, side='right')`).
//!
//! If temperature scaling underflows every kept probability to 0 (the official code then fails
//! on NaN), the most probable kept token gets probability 1.
//!
//! The uniform draw comes from [`Pcg64`], numpy's PCG64 bit generator, seeded as documented on
//! [`Pcg64::seed_from_u64`]; every sampling function also has a form taking the draw `u`.
//!
//! Performance: a sort of all 65536 probabilities is avoided. Only the probabilities above a
//! threshold that holds the `top_p` mass are gathered and sorted (see [`filter_probs`]), so with a
//! real model's peaked distribution only a few hundred values are sorted.

use core::fmt;

/// Sampling parameters, named after `PIPELINE_ARGS`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerParams {
    /// Temperature; 0 is greedy. Default 1.0.
    pub temperature: f64,
    /// Nucleus mass; 0 is greedy. Default 0.85.
    pub top_p: f64,
    /// Keep only the `top_k` most probable tokens; 0 disables. Default 0.
    pub top_k: usize,
    /// Frequency penalty per (decayed) occurrence. Default 0.2.
    pub alpha_frequency: f64,
    /// Presence penalty for any token seen. Default 0.2.
    pub alpha_presence: f64,
    /// Occurrence decay per generated token. Default 0.996.
    pub alpha_decay: f64,
}

impl Default for SamplerParams {
    /// `PIPELINE_ARGS()` defaults.
    fn default() -> Self {
        SamplerParams {
            temperature: 1.0,
            top_p: 0.85,
            top_k: 0,
            alpha_frequency: 0.2,
            alpha_presence: 0.2,
            alpha_decay: 0.996,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding without penalties (`temp=0 topp=0 penalty=0`).
    pub const GREEDY: SamplerParams = SamplerParams {
        temperature: 0.0,
        top_p: 0.0,
        top_k: 0,
        alpha_frequency: 0.0,
        alpha_presence: 0.0,
        alpha_decay: 0.996,
    };
}

/// Why sampling failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SamplerError {
    /// No logits.
    Empty,
    /// The index scratch is shorter than the logits.
    ScratchTooSmall {
        /// Entries needed (the number of logits).
        needed: usize,
        /// Entries given.
        found: usize,
    },
    /// A logit is NaN or +inf, or all are -inf (every token banned).
    InvalidLogits,
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SamplerError::Empty => f.write_str("no logits to sample from"),
            SamplerError::ScratchTooSmall { needed, found } => {
                write!(f, "sampler scratch holds {found} indices, {needed} are needed")
            }
            SamplerError::InvalidLogits => f.write_str("logits contain NaN or +inf, or every token is banned"),
        }
    }
}

impl core::error::Error for SamplerError {}

/// numpy's PCG64 bit generator (PCG XSL-RR 128/64): 128-bit LCG state, multiplier
/// `0x2360ed051fc65da44385df649fccf645`, odd increment; each draw steps the state, then outputs
/// `rotr64(hi ^ lo, state >> 122)`.
///
/// [`next_f64`](Self::next_f64) is numpy's `Generator.random()`: `(next_u64 >> 11) · 2⁻⁵³`, so
/// `Pcg64::from_raw(s, i)` reproduces `Generator(PCG64())` after
/// `bit_generator.state = {'bit_generator': 'PCG64', 'state': {'state': s, 'inc': i}, ...}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
}

const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

impl Pcg64 {
    /// A generator with this exact state and increment (the increment is forced odd).
    pub const fn from_raw(state: u128, inc: u128) -> Self {
        Pcg64 { state, inc: inc | 1 }
    }

    /// PCG's `srandom(initstate, initseq)`: `inc = initseq << 1 | 1`, `state = 0`, step,
    /// `state += initstate`, step. This is what numpy does with the four words its
    /// `SeedSequence` produces (`initstate = w0 << 64 | w1`, `initseq = w2 << 64 | w3`).
    pub const fn new(initstate: u128, initseq: u128) -> Self {
        let inc = (initseq << 1) | 1;
        let mut state = 0u128.wrapping_mul(PCG_MULT).wrapping_add(inc);
        state = state.wrapping_add(initstate);
        state = state.wrapping_mul(PCG_MULT).wrapping_add(inc);
        Pcg64 { state, inc }
    }

    /// Seeds from one number: four SplitMix64 outputs `w0..w3` (Vigna's `splitmix64`, state
    /// starting at `seed`) give `Pcg64::new(w0 << 64 | w1, w2 << 64 | w3)`. (numpy seeds through
    /// `SeedSequence` instead, so `numpy.random.PCG64(seed)` is a different stream.)
    pub const fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        let mut w = [0u64; 4];
        let mut i = 0;
        while i < 4 {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            w[i] = z ^ (z >> 31);
            i += 1;
        }
        Pcg64::new(((w[0] as u128) << 64) | w[1] as u128, ((w[2] as u128) << 64) | w[3] as u128)
    }

    /// `(state, inc)`.
    pub const fn raw(&self) -> (u128, u128) {
        (self.state, self.inc)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
        let s = self.state;
        (((s >> 64) as u64) ^ (s as u64)).rotate_right((s >> 122) as u32)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// `e^x` in f32 without tables, branches or float-to-int conversions, so that loops over it
/// vectorise (SSE2 on baseline x86-64): Cody–Waite range
/// reduction `x = k·ln2 + r`, Cephes' degree-6 polynomial for `e^r` on |r| ≤ ln2/2, and `2^k`
/// applied in two halves so that results in the subnormal range round correctly. Relative error
/// ≤ 2 ulp (checked against `libm::expf` in the tests); `x ≤ -104` (and -inf) gives 0,
/// `x > 88.72` gives +inf.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting it rounds to an integer
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-104.0, 89.0);
    let kr = x * LOG2E + ROUND; // = 1.5·2^23 + k exactly
    let k = kr - ROUND;
    let r = x - k * C1 - k * C2;
    let mut y = 1.987_569_1e-4f32;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 0.5;
    y = y * (r * r) + r + 1.0;
    // k from the mantissa of `kr` (no float-to-int conversion, so the loop vectorises).
    let ki = (kr.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let k1 = ki >> 1;
    let k2 = ki - k1;
    y * f32::from_bits(((k1 + 127) as u32) << 23) * f32::from_bits(((k2 + 127) as u32) << 23)
}

/// The maximum of `x` (-inf if empty; NaN ignored), and whether any value is NaN or +inf.
/// Eight independent lanes, so that it vectorises.
fn max_and_bad(x: &[f32]) -> (f32, bool) {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut bad = [0u32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            let v = c[j];
            m[j] = if v > m[j] { v } else { m[j] };
            bad[j] |= u32::from(v.is_nan() | (v == f32::INFINITY));
        }
    }
    for (j, &v) in chunks.remainder().iter().enumerate() {
        m[j] = if v > m[j] { v } else { m[j] };
        bad[j] |= u32::from(v.is_nan() | (v == f32::INFINITY));
    }
    let max = m.iter().fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
    (max, bad.iter().any(|&b| b != 0))
}

/// f32 softmax in place, shaped like torch's CPU kernel (see the module docs).
///
/// Fails on NaN or +inf logits, or when every logit is -inf.
pub fn softmax_in_place(x: &mut [f32]) -> Result<(), SamplerError> {
    if x.is_empty() {
        return Err(SamplerError::Empty);
    }
    let (max, bad) = max_and_bad(x);
    if bad || !max.is_finite() {
        return Err(SamplerError::InvalidLogits);
    }
    let sum = if x.len() < 8 {
        x.iter_mut().fold(0.0f32, |a, v| {
            *v = exp_f32(*v - max);
            a + *v
        })
    } else {
        // exp and the 8-lane sum in one pass; lanes start at 0, and 0 + e = e exactly, so this
        // is torch's "first 8 values, then add each following block of 8" order.
        let mut lanes = [0.0f32; 8];
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            for (l, v) in lanes.iter_mut().zip(c) {
                *v = exp_f32(*v - max);
                *l += *v;
            }
        }
        for (l, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
            *v = exp_f32(*v - max);
            *l += *v;
        }
        ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
    };
    let r = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= r;
    }
    Ok(())
}

/// numpy's pairwise f32 sum (`np.sum` of a contiguous float32 array), bit for bit.
pub fn numpy_sum_f32(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0f32, |s, &v| s + v)
    } else if n <= 128 {
        let mut r = [0.0f32; 8];
        r.copy_from_slice(&a[..8]);
        let body = n - n % 8;
        for c in a[8..body].chunks_exact(8) {
            for (x, &v) in r.iter_mut().zip(c) {
                *x += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[body..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum_f32(&a[..n2]) + numpy_sum_f32(&a[n2..])
    }
}

/// Half the distance from `x` (≥ 0) to the next larger f32: adding anything smaller leaves `x`
/// unchanged.
fn half_ulp_above(x: f32) -> f32 {
    (f32::from_bits(x.to_bits() + 1) - x) * 0.5
}

/// Extra mass the first candidate set must hold beyond `top_p`, so that the f32 sum over it
/// (off by far less than this from the f64 sum) normally reaches `top_p` without a second round.
const MASS_SLACK: f64 = 1e-2;

/// Steps 2–6 of the module docs on softmax output `probs` (which should sum to about 1), in
/// place: top-p, top-k, temperature, normalisation. `scratch` needs `probs.len()` entries.
///
/// Only the probabilities that can matter are sorted: those at or above a threshold that starts
/// at `max·2⁻¹²` and is lowered until they hold `top_p` (+1%) of the mass. Their bit patterns are
/// sorted (non-negative floats order like their bits; ties are equal values, so the order among
/// them cannot change the f32 cumulative sum). If the sum over them still falls short, smaller
/// values are added only while they can still change the f32 sum.
pub fn filter_probs(
    probs: &mut [f32],
    temperature: f64,
    top_p: f64,
    top_k: usize,
    scratch: &mut [u32],
) -> Result<(), SamplerError> {
    let n = probs.len();
    if n == 0 {
        return Err(SamplerError::Empty);
    }
    if scratch.len() < n {
        return Err(SamplerError::ScratchTooSmall { needed: n, found: scratch.len() });
    }
    let (temperature, top_p) = if temperature > 0.0 { (temperature, top_p) } else { (1.0, 0.0) };
    let top_p32 = top_p as f32;
    let (pmax, bad) = max_and_bad(probs);
    // Probabilities come from `softmax_in_place`, which refuses NaN and +inf; called directly,
    // an infinite maximum would keep the threshold search below from ever ending.
    if bad {
        return Err(SamplerError::InvalidLogits);
    }
    let pmax = pmax.max(0.0);
    let imax = probs.iter().position(|&v| v == pmax).unwrap_or(0);

    // The cut-off, and the probabilities sorted descending as far as they were needed.
    let (cutoff, sorted): (f32, &[u32]) = if pmax >= top_p32 {
        (pmax, &[]) // cum[0] = max already reaches top_p (greedy, top_p = 0)
    } else {
        // Below FLOOR nothing can change an f32 sum that is already ≥ 0.5 (checked below).
        const FLOOR: f32 = 1.0 / (1u64 << 25) as f32;
        let want = f64::from(top_p32) + MASS_SLACK;
        let mut t = if want > 1.0 { FLOOR } else { (pmax * (1.0 / 4096.0)).max(FLOOR) };
        let mut m;
        loop {
            m = 0;
            let mut mass = 0.0f64;
            for &v in probs.iter() {
                if v >= t && v > 0.0 {
                    scratch[m] = v.to_bits();
                    m += 1;
                    mass += f64::from(v);
                }
            }
            if mass >= want || t <= FLOOR {
                break;
            }
            t = (t * (1.0 / 4096.0)).max(FLOOR);
        }
        // Descending: sort ascending, then reverse.
        scratch[..m].sort_unstable();
        scratch[..m].reverse();
        let mut cum = 0.0f32;
        let mut hit = scratch[..m].iter().map(|&b| f32::from_bits(b)).find(|&v| {
            cum += v;
            cum >= top_p32
        });
        if hit.is_none() && t > half_ulp_above(cum) {
            // Smaller values could still move the sum (probabilities far from normalised): take
            // all of them too.
            let mut m2 = m;
            for &v in probs.iter() {
                if v < t && v > 0.0 {
                    scratch[m2] = v.to_bits();
                    m2 += 1;
                }
            }
            scratch[m..m2].sort_unstable();
            scratch[m..m2].reverse();
            hit = scratch[m..m2].iter().map(|&b| f32::from_bits(b)).find(|&v| {
                cum += v;
                cum >= top_p32
            });
            m = m2;
        }
        // No index reached top_p: numpy's argmax of all-false is 0, the largest probability.
        (hit.unwrap_or(pmax), &scratch[..m])
    };

    // Top-k, when it removes anything top-p kept: keep values above the k-th largest value `pt`,
    // and of those equal to it the lowest ids, `k` in all.
    let kept_by_p = if sorted.is_empty() {
        probs.iter().filter(|&&v| v == pmax).count()
    } else {
        sorted.partition_point(|&b| f32::from_bits(b) >= cutoff)
    };
    let kth = (top_k > 0 && top_k < n && top_k < kept_by_p).then(|| {
        let pt = if sorted.is_empty() { pmax } else { f32::from_bits(sorted[top_k - 1]) };
        let above = if sorted.is_empty() { 0 } else { sorted.partition_point(|&b| f32::from_bits(b) > pt) };
        (pt, top_k - above)
    });
    match kth {
        Some((pt, mut equal_left)) => {
            for v in probs.iter_mut() {
                if *v > pt {
                    continue;
                }
                if *v == pt && equal_left > 0 {
                    equal_left -= 1;
                } else {
                    *v = 0.0;
                }
            }
        }
        None => {
            for v in probs.iter_mut() {
                *v = if *v < cutoff { 0.0 } else { *v }; // an unconditional store vectorises
            }
        }
    }

    if temperature != 1.0 {
        let e = (1.0 / temperature) as f32;
        for v in probs.iter_mut() {
            // 0^e = 0 for e > 0, so zeros can be skipped (the official code powers them too).
            // Above a temperature of about 1.4·10⁴⁵, `e` rounds to 0 and the official code's
            // `0 ** 0 = 1` would revive every token top-p, top-k or a ban removed; here they
            // stay removed, and the kept ones become equally likely.
            if *v != 0.0 {
                *v = libm::powf(*v, e);
            }
        }
    }
    let sum = numpy_sum_f32(probs);
    if sum > 0.0 && sum.is_finite() {
        for v in probs.iter_mut() {
            *v /= sum;
        }
    } else {
        probs.fill(0.0);
        probs[imax] = 1.0;
    }
    Ok(())
}

/// numpy's `choice(len(probs), p=probs)` for the uniform draw `u` in [0, 1) (step 7).
/// Zero-probability tokens are never chosen; `u ≥ 1` gives the last non-zero one.
pub fn choose(probs: &[f32], u: f64) -> usize {
    // Adding 0.0 changes nothing, so zeros are skipped (shortening the sequential f64 chain).
    let total: f64 = probs.iter().filter(|&&v| v != 0.0).fold(0.0f64, |s, &v| s + f64::from(v));
    let mut c = 0.0f64;
    let mut last = 0;
    for (i, &v) in probs.iter().enumerate() {
        if v == 0.0 {
            continue;
        }
        c += f64::from(v);
        last = i;
        if c / total > u {
            return i;
        }
    }
    last
}

/// `PIPELINE.sample_logits` (CPU path) with the uniform draw `u`: softmax, filters, draw.
/// `logits` is overwritten with the final probability vector; `scratch` needs `logits.len()`
/// entries.
pub fn sample_logits(
    logits: &mut [f32],
    temperature: f64,
    top_p: f64,
    top_k: usize,
    u: f64,
    scratch: &mut [u32],
) -> Result<u32, SamplerError> {
    softmax_in_place(logits)?;
    filter_probs(logits, temperature, top_p, top_k, scratch)?;
    Ok(choose(logits, u) as u32)
}

/// The official occurrence weight of a sampled token whose bytes are `text` (`None` for an id
/// the vocabulary does not have): 0 when the text is a substring of `" \t0123456789"`, else 1.
/// Invalid UTF-8 and unknown ids weigh 1 (the official decode returns `"\u{FFFD}"` for them).
pub fn occurrence_weight(text: Option<&[u8]>) -> f64 {
    const ZERO_WEIGHT: &[u8] = b" \t0123456789";
    match text {
        Some(t) if t.is_empty() || ZERO_WEIGHT.windows(t.len()).any(|w| w == t) => 0.0,
        _ => 1.0,
    }
}

/// The first index of the largest value (NaNs are passed over; 0 when there is no
/// number at all). The greedy pick without the official pipeline's softmax, for callers
/// that only need the top token (benchmarks, top-1 agreement).
///
/// Two passes that the compiler vectorizes: the maximum over [`ARGMAX_LANES`] running
/// lanes, then the first chunk that holds it. Over a 65536-entry vocabulary this takes a
/// few microseconds, where the one-element-at-a-time scan took about 40.
pub fn argmax(values: &[f32]) -> usize {
    let chunks = values.chunks_exact(ARGMAX_LANES);
    let tail = chunks.remainder();
    let mut lanes = [f32::NEG_INFINITY; ARGMAX_LANES];
    for chunk in chunks.clone() {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    let max = lanes.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    // `fold` with `|` rather than `any`: no early exit inside a chunk, so it vectorizes.
    let first_chunk = chunks.clone().position(|c| c.iter().fold(false, |hit, &v| hit | (v == max)));
    let start = first_chunk.map_or(values.len() - tail.len(), |c| c * ARGMAX_LANES);
    values[start..].iter().position(|&v| v == max).map_or(0, |i| start + i)
}

/// Lanes of [`argmax`]'s first pass: two AVX2 (four NEON) registers of f32.
const ARGMAX_LANES: usize = 16;

/// Sets the logits of `tokens` to -inf (`token_ban`). Ids out of range are ignored.
pub fn ban_tokens(logits: &mut [f32], tokens: &[u32]) {
    for &t in tokens {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// One entry of [`Occurrence`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OccEntry {
    /// Token id.
    pub token: u32,
    /// Decayed occurrence count (the official `occurrence[token]`, a Python float).
    pub count: f64,
}

/// The official `occurrence` dictionary in caller storage: token → decayed count, in insertion
/// order.
///
/// With storage for at least as many entries as tokens generated it is exact. When it is full,
/// a new token replaces the entry with the smallest count (the oldest among equals), which the
/// official unbounded dictionary would have kept.
#[derive(Debug)]
pub struct Occurrence<'a> {
    entries: &'a mut [OccEntry],
    len: usize,
}

impl<'a> Occurrence<'a> {
    /// An empty table over `storage`.
    pub fn new(storage: &'a mut [OccEntry]) -> Self {
        Occurrence { entries: storage, len: 0 }
    }

    /// The entries, in insertion order.
    pub fn entries(&self) -> &[OccEntry] {
        &self.entries[..self.len]
    }

    /// Number of tokens tracked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no token is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of tokens tracked.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The count of `token`, if tracked.
    pub fn get(&self, token: u32) -> Option<f64> {
        self.entries().iter().find(|e| e.token == token).map(|e| e.count)
    }

    /// `logits[t] -= f32(presence + count·frequency)` for every tracked token (the sum in f64 as
    /// Python computes it, the subtraction in f32 as torch does).
    pub fn apply(&self, logits: &mut [f32], presence: f64, frequency: f64) {
        for e in self.entries() {
            if let Some(l) = logits.get_mut(e.token as usize) {
                *l -= (presence + e.count * frequency) as f32;
            }
        }
    }

    /// Multiplies every count by `factor`.
    pub fn decay(&mut self, factor: f64) {
        for e in &mut self.entries[..self.len] {
            e.count *= factor;
        }
    }

    /// `occurrence[token] += weight`, inserting it with `weight` if new.
    pub fn add(&mut self, token: u32, weight: f64) {
        if let Some(e) = self.entries[..self.len].iter_mut().find(|e| e.token == token) {
            e.count += weight;
            return;
        }
        if self.len < self.entries.len() {
            self.entries[self.len] = OccEntry { token, count: weight };
            self.len += 1;
            return;
        }
        // Full: replace the smallest count (first among equals), keeping insertion order.
        let Some(victim) = (0..self.len).min_by(|&a, &b| self.entries[a].count.total_cmp(&self.entries[b].count))
        else {
            return; // no storage at all
        };
        self.entries.copy_within(victim + 1..self.len, victim);
        self.entries[self.len - 1] = OccEntry { token, count: weight };
    }

    /// The official bookkeeping after a token is accepted: decay every count, then add.
    pub fn update(&mut self, token: u32, weight: f64, decay: f64) {
        self.decay(decay);
        self.add(token, weight);
    }
}

/// What [`Sampler::step`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A token to emit and feed back.
    Token(u32),
    /// A stop token was sampled: generation ends (it is not recorded in the occurrences).
    Stop(u32),
}

/// `PIPELINE.generate`'s sampling loop state: parameters, bans, stops, occurrences, and the RNG.
#[derive(Debug)]
pub struct Sampler<'a> {
    /// Sampling and penalty parameters.
    pub params: SamplerParams,
    /// Tokens whose logits are set to -inf every step.
    pub token_ban: &'a [u32],
    /// Tokens that end generation when sampled.
    pub token_stop: &'a [u32],
    /// The decayed occurrence counts.
    pub occurrence: Occurrence<'a>,
    /// The source of uniform draws.
    pub rng: Pcg64,
}

impl<'a> Sampler<'a> {
    /// A sampler with no bans or stops, an empty occurrence table over `occurrence_storage`, and
    /// `rng`.
    pub fn new(params: SamplerParams, occurrence_storage: &'a mut [OccEntry], rng: Pcg64) -> Self {
        Sampler { params, token_ban: &[], token_stop: &[], occurrence: Occurrence::new(occurrence_storage), rng }
    }

    /// Sets the banned tokens.
    pub fn with_bans(mut self, token_ban: &'a [u32]) -> Self {
        self.token_ban = token_ban;
        self
    }

    /// Sets the stop tokens.
    pub fn with_stops(mut self, token_stop: &'a [u32]) -> Self {
        self.token_stop = token_stop;
        self
    }

    /// Applies bans (-inf), then the presence/frequency penalties, as `generate` does before
    /// sampling.
    pub fn adjust_logits(&self, logits: &mut [f32]) {
        ban_tokens(logits, self.token_ban);
        self.occurrence.apply(logits, self.params.alpha_presence, self.params.alpha_frequency);
    }

    /// Whether `token` is a stop token.
    pub fn is_stop(&self, token: u32) -> bool {
        self.token_stop.contains(&token)
    }

    /// Adjusts `logits` and samples with draw `u`; `logits` ends as the final probabilities.
    /// Does not update the occurrences (see [`accept`](Self::accept)).
    pub fn sample_with_draw(&self, logits: &mut [f32], scratch: &mut [u32], u: f64) -> Result<u32, SamplerError> {
        self.adjust_logits(logits);
        let p = &self.params;
        sample_logits(logits, p.temperature, p.top_p, p.top_k, u, scratch)
    }

    /// [`sample_with_draw`](Self::sample_with_draw) with a draw from the RNG (one per call, also
    /// when greedy, like the official code).
    pub fn sample(&mut self, logits: &mut [f32], scratch: &mut [u32]) -> Result<u32, SamplerError> {
        let u = self.rng.next_f64();
        self.sample_with_draw(logits, scratch, u)
    }

    /// Records an accepted token: decay all occurrences, then add `weight` to the token's.
    pub fn accept(&mut self, token: u32, weight: f64) {
        self.occurrence.update(token, weight, self.params.alpha_decay);
    }

    /// One `generate` step with draw `u`: adjust, sample, then either [`Step::Stop`] or
    /// accept the token with `weight(token)` (e.g. [`Tokenizer::occurrence_weight`]) and
    /// return [`Step::Token`].
    ///
    /// [`Tokenizer::occurrence_weight`]: crate::tokenizer::Tokenizer::occurrence_weight
    pub fn step_with_draw(
        &mut self,
        logits: &mut [f32],
        scratch: &mut [u32],
        u: f64,
        weight: impl FnOnce(u32) -> f64,
    ) -> Result<Step, SamplerError> {
        let token = self.sample_with_draw(logits, scratch, u)?;
        if self.is_stop(token) {
            return Ok(Step::Stop(token));
        }
        self.accept(token, weight(token));
        Ok(Step::Token(token))
    }

    /// [`step_with_draw`](Self::step_with_draw) with a draw from the RNG.
    pub fn step(
        &mut self,
        logits: &mut [f32],
        scratch: &mut [u32],
        weight: impl FnOnce(u32) -> f64,
    ) -> Result<Step, SamplerError> {
        let u = self.rng.next_f64();
        self.step_with_draw(logits, scratch, u, weight)
    }
}

/// A stop string list is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopStringError {
    /// A stop string is empty.
    Empty,
    /// A stop string is longer than the hold-back buffer allows (`len - 1 > N`).
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The buffer size `N`.
        capacity: usize,
    },
}

impl fmt::Display for StopStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StopStringError::Empty => f.write_str("empty stop string"),
            StopStringError::TooLong { len, capacity } => {
                write!(f, "stop string of {len} bytes needs a hold-back buffer of {} (have {capacity})", len - 1)
            }
        }
    }
}

impl core::error::Error for StopStringError {}

/// Finds stop strings in streamed text, across any split into pieces (e.g. one piece per
/// token from [`Utf8Stream`](crate::tokenizer::Utf8Stream)).
///
/// Text is passed through as soon as it cannot be the start of a stop string; a tail that could
/// be (a proper prefix of some stop string, at most `N` bytes) is held back until the next piece
/// decides. When a stop string appears, the text before its first occurrence is emitted, the stop
/// string and everything after it are not, and its index in the list is returned. The earliest
/// occurrence wins; among stop strings starting at the same place, the first in the list.
#[derive(Clone, Debug)]
pub struct StopStrings<'a, const N: usize = 64> {
    stops: &'a [&'a str],
    held: [u8; N],
    held_len: usize,
    max_len: usize,
    stopped: Option<usize>,
}

impl<'a, const N: usize> StopStrings<'a, N> {
    /// A matcher for `stops` (non-empty strings of at most `N + 1` bytes).
    pub fn new(stops: &'a [&'a str]) -> Result<Self, StopStringError> {
        let mut max_len = 0;
        for s in stops {
            if s.is_empty() {
                return Err(StopStringError::Empty);
            }
            if s.len() - 1 > N {
                return Err(StopStringError::TooLong { len: s.len(), capacity: N });
            }
            max_len = max_len.max(s.len());
        }
        Ok(StopStrings { stops, held: [0; N], held_len: 0, max_len, stopped: None })
    }

    /// The index of the stop string found, if any.
    pub fn stopped(&self) -> Option<usize> {
        self.stopped
    }

    /// The text currently held back.
    pub fn held(&self) -> &str {
        core::str::from_utf8(&self.held[..self.held_len]).unwrap_or_default()
    }

    /// Feeds the next piece of text; returns the index of the stop string when one completes.
    /// After a stop, further pieces are ignored (and the index is returned again).
    pub fn push(&mut self, text: &str, mut emit: impl FnMut(&str)) -> Option<usize> {
        if self.stopped.is_some() {
            return self.stopped;
        }
        let h = self.held_len;
        let t = text.as_bytes();
        let total = h + t.len();
        let held = &self.held[..h];
        let at = |q: usize| if q < h { held[q] } else { t[q - h] };
        let matches = |p: usize, s: &[u8], len: usize| (0..len).all(|j| at(p + j) == s[j]);

        // The earliest complete occurrence.
        let found = (0..total).find_map(|p| {
            self.stops
                .iter()
                .position(|s| {
                    let s = s.as_bytes();
                    p + s.len() <= total && matches(p, s, s.len())
                })
                .map(|k| (p, k))
        });
        if let Some((p, k)) = found {
            emit_range(held, t, 0, p, &mut emit);
            self.held_len = 0;
            self.stopped = Some(k);
            return Some(k);
        }
        // The longest tail that is a proper prefix of a stop string is held back.
        let longest = self.max_len.saturating_sub(1).min(total);
        let keep = (1..=longest)
            .rev()
            .find(|&l| self.stops.iter().any(|s| s.len() > l && matches(total - l, s.as_bytes(), l)))
            .unwrap_or(0);
        emit_range(held, t, 0, total - keep, &mut emit);
        let mut new_held = [0u8; N];
        for (j, slot) in new_held[..keep].iter_mut().enumerate() {
            *slot = at(total - keep + j);
        }
        self.held = new_held;
        self.held_len = keep;
        None
    }

    /// Ends the stream: emits the held-back text (unless a stop string was found).
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if self.stopped.is_none() && self.held_len > 0 {
            emit(self.held());
        }
        self.held_len = 0;
    }

    /// Forgets held text and any stop found.
    pub fn reset(&mut self) {
        self.held_len = 0;
        self.stopped = None;
    }
}

/// Emits bytes `from..to` of `held ++ text` (both on character boundaries) as at most two pieces.
fn emit_range(held: &[u8], text: &[u8], from: usize, to: usize, emit: &mut impl FnMut(&str)) {
    let h = held.len();
    if from < h.min(to) {
        emit(core::str::from_utf8(&held[from..h.min(to)]).unwrap_or_default());
    }
    if to > h {
        let s = &text[from.max(h) - h..to - h];
        if !s.is_empty() {
            emit(core::str::from_utf8(s).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    #[test]
    fn occurrence_weights() {
        for t in [" ", "\t", "0", "12", "89", "0123456789", " \t0", ""] {
            assert_eq!(occurrence_weight(Some(t.as_bytes())), 0.0, "{t:?}");
        }
        for t in ["  ", "21", "a", "\n", "00", "9 ", "\u{FFFD}"] {
            assert_eq!(occurrence_weight(Some(t.as_bytes())), 1.0, "{t:?}");
        }
        assert_eq!(occurrence_weight(Some(b"\x80")), 1.0);
        assert_eq!(occurrence_weight(None), 1.0);
    }

    #[test]
    fn occurrence_table() {
        let mut st = [OccEntry::default(); 2];
        let mut o = Occurrence::new(&mut st);
        o.update(5, 1.0, 0.5);
        o.update(7, 0.0, 0.5);
        o.update(5, 1.0, 0.5);
        // 5: 1 -> 0.5 -> 0.25 + 1; 7: 0 -> 0.
        assert_eq!(o.entries(), &[OccEntry { token: 5, count: 1.25 }, OccEntry { token: 7, count: 0.0 }]);
        let mut logits = [0.0f32; 8];
        o.apply(&mut logits, 0.25, 1.0);
        assert_eq!(logits[5], -1.5);
        assert_eq!(logits[7], -0.25);
        o.add(3, 1.0); // full: replaces token 7 (smallest count)
        assert_eq!(o.entries(), &[OccEntry { token: 5, count: 1.25 }, OccEntry { token: 3, count: 1.0 }]);
        let mut none: [OccEntry; 0] = [];
        Occurrence::new(&mut none).add(1, 1.0);
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_passes_over_nans() {
        assert_eq!(argmax(&[0.0, 3.0, -1.0, 3.0]), 1);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[f32::NAN, -2.0, f32::NEG_INFINITY]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
        // Every position of the maximum, in the chunked part and in the tail, with a
        // tie later on and in a lane the first pass meets before it.
        for len in [1, 15, 16, 17, 47, 48, 100] {
            for at in 0..len {
                let mut v: Vec<f32> = (0..len).map(|i| (i % 7) as f32 - 3.0).collect();
                v[at] = 9.0;
                if at + 17 < len {
                    v[at + 17] = 9.0;
                }
                assert_eq!(argmax(&v), at, "len {len}, max at {at}");
            }
        }
    }

    #[test]
    fn greedy_and_ties() {
        let mut scratch = [0u32; 6];
        let mut l = [0.0f32, 3.0, 1.0, 3.0, -1.0, 2.0];
        let t = sample_logits(&mut l, 0.0, 0.9, 0, 0.2, &mut scratch).unwrap();
        assert_eq!(t, 1);
        assert_eq!((l[1], l[3]), (0.5, 0.5));
        let mut l = [0.0f32, 3.0, 1.0, 3.0, -1.0, 2.0];
        assert_eq!(sample_logits(&mut l, 0.0, 0.9, 0, 0.5, &mut scratch).unwrap(), 3);
        // top_k = 1 with a tie at the top: the lower id wins.
        let mut l = [0.0f32, 3.0, 1.0, 3.0, -1.0, 2.0];
        assert_eq!(sample_logits(&mut l, 1.0, 0.99, 1, 0.99, &mut scratch).unwrap(), 1);
        assert_eq!(l[3], 0.0);
        // top_p > 1 never reaches the cut: greedy.
        let mut l = [0.0f32, 3.0, 1.0, 2.5, -1.0, 2.0];
        assert_eq!(sample_logits(&mut l, 1.0, 1.5, 0, 0.99, &mut scratch).unwrap(), 1);
        assert_eq!(l[1], 1.0);
    }

    #[test]
    fn errors() {
        let mut s = [0u32; 4];
        assert_eq!(sample_logits(&mut [], 1.0, 0.5, 0, 0.5, &mut s), Err(SamplerError::Empty));
        assert_eq!(
            sample_logits(&mut [0.0; 5], 1.0, 0.5, 0, 0.5, &mut s),
            Err(SamplerError::ScratchTooSmall { needed: 5, found: 4 })
        );
        assert_eq!(sample_logits(&mut [f32::NAN, 0.0], 1.0, 0.5, 0, 0.5, &mut s), Err(SamplerError::InvalidLogits));
        let mut all_banned = [f32::NEG_INFINITY; 3];
        assert_eq!(sample_logits(&mut all_banned, 1.0, 0.5, 0, 0.5, &mut s), Err(SamplerError::InvalidLogits));
        // Temperature underflow: the most probable kept token takes everything.
        let mut l = [0.0f32, -0.5, -1.0];
        assert_eq!(sample_logits(&mut l, 0.001, 1.0 - 1e-9, 0, 0.9, &mut s).unwrap(), 0);
        // Called directly, infinite or NaN probabilities are refused (an infinite maximum
        // with a NaN top-p once kept the threshold search from ending).
        assert_eq!(
            filter_probs(&mut [f32::INFINITY, 0.5, 0.25], 1.0, f64::NAN, 0, &mut s),
            Err(SamplerError::InvalidLogits)
        );
        assert_eq!(filter_probs(&mut [0.5, f32::NAN, 0.25], 1.0, 0.5, 0, &mut s), Err(SamplerError::InvalidLogits));
        let mut p = [0.5f32, 0.3, 0.2];
        filter_probs(&mut p, 1.0, f64::NAN, 0, &mut s).unwrap();
        assert_eq!(p, [1.0, 0.0, 0.0], "a NaN top-p reaches no cut: the most probable token");
    }

    /// A token removed before the temperature (banned: -inf logit; or cut by top-p or top-k)
    /// stays removed at any temperature, also where `1 / temperature` rounds to 0 in f32 and
    /// the official `probs ** (1 / t)` would turn every 0 into 1.
    #[test]
    fn removed_tokens_stay_removed_at_huge_temperatures() {
        let mut s = [0u32; 4];
        for temperature in [1e30, 1e40, 1e46, 1e300, f64::MAX] {
            for u in [0.0, 0.3, 0.6, 0.999] {
                let mut l = [1.0f32, f32::NEG_INFINITY, 0.5, 0.0];
                let t = sample_logits(&mut l, temperature, 1.0, 0, u, &mut s).unwrap();
                assert_ne!(t, 1, "temperature {temperature:e}, u {u}: the banned token was drawn");
                assert_eq!(l[1], 0.0, "temperature {temperature:e}: the banned token has probability {}", l[1]);
                // top_k = 2 keeps tokens 0 and 2 only.
                let mut l = [1.0f32, f32::NEG_INFINITY, 0.5, 0.0];
                let t = sample_logits(&mut l, temperature, 1.0, 2, u, &mut s).unwrap();
                assert!(t == 0 || t == 2, "temperature {temperature:e}, u {u}: top-k let token {t} through");
                assert_eq!((l[1], l[3]), (0.0, 0.0));
            }
        }
    }

    #[test]
    fn exp_f32_is_within_two_ulp() {
        let mut worst = 0u32;
        let mut x = -104.0f32;
        while x <= 88.7 {
            let (got, want) = (exp_f32(x), libm::expf(x));
            if want >= f32::MIN_POSITIVE {
                worst = worst.max(got.to_bits().abs_diff(want.to_bits()));
            } else {
                assert!((got - want).abs() <= 2.0 * f32::from_bits(1), "{x}: {got:e} vs {want:e}");
            }
            x += 0.000_731;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
    }

    #[test]
    fn numpy_pairwise_sum_structure() {
        let a: Vec<f32> = (0..1000).map(|i| 1.0 / (1.0 + i as f32)).collect();
        // Blocks: 1000 -> 496 + 504 -> (248 -> 120+128) ...; just check it is close and deterministic.
        let s = numpy_sum_f32(&a);
        let exact: f64 = a.iter().map(|&v| f64::from(v)).sum();
        assert!((f64::from(s) - exact).abs() < 1e-5);
    }

    #[test]
    fn pcg64_seeding_is_stable() {
        let mut a = Pcg64::seed_from_u64(42);
        let mut b = Pcg64::seed_from_u64(42);
        for _ in 0..10 {
            let u = a.next_f64();
            assert!((0.0..1.0).contains(&u));
            assert_eq!(u, b.next_f64());
        }
        assert_ne!(Pcg64::seed_from_u64(1).next_u64(), Pcg64::seed_from_u64(2).next_u64());
    }

    fn run_stops(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let mut m = StopStrings::<8>::new(stops).unwrap();
        let mut out = String::new();
        let mut hit = None;
        for p in pieces {
            hit = m.push(p, |s| out.push_str(s));
            if hit.is_some() {
                break;
            }
        }
        m.finish(|s| out.push_str(s));
        (out, hit)
    }

    #[test]
    fn stop_strings_across_pieces() {
        let stops = ["\n\n", "User:"];
        assert_eq!(run_stops(&stops, &["Hello", "\n", "\nUser"]), ("Hello".into(), Some(0)));
        assert_eq!(run_stops(&stops, &["a U", "se", "r", ": x"]), ("a ".into(), Some(1)));
        assert_eq!(run_stops(&stops, &["a U", "se", "x\n"]), ("a Usex\n".into(), None));
        assert_eq!(run_stops(&stops, &["你好\n", "\n", "more"]), ("你好".into(), Some(0)));
        assert_eq!(run_stops(&stops, &["x\n\nUser:"]), ("x".into(), Some(0)));
        assert_eq!(run_stops(&stops, &["UsUser:"]), ("Us".into(), Some(1)));
        // Emitted text never includes a possible stop prefix until it is decided.
        let mut m = StopStrings::<8>::new(&stops).unwrap();
        let mut out = String::new();
        m.push("ab\nUs", |s| out.push_str(s));
        assert_eq!((out.as_str(), m.held()), ("ab\n", "Us"));
        assert_eq!(StopStrings::<2>::new(&["abcd"]).unwrap_err(), StopStringError::TooLong { len: 4, capacity: 2 });
        assert_eq!(StopStrings::<2>::new(&[""]).unwrap_err(), StopStringError::Empty);
    }
}
