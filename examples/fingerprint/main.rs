//! The fingerprint of xent's results: for a fixed, seeded set of requests, a hash of the bits of
//! everything each engine returns (losses, unreduced values, lse, gradients, shard statistics,
//! and the text of each error), so that a change meant to keep behaviour can show that it kept it
//! bit for bit.
//!
//! Engines: the float64 reference, the fast CPU path, and every GPU adapter wgpu finds. Requests:
//! every loss, input kind, reduction, option, dtype and a range of shapes on host slices through
//! `compute`, `compute_into` and `compute_in_place`; bad requests; vocabulary shards; and on each
//! GPU, device-resident requests and shards. Autotune stays off, so every run gives the same
//! bits.
//!
//! Prints one line per engine and case, `<engine>\t<case>\t<hash>` (FNV-1a 64, 16 hex digits),
//! then per engine the hash of all its lines; nothing that varies from run to run. Exits non-zero
//! when a case did not do what it was written to do (a good request that failed, a bad one that
//! did not), after printing every line.
//!
//! ```text
//! cargo run --release --example fingerprint
//! ```

mod case;
mod device;
mod device_shards;
mod errors;
mod fnv;
mod host;
mod report;
mod shards;

use std::process::ExitCode;

use xent::Engine;

use report::Report;

/// The seed of every case's data.
const SEED: u64 = 18;

fn main() -> ExitCode {
    println!("xent fingerprint, seed {SEED}: <engine>\t<case>\t<FNV-1a 64 of its results' bits>");
    let cases = host::cases(SEED);
    let mut engines = vec![Engine::reference(), Engine::cpu()];
    for engine in Engine::all_gpus() {
        match engine {
            Ok(engine) => engines.push(engine),
            Err(e) => println!("an adapter failed to open: {e}"),
        }
    }
    let mut surprises = Vec::new();
    for engine in &engines {
        let mut report = Report::new(engine);
        host::run(engine, &cases, &mut report);
        errors::run(engine, &mut report);
        shards::run(engine, SEED, &mut report);
        if engine.wgpu().is_some() {
            device::run(engine, SEED, &mut report);
            device_shards::run(engine, SEED, &mut report);
            let pooled = engine.pooled_bytes();
            report.hashed("pooled_bytes after every case", |h| h.u64(pooled));
        }
        surprises.extend(report.finish());
    }
    if surprises.is_empty() {
        return ExitCode::SUCCESS;
    }
    for surprise in &surprises {
        eprintln!("fingerprint: {surprise}");
    }
    ExitCode::FAILURE
}
