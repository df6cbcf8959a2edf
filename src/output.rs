//! What comes back from a loss computation.

/// The reduced loss: one scalar, or the unreduced values for [`Reduction::None`](crate::Reduction).
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// The `mean`, `sum` or `batchmean`.
    Scalar(f32),
    /// `none`: one value per row (`[B]`) for cross-entropy and entropy, one per element (`[B, C]`)
    /// for BCE and KL, row-major. Ignored rows are 0.
    Unreduced {
        /// The values, row-major.
        values: Vec<f32>,
        /// Their shape.
        shape: Vec<usize>,
    },
}

impl Loss {
    /// The scalar, for the scalar reductions.
    pub fn scalar(&self) -> Option<f32> {
        match self {
            Loss::Scalar(v) => Some(*v),
            Loss::Unreduced { .. } => None,
        }
    }

    /// The unreduced values, for `none`.
    pub fn values(&self) -> Option<&[f32]> {
        match self {
            Loss::Scalar(_) => None,
            Loss::Unreduced { values, .. } => Some(values),
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
    /// The gradient of the reduced loss with respect to the input, row-major [B, C] f32, when it
    /// was asked for with [`Request::with_grad`](crate::Request::with_grad) (it is then written
    /// into the caller's slice instead, with [`Engine::compute_into`](crate::Engine::compute_into)).
    /// For a linear request, the gradient of the hidden states, [N, D].
    pub grad: Option<Vec<f32>>,
    /// Rows that count: those whose class target is not `ignore_index`, or every row for the
    /// losses without class targets.
    pub valid_rows: usize,
    /// For a linear request asked for its gradient by [`Engine::compute`](crate::Engine::compute),
    /// the gradients of the head's weight and bias.
    pub linear_grads: Option<LinearGrads>,
}

/// The gradients of a linear head's weight, [V, D], and bias, `[V]` (when it has one).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGrads {
    /// ∂loss/∂W, row-major [V, D].
    pub weight: Vec<f32>,
    /// ∂loss/∂b, `[V]`.
    pub bias: Option<Vec<f32>>,
}

/// The caller's slices that [`Engine::compute_linear_into`](crate::Engine::compute_linear_into)
/// puts a linear request's gradients into, each optional: the hidden states' [N, D], the
/// weight's [V, D] and the bias's `[V]`. A training loop that accumulates the head's gradient over
/// micro-batches sets `add`.
#[derive(Debug, Default)]
pub struct LinearGradsMut<'g> {
    /// ∂loss/∂H, row-major [N, D].
    pub hidden: Option<&'g mut [f32]>,
    /// ∂loss/∂W, row-major [V, D].
    pub weight: Option<&'g mut [f32]>,
    /// ∂loss/∂b, `[V]`.
    pub bias: Option<&'g mut [f32]>,
    /// Add the gradients to what the slices hold instead of overwriting it.
    pub add: bool,
}

/// How a [`KernelTime`] was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamps written at the start and end of every compute pass, summed: the device's
    /// own time, with no host in it.
    Timestamps,
    /// Each pass submitted on its own after everything before it had finished, and timed on the
    /// host: an upper bound, with a submission and a wait in each pass.
    WallAfterSync,
    /// The host's wall time of the whole call: the CPU paths, where the call is the kernel.
    Host,
}

/// The time a call spent in its kernels: on a GPU the row passes and the reduction, without the
/// uploads and readbacks around them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelTime {
    /// Seconds in the kernels.
    pub seconds: f64,
    /// How they were measured.
    pub clock: Clock,
}
