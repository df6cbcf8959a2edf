//! Criterion benches of the mean softmax cross-entropy of host batches, forward and forward with
//! the gradient, end to end (upload, kernel, device-side mean, readback), on the float64 reference
//! and fast CPU paths and on every GPU adapter.
//! Throughput is the bytes of logits read. `XENT_BENCH_QUICK=1` runs small shapes only, for CI.
//! Every call returns only after the device has finished, so each timed iteration includes it.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};
use xent::{Engine, Request};

fn shapes() -> &'static [(usize, usize)] {
    if std::env::var("XENT_BENCH_QUICK").is_ok_and(|v| v == "1") {
        &[(64, 1000), (256, 4096)]
    } else {
        &[
            (64, 1000),
            (1024, 32_000),
            (4096, 32_000),
            (256, 128_256),
            (8192, 10),
            (32, 262_144),
        ]
    }
}

fn bench(c: &mut Criterion) {
    let mut engines: Vec<Engine> = Engine::all_gpus()
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    engines.push(Engine::cpu());
    engines.push(Engine::reference());
    let mut rng = StdRng::seed_from_u64(7);
    for grad in [false, true] {
        bench_group(c, &engines, &mut rng, grad);
    }
}

fn bench_group(c: &mut Criterion, engines: &[Engine], rng: &mut StdRng, grad: bool) {
    let name = if grad {
        "cross_entropy mean fwd+bwd"
    } else {
        "cross_entropy mean fwd"
    };
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for &(batch, classes) in shapes() {
        let logits: Vec<f32> = (0..batch * classes)
            .map(|_| rng.random_range(-4.0..4.0))
            .collect();
        let targets: Vec<i64> = (0..batch)
            .map(|_| rng.random_range(0..classes as i64))
            .collect();
        let request = Request::cross_entropy(&logits[..], [batch, classes], &targets[..]);
        // The gradient goes into one buffer reused across iterations, as in a training loop.
        let mut grad_buffer = vec![0.0_f32; if grad { logits.len() } else { 0 }];
        group.throughput(Throughput::Bytes((logits.len() * 4) as u64));
        for engine in engines {
            // The float64 reference runs at small shapes only: at 4096 × 32000 one call takes
            // seconds.
            if engine.device().adapter.contains("reference") && batch * classes > 1 << 25 {
                continue;
            }
            let id = BenchmarkId::new(engine.device().to_string(), format!("{batch}x{classes}"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        if grad {
                            engine
                                .compute_into(&request, &mut grad_buffer)
                                .expect("bench call");
                        } else {
                            engine.compute(&request).expect("bench call");
                        }
                    }
                    start.elapsed()
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
