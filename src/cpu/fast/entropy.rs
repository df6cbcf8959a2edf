//! Entropy rows (the twin of `entropy.wgsl`): H = −Σ q log q.

use super::rows::Row;
use crate::request::{InputKind, Scales};

/// A row's entropy (in nats); and when asked its gradient, scaled by the main scale.
#[inline]
pub(super) fn row_loss(row: &Row, scales: Scales, grad: Option<&mut [f32]>) -> f64 {
    let h = match (&row.softmax, row.kind) {
        (Some(st), _) => st.log_s - st.t / st.s,
        (None, InputKind::Probs) => row
            .x
            .iter()
            .map(|&q| {
                if q > 0.0 {
                    -f64::from(q) * f64::from(q.ln())
                } else {
                    0.0
                }
            })
            .sum(),
        (None, _) => row
            .x
            .iter()
            .map(|&lq| {
                let q = lq.exp();
                if q > 0.0 {
                    -f64::from(q) * f64::from(lq)
                } else {
                    0.0
                }
            })
            .sum(),
    };
    if let Some(g) = grad {
        let h = h as f32;
        let lse = row.lse() as f32;
        for (g, &v) in g.iter_mut().zip(row.x) {
            *g = match row.kind {
                InputKind::Logits => {
                    let lq = row
                        .softmax
                        .as_ref()
                        .map_or(v - lse, |st| st.log_q(v) as f32);
                    let q = lq.exp();
                    if q > 0.0 {
                        -scales.main * q * (lq + h)
                    } else {
                        0.0
                    }
                }
                InputKind::Probs => -scales.main * (v.ln() + 1.0),
                InputKind::LogProbs => -scales.main * v.exp() * (v + 1.0),
            };
        }
    }
    h
}
