//! A linear request in the reference, row by row: each row's logits computed in float64 from H,
//! W and b, its cross-entropy and derivatives as the reference computes them on logits, and the
//! gradients of H, W and b summed in float64. It holds one row of logits, never [N, V]. A
//! vocabulary shard of a head takes each row's logits by the CPU's float64 shard passes
//! ([`shard`]), and sums its gradients as the whole head's are summed.

use super::cross_entropy;
use super::row::{Row, cap};
use super::unreduced::Unreduced;
use crate::cpu::shard;
use crate::output::{LinearGradsMut, Output};
use crate::request::{CheckedLinear, ROW_STATS};

/// Computes a checked linear request in float64, putting the gradients into `grads`' slices.
pub(crate) fn compute(req: &CheckedLinear, grads: LinearGradsMut) -> Output {
    let logits = &req.logits;
    let grad = grads.hidden.is_some() || grads.weight.is_some() || grads.bias.is_some();
    let mut options = logits.options;
    options.grad = grad;
    let divisors = logits.divisors();
    let (main_divisor, z_divisor) = divisors.unwrap_or((f64::INFINITY, f64::INFINITY));
    let mut u = Unreduced::default();
    let mut sums = Sums::new(req, &grads);
    for r in 0..logits.batch {
        let raw = row_logits(req, r);
        let req_r = logits.rows(r..r + 1, logits.input, options);
        let capped = Row::of(&req_r, raw.iter().map(|&x| cap(&req_r, x)).collect());
        let mut one = Unreduced::default();
        cross_entropy::row(&req_r, 0, &capped, &mut one);
        u.value(one.main[0], one.z[0]);
        u.lse.push(one.lse[0]);
        if !grad {
            continue;
        }
        sums.add_row(
            req,
            r,
            raw.iter().enumerate().map(|(k, &x)| {
                // The soft cap's chain rule: d(c·tanh(x/c))/dx = 1 − tanh²(x/c).
                let chain = logits.options.softcap.map_or(1.0, |c| {
                    let t = (x / f64::from(c)).tanh();
                    1.0 - t * t
                });
                (one.d_main[k] / main_divisor + one.d_z[k] / z_divisor) * chain
            }),
        );
    }
    sums.write(grads);
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

/// A vocabulary shard of a head's statistics, `ROW_STATS` values per row (see
/// [`shard::row_stats`]), each row's logits computed in float64.
pub(crate) fn shard_stats(req: &CheckedLinear) -> Vec<f32> {
    let mut out = vec![0.0_f32; req.logits.batch * ROW_STATS];
    for (r, stats) in out.chunks_exact_mut(ROW_STATS).enumerate() {
        shard::row_stats(&req.logits, r, &capped_logits(req, r), stats);
    }
    out
}

/// A vocabulary shard of a head's gradients into `grads`' slices: its slices of dW and db and
/// its partial dH, summed in float64 from each row's gradient of its logits
/// ([`shard::row_grad`]).
pub(crate) fn shard_grad(req: &CheckedLinear, grads: LinearGradsMut) {
    let mut sums = Sums::new(req, &grads);
    for r in 0..req.logits.batch {
        let mut g = capped_logits(req, r);
        shard::row_grad(&req.logits, r, &mut g);
        sums.add_row(req, r, g.into_iter());
    }
    sums.write(grads);
}

/// Row `r`'s logits in float64, H_r·Wᵀ + b, before the soft cap.
fn row_logits(req: &CheckedLinear, r: usize) -> Vec<f64> {
    let d = req.head.dim;
    let (h, w) = (&req.head.hidden, &req.head.weight);
    (0..req.logits.classes)
        .map(|k| {
            let dot: f64 = (0..d)
                .map(|j| f64::from(h.get(r * d + j)) * f64::from(w.get(k * d + j)))
                .sum();
            dot + req.head.bias.map_or(0.0, |b| f64::from(b[k]))
        })
        .collect()
}

/// Row `r`'s logits in float64, after the soft cap.
fn capped_logits(req: &CheckedLinear, r: usize) -> Vec<f64> {
    let raw = row_logits(req, r);
    raw.into_iter().map(|x| cap(&req.logits, x)).collect()
}

/// The gradients of H, W and b that the caller's slices ask for, summed in float64 row by row.
struct Sums {
    hidden: Vec<f64>,
    weight: Vec<f64>,
    bias: Vec<f64>,
}

impl Sums {
    fn new(req: &CheckedLinear, grads: &LinearGradsMut) -> Self {
        let (n, v, d) = (req.logits.batch, req.logits.classes, req.head.dim);
        let zeros = |asked: bool, len: usize| vec![0.0_f64; if asked { len } else { 0 }];
        Sums {
            hidden: zeros(grads.hidden.is_some(), n * d),
            weight: zeros(grads.weight.is_some(), v * d),
            bias: zeros(grads.bias.is_some(), v),
        }
    }

    /// Adds row `r`'s part: `g`, the gradient of its logits, class by class, times W into its
    /// dH row, times H_r into dW, and into db.
    fn add_row(&mut self, req: &CheckedLinear, r: usize, g: impl Iterator<Item = f64>) {
        let d = req.head.dim;
        let (h, w) = (&req.head.hidden, &req.head.weight);
        for (k, g) in g.enumerate() {
            if g == 0.0 {
                continue;
            }
            for j in 0..d {
                if !self.hidden.is_empty() {
                    self.hidden[r * d + j] += g * f64::from(w.get(k * d + j));
                }
                if !self.weight.is_empty() {
                    self.weight[k * d + j] += g * f64::from(h.get(r * d + j));
                }
            }
            if !self.bias.is_empty() {
                self.bias[k] += g;
            }
        }
    }

    /// Writes the sums into the slices of `grads`, or with `add` adds them to what they hold.
    fn write(self, grads: LinearGradsMut) {
        for (slice, sums) in [
            (grads.hidden, self.hidden),
            (grads.weight, self.weight),
            (grads.bias, self.bias),
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
    }
}
