//! A linear head whose logits would take 1 GiB (N = 4096, D = 256, V = 65 536, f32, class targets,
//! a bias, all three gradients into the caller's slices) on the Vulkan adapter, within 600 MiB of
//! peak resident memory for the whole process: inputs, gradients, the driver, the compiled
//! kernels and the engine's buffers (on lavapipe, a software adapter, device memory is the
//! process's own), so that the logits are never held whole, on the device or the host. The call
//! runs in a child process (this test binary run again on this test alone, with
//! `XENT_LINEAR_MEMORY_CHILD` set and only the Vulkan backend), whose peak resident set
//! (`VmHWM`) is then the call's own; the parent checks what the child reports.

mod common;

use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};
use xent::{Engine, LinearGradsMut, Request};

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 600 * MIB;
const CHILD: &str = "XENT_LINEAR_MEMORY_CHILD";
const TEST: &str = "a_gibibyte_of_logits_on_the_gpu_stays_under_600_mib";
const N: usize = 4096;
const D: usize = 256;
const V: usize = 65536;

/// The process's peak resident set (`VmHWM`) in bytes, or `None` where `/proc` is missing.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// In the child: the call on the Vulkan adapter, timed, then the peak read, then the fast CPU
/// path's loss and gradients (after the peak, so that they do not count), printed as one JSON
/// line: or `{"skip": why}` where there is no Vulkan adapter.
fn child() {
    let engine = match Engine::gpu() {
        Ok(e) if e.device().backend == "Vulkan" => e,
        Ok(e) => {
            return println!(
                "{}",
                json!({"skip": format!("{} is not Vulkan", e.device())})
            );
        }
        Err(e) => return println!("{}", json!({"skip": e.to_string()})),
    };
    let mut rng = common::rng("a gibibyte of logits");
    let hidden = common::logits(&mut rng, N * D, 1.0);
    let weight = common::logits(&mut rng, V * D, 1.0 / 16.0);
    let bias = common::logits(&mut rng, V, 0.5);
    let targets = common::targets(&mut rng, N, V, 0.05);
    let request =
        Request::linear_cross_entropy(&hidden[..], [N, D], &weight[..], [V, D], &targets[..])
            .linear_bias(&bias);
    let mut grads = [
        vec![f32::NAN; N * D],
        vec![f32::NAN; V * D],
        vec![f32::NAN; V],
    ];
    let [h, w, b] = &mut grads;
    let into = |h, w, b| LinearGradsMut {
        hidden: Some(h),
        weight: Some(w),
        bias: Some(b),
        add: false,
    };
    let start = Instant::now();
    let out = engine.compute_linear_into(&request, into(h, w, b)).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let peak = peak_rss();
    let mut want = [vec![0.0; N * D], vec![0.0; V * D], vec![0.0; V]];
    let [h, w, b] = &mut want;
    let cpu = Engine::cpu()
        .compute_linear_into(&request, into(h, w, b))
        .unwrap();
    let errors: Vec<f64> = (0..3)
        .map(|k| common::relative_norm_error(&grads[k], &want[k]))
        .collect();
    println!(
        "{}",
        json!({
            "device": engine.device().to_string(),
            "peak_bytes": peak,
            "seconds": seconds,
            "loss": out.loss.scalar(),
            "cpu_loss": cpu.loss.scalar(),
            "grad_errors": errors,
        })
    );
}

#[test]
fn a_gibibyte_of_logits_on_the_gpu_stays_under_600_mib() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    assert_eq!((N * V * 4) as u64, 1024 * MIB);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(out.status.success(), "the child failed: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The harness prints the test's name before the child's line.
    let report: Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(&l[l.find('{')?..]).ok())
        .unwrap_or_else(|| panic!("the child printed no JSON line: {stdout}"));
    if let Some(why) = report.get("skip") {
        let require = std::env::var("XENT_REQUIRE_GPU").is_ok_and(|v| v == "1");
        assert!(!require, "XENT_REQUIRE_GPU=1 but no Vulkan adapter: {why}");
        return eprintln!("no Vulkan adapter ({why}): nothing measured");
    }
    eprintln!("{report}");
    let device = report["device"].as_str().unwrap_or("the GPU");
    let loss = report["loss"].as_f64().expect("a scalar loss") as f32;
    let cpu_loss = report["cpu_loss"].as_f64().expect("a scalar loss") as f32;
    assert!(loss.is_finite(), "{device}: loss {loss}");
    common::assert_scalar(&format!("{device}: loss"), loss, cpu_loss, 1e-4);
    let seconds = report["seconds"].as_f64().unwrap_or(f64::NAN);
    match report["peak_bytes"].as_u64() {
        None => eprintln!("{device}: {seconds:.1} s; no /proc/self/status: peak not measured"),
        Some(peak) => {
            eprintln!(
                "{device}: {seconds:.1} s, peak RSS {} MiB (limit {} MiB)",
                peak / MIB,
                LIMIT / MIB
            );
            assert!(
                peak <= LIMIT,
                "{device}: peak RSS {} MiB is over {} MiB",
                peak / MIB,
                LIMIT / MIB
            );
        }
    }
    for (name, error) in ["dH", "dW", "db"]
        .iter()
        .zip(report["grad_errors"].as_array().unwrap())
    {
        let error = error.as_f64().unwrap_or(f64::NAN);
        assert!(
            error <= 1e-4,
            "{device}: {name} off the fast path's by {error:e}"
        );
    }
}
