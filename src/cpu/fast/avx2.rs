//! The fast path's block loop for CPUs with AVX2 and FMA (and no AVX-512): Σ e^(x − m) over a
//! block, with an exp that takes 2^(j/8) from an 8-entry table held in one register (`vpermps`)
//! instead of a longer polynomial. On AVX2 the portable loop's exp is bound by how many
//! multiply-adds wait on one another, not by how many there are: this one has 8 multiplies or
//! multiply-adds per 8 exps instead of 11, a shorter dependency chain, and its sums in registers.
//! The short-row step (eight rows of at most 32 classes, a row per lane; taken with AVX-512 too,
//! as its vectors are eight lanes wide) uses the same exp, and turns rows into columns and back
//! by 8 × 8 transposes in registers. Callers check [`Isa`](super::isa::Isa) first: every
//! function here needs AVX2 and FMA.
//!
//! e^d for d = x − m ≤ 0: d = (8n + j)·ln2/8 + r with |r| ≤ ln2/16, e^d = 2^n · 2^(j/8) · e^r, and
//! e^r ≈ 1 + r + c₂r² + c₃r³ (relative error 2.7e-8 on that range, fitted for f32 coefficients).
//! Within 2.7 units in the last place of e^d for results of at least 2^−126 (1.2e−38); below
//! d ≈ −87.38 (results under 1.1e−38) it is 0, where the portable exp keeps subnormal results
//! down to 8.5e−39. −inf gives 0, NaN stays NaN.

use std::arch::x86_64::{
    __m256, __m256i, _mm256_add_ps, _mm256_castps_si256, _mm256_castsi256_ps, _mm256_cmpgt_epi32,
    _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_max_ps, _mm256_mul_ps,
    _mm256_permute2f128_ps, _mm256_permutevar8x32_ps, _mm256_set1_epi32, _mm256_set1_ps,
    _mm256_setr_epi32, _mm256_setr_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_slli_epi32,
    _mm256_srli_epi32, _mm256_storeu_ps, _mm256_sub_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use super::math::{ln_lanes, max_inline};

/// Elements per step: two registers of independent exps.
const STEP: usize = 16;

/// The constants of [`exp_minus`], broadcast once per block.
struct Constants {
    low: __m256,
    eight_log2e: __m256,
    biased: __m256,
    ln2_8_hi: __m256,
    ln2_8_lo: __m256,
    c2: __m256,
    c3: __m256,
    one: __m256,
    table: __m256,
}

impl Constants {
    #[target_feature(enable = "avx2,fma")]
    fn new() -> Self {
        Constants {
            // At −88, k = round(−88·8/ln 2) = −1016, the least k whose 2^⌊k/8⌋ has biased
            // exponent bits ≥ 0.
            low: _mm256_set1_ps(-88.0),
            eight_log2e: _mm256_set1_ps(8.0 * std::f32::consts::LOG2_E),
            // Adding 1.5·2^23 + 1016 rounds d·8/ln 2 to the nearest integer k and leaves k + 1016
            // (0..=2032) in the low mantissa bits: j = k mod 8 in the lowest three, and
            // ⌊k/8⌋ + 127, 2^⌊k/8⌋'s biased exponent, in the eight above them.
            biased: _mm256_set1_ps(12_582_912.0 + 1016.0),
            // ln 2 / 8 split so that k times the high part is exact (12 trailing zero bits).
            ln2_8_hi: _mm256_set1_ps(-0.086_639_404),
            ln2_8_lo: _mm256_set1_ps(-3.993_273e-6),
            c2: _mm256_set1_ps(0.500_064_8),
            c3: _mm256_set1_ps(0.166_642_98),
            one: _mm256_set1_ps(1.0),
            // 2^(j/8), correctly rounded.
            table: _mm256_setr_ps(
                1.0,
                1.090_507_7,
                1.189_207_1,
                1.296_839_6,
                std::f32::consts::SQRT_2,
                1.542_210_8,
                1.681_792_9,
                1.834_008_1,
            ),
        }
    }
}

/// e^(x − m) in each lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_minus(x: __m256, m: __m256, c: &Constants) -> __m256 {
    // max(low, d) returns d when d is NaN.
    let d = _mm256_max_ps(c.low, _mm256_sub_ps(x, m));
    let t = _mm256_fmadd_ps(d, c.eight_log2e, c.biased);
    let k = _mm256_sub_ps(t, c.biased);
    let r = _mm256_fmadd_ps(k, c.ln2_8_lo, _mm256_fmadd_ps(k, c.ln2_8_hi, d));
    let r2 = _mm256_mul_ps(r, r);
    let p = _mm256_fmadd_ps(r2, _mm256_fmadd_ps(c.c3, r, c.c2), _mm256_add_ps(r, c.one));
    let bits = _mm256_castps_si256(t);
    // vpermps reads the lowest three bits of each lane's index; the eight above them, shifted
    // into the exponent field, make 2^⌊k/8⌋ (the bits of 1.5·2^23 above them shift out).
    let fraction = _mm256_permutevar8x32_ps(c.table, bits);
    let power = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(bits, 3), 23));
    _mm256_mul_ps(p, _mm256_mul_ps(fraction, power))
}

/// The lanes of a register.
#[target_feature(enable = "avx2,fma")]
fn lanes(a: __m256) -> [f32; 8] {
    let mut out = [0.0_f32; 8];
    // SAFETY: `out` holds 8 f32.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), a) };
    out
}

/// Σ e^(x − m) over one block, keeping each e^(x − m) in `out` when it is given (as long as
/// `xs`), and the max of `next`, read in the same loop (see the portable loop in `blocks`).
#[target_feature(enable = "avx2,fma")]
pub(super) fn sum_exp_ahead(
    xs: &[f32],
    m: f32,
    mut out: Option<&mut [f32]>,
    next: &[f32],
) -> (f32, f32) {
    let c = Constants::new();
    let m = _mm256_set1_ps(m);
    // One register for the sums and one for the maxima, so that neither spills: the constants
    // take ten of the sixteen.
    let mut sum = _mm256_setzero_ps();
    let mut ahead = _mm256_set1_ps(f32::NEG_INFINITY);
    let full = xs.len() / STEP;
    let fused = full.min(next.len() / STEP);
    for (i, block) in xs.chunks_exact(STEP).enumerate() {
        // SAFETY: `block` holds 16 f32, so do `out`'s and `next`'s slices of the same range
        // (`out` is as long as `xs`; `next` is read for i < fused only).
        unsafe {
            let e0 = exp_minus(_mm256_loadu_ps(block.as_ptr()), m, &c);
            let e1 = exp_minus(_mm256_loadu_ps(block.as_ptr().add(8)), m, &c);
            if let Some(out) = out.as_deref_mut() {
                let o = out[i * STEP..(i + 1) * STEP].as_mut_ptr();
                _mm256_storeu_ps(o, e0);
                _mm256_storeu_ps(o.add(8), e1);
            }
            sum = _mm256_add_ps(sum, _mm256_add_ps(e0, e1));
            if i < fused {
                let n = next[i * STEP..(i + 1) * STEP].as_ptr();
                // max(a, b) is a > b ? a : b: a NaN in the next block does not win here, though
                // it may hide the value paired with it (its row ends NaN through its exps either
                // way).
                let n = _mm256_max_ps(_mm256_loadu_ps(n.add(8)), _mm256_loadu_ps(n));
                ahead = _mm256_max_ps(n, ahead);
            }
        }
    }
    // The tail goes through the same step, padded with −inf, whose exp is 0.
    let tail = &xs[full * STEP..];
    let mut padded = [f32::NEG_INFINITY; STEP];
    padded[..tail.len()].copy_from_slice(tail);
    // SAFETY: `padded` holds 16 f32.
    let (e0, e1) = unsafe {
        (
            exp_minus(_mm256_loadu_ps(padded.as_ptr()), m, &c),
            exp_minus(_mm256_loadu_ps(padded.as_ptr().add(8)), m, &c),
        )
    };
    if let Some(out) = out {
        let (low, high) = out[full * STEP..].split_at_mut(tail.len().min(8));
        low.copy_from_slice(&lanes(e0)[..low.len()]);
        high.copy_from_slice(&lanes(e1)[..high.len()]);
    }
    let sums = lanes(_mm256_add_ps(sum, _mm256_add_ps(e0, e1)));
    let rest = max_inline(&next[fused * STEP..]);
    let ahead = lanes(ahead).iter().fold(rest, |a, &b| a.max(b));
    (sums.iter().sum(), ahead)
}

/// Rows of a short-row step: one per lane.
const ROWS: usize = 8;

/// The columns of an 8 × 8 block: lane j of `columns[k]` is `rows[j]`'s lane k.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose(rows: [__m256; ROWS]) -> [__m256; ROWS] {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
    let (a0, a1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
    let (a2, a3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
    let (a4, a5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
    let (a6, a7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
    let (b0, b1) = (
        _mm256_shuffle_ps::<0x44>(a0, a2),
        _mm256_shuffle_ps::<0xee>(a0, a2),
    );
    let (b2, b3) = (
        _mm256_shuffle_ps::<0x44>(a1, a3),
        _mm256_shuffle_ps::<0xee>(a1, a3),
    );
    let (b4, b5) = (
        _mm256_shuffle_ps::<0x44>(a4, a6),
        _mm256_shuffle_ps::<0xee>(a4, a6),
    );
    let (b6, b7) = (
        _mm256_shuffle_ps::<0x44>(a5, a7),
        _mm256_shuffle_ps::<0xee>(a5, a7),
    );
    [
        _mm256_permute2f128_ps::<0x20>(b0, b4),
        _mm256_permute2f128_ps::<0x20>(b1, b5),
        _mm256_permute2f128_ps::<0x20>(b2, b6),
        _mm256_permute2f128_ps::<0x20>(b3, b7),
        _mm256_permute2f128_ps::<0x31>(b0, b4),
        _mm256_permute2f128_ps::<0x31>(b1, b5),
        _mm256_permute2f128_ps::<0x31>(b2, b6),
        _mm256_permute2f128_ps::<0x31>(b3, b7),
    ]
}

/// The lanes below `width` (0..=8) set, for masked loads.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn below(width: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(width as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// The max (at least `f32::MIN`), Σ e^(x − max) and its log of each of `G` groups of 8 rows of
/// `c` ≤ 32 classes (group g's row j at `rows[(8g + j)·c..]`, `rows.len()` = 8Gc), a row per
/// lane, leaving each e^(x − max) in `t[g]` (column k in `t[g][k]`) for [`short_rows_store`]:
/// the portable step's work, with the rows turned into columns by 8 × 8 transposes in registers
/// instead of element by element, and the table exp. A group's work is one chain of dependent
/// steps (maxima, exps, sums, a log) longer than the core looks ahead, so the groups go through
/// each phase together.
#[target_feature(enable = "avx2,fma")]
pub(super) fn short_rows_stats<const G: usize>(
    rows: &[f32],
    c: usize,
    t: &mut [[[f32; ROWS]; 32]; G],
) -> [[[f32; ROWS]; 3]; G] {
    assert!(c <= 32 && rows.len() == G * ROWS * c);
    let mut m = [_mm256_set1_ps(f32::MIN); G];
    for first in (0..c).step_by(ROWS) {
        let width = (c - first).min(ROWS);
        let mask = below(width);
        for g in 0..G {
            let mut block = [m[g]; ROWS];
            for (j, row) in block.iter_mut().enumerate() {
                // SAFETY: group g's row j's elements first..first + width are inside `rows`
                // (first + width ≤ c), and a masked load reads no other lane.
                *row = unsafe {
                    _mm256_maskload_ps(rows.as_ptr().add((g * ROWS + j) * c + first), mask)
                };
            }
            for (k, column) in transpose(block).into_iter().enumerate().take(width) {
                // max(a, b) is a > b ? a : b: a NaN does not win (its row ends NaN through its
                // exp).
                m[g] = _mm256_max_ps(column, m[g]);
                // SAFETY: t[g][first + k] holds 8 f32.
                unsafe { _mm256_storeu_ps(t[g][first + k].as_mut_ptr(), column) };
            }
        }
    }
    let constants = Constants::new();
    let mut s = [_mm256_setzero_ps(); G];
    // Column k of every group in turn, so that the groups' exps interleave.
    #[allow(clippy::needless_range_loop)]
    for k in 0..c {
        for g in 0..G {
            let column = t[g][k].as_mut_ptr();
            // SAFETY: `column` holds 8 f32.
            unsafe {
                let e = exp_minus(_mm256_loadu_ps(column), m[g], &constants);
                s[g] = _mm256_add_ps(s[g], e);
                _mm256_storeu_ps(column, e);
            }
        }
    }
    let mut result = [[[0.0; ROWS]; 3]; G];
    for g in 0..G {
        let sum = lanes(s[g]);
        result[g] = [lanes(m[g]), sum, ln_lanes(sum, true)];
    }
    result
}

/// Writes the exps [`short_rows_stats`] left in `t`, each row's times its lane of `factors`,
/// into `out` (8 rows of `c` classes), turned back into rows by 8 × 8 transposes.
#[target_feature(enable = "avx2,fma")]
pub(super) fn short_rows_store(
    t: &[[f32; ROWS]; 32],
    c: usize,
    factors: [f32; ROWS],
    out: &mut [f32],
) {
    assert!(c <= t.len() && out.len() == ROWS * c);
    // SAFETY: `factors` holds 8 f32.
    let factors = unsafe { _mm256_loadu_ps(factors.as_ptr()) };
    for first in (0..c).step_by(ROWS) {
        let width = (c - first).min(ROWS);
        let mut block = [factors; ROWS];
        for (k, column) in block.iter_mut().enumerate() {
            // SAFETY: t[first + k] holds 8 f32 (first ≤ 24); columns from c on hold what an
            // earlier step left there, and reach no lane that is stored.
            *column = _mm256_mul_ps(unsafe { _mm256_loadu_ps(t[first + k].as_ptr()) }, factors);
        }
        for (j, row) in transpose(block).into_iter().enumerate() {
            let at = j * c + first;
            if width == ROWS {
                // SAFETY: row j's elements first..first + 8 are inside `out`.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(at), row) };
            } else {
                // Not a masked store, which AMD's cores take dozens of cycles over.
                out[at..at + width].copy_from_slice(&lanes(row)[..width]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sum_exp_ahead;

    fn avx2() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// e^(x − m) of each x, through the loop's store.
    fn exps(xs: &[f32], m: f32) -> Vec<f32> {
        let mut out = vec![f32::NAN; xs.len()];
        // SAFETY: the CPU has AVX2 and FMA (checked by the callers).
        unsafe { sum_exp_ahead(xs, m, Some(&mut out), &[]) };
        out
    }

    /// Within 2.7 units in the last place of e^d for results of at least 2^−126, over the whole
    /// range and for several maxima m; 0 below; −inf gives 0 and NaN stays NaN, whatever its
    /// payload.
    #[test]
    fn table_exp_is_within_a_few_ulp() {
        if !avx2() {
            return;
        }
        for m in [0.0_f32, 3.5, -40.25, 1e4] {
            let xs: Vec<f32> = (0..130_000).map(|i| m - 87.3 + i as f32 * 6.7e-4).collect();
            let xs: Vec<f32> = xs.into_iter().filter(|&x| x <= m).collect();
            let mut worst = 0.0_f64;
            for (x, got) in xs.iter().zip(exps(&xs, m)) {
                // Of x − m as the loop forms it, in f32 (it rounds where x and m are far apart,
                // for any exp).
                let want = f64::from(*x - m).exp();
                let ulp = f64::from(f32::EPSILON) * 2.0_f64.powf(want.log2().floor());
                worst = worst.max((f64::from(got) - want).abs() / ulp);
            }
            assert!(worst <= 2.7, "m {m}: {worst} ulp");
        }
        let tiny = exps(&[-87.3, -87.35], 0.0);
        assert!(tiny.iter().all(|&e| e > 0.0 && e < 1.3e-38), "{tiny:?}");
        let special = [
            0.0,
            -1e-8,
            -87.4,
            -88.0,
            -100.0,
            f32::MIN,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7fc0_01ff),
            f32::from_bits(0xffc0_0100),
            f32::from_bits(0x7f80_0001),
        ];
        let got = exps(&special, 0.0);
        assert_eq!(got[0], 1.0);
        assert!((got[1] - 1.0).abs() <= f32::EPSILON);
        for (x, e) in special[2..7].iter().zip(&got[2..7]) {
            assert_eq!(*e, 0.0, "e^{x}");
        }
        for (x, e) in special[7..].iter().zip(&got[7..]) {
            assert!(e.is_nan(), "e^{x}: {e}");
        }
    }

    /// The sum is the sum of the stored exps in lane order; the next block's max is its max
    /// (a NaN there does not win); every length from 0 to 3 steps and a bit.
    #[test]
    fn sums_and_maxima_match_the_stored_exps() {
        if !avx2() {
            return;
        }
        for len in 0..53 {
            let xs: Vec<f32> = (0..len).map(|i| -((i * 37 % 23) as f32) * 0.7).collect();
            let next: Vec<f32> = (0..len + 5)
                .map(|i| {
                    if i == 7 {
                        f32::NAN
                    } else {
                        (i * 13 % 29) as f32 - 9.0
                    }
                })
                .collect();
            let mut out = vec![0.0_f32; len];
            // SAFETY: checked above.
            let (s, ahead) = unsafe { sum_exp_ahead(&xs, 0.5, Some(&mut out), &next) };
            let (s_only, ahead_only) = unsafe { sum_exp_ahead(&xs, 0.5, None, &next) };
            assert_eq!(
                (s.to_bits(), ahead),
                (s_only.to_bits(), ahead_only),
                "{len}"
            );
            let want: f64 = xs.iter().map(|&x| (f64::from(x) - 0.5).exp()).sum();
            assert!(
                (f64::from(s) - want).abs() <= 1e-6 * want.max(1.0),
                "{len}: {s} {want}"
            );
            let stored: f64 = out.iter().map(|&e| f64::from(e)).sum();
            assert!(
                (stored - f64::from(s)).abs() <= 1e-6 * stored.max(1.0),
                "{len}"
            );
            let max = next
                .iter()
                .filter(|v| !v.is_nan())
                .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            assert_eq!(ahead, max, "{len}");
        }
    }
}
