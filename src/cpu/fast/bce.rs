//! Binary cross-entropy rows (the twin of `bce.wgsl`): each class an independent binary label,
//! elementwise for `none`.

use super::rows::{Row, class_weight};
use crate::request::{Checked, CheckedTarget, InputKind, Scales};

/// A row's value, Σ w·loss over its classes (in nats); and when asked its gradient and its
/// elementwise values, scaled by the main scale.
#[inline]
pub(super) fn row_loss(
    req: &Checked,
    row: &Row,
    scales: Scales,
    mut grad: Option<&mut [f32]>,
    mut values: Option<&mut [f32]>,
) -> f64 {
    let CheckedTarget::Dense(t) = &req.target else {
        unreachable!("checked")
    };
    let (r, c) = (row.r, req.classes);
    let logits = row.kind == InputKind::Logits;
    let t = &t[r * c..(r + 1) * c];
    let mut sum = 0.0_f64;
    for (k, &v) in row.x.iter().enumerate() {
        let (y, w) = (t[k], class_weight(req, k));
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
            values[k] = scales.main * w * loss;
        }
        if let Some(g) = grad.as_deref_mut() {
            g[k] = scales.main * w * d;
        }
    }
    sum
}
