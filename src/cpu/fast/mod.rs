//! The fast CPU path: every loss in one fused pass per row (two with the gradient), SIMD through
//! loops the compiler vectorizes for the CPU found at run time (`multiversion`) and, for the
//! block loop and the short-row step on AVX2, intrinsics (`avx2`, chosen once per process by
//! `isa`), threads over row blocks (`threads`), and no [B, C] temporary.
//!
//! Per row, the logits are taken in blocks that fit in L1 (`softmax`): the block's max, a
//! rescale of the running sum when the max rises, then the block's exps (on AVX2 with a table
//! exp, elsewhere with a polynomial exp that vectorizes); the loop over a block's exps also reads
//! the next block's max (for a row's last block, the next row's first), so that its trip from
//! memory overlaps the arithmetic (`blocks`). Rows of at most 32 classes are done eight at a
//! time, a row per lane (`short`); the step also writes the gradient of a cross-entropy against
//! unweighted, unsmoothed class targets. Each loss family's row is in a file named after its
//! WGSL twin. Block sums are f32 over 8 or 16 lanes; the running sums are f64. Each task sums
//! its rows in order and the tasks are summed in order (`tasks`), so the result does not depend
//! on the thread count.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod bce;
mod blocks;
mod cross_entropy;
mod entropy;
#[cfg(target_arch = "x86_64")]
mod isa;
mod kl_div;
mod math;
mod rows;
mod short;
mod softmax;
mod tasks;
pub(crate) mod threads;

use blocks::{BLOCK, sum_of};
use tasks::{ROWS_PER_TASK, Task, rows_per_task};
use threads::run_tasks;

use crate::output::{Loss, Output};
use crate::request::{Checked, Reduction, Scales, scalar};

/// Sums `xs` with the fast path's vector loops and threads: a read of the same bytes with no
/// arithmetic to speak of, which bounds what the loss loops can reach.
pub(crate) fn probe_sum(xs: &[f32]) -> f32 {
    let tasks: Vec<&[f32]> = xs.chunks(ROWS_PER_TASK * BLOCK).collect();
    run_tasks(tasks, xs.len(), sum_of).into_iter().sum()
}

/// Computes any checked request on the CPU in f32, as the kernels do, and reduces it as the
/// request says; writes the gradient of the reduced loss into `grad` when asked.
pub(crate) fn compute(req: &Checked, grad: Option<&mut [f32]>) -> Output {
    compute_on(req, grad, false)
}

/// [`compute`] on the values of `logits` (the request's own input, empty, is not read), with the
/// gradient written over them and no [B, C] buffer: cross-entropy rows against one unweighted,
/// unsmoothed class (of more than 32 logits) are computed over themselves, a block copied from
/// cache at a time ([`cross_entropy::one_hot_row_in_place`]); every other task copies its rows
/// before it overwrites them, which costs more than a gradient buffer of its own: that copy's
/// read from memory cannot overlap the exps as the block loop's read-ahead does.
pub(crate) fn compute_in_place(req: &Checked, logits: &mut [f32]) -> Output {
    compute_on(req, Some(logits), true)
}

fn compute_on(req: &Checked, grad: Option<&mut [f32]>, in_place: bool) -> Output {
    let divisors = req.divisors();
    let reduced = req.options.reduction != Reduction::None;
    let elementwise = !reduced && req.loss.elementwise();
    let mut values = vec![0.0_f32; if elementwise { req.elements() } else { 0 }];
    let mut row_values = vec![0.0_f32; if reduced || elementwise { 0 } else { req.batch }];
    let mut lse = req.options.lse.then(|| vec![0.0_f32; req.batch]);
    let sums = rows(
        req,
        req.scales(),
        RowsOut {
            grad,
            in_place,
            values: elementwise.then_some(&mut values[..]),
            row_values: (!row_values.is_empty()).then_some(&mut row_values[..]),
            lse: lse.as_deref_mut(),
        },
    );
    let loss = match (req.options.reduction, divisors) {
        (Reduction::None, _) if elementwise => Loss::Unreduced {
            values,
            shape: req.unreduced_shape(),
        },
        (Reduction::None, _) => Loss::Unreduced {
            values: row_values,
            shape: req.unreduced_shape(),
        },
        _ => scalar(sums, divisors),
    };
    Output {
        loss,
        lse,
        grad: None,
        valid_rows: req.valid_rows,
        linear_grads: None,
    }
}

/// Where [`rows`] writes what a request asks for: the gradient (over the logits, when
/// `in_place`), the elementwise values (BCE and KL unreduced), each row's value (the other
/// losses unreduced), each row's log-sum-exp.
pub(crate) struct RowsOut<'o> {
    pub grad: Option<&'o mut [f32]>,
    pub in_place: bool,
    pub values: Option<&'o mut [f32]>,
    pub row_values: Option<&'o mut [f32]>,
    pub lse: Option<&'o mut [f32]>,
}

/// Computes every row of a checked request with the reduction's `scales` (its own, or a larger
/// request's whose rows these are), writing into `out`; returns the sums of the rows' (main,
/// z-loss) values, summed task by task in order, so that they do not depend on the thread count.
pub(crate) fn rows(req: &Checked, scales: Scales, out: RowsOut) -> (f64, f64) {
    let c = req.classes;
    let task_rows = rows_per_task(c);
    let task_elements = task_rows * c;
    let mut grad_blocks = out.grad.map(|g| g.chunks_mut(task_elements));
    let mut value_blocks = out.values.map(|v| v.chunks_mut(task_elements));
    let mut row_blocks = out.row_values.map(|v| v.chunks_mut(task_rows));
    let mut lse_blocks = out.lse.map(|l| l.chunks_mut(task_rows));
    let tasks: Vec<Task> = (0..req.batch)
        .step_by(task_rows)
        .map(|start| Task {
            rows: start..req.batch.min(start + task_rows),
            grad: grad_blocks.as_mut().and_then(Iterator::next),
            values: value_blocks.as_mut().and_then(Iterator::next),
            row_values: row_blocks.as_mut().and_then(Iterator::next),
            lse: lse_blocks.as_mut().and_then(Iterator::next),
            in_place: out.in_place,
        })
        .collect();
    run_tasks(tasks, req.elements(), |t| t.run(req, scales))
        .into_iter()
        .fold((0.0, 0.0), |(m, z), (tm, tz)| (m + tm, z + tz))
}
