//! The names of what a request asks for: the loss, what its input holds, the reduction, the log
//! base and the element type.

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
