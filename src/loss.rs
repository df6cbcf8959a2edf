//! What is asked: the loss, its input and target, its options, and the checks every backend
//! relies on.
//!
//! Validation is pure and shared: every backend receives the same [`Checked`] request, so they
//! differ only in how they compute, never in what they accept.

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::scale::ExactSum;
use crate::shard::{MergedRow, ROW_STATS, Shard};

/// The losses xent computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Cross-entropy H(p, q) = −Σ p log q against class indices or a target distribution
    /// (`torch.nn.functional.cross_entropy`; `nll_loss` on log-probabilities).
    CrossEntropy,
    /// Multi-label binary cross-entropy (`binary_cross_entropy_with_logits` on logits,
    /// `binary_cross_entropy` on probabilities).
    BinaryCrossEntropy,
    /// KL divergence D(P‖Q) = Σ p (log p − log q) (`kl_div`).
    KlDiv,
    /// Entropy H(Q) = −Σ q log q of each row of the input.
    Entropy,
}

impl LossKind {
    /// The name the CLI uses.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "cross-entropy",
            LossKind::BinaryCrossEntropy => "binary-cross-entropy",
            LossKind::KlDiv => "kl-div",
            LossKind::Entropy => "entropy",
        }
    }

    /// Whether `none` gives one value per element (`[B, C]`) rather than one per row (`[B]`).
    pub fn elementwise(self) -> bool {
        matches!(self, LossKind::BinaryCrossEntropy | LossKind::KlDiv)
    }
}

/// What the input values are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// Unnormalized scores; q = softmax(x) (sigmoid(x) for BCE).
    #[default]
    Logits,
    /// Probabilities in [0, 1]; q = x.
    Probs,
    /// Log-probabilities; log q = x.
    LogProbs,
}

impl InputKind {
    /// The name the CLI uses.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Logits => "logits",
            InputKind::Probs => "probs",
            InputKind::LogProbs => "log-probs",
        }
    }
}

/// How per-row (or per-element) losses are combined into the result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// Unreduced: `[B]` for cross-entropy and entropy, `[B, C]` for BCE and KL.
    None,
    /// The sum.
    Sum,
    /// PyTorch's mean: over non-ignored rows, weighted by Σ w_y, for class-index cross-entropy;
    /// over rows for soft-target cross-entropy and entropy; over all B·C elements for BCE and KL.
    /// With nothing to average (every row ignored, or B = 0) the mean is 0, not NaN.
    #[default]
    Mean,
    /// The sum divided by the number of rows B.
    BatchMean,
}

/// The base of the logarithm that entropy, KL and cross-entropy are reported in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Base {
    /// Nats.
    #[default]
    E,
    /// Bits.
    Two,
    /// Bans.
    Ten,
}

impl Base {
    /// ln(base): losses in nats are divided by it.
    pub fn ln(self) -> f64 {
        match self {
            Base::E => 1.0,
            Base::Two => std::f64::consts::LN_2,
            Base::Ten => std::f64::consts::LN_10,
        }
    }
}

/// The element type of an input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE 32-bit floats.
    #[default]
    F32,
    /// IEEE 16-bit floats.
    F16,
    /// bfloat16: the high 16 bits of an f32.
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// The name the CLI uses.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// The input values, row-major [B, C]. All are computed in f32; 16-bit values are read packed on
/// the GPU, two to a 32-bit word, so no adapter needs 16-bit float support.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 16-bit IEEE floats.
    F16(&'a [f16]),
    /// bfloat16 values.
    Bf16(&'a [bf16]),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::F32(v) => v.len(),
            Input::F16(v) => v.len(),
            Input::Bf16(v) => v.len(),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Input::F32(_) => Dtype::F32,
            Input::F16(_) => Dtype::F16,
            Input::Bf16(_) => Dtype::Bf16,
        }
    }

    /// Element `i` as f32.
    pub(crate) fn get(&self, i: usize) -> f32 {
        match self {
            Input::F32(v) => v[i],
            Input::F16(v) => v[i].to_f32(),
            Input::Bf16(v) => v[i].to_f32(),
        }
    }

    /// The raw bytes of elements `range`.
    pub(crate) fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        match self {
            Input::F32(v) => bytemuck::cast_slice(&v[range]),
            Input::F16(v) => bytemuck::cast_slice(&v[range]),
            Input::Bf16(v) => bytemuck::cast_slice(&v[range]),
        }
    }
}

impl<'a> From<&'a [f32]> for Input<'a> {
    fn from(v: &'a [f32]) -> Self {
        Input::F32(v)
    }
}

impl<'a> From<&'a [f16]> for Input<'a> {
    fn from(v: &'a [f16]) -> Self {
        Input::F16(v)
    }
}

impl<'a> From<&'a [bf16]> for Input<'a> {
    fn from(v: &'a [bf16]) -> Self {
        Input::Bf16(v)
    }
}

/// What the input is compared against.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// No target (entropy).
    None,
    /// 32-bit class indices, one per row.
    ClassesI32(&'a [i32]),
    /// 64-bit class indices, one per row, as PyTorch stores them.
    ClassesI64(&'a [i64]),
    /// A row-major [B, C] distribution (cross-entropy, KL) or labels (BCE).
    Dense(&'a [f32]),
}

impl<'a> From<&'a [i32]> for Target<'a> {
    fn from(t: &'a [i32]) -> Self {
        Target::ClassesI32(t)
    }
}

impl<'a> From<&'a [i64]> for Target<'a> {
    fn from(t: &'a [i64]) -> Self {
        Target::ClassesI64(t)
    }
}

impl<'a> From<&'a [f32]> for Target<'a> {
    fn from(t: &'a [f32]) -> Self {
        Target::Dense(t)
    }
}

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// The options of a [`Request`], with PyTorch's defaults.
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
    loss: LossKind,
    input: Input<'a>,
    shape: [usize; 2],
    target: Target<'a>,
    weight: Option<&'a [f32]>,
    pos_weight: Option<&'a [f32]>,
    options: Options,
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
        self.options.grad |= in_place;
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

    /// Checks shapes, targets and options without computing anything: the error
    /// [`Engine::compute`](crate::Engine::compute) would give for bad input, before any device is
    /// opened.
    pub fn validate(&self) -> Result<()> {
        self.check().map(drop)
    }

    /// Checks shapes, targets and options, and encodes class targets for the kernels.
    pub(crate) fn check(&self) -> Result<Checked<'a>> {
        self.check_in(None, self.input)
    }

    /// Checks a request whose input is `logits`, which its gradient will overwrite: as
    /// [`check`](Self::check) checks the request over `logits`, with the gradient on. The request
    /// must be built over an empty input, and the checked request keeps it: the values are
    /// read from `logits` by whoever overwrites them.
    pub(crate) fn check_in_place(&self, logits: &[f32]) -> Result<Checked<'a>> {
        if self.input.len() != 0 {
            return Err(Error::InvalidOption {
                option: "input",
                reason: format!(
                    "an in-place request reads the logits it overwrites, and is built over an \
                     empty input, not one of {} values",
                    self.input.len()
                ),
            });
        }
        let request = self.grad_in_place(true);
        request.check_in(None, Input::F32(logits))
    }

    /// Checks a request on one vocabulary shard (see [`shard_options`]); the gradient pass writes
    /// its gradient to the caller's slice.
    pub(crate) fn check_shard(&self, shard: Shard, pass: ShardPass) -> Result<Checked<'a>> {
        let class_targets = matches!(self.target, Target::ClassesI32(_) | Target::ClassesI64(_));
        let grad = matches!(pass, ShardPass::Grad { .. });
        let mut request = *self;
        request.options = shard_options(
            self.loss,
            &self.options,
            class_targets,
            self.shape,
            shard,
            grad,
        )?;
        request.options.grad_in_place = false;
        let checked = request.check_in(Some(ShardInfo { shard, pass }), request.input)?;
        if let Some(info) = &checked.shard {
            info.pass.check_rows(checked.batch)?;
        }
        Ok(checked)
    }

    /// The checks, with the input's values and length taken from `values` (the request's own
    /// input but for an in-place request's).
    fn check_in(&self, shard: Option<ShardInfo>, values: Input) -> Result<Checked<'a>> {
        let [batch, classes] = self.shape;
        let o = &self.options;
        let loss = self.loss;
        let elements = check_shape(self.shape)?;
        length(
            "input",
            format!("[{batch}, {classes}]"),
            elements,
            values.len(),
        )?;
        if o.grad_in_place && values.dtype() != Dtype::F32 {
            return Err(Error::Unsupported {
                option: "an in-place gradient of 16-bit input",
                loss: loss.name(),
                input_kind: o.input_kind.name(),
            });
        }
        let (weight, pos_weight) = check_options(loss, o, classes, self.weight, self.pos_weight)?;
        if o.strict {
            check_finite("input", (0..elements).map(|i| values.get(i)), classes)?;
            if let Target::Dense(t) = self.target {
                check_finite("target", t.iter().copied(), classes)?;
            }
        }
        if o.input_kind == InputKind::Probs {
            check_probabilities(&values, classes)?;
        }

        let kind = match self.target {
            Target::None => TargetKind::None,
            Target::ClassesI32(_) | Target::ClassesI64(_) => TargetKind::Classes,
            Target::Dense(_) => TargetKind::Dense,
        };
        check_target_kind(loss, kind, self.shape)?;
        let target = match self.target {
            Target::None => CheckedTarget::None,
            Target::ClassesI32(t) => self.classes(t.len(), shard.as_ref(), |r| i64::from(t[r]))?,
            Target::ClassesI64(t) => self.classes(t.len(), shard.as_ref(), |r| t[r])?,
            Target::Dense(t) => {
                length("target", format!("[{batch}, {classes}]"), elements, t.len())?;
                CheckedTarget::Dense(t)
            }
        };
        let valid_rows = match &target {
            CheckedTarget::Classes(t) => t.iter().filter(|&&t| t != IGNORED).count(),
            _ => batch,
        };
        Ok(Checked {
            loss,
            input: self.input,
            batch,
            classes,
            target,
            weight,
            pos_weight,
            valid_rows,
            options: self.options,
            shard,
        })
    }

    fn classes(
        &self,
        len: usize,
        shard: Option<&ShardInfo>,
        get: impl Fn(usize) -> i64,
    ) -> Result<CheckedTarget<'a>> {
        let ignore_index = self.options.ignore_index;
        let shard = shard.map(|s| s.shard);
        encode_classes(self.shape, ignore_index, shard, len, get).map(CheckedTarget::Classes)
    }
}

/// The kind of target a request has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetKind {
    None,
    Classes,
    Dense,
}

/// Checks that a loss takes this kind of target: entropy none, cross-entropy class indices or a
/// distribution, BCE and KL a [B, C] array.
pub(crate) fn check_target_kind(
    loss: LossKind,
    kind: TargetKind,
    [batch, classes]: [usize; 2],
) -> Result<()> {
    let reason = match (loss, kind) {
        (LossKind::Entropy, TargetKind::None) => return Ok(()),
        (LossKind::Entropy, _) => "entropy takes no target".into(),
        (LossKind::CrossEntropy, TargetKind::Classes) | (_, TargetKind::Dense) => return Ok(()),
        (_, TargetKind::None) => "a target is required".into(),
        (_, TargetKind::Classes) => {
            format!("needs a float target of shape [{batch}, {classes}], not class indices")
        }
    };
    Err(Error::InvalidTarget {
        loss: loss.name(),
        reason,
    })
}

/// Checks a request on one vocabulary shard: cross-entropy on logits against the batch's class
/// indices over all `shard.total_classes`, the input holding `shard`'s classes (and the weights,
/// if any, their weights). Returns its options for the pass: for the statistics pass the
/// reduction, lse and gradient options set aside; for the gradient pass, the gradient on.
pub(crate) fn shard_options(
    loss: LossKind,
    options: &Options,
    class_targets: bool,
    [batch, classes]: [usize; 2],
    shard: Shard,
    grad: bool,
) -> Result<Options> {
    let invalid = |reason: String| Error::InvalidOption {
        option: "shard",
        reason,
    };
    if loss != LossKind::CrossEntropy || options.input_kind != InputKind::Logits || !class_targets {
        return Err(invalid(
            "vocabulary shards compute cross-entropy on logits against class indices".into(),
        ));
    }
    if shard
        .first_class
        .checked_add(classes)
        .is_none_or(|end| end > shard.total_classes)
    {
        return Err(invalid(format!(
            "classes [{}, {}) of the shard's input run past the {} classes of a row",
            shard.first_class,
            shard.first_class.saturating_add(classes),
            shard.total_classes
        )));
    }
    check_shape([batch, shard.total_classes])?;
    let mut o = *options;
    o.grad = grad;
    o.lse = false;
    if !grad {
        o.reduction = Reduction::None;
        o.grad_in_place = false;
    }
    Ok(o)
}

/// Checks B class indices (`len` of them, index r given by `get`) against C and the ignore index,
/// and encodes them for the kernels: the class, or [`IGNORED`]. In a vocabulary shard they are
/// checked against the row's total classes, and one outside the shard's is [`ELSEWHERE`].
pub(crate) fn encode_classes(
    [batch, classes]: [usize; 2],
    ignore_index: i64,
    shard: Option<Shard>,
    len: usize,
    get: impl Fn(usize) -> i64,
) -> Result<Vec<u32>> {
    length("target", format!("[{batch}]"), batch, len)?;
    let (first, total) = shard.map_or((0, classes), |s| (s.first_class, s.total_classes));
    let here = first as i64..(first + classes) as i64;
    let mut encoded = Vec::with_capacity(batch);
    for row in 0..batch {
        let target = get(row);
        if target == ignore_index {
            encoded.push(IGNORED);
        } else if here.contains(&target) {
            encoded.push((target - here.start) as u32);
        } else if (0..total as i64).contains(&target) {
            encoded.push(ELSEWHERE);
        } else {
            return Err(Error::TargetOutOfRange {
                row,
                target,
                classes: total,
                ignore_index,
            });
        }
    }
    Ok(encoded)
}

/// Checks a [B, C] shape: C ≥ 1, B·C within usize, and C within a 32-bit class index (below the
/// kernels' markers). Returns B·C.
pub(crate) fn check_shape([batch, classes]: [usize; 2]) -> Result<usize> {
    if classes == 0 {
        return Err(Error::NoClasses);
    }
    let elements = batch.checked_mul(classes).ok_or_else(|| Error::TooLarge {
        what: "input",
        reason: format!("shape [{batch}, {classes}] overflows usize"),
    })?;
    if classes >= ELSEWHERE as usize {
        return Err(Error::TooLarge {
            what: "input",
            reason: format!("{classes} classes do not fit a 32-bit class index"),
        });
    }
    Ok(elements)
}

/// A request's `weight` and `pos_weight`.
pub(crate) type ClassWeights<'w> = (Option<&'w [f32]>, Option<&'w [f32]>);

/// Checks the options against the loss and input kind, and the class weights against C; returns
/// the weights.
pub(crate) fn check_options<'w>(
    loss: LossKind,
    o: &Options,
    classes: usize,
    weight: Option<&'w [f32]>,
    pos_weight: Option<&'w [f32]>,
) -> Result<ClassWeights<'w>> {
    let unsupported = |option: &'static str| Error::Unsupported {
        option,
        loss: loss.name(),
        input_kind: o.input_kind.name(),
    };
    let logits = o.input_kind == InputKind::Logits;
    let cross_entropy = loss == LossKind::CrossEntropy;
    if !(0.0..=1.0).contains(&o.label_smoothing) {
        return Err(Error::InvalidOption {
            option: "label_smoothing",
            reason: format!("{} is outside [0, 1]", o.label_smoothing),
        });
    }
    if o.label_smoothing != 0.0 && !cross_entropy {
        return Err(unsupported("label_smoothing"));
    }
    if !(o.z_loss >= 0.0 && o.z_loss.is_finite()) {
        return Err(Error::InvalidOption {
            option: "z_loss",
            reason: format!("{} is not a finite value ≥ 0", o.z_loss),
        });
    }
    if o.z_loss != 0.0 && !(cross_entropy && logits) {
        return Err(unsupported("z_loss"));
    }
    if o.z_loss != 0.0 && o.base != Base::E {
        return Err(Error::InvalidOption {
            option: "z_loss",
            reason: "z-loss is defined in nats; use base e".into(),
        });
    }
    if let Some(cap) = o.softcap {
        if !(cap > 0.0 && cap.is_finite()) {
            return Err(Error::InvalidOption {
                option: "softcap",
                reason: format!("{cap} is not a finite value > 0"),
            });
        }
        if !(cross_entropy && logits) {
            return Err(unsupported("softcap"));
        }
    }
    if o.log_target && loss != LossKind::KlDiv {
        return Err(unsupported("log_target"));
    }
    if o.base != Base::E && loss == LossKind::BinaryCrossEntropy {
        return Err(unsupported("base"));
    }
    if o.lse && !(logits && loss != LossKind::BinaryCrossEntropy) {
        return Err(unsupported("lse"));
    }
    if loss == LossKind::BinaryCrossEntropy && o.input_kind == InputKind::LogProbs {
        return Err(unsupported("input kind"));
    }
    let weight = match weight {
        Some(_) if matches!(loss, LossKind::KlDiv | LossKind::Entropy) => {
            return Err(unsupported("weight"));
        }
        Some(w) => Some(check_weights("weight", w, classes)?),
        None => None,
    };
    let pos_weight = match pos_weight {
        Some(w) if loss == LossKind::BinaryCrossEntropy && logits => {
            Some(check_weights("pos_weight", w, classes)?)
        }
        Some(_) => return Err(unsupported("pos_weight")),
        None => None,
    };
    Ok((weight, pos_weight))
}

pub(crate) fn length(
    what: &'static str,
    shape: String,
    expected: usize,
    actual: usize,
) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            shape,
            expected,
            actual,
        })
    }
}

fn check_weights<'a>(what: &'static str, w: &'a [f32], classes: usize) -> Result<&'a [f32]> {
    length(what, format!("[{classes}]"), classes, w.len())?;
    match w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        Some(class) => Err(Error::InvalidWeight {
            what,
            class,
            value: w[class],
        }),
        None => Ok(w),
    }
}

/// Strict mode's check: no NaN and no +inf among `values`, a [B, C] array.
fn check_finite(
    what: &'static str,
    values: impl Iterator<Item = f32>,
    classes: usize,
) -> Result<()> {
    match values
        .enumerate()
        .find(|&(_, v)| v.is_nan() || v == f32::INFINITY)
    {
        Some((i, value)) => Err(Error::NonFinite {
            what,
            row: i / classes,
            class: i % classes,
            value,
        }),
        None => Ok(()),
    }
}

fn check_probabilities(input: &Input, classes: usize) -> Result<()> {
    let bad = (0..input.len()).find(|&i| !(0.0..=1.0).contains(&input.get(i)));
    match bad {
        Some(i) => Err(Error::NotAProbability {
            row: i / classes,
            class: i % classes,
            value: input.get(i),
        }),
        None => Ok(()),
    }
}

/// The encoded target of an ignored row, as the kernels see it.
pub(crate) const IGNORED: u32 = u32::MAX;
/// The encoded target of a row of a vocabulary shard whose class is in another shard (below the
/// kernels' `BAD`, u32::MAX − 1, which marks a device target out of range).
pub(crate) const ELSEWHERE: u32 = u32::MAX - 2;

/// A checked target.
#[derive(Debug)]
pub(crate) enum CheckedTarget<'a> {
    None,
    /// Class indices, with [`IGNORED`] for ignored rows.
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
    /// The gradient, from each row's merged (max, sum-exp, b) and the reduction's (main, z-loss)
    /// scales.
    Grad {
        rows: Vec<MergedRow>,
        scales: (f32, f32),
    },
}

impl ShardPass {
    /// For the gradient pass, each row's merged statistics and the reduction's scales.
    pub(crate) fn given(&self) -> Option<(&[MergedRow], (f32, f32))> {
        match self {
            ShardPass::Stats => None,
            ShardPass::Grad { rows, scales } => Some((rows, *scales)),
        }
    }

    /// The f32 values the row kernels write per row: the statistics pass writes `ROW_STATS`.
    pub(crate) fn row_stride(&self) -> u64 {
        match self {
            ShardPass::Stats => ROW_STATS as u64,
            ShardPass::Grad { .. } => 1,
        }
    }

    /// Checks that a gradient pass's merged statistics are for the request's `batch` rows.
    pub(crate) fn check_rows(&self, batch: usize) -> Result<()> {
        match self.given() {
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

impl Checked<'_> {
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

    /// The divisors of the scalar reductions, in float64: the result is
    /// Σ main / main_divisor + Σ z / z_divisor, where `main` is the loss in the chosen base and
    /// `z` the z-loss term. `None` when the mean has nothing to average (it is then 0).
    pub fn divisors(&self) -> Option<(f64, f64)> {
        self.reduce().divisors()
    }

    /// The kernels' (main, z-loss) scales: see [`Reduce::scales`].
    pub fn scales(&self) -> (f32, f32) {
        self.reduce().scales()
    }

    fn reduce(&self) -> Reduce<'_> {
        Reduce {
            loss: self.loss,
            options: &self.options,
            shape: [self.batch, self.classes],
            valid_rows: self.valid_rows,
            targets: match &self.target {
                CheckedTarget::Classes(t) => Some(&t[..]),
                _ => None,
            },
            weight: self.weight,
        }
    }
}

/// What a request's scalar reductions divide by: `valid_rows` counted rows of a [B, C] request
/// with these encoded class targets, when it has them.
#[derive(Clone, Copy)]
pub(crate) struct Reduce<'a> {
    pub loss: LossKind,
    pub options: &'a Options,
    pub shape: [usize; 2],
    pub valid_rows: usize,
    pub targets: Option<&'a [u32]>,
    pub weight: Option<&'a [f32]>,
}

impl Reduce<'_> {
    /// The divisors, in float64 (see [`Checked::divisors`]).
    pub fn divisors(&self) -> Option<(f64, f64)> {
        let [batch, classes] = self.shape;
        let rows = batch as f64;
        let ln = self.options.base.ln();
        match self.options.reduction {
            Reduction::None | Reduction::Sum => Some((ln, 1.0)),
            Reduction::BatchMean if batch == 0 => None,
            Reduction::BatchMean => Some((ln * rows, rows)),
            Reduction::Mean => match (self.targets, self.loss.elementwise()) {
                (_, _) if self.valid_rows == 0 => None,
                (Some(t), _) => {
                    // Unweighted, Σ w_y is the count of valid rows (a serial sum of ones took
                    // 7 µs at 8192 rows).
                    let weights: f64 = self.weight.map_or(self.valid_rows as f64, |w| {
                        t.iter()
                            .filter(|&&y| y != IGNORED)
                            .map(|&y| f64::from(w[y as usize]))
                            .sum()
                    });
                    Some((ln * weights, self.valid_rows as f64))
                }
                (_, true) => Some((ln * rows * classes as f64, rows)),
                (_, false) => Some((ln * rows, rows)),
            },
        }
    }

    /// The kernels' (main, z-loss) scales, the reciprocals of the divisors in f32, or 0 where the
    /// mean has nothing to average. A mean over class targets takes them from the exact Σ w_y
    /// and row count ([`ExactSum`]), as the device does for targets only it holds.
    pub fn scales(&self) -> (f32, f32) {
        match self.targets {
            Some(t) if self.options.reduction == Reduction::Mean && self.valid_rows > 0 => {
                let rows = ExactSum::count(self.valid_rows);
                let weights = self.weight.map_or(rows, |w| {
                    let mut sum = ExactSum::default();
                    t.iter()
                        .filter(|&&y| y != IGNORED)
                        .for_each(|&y| sum.add(w[y as usize]));
                    sum
                });
                (
                    weights.reciprocal(self.options.base.ln()),
                    rows.reciprocal(1.0),
                )
            }
            _ => self.divisors().map_or((0.0, 0.0), |(main, z)| {
                ((1.0 / main) as f32, (1.0 / z) as f32)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: [f32; 6] = [0.5, -1.0, 2.0, 0.25, 1.5, -0.5];
    const P: [f32; 6] = [0.2, 0.3, 0.5, 0.1, 0.1, 0.8];

    fn err(request: Request) -> Error {
        request.check().unwrap_err()
    }

    #[test]
    fn encodes_targets_and_counts_valid_rows() {
        let t = [1_i64, -100];
        let c = Request::cross_entropy(&X[..], [2, 3], &t[..])
            .check()
            .unwrap();
        let CheckedTarget::Classes(encoded) = &c.target else {
            panic!("class targets");
        };
        assert_eq!(encoded, &[1, IGNORED]);
        assert_eq!(c.valid_rows, 1);
        let t = [3_i32, 0];
        let c = Request::cross_entropy(&[0.1_f32; 8][..], [2, 4], &t[..])
            .ignore_index(3)
            .check()
            .unwrap();
        assert_eq!(c.valid_rows, 1);
    }

    #[test]
    fn shapes_and_targets_get_typed_errors_naming_them() {
        let t = [0_i64, 0];
        let e = err(Request::cross_entropy(&X[..5], [2, 3], &t[..]));
        assert_eq!(
            e.to_string(),
            "input has 5 values, but its shape [2, 3] needs 6"
        );
        let e = err(Request::cross_entropy(&X[..], [2, 3], &t[..1]));
        assert!(matches!(
            e,
            Error::LengthMismatch {
                what: "target",
                expected: 2,
                actual: 1,
                ..
            }
        ));
        assert!(matches!(
            err(Request::cross_entropy(&[] as &[f32], [2, 0], &t[..])),
            Error::NoClasses
        ));
        let e = err(Request::cross_entropy(&X[..], [2, 3], &[0_i64, 3][..]));
        assert_eq!(
            e.to_string(),
            "target 3 at row 1 is outside [0, 3) and is not ignore_index -100"
        );
        let e = err(Request::cross_entropy(&X[..], [2, 3], &[-1_i32, 0][..]));
        assert!(matches!(
            e,
            Error::TargetOutOfRange {
                row: 0,
                target: -1,
                ..
            }
        ));
        let e = err(Request::cross_entropy(&X[..], [2, 3], &P[..4]));
        assert!(matches!(
            e,
            Error::LengthMismatch {
                what: "target",
                expected: 6,
                actual: 4,
                ..
            }
        ));
        let e =
            err(Request::binary_cross_entropy(&X[..], [2, 3], &P[..])
                .input_kind(InputKind::LogProbs));
        assert!(
            matches!(
                e,
                Error::Unsupported {
                    option: "input kind",
                    ..
                }
            ),
            "{e}"
        );
        let e = err(Request::new(
            LossKind::KlDiv,
            &X[..],
            [2, 3],
            Target::ClassesI64(&t),
        ));
        assert!(e.to_string().contains("not class indices"), "{e}");
        let e = err(Request::new(
            LossKind::Entropy,
            &X[..],
            [2, 3],
            Target::Dense(&P),
        ));
        assert_eq!(e.to_string(), "entropy: entropy takes no target");
        let e = err(Request::new(
            LossKind::CrossEntropy,
            &X[..],
            [2, 3],
            Target::None,
        ));
        assert_eq!(e.to_string(), "cross-entropy: a target is required");
        let e = err(Request::cross_entropy(
            &[] as &[f32],
            [usize::MAX, 2],
            &t[..],
        ));
        assert!(matches!(e, Error::TooLarge { what: "input", .. }), "{e}");
    }

    #[test]
    fn options_out_of_range_or_out_of_place_are_refused() {
        let t = [0_i64, 2];
        let ce = || Request::cross_entropy(&X[..], [2, 3], &t[..]);
        for eps in [-0.1, 1.5, f32::NAN] {
            let e = err(ce().label_smoothing(eps));
            assert!(
                matches!(
                    e,
                    Error::InvalidOption {
                        option: "label_smoothing",
                        ..
                    }
                ),
                "{e}"
            );
        }
        assert!(ce().label_smoothing(1.0).check().is_ok());
        let e = err(ce().z_loss(-1.0));
        assert!(matches!(
            e,
            Error::InvalidOption {
                option: "z_loss",
                ..
            }
        ));
        let e = err(ce().z_loss(1e-4).base(Base::Two));
        assert!(matches!(
            e,
            Error::InvalidOption {
                option: "z_loss",
                ..
            }
        ));
        let e = err(ce().softcap(0.0));
        assert!(matches!(
            e,
            Error::InvalidOption {
                option: "softcap",
                ..
            }
        ));
        let e = err(ce().softcap(30.0).input_kind(InputKind::LogProbs));
        assert_eq!(
            e.to_string(),
            "softcap is not supported for cross-entropy on log-probs"
        );
        let e = err(ce().log_target(true));
        assert!(matches!(
            e,
            Error::Unsupported {
                option: "log_target",
                ..
            }
        ));
        let e = err(ce().pos_weight(&[1.0; 3]));
        assert!(matches!(
            e,
            Error::Unsupported {
                option: "pos_weight",
                ..
            }
        ));
        let e = err(Request::kl_div(&X[..], [2, 3], &P[..]).weight(&[1.0; 3]));
        assert!(matches!(
            e,
            Error::Unsupported {
                option: "weight",
                ..
            }
        ));
        let bce = || Request::binary_cross_entropy(&X[..], [2, 3], &P[..]);
        assert!(matches!(
            err(bce().label_smoothing(0.1)),
            Error::Unsupported { .. }
        ));
        assert!(matches!(
            err(bce().base(Base::Ten)),
            Error::Unsupported { option: "base", .. }
        ));
        assert!(matches!(
            err(bce().with_lse(true)),
            Error::Unsupported { option: "lse", .. }
        ));
        let e = err(Request::binary_cross_entropy(&P[..], [2, 3], &P[..])
            .input_kind(InputKind::Probs)
            .pos_weight(&[1.0; 3]));
        assert!(matches!(
            e,
            Error::Unsupported {
                option: "pos_weight",
                ..
            }
        ));
    }

    #[test]
    fn weights_must_fit_and_be_finite_and_non_negative() {
        let t = [0_i64, 2];
        let ce = || Request::cross_entropy(&X[..], [2, 3], &t[..]);
        let e = err(ce().weight(&[1.0; 2]));
        assert!(matches!(
            e,
            Error::LengthMismatch {
                what: "weight",
                expected: 3,
                actual: 2,
                ..
            }
        ));
        let e = err(ce().weight(&[1.0, -0.5, 1.0]));
        assert_eq!(
            e.to_string(),
            "weight[1] is -0.5; weights must be finite and ≥ 0"
        );
        let e = err(ce().weight(&[1.0, 1.0, f32::NAN]));
        assert!(matches!(
            e,
            Error::InvalidWeight {
                what: "weight",
                class: 2,
                ..
            }
        ));
        let e = err(
            Request::binary_cross_entropy(&X[..], [2, 3], &P[..]).pos_weight(&[
                1.0,
                f32::INFINITY,
                1.0,
            ]),
        );
        assert!(matches!(
            e,
            Error::InvalidWeight {
                what: "pos_weight",
                class: 1,
                ..
            }
        ));
    }

    #[test]
    fn probabilities_must_lie_in_zero_one() {
        let e = err(Request::entropy(&X[..], [2, 3]).input_kind(InputKind::Probs));
        assert_eq!(
            e.to_string(),
            "input[0, 1] is -1, not a probability in [0, 1]"
        );
        assert!(
            Request::entropy(&P[..], [2, 3])
                .input_kind(InputKind::Probs)
                .check()
                .is_ok()
        );
    }

    #[test]
    fn divisors_follow_pytorch() {
        let t = [0_i64, 2, -100];
        let x = [0.1_f32; 9];
        let w = [2.0_f32, 1.0, 0.5];
        let ce = Request::cross_entropy(&x[..], [3, 3], &t[..]).weight(&w);
        assert_eq!(ce.check().unwrap().divisors(), Some((2.5, 2.0)));
        let bits = ce
            .base(Base::Two)
            .reduction(Reduction::BatchMean)
            .check()
            .unwrap();
        assert_eq!(bits.divisors(), Some((3.0 * std::f64::consts::LN_2, 3.0)));
        let bce = Request::binary_cross_entropy(&x[..], [3, 3], &x[..])
            .check()
            .unwrap();
        assert_eq!(bce.divisors(), Some((9.0, 3.0)));
        let none = Request::cross_entropy(&x[..], [3, 3], &[-100_i64; 3][..])
            .check()
            .unwrap();
        assert_eq!(none.divisors(), None);
    }

    #[test]
    fn dtype_sizes() {
        assert_eq!(Dtype::Bf16.size(), 2);
    }
}
