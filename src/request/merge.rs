//! [`merge_shards`]: every vocabulary shard's statistics merged, in float64, into the loss of the
//! whole rows.

use super::check::{Head, TargetKind};
use super::checked::ShardPass;
use super::kinds::{LossKind, Reduction};
use super::markers::IGNORED;
use super::options::Options;
use super::reduce::{divide, scalar};
use super::shard::{ShardStats, ShardedLoss};
use super::values::Target;
use crate::error::{Error, Result};
use crate::output::Loss;

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
    // The merged rows are checked as a request on all of them would be.
    let head = Head {
        loss: LossKind::CrossEntropy,
        shape: [batch, total],
        options: *options,
        weight,
        pos_weight: None,
    };
    head.check(TargetKind::Classes, |_| Ok(()), |_| Ok(()))?;
    let target = head.check_target(Target::ClassesI64(targets), None)?;
    let valid_rows = target.valid_rows(batch);
    let encoded = target.classes().unwrap_or_default();
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
    let reduce = head.reduce(Some(encoded), valid_rows);
    let divisors = reduce.divisors();
    let loss = match divisors {
        Some(divisors) if options.reduction == Reduction::None => Loss::Unreduced {
            values: main
                .iter()
                .zip(&z)
                .map(|(&m, &z)| divide((m, z), divisors))
                .collect(),
            shape: vec![batch],
        },
        _ => scalar((main.iter().sum(), z.iter().sum()), divisors),
    };
    Ok(ShardedLoss {
        loss,
        lse,
        valid_rows,
        rows,
        scales: reduce.scales(),
    })
}

impl ShardedLoss {
    /// What a shard's gradient pass takes from the merge: each row's merged statistics and the
    /// reduction's scales.
    pub(crate) fn grad_pass(&self) -> ShardPass {
        ShardPass::Grad {
            rows: self.rows.clone(),
            scales: self.scales,
        }
    }
}
