//! A request's options, with PyTorch's defaults.

use super::kinds::{Base, InputKind, Reduction};

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// The options of a [`Request`](super::Request), with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// How values are combined.
    pub reduction: Reduction,
    /// What the input values are.
    pub input_kind: InputKind,
    /// Class-index rows whose target equals this are skipped: loss 0, not counted by the mean.
    pub ignore_index: i64,
    /// Label smoothing ε in [0, 1] (cross-entropy): the target becomes (1 − ε)p + ε/C.
    pub label_smoothing: f32,
    /// z-loss s ≥ 0 (cross-entropy on logits): adds s·lse² per row, averaged over valid rows.
    pub z_loss: f32,
    /// Soft cap c > 0 (cross-entropy on logits): x ← c·tanh(x/c) before the softmax.
    pub softcap: Option<f32>,
    /// KL only: the target holds log-probabilities.
    pub log_target: bool,
    /// The log base of cross-entropy, KL and entropy.
    pub base: Base,
    /// Also return each row's log-sum-exp (logits input only).
    pub lse: bool,
    /// Also compute the gradient of the reduced loss with respect to the input (for `none`, of
    /// the sum of the unreduced values).
    pub grad: bool,
    /// On the GPU, write the gradient over the input instead of a buffer of its own; implies
    /// `grad`. For a host request, over the uploaded copy (f32 input only): the result is the
    /// same, and the device needs no memory for it. For a device-resident request, over the
    /// caller's input buffer, in its dtype.
    pub grad_in_place: bool,
    /// Strict mode: a NaN or +inf in the input or a dense target is an error that names its row
    /// and class, found before anything is computed. Off by default, where a NaN makes its own
    /// row NaN and nothing else. −inf stays valid either way: it is how a logit is masked, and a
    /// log-probability of 0.
    pub strict: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reduction: Reduction::Mean,
            input_kind: InputKind::Logits,
            ignore_index: DEFAULT_IGNORE_INDEX,
            label_smoothing: 0.0,
            z_loss: 0.0,
            softcap: None,
            log_target: false,
            base: Base::E,
            lse: false,
            grad: false,
            grad_in_place: false,
            strict: false,
        }
    }
}

impl Options {
    /// These options as a computation reads them: a gradient asked for in place is a gradient.
    pub(crate) fn with_in_place_grad(mut self) -> Self {
        self.grad |= self.grad_in_place;
        self
    }
}
