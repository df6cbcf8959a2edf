//! `xent demo`: one generated batch on every adapter and on the reference.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use xent::{Engine, InputKind, Reduction, Request, Result};

/// A GPT-2-sized batch: 512 rows of 50 257 logits (103 MB), so the batch goes up in chunks.
const BATCH: usize = 512;
const CLASSES: usize = 50_257;

pub fn run() -> Result<()> {
    let gpus: Vec<Engine> = Engine::all_gpus()
        .into_iter()
        .filter_map(|e| match e {
            Ok(engine) => Some(engine),
            Err(e) => {
                println!("an adapter failed to open: {e}");
                None
            }
        })
        .collect();
    let adapters = xent::gpu::adapters();
    println!("Adapters wgpu found (best first):");
    if adapters.is_empty() {
        println!("  none: the demo runs on the CPU reference only");
    }
    for a in &adapters {
        println!(
            "  [{}/{}] {} ({})",
            a.backend, a.name, a.device_type, a.driver
        );
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let normal = Normal::new(0.0_f32, 3.0).expect("a positive standard deviation");
    let logits: Vec<f32> = (0..BATCH * CLASSES)
        .map(|_| normal.sample(&mut rng))
        .collect();
    let targets: Vec<i64> = (0..BATCH)
        .map(|_| rng.random_range(0..CLASSES as i64))
        .collect();
    let request = Request::cross_entropy(&logits[..], [BATCH, CLASSES], &targets[..]);
    println!(
        "\nMean softmax cross-entropy of a {BATCH} x {CLASSES} f32 batch (N(0, 3) logits, random targets):\n"
    );

    let reference = Engine::reference();
    let start = Instant::now();
    let expected = reference.compute(&request)?.loss.scalar();
    let reference_ms = start.elapsed().as_secs_f64() * 1e3;
    let expected = expected.expect("mean is a scalar");
    let fast = Engine::cpu();

    println!(
        "{:<44} {:>12} {:>12} {:>10}",
        "device", "loss", "|diff|", "ms"
    );
    println!(
        "{:<44} {expected:>12.6} {:>12} {reference_ms:>10.1}",
        reference.device().to_string(),
        "-"
    );
    for engine in gpus.iter().chain([&fast]) {
        // The first call builds the pipelines and buffers; the timed call reuses them.
        engine.compute(&request)?;
        let start = Instant::now();
        let loss = engine.compute(&request)?.loss.scalar();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let loss = loss.expect("mean is a scalar");
        println!(
            "{:<44} {loss:>12.6} {:>12.2e} {ms:>10.1}",
            engine.device().to_string(),
            (loss - expected).abs()
        );
    }
    let auto = Engine::new();
    let why = if auto.device().kind == xent::DeviceKind::Gpu {
        "a hardware GPU"
    } else {
        "no hardware GPU here, and on this CPU the fast path beats a software adapter"
    };
    println!(
        "\nTimes are end to end (upload, kernel, device-side mean, readback of one f32 on a GPU) \
         for one call after a warm-up call.\n`--device auto` uses {} ({why}).",
        auto.device()
    );
    worked_examples(&gpus)
}

/// The three worked examples of the design, on every device.
fn worked_examples(gpus: &[Engine]) -> Result<()> {
    let pred = [0.2_f32, 0.7, 0.1];
    let label = [0.0_f32, 1.0, 0.0];
    let q = [0.7_f32, 0.2, 0.1];
    let p = [1.0_f32, 0.0, 0.0];
    let y_hat = [0.8_f32, 0.9, 0.1];
    let y = [1.0_f32, 1.0, 0.0];
    let examples = [
        (
            "cross-entropy, label [0,1,0] vs [0.2,0.7,0.1]",
            0.3567,
            Request::cross_entropy(&pred[..], [1, 3], &label[..]),
        ),
        (
            "KL([1,0,0] || [0.7,0.2,0.1])",
            0.3567,
            Request::kl_div(&q[..], [1, 3], &p[..]).reduction(Reduction::BatchMean),
        ),
        (
            "multi-label BCE, [0.8,0.9,0.1] vs [1,1,0]",
            0.4339,
            Request::binary_cross_entropy(&y_hat[..], [1, 3], &y[..])
                .reduction(Reduction::BatchMean),
        ),
    ];
    println!("\nWorked examples (probabilities in, natural log):\n");
    let reference = Engine::reference();
    let fast = Engine::cpu();
    let engines: Vec<&Engine> = [&reference, &fast].into_iter().chain(gpus).collect();
    print!("{:<46} {:>8}", "example", "expected");
    for engine in &engines {
        let name = match engine.device().kind {
            xent::DeviceKind::Gpu => engine.device().backend.as_str(),
            xent::DeviceKind::Cpu if engine.device().adapter.contains("reference") => "reference",
            xent::DeviceKind::Cpu => "cpu fast",
        };
        print!(" {name:>10}");
    }
    println!();
    for (name, expected, request) in examples {
        let request = request.input_kind(InputKind::Probs);
        print!("{name:<46} {expected:>8.4}");
        for engine in &engines {
            let value = engine
                .compute(&request)?
                .loss
                .scalar()
                .expect("a scalar reduction");
            print!(" {value:>10.4}");
        }
        println!();
    }
    Ok(())
}
