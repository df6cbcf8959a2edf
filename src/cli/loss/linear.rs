//! `xent loss --linear-weight`: the head's files, and the gradients of the hidden states, the
//! weight and the bias written straight into their `.npy` files' mappings.

use std::borrow::Cow;
use std::path::PathBuf;

use xent::io::{Floats, Source, npy};
use xent::{Engine, Error, LinearGradsMut, Output, Request};

use super::LossArgs;
use super::files::{matrix, open, optional, vector};
use crate::cli::failure::Failure;

/// A linear head's files, opened.
pub struct HeadFiles {
    weight: Source,
    bias: Option<Source>,
}

/// A linear head's values: the weight [V, D], and the bias [V] when there is one.
pub struct Head<'a> {
    pub weight: Floats<'a>,
    pub shape: [usize; 2],
    pub bias: Option<Cow<'a, [f32]>>,
}

impl HeadFiles {
    /// The head's files, when `--linear-weight` names one; its other flags without it are an
    /// error naming them.
    pub fn open(args: &LossArgs) -> Result<Option<HeadFiles>, Failure> {
        let Some(weight) = &args.linear_weight else {
            let stray = [
                (
                    "--linear-weight-tensor",
                    args.linear_weight_tensor.is_some(),
                ),
                ("--linear-bias", args.linear_bias.is_some()),
                (
                    "--linear-weight-grad-out",
                    args.linear_weight_grad_out.is_some(),
                ),
                (
                    "--linear-bias-grad-out",
                    args.linear_bias_grad_out.is_some(),
                ),
            ];
            return match stray.iter().find(|(_, set)| *set) {
                Some((flag, _)) => Err(Failure::about(
                    flag,
                    Error::InvalidOption {
                        option: "linear_weight",
                        reason: "is a flag of a linear head, and --linear-weight names none".into(),
                    },
                )),
                None => Ok(None),
            };
        };
        if args.linear_bias_grad_out.is_some() && args.linear_bias.is_none() {
            return Err(Failure::about(
                "--linear-bias-grad-out",
                Error::InvalidOption {
                    option: "linear_bias",
                    reason: "the head has no bias; give one with --linear-bias".into(),
                },
            ));
        }
        Ok(Some(HeadFiles {
            weight: open("--linear-weight", weight)?,
            bias: optional("--linear-bias", &args.linear_bias)?,
        }))
    }

    /// The head's values, read in place where they can be.
    pub fn read(&self, args: &LossArgs) -> Result<Head<'_>, Failure> {
        let (weight, shape) = matrix(
            "--linear-weight",
            &self.weight,
            args.linear_weight_tensor.as_deref(),
            "--linear-weight-tensor",
        )?;
        Ok(Head {
            weight,
            shape,
            bias: vector("--linear-bias", self.bias.as_ref())?,
        })
    }
}

/// Creates the `.npy` file of `flag`, when it names one, for an array of `shape`.
fn writer(
    flag: &'static str,
    path: &Option<PathBuf>,
    shape: &[usize],
) -> Result<Option<npy::Writer>, Failure> {
    path.as_deref()
        .map(|p| npy::Writer::create(p, shape).map_err(|e| Failure::about(flag, e)))
        .transpose()
}

/// Computes a linear request, writing each gradient that a flag asks for into its file: all
/// three files are created first and renamed into place only once the computation has
/// succeeded.
pub fn compute(
    engine: &Engine,
    request: &Request,
    args: &LossArgs,
    [n, d]: [usize; 2],
    [v, _]: [usize; 2],
) -> Result<Output, Failure> {
    let mut hidden = writer("--grad-out", &args.grad_out, &[n, d])?;
    let mut weight = writer(
        "--linear-weight-grad-out",
        &args.linear_weight_grad_out,
        &[v, d],
    )?;
    let mut bias = writer("--linear-bias-grad-out", &args.linear_bias_grad_out, &[v])?;
    let grads = LinearGradsMut {
        hidden: hidden.as_mut().map(npy::Writer::values_mut),
        weight: weight.as_mut().map(npy::Writer::values_mut),
        bias: bias.as_mut().map(npy::Writer::values_mut),
        add: false,
    };
    let out = engine.compute_linear_into(request, grads)?;
    for (flag, file) in [
        ("--grad-out", hidden),
        ("--linear-weight-grad-out", weight),
        ("--linear-bias-grad-out", bias),
    ] {
        if let Some(file) = file {
            file.finish().map_err(|e| Failure::about(flag, e))?;
        }
    }
    Ok(out)
}
