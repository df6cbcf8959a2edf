//! The reference's view of one row: its input in float64 after the soft cap, and its
//! log-probabilities with the row's log-sum-exp.

use crate::request::{Checked, InputKind};

/// A row's log-softmax and log-sum-exp, both from the row shifted by its max: no exp overflows,
/// and log q keeps the small part of the log-sum-exp even where the logits are so large that
/// max + log Σ exp(x − max) rounds it away (near 1e20 a float64 steps by 16 384, so three equal
/// maxima there would each get log q = 0 instead of −log 3). A NaN anywhere gives NaN; a row of
/// only −inf gives lse −inf, and log q NaN.
pub(super) fn log_softmax(row: &[f64]) -> (Vec<f64>, f64) {
    if row.iter().any(|x| x.is_nan()) {
        return (vec![f64::NAN; row.len()], f64::NAN);
    }
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return (vec![f64::NAN; row.len()], f64::NEG_INFINITY);
    }
    let shift = row.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
    (
        row.iter().map(|&x| (x - max) - shift).collect(),
        max + shift,
    )
}

/// One row's input in float64, after the soft cap; and its log-probabilities with the row's
/// log-sum-exp (0 where the input is not logits).
pub(super) struct Row {
    pub x: Vec<f64>,
    pub log_q: Vec<f64>,
    pub lse: f64,
}

/// Row r's input in float64, after the soft cap.
pub(crate) fn capped_row(req: &Checked, r: usize) -> Vec<f64> {
    let c = req.classes;
    (r * c..(r + 1) * c)
        .map(|i| cap(req, f64::from(req.input.get(i))))
        .collect()
}

/// `v` after the request's soft cap.
pub(crate) fn cap(req: &Checked, v: f64) -> f64 {
    match req.options.softcap {
        Some(cap) => f64::from(cap) * (v / f64::from(cap)).tanh(),
        None => v,
    }
}

impl Row {
    /// Row r of the request.
    pub fn read(req: &Checked, r: usize) -> Self {
        Self::of(req, capped_row(req, r))
    }

    /// The row whose input, after the soft cap, is `x`.
    pub fn of(req: &Checked, x: Vec<f64>) -> Self {
        let (log_q, lse) = match req.options.input_kind {
            InputKind::Logits => log_softmax(&x),
            InputKind::Probs => (x.iter().map(|v| v.ln()).collect(), 0.0),
            InputKind::LogProbs => (x.clone(), 0.0),
        };
        Row { x, log_q, lse }
    }

    /// The row's probabilities, e^(log q).
    pub fn softmax(&self) -> Vec<f64> {
        self.log_q.iter().map(|lq| lq.exp()).collect()
    }
}
