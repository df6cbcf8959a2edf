//! A vocabulary shard of a linear head on the fast path: the chunks of [`linear::chunks`], each
//! chunk's logits H_c·W_sᵀ + b_s taken by the shard passes of [`shard`], in float64 row by row.
//! The statistics pass reads the chunk; the gradient pass writes the shard's G over it, from
//! which the chunk loop forms the shard's dW and db slices and its partial dH. The same bits on
//! any number of threads, as [`linear::compute`] gives.

use super::linear;
use super::shard;
use crate::output::LinearGradsMut;
use crate::request::{CheckedLinear, Input, ROW_STATS};

/// The shard's statistics, `ROW_STATS` values per row (see [`shard::row_stats`]).
pub(crate) fn stats(req: &CheckedLinear) -> Vec<f32> {
    let logits = &req.logits;
    let mut out = Vec::with_capacity(logits.batch * ROW_STATS);
    linear::chunks(req, LinearGradsMut::default(), |rows, l| {
        out.extend(shard::stats(&logits.rows(
            rows,
            Input::F32(l),
            logits.options,
        )));
    });
    out
}

/// The shard's gradients into the slices of `grads` (see [`shard::row_grad`] for G).
pub(crate) fn grad(req: &CheckedLinear, grads: LinearGradsMut) {
    let logits = &req.logits;
    linear::chunks(req, grads, |rows, l| {
        shard::grad(&logits.rows(rows, Input::F32(&[]), logits.options), l);
    });
}
