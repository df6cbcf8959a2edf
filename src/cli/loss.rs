//! `xent loss`: the loss of `.npy` logits and targets.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use xent::npy::{self, ClassIndices};
use xent::{DEFAULT_IGNORE_INDEX, DeviceKind, Loss, Reduction, Result, SoftmaxCrossEntropy};

use super::DeviceChoice;

#[derive(Args, Debug)]
pub struct LossArgs {
    /// Logits: a [batch, classes] float32 .npy file.
    #[arg(long)]
    input: PathBuf,
    /// Class indices: a [batch] int64 or int32 .npy file.
    #[arg(long)]
    target: PathBuf,
    /// How per-row losses are combined.
    #[arg(long, value_enum, default_value_t = ReductionArg::Mean)]
    reduction: ReductionArg,
    /// Rows whose target equals this are skipped.
    #[arg(long, default_value_t = DEFAULT_IGNORE_INDEX, allow_negative_numbers = true)]
    ignore_index: i64,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReductionArg {
    Mean,
    Sum,
    None,
}

impl From<ReductionArg> for Reduction {
    fn from(r: ReductionArg) -> Self {
        match r {
            ReductionArg::Mean => Reduction::Mean,
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::None => Reduction::None,
        }
    }
}

pub fn run(args: &LossArgs) -> Result<()> {
    let logits = npy::read_matrix(&args.input)?;
    let targets = npy::read_class_indices(&args.target)?;
    let engine = args.device.engine()?;
    let request = match &targets {
        ClassIndices::I32(t) => SoftmaxCrossEntropy::new(&logits.data, logits.shape, &t[..]),
        ClassIndices::I64(t) => SoftmaxCrossEntropy::new(&logits.data, logits.shape, &t[..]),
    }
    .reduction(args.reduction.into())
    .ignore_index(args.ignore_index);
    let out = engine.softmax_cross_entropy(&request)?;
    let device = engine.device();
    if args.json {
        let mut doc = match &out.loss {
            Loss::Scalar(v) => json!({ "loss": v }),
            Loss::PerRow(v) => json!({ "losses": v, "shape": [v.len()] }),
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
            Loss::PerRow(rows) => rows.iter().for_each(|v| println!("{v}")),
        }
        eprintln!(
            "{} valid of {} rows, on {}",
            out.valid_rows, logits.shape[0], device
        );
    }
    Ok(())
}
