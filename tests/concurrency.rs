//! One engine shared by many threads gives, call for call, the bits it gives one thread.
//!
//! A fixed list of varied requests (every loss, every reduction, weights, label smoothing, z-loss,
//! soft cap, ignored rows, f16 input, NaN input, gradients in place and not) is computed once on
//! one thread; then 8 threads share the engine by reference and make 500 calls each, every thread
//! walking the list in its own order, and every result must equal the single-threaded one to the
//! bit: the loss, the gradient, the log-sum-exps and the count of valid rows.

mod common;

use std::time::Instant;

use half::f16;
use rand::{Rng, rngs::StdRng};
use xent::{
    Base, Engine, Input, InputKind, Loss, LossKind, Options, Output, Reduction, Request, Target,
};

const THREADS: usize = 8;
const CALLS_PER_THREAD: usize = 500;

/// The values a case owns, which its request borrows.
enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

enum Labels {
    None,
    I64(Vec<i64>),
    I32(Vec<i32>),
    Dense(Vec<f32>),
}

struct Case {
    name: String,
    loss: LossKind,
    shape: [usize; 2],
    input: Values,
    target: Labels,
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
    options: Options,
}

impl Case {
    fn request(&self) -> Request<'_> {
        let input = match &self.input {
            Values::F32(v) => Input::F32(v),
            Values::F16(v) => Input::F16(v),
        };
        let target = match &self.target {
            Labels::None => Target::None,
            Labels::I64(t) => Target::ClassesI64(t),
            Labels::I32(t) => Target::ClassesI32(t),
            Labels::Dense(t) => Target::Dense(t),
        };
        let o = &self.options;
        let mut request = Request::new(self.loss, input, self.shape, target)
            .reduction(o.reduction)
            .input_kind(o.input_kind)
            .ignore_index(o.ignore_index)
            .label_smoothing(o.label_smoothing)
            .z_loss(o.z_loss)
            .log_target(o.log_target)
            .base(o.base)
            .with_lse(o.lse)
            .with_grad(o.grad)
            .grad_in_place(o.grad_in_place);
        if let Some(cap) = o.softcap {
            request = request.softcap(cap);
        }
        if let Some(w) = &self.weight {
            request = request.weight(w);
        }
        if let Some(w) = &self.pos_weight {
            request = request.pos_weight(w);
        }
        request
    }
}

fn class_weights(rng: &mut StdRng, classes: usize) -> Vec<f32> {
    (0..classes).map(|_| rng.random_range(0.25..2.0)).collect()
}

/// The list of requests: each shape gets `VARIANTS_PER_SHAPE` variants, cycling through every
/// loss and option set, and through the four reductions independently of them.
fn cases(rng: &mut StdRng) -> Vec<Case> {
    const VARIANTS: usize = 15;
    const VARIANTS_PER_SHAPE: usize = 4;
    let shapes: [[usize; 2]; 18] = [
        [1, 1],
        [1, 7],
        [2, 3],
        [5, 3],
        [7, 13],
        [3, 5000],
        [300, 10],
        [1000, 5],
        [17, 257],
        [33, 129],
        [31, 1001],
        [9, 4097],
        [64, 2000],
        [128, 500],
        [50, 1000],
        [2, 33_001],
        [257, 63],
        [4, 16_384],
    ];
    let reductions = [
        Reduction::None,
        Reduction::Sum,
        Reduction::Mean,
        Reduction::BatchMean,
    ];
    let mut cases = Vec::new();
    for (s, &[batch, classes]) in shapes.iter().enumerate() {
        for j in 0..VARIANTS_PER_SHAPE {
            let variant = (s * VARIANTS_PER_SHAPE + j) % VARIANTS;
            let reduction = reductions[(s + j) % reductions.len()];
            let n = batch * classes;
            let x = common::logits(rng, n, 3.0);
            let mut options = Options {
                reduction,
                ..Options::default()
            };
            let mut case = Case {
                name: String::new(),
                loss: LossKind::CrossEntropy,
                shape: [batch, classes],
                input: Values::F32(x),
                target: Labels::None,
                weight: None,
                pos_weight: None,
                options,
            };
            let label = match variant {
                0 => {
                    case.target = Labels::I64(common::targets(rng, batch, classes, 0.2));
                    options.grad = true;
                    "cross-entropy, i64 targets, 20% ignored, grad"
                }
                1 => {
                    let t = common::targets(rng, batch, classes, 0.1);
                    case.target = Labels::I32(t.iter().map(|&t| t as i32).collect());
                    case.weight = Some(class_weights(rng, classes));
                    options.label_smoothing = 0.1;
                    options.z_loss = 1e-3;
                    options.softcap = Some(5.0);
                    options.lse = true;
                    "cross-entropy, i32 targets, weight, smoothing, z-loss, softcap, lse"
                }
                2 => {
                    case.target = Labels::Dense(common::distribution(rng, batch, classes));
                    case.weight = Some(class_weights(rng, classes));
                    options.label_smoothing = 0.05;
                    options.grad = true;
                    "cross-entropy, soft targets, weight, smoothing, grad"
                }
                3 => {
                    case.input = Values::F32(common::distribution(rng, batch, classes));
                    case.target = Labels::I64(common::targets(rng, batch, classes, 0.1));
                    options.input_kind = InputKind::Probs;
                    options.grad = true;
                    "cross-entropy on probs, grad"
                }
                4 => {
                    let p = common::distribution(rng, batch, classes);
                    case.input = Values::F32(p.iter().map(|v| v.ln()).collect());
                    case.target = Labels::I64(common::targets(rng, batch, classes, 0.1));
                    case.weight = Some(class_weights(rng, classes));
                    options.input_kind = InputKind::LogProbs;
                    options.base = Base::Two;
                    "cross-entropy on log-probs, weight, bits"
                }
                5 => {
                    case.loss = LossKind::BinaryCrossEntropy;
                    case.target = Labels::Dense((0..n).map(|_| rng.random::<f32>()).collect());
                    case.weight = Some(class_weights(rng, classes));
                    case.pos_weight = Some(class_weights(rng, classes));
                    options.grad = true;
                    "binary cross-entropy, weight, pos_weight, grad"
                }
                6 => {
                    case.loss = LossKind::BinaryCrossEntropy;
                    case.input = Values::F32((0..n).map(|_| rng.random::<f32>()).collect());
                    case.target = Labels::Dense(
                        (0..n)
                            .map(|_| f32::from(u8::from(rng.random_bool(0.3))))
                            .collect(),
                    );
                    options.input_kind = InputKind::Probs;
                    options.grad = true;
                    "binary cross-entropy on probs, hard labels, grad"
                }
                7 => {
                    case.loss = LossKind::KlDiv;
                    case.target = Labels::Dense(common::distribution(rng, batch, classes));
                    options.grad = true;
                    "kl-div on logits, grad"
                }
                8 => {
                    case.loss = LossKind::KlDiv;
                    let p = common::distribution(rng, batch, classes);
                    case.input = Values::F32(p.iter().map(|v| v.ln()).collect());
                    let q = common::distribution(rng, batch, classes);
                    case.target = Labels::Dense(q.iter().map(|v| v.ln()).collect());
                    options.input_kind = InputKind::LogProbs;
                    options.log_target = true;
                    options.grad_in_place = true;
                    options.grad = true;
                    "kl-div on log-probs, log target, grad in place"
                }
                9 => {
                    case.loss = LossKind::KlDiv;
                    case.input = Values::F32(common::distribution(rng, batch, classes));
                    case.target = Labels::Dense(common::distribution(rng, batch, classes));
                    options.input_kind = InputKind::Probs;
                    "kl-div on probs"
                }
                10 => {
                    case.loss = LossKind::Entropy;
                    options.lse = true;
                    options.grad = true;
                    "entropy on logits, lse, grad"
                }
                11 => {
                    case.loss = LossKind::Entropy;
                    case.input = Values::F32(common::distribution(rng, batch, classes));
                    options.input_kind = InputKind::Probs;
                    options.base = Base::Ten;
                    "entropy on probs, bans"
                }
                12 => {
                    let x = common::logits(rng, n, 3.0);
                    case.input = Values::F16(x.iter().map(|&v| f16::from_f32(v)).collect());
                    case.target = Labels::I64(common::targets(rng, batch, classes, 0.1));
                    options.label_smoothing = 0.2;
                    options.grad = true;
                    "cross-entropy on f16 logits, smoothing, grad"
                }
                13 => {
                    case.target = Labels::I64(common::targets(rng, batch, classes, 1.0));
                    options.grad = true;
                    "cross-entropy, every row ignored, grad"
                }
                _ => {
                    let Values::F32(x) = &mut case.input else {
                        unreachable!("f32 input")
                    };
                    // A NaN row and an infinite one, which must come out the same every time.
                    x[n / 2] = f32::NAN;
                    x[n - 1] = f32::INFINITY;
                    case.target = Labels::I64(common::targets(rng, batch, classes, 0.1));
                    options.z_loss = 1e-4;
                    options.grad_in_place = true;
                    options.grad = true;
                    "cross-entropy, NaN and +inf logits, z-loss, grad in place"
                }
            };
            case.options = options;
            case.name = format!("#{} {batch}x{classes} {reduction:?}: {label}", cases.len());
            cases.push(case);
        }
    }
    cases
}

/// The first difference between two outputs, as `field[index]: bits vs bits`.
fn first_difference(want: &Output, got: &Output) -> Option<String> {
    fn bits(what: &str, want: &[f32], got: &[f32]) -> Option<String> {
        if want.len() != got.len() {
            return Some(format!(
                "{what}: {} values, expected {}",
                got.len(),
                want.len()
            ));
        }
        want.iter()
            .zip(got)
            .position(|(w, g)| w.to_bits() != g.to_bits())
            .map(|i| {
                format!(
                    "{what}[{i}]: got {:e} ({:#010x}), expected {:e} ({:#010x})",
                    got[i],
                    got[i].to_bits(),
                    want[i],
                    want[i].to_bits()
                )
            })
    }
    let loss = match (&want.loss, &got.loss) {
        (Loss::Scalar(w), Loss::Scalar(g)) => bits("loss", &[*w], &[*g]),
        (
            Loss::Unreduced {
                values: w,
                shape: ws,
            },
            Loss::Unreduced {
                values: g,
                shape: gs,
            },
        ) if ws == gs => bits("loss values", w, g),
        (w, g) => Some(format!("loss: got {g:?}, expected {w:?}")),
    };
    let optional = |what: &str, w: &Option<Vec<f32>>, g: &Option<Vec<f32>>| match (w, g) {
        (Some(w), Some(g)) => bits(what, w, g),
        (None, None) => None,
        (w, g) => Some(format!(
            "{what}: present {}, expected present {}",
            g.is_some(),
            w.is_some()
        )),
    };
    let valid_rows = (want.valid_rows != got.valid_rows).then(|| {
        format!(
            "valid_rows: got {}, expected {}",
            got.valid_rows, want.valid_rows
        )
    });
    loss.or_else(|| optional("grad", &want.grad, &got.grad))
        .or_else(|| optional("lse", &want.lse, &got.lse))
        .or(valid_rows)
}

/// A stride for `thread` that visits every one of `n` cases: coprime with `n`.
fn stride(thread: usize, n: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut s = 1 + 2 * thread;
    while gcd(s, n) != 1 {
        s += 1;
    }
    s
}

fn megabytes(case: &Case) -> f64 {
    let [b, c] = case.shape;
    (b * c) as f64 * 4.0 / 1e6
}

/// Checks one engine: expected outputs on this thread, a second pass on this thread timed, then
/// the threads.
fn check_engine(engine: &Engine, cases: &[Case]) {
    let device = engine.device();
    let start = Instant::now();
    let expected: Vec<Output> = cases
        .iter()
        .map(|case| {
            engine
                .compute(&case.request())
                .unwrap_or_else(|e| panic!("{device} {}: {e}", case.name))
        })
        .collect();
    let first_pass = start.elapsed().as_secs_f64();

    // A second single-threaded pass: the same bits again, and the throughput with every pipeline
    // already built, to set the threaded figure against.
    let start = Instant::now();
    for (case, want) in cases.iter().zip(&expected) {
        let got = engine
            .compute(&case.request())
            .unwrap_or_else(|e| panic!("{device} {}: {e}", case.name));
        if let Some(diff) = first_difference(want, &got) {
            panic!(
                "{device} {}: the second single-threaded call differs: {diff}",
                case.name
            );
        }
    }
    let sequential = start.elapsed().as_secs_f64();

    let n = cases.len();
    let start = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let expected = &expected;
                scope.spawn(move || {
                    let (offset, step) = (thread * n / THREADS, stride(thread, n));
                    let mut failures = Vec::new();
                    for call in 0..CALLS_PER_THREAD {
                        let i = (offset + call * step) % n;
                        let case = &cases[i];
                        let failure = match engine.compute(&case.request()) {
                            Ok(got) => first_difference(&expected[i], &got),
                            Err(e) => Some(format!("error: {e}")),
                        };
                        if let Some(f) = failure {
                            failures.push(format!(
                                "{device} thread {thread} call {call}, request {}: {f}",
                                case.name
                            ));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a thread panicked"))
            .collect()
    });
    let threaded = start.elapsed().as_secs_f64();
    let calls = THREADS * CALLS_PER_THREAD;
    let bytes: f64 = (0..THREADS)
        .flat_map(|t| (0..CALLS_PER_THREAD).map(move |c| (t * n / THREADS + c * stride(t, n)) % n))
        .map(|i| megabytes(&cases[i]))
        .sum();
    eprintln!(
        "{device} concurrency: first pass {first_pass:.2} s over {n} requests; one thread \
         {:.0} calls/s; {THREADS} threads x {CALLS_PER_THREAD} calls in {threaded:.2} s = \
         {:.0} calls/s ({:.0} MB/s of input)",
        n as f64 / sequential,
        calls as f64 / threaded,
        bytes / threaded,
    );
    assert!(
        failures.is_empty(),
        "{device}: {} of {calls} threaded calls differ from the single-threaded results; the \
         first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn one_engine_shared_by_eight_threads_gives_the_single_threaded_bits() {
    let mut rng = common::rng("concurrency");
    let cases = cases(&mut rng);
    let total: f64 = cases.iter().map(megabytes).sum();
    eprintln!(
        "concurrency: {} requests, {total:.1} MB of input in all",
        cases.len()
    );
    let mut engines = common::under_test();
    common::check_expected_backends(&engines);
    if common::gpus().is_empty() {
        eprintln!("concurrency: no GPU adapter, CPU only (set XENT_REQUIRE_GPU=1 to fail instead)");
    }
    engines.push(Engine::reference());
    for engine in &engines {
        check_engine(engine, &cases);
    }
}
