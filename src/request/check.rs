//! Validation, shared by every backend: every backend receives the same [`Checked`] request, so
//! they differ only in how they compute, never in what they accept. A host request and a device
//! request (`check_device.rs`) pass the same steps ([`Head::check`]).

use super::builder::Request;
use super::checked::{Checked, CheckedTarget, ShardInfo, ShardPass};
use super::kinds::{Base, Dtype, InputKind, LossKind, Reduction};
use super::markers::{ELSEWHERE, IGNORED};
use super::options::Options;
use super::shard::Shard;
use super::values::{Input, Target};
use crate::error::{Error, Result};

impl<'a> Request<'a> {
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
        let mut head = self.head();
        head.for_shard(
            target_kind(&self.target) == TargetKind::Classes,
            shard,
            matches!(pass, ShardPass::Grad { .. }),
        )?;
        let mut request = *self;
        request.options = head.options;
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

    fn head(&self) -> Head<'a> {
        Head {
            loss: self.loss,
            shape: self.shape,
            options: self.options,
            weight: self.weight,
            pos_weight: self.pos_weight,
        }
    }
}

/// What every request states besides where its values are: the loss, the [B, C] shape, the
/// options and the class weights. Host and device requests check it by the same steps
/// ([`Head::check`]), each adding only what its values' place allows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head<'w> {
    pub loss: LossKind,
    pub shape: [usize; 2],
    pub options: Options,
    pub weight: Option<&'w [f32]>,
    pub pos_weight: Option<&'w [f32]>,
}

impl<'w> Head<'w> {
    /// The checks every request passes, host or device, in this order: the shape; `input`, what
    /// the input alone tells before the options (given B·C); the options and the class weights;
    /// `values`, what needs the options checked first; the kind of the target (`kind`). Returns
    /// B·C. The target's own checks follow ([`Head::check_target`] for one on the host).
    pub(crate) fn check(
        &self,
        kind: TargetKind,
        input: impl FnOnce(usize) -> Result<()>,
        values: impl FnOnce(usize) -> Result<()>,
    ) -> Result<usize> {
        let elements = check_shape(self.shape)?;
        input(elements)?;
        check_options(
            self.loss,
            &self.options,
            self.shape[1],
            self.weight,
            self.pos_weight,
        )?;
        values(elements)?;
        check_target_kind(self.loss, kind, self.shape)?;
        Ok(elements)
    }

    /// Makes this the head of a request on one vocabulary shard, with the options of its pass
    /// (see [`shard_options`]): its target is class indices when `class_targets`, and the pass
    /// is the gradient's when `grad`.
    pub(crate) fn for_shard(
        &mut self,
        class_targets: bool,
        shard: Shard,
        grad: bool,
    ) -> Result<()> {
        self.options = shard_options(
            self.loss,
            &self.options,
            class_targets,
            self.shape,
            shard,
            grad,
        )?;
        Ok(())
    }

    /// Checks a target held on the host against the shape (and, in a vocabulary `shard`, the
    /// row's total classes), and encodes class indices for the kernels (see [`encode_classes`]).
    pub(crate) fn check_target<'t>(
        &self,
        target: Target<'t>,
        shard: Option<Shard>,
    ) -> Result<CheckedTarget<'t>> {
        let [batch, classes] = self.shape;
        let ignore = self.options.ignore_index;
        Ok(match target {
            Target::None => CheckedTarget::None,
            Target::ClassesI32(t) => {
                CheckedTarget::Classes(encode_classes(self.shape, ignore, shard, t.len(), |r| {
                    i64::from(t[r])
                })?)
            }
            Target::ClassesI64(t) => {
                CheckedTarget::Classes(encode_classes(self.shape, ignore, shard, t.len(), |r| {
                    t[r]
                })?)
            }
            Target::Dense(t) => {
                length(
                    "target",
                    format!("[{batch}, {classes}]"),
                    batch * classes,
                    t.len(),
                )?;
                CheckedTarget::Dense(t)
            }
        })
    }
}

impl CheckedTarget<'_> {
    /// The rows a mean averages over, of `batch`: those whose class target is not ignored.
    pub(crate) fn valid_rows(&self, batch: usize) -> usize {
        match self {
            CheckedTarget::Classes(t) => t.iter().filter(|&&t| t != IGNORED).count(),
            _ => batch,
        }
    }

    /// Its kind.
    pub(crate) fn kind(&self) -> TargetKind {
        match self {
            CheckedTarget::None => TargetKind::None,
            CheckedTarget::Classes(_) => TargetKind::Classes,
            CheckedTarget::Dense(_) => TargetKind::Dense,
        }
    }
}

impl<'a> Checked<'a> {
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

/// The kind of a target held on the host.
pub(super) fn target_kind(target: &Target) -> TargetKind {
    match target {
        Target::None => TargetKind::None,
        Target::ClassesI32(_) | Target::ClassesI64(_) => TargetKind::Classes,
        Target::Dense(_) => TargetKind::Dense,
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
fn check_target_kind(loss: LossKind, kind: TargetKind, [batch, classes]: [usize; 2]) -> Result<()> {
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
fn shard_options(
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
pub(super) fn encode_classes(
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
pub(super) fn check_shape([batch, classes]: [usize; 2]) -> Result<usize> {
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
pub(super) type ClassWeights<'w> = (Option<&'w [f32]>, Option<&'w [f32]>);

/// Checks the options against the loss and input kind, and the class weights against C; returns
/// the weights.
pub(super) fn check_options<'w>(
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

fn length(what: &'static str, shape: String, expected: usize, actual: usize) -> Result<()> {
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
    fn dtype_names_are_the_cli_values() {
        use clap::ValueEnum;
        for dtype in Dtype::value_variants() {
            let value = dtype.to_possible_value().unwrap();
            assert_eq!(value.get_name(), dtype.name());
            assert_eq!(Dtype::from_str(dtype.name(), false), Ok(*dtype));
        }
        assert_eq!(Dtype::value_variants().len(), 3);
        assert_eq!(Dtype::Bf16.size(), 2);
    }
}
