//! Binary cross-entropy in the reference (the twin of `bce.wgsl`).

use super::row::Row;
use super::unreduced::Unreduced;
use crate::request::{Checked, CheckedTarget, InputKind};

/// log1p(exp(−|x|)) + max(−x, 0) = −log σ(x), without overflow.
pub(super) fn neg_log_sigmoid(x: f64) -> f64 {
    (-x.abs()).exp().ln_1p() + (-x).max(0.0)
}

/// Elementwise w·[pw·y·(−log σ(x)) + (1 − y)·(−log(1 − σ(x)))] on logits, with derivative
/// w·[σ(x)(1 + (pw − 1)y) − pw·y]; −w·[y log x + (1 − y) log(1 − x)] on probabilities (logs clamped
/// at −100, as PyTorch), with PyTorch's derivative w·(x − y) / max(x(1 − x), 1e-12).
pub(super) fn values(req: &Checked) -> Unreduced {
    let CheckedTarget::Dense(t) = req.target else {
        unreachable!("checked: BCE has dense labels")
    };
    let c = req.classes;
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        let row = Row::read(req, r);
        for k in 0..c {
            let (x, y, w) = (row.x[k], f64::from(t[r * c + k]), req.class_weight(k));
            let (loss, d) = match req.options.input_kind {
                InputKind::Logits => {
                    let pw = req.pos_weight.map_or(1.0, |pw| f64::from(pw[k]));
                    let sigmoid = 1.0 / (1.0 + (-x).exp());
                    (
                        pw * y * neg_log_sigmoid(x) + (1.0 - y) * neg_log_sigmoid(-x),
                        sigmoid * (1.0 + (pw - 1.0) * y) - pw * y,
                    )
                }
                _ => (
                    -(y * x.ln().max(-100.0) + (1.0 - y) * (1.0 - x).ln().max(-100.0)),
                    (x - y) / (x * (1.0 - x)).max(1e-12),
                ),
            };
            out.value(w * loss, 0.0);
            out.derivative(req, w * d, 0.0);
        }
    }
    out
}
