//! What is asked: the loss, its options, and the checks every backend relies on.
//!
//! Validation is pure and shared: every backend receives the same [`Checked`] request, so they
//! differ only in how they compute, never in what they accept.

use crate::error::{Error, Result};

/// How per-row losses are combined into the result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The per-row losses, unreduced (ignored rows give 0).
    None,
    /// The sum over rows.
    Sum,
    /// The sum divided by the number of rows whose target is not `ignore_index`. With no such
    /// row the mean is 0 rather than PyTorch's NaN.
    #[default]
    Mean,
}

/// Class-index targets, one per row.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// 32-bit class indices.
    I32(&'a [i32]),
    /// 64-bit class indices, as PyTorch stores them.
    I64(&'a [i64]),
}

impl Targets<'_> {
    fn len(&self) -> usize {
        match self {
            Targets::I32(t) => t.len(),
            Targets::I64(t) => t.len(),
        }
    }

    fn get(&self, row: usize) -> i64 {
        match self {
            Targets::I32(t) => i64::from(t[row]),
            Targets::I64(t) => t[row],
        }
    }
}

impl<'a> From<&'a [i32]> for Targets<'a> {
    fn from(t: &'a [i32]) -> Self {
        Targets::I32(t)
    }
}

impl<'a> From<&'a [i64]> for Targets<'a> {
    fn from(t: &'a [i64]) -> Self {
        Targets::I64(t)
    }
}

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// Softmax cross-entropy of `[batch, classes]` logits against class indices:
/// `loss_i = logsumexp(x_i) - x_i[y_i]`, as `torch.nn.functional.cross_entropy`.
///
/// ```
/// use xent::{Reduction, SoftmaxCrossEntropy};
/// let logits = [2.0_f32, 1.0, 0.1, 0.5, 2.5, 0.3];
/// let targets = [0_i64, 1];
/// let request = SoftmaxCrossEntropy::new(&logits, [2, 3], &targets[..])
///     .reduction(Reduction::Sum)
///     .ignore_index(-1);
/// assert_eq!(request.options().reduction, Reduction::Sum);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxCrossEntropy<'a> {
    logits: &'a [f32],
    shape: [usize; 2],
    targets: Targets<'a>,
    options: Options,
}

/// The options of [`SoftmaxCrossEntropy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// How rows are combined.
    pub reduction: Reduction,
    /// Rows whose target equals this are skipped: loss 0, and not counted by the mean.
    pub ignore_index: i64,
    /// Also return each row's log-sum-exp.
    pub lse: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reduction: Reduction::Mean,
            ignore_index: DEFAULT_IGNORE_INDEX,
            lse: false,
        }
    }
}

impl<'a> SoftmaxCrossEntropy<'a> {
    /// A request over row-major `logits` of shape `[batch, classes]`, with default options
    /// (mean, `ignore_index` −100).
    pub fn new(logits: &'a [f32], shape: [usize; 2], targets: impl Into<Targets<'a>>) -> Self {
        SoftmaxCrossEntropy {
            logits,
            shape,
            targets: targets.into(),
            options: Options::default(),
        }
    }

    /// Sets the reduction.
    #[must_use]
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.options.reduction = reduction;
        self
    }

    /// Sets the target value that marks a row to skip.
    #[must_use]
    pub fn ignore_index(mut self, ignore_index: i64) -> Self {
        self.options.ignore_index = ignore_index;
        self
    }

    /// Asks for each row's log-sum-exp in the output.
    #[must_use]
    pub fn with_lse(mut self, lse: bool) -> Self {
        self.options.lse = lse;
        self
    }

    /// The options in force.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Checks shapes and targets, and encodes targets for the kernels.
    pub(crate) fn check(&self) -> Result<Checked<'a>> {
        let [batch, classes] = self.shape;
        let shape = || format!("[{batch}, {classes}]");
        if classes == 0 {
            return Err(Error::NoClasses);
        }
        let expected = batch.checked_mul(classes).ok_or_else(|| Error::TooLarge {
            what: "logits",
            reason: format!("shape {} overflows usize", shape()),
        })?;
        if self.logits.len() != expected {
            return Err(Error::LengthMismatch {
                what: "logits",
                shape: shape(),
                expected,
                actual: self.logits.len(),
            });
        }
        if self.targets.len() != batch {
            return Err(Error::LengthMismatch {
                what: "targets",
                shape: format!("[{batch}]"),
                expected: batch,
                actual: self.targets.len(),
            });
        }
        if classes >= IGNORED as usize {
            return Err(Error::TooLarge {
                what: "logits",
                reason: format!("{classes} classes do not fit a 32-bit class index"),
            });
        }
        let ignore_index = self.options.ignore_index;
        let mut targets = Vec::with_capacity(batch);
        for row in 0..batch {
            let target = self.targets.get(row);
            if target == ignore_index {
                targets.push(IGNORED);
            } else if (0..classes as i64).contains(&target) {
                targets.push(target as u32);
            } else {
                return Err(Error::TargetOutOfRange {
                    row,
                    target,
                    classes,
                    ignore_index,
                });
            }
        }
        let valid_rows = targets.iter().filter(|&&t| t != IGNORED).count();
        Ok(Checked {
            logits: self.logits,
            batch,
            classes,
            targets,
            valid_rows,
            options: self.options,
        })
    }
}

/// The encoded target of an ignored row, as the kernels see it.
pub(crate) const IGNORED: u32 = u32::MAX;

/// A validated request: shapes agree and every target is a class or [`IGNORED`].
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub logits: &'a [f32],
    pub batch: usize,
    pub classes: usize,
    pub targets: Vec<u32>,
    pub valid_rows: usize,
    pub options: Options,
}

impl Checked<'_> {
    /// The row's class, or `None` for an ignored row.
    pub fn target(&self, row: usize) -> Option<usize> {
        let t = self.targets[row];
        (t != IGNORED).then_some(t as usize)
    }

    /// The row-major logits of one row.
    pub fn row(&self, row: usize) -> &[f32] {
        &self.logits[row * self.classes..(row + 1) * self.classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(logits: &[f32], shape: [usize; 2], targets: &[i64]) -> Result<Checked<'static>> {
        let logits: &'static [f32] = Vec::leak(logits.to_vec());
        let targets: &'static [i64] = Vec::leak(targets.to_vec());
        SoftmaxCrossEntropy::new(logits, shape, targets).check()
    }

    #[test]
    fn encodes_targets_and_counts_valid_rows() {
        let c = check(&[0.5; 6], [3, 2], &[1, -100, 0]).unwrap();
        assert_eq!(c.targets, [1, IGNORED, 0]);
        assert_eq!(c.valid_rows, 2);
        assert_eq!(c.target(1), None);
        assert_eq!(c.target(2), Some(0));
    }

    #[test]
    fn a_custom_ignore_index_replaces_the_default() {
        let t = [3_i32, 0];
        let c = SoftmaxCrossEntropy::new(&[0.1; 8], [2, 4], &t[..])
            .ignore_index(3)
            .check()
            .unwrap();
        assert_eq!(c.valid_rows, 1);
        let err = SoftmaxCrossEntropy::new(&[0.1; 8], [2, 4], &[-100_i32, 0][..])
            .ignore_index(3)
            .check()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TargetOutOfRange {
                    row: 0,
                    target: -100,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_input_gets_a_typed_error_naming_it() {
        let err = check(&[0.5; 5], [3, 2], &[0, 0, 0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "logits has 5 values, but its shape [3, 2] needs 6"
        );
        let err = check(&[0.5; 6], [3, 2], &[0, 0]).unwrap_err();
        assert!(matches!(
            err,
            Error::LengthMismatch {
                what: "targets",
                expected: 3,
                actual: 2,
                ..
            }
        ));
        assert!(matches!(
            check(&[], [3, 0], &[0, 0, 0]).unwrap_err(),
            Error::NoClasses
        ));
        let err = check(&[0.5; 6], [3, 2], &[0, 2, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target 2 at row 1 is outside [0, 2) and is not ignore_index -100"
        );
        let err = check(&[0.5; 6], [3, 2], &[0, 1, -1]).unwrap_err();
        assert!(matches!(
            err,
            Error::TargetOutOfRange {
                row: 2,
                target: -1,
                ..
            }
        ));
        let err = check(&[], [usize::MAX, 2], &[]).unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { what: "logits", .. }),
            "{err}"
        );
    }
}
