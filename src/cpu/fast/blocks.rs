//! The loops over one block of a row: its max; Σ e^(x − m), keeping each exp when asked, with the
//! next block's max read in the same loop; Σ e^(x − m)·(x − m) for entropy; a block times a
//! factor; and the probe's plain sum.

use multiversion::multiversion;
use multiversion::target::target_cfg;

#[cfg(target_arch = "x86_64")]
use super::avx2;
#[cfg(target_arch = "x86_64")]
use super::isa::Isa;
use super::math::{LANES, exp, max_inline};

/// Elements per block of the online softmax: 8 KiB of f32, well inside L1.
pub(super) const BLOCK: usize = 2048;

/// The largest value of a slice.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
pub(super) fn max_of(xs: &[f32]) -> f32 {
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
/// gradient), and the max of the next block: by `avx2`'s loop and its table exp where
/// [`Isa::avx2_block_loop`] says so, elsewhere by the portable loop.
pub(super) fn sum_exp(xs: &[f32], m: f32, out: Option<&mut [f32]>, next: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if Isa::get().avx2_block_loop() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { avx2::sum_exp_ahead(xs, m, out, next) };
    }
    sum_exp_portable(xs, m, out, next)
}

/// [`sum_exp`] by the portable loop, for the CPU found at run time (AVX2 with FMA takes
/// `avx2`'s).
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
pub(super) fn multiply(g: &mut [f32], factor: f32) {
    for v in g {
        *v *= factor;
    }
}

/// Σ e^(x − m) and Σ e^(x − m)·(x − m) over one block, for entropy.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
pub(super) fn sum_exp_t(xs: &[f32], m: f32) -> (f32, f32) {
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

/// Σ x over a slice, in vector lanes.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
pub(super) fn sum_of(xs: &[f32]) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::{sum_exp, sum_exp_portable};

    /// The block loop the CPU takes (on AVX2, `avx2`'s) and the portable one agree: sums
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
}
