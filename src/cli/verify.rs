//! `xent verify`: every adapter and the fast CPU path against the float64 reference, on fresh
//! random batches of every loss and the main options, losses and gradients.

use clap::Args;
use rand::{Rng, SeedableRng};
use xent::{Base, Engine, InputKind, LossKind, Reduction, Request, Result, Target};

use super::bench::normal;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Seed of the random inputs; by default one drawn from the clock, and printed.
    #[arg(long)]
    seed: Option<u64>,
}

/// Which options a case sets.
#[derive(Clone, Copy, PartialEq)]
enum Options {
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
struct Case {
    name: &'static str,
    loss: LossKind,
    options: Options,
    shape: [usize; 2],
}

const CASES: &[Case] = &[
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

/// The bound on the loss error (relative, with an absolute floor of the same size) and on the
/// gradient's relative norm error.
const TOLERANCE: f64 = 1e-5;

/// The inputs of one case, drawn once and shared by every engine.
struct Data {
    logits: Vec<f32>,
    classes: Vec<i64>,
    unit: Vec<f32>,
    weight: Vec<f32>,
}

impl Data {
    fn draw(case: &Case, seed: u64) -> Self {
        let [batch, classes] = case.shape;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = batch * classes;
        Data {
            logits: normal(n, 3.0, seed),
            // Row 0 is never ignored, so that a batch of one row has a loss.
            classes: (0..batch)
                .map(|row| {
                    if row > 0 && rng.random_bool(0.1) {
                        xent::DEFAULT_IGNORE_INDEX
                    } else {
                        rng.random_range(0..classes as i64)
                    }
                })
                .collect(),
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

fn request<'a>(case: &Case, data: &'a Data, dense: &'a [f32]) -> Request<'a> {
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
fn dense_of(case: &Case, data: &Data) -> Vec<f32> {
    let classes = case.shape[1];
    match case.options {
        Options::PosWeight => data.unit.iter().map(|p| p.round()).collect(),
        Options::Nll | Options::LogTarget => data.distribution(classes, true),
        _ => data.distribution(classes, false),
    }
}

/// The largest |a − e| / max(1, |e|) over the loss values.
fn loss_error(got: &xent::Loss, want: &xent::Loss) -> f64 {
    let values = |l: &xent::Loss| match l {
        xent::Loss::Scalar(v) => vec![*v],
        xent::Loss::Unreduced { values, .. } => values.clone(),
    };
    values(got)
        .iter()
        .zip(values(want))
        .map(|(&a, e)| (f64::from(a) - f64::from(e)).abs() / f64::from(e).abs().max(1.0))
        .fold(0.0, f64::max)
}

/// ‖a − e‖ / ‖e‖.
fn grad_error(got: &[f32], want: &[f32]) -> f64 {
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &e)| (f64::from(a) - f64::from(e)).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&e| f64::from(e).powi(2)).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// Runs every case on every engine; returns how many checks failed, of how many.
pub fn run(args: &VerifyArgs) -> Result<(usize, usize)> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut engines = Vec::new();
    for engine in Engine::all_gpus() {
        match engine {
            Ok(engine) => engines.push(engine),
            Err(e) => println!("an adapter failed to open: {e}"),
        }
    }
    engines.push(Engine::cpu());
    let reference = Engine::reference();
    println!(
        "xent verify: every engine against the float64 reference, seed {seed} (--seed {seed} replays it)\n"
    );
    println!(
        "{:<58} {:>10} {:<44} {:>9} {:>9} {:>7}",
        "case", "shape", "engine", "loss err", "grad err", ""
    );
    let (mut failed, mut checks) = (0, 0);
    for (i, case) in CASES.iter().enumerate() {
        let data = Data::draw(case, seed.wrapping_add(i as u64));
        let dense = dense_of(case, &data);
        let request = request(case, &data, &dense);
        let want = reference.compute(&request)?;
        for engine in &engines {
            let got = engine.compute(&request)?;
            let loss = loss_error(&got.loss, &want.loss);
            let grad = match (&got.grad, &want.grad) {
                (Some(g), Some(w)) => grad_error(g, w),
                _ => f64::NAN,
            };
            let ok = loss <= TOLERANCE && grad <= TOLERANCE;
            checks += 1;
            failed += usize::from(!ok);
            println!(
                "{:<58} {:>10} {:<44} {loss:>9.1e} {grad:>9.1e} {:>7}",
                case.name,
                format!("{}x{}", case.shape[0], case.shape[1]),
                engine.device().to_string(),
                if ok { "ok" } else { "FAILED" }
            );
        }
    }
    println!(
        "\n{} of {checks} checks passed (loss: largest |a − e| / max(1, |e|); gradient: ‖a − e‖ / ‖e‖; both within {TOLERANCE:e})",
        checks - failed
    );
    Ok((failed, checks))
}
