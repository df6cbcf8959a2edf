//! Entropy in the reference (the twin of `entropy.wgsl`).

use super::row::Row;
use super::unreduced::Unreduced;
use crate::request::{Checked, InputKind};

/// x·log(y) with 0·log 0 = 0 (and 0·log y = 0 for any y), as `torch.xlogy`.
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 && !y.is_nan() {
        0.0
    } else {
        x * y.ln()
    }
}

/// H = −Σ q log q per row. Its derivative in x_j is −q_j (log q_j + H) on logits,
/// −(log x_j + 1) on probabilities and −e^x_j (x_j + 1) on log-probabilities.
pub(super) fn values(req: &Checked) -> Unreduced {
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        let row = Row::read(req, r);
        let h: f64 = row.log_q.iter().map(|&lq| -xlogy(lq.exp(), lq.exp())).sum();
        out.value(h, 0.0);
        out.lse.push(row.lse);
        if req.options.grad {
            for (&x, &lq) in row.x.iter().zip(&row.log_q) {
                let d = match req.options.input_kind {
                    InputKind::Logits if lq == f64::NEG_INFINITY => 0.0,
                    InputKind::Logits => -lq.exp() * (lq + h),
                    InputKind::Probs => -(x.ln() + 1.0),
                    InputKind::LogProbs => -x.exp() * (x + 1.0),
                };
                out.derivative(req, d, 0.0);
            }
        }
    }
    out
}
