//! The cases of `xent verify`: the losses and options it checks, at which shapes, and their
//! random inputs.

use rand::{Rng, SeedableRng};
use xent::{Base, InputKind, LossKind, Reduction, Request, Target};

use crate::cli::random::normal;

/// The shape of the device-resident and sharded checks: a GPT-2 vocabulary, odd, so that bf16 rows
/// straddle u32 words.
pub const VOCAB_SHAPE: [usize; 2] = [16, 50_257];

/// Which options a case sets.
#[derive(Clone, Copy, PartialEq)]
pub enum Options {
    /// Class targets, 10% ignored, mean.
    Plain,
    /// Class weights, label smoothing, z-loss and a soft cap, sum.
    Every,
    /// A distribution target, none.
    Soft,
    /// Class targets on log-probabilities.
    Nll,
    /// 0/1 labels and pos_weight.
    PosWeight,
    /// A log-probability target, batchmean.
    LogTarget,
    /// Base 2.
    Bits,
}

/// One check: a loss and its options on a shape.
pub struct Case {
    /// Its line in the table.
    pub name: &'static str,
    /// The loss.
    pub loss: LossKind,
    /// Its options.
    pub options: Options,
    /// [batch, classes].
    pub shape: [usize; 2],
}

/// The cases every engine is checked on against the reference.
pub const CASES: &[Case] = &[
    Case {
        name: "cross-entropy, 10% ignored",
        loss: LossKind::CrossEntropy,
        options: Options::Plain,
        shape: [64, 1000],
    },
    Case {
        name: "cross-entropy, weights, smoothing, z-loss, softcap (sum)",
        loss: LossKind::CrossEntropy,
        options: Options::Every,
        shape: [37, 2003],
    },
    Case {
        name: "cross-entropy, soft targets (none)",
        loss: LossKind::CrossEntropy,
        options: Options::Soft,
        shape: [13, 517],
    },
    Case {
        name: "NLL on log-probabilities",
        loss: LossKind::CrossEntropy,
        options: Options::Nll,
        shape: [50, 101],
    },
    Case {
        name: "cross-entropy, 1 x 1",
        loss: LossKind::CrossEntropy,
        options: Options::Plain,
        shape: [1, 1],
    },
    Case {
        name: "cross-entropy, short rows",
        loss: LossKind::CrossEntropy,
        options: Options::Plain,
        shape: [8192, 10],
    },
    Case {
        name: "cross-entropy, long rows",
        loss: LossKind::CrossEntropy,
        options: Options::Plain,
        shape: [8, 131_072],
    },
    Case {
        name: "cross-entropy, one huge row (split)",
        loss: LossKind::CrossEntropy,
        options: Options::Every,
        shape: [1, 1_000_003],
    },
    Case {
        name: "BCE with pos_weight",
        loss: LossKind::BinaryCrossEntropy,
        options: Options::PosWeight,
        shape: [33, 300],
    },
    Case {
        name: "KL, log target (batchmean)",
        loss: LossKind::KlDiv,
        options: Options::LogTarget,
        shape: [21, 777],
    },
    Case {
        name: "entropy in bits",
        loss: LossKind::Entropy,
        options: Options::Bits,
        shape: [19, 4097],
    },
];

/// A class in [0, `classes`) for each of `rows` rows, 10% ignored; row 0 never, so that a batch
/// of one row has a loss.
pub fn draw_classes(rng: &mut impl Rng, rows: usize, classes: usize) -> Vec<i64> {
    (0..rows)
        .map(|row| {
            if row > 0 && rng.random_bool(0.1) {
                xent::DEFAULT_IGNORE_INDEX
            } else {
                rng.random_range(0..classes as i64)
            }
        })
        .collect()
}

/// The inputs of one case, drawn once and shared by every engine.
pub struct Data {
    /// N(0, 9) logits, [batch, classes].
    pub logits: Vec<f32>,
    /// A class per row, 10% ignored (never row 0).
    pub classes: Vec<i64>,
    unit: Vec<f32>,
    /// A weight in [0.1, 2) per class.
    pub weight: Vec<f32>,
}

impl Data {
    /// The inputs of `case`, drawn from `seed`.
    pub fn draw(case: &Case, seed: u64) -> Self {
        let [batch, classes] = case.shape;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = batch * classes;
        Data {
            logits: normal(n, 3.0, seed),
            classes: draw_classes(&mut rng, batch, classes),
            unit: (0..n).map(|_| rng.random_range(0.0..1.0)).collect(),
            weight: (0..classes).map(|_| rng.random_range(0.1..2.0)).collect(),
        }
    }

    /// Rows of `unit` scaled to sum to 1, or their logs.
    fn distribution(&self, classes: usize, log: bool) -> Vec<f32> {
        self.unit
            .chunks(classes)
            .flat_map(|row| {
                let sum: f32 = row.iter().sum();
                row.iter()
                    .map(move |v| if log { (v / sum).ln() } else { v / sum })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The request of `case` on `data`, with the dense input or target `dense` where it has one, and
/// the gradient on.
pub fn request<'a>(case: &Case, data: &'a Data, dense: &'a [f32]) -> Request<'a> {
    let x = &data.logits[..];
    let shape = case.shape;
    let classes = Target::ClassesI64(&data.classes);
    let request = match case.options {
        Options::Every => Request::new(case.loss, x, shape, classes)
            .weight(&data.weight)
            .label_smoothing(0.1)
            .z_loss(1e-4)
            .softcap(30.0)
            .reduction(Reduction::Sum),
        Options::Soft => {
            Request::new(case.loss, x, shape, Target::Dense(dense)).reduction(Reduction::None)
        }
        Options::Nll => {
            Request::new(case.loss, dense, shape, classes).input_kind(InputKind::LogProbs)
        }
        Options::PosWeight => {
            Request::new(case.loss, x, shape, Target::Dense(dense)).pos_weight(&data.weight)
        }
        Options::LogTarget => Request::new(case.loss, x, shape, Target::Dense(dense))
            .log_target(true)
            .reduction(Reduction::BatchMean),
        Options::Bits => Request::new(case.loss, x, shape, Target::None).base(Base::Two),
        Options::Plain => Request::new(case.loss, x, shape, classes),
    };
    request.with_grad(true)
}

/// The dense input or target a case needs: BCE's labels, a distribution, or log-probabilities.
pub fn dense_of(case: &Case, data: &Data) -> Vec<f32> {
    let classes = case.shape[1];
    match case.options {
        Options::PosWeight => data.unit.iter().map(|p| p.round()).collect(),
        Options::Nll | Options::LogTarget => data.distribution(classes, true),
        _ => data.distribution(classes, false),
    }
}
