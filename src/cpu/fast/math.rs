//! The fast path's vector math, written so that loops over it vectorize: a·b + c, e^x and ln x
//! (each given `fma`, a constant in each CPU version it is compiled into), and the max of a
//! slice. Everything here is inlined into its callers' CPU versions.

/// Lanes per step of the vector loops: two AVX2 registers (one AVX-512, four NEON) of independent
/// exps per step; more would spill registers on AVX2.
pub(super) const LANES: usize = 16;

/// a·b + c, fused where the CPU version being compiled has FMA (a constant in each
/// `multiversion` clone, so the branch folds away; without FMA, `mul_add` would call libm).
#[inline(always)]
pub(super) fn mul_add(a: f32, b: f32, c: f32, fma: bool) -> f32 {
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
pub(super) fn exp(x: f32, fma: bool) -> f32 {
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
    let power = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits()) << 23);
    p * power
}

/// ln x, branch-free so that loops over it vectorize (musl's `logf`, within 1 ulp): x = 2^k·(1 + f)
/// with 1 + f in [√½, √2), and ln(1 + f) from s = f / (2 + f) by a degree-4 polynomial in s².
/// ln 0 = −inf, ln +inf = +inf, NaN stays NaN; x must not be negative or subnormal (the softmax
/// sums it takes are 0 or at least 1).
#[inline(always)]
pub(super) fn ln(x: f32, fma: bool) -> f32 {
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

/// ln of each lane, for the sums of a short-row step (a row per lane).
#[inline(always)]
pub(super) fn ln_lanes<const N: usize>(s: [f32; N], fma: bool) -> [f32; N] {
    // A loop, not `map`: a closure would not be compiled for the caller's CPU features.
    let mut log_s = [0.0_f32; N];
    for j in 0..N {
        log_s[j] = ln(s[j], fma);
    }
    log_s
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

#[cfg(test)]
mod tests {
    use super::{exp, ln};

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
