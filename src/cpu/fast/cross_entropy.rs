//! Cross-entropy rows (the twin of `cross_entropy.wgsl`): −Σ w p′ log q with p′ the target
//! smoothed, plus the z-loss term; and the rows against one unweighted, unsmoothed class, which
//! need nothing but the row's statistics and x_y, computed from the short-row loop's statistics
//! or over their own logits.

use super::rows::{Row, RowResult, RowScratch, class_weight};
use super::softmax::{Logits, Softmax};
use crate::cpu::gradient;
use crate::request::{Checked, CheckedTarget, IGNORED, InputKind, Scales};

/// A row's z-loss term, z·lse².
#[inline]
fn z_term(lse: f64, z_loss: f32) -> f64 {
    f64::from(z_loss) * lse * lse
}

/// A row's main value (−Σ w p′ log q, in nats) and z term; and when asked its gradient, scaled
/// by `scales`. `None` for a row whose class target is ignored: it contributes nothing, and its
/// gradient is 0, even where its logits are not finite.
#[inline]
pub(super) fn row_loss(
    req: &Checked,
    row: &Row,
    scales: Scales,
    grad: Option<&mut [f32]>,
) -> Option<(f64, f64)> {
    let (r, c, x) = (row.r, req.classes, row.x);
    let eps = req.options.label_smoothing;
    let logits = row.kind == InputKind::Logits;
    let (y, p) = match &req.target {
        CheckedTarget::Classes(t) if t[r] == IGNORED => {
            if let Some(g) = grad {
                g.fill(0.0);
            }
            return None;
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
        gradient::smoothed_target(class_weight(req, k), p_k, eps, c as f32)
    };
    // a = Σ w p′ log q, each log q taken first (the max and log s off a logit; a probability's
    // log; a log-probability itself), not as Σ w p′ x − lse·Σ w p′, which cancels to nothing
    // when w p′ is huge or x near f32::MAX; b = Σ w p′. One unweighted, unsmoothed class needs no
    // loop.
    let one_hot = y.filter(|_| eps == 0.0 && req.weight.is_none());
    let (mut a, mut b) = (0.0_f64, 0.0_f64);
    if let Some(y) = one_hot {
        a = row.log_q(x[y]);
        b = 1.0;
    } else {
        for (k, &v) in x.iter().enumerate() {
            let w = wp(k);
            if w != 0.0 {
                a += f64::from(w) * row.log_q(v);
                b += f64::from(w);
            }
        }
    }
    let z = if logits {
        z_term(row.lse(), req.options.z_loss)
    } else {
        0.0
    };
    if let Some(g) = grad {
        if let Some(st) = row.softmax.as_ref().filter(|_| logits) {
            match one_hot {
                Some(y) => {
                    let (coef, g_y) = st.one_hot_terms(x[y], scales, req.options.z_loss);
                    st.stored_softmax(g, row.maxes, coef);
                    g[y] = g_y;
                }
                None => {
                    let z = st.z_coef(scales.z_loss, req.options.z_loss);
                    let b = b as f32;
                    st.stored_softmax(g, row.maxes, 1.0);
                    for (k, g) in g.iter_mut().enumerate() {
                        *g = gradient::cross_entropy(scales.main, b, *g, wp(k), z);
                    }
                }
            }
        } else {
            row.target_only_grad(g, scales.main, wp);
        }
    }
    Some((-a, z))
}

/// What a cross-entropy row on f32 logits contributes against one unweighted, unsmoothed class
/// (or none, when ignored), from its softmax statistics: −log q_y and its z-loss term, as
/// [`row_loss`] forms them, without its general path.
#[inline]
pub(super) fn one_hot_row(st: &Softmax, x_y: Option<f32>, z_loss: f32) -> RowResult {
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

/// [`one_hot_row`] for row r of logits `g` against class `y`, with its gradient (scaled by
/// `scales`) written over the logits, as [`row_loss`] writes it to a buffer of its own: x_y is read
/// first, and each block is copied, from cache, before its exps overwrite it. `after` is the
/// next row's first block, read ahead as every row reads it.
pub(super) fn one_hot_row_in_place(
    g: &mut [f32],
    y: u32,
    (r, after): (usize, &[f32]),
    scales: Scales,
    z_loss: f32,
    scratch: &mut RowScratch,
) -> RowResult {
    let RowScratch {
        input,
        maxes,
        ahead,
        ..
    } = scratch;
    let x_y = (y != IGNORED).then(|| g[y as usize]);
    maxes.clear();
    let logits = match x_y {
        Some(_) => Logits::InPlace(g, maxes, input),
        None => Logits::Read(g),
    };
    let st = Softmax::of(logits, false, r, after, ahead);
    let Some(x_y) = x_y else {
        // An ignored row's gradient is 0, even where its logits are not finite.
        g.fill(0.0);
        return one_hot_row(&st, None, z_loss);
    };
    let (coef, g_y) = st.one_hot_terms(x_y, scales, z_loss);
    st.stored_softmax(g, maxes, coef);
    g[y as usize] = g_y;
    one_hot_row(&st, Some(x_y), z_loss)
}
