//! `xent loss`: a loss of `.npy` inputs (the input may be a `.safetensors` tensor).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use xent::io::{Floats, Source, TargetData, npy};
use xent::{
    Argument, Base, DEFAULT_IGNORE_INDEX, DeviceKind, Engine, Error, InputKind, Loss, LossKind,
    Reduction, Request, Result, Target,
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
    #[arg(long)]
    grad_out: Option<PathBuf>,
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

/// The file at `path` when there is one, opened for the reader of `flag`.
fn optional(
    flag: &'static str,
    path: &Option<PathBuf>,
) -> std::result::Result<Option<Source>, Failure> {
    path.as_deref().map(|p| open(flag, p)).transpose()
}

/// The file at `path`, opened for the reader of `flag`.
fn open(flag: &'static str, path: &Path) -> std::result::Result<Source, Failure> {
    Source::open(path).map_err(|e| Failure::about(flag, e))
}

fn weights<'a>(
    flag: &'static str,
    file: Option<&'a Source>,
) -> std::result::Result<Option<Cow<'a, [f32]>>, Failure> {
    let read = file.map(npy::read_vector).transpose();
    read.map_err(|e| Failure::about(flag, e))
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

fn target<'a>(file: &'a Source, loss: LossKind, shape: [usize; 2]) -> Result<TargetData<'a>> {
    let data = npy::read_target(file)?;
    if let TargetData::Dense(_, dims) = &data
        && dims[..] != shape
    {
        return Err(Error::InvalidTarget {
            loss: loss.name(),
            reason: format!(
                "{}: a float target must have the input's shape {shape:?}, not {dims:?}",
                file.path().display()
            ),
        });
    }
    Ok(data)
}

/// The input, from a `.safetensors` file (by its extension) or else a `.npy` one.
fn input<'a>(
    args: &LossArgs,
    file: &'a Source,
) -> std::result::Result<(Floats<'a>, [usize; 2]), Failure> {
    let path = file.path();
    let safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let read = match (safetensors, &args.tensor) {
        (true, tensor) => xent::io::safetensors::read_input(file, tensor.as_deref()),
        (false, None) => npy::read_input(file),
        (false, Some(_)) => {
            return Err(Failure::about(
                "--tensor",
                Error::InvalidOption {
                    option: "tensor",
                    reason: format!(
                        "names a tensor of a .safetensors input, and {} is read as .npy",
                        path.display()
                    ),
                },
            ));
        }
    };
    read.map_err(|e| Failure::about("--input", e))
}

pub fn run(args: &LossArgs) -> std::result::Result<(), Failure> {
    let loss = args.loss.kind();
    let input_file = open("--input", &args.input)?;
    let (input, shape) = input(args, &input_file)?;
    let target_file = optional("--target", &args.target)?;
    let target = target_file
        .as_ref()
        .map(|file| target(file, loss, shape))
        .transpose()
        .map_err(|e| Failure::about("--target", e))?;
    let weight_file = optional("--weight", &args.weight)?;
    let weight = weights("--weight", weight_file.as_ref())?;
    let pos_weight_file = optional("--pos-weight", &args.pos_weight)?;
    let pos_weight = weights("--pos-weight", pos_weight_file.as_ref())?;
    let mut request = Request::new(
        loss,
        input.as_input(),
        shape,
        target.as_ref().map_or(Target::None, TargetData::as_target),
    )
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
    if let Some(cap) = args.softcap {
        request = request.softcap(cap);
    }
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
    let out = match &args.grad_out {
        Some(path) => {
            let about = |e| Failure::about("--grad-out", e);
            let mut file = npy::Writer::create(path, &shape).map_err(about)?;
            let out = engine.compute_into(&request, file.values_mut())?;
            file.finish().map_err(about)?;
            out
        }
        None => engine.compute(&request)?,
    };
    let device = engine.device();
    if args.json {
        let mut doc = match &out.loss {
            Loss::Scalar(v) => json!({ "loss": v }),
            Loss::Unreduced { values, shape } => json!({ "losses": values, "shape": shape }),
        };
        let kind = match device.kind {
            DeviceKind::Gpu => "gpu",
            DeviceKind::Cpu => "cpu",
        };
        if let Value::Object(map) = &mut doc {
            map.insert("device".into(), kind.into());
            map.insert("adapter".into(), device.adapter.clone().into());
            map.insert("backend".into(), device.backend.clone().into());
            map.insert("valid_rows".into(), out.valid_rows.into());
        }
        println!("{doc}");
    } else {
        match &out.loss {
            Loss::Scalar(v) => println!("{v}"),
            Loss::Unreduced { values, shape } => {
                let width = if shape.len() == 2 { shape[1] } else { 1 };
                for row in values.chunks(width) {
                    let row: Vec<String> = row.iter().map(f32::to_string).collect();
                    println!("{}", row.join(" "));
                }
            }
        }
        eprintln!(
            "{} on {} {} input, {} valid of {} rows, on {}",
            loss.name(),
            input.dtype(),
            request.options().input_kind.name(),
            out.valid_rows,
            shape[0],
            device
        );
    }
    Ok(())
}
