//! `xent loss`: a loss of `.npy` inputs (the input may be a `.safetensors` tensor), or of the
//! logits of a linear head (`--linear-weight`). The files are read in `files`, a linear head's
//! gradients written in `linear`, the result printed in `report`.

mod files;
mod linear;
mod report;

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use xent::io::{TargetData, npy};
use xent::{
    Argument, Base, DEFAULT_IGNORE_INDEX, Engine, Error, InputKind, LossKind, Reduction, Request,
    Result, Target,
};

use super::failure::Failure;

#[derive(Args, Debug)]
pub struct LossArgs {
    /// The input: a [batch, classes] float16, float32 or float64 .npy file, or a BF16, F16 or
    /// F32 tensor in a .safetensors file (computed in f32).
    #[arg(long)]
    input: PathBuf,
    /// The tensor of a .safetensors input to read, when it holds more than one.
    #[arg(long)]
    tensor: Option<String>,
    /// What the input values are.
    #[arg(long, value_enum, default_value_t = InputKindArg::Logits)]
    input_kind: InputKindArg,
    /// The target: [batch] int32/int64 class indices, or a [batch, classes] float distribution
    /// (labels for BCE). Entropy takes none.
    #[arg(long)]
    target: Option<PathBuf>,
    /// The loss.
    #[arg(long, value_enum, default_value_t = LossArg::CrossEntropy)]
    loss: LossArg,
    /// How values are combined.
    #[arg(long, value_enum, default_value_t = ReductionArg::Mean)]
    reduction: ReductionArg,
    /// Class-index rows whose target equals this are skipped.
    #[arg(long, default_value_t = DEFAULT_IGNORE_INDEX, allow_negative_numbers = true)]
    ignore_index: i64,
    /// Per-class weights: a [classes] float .npy file.
    #[arg(long)]
    weight: Option<PathBuf>,
    /// BCE's per-class weights of positive labels: a [classes] float .npy file.
    #[arg(long)]
    pos_weight: Option<PathBuf>,
    /// Label smoothing ε in [0, 1] (cross-entropy).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// z-loss coefficient: adds s·lse² per row (cross-entropy on logits).
    #[arg(long, default_value_t = 0.0)]
    z_loss: f32,
    /// Soft cap c: x ← c·tanh(x/c) before the softmax (cross-entropy on logits).
    #[arg(long)]
    softcap: Option<f32>,
    /// KL: the target holds log-probabilities.
    #[arg(long)]
    log_target: bool,
    /// Log base of cross-entropy, KL and entropy.
    #[arg(long, value_enum, default_value_t = BaseArg::E)]
    base: BaseArg,
    /// Write the gradient of the loss with respect to the input (float32, the input's shape,
    /// whatever the input's dtype) to this .npy file. For `none` it is the gradient of the sum of
    /// the values.
    /// With a linear head, the gradient of the hidden states (float32, [N, D]).
    #[arg(long)]
    grad_out: Option<PathBuf>,
    /// A linear head: fused linear cross-entropy on the logits input · Wᵀ (+ b), where --input
    /// holds the [N, D] hidden states and this the [V, D] weight (.npy, or a tensor of a
    /// .safetensors file); the [N, V] logits are never held whole. Computed on the CPU.
    #[arg(long)]
    linear_weight: Option<PathBuf>,
    /// The tensor of a .safetensors --linear-weight to read (`lm_head.weight`), when it holds
    /// more than one.
    #[arg(long)]
    linear_weight_tensor: Option<String>,
    /// The linear head's bias: a [V] float .npy file.
    #[arg(long)]
    linear_bias: Option<PathBuf>,
    /// Write the gradient of the linear head's weight (float32, [V, D]) to this .npy file.
    #[arg(long)]
    linear_weight_grad_out: Option<PathBuf>,
    /// Write the gradient of the linear head's bias (float32, [V]) to this .npy file.
    #[arg(long)]
    linear_bias_grad_out: Option<PathBuf>,
    /// Strict mode: a NaN or +inf in the input or a float target is an error naming its row,
    /// instead of making that row's loss NaN. −inf stays valid (a masked logit).
    #[arg(long)]
    strict: bool,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum LossArg {
    CrossEntropy,
    BinaryCrossEntropy,
    KlDiv,
    Entropy,
}

impl LossArg {
    pub(super) fn kind(self) -> LossKind {
        match self {
            LossArg::CrossEntropy => LossKind::CrossEntropy,
            LossArg::BinaryCrossEntropy => LossKind::BinaryCrossEntropy,
            LossArg::KlDiv => LossKind::KlDiv,
            LossArg::Entropy => LossKind::Entropy,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum InputKindArg {
    Logits,
    Probs,
    LogProbs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReductionArg {
    Mean,
    Sum,
    None,
    Batchmean,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BaseArg {
    #[value(name = "e")]
    E,
    #[value(name = "2")]
    Two,
    #[value(name = "10")]
    Ten,
}

/// Which engine a command runs on.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
enum DeviceChoice {
    /// A hardware GPU when there is one, or else the fast CPU path.
    #[default]
    Auto,
    /// The best GPU adapter, software ones included; an error when there is none.
    Gpu,
    /// The fast CPU path (SIMD, threads, f32).
    Cpu,
    /// The float64 CPU reference.
    Reference,
}

impl DeviceChoice {
    fn engine(self) -> Result<Engine> {
        match self {
            DeviceChoice::Auto => Ok(Engine::new()),
            DeviceChoice::Gpu => Engine::gpu(),
            DeviceChoice::Cpu => Ok(Engine::cpu()),
            DeviceChoice::Reference => Ok(Engine::reference()),
        }
    }
}

/// The flag that sets `argument`, if the CLI has one.
fn flag_of(argument: Argument) -> Option<&'static str> {
    match argument {
        Argument::Input => Some("--input"),
        Argument::Target => Some("--target"),
        Argument::Weight => Some("--weight"),
        Argument::PosWeight => Some("--pos-weight"),
        Argument::InputKind => Some("--input-kind"),
        Argument::LabelSmoothing => Some("--label-smoothing"),
        Argument::ZLoss => Some("--z-loss"),
        Argument::Softcap => Some("--softcap"),
        Argument::LogTarget => Some("--log-target"),
        Argument::Base => Some("--base"),
        Argument::LinearWeight => Some("--linear-weight"),
        Argument::LinearBias => Some("--linear-bias"),
        // The CLI never asks for the log-sum-exp.
        Argument::Lse => None,
    }
}

/// A request's error, with the flag it concerns.
fn request_failure(error: Error) -> Failure {
    match error.argument().and_then(flag_of) {
        Some(flag) => Failure::about(flag, error),
        None => error.into(),
    }
}

/// `request` with the options the flags set.
fn with_options<'a>(args: &LossArgs, mut request: Request<'a>) -> Request<'a> {
    request = request
        .input_kind(match args.input_kind {
            InputKindArg::Logits => InputKind::Logits,
            InputKindArg::Probs => InputKind::Probs,
            InputKindArg::LogProbs => InputKind::LogProbs,
        })
        .reduction(match args.reduction {
            ReductionArg::Mean => Reduction::Mean,
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::None => Reduction::None,
            ReductionArg::Batchmean => Reduction::BatchMean,
        })
        .ignore_index(args.ignore_index)
        .label_smoothing(args.label_smoothing)
        .z_loss(args.z_loss)
        .log_target(args.log_target)
        .with_grad(args.grad_out.is_some())
        .strict(args.strict)
        .base(match args.base {
            BaseArg::E => Base::E,
            BaseArg::Two => Base::Two,
            BaseArg::Ten => Base::Ten,
        });
    match args.softcap {
        Some(cap) => request.softcap(cap),
        None => request,
    }
}

pub fn run(args: &LossArgs) -> std::result::Result<(), Failure> {
    let loss = args.loss.kind();
    let input_file = files::open("--input", &args.input)?;
    let (input, shape) = files::matrix("--input", &input_file, args.tensor.as_deref(), "--tensor")?;
    let head_files = linear::HeadFiles::open(args)?;
    let head = head_files.as_ref().map(|h| h.read(args)).transpose()?;
    if head.is_some() && loss != LossKind::CrossEntropy {
        return Err(Failure::about(
            "--linear-weight",
            Error::Unsupported {
                option: "a linear head",
                loss: loss.name(),
                input_kind: "logits",
            },
        ));
    }
    let logits_shape = head.as_ref().map_or(shape, |h| [shape[0], h.shape[0]]);
    let whose = if head.is_some() { "logits'" } else { "input's" };
    let target_file = files::optional("--target", &args.target)?;
    let target = target_file
        .as_ref()
        .map(|file| files::target(file, loss, logits_shape, whose))
        .transpose()?;
    let target = target.as_ref().map_or(Target::None, TargetData::as_target);
    let weight_file = files::optional("--weight", &args.weight)?;
    let weight = files::vector("--weight", weight_file.as_ref())?;
    let pos_weight_file = files::optional("--pos-weight", &args.pos_weight)?;
    let pos_weight = files::vector("--pos-weight", pos_weight_file.as_ref())?;
    let mut request = match &head {
        Some(h) => {
            let r = Request::linear_cross_entropy(
                input.as_input(),
                shape,
                h.weight.as_input(),
                h.shape,
                target,
            );
            match &h.bias {
                Some(b) => r.linear_bias(b),
                None => r,
            }
        }
        None => Request::new(loss, input.as_input(), shape, target),
    };
    request = with_options(args, request);
    if let Some(w) = &weight {
        request = request.weight(w);
    }
    if let Some(w) = &pos_weight {
        request = request.pos_weight(w);
    }
    request.validate().map_err(request_failure)?;
    let engine = args
        .device
        .engine()
        .map_err(|e| Failure::about("--device", e))?;
    let out = match (&head, &args.grad_out) {
        (Some(h), _) => linear::compute(&engine, &request, args, shape, h.shape)?,
        (None, Some(path)) => {
            let about = |e| Failure::about("--grad-out", e);
            let mut file = npy::Writer::create(path, &shape).map_err(about)?;
            let out = engine.compute_into(&request, file.values_mut())?;
            file.finish().map_err(about)?;
            out
        }
        (None, None) => engine.compute(&request)?,
    };
    let what = match &head {
        Some(h) => format!(
            "linear {} on {} hidden states [{}, {}] and a {} head [{}, {}]",
            loss.name(),
            input.dtype(),
            shape[0],
            shape[1],
            h.weight.dtype(),
            h.shape[0],
            h.shape[1]
        ),
        None => format!(
            "{} on {} {} input",
            loss.name(),
            input.dtype(),
            request.options().input_kind.name()
        ),
    };
    report::print(&out, &engine, args.json, &what, shape[0]);
    Ok(())
}
