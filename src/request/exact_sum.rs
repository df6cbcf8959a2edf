//! The scales of a mean over class targets, 1 / (ln(base) · Σ w_y) and 1 / (counted rows), as
//! the f32 nearest the exact value (but within 2^-37 of a rounding midpoint: see
//! [`ExactSum::reciprocal`]).
//!
//! The sum is exact: each weight is a non-negative finite f32, an integer number of 2^-149 (the
//! smallest subnormal) below 2^278, so a fixed-point integer of [`WORDS`] 32-bit words holds the
//! sum of up to 2^32 of them with no rounding, in any order. The reciprocal is then computed from
//! that integer with integer operations only. `device_scales` in `targets.wgsl` follows the same
//! steps on the device, so a mean over class targets that only the device holds gets the same
//! scales, bit for bit, as the same request on the host; no float reassociation or division
//! accuracy of the shader compiler can change them.

/// 32-bit words of an [`ExactSum`]: f32 values span bits 0 to 277 in units of 2^-149; 32 more
/// bits hold the sum of 2^32 of them.
pub(crate) const WORDS: usize = 10;

/// The bit of an [`ExactSum`] that stands for 1.
pub(crate) const ONE_AT: u32 = 149;

/// A sum of non-negative finite f32 values (or of counts), held exactly as an integer number of
/// 2^-149, in little-endian 32-bit words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExactSum([u32; WORDS]);

impl ExactSum {
    /// The sum of `n` ones.
    pub fn count(n: usize) -> Self {
        let mut sum = Self::default();
        sum.add_at(n as u64, ONE_AT);
        sum
    }

    /// Adds `w`, a finite f32 ≥ 0 (the request's checks refuse other weights).
    pub fn add(&mut self, w: f32) {
        debug_assert!(w.is_finite() && w >= 0.0, "{w} is not a weight");
        let bits = w.to_bits() & 0x7fff_ffff;
        let exponent = bits >> 23;
        let hidden = if exponent > 0 { 0x80_0000 } else { 0 };
        self.add_at(u64::from(bits & 0x7f_ffff | hidden), exponent.max(1) - 1);
    }

    /// Adds `value` · 2^`at` units.
    fn add_at(&mut self, value: u64, at: u32) {
        let mut word = (at / 32) as usize;
        let mut carry = u128::from(value) << (at % 32);
        while carry != 0 {
            let sum = u128::from(self.0[word]) + (carry & 0xffff_ffff);
            self.0[word] = sum as u32;
            carry = (carry >> 32) + (sum >> 32);
            word += 1;
        }
    }

    /// The f32 nearest 1 / (`ln` · the sum), for a normal `ln` > 0: +inf for a sum of 0, and
    /// down to subnormals and 0 for huge sums. It is the correctly rounded value unless the
    /// exact one lies within 2^-37 of its 25-bit quotient's ulp from a rounding midpoint, where
    /// the 64-bit truncations below may tip it to the other neighbour; the device makes the same
    /// choice.
    pub fn reciprocal(&self, ln: f64) -> f32 {
        let Some(top) = (0..WORDS).rev().find(|&i| self.0[i] != 0) else {
            return f32::INFINITY;
        };
        let t = 32 * top as i32 + 31 - self.0[top].leading_zeros() as i32;
        // The sum's top 64 bits, and whether any bit below them is set.
        let sum_top = u64::from(self.bits(t - 31)) << 32 | u64::from(self.bits(t - 63));
        let sum_rest = self.any_below(t - 63);
        // ln's 53-bit significand and exponent.
        let ln_bits = ln.to_bits();
        let ln_exponent = ((ln_bits >> 52) & 0x7ff) as i32 - 1075;
        let ln_significand = ln_bits & ((1 << 52) - 1) | 1 << 52;
        // ln · sum ≈ d · 2^exponent, d's top 64 bits of the 116- or 117-bit product.
        let product = u128::from(ln_significand) * u128::from(sum_top);
        let shift = 127 - product.leading_zeros() as i32 - 63;
        let d = (product >> shift) as u64;
        let rest = sum_rest || product & ((1 << shift) - 1) != 0;
        let exponent = shift + ln_exponent + t - 63 - ONE_AT as i32;
        // 2^89 / d lies in (2^25, 2^26].
        let dividend = 1_u128 << 89;
        let quotient = (dividend / u128::from(d)) as u32;
        let inexact = rest || !dividend.is_multiple_of(u128::from(d));
        round_to_f32(quotient, inexact, -89 - exponent)
    }

    /// Bits `from .. from + 32` of the sum (0 outside it).
    fn bits(&self, from: i32) -> u32 {
        let word = |i: i32| usize::try_from(i).ok().and_then(|i| self.0.get(i)).copied();
        let (index, shift) = (from.div_euclid(32), from.rem_euclid(32));
        let low = word(index).unwrap_or(0) >> shift;
        let high = if shift == 0 {
            0
        } else {
            word(index + 1).unwrap_or(0) << (32 - shift)
        };
        low | high
    }

    /// Whether any bit below `bit` is set.
    fn any_below(&self, bit: i32) -> bool {
        if bit <= 0 {
            return false;
        }
        let (index, shift) = ((bit / 32) as usize, bit % 32);
        self.0[..index.min(WORDS)].iter().any(|&w| w != 0)
            || (index < WORDS && self.0[index] & ((1 << shift) - 1) != 0)
    }
}

/// The f32 nearest `q` · 2^`exponent`, rounding ties to even, where `inexact` says the exact
/// value is a little above `q` (0 < q < 2^27): overflow gives +inf, underflow subnormals or 0.
fn round_to_f32(q: u32, inexact: bool, exponent: i32) -> f32 {
    let top = 31 - q.leading_zeros() as i32;
    // The value's own exponent, and the bits of q below f32's precision there.
    let unbiased = top + exponent;
    if unbiased > 127 {
        return f32::INFINITY;
    }
    let dropped = top - 23 + (-126 - unbiased).max(0);
    if dropped > top + 1 {
        return 0.0;
    }
    let half = 1_u32 << (dropped - 1);
    let kept = q >> dropped;
    let rest = q & ((half << 1) - 1);
    let up = rest > half || (rest == half && (inexact || kept & 1 == 1));
    let kept = kept + u32::from(up);
    // A normal value's kept bits include the hidden bit, so rounding up to 2^24 carries into
    // the exponent; a subnormal's are its bits.
    let bits = if unbiased >= -126 {
        ((unbiased + 126) as u32) << 23
    } else {
        0
    };
    f32::from_bits((bits + kept).min(0x7f80_0000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sum_of(weights: &[f32]) -> ExactSum {
        let mut sum = ExactSum::default();
        weights.iter().for_each(|&w| sum.add(w));
        sum
    }

    #[test]
    fn sums_are_exact_whatever_the_magnitudes() {
        let tiny = f32::from_bits(1);
        let mut sum = sum_of(&[f32::MAX, tiny, f32::MAX, tiny]);
        // 2 · MAX + 2 · 2^-149: the top word holds the carry, the lowest the two units.
        assert_eq!(sum.0[0], 2);
        sum.add(0.0);
        assert_eq!(sum, sum_of(&[tiny, f32::MAX, tiny, f32::MAX]));
        assert_eq!(ExactSum::count(3), sum_of(&[1.0, 1.0, 1.0]));
        assert_eq!(ExactSum::count(6), sum_of(&[0.5, 2.5, 3.0]));
        let halves = sum_of(&[f32::from_bits(1 << 22); 2]);
        assert_eq!(halves, sum_of(&[f32::MIN_POSITIVE]));
    }

    #[test]
    fn reciprocals_are_the_nearest_f32() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ca1e);
        for ln in [1.0, std::f64::consts::LN_2, std::f64::consts::LN_10] {
            for n in 1..2000 {
                let expected = (1.0 / (ln * n as f64)) as f32;
                assert_eq!(
                    ExactSum::count(n).reciprocal(ln),
                    expected,
                    "n = {n}, ln = {ln}"
                );
            }
            for _ in 0..20_000 {
                // Sums that f64 holds exactly: weights within 2^20 of each other, ≤ 64 rows.
                let scale = 2_f32.powi(rng.random_range(-100..90));
                let rows = rng.random_range(1..64);
                let weights: Vec<f32> = (0..rows)
                    .map(|_| scale * rng.random_range(1.0..1_048_576.0_f32))
                    .collect();
                let exact: f64 = weights.iter().map(|&w| f64::from(w)).sum();
                let expected = (1.0 / (ln * exact)) as f32;
                let got = sum_of(&weights).reciprocal(ln);
                assert_eq!(got, expected, "Σ = {exact:e}, ln = {ln}");
            }
        }
    }

    #[test]
    fn reciprocals_overflow_and_underflow_as_f32_does() {
        assert_eq!(ExactSum::default().reciprocal(1.0), f32::INFINITY);
        assert_eq!(sum_of(&[f32::from_bits(1)]).reciprocal(1.0), f32::INFINITY);
        // Subnormal results, and results that round to 0 or up to the smallest subnormal.
        for rows in [1, 2, 3, 1000, 1 << 20, 1 << 24] {
            for w in [f32::MAX, 1e38, 3e37, 1e30] {
                let sum = ExactSum::count(rows);
                let mut weighted = ExactSum::default();
                (0..rows).for_each(|_| weighted.add(w));
                assert_eq!(sum.reciprocal(1.0), (1.0 / rows as f64) as f32);
                let exact = f64::from(w) * rows as f64;
                assert_eq!(
                    weighted.reciprocal(1.0),
                    (1.0 / exact) as f32,
                    "{rows} × {w}"
                );
            }
        }
        // Exactly representable: powers of two, including the smallest normal's reciprocal.
        assert_eq!(ExactSum::count(1 << 20).reciprocal(1.0), 2_f32.powi(-20));
        assert_eq!(
            sum_of(&[2_f32.powi(126)]).reciprocal(1.0),
            f32::MIN_POSITIVE
        );
        assert_eq!(
            sum_of(&[2_f32.powi(127)]).reciprocal(1.0),
            f32::MIN_POSITIVE / 2.0
        );
        assert_eq!(
            sum_of(&[f32::MIN_POSITIVE]).reciprocal(1.0),
            2_f32.powi(126)
        );
    }
}
