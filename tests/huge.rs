//! A 600 MB batch with its gradient on every GPU adapter, within a stated memory bound. It is the
//! only test of its binary, so that the process's peak resident set is this test's own.

mod common;

use xent::{Engine, Request};

const MIB: u64 = 1 << 20;

/// What the driver, the compiled kernels and the test harness add to the peak, beyond the arrays
/// the test holds and the engines' pooled buffers (measured: see docs/performance.md, Memory).
const ALLOWANCE: u64 = 384 * MIB;

/// The process's peak resident set (`VmHWM`) in bytes, or `None` where `/proc` is missing.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn six_hundred_megabytes_with_the_gradient_stream_through_bounded_memory() {
    let mut rng = common::rng("600 MB");
    let (batch, classes) = (4800, 32_000);
    let bytes = (batch * classes * 4) as u64;
    assert!(bytes >= 600_000_000);
    let x = common::logits(&mut rng, batch * classes, 4.0);
    let t = common::targets(&mut rng, batch, classes, 0.05);
    let request = Request::cross_entropy(&x[..], [batch, classes], &t[..]).label_smoothing(0.05);
    let mut expected = vec![0.0_f32; x.len()];
    let want = Engine::cpu().compute_into(&request, &mut expected).unwrap();
    let want = want.loss.scalar().unwrap();
    let mut grad = vec![0.0_f32; x.len()];
    // The most any one engine pooled: each is dropped before the next opens.
    let mut pooled = 0;
    let engines = common::open_gpus();
    common::check_expected_backends(&engines);
    for engine in engines {
        let got = engine.compute_into(&request, &mut grad).unwrap();
        let name = engine.device().to_string();
        common::assert_scalar(&name, got.loss.scalar().unwrap(), want, 1e-5);
        let error = common::relative_norm_error(&grad, &expected);
        assert!(error <= 1e-5, "{name}: gradient error {error:e}");
        pooled = pooled.max(engine.pooled_bytes());
        eprintln!(
            "{name}: pooled {:.0} MiB after a {:.0} MiB call with its gradient",
            engine.pooled_bytes() as f64 / MIB as f64,
            bytes as f64 / MIB as f64
        );
        // The engine is dropped here, and its buffers with it.
    }
    let Some(peak) = peak_rss() else {
        eprintln!("no /proc/self/status: peak not measured");
        return;
    };
    // The test's own arrays: the input, the gradient and the expected gradient.
    let arrays = 3 * bytes;
    eprintln!(
        "peak RSS {:.0} MiB: arrays {:.0} MiB + the most an engine pooled {:.0} MiB + {:.0} MiB",
        peak as f64 / MIB as f64,
        arrays as f64 / MIB as f64,
        pooled as f64 / MIB as f64,
        (peak.saturating_sub(arrays + pooled)) as f64 / MIB as f64
    );
    assert!(
        peak <= arrays + pooled + ALLOWANCE,
        "peak RSS {} MiB is over the arrays, the pooled buffers and the {} MiB allowance",
        peak / MIB,
        ALLOWANCE / MIB
    );
}
