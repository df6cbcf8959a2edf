//! What comes back from a loss computation.

/// The reduced loss: one scalar, or one value per row for [`Reduction::None`](crate::Reduction).
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// The `mean` or `sum` over rows.
    Scalar(f32),
    /// One loss per row (`none`); ignored rows are 0.
    PerRow(Vec<f32>),
}

impl Loss {
    /// The scalar, for `mean` and `sum`.
    pub fn scalar(&self) -> Option<f32> {
        match self {
            Loss::Scalar(v) => Some(*v),
            Loss::PerRow(_) => None,
        }
    }

    /// The per-row losses, for `none`.
    pub fn per_row(&self) -> Option<&[f32]> {
        match self {
            Loss::Scalar(_) => None,
            Loss::PerRow(v) => Some(v),
        }
    }
}

/// The result of one loss computation, whichever backend produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// The loss after the requested reduction.
    pub loss: Loss,
    /// Each row's log-sum-exp, when it was asked for.
    pub lse: Option<Vec<f32>>,
    /// Rows whose target is not `ignore_index`: the divisor of the mean.
    pub valid_rows: usize,
}
