//! A loss request drawn from the fuzz input: any loss, shape [B, C] with B·C ≤ 4096 (lengths that
//! do not match it too), inputs with NaN, ±inf and huge values, targets in and out of range,
//! weights of any length and value, and every option, in and out of its range. `validate` and
//! both CPU engines must agree on `Ok` or the same one-line error, and where both engines compute
//! a finite scalar they must agree within 1e-3 relative + 1e-3 absolute.

#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use half::f16;
use libfuzzer_sys::fuzz_target;
use xent::{
    Base, DEFAULT_IGNORE_INDEX, Engine, Input, InputKind, Loss, LossKind, Reduction, Request,
    Target,
};

/// Values that break things, drawn one time in eight.
const SPECIAL: [f32; 16] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    1e-40,
    0.0,
    -0.0,
    1.0,
    -1.0,
    1e30,
    -1e30,
    88.0,
    -104.0,
    0.5,
];

/// A float: mostly moderate (in [-16, 16) for logits, [0, 1] for probabilities), sometimes
/// special, sometimes any bits at all.
fn float(u: &mut Unstructured, unit: bool) -> Result<f32> {
    Ok(match u.int_in_range(0_u8..=15)? {
        0 => *u.choose(&SPECIAL)?,
        1 => f32::from_bits(u.arbitrary()?),
        _ if unit => f32::from(u.arbitrary::<u16>()?) / 65535.0,
        _ => f32::from(u.arbitrary::<i16>()?) / 2048.0,
    })
}

/// A length: `n` mostly, one time in sixteen a little off.
fn length(u: &mut Unstructured, n: usize) -> Result<usize> {
    Ok(if u.ratio(1, 16)? {
        (n + u.int_in_range(0..=2)?).saturating_sub(u.int_in_range(0..=2)?)
    } else {
        n
    })
}

fn floats(u: &mut Unstructured, n: usize, unit: bool) -> Result<Vec<f32>> {
    (0..n).map(|_| float(u, unit)).collect()
}

/// A class index: in [0, C) mostly, else the ignore index, or out of range.
fn class(u: &mut Unstructured, classes: usize, ignore_index: i64) -> Result<i64> {
    Ok(match u.int_in_range(0_u8..=15)? {
        0 => ignore_index,
        1 => *u.choose(&[
            -1,
            classes as i64,
            classes as i64 + 1,
            i64::MIN,
            i64::MAX,
            i64::from(i32::MIN),
            DEFAULT_IGNORE_INDEX,
        ])?,
        2 => u.arbitrary()?,
        _ => u.int_in_range(0..=classes.saturating_sub(1) as i64)?,
    })
}

/// An option's value: mostly in `range`, sometimes special.
fn option(u: &mut Unstructured, low: f32, high: f32) -> Result<f32> {
    Ok(if u.ratio(1, 8)? {
        *u.choose(&SPECIAL)?
    } else {
        low + (high - low) * f32::from(u.arbitrary::<u16>()?) / 65535.0
    })
}

enum TargetData {
    None,
    I32(Vec<i32>),
    I64(Vec<i64>),
    Dense(Vec<f32>),
}

/// What the fuzz input asks for; the request borrows from it.
struct Case {
    loss: LossKind,
    shape: [usize; 2],
    input_kind: InputKind,
    input: Vec<f32>,
    half: Option<Vec<f16>>,
    target: TargetData,
    ignore_index: i64,
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
    label_smoothing: Option<f32>,
    z_loss: Option<f32>,
    softcap: Option<f32>,
    log_target: bool,
    reduction: Reduction,
    base: Base,
    lse: bool,
    grad: bool,
    grad_in_place: bool,
    strict: bool,
}

impl Case {
    fn draw(u: &mut Unstructured) -> Result<Self> {
        let loss = *u.choose(&[
            LossKind::CrossEntropy,
            LossKind::BinaryCrossEntropy,
            LossKind::KlDiv,
            LossKind::Entropy,
        ])?;
        let batch = u.int_in_range(0..=64)?;
        let classes = u.int_in_range(0..=64)?;
        let input_kind = *u.choose(&[InputKind::Logits, InputKind::Probs, InputKind::LogProbs])?;
        let n = length(u, batch * classes)?;
        let input = floats(u, n, input_kind == InputKind::Probs)?;
        let half = u
            .ratio(1, 4)?
            .then(|| input.iter().map(|&v| f16::from_f32(v)).collect());
        let ignore_index = if u.ratio(1, 8)? {
            u.int_in_range(-3..=3)?
        } else {
            DEFAULT_IGNORE_INDEX
        };
        // The target that suits the loss, mostly; any kind one time in eight.
        let kind = match (u.ratio(1, 8)?, loss) {
            (true, _) => u.int_in_range(0_u8..=3)?,
            (false, LossKind::Entropy) => 0,
            (false, LossKind::CrossEntropy) => u.int_in_range(1_u8..=3)?,
            (false, _) => 3,
        };
        let target = match kind {
            0 => TargetData::None,
            1 | 2 => {
                let n = length(u, batch)?;
                let t: Vec<i64> = (0..n)
                    .map(|_| class(u, classes, ignore_index))
                    .collect::<Result<_>>()?;
                if kind == 1 {
                    TargetData::I64(t)
                } else {
                    TargetData::I32(t.iter().map(|&v| v as i32).collect())
                }
            }
            _ => {
                let n = length(u, batch * classes)?;
                let log = loss == LossKind::KlDiv && u.ratio(1, 2)?;
                let mut t = floats(u, n, !log)?;
                if log {
                    t.iter_mut().for_each(|v| *v = -v.abs());
                }
                TargetData::Dense(t)
            }
        };
        let weights = |u: &mut Unstructured| -> Result<Option<Vec<f32>>> {
            if u.ratio(1, 3)? {
                let n = length(u, classes)?;
                let mut w = floats(u, n, true)?;
                w.iter_mut().for_each(|v| *v *= 4.0);
                Ok(Some(w))
            } else {
                Ok(None)
            }
        };
        let weight = weights(u)?;
        let pos_weight = weights(u)?;
        let mut maybe = |odds: u8, low: f32, high: f32| -> Result<Option<f32>> {
            Ok(if u.ratio(1, odds)? {
                Some(option(u, low, high)?)
            } else {
                None
            })
        };
        let label_smoothing = maybe(3, 0.0, 1.0)?;
        let z_loss = maybe(4, 0.0, 1e-2)?;
        let softcap = maybe(4, 0.5, 50.0)?;
        Ok(Case {
            loss,
            shape: [batch, classes],
            input_kind,
            input,
            half,
            target,
            ignore_index,
            weight,
            pos_weight,
            label_smoothing,
            z_loss,
            softcap,
            log_target: u.ratio(1, 4)?,
            reduction: *u.choose(&[
                Reduction::None,
                Reduction::Sum,
                Reduction::Mean,
                Reduction::BatchMean,
            ])?,
            base: *u.choose(&[Base::E, Base::E, Base::Two, Base::Ten])?,
            lse: u.ratio(1, 4)?,
            grad: u.ratio(1, 2)?,
            grad_in_place: u.ratio(1, 8)?,
            strict: u.ratio(1, 4)?,
        })
    }

    fn request(&self) -> Request<'_> {
        let input = match &self.half {
            Some(h) => Input::F16(h),
            None => Input::F32(&self.input),
        };
        let target = match &self.target {
            TargetData::None => Target::None,
            TargetData::I32(t) => Target::ClassesI32(t),
            TargetData::I64(t) => Target::ClassesI64(t),
            TargetData::Dense(t) => Target::Dense(t),
        };
        let mut r = Request::new(self.loss, input, self.shape, target)
            .input_kind(self.input_kind)
            .ignore_index(self.ignore_index)
            .log_target(self.log_target)
            .reduction(self.reduction)
            .base(self.base)
            .with_lse(self.lse)
            .with_grad(self.grad)
            .grad_in_place(self.grad_in_place)
            .strict(self.strict);
        if let Some(w) = &self.weight {
            r = r.weight(w);
        }
        if let Some(w) = &self.pos_weight {
            r = r.pos_weight(w);
        }
        if let Some(e) = self.label_smoothing {
            r = r.label_smoothing(e);
        }
        if let Some(s) = self.z_loss {
            r = r.z_loss(s);
        }
        if let Some(c) = self.softcap {
            r = r.softcap(c);
        }
        r
    }
}

fn engines() -> &'static (Engine, Engine) {
    static ENGINES: OnceLock<(Engine, Engine)> = OnceLock::new();
    ENGINES.get_or_init(|| (Engine::cpu(), Engine::reference()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = Case::draw(&mut Unstructured::new(data)) else {
        return;
    };
    let request = case.request();
    let (fast, reference) = engines();
    let checked = request.validate();
    let a = fast.compute(&request);
    let b = reference.compute(&request);
    match (&checked, &a, &b) {
        (Err(e), Err(ea), Err(eb)) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "{message:?}");
            assert_eq!(message, ea.to_string());
            assert_eq!(message, eb.to_string());
        }
        (Ok(()), Ok(a), Ok(b)) => {
            assert_eq!(a.valid_rows, b.valid_rows);
            assert_eq!(a.grad.is_some(), b.grad.is_some());
            assert_eq!(a.lse.is_some(), b.lse.is_some());
            match (&a.loss, &b.loss) {
                (Loss::Scalar(x), Loss::Scalar(y)) => {
                    if x.is_finite() && y.is_finite() {
                        let (x, y) = (f64::from(*x), f64::from(*y));
                        assert!(
                            (x - y).abs() <= 1e-3 * y.abs() + 1e-3,
                            "fast {x} vs reference {y}: {request:?}"
                        );
                    }
                }
                (
                    Loss::Unreduced {
                        shape: s,
                        values: v,
                    },
                    Loss::Unreduced {
                        shape: t,
                        values: w,
                    },
                ) => {
                    assert_eq!(s, t);
                    assert_eq!(v.len(), w.len());
                }
                (x, y) => panic!("fast {x:?} vs reference {y:?}: {request:?}"),
            }
        }
        _ => panic!(
            "validate {checked:?}, fast {:?}, reference {:?}: {request:?}",
            a.as_ref().err(),
            b.as_ref().err()
        ),
    }
});
