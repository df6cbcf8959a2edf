//! The fast CPU path: every loss in one fused pass per row (two with the gradient), SIMD through
//! loops the compiler vectorizes for the CPU found at run time (`multiversion`) and, for the
//! block loop and the short-row step on AVX2, intrinsics (`cpu::avx2`), threads over row blocks
//! (`cpu::pool`), and no [B, C] temporary.
//!
//! Per row, the logits are taken in blocks that fit in L1: the block's max, a rescale of the
//! running sum when the max rises, then the block's exps (on AVX2 with a table exp, elsewhere
//! with a polynomial exp that vectorizes); the loop over a block's exps also reads the next
//! block's max (for a row's last block, the next row's first), so that its trip from memory
//! overlaps the arithmetic. Rows of at most 32 classes are done eight at a time, a row per lane
//! (on AVX2 turned into columns and back by 8 × 8 transposes in registers); the step also writes
//! the gradient of a cross-entropy against unweighted, unsmoothed class targets. Block sums are
//! f32 over 8 or 16 lanes; the running sums are f64. Each task sums its rows in order and the
//! tasks are summed in order, so the result does not depend on the thread count.

use multiversion::multiversion;
use multiversion::target::target_cfg;

use super::pool::run_tasks;
use crate::output::{Loss, Output};
use crate::request::{
    Checked, CheckedTarget, IGNORED, Input, InputKind, LossKind, Reduction, scalar,
};

/// Elements per block of the online softmax: 8 KiB of f32, well inside L1.
const BLOCK: usize = 2048;
/// Lanes per step of the vector loops: two AVX2 registers (one AVX-512, four NEON) of independent
/// exps per step. 32 lanes measured slower on AVX2, where they spill registers.
const LANES: usize = 16;
/// Rows per task, the unit that threads claim: 16, fewer when rows are long, so that a task holds
/// at most `TASK_MAX_ELEMENTS` or one row (a thread that starts late, as a woken pool thread can by
/// milliseconds, still finds work left), and more when rows are short, so that it holds at least
/// `TASK_MIN_ELEMENTS`.
const ROWS_PER_TASK: usize = 16;
const TASK_MAX_ELEMENTS: usize = 1 << 18;
const TASK_MIN_ELEMENTS: usize = 4096;
/// Rows of at most this many classes get their softmax statistics eight rows at a time, a row
/// per vector lane, instead of a row at a time.
const SHORT_ROW: usize = 32;
/// Rows per step of the short-row loop.
const ROW_LANES: usize = 8;
/// Steps of the short-row loop whose statistics are taken together, so that their chains of
/// dependent work interleave: at 8192 × 10 on one Zen 3 core, 2 took 5% off 1, and 4 no more.
const STEPS_TOGETHER: usize = 2;

/// a·b + c, fused where the CPU version being compiled has FMA (a constant in each
/// `multiversion` clone, so the branch folds away; without FMA, `mul_add` would call libm).
#[inline(always)]
fn mul_add(a: f32, b: f32, c: f32, fma: bool) -> f32 {
    if fma { a.mul_add(b, c) } else { a * b + c }
}

/// e^x for x ≤ 0 (the softmax's x − max), branch-free so that loops over it vectorize:
/// x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by a degree-6 polynomial fitted on that range
/// (relative error 1.8e-8) and evaluated in Estrin's order (depth 4 instead of 6), times 2^n made
/// from its exponent bits. x is clamped below at −88, where n = −127 makes those bits 0: e^x is 0
/// from about −87.68 down (values under 2^−126.5, 8.5e−39, flushed with no compare and select),
/// and 2^n is normal above; NaN of any payload stays NaN. Positive x is exact up to 88 and out of
/// its domain above (its callers' x − max never is).
#[inline(always)]
fn exp(x: f32, fma: bool) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const LOW: f32 = -88.0;
    // Adding 1.5·2^23 + 127 rounds to the nearest integer n, and n + 127 then sits in the low
    // mantissa bits: n as a float and 2^n's exponent bits come out without a float-to-int
    // conversion, which would not vectorize (Rust's `as` saturates).
    const ROUND: f32 = 12_582_912.0;
    const BIASED: f32 = ROUND + 127.0;
    const C: [f32; 7] = [
        1.0,
        1.0,
        0.499_999_9,
        0.166_664_21,
        0.041_668_36,
        0.008_374_771,
        0.001_382_942_1,
    ];
    // A compare and select that keeps NaN (`f32::max` would drop it).
    let clamped = if x < LOW { LOW } else { x };
    let shifted = mul_add(clamped, LOG2E, BIASED, fma);
    let n = shifted - BIASED;
    let r = mul_add(-n, LN2_LO, mul_add(-n, LN2_HI, clamped, fma), fma);
    let r2 = r * r;
    let low = mul_add(
        r2,
        mul_add(C[3], r, C[2], fma),
        mul_add(C[1], r, C[0], fma),
        fma,
    );
    let high = mul_add(C[6], r2, mul_add(C[5], r, C[4], fma), fma);
    let p = mul_add(r2 * r2, high, low, fma);
    // n is in [−127, 127]: 2^n is a normal f32, or 0 at n = −127, and p in [0.7, 1.5]: p·2^n is
    // exact but for subnormal results. A multiply, not an add into p's exponent bits, so that a
    // NaN of any payload stays NaN.
    let scale = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits()) << 23);
    p * scale
}

/// ln x, branch-free so that loops over it vectorize (musl's `logf`, within 1 ulp): x = 2^k·(1 + f)
/// with 1 + f in [√½, √2), and ln(1 + f) from s = f / (2 + f) by a degree-4 polynomial in s².
/// ln 0 = −inf, ln +inf = +inf, NaN stays NaN; x must not be negative or subnormal (the softmax
/// sums it takes are 0 or at least 1).
#[inline(always)]
fn ln(x: f32, fma: bool) -> f32 {
    const LN2_HI: f32 = 0.693_138_1;
    const LN2_LO: f32 = 9.058_001e-6;
    const LG: [f32; 4] = [0.666_666_6, 0.400_009_72, 0.284_987_87, 0.242_790_79];
    // The bits of √½: subtracting them puts the exponent of x / √½ in the top bits.
    const SQRT_HALF: u32 = 0x3f35_04f3;
    let bits = x.to_bits();
    let k = (bits.wrapping_sub(SQRT_HALF) as i32) >> 23;
    let f = f32::from_bits(bits.wrapping_sub((k as u32) << 23)) - 1.0;
    let dk = k as f32;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * mul_add(w, LG[3], LG[1], fma);
    let t2 = z * mul_add(w, LG[2], LG[0], fma);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let y = mul_add(
        dk,
        LN2_HI,
        mul_add(s, hfsq + r, dk * LN2_LO, fma) - hfsq + f,
        fma,
    );
    // +inf and NaN fail x <= MAX and stay as they are.
    let y = if x <= f32::MAX { y } else { x };
    if x == 0.0 { f32::NEG_INFINITY } else { y }
}

/// The largest value of a slice, with no dispatch of its own (it is inlined into the callers'
/// CPU versions); NaN does not win here, but a NaN row still ends NaN through its exps.
#[inline(always)]
pub(super) fn max_inline(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    tail.iter().fold(
        acc.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |m, &v| m.max(v),
    )
}

/// The largest value of a slice.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn max_of(xs: &[f32]) -> f32 {
    max_inline(xs)
}

/// Σ e^(x − m) over one block, keeping each e^(x − m) in `out` when it is given, and the max of
/// the next block: reading the next block in the same loop overlaps its trip from memory with
/// this block's exps, which then read from L1.
#[inline(always)]
fn sum_exp_ahead(
    xs: &[f32],
    m: f32,
    mut out: Option<&mut [f32]>,
    next: &[f32],
    fma: bool,
) -> (f32, f32) {
    let mut s = [0.0_f32; LANES];
    let mut ahead = [f32::NEG_INFINITY; LANES];
    let full = xs.len() / LANES;
    let fused = full.min(next.len() / LANES);
    for i in 0..full {
        let c = &xs[i * LANES..(i + 1) * LANES];
        match out.as_deref_mut() {
            Some(out) => {
                let o = &mut out[i * LANES..(i + 1) * LANES];
                for k in 0..LANES {
                    let e = exp(c[k] - m, fma);
                    o[k] = e;
                    s[k] += e;
                }
            }
            None => {
                for k in 0..LANES {
                    s[k] += exp(c[k] - m, fma);
                }
            }
        }
        if i < fused {
            let n = &next[i * LANES..(i + 1) * LANES];
            for k in 0..LANES {
                // A compare and select, one instruction on x86 (`f32::max` adds a NaN check).
                ahead[k] = if n[k] > ahead[k] { n[k] } else { ahead[k] };
            }
        }
    }
    // The tail goes through the same vector step, padded with −inf, whose exp is 0.
    let tail = &xs[full * LANES..];
    let mut padded = [f32::NEG_INFINITY; LANES];
    padded[..tail.len()].copy_from_slice(tail);
    let mut e = [0.0_f32; LANES];
    for k in 0..LANES {
        e[k] = exp(padded[k] - m, fma);
        s[k] += e[k];
    }
    if let Some(out) = out {
        out[full * LANES..].copy_from_slice(&e[..tail.len()]);
    }
    let total = s.iter().sum::<f32>();
    let rest = max_inline(&next[fused * LANES..]);
    (total, ahead.iter().fold(rest, |a, &b| a.max(b)))
}

/// Σ e^(x − m) over one block, keeping each e^(x − m) in `out` when it is given (for the
/// gradient), and the max of the next block: with AVX2 and FMA (and no AVX-512) by
/// `cpu::avx2`'s loop and its table exp, elsewhere by the portable loop.
fn sum_exp(xs: &[f32], m: f32, out: Option<&mut [f32]>, next: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && !is_x86_feature_detected!("avx512f")
    {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { super::avx2::sum_exp_ahead(xs, m, out, next) };
    }
    sum_exp_portable(xs, m, out, next)
}

/// [`sum_exp`] by the portable loop, for the CPU found at run time (AVX2 with FMA takes
/// `cpu::avx2`'s).
#[multiversion(targets("x86_64+avx512f", "aarch64+neon"))]
fn sum_exp_portable(xs: &[f32], m: f32, out: Option<&mut [f32]>, next: &[f32]) -> (f32, f32) {
    #[target_cfg(any(target_feature = "fma", target_arch = "aarch64"))]
    const FMA: bool = true;
    #[target_cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
    const FMA: bool = false;
    sum_exp_ahead(xs, m, out, next, FMA)
}

/// g ← factor·g.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn scale(g: &mut [f32], factor: f32) {
    for v in g {
        *v *= factor;
    }
}

/// Σ e^(x − m) and Σ e^(x − m)·(x − m) over one block, for entropy.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn sum_exp_t(xs: &[f32], m: f32) -> (f32, f32) {
    #[target_cfg(any(target_feature = "fma", target_arch = "aarch64"))]
    const FMA: bool = true;
    #[target_cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
    const FMA: bool = false;
    let fma = FMA;
    let mut s = 0.0_f32;
    let mut t = 0.0_f32;
    for &v in xs {
        let d = v - m;
        let e = exp(d, fma);
        s += e;
        // exp(−inf)·(−inf) would be NaN; a class of probability 0 adds nothing.
        t += if e > 0.0 { e * d } else { 0.0 };
    }
    (s, t)
}

/// The max, Σ e^(x − max) and its log of each of `ROW_LANES` rows of `c` classes (rows[j·c + k]),
/// a row per lane, leaving each e^(x − max) in `t` (column k in `t[k]`) for
/// [`short_store`]. The max is at least `f32::MIN`, as in [`Softmax::of`]. `t`'s first `c`
/// columns are written before they are read (it is made once per call: zeroing it every step
/// cost as much as the exps at 10 classes).
#[inline(always)]
fn short_stats_portable(
    rows: &[f32],
    c: usize,
    t: &mut [[f32; ROW_LANES]; SHORT_ROW],
    fma: bool,
) -> [[f32; ROW_LANES]; 3] {
    // Transposed first, so that each class of the eight rows is one contiguous vector.
    for (j, row) in rows.chunks_exact(c).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            t[k][j] = v;
        }
    }
    let mut m = [f32::MIN; ROW_LANES];
    for column in &t[..c] {
        for j in 0..ROW_LANES {
            m[j] = if column[j] > m[j] { column[j] } else { m[j] };
        }
    }
    let mut s = [0.0_f32; ROW_LANES];
    for column in &mut t[..c] {
        for j in 0..ROW_LANES {
            column[j] = exp(column[j] - m[j], fma);
            s[j] += column[j];
        }
    }
    [m, s, ln_lanes(s, fma)]
}

/// Writes the exps [`short_stats`] left in `t`, each row's times its lane of `factors`,
/// into `out` laid out as the rows.
#[inline(always)]
fn short_store_portable(
    t: &[[f32; ROW_LANES]; SHORT_ROW],
    c: usize,
    factors: [f32; ROW_LANES],
    out: &mut [f32],
) {
    for (j, row) in out.chunks_exact_mut(c).enumerate() {
        for (k, o) in row.iter_mut().enumerate() {
            *o = t[k][j] * factors[j];
        }
    }
}

/// Whether the CPU has AVX2 and FMA, for `cpu::avx2`'s short-row steps.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// The statistics of `G` short-row steps (`rows` holds G·8 rows), the exps of step g left in
/// `t[g]`: `cpu::avx2`'s, which takes the steps' phases together, where the CPU has AVX2 and FMA,
/// else [`short_stats_portable`] step by step.
#[inline(always)]
fn short_stats<const G: usize>(
    rows: &[f32],
    c: usize,
    t: &mut [[[f32; ROW_LANES]; SHORT_ROW]; G],
    fma: bool,
) -> [[[f32; ROW_LANES]; 3]; G] {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { super::avx2::short_rows_stats(rows, c, t) };
    }
    let mut stats = [[[0.0; ROW_LANES]; 3]; G];
    for ((step, rows), t) in stats
        .iter_mut()
        .zip(rows.chunks_exact(ROW_LANES * c))
        .zip(t)
    {
        *step = short_stats_portable(rows, c, t, fma);
    }
    stats
}

/// A short-row step's store: [`short_store_portable`], or `cpu::avx2`'s where the CPU has AVX2
/// and FMA.
#[inline(always)]
fn short_store(
    t: &[[f32; ROW_LANES]; SHORT_ROW],
    c: usize,
    factors: [f32; ROW_LANES],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { super::avx2::short_rows_store(t, c, factors, out) };
    }
    short_store_portable(t, c, factors, out);
}

/// ln of each lane, for a short-row step's sums.
#[inline(always)]
pub(super) fn ln_lanes(s: [f32; ROW_LANES], fma: bool) -> [f32; ROW_LANES] {
    // A loop, not `map`: a closure would not be compiled for the caller's CPU features.
    let mut log_s = [0.0_f32; ROW_LANES];
    for j in 0..ROW_LANES {
        log_s[j] = ln(s[j], fma);
    }
    log_s
}

/// What the short-row loop writes into a task's gradient.
enum ShortGrad<'a> {
    /// Each e^(x − max), which [`row`] turns into the gradient.
    Exps(&'a mut [f32]),
    /// The gradient itself, of a cross-entropy against one unweighted, unsmoothed class per row
    /// (the task's `targets`), scaled by α and β, as [`row`] would write it.
    OneHot {
        grad: &'a mut [f32],
        targets: &'a [u32],
        scale: (f32, f32),
        z_loss: f32,
    },
}

/// The softmax statistics (max, sum, log of the sum) of every row of `x` ([rows, c],
/// c ≤ `SHORT_ROW`), eight rows at a time, a row per lane, and what `grad` asks for: each step by
/// `cpu::avx2`'s where the CPU has AVX2 and FMA, by the portable one elsewhere. Rows left over
/// take the same step, padded with rows of −inf.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn short_rows(x: &[f32], c: usize, mut grad: Option<ShortGrad>, stats: &mut Vec<[f32; 3]>) {
    #[target_cfg(any(target_feature = "fma", target_arch = "aarch64"))]
    const FMA: bool = true;
    #[target_cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
    const FMA: bool = false;
    let step = ROW_LANES * c;
    let mut t = [[[0.0_f32; ROW_LANES]; SHORT_ROW]; STEPS_TOGETHER];
    let mut exps = [0.0_f32; ROW_LANES * SHORT_ROW];
    // Step i's outputs from its statistics and the exps in `t`.
    let mut finish = |i: usize,
                      rows: &[f32],
                      [m, s, log_s]: [[f32; ROW_LANES]; 3],
                      t: &[[f32; ROW_LANES]; SHORT_ROW]| {
        let n = rows.len() / c;
        let full = n == ROW_LANES;
        let span = i * step..i * step + rows.len();
        let mut factors = [1.0_f32; ROW_LANES];
        // For a one-hot gradient, each row's target and the gradient there.
        let mut at_y = None;
        let out = match grad.as_mut() {
            None => None,
            Some(ShortGrad::Exps(out)) => Some(&mut out[span]),
            Some(ShortGrad::OneHot {
                grad,
                targets,
                scale,
                z_loss,
            }) => {
                let ys = &targets[i * ROW_LANES..][..n];
                // x_y of each row (an ignored row's, or a padding row's, stands in as its max),
                // then each lane's terms in a loop with no branch, which vectorizes.
                let mut x_y = m;
                for (j, &y) in ys.iter().enumerate() {
                    if y != IGNORED {
                        x_y[j] = rows[j * c + y as usize];
                    }
                }
                let mut g_ys = [0.0_f32; ROW_LANES];
                for j in 0..ROW_LANES {
                    let st = Softmax::short(m[j], s[j], log_s[j]);
                    let (coef, g_y) = st.one_hot_terms(x_y[j], *scale, *z_loss);
                    factors[j] = st.at_max(coef);
                    g_ys[j] = g_y;
                }
                at_y = Some((ys, g_ys));
                Some(&mut grad[span])
            }
        };
        if let Some(out) = out {
            // A step of rows left over writes its exps through `exps`.
            let to = if full { &mut *out } else { &mut exps[..step] };
            short_store(t, c, factors, to);
            if !full {
                out.copy_from_slice(&exps[..rows.len()]);
            }
            if let Some((ys, g_ys)) = at_y {
                for ((row, &y), g_y) in out.chunks_exact_mut(c).zip(ys).zip(g_ys) {
                    match y {
                        // An ignored row's gradient is 0, even where its logits are not finite.
                        IGNORED => row.fill(0.0),
                        y => row[y as usize] = g_y,
                    }
                }
            }
        }
        stats.extend((0..n).map(|j| [m[j], s[j], log_s[j]]));
    };
    // `STEPS_TOGETHER` steps at a time, then what is left a step at a time, the rows left over
    // (the last step's, if any) padded with rows of −inf.
    let groups = x.len() / (STEPS_TOGETHER * step);
    let (grouped, rest) = x.split_at(groups * STEPS_TOGETHER * step);
    for (p, rows) in grouped.chunks_exact(STEPS_TOGETHER * step).enumerate() {
        let all = short_stats(rows, c, &mut t, FMA);
        for (g, (rows, st)) in rows.chunks_exact(step).zip(all).enumerate() {
            finish(STEPS_TOGETHER * p + g, rows, st, &t[g]);
        }
    }
    let t = &mut t[0];
    for (q, rows) in rest.chunks(step).enumerate() {
        let mut padded = [f32::NEG_INFINITY; ROW_LANES * SHORT_ROW];
        let input = if rows.len() == step {
            rows
        } else {
            padded[..rows.len()].copy_from_slice(rows);
            &padded[..step]
        };
        let [one] = short_stats(input, c, std::array::from_mut(t), FMA);
        finish(STEPS_TOGETHER * groups + q, rows, one, t);
    }
}

/// A row's statistics, as in the kernels: max, Σ e^(x−m), Σ e^(x−m)(x−m), and log Σ e^(x−m),
/// taken once per row.
struct Softmax {
    m: f32,
    s: f64,
    t: f64,
    log_s: f64,
}

/// A row's logits for [`Softmax::of`], and where their exps go when the gradient needs them.
enum Logits<'a> {
    /// Read only.
    Read(&'a [f32]),
    /// Read, each exp into the second slice, and each block's max into the `Vec`.
    Store(&'a [f32], &'a mut [f32], &'a mut Vec<f32>),
    /// Each exp over its logit, and each block's max into the first `Vec`: each block is copied
    /// into the second first, from cache (the loop over the block before read it ahead).
    InPlace(&'a mut [f32], &'a mut Vec<f32>, &'a mut Vec<f32>),
}

impl Logits<'_> {
    fn len(&self) -> usize {
        match self {
            Logits::Read(x) | Logits::Store(x, ..) => x.len(),
            Logits::InPlace(x, ..) => x.len(),
        }
    }

    /// The values at `range`.
    fn values(&self, range: std::ops::Range<usize>) -> &[f32] {
        match self {
            Logits::Read(x) | Logits::Store(x, ..) => &x[range],
            Logits::InPlace(x, ..) => &x[range],
        }
    }
}

impl Softmax {
    /// The statistics of a row, and the max of `after` (the next row's first block, read in the
    /// loop over this row's last block, as each block reads the next). `first_max` is the max
    /// of the row's first block when it was read that way. When `x` stores them, each element's
    /// e^(x − m) is kept, m being the running max when its block was read, and each block's m:
    /// the gradient then needs one multiply per element instead of a second exp.
    fn of(mut x: Logits, with_t: bool, first_max: Option<f32>, after: &[f32]) -> (Self, f32) {
        let (mut m, mut s_all, mut t_all) = (f32::NEG_INFINITY, 0.0_f64, 0.0_f64);
        let len = x.len();
        let mut block_max = first_max.unwrap_or_else(|| max_of(x.values(0..len.min(BLOCK))));
        for at in (0..len).step_by(BLOCK) {
            let end = len.min(at + BLOCK);
            let block_max_now = block_max.max(f32::MIN);
            if block_max_now > m {
                // The first block sets the max; later ones rescale what came before.
                if s_all > 0.0 {
                    let shift = f64::from(m) - f64::from(block_max_now);
                    let scale = shift.exp();
                    t_all = scale * (t_all + shift * s_all);
                    s_all *= scale;
                }
                m = block_max_now;
            }
            let next_end = len.min(end + BLOCK);
            let (block, out, next): (&[f32], _, &[f32]) = match &mut x {
                Logits::Read(x) => (&x[at..end], None, &x[end..next_end]),
                Logits::Store(x, out, maxes) => {
                    maxes.push(m);
                    (&x[at..end], Some(&mut out[at..end]), &x[end..next_end])
                }
                Logits::InPlace(x, maxes, copy) => {
                    maxes.push(m);
                    let (head, tail) = x.split_at_mut(end);
                    copy.clear();
                    copy.extend_from_slice(&head[at..]);
                    (&copy[..], Some(&mut head[at..]), &tail[..next_end - end])
                }
            };
            let next = if next.is_empty() { after } else { next };
            let (s, t) = if with_t {
                block_max = max_of(next);
                sum_exp_t(block, m)
            } else {
                let (s, ahead) = sum_exp(block, m, out, next);
                block_max = ahead;
                (s, 0.0)
            };
            s_all += f64::from(s);
            t_all += f64::from(t);
        }
        let st = Softmax {
            m,
            s: s_all,
            t: t_all,
            log_s: s_all.ln(),
        };
        (st, block_max)
    }

    /// A short row's statistics, as the short-row loop gives them.
    #[inline(always)]
    fn short(m: f32, s: f32, log_s: f32) -> Self {
        Softmax {
            m,
            s: f64::from(s),
            t: 0.0,
            log_s: f64::from(log_s),
        }
    }

    /// The factor that turns the e^(x − m_b) of a block read at running max m_b into the softmax
    /// times `coef`: e^((m_b − m) − log s)·coef, which is coef / s for a block read at the row's
    /// max (every block of most rows).
    fn factor(&self, m_b: f32, coef: f32) -> f32 {
        if m_b == self.m {
            self.at_max(coef)
        } else {
            ((f64::from(m_b) - f64::from(self.m) - self.log_s).exp() * f64::from(coef)) as f32
        }
    }

    /// [`Softmax::factor`] for a block read at the row's max: coef / s.
    #[inline(always)]
    fn at_max(&self, coef: f32) -> f32 {
        (f64::from(coef) / self.s) as f32
    }

    /// Turns what `of` stored into the softmax times `coef`, block by block.
    fn stored_softmax(&self, g: &mut [f32], maxes: &[f32], coef: f32) {
        for (block, &m) in g.chunks_mut(BLOCK).zip(maxes) {
            scale(block, self.factor(m, coef));
        }
    }

    /// The z-loss part's coefficient of the softmax in the gradient, 2β·z·lse.
    #[inline(always)]
    fn z_coef(&self, beta: f32, z_loss: f32) -> f32 {
        2.0 * beta * z_loss * self.lse() as f32
    }

    /// For a row against one unweighted, unsmoothed class y (logit `x_y`): the coefficient of
    /// its softmax in the gradient, α + z, and the gradient at y, α(softmax_y − 1) + z·softmax_y,
    /// with softmax_y − 1 formed in f32 before it is scaled (z is the z-loss part's).
    #[inline(always)]
    fn one_hot_terms(&self, x_y: f32, (alpha, beta): (f32, f32), z_loss: f32) -> (f32, f32) {
        let z = self.z_coef(beta, z_loss);
        let softmax_y = exp(self.log_q(x_y) as f32, false);
        (alpha + z, alpha * (softmax_y - 1.0) + z * softmax_y)
    }

    /// The log-sum-exp in float64: the sums it multiplies are float64, and with a rounded lse,
    /// lse·Σ w p′ − Σ w p′ x would cancel to nothing near logits of 1e8.
    #[inline(always)]
    fn lse(&self) -> f64 {
        f64::from(self.m) + self.log_s
    }

    /// log q of logit `x`: (x − m) − log s, the max taken off first. x − lse would lose log s
    /// wherever m + log s rounds to m (an f32 near 1e8 steps by 8): three equal maxima there
    /// would each get log q = 0 instead of −log 3.
    #[inline(always)]
    fn log_q(&self, x: f32) -> f64 {
        (f64::from(x) - f64::from(self.m)) - self.log_s
    }
}

/// What one row contributes: its main value (in nats, weighted), its z term and its lse. (The
/// elementwise losses write their `none` values straight into the output.)
struct RowResult {
    main: f64,
    z: f64,
    lse: f32,
}

/// Where a task reads its rows: the request's input, or for a gradient in place a copy of the
/// task's own rows (row `first` at 0), which the gradient then overwrites.
#[derive(Clone, Copy)]
struct Rows<'a> {
    input: Input<'a>,
    first: usize,
}

impl Rows<'_> {
    /// The elements of `rows`, of `c` classes each, in `input`.
    fn span(&self, rows: std::ops::Range<usize>, c: usize) -> std::ops::Range<usize> {
        (rows.start - self.first) * c..(rows.end - self.first) * c
    }
}

/// One row's input as f32 after the soft cap, borrowed when nothing changes it.
fn row_input<'a>(req: &Checked, rows: Rows<'a>, r: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
    let range = rows.span(r..r + 1, req.classes);
    match (rows.input, req.options.softcap) {
        (Input::F32(v), None) => &v[range],
        (input, cap) => {
            scratch.clear();
            scratch.extend(range.map(|i| {
                let x = input.get(i);
                cap.map_or(x, |c| c * (x / c).tanh())
            }));
            scratch
        }
    }
}

/// log q of input `x`: through the row's softmax for logits (the max and log s taken off, see
/// [`Softmax::log_q`]), a probability's log, or a log-probability itself.
fn log_q(st: Option<&Softmax>, kind: InputKind, x: f32) -> f64 {
    match st {
        Some(st) => st.log_q(x),
        None if kind == InputKind::Probs => f64::from(x.ln()),
        None => f64::from(x),
    }
}

/// The gradient of −α·Σ m_k log q_k where log q is the input itself (log-probabilities, −α m_k)
/// or its log (probabilities, −α m_k / x_k; 0 where m_k = 0, even at x_k = 0).
fn target_only_grad(
    g: &mut [f32],
    x: &[f32],
    kind: InputKind,
    alpha: f32,
    mass: impl Fn(usize) -> f32,
) {
    for (k, (g, &v)) in g.iter_mut().zip(x).enumerate() {
        let m = mass(k);
        *g = match kind {
            InputKind::Probs if m == 0.0 => 0.0,
            InputKind::Probs => -alpha * m / v,
            _ => -alpha * m,
        };
    }
}

/// Computes one row: its value, and when asked its gradient (scaled by α and β) and elementwise
/// values (scaled by α).
fn row(
    req: &Checked,
    rows: Rows,
    r: usize,
    scale: (f32, f32),
    scratch: &mut RowScratch,
    mut grad: Option<&mut [f32]>,
    elements: Option<&mut [f32]>,
) -> RowResult {
    let (alpha, beta) = scale;
    let c = req.classes;
    let kind = req.options.input_kind;
    let logits = kind == InputKind::Logits;
    let RowScratch {
        input,
        maxes,
        short,
        end,
        ahead,
    } = scratch;
    let x = row_input(req, rows, r, input);
    let weight = |k: usize| req.weight.map_or(1.0, |w| w[k]);
    let needs_softmax = logits && req.loss != LossKind::BinaryCrossEntropy;
    let entropy = req.loss == LossKind::Entropy;
    maxes.clear();
    let st = match short.softmax(r) {
        // Computed with the rest of the task's rows, exps already in the gradient.
        Some(st) => {
            maxes.push(st.m);
            Some(st)
        }
        None => {
            let logits = match (!entropy).then_some(grad.as_deref_mut()).flatten() {
                Some(g) => Logits::Store(x, g, &mut *maxes),
                None => Logits::Read(x),
            };
            // The next row's first block, read in this row's last loop, when it is the input
            // itself.
            let after = match (rows.input, req.options.softcap) {
                (Input::F32(v), None) if r + 1 < *end => {
                    &v[rows.span(r + 1..r + 2, c)][..c.min(BLOCK)]
                }
                _ => &[],
            };
            let first_max = ahead.take().filter(|&(row, _)| row == r).map(|(_, m)| m);
            needs_softmax.then(|| {
                let (st, after_max) = Softmax::of(logits, entropy, first_max, after);
                *ahead = (!after.is_empty()).then_some((r + 1, after_max));
                st
            })
        }
    };
    let maxes = &*maxes;
    let lse64 = st.as_ref().map_or(0.0, Softmax::lse);
    let lse = lse64 as f32;
    let mut out = RowResult {
        main: 0.0,
        z: 0.0,
        lse,
    };
    match req.loss {
        LossKind::CrossEntropy => {
            let eps = req.options.label_smoothing;
            let (y, p) = match &req.target {
                CheckedTarget::Classes(t) if t[r] == IGNORED => {
                    if let Some(g) = grad {
                        g.fill(0.0);
                    }
                    return out;
                }
                CheckedTarget::Classes(t) => (Some(t[r] as usize), None),
                CheckedTarget::Dense(t) => (None, Some(&t[r * c..(r + 1) * c])),
                CheckedTarget::None => unreachable!("checked: cross-entropy has a target"),
            };
            // w_k p′_k for every class.
            let wp = |k: usize| {
                let p_k = match (y, &p) {
                    (Some(y), _) => f32::from(u8::from(k == y)),
                    (None, Some(p)) => p[k],
                    (None, None) => 0.0,
                };
                weight(k) * ((1.0 - eps) * p_k + eps / c as f32)
            };
            // a = Σ w p′ log q, each log q taken first (the max and log s off a logit; a
            // probability's log; a log-probability itself), not as Σ w p′ x − lse·Σ w p′, which
            // cancels to nothing when w p′ is huge or x near f32::MAX; b = Σ w p′. One unweighted,
            // unsmoothed class needs no loop.
            let log_q = |v: f32| log_q(st.as_ref(), kind, v);
            let one_hot = y.filter(|_| eps == 0.0 && req.weight.is_none());
            let (mut a, mut b) = (0.0_f64, 0.0_f64);
            if let Some(y) = one_hot {
                a = log_q(x[y]);
                b = 1.0;
            } else {
                for (k, &v) in x.iter().enumerate() {
                    let w = wp(k);
                    if w != 0.0 {
                        a += f64::from(w) * log_q(v);
                        b += f64::from(w);
                    }
                }
            }
            out.main = -a;
            if logits {
                out.z = z_term(lse64, req.options.z_loss);
            }
            if let Some(g) = grad.as_deref_mut() {
                if let Some(st) = st.as_ref().filter(|_| logits) {
                    // α(b·softmax − w p′) + 2βs·lse·softmax, the cross-entropy part formed before
                    // the z-loss part is added, as in the kernels: with w p′ the same values b
                    // summed, a row whose softmax equals its target gets exactly the z-loss term.
                    match one_hot {
                        Some(y) => {
                            let (coef, g_y) = st.one_hot_terms(x[y], scale, req.options.z_loss);
                            st.stored_softmax(g, maxes, coef);
                            g[y] = g_y;
                        }
                        None => {
                            let z = st.z_coef(beta, req.options.z_loss);
                            let b = b as f32;
                            st.stored_softmax(g, maxes, 1.0);
                            for (k, g) in g.iter_mut().enumerate() {
                                *g = alpha * (b * *g - wp(k)) + z * *g;
                            }
                        }
                    }
                } else {
                    target_only_grad(g, x, kind, alpha, wp);
                }
            }
        }
        LossKind::KlDiv => {
            let CheckedTarget::Dense(t) = &req.target else {
                unreachable!("checked")
            };
            let t = &t[r * c..(r + 1) * c];
            let p = |k: usize| {
                if req.options.log_target {
                    t[k].exp()
                } else {
                    t[k]
                }
            };
            let (mut a, mut b, mut plogp) = (0.0_f64, 0.0_f64, 0.0_f64);
            let mut values = elements;
            for (k, &v) in x.iter().enumerate() {
                let p_k = p(k);
                if p_k > 0.0 {
                    let log_p = if req.options.log_target {
                        t[k]
                    } else {
                        p_k.ln()
                    };
                    // log q taken first, as for cross-entropy.
                    let log_q = log_q(st.as_ref(), kind, v);
                    a += f64::from(p_k) * log_q;
                    b += f64::from(p_k);
                    plogp += f64::from(p_k) * f64::from(log_p);
                    if let Some(values) = values.as_deref_mut() {
                        values[k] = alpha * p_k * (log_p - log_q as f32);
                    }
                } else if let Some(values) = values.as_deref_mut() {
                    values[k] = 0.0;
                }
            }
            out.main = plogp - a;
            if let Some(g) = grad.as_deref_mut() {
                if let Some(st) = st.as_ref().filter(|_| logits) {
                    st.stored_softmax(g, maxes, alpha * b as f32);
                    for (k, g) in g.iter_mut().enumerate() {
                        *g -= alpha * p(k);
                    }
                } else {
                    target_only_grad(g, x, kind, alpha, p);
                }
            }
        }
        LossKind::Entropy => {
            let h = match (&st, kind) {
                (Some(st), _) => st.log_s - st.t / st.s,
                (None, InputKind::Probs) => x
                    .iter()
                    .map(|&q| {
                        if q > 0.0 {
                            -f64::from(q) * f64::from(q.ln())
                        } else {
                            0.0
                        }
                    })
                    .sum(),
                (None, _) => x
                    .iter()
                    .map(|&lq| {
                        let q = lq.exp();
                        if q > 0.0 {
                            -f64::from(q) * f64::from(lq)
                        } else {
                            0.0
                        }
                    })
                    .sum(),
            };
            out.main = h;
            if let Some(g) = grad.as_deref_mut() {
                let h = h as f32;
                for (g, &v) in g.iter_mut().zip(x) {
                    *g = match kind {
                        InputKind::Logits => {
                            let lq = st.as_ref().map_or(v - lse, |st| st.log_q(v) as f32);
                            let q = lq.exp();
                            if q > 0.0 { -alpha * q * (lq + h) } else { 0.0 }
                        }
                        InputKind::Probs => -alpha * (v.ln() + 1.0),
                        InputKind::LogProbs => -alpha * v.exp() * (v + 1.0),
                    };
                }
            }
        }
        LossKind::BinaryCrossEntropy => {
            let CheckedTarget::Dense(t) = &req.target else {
                unreachable!("checked")
            };
            let t = &t[r * c..(r + 1) * c];
            let mut values = elements;
            let mut sum = 0.0_f64;
            for (k, &v) in x.iter().enumerate() {
                let (y, w) = (t[k], weight(k));
                let (loss, d) = if logits {
                    let pw = req.pos_weight.map_or(1.0, |p| p[k]);
                    // −log σ(x) = log1p(e^−|x|) + max(−x, 0).
                    let softplus = (-v.abs()).exp().ln_1p();
                    let sigmoid = 1.0 / (1.0 + (-v).exp());
                    let neg_log_sigmoid = softplus + (-v).max(0.0);
                    // A label in [0, 1] weighs two non-negative terms; one outside it would make
                    // them cancel, so it takes PyTorch's form, (1 − y)·x + (1 + (pw − 1)·y)·(−log σ(x)).
                    let loss = if (0.0..=1.0).contains(&y) {
                        pw * y * neg_log_sigmoid + (1.0 - y) * (softplus + v.max(0.0))
                    } else {
                        (1.0 - y) * v + (1.0 + (pw - 1.0) * y) * neg_log_sigmoid
                    };
                    (loss, sigmoid * (1.0 + (pw - 1.0) * y) - pw * y)
                } else {
                    (
                        -(y * v.ln().max(-100.0) + (1.0 - y) * (1.0 - v).ln().max(-100.0)),
                        (v - y) / (v * (1.0 - v)).max(1e-12),
                    )
                };
                sum += f64::from(w * loss);
                if let Some(values) = values.as_deref_mut() {
                    values[k] = alpha * w * loss;
                }
                if let Some(g) = grad.as_deref_mut() {
                    g[k] = alpha * w * d;
                }
            }
            out.main = sum;
        }
    }
    // The soft cap's chain rule: d(c·tanh(x/c))/dx = 1 − (x′/c)².
    if let (Some(cap), Some(g)) = (req.options.softcap, grad) {
        for (g, &v) in g.iter_mut().zip(x) {
            let r = v / cap;
            *g *= 1.0 - r * r;
        }
    }
    out
}

/// A block of rows and its slices of the outputs: the gradient, the elementwise values, each
/// row's value (a `none` reduction of a per-row loss) and each row's lse.
struct Task<'a> {
    rows: std::ops::Range<usize>,
    grad: Option<&'a mut [f32]>,
    values: Option<&'a mut [f32]>,
    row_values: Option<&'a mut [f32]>,
    lse: Option<&'a mut [f32]>,
    /// The gradient goes over the input: the rows are read from `grad`, over themselves or from
    /// a copy (see [`compute_in_place`]).
    in_place: bool,
}

/// What a task's rows reuse: the soft-capped or converted input of one row, its block maxes, and
/// the softmax statistics of the task's short rows (indexed by row), when they were computed
/// together.
#[derive(Default)]
struct RowScratch {
    input: Vec<f32>,
    maxes: Vec<f32>,
    short: ShortStats,
    /// The end of the task's rows.
    end: usize,
    /// A row and the max of its first block, read with the row before it.
    ahead: Option<(usize, f32)>,
}

/// Softmax statistics of rows `first..first + stats.len()`.
#[derive(Default)]
struct ShortStats {
    first: usize,
    stats: Vec<[f32; 3]>,
}

impl ShortStats {
    /// Row r's statistics, when the short-row loop computed them.
    fn softmax(&self, r: usize) -> Option<Softmax> {
        let &[m, s, log_s] = self.stats.get(r.checked_sub(self.first)?)?;
        Some(Softmax::short(m, s, log_s))
    }
}

/// A row's z-loss term, z·lse².
fn z_term(lse: f64, z_loss: f32) -> f64 {
    f64::from(z_loss) * lse * lse
}

/// What a cross-entropy row on f32 logits contributes against one unweighted, unsmoothed class
/// (or none, when ignored), from the softmax statistics the short-row loop gave (which also
/// wrote its gradient): −log q_y and its z-loss term, as [`row`] forms them, without `row`'s
/// general path (at 10 classes that path cost as much as the statistics).
fn one_hot_row(st: &Softmax, x_y: Option<f32>, z_loss: f32) -> RowResult {
    let lse = st.lse();
    let (main, z) = match x_y {
        None => (0.0, 0.0),
        Some(x_y) => (-st.log_q(x_y), z_term(lse, z_loss)),
    };
    RowResult {
        main,
        z,
        lse: lse as f32,
    }
}

/// [`one_hot_row`] for row r of more than `SHORT_ROW` logits, with its gradient (scaled by α
/// and β) written over the logits `g`, as [`row`] writes it to a buffer of its own: x_y is read
/// first, and each block is copied, from cache, before its exps overwrite it. `after` is the
/// next row's first block, read ahead as [`row`] reads it.
fn one_hot_row_in_place(
    g: &mut [f32],
    y: u32,
    (r, after): (usize, &[f32]),
    scale: (f32, f32),
    z_loss: f32,
    scratch: &mut RowScratch,
) -> RowResult {
    let RowScratch {
        input,
        maxes,
        ahead,
        ..
    } = scratch;
    let first_max = ahead.take().filter(|&(row, _)| row == r).map(|(_, m)| m);
    let x_y = (y != IGNORED).then(|| g[y as usize]);
    maxes.clear();
    let logits = match x_y {
        Some(_) => Logits::InPlace(g, maxes, input),
        None => Logits::Read(g),
    };
    let (st, after_max) = Softmax::of(logits, false, first_max, after);
    *ahead = (!after.is_empty()).then_some((r + 1, after_max));
    let Some(x_y) = x_y else {
        // An ignored row's gradient is 0, even where its logits are not finite.
        g.fill(0.0);
        return one_hot_row(&st, None, z_loss);
    };
    let (coef, g_y) = st.one_hot_terms(x_y, scale, z_loss);
    st.stored_softmax(g, maxes, coef);
    g[y as usize] = g_y;
    one_hot_row(&st, Some(x_y), z_loss)
}

impl Task<'_> {
    /// Computes the task's rows, writes their outputs, and returns the sums of their main and z
    /// values, taken in row order.
    fn run(mut self, req: &Checked, scale: (f32, f32)) -> (f64, f64) {
        let c = req.classes;
        let plain_logits = req.options.input_kind == InputKind::Logits
            && req.options.softcap.is_none()
            && matches!(req.loss, LossKind::CrossEntropy | LossKind::KlDiv);
        // Rows that need nothing but their statistics and x_y (and for the gradient, their exps).
        let one_hot_targets = match &req.target {
            CheckedTarget::Classes(t)
                if req.loss == LossKind::CrossEntropy
                    && req.options.label_smoothing == 0.0
                    && req.weight.is_none() =>
            {
                Some(t)
            }
            _ => None,
        };
        // In place, such rows of more than `SHORT_ROW` logits are computed over themselves;
        // other rows are read from a copy of the task's own (at most `TASK_MAX_ELEMENTS`, or one
        // row), which the gradient then overwrites.
        let over_themselves = self.in_place
            && self.grad.is_some()
            && plain_logits
            && c > SHORT_ROW
            && one_hot_targets.is_some();
        let copy = (self.in_place && !over_themselves)
            .then(|| self.grad.as_deref().map(<[f32]>::to_vec))
            .flatten();
        let rows = match &copy {
            Some(copy) => Rows {
                input: Input::F32(copy),
                first: self.rows.start,
            },
            None => Rows {
                input: req.input,
                first: 0,
            },
        };
        let mut scratch = RowScratch {
            end: self.rows.end,
            ..RowScratch::default()
        };
        let one_hot = match rows.input {
            Input::F32(x) => one_hot_targets.map(|t| (t, x)),
            _ => None,
        };
        let short = match (c <= SHORT_ROW && plain_logits, rows.input) {
            (true, Input::F32(x)) => Some(x),
            _ => None,
        };
        if let Some(x) = short {
            scratch.short.first = self.rows.start;
            let grad = self.grad.as_deref_mut().map(|g| match one_hot {
                Some((t, _)) => ShortGrad::OneHot {
                    grad: g,
                    targets: &t[self.rows.clone()],
                    scale,
                    z_loss: req.options.z_loss,
                },
                None => ShortGrad::Exps(g),
            });
            short_rows(
                &x[rows.span(self.rows.clone(), c)],
                c,
                grad,
                &mut scratch.short.stats,
            );
        }
        let ln = req.options.base.ln();
        let (mut main, mut z) = (0.0, 0.0);
        let mut record = |i: usize, result: RowResult| {
            main += result.main;
            z += result.z;
            if let Some(row_values) = self.row_values.as_deref_mut() {
                row_values[i] = (result.main / ln + result.z) as f32;
            }
            if let Some(lse) = self.lse.as_deref_mut() {
                lse[i] = result.lse;
            }
        };
        match (one_hot, short) {
            // Each row from the short-row loop's statistics (which also wrote the gradient), in a
            // loop of its own: with `row`'s general path in it, the sums lived in memory.
            (Some((t, x)), Some(_)) => {
                let stats = &scratch.short.stats;
                for (i, (r, &[m, s, log_s])) in self.rows.zip(stats).enumerate() {
                    let st = Softmax::short(m, s, log_s);
                    let x_y = (t[r] != IGNORED).then(|| x[rows.span(r..r + 1, c)][t[r] as usize]);
                    record(i, one_hot_row(&st, x_y, req.options.z_loss));
                }
            }
            (Some((t, _)), None) if over_themselves => {
                let mut rest = self.grad.unwrap_or_default();
                let z_loss = req.options.z_loss;
                for (i, r) in self.rows.enumerate() {
                    let (g, next) = std::mem::take(&mut rest).split_at_mut(c);
                    rest = next;
                    let at = (r, &rest[..rest.len().min(c.min(BLOCK))]);
                    record(
                        i,
                        one_hot_row_in_place(g, t[r], at, scale, z_loss, &mut scratch),
                    );
                }
            }
            _ => {
                let mut grad = self.grad.map(|g| g.chunks_mut(c));
                let mut values = self.values.map(|v| v.chunks_mut(c));
                for (i, r) in self.rows.enumerate() {
                    let g = grad.as_mut().and_then(Iterator::next);
                    let v = values.as_mut().and_then(Iterator::next);
                    record(i, row(req, rows, r, scale, &mut scratch, g, v));
                }
            }
        }
        (main, z)
    }
}

/// Σ x over a slice, in vector lanes.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn sum_of(xs: &[f32]) -> f32 {
    let mut acc = [0.0_f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sums `xs` with the fast path's vector loops and threads: a read of the same bytes with no
/// arithmetic to speak of, which bounds what the loss loops can reach.
pub(crate) fn probe_sum(xs: &[f32]) -> f32 {
    let tasks: Vec<&[f32]> = xs.chunks(ROWS_PER_TASK * BLOCK).collect();
    run_tasks(tasks, xs.len(), sum_of).into_iter().sum()
}

/// Computes any checked request on the CPU in f32, as the kernels do, and reduces it as the
/// request says; writes the gradient of the reduced loss into `grad` when asked.
pub(crate) fn compute(req: &Checked, grad: Option<&mut [f32]>) -> Output {
    compute_on(req, grad, false)
}

/// [`compute`] on the values of `logits` (the request's own input, empty, is not read), with the
/// gradient written over them and no [B, C] buffer: cross-entropy rows against one unweighted,
/// unsmoothed class (of more than `SHORT_ROW` logits) are computed over themselves, a block
/// copied from cache at a time ([`one_hot_row_in_place`]); every other task copies its rows
/// before it overwrites them. (That copy of a task's rows, or of each row, measured 10–20%
/// slower than a gradient buffer of its own: its read from memory cannot overlap the exps as
/// the block loop's read-ahead does.)
pub(crate) fn compute_in_place(req: &Checked, logits: &mut [f32]) -> Output {
    compute_on(req, Some(logits), true)
}

fn compute_on(req: &Checked, grad: Option<&mut [f32]>, in_place: bool) -> Output {
    let c = req.classes;
    let divisors = req.divisors();
    let scale = req.scales();
    let reduced = req.options.reduction != Reduction::None;
    let elementwise = !reduced && req.loss.elementwise();
    let mut values = vec![0.0_f32; if elementwise { req.elements() } else { 0 }];
    let mut row_values = vec![0.0_f32; if reduced || elementwise { 0 } else { req.batch }];
    let mut lse = req.options.lse.then(|| vec![0.0_f32; req.batch]);
    let c_or_1 = c.max(1);
    let rows_per_task = ROWS_PER_TASK
        .min((TASK_MAX_ELEMENTS / c_or_1).max(1))
        .max(TASK_MIN_ELEMENTS / c_or_1);
    let block = rows_per_task * c;
    let mut grad_blocks = grad.map(|g| g.chunks_mut(block));
    let mut value_blocks = elementwise.then(|| values.chunks_mut(block));
    let mut row_blocks = (!row_values.is_empty()).then(|| row_values.chunks_mut(rows_per_task));
    let mut lse_blocks = lse.as_mut().map(|l| l.chunks_mut(rows_per_task));
    let tasks: Vec<Task> = (0..req.batch)
        .step_by(rows_per_task)
        .map(|start| Task {
            rows: start..req.batch.min(start + rows_per_task),
            grad: grad_blocks.as_mut().and_then(Iterator::next),
            values: value_blocks.as_mut().and_then(Iterator::next),
            row_values: row_blocks.as_mut().and_then(Iterator::next),
            lse: lse_blocks.as_mut().and_then(Iterator::next),
            in_place,
        })
        .collect();
    let sums = run_tasks(tasks, req.elements(), |t| {
        t.run(req, (scale.main, scale.z_loss))
    });
    let loss = match (req.options.reduction, divisors) {
        (Reduction::None, _) if elementwise => Loss::Unreduced {
            values,
            shape: req.unreduced_shape(),
        },
        (Reduction::None, _) => Loss::Unreduced {
            values: row_values,
            shape: req.unreduced_shape(),
        },
        _ => scalar(
            sums.into_iter()
                .fold((0.0, 0.0), |(m, z), (tm, tz)| (m + tm, z + tz)),
            divisors,
        ),
    };
    Output {
        loss,
        lse,
        grad: None,
        valid_rows: req.valid_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::{
        ROW_LANES, SHORT_ROW, exp, ln, short_stats, short_stats_portable, short_store,
        short_store_portable, sum_exp, sum_exp_portable,
    };

    /// The short-row step the CPU takes (on AVX2, `cpu::avx2`'s) and the portable one agree, for
    /// every row length up to 32: the same maxima, sums and their logs within 1e-6, each stored
    /// exp times its row's factor within 5e-7 of the other's; a masked row (max f32::MIN, sum
    /// 0), masked classes, and a NaN, which makes its row's sum and the exp at it NaN in both.
    /// Two steps taken together give the bits each gives alone.
    #[test]
    fn both_short_row_steps_agree() {
        for c in 1..=SHORT_ROW {
            let step = ROW_LANES * c;
            let mut rows: Vec<f32> = (0..2 * step)
                .map(|i| match (i / c, i % 7) {
                    (3 | 12, _) | (_, 4) if c > 1 => f32::NEG_INFINITY,
                    _ => ((i * 7919) % 2003) as f32 * 0.013 - 9.0,
                })
                .collect();
            if c > 1 {
                rows[5 * c + c / 2] = f32::NAN;
            }
            let factors = [1.0, 0.5, 3e-3, 7.0, 1.0, 0.25, 1e5, 0.9];
            let bits = |v: &[[f32; ROW_LANES]]| -> Vec<u32> {
                v.iter().flatten().map(|x| x.to_bits()).collect()
            };
            let mut pair = [[[0.0_f32; ROW_LANES]; SHORT_ROW]; 2];
            let both = short_stats(&rows, c, &mut pair, true);
            for (g, rows) in rows.chunks_exact(step).enumerate() {
                let mut ta = [[[0.0_f32; ROW_LANES]; SHORT_ROW]; 1];
                let mut tb = [[0.0_f32; ROW_LANES]; SHORT_ROW];
                let [a] = short_stats(rows, c, &mut ta, true);
                let b = short_stats_portable(rows, c, &mut tb, true);
                assert_eq!(bits(&a), bits(&both[g]), "{c} classes, step {g}");
                assert_eq!(
                    bits(&ta[0][..c]),
                    bits(&pair[g][..c]),
                    "{c} classes, step {g}"
                );
                let (mut oa, mut ob) = (vec![0.0_f32; step], vec![0.0_f32; step]);
                short_store(&ta[0], c, factors, &mut oa);
                short_store_portable(&tb, c, factors, &mut ob);
                // Within `tol` of y, relative, or with `absolute`, of 1.
                let close = |x: f32, y: f32, tol: f32, absolute: bool| {
                    let scale = if absolute { 1.0 } else { y.abs() };
                    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * scale
                };
                assert_eq!(a[0], b[0], "{c} classes: maxima");
                for j in 0..ROW_LANES {
                    let what = format!("{c} classes, step {g}, row {j}: {a:?} {b:?}");
                    assert!(close(a[1][j], b[1][j], 1e-6, false), "{what}");
                    // log s within 1e-6 of 1, as s is within 1e-6 of itself.
                    assert!(close(a[2][j], b[2][j], 1e-6, true), "{what}");
                }
                for (i, (ea, eb)) in oa.iter().zip(&ob).enumerate() {
                    assert!(
                        close(*ea, *eb, 5e-7, false),
                        "{c} classes, step {g}, element {i}: {ea} {eb}"
                    );
                }
                if c > 1 {
                    let masked = if g == 0 { 3 } else { 4 };
                    assert_eq!(
                        (a[0][masked], a[1][masked], a[2][masked]),
                        (f32::MIN, 0.0, f32::NEG_INFINITY)
                    );
                }
            }
            if c > 1 {
                assert!(both[0][1][5].is_nan(), "{c} classes");
            }
        }
    }

    /// The block loop the CPU takes (on AVX2, `cpu::avx2`'s) and the portable one agree: sums
    /// within 1e-6, each stored exp within 4e-7 of the other's, the same max of the next block;
    /// rows of −inf, one finite value, and every length around the vector steps.
    #[test]
    fn both_block_loops_agree() {
        for len in [0, 1, 15, 16, 17, 33, 2047, 2048] {
            for masked in [false, true] {
                let xs: Vec<f32> = (0..len)
                    .map(|i| match (masked, i % 5) {
                        (true, 0 | 2 | 3) => f32::NEG_INFINITY,
                        _ => ((i * 7919) % 2003) as f32 * -0.043,
                    })
                    .collect();
                let next: Vec<f32> = (0..len.min(100)).map(|i| (i % 17) as f32 - 3.5).collect();
                let (mut a, mut b) = (vec![0.0_f32; len], vec![0.0_f32; len]);
                let (sa, ma) = sum_exp(&xs, 1.25, Some(&mut a), &next);
                let (sb, mb) = sum_exp_portable(&xs, 1.25, Some(&mut b), &next);
                assert!((sa - sb).abs() <= 1e-6 * sb.max(1e-30), "{len}: {sa} {sb}");
                assert_eq!(ma, mb, "{len}");
                for (x, (ea, eb)) in xs.iter().zip(a.iter().zip(&b)) {
                    assert!(
                        (ea - eb).abs() <= 4e-7 * eb,
                        "{len}: e^({x} − 1.25): {ea} {eb}"
                    );
                }
            }
        }
    }

    /// Within 1 unit in the last place of ln x from the smallest normal f32 to the largest, with
    /// and without FMA; ln 0 = −inf, ln inf = inf, NaN kept.
    #[test]
    fn ln_is_within_an_ulp() {
        for fma in [false, true] {
            let mut worst = 0.0_f64;
            let mut x = f32::MIN_POSITIVE;
            while x < f32::MAX {
                for v in [x, x * 1.000_1, x * 1.414, x * 1.7, 1.0 + x.min(1.0)] {
                    let got = f64::from(ln(v, fma));
                    let want = f64::from(v).ln();
                    let ulp = f64::from(f32::EPSILON) * 2.0_f64.powf(want.abs().log2().floor());
                    worst = worst.max((got - want).abs() / ulp.max(f64::from(f32::MIN_POSITIVE)));
                }
                x *= 1.37;
            }
            assert!(worst <= 1.0, "fma {fma}: {worst} ulp");
            assert_eq!(ln(1.0, fma), 0.0);
            assert_eq!(ln(0.0, fma), f32::NEG_INFINITY);
            assert_eq!(ln(f32::INFINITY, fma), f32::INFINITY);
            assert!(ln(f32::NAN, fma).is_nan());
        }
    }

    /// Within 2 units in the last place of e^x over the whole non-positive range that it does not
    /// flush, with and without FMA; 0 below the flush point, and NaN kept.
    #[test]
    fn exp_is_within_a_few_ulp() {
        for fma in [false, true] {
            let mut worst = 0.0_f64;
            let mut x = -87.33_f32;
            while x <= 1.0 {
                let got = f64::from(exp(x, fma));
                let want = f64::from(x).exp();
                let ulp = f64::from(f32::EPSILON) * 2.0_f64.powf(want.log2().floor());
                worst = worst.max((got - want).abs() / ulp);
                x += 1.37e-3;
            }
            assert!(worst <= 2.0, "fma {fma}: {worst} ulp");
            // Subnormal results, within two of their units.
            let unit = f64::from(f32::from_bits(1));
            let mut x = -87.67_f32;
            while x < -87.33 {
                let error = (f64::from(exp(x, fma)) - f64::from(x).exp()).abs();
                assert!(error <= 2.0 * unit, "fma {fma}: e^{x} off by {error:e}");
                x += 1e-3;
            }
            for x in [
                -87.7,
                -88.0,
                -88.5,
                -100.0,
                -1e30,
                f32::MIN,
                f32::NEG_INFINITY,
            ] {
                assert_eq!(exp(x, fma), 0.0, "fma {fma}: e^{x}");
            }
            assert_eq!(exp(0.0, fma), 1.0);
            assert!(exp(f32::NAN, fma).is_nan());
            // NaNs with payload bits that would land in the exponent.
            for bits in [0x7fc0_0001_u32, 0x7fc0_01ff, 0xffc0_0100, 0x7f80_0001] {
                assert!(exp(f32::from_bits(bits), fma).is_nan(), "{bits:#x}");
            }
        }
    }
}
