//! `xent bench`: the benchmark harness, whose figures are the project's performance claims.
//!
//! For every shape of the grid and every device it measures, over fresh inputs rotated from run
//! to run so that caches do not flatter the numbers:
//! - on each GPU adapter, the kernel time (timestamps where the adapter has them, else wall time
//!   after a sync) and the end-to-end time of a call on host data (upload, kernels, reduction and
//!   readback);
//! - on the CPU, the fast path's call, and the float64 reference's at small shapes;
//! - on each device, a bandwidth probe that reads the same bytes once and sums them, the ceiling
//!   every row is set against;
//! - with `--torch`, PyTorch's `F.cross_entropy` on the same shapes and thread count, in the same
//!   run; with `--baseline`, rows measured elsewhere (candle, by `benches/compare_candle`).
//!
//! It prints a table, and writes JSON, CSV and an SVG plot when asked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use half::{bf16, f16};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde_json::{Value, json};
use xent::npy::Floats;
use xent::{DeviceKind, Dtype, Engine, Error, Input, LossKind, Request, Result, Target};

use super::loss::LossArg;
use super::plot;

/// The default grid: small and large vocabularies, tiny rows, and huge rows in a small batch.
const DEFAULT_SHAPES: [Shape; 6] = [
    Shape(64, 1000),
    Shape(1024, 32_000),
    Shape(4096, 32_000),
    Shape(256, 128_256),
    Shape(8192, 10),
    Shape(32, 262_144),
];

/// Inputs rotate over enough sets to hold this many bytes (twice the L3 cache here), and at
/// least two.
const ROTATION_BYTES: usize = 64 << 20;
const MAX_SETS: usize = 256;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A shape to run, as BxC; repeat for several. Default: 64x1000, 1024x32000, 4096x32000,
    /// 256x128256, 8192x10 and 32x262144.
    #[arg(long = "shape", value_parser = parse_shape)]
    shapes: Vec<Shape>,
    /// The loss (mean reduction, on logits).
    #[arg(long, value_enum, default_value_t = LossArg::CrossEntropy)]
    loss: LossArg,
    /// The input's dtype.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// The forward alone, the forward with the gradient, the forward with the gradient written
    /// over the logits, or several of them.
    #[arg(long, value_enum, default_value_t = PassArg::Both)]
    pass: PassArg,
    /// Where to run; repeat for several. Default: every GPU adapter, the fast CPU path and the
    /// reference.
    #[arg(long = "device", value_enum)]
    devices: Vec<BenchDevice>,
    /// Timed runs per row, after the warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Untimed runs before them.
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// The float64 reference runs at shapes of at most this many elements.
    #[arg(long, default_value_t = 1 << 22)]
    reference_max_elements: usize,
    /// Also time PyTorch's F.cross_entropy, forward and forward+backward, in this run (through
    /// benches/compare_torch.py; skipped with a message when python or torch is missing).
    #[arg(long)]
    torch: bool,
    /// The Python that runs PyTorch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Let each GPU adapter autotune its row kernels first (see `Engine::autotune`), and print what
    /// it chose.
    #[arg(long)]
    autotune: bool,
    /// Rows measured elsewhere, as JSON lines (benches/compare_candle prints them); repeatable.
    #[arg(long)]
    baseline: Vec<PathBuf>,
    /// Write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Draw GB/s against bytes per row, one line per path with each probe as its ceiling, into
    /// this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// B × C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape(pub usize, pub usize);

impl Shape {
    fn elements(self) -> usize {
        self.0 * self.1
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.0, self.1)
    }
}

fn parse_shape(s: &str) -> std::result::Result<Shape, String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match s.to_ascii_lowercase().split_once('x') {
        Some((b, c)) => match (parse(b), parse(c)) {
            (Some(b), Some(c)) if b.checked_mul(c).is_some() => Ok(Shape(b, c)),
            _ => Err(format!(
                "'{s}' is not BxC with B and C positive whole numbers"
            )),
        },
        None => Err(format!("'{s}' is not BxC (for example 4096x32000)")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PassArg {
    /// The forward alone.
    Fwd,
    /// The forward with the gradient, into a buffer of its own.
    FwdBwd,
    /// The forward with the gradient written over the logits (`Engine::compute_in_place`; f32
    /// input; on the fast CPU path and GPUs, end to end).
    InPlace,
    /// fwd and fwd-bwd.
    Both,
    /// fwd, fwd-bwd and in-place.
    All,
}

/// What one row times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Fwd,
    FwdBwd,
    /// Forward and backward, the gradient written over the logits.
    FwdBwdInPlace,
    /// The bandwidth probe's read.
    Read,
}

impl Pass {
    pub fn name(self) -> &'static str {
        match self {
            Pass::Fwd => "fwd",
            Pass::FwdBwd => "fwd+bwd",
            Pass::FwdBwdInPlace => "fwd+bwd in place",
            Pass::Read => "read",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BenchDevice {
    /// Every GPU adapter wgpu finds.
    Gpu,
    /// The fast CPU path.
    Cpu,
    /// The float64 reference.
    Reference,
}

/// How a row's time was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// GPU kernels alone.
    Kernel,
    /// A whole call on host data: upload, kernels, reduction, readback.
    EndToEnd,
    /// A whole call on the CPU.
    Call,
    /// The device's bandwidth probe.
    Probe,
    /// The upload of the input alone, as a call does it.
    Upload,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Measure::Kernel => "kernel",
            Measure::EndToEnd => "end-to-end",
            Measure::Call => "call",
            Measure::Probe => "probe",
            Measure::Upload => "upload",
        }
    }
}

/// One measured row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    pub shape: Shape,
    pub pass: Pass,
    /// Who computed it: an adapter, a CPU path, or another library.
    pub path: String,
    pub measure: Measure,
    /// The clock: timestamps, wall after sync, host.
    pub clock: String,
    /// The device whose probe the row is set against.
    pub device: String,
    pub bytes: u64,
    /// Seconds of each timed run, sorted.
    pub seconds: Vec<f64>,
}

impl Row {
    fn median(&self) -> f64 {
        let n = self.seconds.len();
        if n % 2 == 1 {
            self.seconds[n / 2]
        } else {
            (self.seconds[n / 2 - 1] + self.seconds[n / 2]) / 2.0
        }
    }

    pub fn gbs(&self) -> f64 {
        self.bytes as f64 / self.median() / 1e9
    }

    fn min(&self) -> f64 {
        self.seconds[0]
    }

    fn max(&self) -> f64 {
        self.seconds[self.seconds.len() - 1]
    }
}

/// One device under test.
struct Device {
    engine: Engine,
    /// The probe it is set against: its adapter, or the CPU.
    probe_key: String,
    reference: bool,
}

/// One shape's inputs: `sets` fresh draws of logits, targets and probe data, used in turn.
struct Inputs {
    shape: Shape,
    f32_logits: Vec<Vec<f32>>,
    /// float16 or bfloat16 logits, when the dtype is one of those.
    half_logits: Vec<Floats>,
    classes: Vec<Vec<i64>>,
    dense: Vec<Vec<f32>>,
    /// What a probe reads: as many bytes as a call reads.
    probe: Vec<Vec<f32>>,
}

impl Inputs {
    fn draw(shape: Shape, loss: LossKind, dtype: Dtype, seed: u64) -> Self {
        let Shape(b, c) = shape;
        let dense_target = matches!(loss, LossKind::BinaryCrossEntropy | LossKind::KlDiv);
        let bytes = read_bytes(shape, loss, dtype) as usize;
        let sets = ROTATION_BYTES.div_ceil(bytes).clamp(2, MAX_SETS);
        let mut inputs = Inputs {
            shape,
            f32_logits: Vec::new(),
            half_logits: Vec::new(),
            classes: Vec::new(),
            dense: Vec::new(),
            probe: Vec::new(),
        };
        for set in 0..sets {
            let seed = seed ^ (set as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let logits = normal(b * c, 3.0, seed);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            inputs
                .classes
                .push((0..b).map(|_| rng.random_range(0..c as i64)).collect());
            if dense_target {
                let mut t: Vec<f32> = (0..b * c).map(|_| rng.random::<f32>()).collect();
                if loss == LossKind::KlDiv {
                    for row in t.chunks_mut(c) {
                        let sum: f32 = row.iter().sum();
                        row.iter_mut().for_each(|v| *v /= sum);
                    }
                }
                inputs.dense.push(t);
            }
            let plain_f32 = dtype == Dtype::F32 && !dense_target;
            if !plain_f32 {
                inputs.probe.push(normal(bytes / 4, 1.0, !seed));
            }
            match dtype {
                Dtype::F32 => inputs.f32_logits.push(logits),
                Dtype::F16 => inputs.half_logits.push(Floats::F16(
                    logits.iter().map(|&v| f16::from_f32(v)).collect(),
                )),
                Dtype::Bf16 => inputs.half_logits.push(Floats::Bf16(
                    logits.iter().map(|&v| bf16::from_f32(v)).collect(),
                )),
            }
        }
        inputs
    }

    fn sets(&self) -> usize {
        self.classes.len()
    }

    /// The request of set `k`.
    fn request(&self, loss: LossKind, k: usize) -> Request<'_> {
        let Shape(b, c) = self.shape;
        let target = match loss {
            LossKind::CrossEntropy => Target::from(&self.classes[k][..]),
            LossKind::BinaryCrossEntropy | LossKind::KlDiv => Target::Dense(&self.dense[k]),
            LossKind::Entropy => Target::None,
        };
        match self.f32_logits.get(k) {
            Some(x) => Request::new(loss, &x[..], [b, c], target),
            None => Request::new(loss, self.half_logits[k].as_input(), [b, c], target),
        }
    }

    fn probe(&self, k: usize) -> &[f32] {
        self.probe.get(k).unwrap_or_else(|| &self.f32_logits[k])
    }
}

/// n draws of N(0, σ²), in parallel from per-block seeds.
pub(super) fn normal(n: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let dist = Normal::new(0.0_f32, sigma).unwrap_or_else(|_| unreachable!("σ > 0"));
    let mut v = vec![0.0_f32; n];
    v.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(i, block)| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
            block.iter_mut().for_each(|x| *x = dist.sample(&mut rng));
        });
    v
}

/// The bytes one call reads: the input, and a dense target where the loss has one.
fn read_bytes(shape: Shape, loss: LossKind, dtype: Dtype) -> u64 {
    let dense = matches!(loss, LossKind::BinaryCrossEntropy | LossKind::KlDiv);
    (shape.elements() * (dtype.size() + if dense { 4 } else { 0 })) as u64
}

/// The bytes a pass must move at the least, which its GB/s counts: what it reads, and for
/// fwd+bwd the f32 gradient it writes, as many bytes again for f32 logits. A memory-bound
/// forward+backward therefore takes at least twice its forward's time, and its /probe (against
/// a probe that only reads) says how near it runs to that floor.
fn moved_bytes(shape: Shape, loss: LossKind, dtype: Dtype, pass: Pass) -> u64 {
    let written = match pass {
        Pass::FwdBwd | Pass::FwdBwdInPlace => shape.elements() as u64 * 4,
        Pass::Fwd | Pass::Read => 0,
    };
    read_bytes(shape, loss, dtype) + written
}

fn open_devices(choice: &[BenchDevice], autotune: bool) -> Vec<Device> {
    let all = [BenchDevice::Gpu, BenchDevice::Cpu, BenchDevice::Reference];
    let choice = if choice.is_empty() { &all[..] } else { choice };
    let cpu_key = "cpu".to_string();
    let mut devices = Vec::new();
    for &c in choice {
        match c {
            BenchDevice::Gpu => {
                for engine in Engine::all_gpus() {
                    match engine {
                        Ok(engine) => devices.push(Device {
                            probe_key: engine.device().to_string(),
                            engine: engine.autotune(autotune),
                            reference: false,
                        }),
                        Err(e) => eprintln!("xent bench: an adapter failed to open: {e}"),
                    }
                }
            }
            BenchDevice::Cpu => devices.push(Device {
                engine: Engine::cpu(),
                probe_key: cpu_key.clone(),
                reference: false,
            }),
            BenchDevice::Reference => devices.push(Device {
                engine: Engine::reference(),
                probe_key: cpu_key.clone(),
                reference: true,
            }),
        }
    }
    devices
}

/// Times `runs` calls of `f` on rotating input sets after `warmup` untimed ones; `f` returns the
/// seconds it measured itself, or `None` to be timed on the host.
fn time(
    runs: u32,
    warmup: u32,
    sets: usize,
    progress: &ProgressBar,
    mut f: impl FnMut(usize) -> Result<Option<f64>>,
) -> Result<Vec<f64>> {
    for w in 0..warmup as usize {
        f(w % sets)?;
    }
    let mut seconds = Vec::with_capacity(runs as usize);
    for r in 0..runs as usize {
        let start = Instant::now();
        let own = f((warmup as usize + r) % sets)?;
        seconds.push(own.unwrap_or_else(|| start.elapsed().as_secs_f64()));
    }
    progress.inc(1);
    seconds.sort_by(f64::total_cmp);
    Ok(seconds)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let loss = args.loss.kind();
    let shapes = if args.shapes.is_empty() {
        DEFAULT_SHAPES.to_vec()
    } else {
        args.shapes.clone()
    };
    let passes: &[Pass] = match args.pass {
        PassArg::Fwd => &[Pass::Fwd],
        PassArg::FwdBwd => &[Pass::FwdBwd],
        PassArg::InPlace => &[Pass::FwdBwdInPlace],
        PassArg::Both => &[Pass::Fwd, Pass::FwdBwd],
        PassArg::All => &[Pass::Fwd, Pass::FwdBwd, Pass::FwdBwdInPlace],
    };
    let in_place = passes.contains(&Pass::FwdBwdInPlace);
    if in_place && args.dtype != Dtype::F32 {
        return Err(Error::InvalidOption {
            option: "pass",
            reason: format!(
                "a gradient in place is written over f32 logits, not {}",
                args.dtype.name()
            ),
        });
    }
    let devices = open_devices(&args.devices, args.autotune);
    let runs_in =
        |d: &Device, s: Shape| !d.reference || s.elements() <= args.reference_max_elements;
    // The rows a device's call gives for a pass: end to end and kernel on a GPU (in place, end to
    // end only), the call on the CPU paths; the reference computes no gradient in place of its
    // own, so it has no in-place row.
    let calls_of = |d: &Device, pass: Pass| match (pass, d.engine.device().kind) {
        (Pass::FwdBwdInPlace, _) if d.reference => 0,
        (Pass::FwdBwdInPlace, _) | (_, DeviceKind::Cpu) => 1,
        (_, DeviceKind::Gpu) => 2,
    };
    let steps: usize = shapes
        .iter()
        .map(|&s| {
            let gpus = devices
                .iter()
                .filter(|d| d.engine.device().kind == DeviceKind::Gpu)
                .count();
            let probes = devices.iter().filter(|d| !d.reference).count() + gpus;
            let calls: usize = devices
                .iter()
                .filter(|d| runs_in(d, s))
                .map(|d| passes.iter().map(|&p| calls_of(d, p)).sum::<usize>())
                .sum();
            probes + calls
        })
        .sum();
    let progress = ProgressBar::new(steps as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::new();
    for (i, &shape) in shapes.iter().enumerate() {
        progress.set_message(format!("{shape}: drawing inputs"));
        let inputs = Inputs::draw(shape, loss, args.dtype, 0x5eed + i as u64);
        let mut grad = vec![
            0.0_f32;
            if passes.contains(&Pass::FwdBwd) {
                shape.elements()
            } else {
                0
            }
        ];
        // In place, each call overwrites its set's logits with their gradient, and the next call
        // on the set reads that: values of another size, at the same cost per element.
        let mut overwritten = if in_place {
            inputs.f32_logits.clone()
        } else {
            Vec::new()
        };
        for device in &devices {
            let name = device.engine.device().to_string();
            let row = |pass, measure: Measure, clock: &str, seconds| Row {
                shape,
                pass,
                path: name.clone(),
                measure,
                clock: clock.into(),
                device: device.probe_key.clone(),
                bytes: moved_bytes(shape, loss, args.dtype, pass),
                seconds,
            };
            if !device.reference {
                progress.set_message(format!("{shape}: probe on {name}"));
                let mut clock = "";
                let seconds = time(args.runs, args.warmup, inputs.sets(), &progress, |k| {
                    let t = device.engine.bandwidth_probe(inputs.probe(k))?;
                    clock = clock_name(t.clock);
                    Ok(Some(t.seconds))
                })?;
                rows.push(row(Pass::Read, Measure::Probe, clock, seconds));
            }
            if device.engine.device().kind == DeviceKind::Gpu {
                progress.set_message(format!("{shape}: upload to {name}"));
                let seconds = time(args.runs, args.warmup, inputs.sets(), &progress, |k| {
                    device.engine.upload_time(inputs.probe(k))
                })?;
                rows.push(row(Pass::Read, Measure::Upload, "host", seconds));
            }
            if !runs_in(device, shape) {
                continue;
            }
            let gpu = device.engine.device().kind == DeviceKind::Gpu;
            for &pass in passes.iter().filter(|&&p| calls_of(device, p) > 0) {
                let with_grad = pass == Pass::FwdBwd;
                progress.set_message(format!("{shape} {}: {name}", pass.name()));
                let mut call = |k: usize| -> Result<()> {
                    let request = inputs.request(loss, k);
                    match pass {
                        Pass::FwdBwd => device.engine.compute_into(&request, &mut grad)?,
                        Pass::FwdBwdInPlace => device.engine.compute_in_place(
                            &request.with_input(Input::F32(&[])),
                            &mut overwritten[k],
                        )?,
                        _ => device.engine.compute(&request)?,
                    };
                    Ok(())
                };
                // The autotune's trials run before any timed call: at most this many calls.
                for k in 0..if gpu && args.autotune { 64 } else { 0 } {
                    call(k % inputs.sets())?;
                    if !device.engine.autotuning() {
                        break;
                    }
                }
                let measure = if gpu {
                    Measure::EndToEnd
                } else {
                    Measure::Call
                };
                let seconds = time(args.runs, args.warmup, inputs.sets(), &progress, |k| {
                    call(k).map(|()| None)
                })?;
                rows.push(row(pass, measure, "host", seconds));
                if calls_of(device, pass) == 2 {
                    let mut clock = "";
                    let seconds = time(args.runs, args.warmup, inputs.sets(), &progress, |k| {
                        let request = inputs.request(loss, k);
                        let g = with_grad.then_some(&mut grad[..]);
                        let (_, t) = device.engine.compute_timed(&request, g)?;
                        clock = clock_name(t.clock);
                        Ok(Some(t.seconds))
                    })?;
                    rows.push(row(pass, Measure::Kernel, clock, seconds));
                }
            }
        }
    }
    progress.finish_and_clear();
    if args.torch {
        rows.extend(torch_rows(args, loss, &shapes, passes)?);
    }
    for path in &args.baseline {
        rows.extend(baseline_rows(path, &shapes, args.dtype, loss)?);
    }
    print_table(&rows, args);
    if args.autotune {
        for device in devices
            .iter()
            .filter(|d| d.engine.device().kind == DeviceKind::Gpu)
        {
            println!("autotune on {}:", device.engine.device());
            for line in device.engine.autotuned() {
                println!("  {line}");
            }
        }
    }
    if let Some(path) = &args.json {
        write(
            path,
            &(serde_json::to_string_pretty(&json_rows(&rows)).unwrap_or_default() + "\n"),
        )?;
    }
    if let Some(path) = &args.csv {
        write(path, &csv(&rows))?;
    }
    if let Some(path) = &args.plot {
        plot::draw(path, &rows)?;
    }
    Ok(())
}

fn clock_name(clock: xent::Clock) -> &'static str {
    match clock {
        xent::Clock::Timestamps => "timestamps",
        xent::Clock::WallAfterSync => "wall after sync",
        xent::Clock::Host => "host",
    }
}

/// The probe row a row is set against.
fn probe_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|p| p.measure == Measure::Probe && p.shape == row.shape && p.device == row.device)
}

/// PyTorch's time for a row's shape and pass, from the same run.
fn torch_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    // PyTorch's forward+backward stands against both of xent's.
    let pass = match row.pass {
        Pass::FwdBwdInPlace => Pass::FwdBwd,
        pass => pass,
    };
    rows.iter()
        .find(|t| t.path.starts_with("torch") && t.shape == row.shape && t.pass == pass)
}

fn print_table(rows: &[Row], args: &BenchArgs) {
    println!(
        "xent bench: {} loss, {} input, median of {} runs after {} warm-up, inputs rotated; \
         GB/s counts the bytes read, and for fwd+bwd the f32 gradient written",
        args.loss.kind().name(),
        args.dtype.name(),
        args.runs,
        args.warmup
    );
    println!(
        "{:<11} {:<7} {:<44} {:<10} {:>10} {:>21} {:>7} {:>7} {:>7}",
        "shape", "pass", "path", "measure", "median ms", "min–max ms", "GB/s", "/probe", "×torch"
    );
    for row in rows {
        let probe = probe_of(rows, row)
            .filter(|p| !std::ptr::eq(*p, row))
            .map_or(String::new(), |p| format!("{:.2}", row.gbs() / p.gbs()));
        let torch = torch_of(rows, row)
            .filter(|t| !std::ptr::eq(*t, row))
            .map_or(String::new(), |t| {
                format!("{:.2}", t.median() / row.median())
            });
        println!(
            "{:<11} {:<7} {:<44} {:<10} {:>10.3} {:>21} {:>7.2} {:>7} {:>7}",
            row.shape.to_string(),
            row.pass.name(),
            truncate(&row.path, 44),
            row.measure.name(),
            row.median() * 1e3,
            format!("{:.3}–{:.3}", row.min() * 1e3, row.max() * 1e3),
            row.gbs(),
            probe,
            torch,
        );
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

fn json_rows(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "shape": r.shape.to_string(),
                    "batch": r.shape.0,
                    "classes": r.shape.1,
                    "pass": r.pass.name(),
                    "path": r.path,
                    "measure": r.measure.name(),
                    "clock": r.clock,
                    "device": r.device,
                    "bytes": r.bytes,
                    "runs": r.seconds.len(),
                    "median_s": r.median(),
                    "min_s": r.min(),
                    "max_s": r.max(),
                    "gb_per_s": r.gbs(),
                    "of_probe": probe_of(rows, r).map(|p| r.gbs() / p.gbs()),
                    "torch_over_this": torch_of(rows, r).map(|t| t.median() / r.median()),
                })
            })
            .collect(),
    )
}

fn csv(rows: &[Row]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from(
        "shape,batch,classes,pass,path,measure,clock,device,bytes,runs,median_s,min_s,max_s,gb_per_s,of_probe,torch_over_this\n",
    );
    for r in rows {
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.shape,
            r.shape.0,
            r.shape.1,
            r.pass.name(),
            quote(&r.path),
            r.measure.name(),
            quote(&r.clock),
            quote(&r.device),
            r.bytes,
            r.seconds.len(),
            r.median(),
            r.min(),
            r.max(),
            r.gbs(),
            opt(probe_of(rows, r).map(|p| r.gbs() / p.gbs())),
            opt(torch_of(rows, r).map(|t| t.median() / r.median())),
        );
    }
    out
}

/// A file that could not be read or written.
fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| io_error(path, &e))
}

/// Rows of another library, from JSON lines of the form that `benches/compare_torch.py --json`
/// and `benches/compare_candle` print.
fn external_rows(
    text: &str,
    source: &str,
    shapes: &[Shape],
    bytes: impl Fn(Shape, Pass) -> u64,
) -> Result<Vec<Row>> {
    let bad = |line: usize, why: &str| Error::Io {
        path: source.to_string(),
        reason: format!("line {line}: {why}"),
    };
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with('{'))
    {
        let v: Value = serde_json::from_str(line).map_err(|e| bad(n + 1, &e.to_string()))?;
        let field = |k: &str| v.get(k).ok_or_else(|| bad(n + 1, &format!("no \"{k}\"")));
        let text_of = |k: &str| -> Result<String> {
            field(k)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(n + 1, &format!("\"{k}\" is not text")))
        };
        let number = |k: &str| -> Result<f64> {
            field(k)?
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| bad(n + 1, &format!("\"{k}\" is not a positive number")))
        };
        let shape = parse_shape(&text_of("shape")?).map_err(|e| bad(n + 1, &e))?;
        if !shapes.contains(&shape) {
            continue;
        }
        let pass = match text_of("pass")?.as_str() {
            "fwd" => Pass::Fwd,
            "fwd+bwd" => Pass::FwdBwd,
            other => return Err(bad(n + 1, &format!("unknown pass \"{other}\""))),
        };
        let threads = v
            .get("threads")
            .and_then(Value::as_u64)
            .map_or(String::new(), |t| format!(", {t} threads"));
        let path = format!(
            "{} {} (cpu{threads})",
            text_of("impl")?,
            text_of("version")?
        );
        let mut seconds = vec![number("min_s")?, number("median_s")?, number("max_s")?];
        seconds.sort_by(f64::total_cmp);
        rows.push(Row {
            shape,
            pass,
            path,
            measure: Measure::Call,
            clock: "host".into(),
            device: "cpu".into(),
            bytes: bytes(shape, pass),
            seconds,
        });
    }
    Ok(rows)
}

fn baseline_rows(path: &Path, shapes: &[Shape], dtype: Dtype, loss: LossKind) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
    external_rows(&text, &path.display().to_string(), shapes, |s, pass| {
        moved_bytes(s, loss, dtype, pass)
    })
}

/// PyTorch's rows, timed now by `benches/compare_torch.py` on the same shapes and the same thread
/// count as the fast path. Missing Python or torch is a message, not an error.
fn torch_rows(
    args: &BenchArgs,
    loss: LossKind,
    shapes: &[Shape],
    passes: &[Pass],
) -> Result<Vec<Row>> {
    if loss != LossKind::CrossEntropy || args.dtype != Dtype::F32 {
        eprintln!("xent bench: --torch times f32 cross-entropy only; no PyTorch rows for this run");
        return Ok(Vec::new());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare_torch.py");
    let mut cmd = Command::new(&args.python);
    cmd.arg(script)
        .arg("--json")
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .args(["--runs", &args.runs.to_string()]);
    for s in shapes {
        cmd.args(["--shape", &s.to_string()]);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "xent bench: could not run {} ({e}); no PyTorch rows",
                args.python
            );
            return Ok(Vec::new());
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Io {
            path: script.into(),
            reason: format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        });
    }
    let rows = external_rows(&stdout, script, shapes, |s, pass| {
        moved_bytes(s, loss, args.dtype, pass)
    })?;
    if rows.is_empty() {
        eprintln!(
            "xent bench: {}",
            stdout
                .lines()
                .next()
                .unwrap_or("compare_torch.py printed nothing")
        );
    }
    Ok(rows
        .into_iter()
        .filter(|r| passes.contains(&r.pass))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_bad_ones_say_why() {
        assert_eq!(parse_shape("4096x32000"), Ok(Shape(4096, 32_000)));
        assert_eq!(parse_shape("8X10"), Ok(Shape(8, 10)));
        for bad in ["4096", "0x10", "ax3", "3x", "99999999999x99999999999"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_rows_are_read_and_checked() {
        let text = concat!(
            "torch 2.15, 2 threads\n",
            r#"{"impl":"torch","version":"2.15","shape":"64x1000","pass":"fwd","threads":2,"runs":5,"median_s":0.002,"min_s":0.001,"max_s":0.003}"#,
            "\n",
            r#"{"impl":"torch","version":"2.15","shape":"64x1000","pass":"fwd+bwd","threads":2,"runs":5,"median_s":0.002,"min_s":0.001,"max_s":0.003}"#,
            "\n",
            r#"{"impl":"torch","version":"2.15","shape":"8x8","pass":"fwd","threads":2,"runs":5,"median_s":0.002,"min_s":0.001,"max_s":0.003}"#,
            "\n"
        );
        let bytes = |s, pass| moved_bytes(s, LossKind::CrossEntropy, Dtype::F32, pass);
        let rows = external_rows(text, "t", &[Shape(64, 1000)], bytes).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].path, "torch 2.15 (cpu, 2 threads)");
        // 256 000 bytes of logits read in 2 ms; with the gradient, as many written too.
        assert!((rows[0].gbs() - 0.128).abs() < 1e-9);
        assert!((rows[1].gbs() - 0.256).abs() < 1e-9);
        let broken = r#"{"impl":"torch","version":"2","shape":"64x1000","pass":"fwd","median_s":-1,"min_s":1,"max_s":1}"#;
        let e = external_rows(broken, "t", &[Shape(64, 1000)], |_, _| 1).unwrap_err();
        assert!(e.to_string().contains("median_s"), "{e}");
    }
}
