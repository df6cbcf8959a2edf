//! What every row shares, whatever its loss: where a task reads its rows, one row's input after
//! the soft cap with its softmax statistics, the scratch a task's rows reuse, and what a row
//! contributes to the sums.

use super::blocks::BLOCK;
use super::short::ShortStats;
use super::softmax::{Ahead, Logits, Softmax};
use crate::request::{Checked, Input, InputKind, LossKind};

/// What one row contributes: its main value (in nats, weighted), its z term and its lse. (The
/// elementwise losses write their `none` values straight into the output.)
pub(super) struct RowResult {
    pub main: f64,
    pub z: f64,
    pub lse: f32,
}

/// Where a task reads its rows: the request's input, or for a gradient in place a copy of the
/// task's own rows (row `first` at 0), which the gradient then overwrites.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    pub input: Input<'a>,
    pub first: usize,
}

impl Rows<'_> {
    /// The elements of `rows`, of `c` classes each, in `input`.
    #[inline]
    pub fn span(&self, rows: std::ops::Range<usize>, c: usize) -> std::ops::Range<usize> {
        (rows.start - self.first) * c..(rows.end - self.first) * c
    }
}

/// What a task's rows reuse: the soft-capped or converted input of one row (or the block of a
/// row computed in place, copied before it is overwritten), its block maxes, the softmax
/// statistics of the task's short rows (indexed by row), when they were computed together, and
/// the max of the next row's first block, read ahead.
#[derive(Default)]
pub(super) struct RowScratch {
    pub input: Vec<f32>,
    pub maxes: Vec<f32>,
    pub short: ShortStats,
    /// The end of the task's rows.
    pub end: usize,
    pub ahead: Ahead,
}

/// One row as its loss family sees it: its index, its input after the soft cap, and for logits
/// (but for binary cross-entropy, whose classes are independent) its softmax statistics, with
/// the running max of each block whose exps were stored in the gradient.
pub(super) struct Row<'a> {
    pub r: usize,
    pub x: &'a [f32],
    pub kind: InputKind,
    pub softmax: Option<Softmax>,
    pub maxes: &'a [f32],
}

impl<'a> Row<'a> {
    /// Reads row r of `rows` and takes its statistics: from the short-row loop when it computed
    /// them (its exps then already in `grad`), else by [`Softmax::of`], which stores each exp in
    /// `grad` when it is given (but for entropy, whose gradient needs log q itself).
    #[inline]
    pub fn read(
        req: &Checked,
        rows: Rows<'a>,
        r: usize,
        scratch: &'a mut RowScratch,
        grad: Option<&mut [f32]>,
    ) -> Self {
        let c = req.classes;
        let kind = req.options.input_kind;
        let RowScratch {
            input,
            maxes,
            short,
            end,
            ahead,
        } = scratch;
        let x = capped(req, rows, r, input);
        let needs_softmax = kind == InputKind::Logits && req.loss != LossKind::BinaryCrossEntropy;
        let entropy = req.loss == LossKind::Entropy;
        maxes.clear();
        let softmax = match short.softmax(r) {
            Some(st) => {
                maxes.push(st.m);
                Some(st)
            }
            None => {
                let logits = match (!entropy).then_some(grad).flatten() {
                    Some(g) => Logits::Store(x, g, &mut *maxes),
                    None => Logits::Read(x),
                };
                // The next row's first block, read in this row's last loop, when it is the input
                // itself.
                let after = match (rows.input, req.options.softcap) {
                    (Input::F32(v), None) if r + 1 < *end => {
                        &v[rows.span(r + 1..r + 2, c)][..c.min(BLOCK)]
                    }
                    _ => &[],
                };
                needs_softmax.then(|| Softmax::of(logits, entropy, r, after, ahead))
            }
        };
        Row {
            r,
            x,
            kind,
            softmax,
            maxes,
        }
    }

    /// The row's log-sum-exp in float64, or 0 without softmax statistics.
    #[inline]
    pub fn lse(&self) -> f64 {
        self.softmax.as_ref().map_or(0.0, Softmax::lse)
    }

    /// log q of input `x`: through the row's softmax for logits (the max and log s taken off, see
    /// [`Softmax::log_q`]), a probability's log, or a log-probability itself.
    #[inline]
    pub fn log_q(&self, x: f32) -> f64 {
        match &self.softmax {
            Some(st) => st.log_q(x),
            None if self.kind == InputKind::Probs => f64::from(x.ln()),
            None => f64::from(x),
        }
    }

    /// The gradient of −α·Σ m_k log q_k where log q is the input itself (log-probabilities, −α m_k)
    /// or its log (probabilities, −α m_k / x_k; 0 where m_k = 0, even at x_k = 0); α is
    /// `main_scale`.
    pub fn target_only_grad(&self, g: &mut [f32], main_scale: f32, mass: impl Fn(usize) -> f32) {
        for (k, (g, &v)) in g.iter_mut().zip(self.x).enumerate() {
            let m = mass(k);
            *g = match self.kind {
                InputKind::Probs if m == 0.0 => 0.0,
                InputKind::Probs => -main_scale * m / v,
                _ => -main_scale * m,
            };
        }
    }
}

/// Class k's weight in f32, 1 without class weights.
#[inline]
pub(super) fn class_weight(req: &Checked, k: usize) -> f32 {
    req.weight.map_or(1.0, |w| w[k])
}

/// One row's input as f32 after the soft cap, borrowed when nothing changes it.
fn capped<'a>(req: &Checked, rows: Rows<'a>, r: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
    let range = rows.span(r..r + 1, req.classes);
    match (rows.input, req.options.softcap) {
        (Input::F32(v), None) => &v[range],
        (input, cap) => {
            scratch.clear();
            scratch.extend(range.map(|i| {
                let x = input.get(i);
                cap.map_or(x, |c| c * (x / c).tanh())
            }));
            scratch
        }
    }
}
