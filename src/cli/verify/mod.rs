//! `xent verify`: every adapter and the fast CPU path against the float64 reference, on fresh
//! random batches of every loss and the main options, losses and gradients; then a
//! device-resident call on each adapter, the vocabulary sharded over every engine, and sharded
//! on each adapter's device buffers.

use clap::Args;
use half::bf16;
use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;
use xent::{
    Base, DeviceInput, DeviceRequest, DeviceTarget, Dtype, Engine, IndexType, InputKind, LossKind,
    Options as RequestOptions, Reduction, Request, Result, Shard, ShardStats, ShardedLoss, Target,
    merge_shards,
};

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

/// The bound on a bf16 gradient's relative norm error against the reference's rounded to bf16:
/// where f32 and float64 round to different bf16 neighbours, one bf16 unit (2^-8 relative).
const BF16_GRADIENT_TOLERANCE: f64 = 1.0 / 256.0;

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

/// The shape of the device-resident and sharded checks: a GPT-2 vocabulary, odd, so that bf16 rows
/// straddle u32 words.
const VOCAB_SHAPE: [usize; 2] = [16, 50_257];

/// A STORAGE | COPY_SRC | COPY_DST buffer on `device` holding `bytes`, padded with zeros to whole
/// 16-byte words (device-resident inputs are read in 16-byte words).
fn storage_buffer(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let mut contents = bytes.to_vec();
    contents.resize(contents.len().next_multiple_of(16), 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &contents,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
    })
}

/// A device-resident call on `engine`: bf16 logits and i64 class targets in buffers of its device,
/// label smoothing, the gradient in place. Its loss and gradient must be the host request's bit
/// for bit (the gradient rounded to bf16); the errors against the reference on the same bf16
/// values are returned, or NaN for a mismatch.
fn device_resident(engine: &Engine, data: &Data) -> Result<(f64, f64)> {
    let Some((device, queue)) = engine.wgpu() else {
        return Ok((f64::NAN, f64::NAN));
    };
    let logits: Vec<bf16> = data.logits.iter().map(|&v| bf16::from_f32(v)).collect();
    let request = Request::cross_entropy(&logits[..], VOCAB_SHAPE, &data.classes[..])
        .label_smoothing(0.1)
        .with_grad(true);
    let host = engine.compute(&request)?;
    let want = Engine::reference().compute(&request)?;
    let input = storage_buffer(device, "verify logits", bytemuck::cast_slice(&logits));
    let labels = storage_buffer(device, "verify labels", bytemuck::cast_slice(&data.classes));
    let mut device_request = DeviceRequest::new(
        LossKind::CrossEntropy,
        DeviceInput {
            buffer: &input,
            offset: 0,
            shape: VOCAB_SHAPE,
            dtype: Dtype::Bf16,
        },
        DeviceTarget::Classes {
            buffer: &labels,
            offset: 0,
            index: IndexType::I64,
        },
    );
    device_request.options = request.options();
    device_request.options.grad_in_place = true;
    let mut encoder = device.create_command_encoder(&Default::default());
    let out = engine.record(&mut encoder, &device_request)?;
    queue.submit([encoder.finish()]);
    let loss = engine.read_loss(&out)?;
    let grad: Vec<f32> = engine
        .read_buffer(&input, 0..(logits.len() * 2) as u64)?
        .chunks_exact(2)
        .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let host_grad = host.grad.as_deref().unwrap_or_default();
    let same = Some(loss) == host.loss.scalar()
        && grad
            .iter()
            .zip(host_grad)
            .all(|(&g, &h)| g == bf16::from_f32(h).to_f32());
    if !same {
        return Ok((f64::NAN, f64::NAN));
    }
    // The gradient is stored in bf16: against the reference, its rounding is the error.
    let rounded: Vec<f32> = want
        .grad
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|&g| bf16::from_f32(g).to_f32())
        .collect();
    Ok((
        loss_error(&xent::Loss::Scalar(loss), &want.loss),
        grad_error(&grad, &rounded),
    ))
}

/// The options of the sharded checks.
fn shard_options() -> RequestOptions {
    RequestOptions {
        label_smoothing: 0.1,
        z_loss: 1e-4,
        ..Default::default()
    }
}

/// A shard's request on its columns `x` (or on all of them).
fn shard_request<'a>(x: &'a [f32], data: &'a Data) -> Request<'a> {
    let batch = VOCAB_SHAPE[0];
    let o = shard_options();
    Request::cross_entropy(x, [batch, x.len() / batch], &data.classes[..])
        .label_smoothing(o.label_smoothing)
        .z_loss(o.z_loss)
}

/// A shard's request on its columns in `input`, with the batch's i64 class indices in `labels`.
fn device_shard_request<'a>(
    input: &'a wgpu::Buffer,
    labels: &'a wgpu::Buffer,
    columns: usize,
) -> DeviceRequest<'a> {
    let mut r = DeviceRequest::new(
        LossKind::CrossEntropy,
        DeviceInput {
            buffer: input,
            offset: 0,
            shape: [VOCAB_SHAPE[0], columns],
            dtype: Dtype::F32,
        },
        DeviceTarget::Classes {
            buffer: labels,
            offset: 0,
            index: IndexType::I64,
        },
    );
    r.options = shard_options();
    r
}

/// The vocabulary split in `count` shards, shard k's statistics from `stats(k, shard, columns)`
/// and its gradient from `grad(k, shard, columns, merged)`: the merged loss and the gathered
/// gradient against the reference's on the whole rows.
fn sharded(
    data: &Data,
    count: usize,
    stats: impl Fn(usize, Shard, &[f32]) -> Result<ShardStats>,
    grad: impl Fn(usize, Shard, &[f32], &ShardedLoss) -> Result<Vec<f32>>,
) -> Result<(f64, f64)> {
    let [batch, classes] = VOCAB_SHAPE;
    let want = Engine::reference().compute(&shard_request(&data.logits, data).with_grad(true))?;
    let step = classes.div_ceil(count.max(1));
    let shards: Vec<(Shard, Vec<f32>)> = (0..classes)
        .step_by(step)
        .map(|first| {
            let end = (first + step).min(classes);
            let columns = data
                .logits
                .chunks_exact(classes)
                .flat_map(|row| row[first..end].to_vec())
                .collect();
            let shard = Shard {
                first_class: first,
                total_classes: classes,
            };
            (shard, columns)
        })
        .collect();
    let mut all = Vec::new();
    for (k, (shard, x)) in shards.iter().enumerate() {
        all.push(stats(k, *shard, x)?);
    }
    let merged = merge_shards(&all, &data.classes, None, &shard_options())?;
    let mut gathered = vec![0.0_f32; batch * classes];
    for (k, (shard, x)) in shards.iter().enumerate() {
        let width = x.len() / batch;
        let piece = grad(k, *shard, x, &merged)?;
        for (row, values) in piece.chunks_exact(width).enumerate() {
            let at = row * classes + shard.first_class;
            gathered[at..at + width].copy_from_slice(values);
        }
    }
    Ok((
        loss_error(&merged.loss, &want.loss),
        grad_error(&gathered, want.grad.as_deref().unwrap_or_default()),
    ))
}

/// The vocabulary split between `engines`, a shard each, on host slices.
fn sharded_on(engines: &[Engine], data: &Data) -> Result<(f64, f64)> {
    sharded(
        data,
        engines.len(),
        |k, shard, x| engines[k].shard_stats(&shard_request(x, data), shard),
        |k, shard, x, merged| {
            let mut piece = vec![0.0_f32; x.len()];
            engines[k].shard_grad(&shard_request(x, data), shard, merged, &mut piece)?;
            Ok(piece)
        },
    )
}

/// The vocabulary in three shards on `engine`'s device: f32 logits and i64 class targets in its
/// buffers, each shard's statistics read back and merged, and its gradient written in place.
fn device_sharded(engine: &Engine, data: &Data) -> Result<(f64, f64)> {
    let Some((device, queue)) = engine.wgpu() else {
        return Ok((f64::NAN, f64::NAN));
    };
    let labels = storage_buffer(device, "verify labels", bytemuck::cast_slice(&data.classes));
    let buffer =
        |label, values: &[f32]| storage_buffer(device, label, bytemuck::cast_slice(values));
    sharded(
        data,
        3,
        |_, shard, x| {
            let input = buffer("verify shard logits", x);
            let r = device_shard_request(&input, &labels, x.len() / VOCAB_SHAPE[0]);
            let mut encoder = device.create_command_encoder(&Default::default());
            let out = engine.record_shard_stats(&mut encoder, &r, shard)?;
            queue.submit([encoder.finish()]);
            engine.read_shard_stats(&out)
        },
        |_, shard, x, merged| {
            let input = buffer("verify shard logits", x);
            let mut r = device_shard_request(&input, &labels, x.len() / VOCAB_SHAPE[0]);
            r.options.grad_in_place = true;
            let mut encoder = device.create_command_encoder(&Default::default());
            let out = engine.record_shard_grad(&mut encoder, &r, shard, merged)?;
            queue.submit([encoder.finish()]);
            engine.check_targets(&out)?;
            let bytes = engine.read_buffer(&input, 0..(x.len() * 4) as u64)?;
            Ok(bytemuck::pod_collect_to_vec(&bytes))
        },
    )
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
    let vocab = Case {
        name: "device-resident bf16, in place",
        loss: LossKind::CrossEntropy,
        options: Options::Plain,
        shape: VOCAB_SHAPE,
    };
    let data = Data::draw(&vocab, seed.wrapping_add(CASES.len() as u64));
    let mut report = |name: &str, engine: String, (loss, grad): (f64, f64), grad_tolerance| {
        let ok = loss <= TOLERANCE && grad <= grad_tolerance;
        checks += 1;
        failed += usize::from(!ok);
        println!(
            "{name:<58} {:>10} {engine:<44} {loss:>9.1e} {grad:>9.1e} {:>7}",
            format!("{}x{}", VOCAB_SHAPE[0], VOCAB_SHAPE[1]),
            if ok { "ok" } else { "FAILED" }
        );
    };
    for engine in engines.iter().filter(|e| e.wgpu().is_some()) {
        let errors = device_resident(engine, &data)?;
        report(
            vocab.name,
            engine.device().to_string(),
            errors,
            BF16_GRADIENT_TOLERANCE,
        );
    }
    let errors = sharded_on(&engines, &data)?;
    report(
        "vocabulary shards, smoothing, z-loss, merged",
        format!("{} engines, a shard each", engines.len()),
        errors,
        TOLERANCE,
    );
    for engine in engines.iter().filter(|e| e.wgpu().is_some()) {
        let errors = device_sharded(engine, &data)?;
        report(
            "vocabulary shards on device buffers, grad in place",
            engine.device().to_string(),
            errors,
            TOLERANCE,
        );
    }
    println!(
        "\n{} of {checks} checks passed (loss: largest |a − e| / max(1, |e|); gradient: ‖a − e‖ / ‖e‖; both within {TOLERANCE:e}, a bf16 gradient within {BF16_GRADIENT_TOLERANCE:e} of the reference's rounded to bf16)",
        checks - failed
    );
    Ok((failed, checks))
}
