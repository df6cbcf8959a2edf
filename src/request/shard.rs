//! Vocabulary-parallel cross-entropy: the classes of each row split into shards, each on its own
//! engine (another adapter, another device, another machine). Each shard returns a few numbers
//! per row ([`Engine::shard_stats`](crate::Engine::shard_stats)); the caller moves them with the
//! collective of their choice; [`merge_shards`](crate::merge_shards) combines them into the exact loss and lse; and
//! each shard then writes its own slice of the gradient
//! ([`Engine::shard_grad`](crate::Engine::shard_grad)). On a GPU the two passes also run on the
//! caller's device buffers ([`Engine::record_shard_stats`](crate::Engine::record_shard_stats),
//! [`Engine::read_shard_stats`](crate::Engine::read_shard_stats),
//! [`Engine::record_shard_grad`](crate::Engine::record_shard_grad)), so that the logits never leave
//! the device.
//!
//! ```
//! use xent::{Engine, Options, Request, Shard, merge_shards};
//! let logits = [2.0_f32, 1.0, 0.1, 0.5, /* row 2 */ 0.3, 2.5, -1.0, 0.0];
//! let targets = [0_i64, 1];
//! // Classes [0, 3) on one engine, [3, 4) on another, each holding its columns.
//! let (left, right): (Vec<f32>, Vec<f32>) = (
//!     logits.chunks(4).flat_map(|r| r[..3].to_vec()).collect(),
//!     logits.chunks(4).flat_map(|r| r[3..].to_vec()).collect(),
//! );
//! let shards = [
//!     Engine::cpu().shard_stats(
//!         &Request::cross_entropy(&left[..], [2, 3], &targets[..]),
//!         Shard { first_class: 0, total_classes: 4 },
//!     )?,
//!     Engine::reference().shard_stats(
//!         &Request::cross_entropy(&right[..], [2, 1], &targets[..]),
//!         Shard { first_class: 3, total_classes: 4 },
//!     )?,
//! ];
//! let merged = merge_shards(&shards, &targets, None, &Options::default())?;
//! let whole = Engine::reference().compute(&Request::cross_entropy(&logits[..], [2, 4], &targets[..]))?;
//! let (a, b) = (merged.loss.scalar().unwrap(), whole.loss.scalar().unwrap());
//! assert!((a - b).abs() < 1e-6);
//! # Ok::<(), xent::Error>(())
//! ```

use super::reduce::Scales;
use crate::output::Loss;

/// Which classes a shard's input holds: `[first_class, first_class + C_s)` of rows of
/// `total_classes`, where C_s is the shard request's class count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// The row's class that the shard's column 0 holds.
    pub first_class: usize,
    /// C of the whole row.
    pub total_classes: usize,
}

/// One shard's per-row statistics: the few numbers per row that leave the shard's device.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardStats {
    /// The shard.
    pub shard: Shard,
    /// Classes the shard holds.
    pub classes: usize,
    /// Each row's max logit over the shard (after the soft cap; the lowest finite f32 for a
    /// row of -inf).
    pub max: Vec<f32>,
    /// Each row's Σ exp(x − max) over the shard.
    pub sum_exp: Vec<f32>,
    /// Each row's target logit (after the soft cap) when the target is in this shard; `None`
    /// when it is in another, or the row is ignored.
    pub target_logit: Vec<Option<f32>>,
    /// With label smoothing, each row's Σ w_c (x_c − max) over the shard (w = 1 without
    /// weights; relative to the max, so that the merge cancels nothing where logits are large);
    /// else 0.
    pub smoothing_sum: Vec<f32>,
}

impl ShardStats {
    /// From the rows as the kernels write them: m, s, x_y, 1 when y is here, Σ w x, Σ w, 0, 0.
    pub(crate) fn from_rows(shard: Shard, classes: usize, rows: &[f32]) -> Self {
        let rows = rows.chunks_exact(ROW_STATS);
        ShardStats {
            shard,
            classes,
            max: rows.clone().map(|r| r[0]).collect(),
            sum_exp: rows.clone().map(|r| r[1]).collect(),
            target_logit: rows
                .clone()
                .map(|r| (r[3] != 0.0).then_some(r[2]))
                .collect(),
            smoothing_sum: rows.map(|r| r[4]).collect(),
        }
    }
}

/// f32 values per row of a shard's statistics, as the kernels write them.
pub(crate) const ROW_STATS: usize = 8;

/// The merged result: the loss and lse of the whole rows, and what each shard's gradient pass
/// needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardedLoss {
    /// The loss after the reduction, as [`Output::loss`](crate::Output::loss) for the whole rows.
    pub loss: Loss,
    /// Each row's log-sum-exp over every class.
    pub lse: Vec<f32>,
    /// Rows whose target is not the ignore index.
    pub valid_rows: usize,
    /// Each row's merged statistics for the gradient passes: the max m over every shard (a logit,
    /// exact in f32), s = Σ exp(x − m), and b = (1 − ε) w_y + ε/C Σ w. With (m, s) rather than an
    /// f32 lse, the passes form log q = (x − m) − log s as an unsharded row does.
    pub(crate) rows: Vec<MergedRow>,
    /// The reduction's scales.
    pub(crate) scales: Scales,
}

/// One row's merged statistics: max, sum-exp over it, and the gradient's b.
pub(crate) type MergedRow = (f32, f32, f32);
