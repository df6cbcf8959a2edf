//! `xent demo`: one generated batch on every adapter and on the reference.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use xent::{Engine, Result, SoftmaxCrossEntropy};

/// A GPT-2-sized batch: 512 rows of 50 257 logits (103 MB), so the batch goes up in chunks.
const BATCH: usize = 512;
const CLASSES: usize = 50_257;

pub fn run() -> Result<()> {
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
    let request = SoftmaxCrossEntropy::new(&logits, [BATCH, CLASSES], &targets[..]);
    println!(
        "\nMean softmax cross-entropy of a {BATCH} x {CLASSES} f32 batch (N(0, 3) logits, random targets):\n"
    );

    let reference = Engine::cpu();
    let start = Instant::now();
    let expected = reference.softmax_cross_entropy(&request)?.loss.scalar();
    let reference_ms = start.elapsed().as_secs_f64() * 1e3;
    let expected = expected.expect("mean is a scalar");

    println!(
        "{:<44} {:>12} {:>12} {:>10}",
        "device", "loss", "|diff|", "ms"
    );
    println!(
        "{:<44} {expected:>12.6} {:>12} {reference_ms:>10.1}",
        reference.device().to_string(),
        "-"
    );
    for engine in Engine::all_gpus() {
        let engine = match engine {
            Ok(engine) => engine,
            Err(e) => {
                println!("{:<44} failed to open: {e}", "(adapter)");
                continue;
            }
        };
        // The first call builds the pipelines and buffers; the timed call reuses them.
        engine.softmax_cross_entropy(&request)?;
        let start = Instant::now();
        let loss = engine.softmax_cross_entropy(&request)?.loss.scalar();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let loss = loss.expect("mean is a scalar");
        println!(
            "{:<44} {loss:>12.6} {:>12.2e} {ms:>10.1}",
            engine.device().to_string(),
            (loss - expected).abs()
        );
    }
    println!(
        "\nTimes are end to end (upload, kernel, device-side mean, readback of one f32) for one call \
         after a warm-up call. `--device auto` uses {}.",
        Engine::new().device()
    );
    Ok(())
}
