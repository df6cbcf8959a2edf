//! The short-row step: the softmax statistics of rows of at most `SHORT_ROW` classes, eight rows
//! at a time, a row per vector lane (on AVX2 turned into columns and back by 8 × 8 transposes in
//! registers), with what the gradient asks for: each row's exps, or the whole gradient of a
//! cross-entropy against unweighted, unsmoothed class targets.

use multiversion::multiversion;
use multiversion::target::target_cfg;

#[cfg(target_arch = "x86_64")]
use super::avx2;
#[cfg(target_arch = "x86_64")]
use super::isa::Isa;
use super::math::{exp, ln_lanes};
use super::softmax::Softmax;
use crate::request::{IGNORED, Scales};

/// Rows of at most this many classes get their softmax statistics eight rows at a time, a row
/// per vector lane, instead of a row at a time.
pub(super) const SHORT_ROW: usize = 32;
/// Rows per step of the short-row loop.
const ROW_LANES: usize = 8;
/// Steps of the short-row loop whose statistics are taken together, so that their chains of
/// dependent work interleave.
const STEPS_TOGETHER: usize = 2;

/// The max, Σ e^(x − max) and its log of each of `ROW_LANES` rows of `c` classes (rows[j·c + k]),
/// a row per lane, leaving each e^(x − max) in `t` (column k in `t[k]`) for
/// [`short_store`]. The max is at least `f32::MIN`, as in [`Softmax::of`]. `t`'s first `c`
/// columns are written before they are read, so that it is made once per call, not zeroed
/// every step.
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

/// The statistics of `G` short-row steps (`rows` holds G·8 rows), the exps of step g left in
/// `t[g]`: `avx2`'s, which takes the steps' phases together, where [`Isa::avx2_short_rows`]
/// says so, else [`short_stats_portable`] step by step.
#[inline(always)]
fn short_stats<const G: usize>(
    rows: &[f32],
    c: usize,
    t: &mut [[[f32; ROW_LANES]; SHORT_ROW]; G],
    fma: bool,
) -> [[[f32; ROW_LANES]; 3]; G] {
    #[cfg(target_arch = "x86_64")]
    if Isa::get().avx2_short_rows() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { avx2::short_rows_stats(rows, c, t) };
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

/// A short-row step's store: [`short_store_portable`], or `avx2`'s where
/// [`Isa::avx2_short_rows`] says so.
#[inline(always)]
fn short_store(
    t: &[[f32; ROW_LANES]; SHORT_ROW],
    c: usize,
    factors: [f32; ROW_LANES],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if Isa::get().avx2_short_rows() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { avx2::short_rows_store(t, c, factors, out) };
    }
    short_store_portable(t, c, factors, out);
}

/// What the short-row loop writes into a task's gradient.
pub(super) enum ShortGrad<'a> {
    /// Each e^(x − max), which the row's loss family turns into the gradient.
    Exps(&'a mut [f32]),
    /// The gradient itself, of a cross-entropy against one unweighted, unsmoothed class per row
    /// (the task's `targets`), scaled by `scales`, as the cross-entropy row would write it.
    OneHot {
        grad: &'a mut [f32],
        targets: &'a [u32],
        scales: Scales,
        z_loss: f32,
    },
}

/// The softmax statistics (max, sum, log of the sum) of every row of `x` ([rows, c],
/// c ≤ `SHORT_ROW`), eight rows at a time, a row per lane, and what `grad` asks for: each step by
/// `avx2`'s where the CPU has AVX2 and FMA, by the portable one elsewhere. Rows left over take
/// the same step, padded with rows of −inf.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
pub(super) fn short_rows(
    x: &[f32],
    c: usize,
    mut grad: Option<ShortGrad>,
    stats: &mut Vec<[f32; 3]>,
) {
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
                scales,
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
                    let (coef, g_y) = st.one_hot_terms(x_y[j], *scales, *z_loss);
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

/// Softmax statistics of rows `first..first + stats.len()`, from the short-row loop.
#[derive(Default)]
pub(super) struct ShortStats {
    pub first: usize,
    pub stats: Vec<[f32; 3]>,
}

impl ShortStats {
    /// Row r's statistics, when the short-row loop computed them.
    #[inline]
    pub fn softmax(&self, r: usize) -> Option<Softmax> {
        let &[m, s, log_s] = self.stats.get(r.checked_sub(self.first)?)?;
        Some(Softmax::short(m, s, log_s))
    }
}

#[cfg(test)]
mod tests {
    use super::{
        ROW_LANES, SHORT_ROW, short_stats, short_stats_portable, short_store, short_store_portable,
    };

    /// The short-row step the CPU takes (on AVX2, `avx2`'s) and the portable one agree, for
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
}
