//! Vocabulary-parallel cross-entropy: the classes of each row split into shards, each on its own
//! engine (another adapter, another device, another machine). Each shard returns a few numbers
//! per row ([`Engine::shard_stats`](crate::Engine::shard_stats)); the caller moves them with the
//! collective of their choice; [`merge_shards`] combines them into the exact loss and lse; and
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

use crate::error::{Error, Result};
use crate::loss::{
    IGNORED, LossKind, Options, Reduce, Reduction, check_options, check_shape, encode_classes,
};
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
    /// The reduction's (main, z-loss) scales.
    pub(crate) scales: (f32, f32),
}

/// One row's merged statistics: max, sum-exp over it, and the gradient's b.
pub(crate) type MergedRow = (f32, f32, f32);

/// Merges every shard's statistics, in float64, into the loss and lse of the whole rows: the
/// `targets` (global class indices), class `weight` over all classes, and `options` are those of
/// the request the shards were cut from. The shards must cover [0, C) without overlap, in any
/// order; each row's target must be claimed by exactly one shard.
pub fn merge_shards(
    shards: &[ShardStats],
    targets: &[i64],
    weight: Option<&[f32]>,
    options: &Options,
) -> Result<ShardedLoss> {
    let invalid = |reason: String| Error::InvalidOption {
        option: "shard",
        reason,
    };
    // A shard's end, where the shards' class counts do not overflow (checked below).
    let next_of = |s: &ShardStats| s.shard.first_class.saturating_add(s.classes);
    let mut order: Vec<&ShardStats> = shards.iter().collect();
    order.sort_by_key(|s| s.shard.first_class);
    let Some(first) = order.first() else {
        return Err(invalid("no shards to merge".into()));
    };
    let total = first.shard.total_classes;
    let batch = targets.len();
    let mut next = 0;
    for s in &order {
        if s.shard.total_classes != total || s.shard.first_class != next || next_of(s) > total {
            return Err(invalid(format!(
                "the shards do not tile [0, {total}): one starts at class {} of {} where {next} was next",
                s.shard.first_class, s.shard.total_classes
            )));
        }
        let lengths = [
            s.max.len(),
            s.sum_exp.len(),
            s.target_logit.len(),
            s.smoothing_sum.len(),
        ];
        if lengths.iter().any(|&n| n != batch) {
            return Err(invalid(format!(
                "a shard's statistics have {lengths:?} rows, the targets {batch}"
            )));
        }
        next = next_of(s);
    }
    if next != total {
        return Err(invalid(format!(
            "the shards cover [0, {next}) of {total} classes"
        )));
    }
    check_shape([batch, total])?;
    let (weight, _) = check_options(LossKind::CrossEntropy, options, total, weight, None)?;
    let encoded = encode_classes([batch, total], options.ignore_index, None, batch, |r| {
        targets[r]
    })?;
    let valid_rows = encoded.iter().filter(|&&y| y != IGNORED).count();
    let eps = f64::from(options.label_smoothing);
    let spread = eps / total as f64;
    let w = |c: usize| weight.map_or(1.0, |w| f64::from(w[c]));
    let all_weights: f64 = (0..total).map(w).sum();
    // Σ w over each shard's classes, which its smoothing sum is weighted by.
    let shard_weights: Vec<f64> = order
        .iter()
        .map(|s| {
            (s.shard.first_class..s.shard.first_class + s.classes)
                .map(w)
                .sum()
        })
        .collect();
    let mut main = Vec::with_capacity(batch);
    let mut z = Vec::with_capacity(batch);
    let mut lse = Vec::with_capacity(batch);
    let mut rows = Vec::with_capacity(batch);
    for (r, &y) in encoded.iter().enumerate() {
        let m = order
            .iter()
            .map(|s| f64::from(s.max[r]))
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = order
            .iter()
            .map(|s| f64::from(s.sum_exp[r]) * (f64::from(s.max[r]) - m).exp())
            .sum();
        let row_lse = m + sum.ln();
        lse.push(row_lse as f32);
        if y == IGNORED {
            main.push(0.0);
            z.push(0.0);
            rows.push((m as f32, sum as f32, 0.0));
            continue;
        }
        // The target's logit, from the shard that holds its class.
        let holds = |s: &&&ShardStats| (s.shard.first_class..next_of(s)).contains(&(y as usize));
        let claimed: Vec<f32> = order
            .iter()
            .filter(holds)
            .filter_map(|s| s.target_logit[r])
            .collect();
        let [x_y] = claimed[..] else {
            return Err(invalid(format!(
                "row {r}'s target {} is claimed by {} shards, not one",
                targets[r],
                claimed.len()
            )));
        };
        // Σ w (x − lse) over the row, from each shard's Σ w (x − max).
        let smoothing: f64 = order
            .iter()
            .zip(&shard_weights)
            .filter(|&(_, &weights)| weights != 0.0)
            .map(|(s, &weights)| {
                f64::from(s.smoothing_sum[r]) + (f64::from(s.max[r]) - row_lse) * weights
            })
            .sum();
        let w_y = w(y as usize);
        let smoothing_term = if eps > 0.0 { -spread * smoothing } else { 0.0 };
        main.push((1.0 - eps) * w_y * (row_lse - f64::from(x_y)) + smoothing_term);
        z.push(f64::from(options.z_loss) * row_lse * row_lse);
        let b = (1.0 - eps) * w_y + spread * all_weights;
        rows.push((m as f32, sum as f32, b as f32));
    }
    let reduce = Reduce {
        loss: LossKind::CrossEntropy,
        options,
        shape: [batch, total],
        valid_rows,
        targets: Some(&encoded),
        weight,
    };
    let divisors = reduce.divisors();
    let (main_div, z_div) = divisors.unwrap_or((f64::INFINITY, f64::INFINITY));
    let loss = if options.reduction == Reduction::None {
        Loss::Unreduced {
            values: main
                .iter()
                .zip(&z)
                .map(|(m, z)| (m / main_div + z / z_div) as f32)
                .collect(),
            shape: vec![batch],
        }
    } else {
        let total: f64 = main.iter().sum::<f64>() / main_div + z.iter().sum::<f64>() / z_div;
        Loss::Scalar(if divisors.is_some() {
            total as f32
        } else {
            0.0
        })
    };
    Ok(ShardedLoss {
        loss,
        lse,
        valid_rows,
        rows,
        scales: reduce.scales(),
    })
}
