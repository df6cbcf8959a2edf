//! Validation, shared by every backend: every backend receives the same checked request, so they
//! differ only in how they compute, never in what they accept. A host request
//! (`check_host.rs`) and a device request (`check_device.rs`) pass the same steps
//! ([`Head::check`]).

use super::checked::CheckedTarget;
use super::kinds::{Base, InputKind, LossKind, Reduction};
use super::markers::{ELSEWHERE, IGNORED};
use super::options::Options;
use super::reduce::Reduce;
use super::shard::Shard;
use super::values::Target;
use crate::error::{Error, Result};

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

    /// The reduction of this request, whose encoded class `targets` (when it has them) count
    /// `valid_rows` rows.
    pub(crate) fn reduce<'h>(
        &'h self,
        targets: Option<&'h [u32]>,
        valid_rows: usize,
    ) -> Reduce<'h> {
        Reduce {
            loss: self.loss,
            options: &self.options,
            shape: self.shape,
            valid_rows,
            targets,
            weight: self.weight,
        }
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

    /// The encoded class indices, for class targets.
    pub(crate) fn classes(&self) -> Option<&[u32]> {
        match self {
            CheckedTarget::Classes(t) => Some(t),
            _ => None,
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

pub(super) fn length(
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
