//! Elementwise kernels and norms written once over a vector of f32 lanes ([`F32s`]):
//! `x86_64` instantiates them with 8 AVX2 lanes, `aarch64` with 4 NEON lanes.
//!
//! Both ISAs implement every [`F32s`] operation with the same IEEE operation (FMA where
//! the algorithm says `mul_add`, nearest-even rounding, the same clamps), so a lane
//! computes the same bits on either ISA; only the horizontal sums (norms, key norm)
//! differ in association.
//!
//! Determinism contract: an elementwise output depends only on its own inputs. Full
//! vectors are processed in place and the last `len % LANES` elements go through a
//! zero-padded stack vector and the same lane operations ([`lanes`]), so an element
//! gets the same bits wherever it sits in the slice and whatever the slice length:
//! decode (`T = 1`) and prefill agree bit for bit. Row reductions (norms) depend only on
//! the row.
//!
//! Approximations (ULP bounds against `libm` are measured in `tests/vecmath.rs` and
//! listed in `KERNELS.md`):
//! - [`exp`]: Cody–Waite reduction `x = n·ln2 + r`, `|r| ≤ ln2/2` (two FMAs with a split
//!   `ln2`), `e^r ≈ 1 + r + r²·P(r)` with `P` of degree 5, then `·2^n` in two exact power
//!   of two factors, so subnormal results are rounded once, like `expf`.
//! - [`sigmoid`]: `1 / (1 + exp(−x))` with an IEEE division (the specification's formula).
//! - [`tanh`]: `|x| < 0.5625`: `x + x·x²·Q(x²)`, `Q` of degree 5; otherwise
//!   `sign(x)·(1 − 2/(e^{2|x|} + 1))` (from 0.5625 on, `tanh ≥ 0.5`, so the subtraction
//!   loses nothing).
//!
//! Polynomial coefficients are Chebyshev fits (`mpmath.chebyfit`, 40 digits) rounded to
//! f32: `P(r) = (e^r − 1 − r)/r²` on `[−ln2/2, ln2/2]` (fit error 0.004 ULP of `e^r`) and
//! `Q(s) = (tanh(√s) − √s)/√s³` on `[0, 0.5625²]` (fit error 0.003 ULP of `tanh`).

use core::ops::Range;

/// The widest vector of any ISA (AVX2: 8 lanes); sizes the tail buffers.
const MAX_LANES: usize = 8;

/// A vector of f32 lanes of one ISA. A value is proof that the CPU supports the ISA: it
/// can only be made by the `unsafe` constructors [`F32s::splat`] and [`F32s::load`],
/// whose contract is that the ISA is available, so every operation on a value is safe.
pub(crate) trait F32s: Copy {
    /// Lanes per vector (at most [`MAX_LANES`]).
    const LANES: usize;

    /// All lanes `v`.
    ///
    /// # Safety
    /// The CPU must support the ISA.
    unsafe fn splat(v: f32) -> Self;
    /// `LANES` floats from `p` (unaligned).
    ///
    /// # Safety
    /// `p` valid for reading `LANES` floats; the CPU must support the ISA.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores the lanes to `p` (unaligned).
    ///
    /// # Safety
    /// `p` valid for writing `LANES` floats.
    unsafe fn store(self, p: *mut f32);

    /// All lanes `v` (`self` only proves the ISA).
    fn lit(self, v: f32) -> Self;
    /// `self + b`.
    fn add(self, b: Self) -> Self;
    /// `self − b`.
    fn sub(self, b: Self) -> Self;
    /// `self · b`.
    fn mul(self, b: Self) -> Self;
    /// `self / b` (IEEE division).
    fn div(self, b: Self) -> Self;
    /// `self · b + c` with one rounding (FMA).
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `−self` (sign flip).
    fn neg(self) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
    /// IEEE square root. The norms take their scalar square roots through this too:
    /// `libm::sqrtf` is a legacy-SSE `sqrtss` in inline assembly, and one of those inside
    /// AVX code stalls on the SSE/AVX transition (measured: ~130 ns per call on the host).
    fn sqrt(self) -> Self;
    /// `max(self, b)` where a NaN in `self` yields `b` (as `f32::max` does for `b = 0`).
    fn max_num(self, b: Self) -> Self;
    /// `self` clamped to `[lo, hi]`; NaN stays NaN.
    fn clamp(self, lo: f32, hi: f32) -> Self;
    /// Rounds to the nearest integer, ties to even.
    fn round(self) -> Self;
    /// `self · 2^n` for integer-valued `n` in `[−150, 128]`, rounded once (two exact
    /// power-of-two factors: the first product stays normal).
    fn mul_pow2(self, n: Self) -> Self;
    /// `self` with the sign bit of `s` or-ed in (`self` must be `+`).
    fn or_sign(self, s: Self) -> Self;
    /// Lane-wise `self < lim ? a : b` (false for NaN).
    fn select_lt(self, lim: Self, a: Self, b: Self) -> Self;
    /// The sum of the lanes in the ISA's fixed order.
    fn sum(self) -> f32;
}

/// `log2(e)` rounded to f32.
const LOG2E: f32 = core::f32::consts::LOG2_E;
/// `ln 2` split: `LN2_HI` is `ln 2` rounded to f32 (0x3f317218), `LN2_LO = ln 2 − LN2_HI`
/// rounded to f32.
const LN2_HI: f32 = core::f32::consts::LN_2;
const LN2_LO: f32 = -1.904_654_3e-9;
/// Below this `e^x` rounds to +0 (`e^-104 < 2^-150`), above it to +∞ (`e^89 > 2^128`).
/// The clamp keeps `n = round(x·log2 e)` in `[−150, 128]`, the domain of `mul_pow2`.
const EXP_LO: f32 = -104.0;
const EXP_HI: f32 = 89.0;
/// `P(r) ≈ (e^r − 1 − r)/r²`, highest degree first.
const EXP_P: [f32; 6] = [1.989_098_1e-4, 1.393_364_2e-3, 8.333_310_5e-3, 4.166_646_7e-2, 1.666_666_7e-1, 0.5];
/// `|x|` below which [`tanh`] uses its polynomial.
const TANH_SMALL: f32 = 0.5625;
/// `Q(s) ≈ (tanh(√s) − √s)/√s³`, highest degree first.
const TANH_Q: [f32; 6] =
    [2.487_614_8e-3, -8.499_248e-3, 2.181_190_3e-2, -5.396_406_4e-2, 1.333_332_2e-1, -3.333_333_4e-1];

/// `c[0]·x^(n−1) + … + c[n−1]` by Horner's rule with FMAs.
#[inline(always)]
fn horner<V: F32s>(x: V, c: &[f32]) -> V {
    let mut p = x.lit(c[0]);
    for &ci in &c[1..] {
        p = p.mul_add(x, x.lit(ci));
    }
    p
}

/// `e^x` (see the module docs).
#[inline(always)]
pub(crate) fn exp<V: F32s>(x: V) -> V {
    let x = x.clamp(EXP_LO, EXP_HI);
    let n = x.mul(x.lit(LOG2E)).round();
    let r = n.mul_add(x.lit(-LN2_HI), x);
    let r = n.mul_add(x.lit(-LN2_LO), r);
    let p = horner(r, &EXP_P);
    let y = r.mul(r).mul_add(p, r).add(x.lit(1.0));
    y.mul_pow2(n)
}

/// `σ(x) = 1 / (1 + e^−x)`.
#[inline(always)]
pub(crate) fn sigmoid<V: F32s>(x: V) -> V {
    let one = x.lit(1.0);
    one.div(one.add(exp(x.neg())))
}

/// `tanh(x)` (see the module docs).
#[inline(always)]
pub(crate) fn tanh<V: F32s>(x: V) -> V {
    let s = x.mul(x);
    let small = x.mul(s).mul_add(horner(s, &TANH_Q), x);
    let ax = x.abs();
    let one = x.lit(1.0);
    let large = one.sub(x.lit(2.0).div(exp(ax.add(ax)).add(one))).or_sign(x);
    ax.select_lt(x.lit(TANH_SMALL), small, large)
}

/// A lane-wise operation from `I` input vectors to `O` output vectors, run by [`lanes`].
///
/// Implementations are `#[inline(always)]` structs rather than closures: a closure is
/// compiled without the entry point's `#[target_feature]`s and then called out of line
/// with every intrinsic in it a call.
pub(crate) trait LaneOp<V: F32s, const I: usize, const O: usize> {
    /// The outputs of one vector of elements.
    fn apply(&mut self, v: [V; I]) -> [V; O];
}

/// Runs `op` over `len` elements: input `j` is read from `ins[j]`, output `j` written to
/// `outs[j]`, vector by vector; the last `len % LANES` elements go through zero-padded
/// stack vectors and the same `op` (module docs: determinism).
///
/// # Safety
/// Every input pointer is valid for reading and every output pointer for writing `len`
/// floats. An output may be the same pointer as an input (each vector is loaded before it
/// is stored); no other overlap. The CPU must support `V`'s ISA.
#[inline(always)]
unsafe fn lanes<V: F32s, const I: usize, const O: usize>(
    len: usize,
    ins: [*const f32; I],
    outs: [*mut f32; O],
    op: &mut impl LaneOp<V, I, O>,
) {
    const { assert!(V::LANES <= MAX_LANES, "the tail buffers hold MAX_LANES floats") };
    // SAFETY: vector accesses cover `i..i + LANES ≤ len`; the tail copies `n < LANES ≤
    // MAX_LANES` elements between the streams (at `i..len`) and the stack buffers; the
    // ISA is the caller's promise.
    unsafe {
        let mut v = [V::splat(0.0); I];
        let mut i = 0;
        while i + V::LANES <= len {
            for j in 0..I {
                v[j] = V::load(ins[j].add(i));
            }
            let r = op.apply(v);
            for j in 0..O {
                r[j].store(outs[j].add(i));
            }
            i += V::LANES;
        }
        let n = len - i;
        if n > 0 {
            let mut buf = [0.0f32; MAX_LANES];
            for j in 0..I {
                core::ptr::copy_nonoverlapping(ins[j].add(i), buf.as_mut_ptr(), n);
                buf[n..].fill(0.0);
                v[j] = V::load(buf.as_ptr());
            }
            let r = op.apply(v);
            for j in 0..O {
                r[j].store(buf.as_mut_ptr());
                core::ptr::copy_nonoverlapping(buf.as_ptr(), outs[j].add(i), n);
            }
        }
    }
}

/// Asserts `len` is whole rows of `row` and returns the row ranges.
fn rows(op: &str, len: usize, row: usize) -> impl Iterator<Item = Range<usize>> + use<> {
    assert!(if row == 0 { len == 0 } else { len.is_multiple_of(row) }, "{op}: not whole rows");
    (0..len.checked_div(row).unwrap_or(0)).map(move |t| t * row..(t + 1) * row)
}

/// A one-input, one-output [`LaneOp`] from an `#[inline(always)]` function of a vector
/// (a unit struct, so the call is direct: a function item passed as `impl Fn` would go
/// through a call shim compiled without the target features).
macro_rules! unary_op {
    ($op:ident, $f:ident) => {
        struct $op;

        impl<V: F32s> LaneOp<V, 1, 1> for $op {
            #[inline(always)]
            fn apply(&mut self, [v]: [V; 1]) -> [V; 1] {
                [$f(v)]
            }
        }
    };
}

unary_op!(Exp, exp);
unary_op!(Sigmoid, sigmoid);
unary_op!(Tanh, tanh);
unary_op!(ReluSq, relu_sq);

/// `max(x, 0)²`.
#[inline(always)]
fn relu_sq<V: F32s>(x: V) -> V {
    let r = x.max_num(x.lit(0.0));
    r.mul(r)
}

/// `x ← op(x)` in place.
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
unsafe fn map<V: F32s>(x: &mut [f32], mut op: impl LaneOp<V, 1, 1>) {
    let p = x.as_mut_ptr();
    // SAFETY: one stream of `x.len()` floats, updated in place; the ISA is the caller's promise.
    unsafe { lanes::<V, 1, 1>(x.len(), [p], [p], &mut op) }
}

/// `x ← e^x` ([`exp`]).
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn exp_slice<V: F32s>(x: &mut [f32]) {
    // SAFETY: the ISA is the caller's promise.
    unsafe { map::<V>(x, Exp) }
}

/// `x ← σ(x)` ([`sigmoid`]).
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn sigmoid_slice<V: F32s>(x: &mut [f32]) {
    // SAFETY: the ISA is the caller's promise.
    unsafe { map::<V>(x, Sigmoid) }
}

/// `x ← tanh(x)` ([`tanh`]).
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn tanh_slice<V: F32s>(x: &mut [f32]) {
    // SAFETY: the ISA is the caller's promise.
    unsafe { map::<V>(x, Tanh) }
}

/// [`crate::math::relu_squared`]: the same operations, bit-identical.
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn relu_squared<V: F32s>(x: &mut [f32]) {
    // SAFETY: the ISA is the caller's promise.
    unsafe { map::<V>(x, ReluSq) }
}

/// `[x + s·m]`.
struct Lerp;

impl<V: F32s> LaneOp<V, 3, 1> for Lerp {
    #[inline(always)]
    fn apply(&mut self, [x, s, m]: [V; 3]) -> [V; 1] {
        [x.add(s.mul(m))]
    }
}

/// [`crate::math::lerp`]: the same product and sum, bit-identical.
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn lerp<V: F32s>(x: &[f32], sx: &[f32], mix: &[f32], out: &mut [f32]) {
    assert!(sx.len() == x.len() && out.len() == x.len(), "lerp: lengths differ");
    for r in rows("lerp", x.len(), mix.len()) {
        let (ins, o) = ([x[r.clone()].as_ptr(), sx[r.clone()].as_ptr(), mix.as_ptr()], out[r].as_mut_ptr());
        // SAFETY: each stream holds one row of `mix.len()` floats; `out` is a separate slice.
        unsafe { lanes::<V, 3, 1>(mix.len(), ins, [o], &mut Lerp) }
    }
}

/// `[σ(b + x)]`.
struct BiasSigmoid;

impl<V: F32s> LaneOp<V, 2, 1> for BiasSigmoid {
    #[inline(always)]
    fn apply(&mut self, [b, x]: [V; 2]) -> [V; 1] {
        [sigmoid(b.add(x))]
    }
}

/// [`crate::math::bias_sigmoid`].
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn bias_sigmoid<V: F32s>(bias: &[f32], x: &mut [f32]) {
    for r in rows("bias_sigmoid", x.len(), bias.len()) {
        let p = x[r].as_mut_ptr();
        // SAFETY: one row of `x` (in place) and `bias`, both `bias.len()` floats.
        unsafe { lanes::<V, 2, 1>(bias.len(), [bias.as_ptr(), p], [p], &mut BiasSigmoid) }
    }
}

/// `[exp(−scale·σ(b + w))]`.
struct Decay(f32);

impl<V: F32s> LaneOp<V, 2, 1> for Decay {
    #[inline(always)]
    fn apply(&mut self, [b, w]: [V; 2]) -> [V; 1] {
        [exp(w.lit(-self.0).mul(sigmoid(b.add(w))))]
    }
}

/// [`crate::math::time_decay`].
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn time_decay<V: F32s>(w0: &[f32], scale: f32, w: &mut [f32]) {
    for r in rows("time_decay", w.len(), w0.len()) {
        let p = w[r].as_mut_ptr();
        // SAFETY: one row of `w` (in place) and `w0`, both `w0.len()` floats.
        unsafe { lanes::<V, 2, 1>(w0.len(), [w0.as_ptr(), p], [p], &mut Decay(scale)) }
    }
}

/// `[v + (vf − v)·σ(b + g)]`.
struct ValueResidual;

impl<V: F32s> LaneOp<V, 4, 1> for ValueResidual {
    #[inline(always)]
    fn apply(&mut self, [v, vf, b, g]: [V; 4]) -> [V; 1] {
        [v.add(vf.sub(v).mul(sigmoid(b.add(g))))]
    }
}

/// [`crate::math::value_residual`].
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn value_residual<V: F32s>(v: &mut [f32], v_first: &[f32], v0: &[f32], gate: &[f32]) {
    assert!(v_first.len() == v.len() && gate.len() == v.len(), "value_residual: lengths differ");
    for r in rows("value_residual", v.len(), v0.len()) {
        let p = v[r.clone()].as_mut_ptr();
        let ins = [p.cast_const(), v_first[r.clone()].as_ptr(), v0.as_ptr(), gate[r].as_ptr()];
        // SAFETY: each stream holds one row of `v0.len()` floats; `v` is updated in place.
        unsafe { lanes::<V, 4, 1>(v0.len(), ins, [p], &mut ValueResidual) }
    }
}

/// `[k·k_k]`, accumulating `Σ (k·k_k)²` lane-wise with FMAs.
struct KeyTimes<V>(V);

impl<V: F32s> LaneOp<V, 2, 1> for KeyTimes<V> {
    #[inline(always)]
    fn apply(&mut self, [k, w]: [V; 2]) -> [V; 1] {
        let v = k.mul(w);
        self.0 = v.mul_add(v, self.0);
        [v]
    }
}

/// `[x·s]`.
struct Scale<V>(V);

impl<V: F32s> LaneOp<V, 1, 1> for Scale<V> {
    #[inline(always)]
    fn apply(&mut self, [x]: [V; 1]) -> [V; 1] {
        [x.mul(self.0)]
    }
}

/// `[k·(1 + (a − 1)·k_a)]`.
struct KeyUpdate;

impl<V: F32s> LaneOp<V, 3, 1> for KeyUpdate {
    #[inline(always)]
    fn apply(&mut self, [k, a, ka]: [V; 3]) -> [V; 1] {
        let one = k.lit(1.0);
        [k.mul(one.add(a.sub(one).mul(ka)))]
    }
}

/// [`crate::math::key_prep`]. The per-head `Σ kk²` is a lane-wise FMA sum reduced by
/// [`F32s::sum`] (the only difference from the specification; zero padding adds 0); the
/// rest uses the specification's operations.
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn key_prep<V: F32s>(
    k: &mut [f32],
    kk: &mut [f32],
    a: &[f32],
    k_k: &[f32],
    k_a: &[f32],
    head: usize,
    eps: f32,
) {
    assert!(kk.len() == k.len() && a.len() == k.len() && k_a.len() == k_k.len(), "key_prep: lengths differ");
    assert!(head > 0 && k_k.len().is_multiple_of(head), "key_prep: rows must hold whole heads");
    let c = k_k.len();
    for r in rows("key_prep", k.len(), c) {
        let (kp, kkp, ap) = (k[r.clone()].as_mut_ptr(), kk[r.clone()].as_mut_ptr(), a[r].as_ptr());
        for h in (0..c).step_by(head) {
            // SAFETY: head `h..h + head` lies inside the row of every stream. `kk` is
            // written from `k`, then scaled in place, then `k` is updated in place (the
            // heads are disjoint, so `kk` always sees the old `k`). The ISA is promised.
            unsafe {
                let (kh, kkh, ah) = (kp.add(h), kkp.add(h), ap.add(h));
                let (kkw, kaw) = (k_k.as_ptr().add(h), k_a.as_ptr().add(h));
                let mut times = KeyTimes(V::splat(0.0));
                lanes::<V, 2, 1>(head, [kh.cast_const(), kkw], [kkh], &mut times);
                // `1 / max(sqrt(Σ), eps)` with the specification's IEEE operations.
                let norm = V::splat(times.0.sum()).sqrt().max_num(V::splat(eps));
                let inv = V::splat(1.0).div(norm);
                lanes::<V, 1, 1>(head, [kkh.cast_const()], [kkh], &mut Scale(inv));
                lanes::<V, 3, 1>(head, [kh.cast_const(), ah, kaw], [kh], &mut KeyUpdate);
            }
        }
    }
}

/// Mean and biased variance of `n` floats at `x`, two passes like the specification:
/// lane-wise sums (FMA for the squares) reduced by [`F32s::sum`], then the `n % LANES`
/// tail added left to right.
///
/// # Safety
/// `x` valid for reading `n > 0` floats; the CPU must support `V`'s ISA.
#[inline(always)]
unsafe fn mean_var<V: F32s>(x: *const f32, n: usize) -> (f32, f32) {
    let body = n - n % V::LANES;
    // SAFETY: vector loads cover `0..body`, scalar reads `body..n`, all inside `x`; the
    // ISA is the caller's promise.
    unsafe {
        let mut acc = V::splat(0.0);
        for i in (0..body).step_by(V::LANES) {
            acc = acc.add(V::load(x.add(i)));
        }
        let mut s = acc.sum();
        for i in body..n {
            s += *x.add(i);
        }
        let mean = s / n as f32;
        let m = V::splat(mean);
        let mut acc = V::splat(0.0);
        for i in (0..body).step_by(V::LANES) {
            let d = V::load(x.add(i)).sub(m);
            acc = d.mul_add(d, acc);
        }
        let mut s = acc.sum();
        for i in body..n {
            let d = *x.add(i) - mean;
            s += d * d;
        }
        (mean, s / n as f32)
    }
}

/// `[(x − μ)·inv·w + b]` for `Normalize(μ, inv)`.
struct Normalize<V>(V, V);

impl<V: F32s> LaneOp<V, 3, 1> for Normalize<V> {
    #[inline(always)]
    fn apply(&mut self, [x, w, b]: [V; 3]) -> [V; 1] {
        [x.sub(self.0).mul(self.1).mul(w).add(b)]
    }
}

/// `out = (x − μ)·inv·w + b` over `n` floats with the specification's operations.
///
/// # Safety
/// `x`, `w`, `b` valid for reading and `out` for writing `n` floats; `out` may equal `x`.
/// The CPU must support `V`'s ISA.
#[inline(always)]
unsafe fn normalize<V: F32s>(x: *const f32, w: *const f32, b: *const f32, out: *mut f32, n: usize, eps: f32) {
    if n == 0 {
        return;
    }
    // SAFETY: the caller's promises, passed on.
    unsafe {
        let (mean, var) = mean_var::<V>(x, n);
        // `1 / sqrt(var + eps)` with the specification's IEEE operations.
        let inv = V::splat(1.0).div(V::splat(var + eps).sqrt());
        lanes::<V, 3, 1>(n, [x, w, b], [out], &mut Normalize(V::splat(mean), inv));
    }
}

/// [`crate::math::layer_norm`] with reordered (lane-wise) sums.
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn layer_norm<V: F32s>(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len();
    assert!(w.len() == n && b.len() == n && out.len() == n, "layer_norm: lengths differ");
    // SAFETY: all four slices hold `n` floats; `out` is a separate slice.
    unsafe { normalize::<V>(x.as_ptr(), w.as_ptr(), b.as_ptr(), out.as_mut_ptr(), n, eps) }
}

/// [`crate::math::group_norm`] with reordered (lane-wise) sums.
///
/// # Safety
/// The CPU must support `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn group_norm<V: F32s>(x: &mut [f32], w: &[f32], b: &[f32], group: usize, eps: f32) {
    assert!(group > 0 && x.len().is_multiple_of(group), "group_norm: x must hold whole groups");
    assert!(w.len() == x.len() && b.len() == x.len(), "group_norm: lengths differ");
    let p = x.as_mut_ptr();
    for g in (0..x.len()).step_by(group) {
        // SAFETY: group `g..g + group` is inside `x`, `w`, `b`; normalised in place.
        unsafe { normalize::<V>(p.add(g), w.as_ptr().add(g), b.as_ptr().add(g), p.add(g), group, eps) }
    }
}
