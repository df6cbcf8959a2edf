//! The check of a host request: the steps every request passes ([`Head::check`]), with the checks
//! of its values (their length, and in strict mode their finiteness) where a device request
//! checks its buffers.

use super::builder::Request;
use super::check::{Head, TargetKind, length, target_kind};
use super::checked::{Checked, ShardInfo, ShardPass};
use super::kinds::{Dtype, InputKind};
use super::reduce::Scales;
use super::shard::Shard;
use super::values::{Input, Target};
use crate::error::{Error, Result};

impl<'a> Request<'a> {
    /// Checks shapes, targets and options without computing anything: the error
    /// [`Engine::compute`](crate::Engine::compute) would give for bad input, before any device is
    /// opened.
    pub fn validate(&self) -> Result<()> {
        match self.linear {
            Some(_) => self.check_linear().map(drop),
            None => self.check().map(drop),
        }
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

    /// Checks a request on one vocabulary shard (see [`Head::for_shard`]); the gradient pass writes
    /// its gradient to the caller's slice. A linear request's shards are checked by
    /// [`check_linear_shard`](Self::check_linear_shard).
    pub(crate) fn check_shard(&self, shard: Shard, pass: ShardPass) -> Result<Checked<'a>> {
        self.on_shard(shard, &pass)?
            .check_in(Some(ShardInfo { shard, pass }), self.input)
    }

    /// This request as a vocabulary shard's `pass` takes it: the shard's checks (see
    /// [`Head::for_shard`]), including that a gradient pass's merged statistics are for the
    /// request's rows, and the options of the pass. What the request's input or head holds is
    /// checked by the caller, with the [`ShardInfo`] of the pass.
    pub(super) fn on_shard(&self, shard: Shard, pass: &ShardPass) -> Result<Request<'a>> {
        let mut head = self.head();
        head.for_shard(
            target_kind(&self.target) == TargetKind::Classes,
            shard,
            matches!(pass, ShardPass::Grad { .. }),
        )?;
        pass.check_rows(self.shape[0])?;
        let mut request = *self;
        request.options = head.options;
        request.options.grad_in_place = false;
        Ok(request)
    }

    /// The checks, with the input's values and length taken from `values` (the request's own
    /// input but for an in-place request's).
    fn check_in(&self, shard: Option<ShardInfo>, values: Input) -> Result<Checked<'a>> {
        if self.linear.is_some() {
            return Err(Error::Unsupported {
                option: "a linear head here (a linear request is computed by Engine::compute \
                         and Engine::compute_linear_into)",
                loss: self.loss.name(),
                input_kind: self.options.input_kind.name(),
            });
        }
        if let Some(option) = self.misplaced {
            return Err(Error::InvalidOption {
                option,
                reason: "is an option of a linear head, and the request has none (see \
                         Request::linear_cross_entropy)"
                    .into(),
            });
        }
        let [batch, classes] = self.shape;
        let o = &self.options;
        let head = self.head();
        head.check(
            target_kind(&self.target),
            |elements| {
                length(
                    "input",
                    format!("[{batch}, {classes}]"),
                    elements,
                    values.len(),
                )?;
                if o.grad_in_place && values.dtype() != Dtype::F32 {
                    return Err(Error::Unsupported {
                        option: "an in-place gradient of 16-bit input",
                        loss: self.loss.name(),
                        input_kind: o.input_kind.name(),
                    });
                }
                Ok(())
            },
            |elements| {
                if o.strict {
                    check_finite("input", (0..elements).map(|i| values.get(i)), classes)?;
                    if let Target::Dense(t) = self.target {
                        check_finite("target", t.iter().copied(), classes)?;
                    }
                }
                if o.input_kind == InputKind::Probs {
                    check_probabilities(&values, classes)?;
                }
                Ok(())
            },
        )?;
        let target = head.check_target(self.target, shard.as_ref().map(|s| s.shard))?;
        Ok(Checked {
            loss: self.loss,
            input: self.input,
            batch,
            classes,
            valid_rows: target.valid_rows(batch),
            target,
            weight: self.weight,
            pos_weight: self.pos_weight,
            options: self.options,
            shard,
        })
    }

    pub(super) fn head(&self) -> Head<'a> {
        Head {
            loss: self.loss,
            shape: self.shape,
            options: self.options,
            weight: self.weight,
            pos_weight: self.pos_weight,
        }
    }
}

impl<'a> Checked<'a> {
    /// The divisors of the scalar reductions: see [`Reduce::divisors`](super::reduce::Reduce::divisors).
    pub fn divisors(&self) -> Option<(f64, f64)> {
        self.head()
            .reduce(self.target.classes(), self.valid_rows)
            .divisors()
    }

    /// The kernels' scales: see [`Reduce::scales`](super::reduce::Reduce::scales).
    pub fn scales(&self) -> Scales {
        self.head()
            .reduce(self.target.classes(), self.valid_rows)
            .scales()
    }

    /// Checks that a caller's gradient slice holds the whole [B, C].
    pub(crate) fn check_grad(&self, grad: &[f32]) -> Result<()> {
        length(
            "grad",
            format!("[{}, {}]", self.batch, self.classes),
            self.elements(),
            grad.len(),
        )
    }

    /// The head of the request that was checked.
    pub(crate) fn head(&self) -> Head<'a> {
        Head {
            loss: self.loss,
            shape: [self.batch, self.classes],
            options: self.options,
            weight: self.weight,
            pos_weight: self.pos_weight,
        }
    }
}

/// Strict mode's check: no NaN and no +inf among `values`, a [B, C] array.
pub(super) fn check_finite(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Base, CheckedTarget, IGNORED, LossKind, Reduction};

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
