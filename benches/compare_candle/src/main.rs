//! candle's softmax cross-entropy on the CPU, forward and forward+backward, on the shapes xent
//! benchmarks, so the benchmark table can show a candle column measured on the same machine.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare_candle/Cargo.toml -- --runs 10
//!     [--threads 2] [--shape 4096x32000 ...]
//! ```
//!
//! What is timed, per `BxC` shape (f32 logits drawn from N(0, 3²) by a seeded generator, u32
//! targets uniform in `0..C`), after one untimed warm-up run:
//!
//! - `fwd`: `candle_nn::loss::cross_entropy(&logits, &targets)` then `to_scalar::<f32>()` on the
//!   loss. candle is eager, so every op has run when the call returns. In candle-nn 0.11 that
//!   call is `log_softmax` (max, sub, exp, sum, log, sub: it materializes the whole `B×C`
//!   log-softmax plus two more `B×C` temporaries) followed by `gather` + `sum_all` + `affine`.
//! - `fwd+bwd`: the same on a `candle_core::Var` holding the logits, then `loss.backward()`,
//!   fetching the logits' gradient from the `GradStore` and reading one element of it back.
//!   The backward also runs through the row max (candle does not detach it), so it does an
//!   extra compare/mask/multiply pass over `B×C`.
//!
//! Output: one JSON object per line on stdout per shape and pass, e.g.
//! `{"impl":"candle","version":"0.11.1","shape":"4096x32000","pass":"fwd","threads":2,...}`
//! with the median, min and max wall time in seconds. Progress goes to stderr.
//!
//! Threads: `--threads T` (default 2) sets `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` to T
//! before candle starts, and builds rayon's global pool with T threads. That matters because
//! candle-core 0.11 runs its large (≥ 64 Ki elements) f32 element-wise unary and binary ops
//! (exp, log, the subtractions; the backward's mul/add/neg/div) on its own "barrier pool" of
//! std threads sized from `CANDLE_NUM_THREADS`, else `RAYON_NUM_THREADS`, else the physical
//! core count — not on rayon's pool. Its reductions (max, sum), `gather`, `scatter_add`, `affine` and the
//! `eq`/`to_dtype` of the backward run on the calling thread only. So at T threads candle uses
//! up to T threads (the caller plus T−1 `candle-bp-*` workers) in the element-wise ops, and one
//! elsewhere; the rayon global pool is built as asked but these ops do not use it. The thread
//! counts seen are printed on stderr at the end.

use std::process::ExitCode;
use std::time::Instant;

use candle_core::{Device, IndexOp, Tensor, Var};

/// The candle-core version this binary is built against; Cargo.toml pins it with `=`.
const CANDLE_VERSION: &str = "0.11.1";

const DEFAULT_SHAPES: [&str; 6] = [
    "64x1000",
    "1024x32000",
    "4096x32000",
    "256x128256",
    "8192x10",
    "32x262144",
];

const USAGE: &str = "usage: compare_candle [--runs N] [--threads T] [--shape BxC]...";

struct Args {
    runs: usize,
    threads: usize,
    shapes: Vec<(usize, usize)>,
}

fn parse_shape(s: &str) -> Option<(usize, usize)> {
    let (b, c) = s
        .to_ascii_lowercase()
        .split_once('x')
        .map(|(b, c)| (b.parse::<usize>(), c.parse::<usize>()))?;
    match (b, c) {
        (Ok(b), Ok(c)) if b > 0 && c > 0 => Some((b, c)),
        _ => None,
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 10,
        threads: 2,
        shapes: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        let positive = |v: &str| v.parse::<usize>().ok().filter(|&n| n > 0);
        match flag.as_str() {
            "--runs" => args.runs = positive(&value).ok_or(format!("bad --runs {value:?}"))?,
            "--threads" => {
                args.threads = positive(&value).ok_or(format!("bad --threads {value:?}"))?
            }
            "--shape" => args
                .shapes
                .push(parse_shape(&value).ok_or(format!("bad --shape {value:?}, expected BxC"))?),
            _ => return Err(format!("unknown argument {flag:?}; {USAGE}")),
        }
    }
    if args.shapes.is_empty() {
        args.shapes = DEFAULT_SHAPES
            .iter()
            .map(|s| parse_shape(s).unwrap())
            .collect();
    }
    Ok(args)
}

/// SplitMix64: a small seeded generator, so every run sees the same inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

fn inputs(b: usize, c: usize, rng: &mut Rng) -> candle_core::Result<(Tensor, Tensor)> {
    let mut logits = Vec::with_capacity(b * c);
    while logits.len() < b * c {
        // Box-Muller, two normals per draw, std 3.
        let r = (-2.0 * rng.unit().ln()).sqrt() * 3.0;
        let t = std::f64::consts::TAU * rng.unit();
        logits.push((r * t.cos()) as f32);
        if logits.len() < b * c {
            logits.push((r * t.sin()) as f32);
        }
    }
    let targets: Vec<u32> = (0..b).map(|_| (rng.next_u64() % c as u64) as u32).collect();
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(logits, (b, c), &dev)?,
        Tensor::from_vec(targets, b, &dev)?,
    ))
}

/// One warm-up call, then `runs` timed calls; returns (median, min, max) seconds.
fn time<F>(runs: usize, mut f: F) -> candle_core::Result<(f64, f64, f64)>
where
    F: FnMut() -> candle_core::Result<f32>,
{
    std::hint::black_box(f()?);
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(f()?);
        samples.push(start.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let median = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    };
    Ok((median, samples[0], samples[n - 1]))
}

fn forward(logits: &Tensor, targets: &Tensor) -> candle_core::Result<f32> {
    candle_nn::loss::cross_entropy(logits, targets)?.to_scalar::<f32>()
}

fn forward_backward(logits: &Var, targets: &Tensor) -> candle_core::Result<f32> {
    let loss = candle_nn::loss::cross_entropy(logits.as_tensor(), targets)?;
    let grads = loss.backward()?;
    let grad = grads
        .get(logits.as_tensor())
        .ok_or_else(|| candle_core::Error::Msg("no gradient for the logits".into()))?;
    if grad.dims() != logits.dims() {
        candle_core::bail!(
            "gradient shape {:?} != logits {:?}",
            grad.dims(),
            logits.dims()
        );
    }
    // candle is eager: the gradient is already computed; read one element back to use it.
    Ok(loss.to_scalar::<f32>()? + grad.i((0, 0))?.to_scalar::<f32>()?)
}

/// Threads of this process by name prefix (Linux; empty elsewhere).
fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

fn run(args: &Args) -> candle_core::Result<()> {
    let mut rng = Rng(0x5EED);
    for &(b, c) in &args.shapes {
        let shape = format!("{b}x{c}");
        eprintln!("compare_candle: {shape}");
        let (logits, targets) = inputs(b, c, &mut rng)?;
        let var = Var::from_tensor(&logits)?;
        for pass in ["fwd", "fwd+bwd"] {
            let (median, min, max) = if pass == "fwd" {
                time(args.runs, || forward(&logits, &targets))?
            } else {
                time(args.runs, || forward_backward(&var, &targets))?
            };
            println!(
                "{{\"impl\":\"candle\",\"version\":\"{CANDLE_VERSION}\",\"shape\":\"{shape}\",\
                 \"pass\":\"{pass}\",\"threads\":{},\"runs\":{},\"median_s\":{median:.9},\
                 \"min_s\":{min:.9},\"max_s\":{max:.9}}}",
                args.threads, args.runs
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("compare_candle: {msg}");
            return ExitCode::from(2);
        }
    };
    let t = args.threads.to_string();
    // SAFETY: nothing else runs yet; no other thread reads the environment concurrently.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", &t);
        std::env::set_var("CANDLE_NUM_THREADS", &t);
    }
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
    {
        eprintln!("compare_candle: rayon global pool: {e}");
    }
    eprintln!(
        "compare_candle: candle-core {CANDLE_VERSION}, {} threads asked, {} runs after 1 warm-up",
        args.threads, args.runs
    );
    if let Err(e) = run(&args) {
        eprintln!("compare_candle: candle error: {e}");
        return ExitCode::from(1);
    }
    let names = thread_names();
    let barrier = names.iter().filter(|n| n.starts_with("candle-bp")).count();
    eprintln!(
        "compare_candle: threads seen: rayon pool {}, candle barrier-pool workers {barrier} \
         (+ the main thread), {} in all",
        rayon::current_num_threads(),
        names.len()
    );
    ExitCode::SUCCESS
}
