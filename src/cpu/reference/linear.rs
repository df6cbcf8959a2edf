//! A linear request in the reference, row by row: each row's logits computed in float64 from H,
//! W and b, its cross-entropy and derivatives as the reference computes them on logits, and the
//! gradients of H, W and b summed in float64. It holds one row of logits, never [N, V].

use super::cross_entropy;
use super::row::{Row, cap};
use super::unreduced::Unreduced;
use crate::output::{LinearGradsMut, Output};
use crate::request::CheckedLinear;

/// Computes a checked linear request in float64, putting the gradients into `grads`' slices.
pub(crate) fn compute(req: &CheckedLinear, grads: LinearGradsMut) -> Output {
    let logits = &req.logits;
    let (n, v, d) = (logits.batch, logits.classes, req.head.dim);
    let (h, w) = (&req.head.hidden, &req.head.weight);
    let grad = grads.hidden.is_some() || grads.weight.is_some() || grads.bias.is_some();
    let mut options = logits.options;
    options.grad = grad;
    let divisors = logits.divisors();
    let (main_divisor, z_divisor) = divisors.unwrap_or((f64::INFINITY, f64::INFINITY));
    let mut u = Unreduced::default();
    let mut d_hidden = vec![0.0_f64; if grads.hidden.is_some() { n * d } else { 0 }];
    let mut d_weight = vec![0.0_f64; if grads.weight.is_some() { v * d } else { 0 }];
    let mut d_bias = vec![0.0_f64; if grads.bias.is_some() { v } else { 0 }];
    for r in 0..n {
        let raw: Vec<f64> = (0..v)
            .map(|k| {
                let dot: f64 = (0..d)
                    .map(|j| f64::from(h.get(r * d + j)) * f64::from(w.get(k * d + j)))
                    .sum();
                dot + req.head.bias.map_or(0.0, |b| f64::from(b[k]))
            })
            .collect();
        let req_r = logits.rows(r..r + 1, logits.input, options);
        let capped = Row::of(&req_r, raw.iter().map(|&x| cap(&req_r, x)).collect());
        let mut one = Unreduced::default();
        cross_entropy::row(&req_r, 0, &capped, &mut one);
        u.value(one.main[0], one.z[0]);
        u.lse.push(one.lse[0]);
        if !grad {
            continue;
        }
        for (k, &x) in raw.iter().enumerate() {
            // The soft cap's chain rule: d(c·tanh(x/c))/dx = 1 − tanh²(x/c).
            let chain = logits.options.softcap.map_or(1.0, |c| {
                let t = (x / f64::from(c)).tanh();
                1.0 - t * t
            });
            let g = (one.d_main[k] / main_divisor + one.d_z[k] / z_divisor) * chain;
            if g == 0.0 {
                continue;
            }
            for j in 0..d {
                if !d_hidden.is_empty() {
                    d_hidden[r * d + j] += g * f64::from(w.get(k * d + j));
                }
                if !d_weight.is_empty() {
                    d_weight[k * d + j] += g * f64::from(h.get(r * d + j));
                }
            }
            if !d_bias.is_empty() {
                d_bias[k] += g;
            }
        }
    }
    for (slice, sums) in [
        (grads.hidden, d_hidden),
        (grads.weight, d_weight),
        (grads.bias, d_bias),
    ] {
        if let Some(slice) = slice {
            for (out, sum) in slice.iter_mut().zip(sums) {
                *out = if grads.add {
                    *out + sum as f32
                } else {
                    sum as f32
                };
            }
        }
    }
    let loss = super::reduced(&u, logits, divisors);
    Output {
        loss,
        lse: logits
            .options
            .lse
            .then(|| u.lse.iter().map(|&v| v as f32).collect()),
        grad: None,
        valid_rows: logits.valid_rows,
        linear_grads: None,
    }
}
