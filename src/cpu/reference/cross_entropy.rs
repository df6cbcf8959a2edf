//! Cross-entropy in the reference (the twin of `cross_entropy.wgsl`).

use super::row::Row;
use super::unreduced::Unreduced;
use crate::request::{Checked, CheckedTarget, IGNORED, InputKind};

/// −Σ w p′ log q with p′ = (1 − ε)p + ε/C, plus s·lse². Its derivative in x′_j is
/// (Σ w p′)·softmax_j − w_j p′_j on logits (and 2s·lse·softmax_j for the z-loss), −w_j p′_j on
/// log-probabilities, and −w_j p′_j / x_j on probabilities.
pub(super) fn values(req: &Checked) -> Unreduced {
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        row(req, r, &Row::read(req, r), &mut out);
    }
    out
}

/// Appends row r's value, z term, log-sum-exp and (when asked) derivatives to `out`, the row's
/// input being `row`.
pub(super) fn row(req: &Checked, r: usize, row: &Row, out: &mut Unreduced) {
    let c = req.classes;
    let eps = f64::from(req.options.label_smoothing);
    let s = f64::from(req.options.z_loss);
    // The target distribution before smoothing, or None for an ignored row.
    let p: Option<Vec<f64>> = match &req.target {
        CheckedTarget::Classes(_) => class_target(req, r).map(|y| {
            let mut p = vec![0.0; c];
            p[y] = 1.0;
            p
        }),
        CheckedTarget::Dense(t) => Some(
            t[r * c..(r + 1) * c]
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
        ),
        CheckedTarget::None => unreachable!("checked: cross-entropy has a target"),
    };
    let Some(p) = p else {
        out.value(0.0, 0.0);
        out.lse.push(row.lse);
        (0..c).for_each(|_| out.derivative(req, 0.0, 0.0));
        return;
    };
    // w_k p′_k
    let wp: Vec<f64> = (0..c)
        .map(|k| req.class_weight(k) * ((1.0 - eps) * p[k] + eps / c as f64))
        .collect();
    let loss: f64 = (0..c)
        .map(|k| {
            if wp[k] == 0.0 {
                0.0
            } else {
                -wp[k] * row.log_q[k]
            }
        })
        .sum();
    let z = s * row.lse * row.lse;
    out.value(loss, z);
    out.lse.push(row.lse);
    if req.options.grad {
        let total: f64 = wp.iter().sum();
        let q = row.softmax();
        for k in 0..c {
            let (d_main, d_z) = match req.options.input_kind {
                InputKind::Logits => (total * q[k] - wp[k], 2.0 * s * row.lse * q[k]),
                InputKind::LogProbs => (-wp[k], 0.0),
                InputKind::Probs if wp[k] == 0.0 => (0.0, 0.0),
                InputKind::Probs => (-wp[k] / row.x[k], 0.0),
            };
            out.derivative(req, d_main, d_z);
        }
    }
}

/// Row r's class target, `None` when it is ignored or the target is dense.
fn class_target(req: &Checked, r: usize) -> Option<usize> {
    match &req.target {
        CheckedTarget::Classes(t) => (t[r] != IGNORED).then_some(t[r] as usize),
        _ => None,
    }
}
