//! [`Checked`]: a validated request, as every backend receives it.

use super::kinds::LossKind;
use super::options::Options;
use super::reduce::Scales;
use super::shard::{MergedRow, Shard};
use super::values::Input;
use crate::error::{Error, Result};
use std::ops::Range;

/// A checked target.
#[derive(Clone, Debug)]
pub(crate) enum CheckedTarget<'a> {
    None,
    /// Class indices, with [`IGNORED`](super::markers::IGNORED) for ignored rows.
    Classes(Vec<u32>),
    Dense(&'a [f32]),
}

/// A validated request.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub loss: LossKind,
    pub input: Input<'a>,
    pub batch: usize,
    pub classes: usize,
    pub target: CheckedTarget<'a>,
    pub weight: Option<&'a [f32]>,
    pub pos_weight: Option<&'a [f32]>,
    pub valid_rows: usize,
    pub options: Options,
    /// A vocabulary shard's pass, when the request is one.
    pub shard: Option<ShardInfo>,
}

/// A vocabulary shard's request: the shard, and the pass.
#[derive(Debug)]
pub(crate) struct ShardInfo {
    pub shard: Shard,
    pub pass: ShardPass,
}

/// What a vocabulary shard's call computes.
#[derive(Debug)]
pub(crate) enum ShardPass {
    /// Each row's partial statistics.
    Stats,
    /// The gradient, from each row's merged (max, sum-exp, b) and the merged reduction's scales.
    Grad {
        rows: Vec<MergedRow>,
        scales: Scales,
    },
}

impl ShardPass {
    /// For the gradient pass, each row's merged statistics and the merged reduction's scales.
    pub(crate) fn merged(&self) -> Option<(&[MergedRow], Scales)> {
        match self {
            ShardPass::Stats => None,
            ShardPass::Grad { rows, scales } => Some((rows, *scales)),
        }
    }

    /// The pass over rows `rows` of the request: a gradient pass's merged statistics sliced to
    /// them.
    fn rows(&self, rows: Range<usize>) -> ShardPass {
        match self {
            ShardPass::Stats => ShardPass::Stats,
            ShardPass::Grad {
                rows: merged,
                scales,
            } => ShardPass::Grad {
                rows: merged[rows].to_vec(),
                scales: *scales,
            },
        }
    }

    /// Checks that a gradient pass's merged statistics are for the request's `batch` rows.
    pub(crate) fn check_rows(&self, batch: usize) -> Result<()> {
        match self.merged() {
            Some((rows, _)) if rows.len() != batch => Err(Error::InvalidOption {
                option: "shard",
                reason: format!(
                    "the merged loss has {} rows, the shard's request {batch}",
                    rows.len()
                ),
            }),
            _ => Ok(()),
        }
    }
}

impl<'a> Checked<'a> {
    /// Rows `rows` of this request, over `input` (their values, or empty where they are computed
    /// in place), with the options `options`: what a chunk of a linear request computes, with
    /// the whole request's reduction scales given to it. A vocabulary shard's pass stays one,
    /// over those rows' merged statistics.
    pub(crate) fn rows<'b>(
        &self,
        rows: Range<usize>,
        input: Input<'b>,
        options: Options,
    ) -> Checked<'b>
    where
        'a: 'b,
    {
        let c = self.classes;
        let target = match &self.target {
            CheckedTarget::None => CheckedTarget::None,
            CheckedTarget::Classes(t) => CheckedTarget::Classes(t[rows.clone()].to_vec()),
            CheckedTarget::Dense(t) => CheckedTarget::Dense(&t[rows.start * c..rows.end * c]),
        };
        Checked {
            loss: self.loss,
            input,
            batch: rows.len(),
            classes: c,
            valid_rows: target.valid_rows(rows.len()),
            target,
            weight: self.weight,
            pos_weight: self.pos_weight,
            options,
            shard: self.shard.as_ref().map(|info| ShardInfo {
                shard: info.shard,
                pass: info.pass.rows(rows),
            }),
        }
    }

    /// B·C.
    pub fn elements(&self) -> usize {
        self.batch * self.classes
    }

    /// The shape of the `none` output.
    pub fn unreduced_shape(&self) -> Vec<usize> {
        if self.loss.elementwise() {
            vec![self.batch, self.classes]
        } else {
            vec![self.batch]
        }
    }

    /// Class weight `c` (1 without weights).
    pub fn class_weight(&self, c: usize) -> f64 {
        self.weight.map_or(1.0, |w| f64::from(w[c]))
    }
}
