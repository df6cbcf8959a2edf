//! KL divergence rows (the twin of `kl_div.wgsl`): Σ p (log p − log q), elementwise for `none`.

use super::rows::Row;
use crate::request::{Checked, CheckedTarget, InputKind, Scales};

/// A row's value, Σ p (log p − log q) over the classes where p > 0 (in nats); and when asked
/// its gradient and its elementwise values, scaled by the main scale.
#[inline]
pub(super) fn row_loss(
    req: &Checked,
    row: &Row,
    scales: Scales,
    grad: Option<&mut [f32]>,
    mut values: Option<&mut [f32]>,
) -> f64 {
    let CheckedTarget::Dense(t) = &req.target else {
        unreachable!("checked")
    };
    let (r, c) = (row.r, req.classes);
    let t = &t[r * c..(r + 1) * c];
    let p = |k: usize| {
        if req.options.log_target {
            t[k].exp()
        } else {
            t[k]
        }
    };
    let (mut a, mut b, mut plogp) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (k, &v) in row.x.iter().enumerate() {
        let p_k = p(k);
        if p_k > 0.0 {
            let log_p = if req.options.log_target {
                t[k]
            } else {
                p_k.ln()
            };
            // log q taken first, as for cross-entropy.
            let log_q_k = row.log_q(v);
            a += f64::from(p_k) * log_q_k;
            b += f64::from(p_k);
            plogp += f64::from(p_k) * f64::from(log_p);
            if let Some(values) = values.as_deref_mut() {
                values[k] = scales.main * p_k * (log_p - log_q_k as f32);
            }
        } else if let Some(values) = values.as_deref_mut() {
            values[k] = 0.0;
        }
    }
    if let Some(g) = grad {
        if let Some(st) = row
            .softmax
            .as_ref()
            .filter(|_| row.kind == InputKind::Logits)
        {
            st.stored_softmax(g, row.maxes, scales.main * b as f32);
            for (k, g) in g.iter_mut().enumerate() {
                *g -= scales.main * p(k);
            }
        } else {
            row.target_only_grad(g, scales.main, p);
        }
    }
    plogp - a
}
