//! [`Request`]: one loss computation on host data, built option by option.

use super::kinds::{Base, InputKind, LossKind, Reduction};
use super::linear_head::Linear;
use super::options::Options;
use super::values::{Input, Target};

/// One loss computation: the loss, a [B, C] input, its target, class weights and options.
///
/// ```
/// use xent::{Reduction, Request};
/// let logits = [2.0_f32, 1.0, 0.1, 0.5, 2.5, 0.3];
/// let targets = [0_i64, 1];
/// let request = Request::cross_entropy(&logits[..], [2, 3], &targets[..])
///     .reduction(Reduction::Sum)
///     .label_smoothing(0.1);
/// assert_eq!(request.options().reduction, Reduction::Sum);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub(super) loss: LossKind,
    pub(super) input: Input<'a>,
    pub(super) shape: [usize; 2],
    pub(super) target: Target<'a>,
    pub(super) weight: Option<&'a [f32]>,
    pub(super) pos_weight: Option<&'a [f32]>,
    pub(super) options: Options,
    /// The output head whose logits are the input, for a fused linear cross-entropy.
    pub(super) linear: Option<Linear<'a>>,
    /// A linear request's option set on a request without a linear head, refused by the check.
    pub(super) misplaced: Option<&'static str>,
}

impl<'a> Request<'a> {
    /// A request with default options.
    pub fn new(
        loss: LossKind,
        input: impl Into<Input<'a>>,
        shape: [usize; 2],
        target: Target<'a>,
    ) -> Self {
        Request {
            loss,
            input: input.into(),
            shape,
            target,
            weight: None,
            pos_weight: None,
            options: Options::default(),
            linear: None,
            misplaced: None,
        }
    }

    /// Cross-entropy against class indices (`&[i64]`, `&[i32]`) or a [B, C] distribution
    /// (`&[f32]`).
    pub fn cross_entropy(
        input: impl Into<Input<'a>>,
        shape: [usize; 2],
        target: impl Into<Target<'a>>,
    ) -> Self {
        Self::new(LossKind::CrossEntropy, input, shape, target.into())
    }

    /// Multi-label binary cross-entropy against [B, C] labels in [0, 1].
    pub fn binary_cross_entropy(
        input: impl Into<Input<'a>>,
        shape: [usize; 2],
        labels: &'a [f32],
    ) -> Self {
        Self::new(
            LossKind::BinaryCrossEntropy,
            input,
            shape,
            Target::Dense(labels),
        )
    }

    /// KL divergence D(target ‖ input) against a [B, C] target distribution.
    pub fn kl_div(input: impl Into<Input<'a>>, shape: [usize; 2], target: &'a [f32]) -> Self {
        Self::new(LossKind::KlDiv, input, shape, Target::Dense(target))
    }

    /// The entropy of each row of the input.
    pub fn entropy(input: impl Into<Input<'a>>, shape: [usize; 2]) -> Self {
        Self::new(LossKind::Entropy, input, shape, Target::None)
    }

    /// Sets the reduction.
    #[must_use]
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.options.reduction = reduction;
        self
    }

    /// Sets what the input values are.
    #[must_use]
    pub fn input_kind(mut self, kind: InputKind) -> Self {
        self.options.input_kind = kind;
        self
    }

    /// Sets the class-index target value that marks a row to skip.
    #[must_use]
    pub fn ignore_index(mut self, ignore_index: i64) -> Self {
        self.options.ignore_index = ignore_index;
        self
    }

    /// Sets per-class weights, of length C.
    #[must_use]
    pub fn weight(mut self, weight: &'a [f32]) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Sets BCE's per-class weight of positive labels, of length C.
    #[must_use]
    pub fn pos_weight(mut self, pos_weight: &'a [f32]) -> Self {
        self.pos_weight = Some(pos_weight);
        self
    }

    /// Sets the label smoothing ε.
    #[must_use]
    pub fn label_smoothing(mut self, epsilon: f32) -> Self {
        self.options.label_smoothing = epsilon;
        self
    }

    /// Sets the z-loss coefficient.
    #[must_use]
    pub fn z_loss(mut self, s: f32) -> Self {
        self.options.z_loss = s;
        self
    }

    /// Sets the logit soft cap.
    #[must_use]
    pub fn softcap(mut self, cap: f32) -> Self {
        self.options.softcap = Some(cap);
        self
    }

    /// Says that a KL target holds log-probabilities.
    #[must_use]
    pub fn log_target(mut self, log_target: bool) -> Self {
        self.options.log_target = log_target;
        self
    }

    /// Sets the log base.
    #[must_use]
    pub fn base(mut self, base: Base) -> Self {
        self.options.base = base;
        self
    }

    /// Asks for each row's log-sum-exp in the output (logits input only).
    #[must_use]
    pub fn with_lse(mut self, lse: bool) -> Self {
        self.options.lse = lse;
        self
    }

    /// Asks for the gradient with respect to the input, returned in
    /// [`Output::grad`](crate::Output::grad).
    #[must_use]
    pub fn with_grad(mut self, grad: bool) -> Self {
        self.options.grad = grad;
        self
    }

    /// Asks for the gradient to be written over the uploaded input on the GPU (see
    /// [`Options::grad_in_place`]); implies [`with_grad`](Self::with_grad).
    #[must_use]
    pub fn grad_in_place(mut self, in_place: bool) -> Self {
        self.options.grad_in_place = in_place;
        self.options = self.options.with_in_place_grad();
        self
    }

    /// Turns strict mode on or off (see [`Options::strict`]).
    ///
    /// ```
    /// use xent::{Engine, Error, Request};
    /// let logits = [0.5_f32, f32::NAN, 1.0, 2.0];
    /// let request = Request::cross_entropy(&logits[..], [2, 2], &[0_i64, 1][..]);
    /// assert!(Engine::cpu().compute(&request).unwrap().loss.scalar().unwrap().is_nan());
    /// let err = Engine::cpu().compute(&request.strict(true)).unwrap_err();
    /// assert!(matches!(err, Error::NonFinite { what: "input", row: 0, class: 1, .. }));
    /// ```
    pub fn strict(mut self, strict: bool) -> Self {
        self.options.strict = strict;
        self
    }

    /// The options in force.
    pub fn options(&self) -> Options {
        self.options
    }

    /// The shape [B, C] of the input; of a linear request, [N, V], the shape of its logits.
    pub fn shape(&self) -> [usize; 2] {
        self.shape
    }

    /// The loss asked for.
    pub fn loss(&self) -> LossKind {
        self.loss
    }

    /// The same request on another input of the same shape: the next batch of a training loop,
    /// or an empty input for [`Engine::compute_in_place`](crate::Engine::compute_in_place).
    ///
    /// ```
    /// use xent::{Engine, Input, Request};
    /// let targets = [1_i64];
    /// let request = Request::cross_entropy(Input::F32(&[]), [1, 2], &targets[..]).z_loss(1e-4);
    /// for logits in [[0.5_f32, 1.5], [2.0, -1.0]] {
    ///     let out = Engine::cpu().compute(&request.with_input(&logits[..])).unwrap();
    ///     assert!(out.loss.scalar().unwrap() > 0.0);
    /// }
    /// ```
    #[must_use]
    pub fn with_input(mut self, input: impl Into<Input<'a>>) -> Self {
        self.input = input.into();
        self
    }
}
