//! Tasks, the unit that threads claim: a block of rows with its slices of the outputs, and how a
//! task computes its rows (the short-row loop, the one-hot rows, or each row through its loss
//! family), summing them in row order.

use super::blocks::BLOCK;
use super::cross_entropy::{one_hot_row, one_hot_row_in_place};
use super::rows::{Row, RowResult, RowScratch, Rows};
use super::short::{SHORT_ROW, ShortGrad, short_rows};
use super::softmax::Softmax;
use super::{bce, cross_entropy, entropy, kl_div};
use crate::cpu::gradient;
use crate::request::{Checked, CheckedTarget, IGNORED, Input, InputKind, LossKind, Scales};

/// Rows per task: 16, fewer when rows are long, so that a task holds at most
/// `TASK_MAX_ELEMENTS` or one row (a thread that starts late, as a woken helper thread can by
/// milliseconds, still finds work left), and more when rows are short, so that it holds at least
/// `TASK_MIN_ELEMENTS`.
pub(super) const ROWS_PER_TASK: usize = 16;
const TASK_MAX_ELEMENTS: usize = 1 << 18;
const TASK_MIN_ELEMENTS: usize = 4096;

/// Rows per task for rows of `c` classes (see [`ROWS_PER_TASK`]).
pub(super) fn rows_per_task(c: usize) -> usize {
    let c_or_1 = c.max(1);
    ROWS_PER_TASK
        .min((TASK_MAX_ELEMENTS / c_or_1).max(1))
        .max(TASK_MIN_ELEMENTS / c_or_1)
}

/// A block of rows and its slices of the outputs: the gradient, the elementwise values, each
/// row's value (a `none` reduction of a per-row loss) and each row's lse.
pub(super) struct Task<'a> {
    pub rows: std::ops::Range<usize>,
    pub grad: Option<&'a mut [f32]>,
    pub values: Option<&'a mut [f32]>,
    pub row_values: Option<&'a mut [f32]>,
    pub lse: Option<&'a mut [f32]>,
    /// The gradient goes over the input: the rows are read from `grad`, over themselves or from
    /// a copy (see `fast::compute_in_place`).
    pub in_place: bool,
}

/// Computes row r through its loss family: its value, and when asked its gradient (scaled by
/// `scales`) and elementwise values (scaled by the main scale), through the soft cap's chain
/// rule.
fn compute_row(
    req: &Checked,
    rows: Rows,
    r: usize,
    scales: Scales,
    scratch: &mut RowScratch,
    mut grad: Option<&mut [f32]>,
    elements: Option<&mut [f32]>,
) -> RowResult {
    let row = Row::read(req, rows, r, scratch, grad.as_deref_mut());
    let lse = row.lse() as f32;
    let g = grad.as_deref_mut();
    let (main, z) = match req.loss {
        LossKind::CrossEntropy => match cross_entropy::row_loss(req, &row, scales, g) {
            Some(contribution) => contribution,
            // Ignored: its gradient stays 0, with no chain rule to make it NaN.
            None => {
                return RowResult {
                    main: 0.0,
                    z: 0.0,
                    lse,
                };
            }
        },
        LossKind::KlDiv => (kl_div::row_loss(req, &row, scales, g, elements), 0.0),
        LossKind::Entropy => (entropy::row_loss(&row, scales, g), 0.0),
        LossKind::BinaryCrossEntropy => (bce::row_loss(req, &row, scales, g, elements), 0.0),
    };
    if let (Some(cap), Some(g)) = (req.options.softcap, grad) {
        for (g, &v) in g.iter_mut().zip(row.x) {
            *g = gradient::softcap(*g, v, cap);
        }
    }
    RowResult { main, z, lse }
}

impl Task<'_> {
    /// Computes the task's rows, writes their outputs, and returns the sums of their main and z
    /// values, taken in row order.
    pub fn run(mut self, req: &Checked, scales: Scales) -> (f64, f64) {
        let c = req.classes;
        let plain_logits = req.options.input_kind == InputKind::Logits
            && req.options.softcap.is_none()
            && matches!(req.loss, LossKind::CrossEntropy | LossKind::KlDiv);
        // Rows that need nothing but their statistics and x_y (and for the gradient, their exps).
        let one_hot_targets = match &req.target {
            CheckedTarget::Classes(t)
                if req.loss == LossKind::CrossEntropy
                    && req.options.label_smoothing == 0.0
                    && req.weight.is_none() =>
            {
                Some(t)
            }
            _ => None,
        };
        // In place, such rows of more than `SHORT_ROW` logits are computed over themselves;
        // other rows are read from a copy of the task's own (at most `TASK_MAX_ELEMENTS`, or one
        // row), which the gradient then overwrites.
        let over_themselves = self.in_place
            && self.grad.is_some()
            && plain_logits
            && c > SHORT_ROW
            && one_hot_targets.is_some();
        let copy = (self.in_place && !over_themselves)
            .then(|| self.grad.as_deref().map(<[f32]>::to_vec))
            .flatten();
        let rows = match &copy {
            Some(copy) => Rows {
                input: Input::F32(copy),
                first: self.rows.start,
            },
            None => Rows {
                input: req.input,
                first: 0,
            },
        };
        let mut scratch = RowScratch {
            end: self.rows.end,
            ..RowScratch::default()
        };
        let one_hot = match rows.input {
            Input::F32(x) => one_hot_targets.map(|t| (t, x)),
            _ => None,
        };
        let short = match (c <= SHORT_ROW && plain_logits, rows.input) {
            (true, Input::F32(x)) => Some(x),
            _ => None,
        };
        if let Some(x) = short {
            scratch.short.first = self.rows.start;
            let grad = self.grad.as_deref_mut().map(|g| match one_hot {
                Some((t, _)) => ShortGrad::OneHot {
                    grad: g,
                    targets: &t[self.rows.clone()],
                    scales,
                    z_loss: req.options.z_loss,
                },
                None => ShortGrad::Exps(g),
            });
            short_rows(
                &x[rows.span(self.rows.clone(), c)],
                c,
                grad,
                &mut scratch.short.stats,
            );
        }
        let ln = req.options.base.ln();
        let (mut main, mut z) = (0.0, 0.0);
        let mut record = |i: usize, result: RowResult| {
            main += result.main;
            z += result.z;
            if let Some(row_values) = self.row_values.as_deref_mut() {
                row_values[i] = (result.main / ln + result.z) as f32;
            }
            if let Some(lse) = self.lse.as_deref_mut() {
                lse[i] = result.lse;
            }
        };
        match (one_hot, short) {
            // Each row from the short-row loop's statistics (which also wrote the gradient), in a
            // loop of its own, so that the sums stay in registers.
            (Some((t, x)), Some(_)) => {
                let stats = &scratch.short.stats;
                for (i, (r, &[m, s, log_s])) in self.rows.zip(stats).enumerate() {
                    let st = Softmax::short(m, s, log_s);
                    let x_y = (t[r] != IGNORED).then(|| x[rows.span(r..r + 1, c)][t[r] as usize]);
                    record(i, one_hot_row(&st, x_y, req.options.z_loss));
                }
            }
            (Some((t, _)), None) if over_themselves => {
                let mut rest = self.grad.unwrap_or_default();
                let z_loss = req.options.z_loss;
                for (i, r) in self.rows.enumerate() {
                    let (g, next) = std::mem::take(&mut rest).split_at_mut(c);
                    rest = next;
                    let at = (r, &rest[..rest.len().min(c.min(BLOCK))]);
                    let result = one_hot_row_in_place(g, t[r], at, scales, z_loss, &mut scratch);
                    record(i, result);
                }
            }
            _ => {
                let mut grad = self.grad.map(|g| g.chunks_mut(c));
                let mut values = self.values.map(|v| v.chunks_mut(c));
                for (i, r) in self.rows.enumerate() {
                    let g = grad.as_mut().and_then(Iterator::next);
                    let v = values.as_mut().and_then(Iterator::next);
                    record(i, compute_row(req, rows, r, scales, &mut scratch, g, v));
                }
            }
        }
        (main, z)
    }
}
