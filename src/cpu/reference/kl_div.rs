//! KL divergence in the reference (the twin of `kl_div.wgsl`).

use super::row::Row;
use super::unreduced::Unreduced;
use crate::request::{Checked, CheckedTarget, InputKind};

/// Elementwise p (log p − log q), 0 where p = 0. Its derivative in x_j is
/// (Σ p)·softmax_j − p_j on logits, −p_j on log-probabilities and −p_j / x_j on probabilities.
pub(super) fn values(req: &Checked) -> Unreduced {
    let CheckedTarget::Dense(t) = req.target else {
        unreachable!("checked: KL has a dense target")
    };
    let c = req.classes;
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        let row = Row::read(req, r);
        let p: Vec<f64> = (0..c)
            .map(|k| {
                let t = f64::from(t[r * c + k]);
                if req.options.log_target { t.exp() } else { t }
            })
            .collect();
        for (&p, &log_q) in p.iter().zip(&row.log_q) {
            out.value(if p == 0.0 { 0.0 } else { p * (p.ln() - log_q) }, 0.0);
        }
        out.lse.push(row.lse);
        if req.options.grad {
            let total: f64 = p.iter().sum();
            let q = row.softmax();
            for k in 0..c {
                let d = match req.options.input_kind {
                    InputKind::Logits => total * q[k] - p[k],
                    InputKind::LogProbs => -p[k],
                    InputKind::Probs if p[k] == 0.0 => 0.0,
                    InputKind::Probs => -p[k] / row.x[k],
                };
                out.derivative(req, d, 0.0);
            }
        }
    }
    out
}
