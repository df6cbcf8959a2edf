//! `xent verify`: every adapter and the fast CPU path against the float64 reference, on fresh
//! random batches of every loss and the main options, losses and gradients; then a
//! device-resident call on each adapter, the vocabulary sharded over every engine, and sharded
//! on each adapter's device buffers; then linear heads (fused linear cross-entropy) on every
//! engine, and on each adapter's buffers, whole and in vocabulary shards.

mod cases;
mod host;
mod linear;
mod resident;
mod shards;
mod tally;

use clap::Args;
use xent::{Engine, LossKind, Result};

use cases::{CASES, Case, Data, Options, VOCAB_SHAPE};
use tally::{BF16_GRADIENT_TOLERANCE, TOLERANCE, Tally};

/// The arguments of `xent verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Seed of the random inputs; by default one drawn from the clock, and printed.
    #[arg(long)]
    seed: Option<u64>,
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
    let mut tally = Tally::default();
    tally.header();
    host::check(&engines, &reference, seed, &mut tally)?;
    let vocab = Case {
        name: "device-resident bf16, in place",
        loss: LossKind::CrossEntropy,
        options: Options::Plain,
        shape: VOCAB_SHAPE,
    };
    let data = Data::draw(&vocab, seed.wrapping_add(CASES.len() as u64));
    for engine in engines.iter().filter(|e| e.wgpu().is_some()) {
        let errors = resident::device_resident(engine, &data)?;
        tally.check(
            vocab.name,
            &VOCAB_SHAPE,
            &engine.device().to_string(),
            errors,
            BF16_GRADIENT_TOLERANCE,
        );
    }
    let errors = shards::sharded_on(&engines, &data)?;
    tally.check(
        "vocabulary shards, smoothing, z-loss, merged",
        &VOCAB_SHAPE,
        &format!("{} engines, a shard each", engines.len()),
        errors,
        TOLERANCE,
    );
    for engine in engines.iter().filter(|e| e.wgpu().is_some()) {
        let errors = shards::device_sharded(engine, &data)?;
        tally.check(
            "vocabulary shards on device buffers, grad in place",
            &VOCAB_SHAPE,
            &engine.device().to_string(),
            errors,
            TOLERANCE,
        );
    }
    linear::check(
        &engines,
        seed.wrapping_add(CASES.len() as u64 + 1),
        &mut tally,
    )?;
    tally.summary();
    Ok((tally.failed, tally.checks))
}
