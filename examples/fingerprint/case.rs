//! A case: a loss, shape, dtype, target kind and options, its name, its seeded data, and the
//! `Request` it makes.

use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use xent::{
    Base, DEFAULT_IGNORE_INDEX, Dtype, Input, InputKind, LossKind, Options, Reduction, Request,
    Target,
};

/// The kind of target a case has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    None,
    I32,
    I64,
    Dense,
}

/// Values a case plants in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    None,
    /// A quarter of the logits off each row's target at −inf.
    Masked,
    /// Two values of each row at 1e30 and −1e30.
    Extreme,
    /// One NaN, in row 1 (row 0 of a single row).
    NanRow,
    /// Class targets out of range, for device targets: row 3 (or the last) 89 past C, the last
    /// row −5.
    OutOfRange,
}

#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub loss: LossKind,
    pub shape: [usize; 2],
    pub dtype: Dtype,
    pub target: Targets,
    pub options: Options,
    pub weight: bool,
    pub pos_weight: bool,
    /// The chance that a row's class target is the ignore index.
    pub ignored: f64,
    pub special: Special,
}

impl Case {
    /// `loss` on f32 logits of `shape` with the gradient: class indices (i64) for cross-entropy,
    /// a dense target for BCE and KL, none for entropy.
    pub fn new(loss: LossKind, shape: [usize; 2]) -> Self {
        let target = match loss {
            LossKind::CrossEntropy => Targets::I64,
            LossKind::Entropy => Targets::None,
            _ => Targets::Dense,
        };
        Case {
            loss,
            shape,
            dtype: Dtype::F32,
            target,
            options: Options {
                grad: true,
                ..Options::default()
            },
            weight: false,
            pos_weight: false,
            ignored: 0.0,
            special: Special::None,
        }
    }

    /// The case changed by `f`.
    pub fn with(mut self, f: impl FnOnce(&mut Case)) -> Self {
        f(&mut self);
        self
    }

    /// Every field that is not its default, in words: unique to the case.
    pub fn name(&self) -> String {
        let o = &self.options;
        let target = match self.target {
            Targets::None => "no-target",
            Targets::I32 => "i32",
            Targets::I64 => "i64",
            Targets::Dense => "dense",
        };
        let reduction = match o.reduction {
            Reduction::None => "none",
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
            Reduction::BatchMean => "batchmean",
        };
        let [batch, classes] = self.shape;
        let mut name = format!(
            "{} {target} {} {reduction} {} {batch}x{classes}",
            self.loss.name(),
            o.input_kind.name(),
            self.dtype.name()
        );
        let mut flag = |on: bool, text: String| {
            if on {
                name.push(' ');
                name.push_str(&text);
            }
        };
        flag(self.weight, "weight".into());
        flag(self.pos_weight, "pos_weight".into());
        flag(self.ignored > 0.0, format!("ignored={}", self.ignored));
        flag(
            o.ignore_index != DEFAULT_IGNORE_INDEX,
            format!("ignore_index={}", o.ignore_index),
        );
        flag(
            o.label_smoothing != 0.0,
            format!("smoothing={}", o.label_smoothing),
        );
        flag(o.z_loss != 0.0, format!("z_loss={}", o.z_loss));
        flag(
            o.softcap.is_some(),
            format!("softcap={}", o.softcap.unwrap_or_default()),
        );
        flag(o.log_target, "log_target".into());
        flag(o.base == Base::Two, "base=2".into());
        flag(o.base == Base::Ten, "base=10".into());
        flag(o.lse, "lse".into());
        flag(!o.grad, "no-grad".into());
        flag(o.grad_in_place, "grad_in_place".into());
        flag(o.strict, "strict".into());
        flag(
            self.special != Special::None,
            format!("{:?}", self.special).to_lowercase(),
        );
        name
    }

    /// The case's request on `input` (the data's own, or an empty one for an in-place call).
    pub fn request<'a>(&self, data: &'a Data, input: Input<'a>) -> Request<'a> {
        let target = match self.target {
            Targets::None => Target::None,
            Targets::I32 => Target::ClassesI32(&data.classes32),
            Targets::I64 => Target::ClassesI64(&data.classes),
            Targets::Dense => Target::Dense(&data.dense),
        };
        let mut request = Request::new(self.loss, input, self.shape, target);
        if self.weight {
            request = request.weight(&data.weight);
        }
        if self.pos_weight {
            request = request.pos_weight(&data.pos_weight);
        }
        with_options(request, &self.options)
    }
}

/// `request` with every option of `o`.
pub fn with_options<'a>(request: Request<'a>, o: &Options) -> Request<'a> {
    let request = request
        .reduction(o.reduction)
        .input_kind(o.input_kind)
        .ignore_index(o.ignore_index)
        .label_smoothing(o.label_smoothing)
        .z_loss(o.z_loss)
        .log_target(o.log_target)
        .base(o.base)
        .with_lse(o.lse)
        .with_grad(o.grad)
        .grad_in_place(o.grad_in_place)
        .strict(o.strict);
    match o.softcap {
        Some(cap) => request.softcap(cap),
        None => request,
    }
}

/// Input values in one dtype.
pub enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Values {
    /// `x` rounded to `dtype`.
    pub fn of(dtype: Dtype, x: &[f32]) -> Self {
        match dtype {
            Dtype::F32 => Values::F32(x.to_vec()),
            Dtype::F16 => Values::F16(x.iter().map(|&v| f16::from_f32(v)).collect()),
            Dtype::Bf16 => Values::Bf16(x.iter().map(|&v| bf16::from_f32(v)).collect()),
        }
    }

    pub fn input(&self) -> Input<'_> {
        match self {
            Values::F32(v) => Input::F32(v),
            Values::F16(v) => Input::F16(v),
            Values::Bf16(v) => Input::Bf16(v),
        }
    }

    /// The little-endian bytes, as a device buffer holds them.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Values::F32(v) => bytemuck::cast_slice(v),
            Values::F16(v) => bytemuck::cast_slice(v),
            Values::Bf16(v) => bytemuck::cast_slice(v),
        }
    }
}

/// A case's data, drawn from its seed.
pub struct Data {
    /// The input in f32, specials planted.
    pub x: Vec<f32>,
    /// The input in the case's dtype.
    pub values: Values,
    pub classes: Vec<i64>,
    pub classes32: Vec<i32>,
    pub dense: Vec<f32>,
    pub weight: Vec<f32>,
    pub pos_weight: Vec<f32>,
}

impl Data {
    /// Every array a case may use, drawn in a fixed order from `seed`.
    pub fn draw(case: &Case, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let [batch, classes] = case.shape;
        let n = batch * classes;
        let o = &case.options;
        let logits: Vec<f32> = (0..n).map(|_| rng.random_range(-6.0..6.0)).collect();
        let mut x = match (o.input_kind, case.loss) {
            (InputKind::Logits, _) => logits,
            (InputKind::Probs, LossKind::BinaryCrossEntropy) => {
                (0..n).map(|_| rng.random_range(0.001..0.999)).collect()
            }
            (InputKind::Probs, _) => softmax(&logits, classes, false),
            (InputKind::LogProbs, _) => softmax(&logits, classes, true),
        };
        let ignore = o.ignore_index;
        let mut targets: Vec<i64> = (0..batch)
            .map(|_| {
                if rng.random_bool(case.ignored) {
                    ignore
                } else {
                    rng.random_range(0..classes as i64)
                }
            })
            .collect();
        let other: Vec<f32> = (0..n).map(|_| rng.random_range(-6.0..6.0)).collect();
        let dense = match case.loss {
            LossKind::BinaryCrossEntropy => (0..n)
                .map(|i| {
                    let p = rng.random_range(0.0..1.0_f32);
                    if i % 2 == 0 { p.round() } else { p }
                })
                .collect(),
            _ => softmax(&other, classes, o.log_target),
        };
        let weight = (0..classes).map(|_| rng.random_range(0.1..2.0)).collect();
        let pos_weight = (0..classes).map(|_| rng.random_range(0.5..3.0)).collect();
        plant(case, &mut rng, &mut x, &mut targets);
        Data {
            values: Values::of(case.dtype, &x),
            x,
            classes32: targets.iter().map(|&t| t as i32).collect(),
            classes: targets,
            dense,
            weight,
            pos_weight,
        }
    }
}

/// Rows of softmax(`x`), or their logs.
fn softmax(x: &[f32], classes: usize, log: bool) -> Vec<f32> {
    x.chunks(classes)
        .flat_map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
            row.iter().map(move |&v| {
                let log_p = v - max - sum.ln();
                if log { log_p } else { log_p.exp() }
            })
        })
        .collect()
}

/// Plants the case's special values in `x` and `targets`.
fn plant(case: &Case, rng: &mut StdRng, x: &mut [f32], targets: &mut [i64]) {
    let [batch, classes] = case.shape;
    match case.special {
        Special::None => {}
        Special::Masked => {
            for (row, values) in x.chunks_mut(classes).enumerate() {
                for (c, v) in values.iter_mut().enumerate() {
                    if rng.random_bool(0.25) && targets[row] != c as i64 {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Special::Extreme => {
            for (row, values) in x.chunks_mut(classes).enumerate() {
                values[row * 7 % classes] = 1e30;
                values[(row * 7 + 3) % classes] = -1e30;
            }
        }
        Special::NanRow => x[1.min(batch - 1) * classes] = f32::NAN,
        Special::OutOfRange => {
            targets[3.min(batch - 1)] = classes as i64 + 89;
            targets[batch - 1] = -5;
        }
    }
}
