//! Shared by the integration tests: every GPU engine, random inputs, and NaN-aware comparison.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of this module"
)]

use std::sync::OnceLock;

use half::{bf16, f16};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use xent::io::Floats;
use xent::{Dtype, Engine};

/// One engine per adapter wgpu finds, opened once per test binary. With `XENT_REQUIRE_GPU=1`, no
/// adapter at all (or one that fails to open) fails the test instead of skipping it.
pub fn gpus() -> &'static [Engine] {
    static ENGINES: OnceLock<Vec<Engine>> = OnceLock::new();
    ENGINES.get_or_init(open_gpus)
}

/// One new engine per adapter wgpu finds, for tests that change an engine's settings; with
/// `XENT_REQUIRE_GPU=1` as `gpus`.
pub fn open_gpus() -> Vec<Engine> {
    let require = std::env::var("XENT_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let mut engines = Vec::new();
    for engine in Engine::all_gpus() {
        match engine {
            Ok(e) => engines.push(e),
            Err(e) if require => {
                panic!("XENT_REQUIRE_GPU=1 and an adapter failed to open: {e}")
            }
            Err(e) => eprintln!("skipping an adapter that failed to open: {e}"),
        }
    }
    assert!(
        !(require && engines.is_empty()),
        "XENT_REQUIRE_GPU=1 but wgpu found no adapter"
    );
    engines
}

/// The engines checked against the float64 reference: every GPU adapter and the fast CPU path.
pub fn under_test() -> Vec<Engine> {
    gpus().iter().cloned().chain([Engine::cpu()]).collect()
}

/// Runs `body` on every engine under test, naming each in the output as `[Backend/adapter] test`.
pub fn on_every_engine(test: &str, body: impl Fn(&Engine)) {
    if gpus().is_empty() {
        eprintln!("{test}: no GPU adapter, CPU only (set XENT_REQUIRE_GPU=1 to fail instead)");
    }
    for engine in &under_test() {
        eprintln!("{} {test}", engine.device());
        body(engine);
    }
}

/// A generator seeded from `XENT_SEED`, or from the clock; the seed is printed so that a failure
/// can be replayed.
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("XENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: XENT_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// `n` logits drawn from N(0, scale²).
pub fn logits(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    let normal = Normal::new(0.0, scale).expect("positive scale");
    (0..n).map(|_| normal.sample(rng)).collect()
}

/// Rows of a softmax of N(0, 4) logits: a distribution per row, for probability inputs and soft
/// targets.
pub fn distribution(rng: &mut StdRng, batch: usize, classes: usize) -> Vec<f32> {
    logits(rng, batch * classes, 2.0)
        .chunks(classes)
        .flat_map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect()
}

/// `batch` class indices in [0, classes), with each row ignored (-100) with probability `ignored`.
pub fn targets(rng: &mut StdRng, batch: usize, classes: usize, ignored: f64) -> Vec<i64> {
    (0..batch)
        .map(|_| {
            if rng.random_bool(ignored) {
                -100
            } else {
                rng.random_range(0..classes as i64)
            }
        })
        .collect()
}

/// `x` rounded to `dtype` (to nearest, ties to even), with every value that would round to 0
/// made 0.5 instead: a kernel that reads the wrong half of a 32-bit word, or a zeroed one, cannot
/// match by chance.
pub fn round_to(dtype: Dtype, x: &[f32]) -> Floats {
    let x = x.iter().map(|&v| {
        let nonzero = match dtype {
            Dtype::F32 => v != 0.0,
            Dtype::F16 => f16::from_f32(v).to_f32() != 0.0,
            Dtype::Bf16 => bf16::from_f32(v).to_f32() != 0.0,
        };
        if nonzero { v } else { 0.5 }
    });
    match dtype {
        Dtype::F32 => Floats::F32(x.collect()),
        Dtype::F16 => Floats::F16(x.map(f16::from_f32).collect()),
        Dtype::Bf16 => Floats::Bf16(x.map(bf16::from_f32).collect()),
    }
}

/// The bytes of a `.safetensors` file holding `tensors` (name, values, shape), written by the
/// `safetensors` crate.
pub fn safetensors_file(tensors: &[(&str, &Floats, &[usize])]) -> Vec<u8> {
    let data: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|&(name, values, shape)| {
            let (dtype, bytes) = match values {
                Floats::F32(v) => (safetensors::Dtype::F32, le_bytes(v, |x| x.to_le_bytes())),
                Floats::F16(v) => (safetensors::Dtype::F16, le_bytes(v, |x| x.to_le_bytes())),
                Floats::Bf16(v) => (safetensors::Dtype::BF16, le_bytes(v, |x| x.to_le_bytes())),
            };
            (name.to_string(), dtype, shape.to_vec(), bytes)
        })
        .collect();
    let views = data.iter().map(|(name, dtype, shape, bytes)| {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes);
        (name, view.expect("the shape fits the values"))
    });
    safetensors::serialize(views, None).expect("a serializable file")
}

/// A `.safetensors` file built by hand: the header's length (8 bytes, little-endian), the header
/// as given, then `data`; for malformed files.
pub fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn le_bytes<T: Copy, const N: usize>(values: &[T], bytes: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| bytes(v)).collect()
}

/// Asserts |actual - expected| <= atol + rtol·|expected| elementwise, with NaN matching NaN and an
/// infinity matching the same infinity. A failure names the first bad index.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], atol: f64, rtol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (f64::from(a), f64::from(e));
        let ok = if e.is_nan() || a.is_nan() {
            e.is_nan() && a.is_nan()
        } else if e.is_infinite() || a.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= atol + rtol * e.abs()
        };
        assert!(
            ok,
            "{what}: first mismatch at index {i}: got {a}, expected {e} (atol {atol}, rtol {rtol})"
        );
    }
}

/// Asserts a relative error of at most `rtol` (or an absolute one of `rtol` near zero).
pub fn assert_scalar(what: &str, actual: f32, expected: f32, rtol: f64) {
    let (a, e) = (f64::from(actual), f64::from(expected));
    assert!(
        (a - e).abs() <= rtol * e.abs().max(1.0),
        "{what}: got {a}, expected {e}, relative error {:.3e} over {rtol:e}",
        (a - e).abs() / e.abs().max(1.0)
    );
}

/// Runs the `xent` binary with `args` and extra environment; returns (exit code, stdout, stderr).
pub fn run_cli<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    // As on a machine with no desktop session, where Mesa's Vulkan device-select layer would
    // print to stderr if xent let it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .envs(env.iter().copied())
        .output()
        .expect("the xent binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

/// What `xent --device` is run with in CLI tests: the reference, the fast CPU path, and `gpu` once
/// per backend that has an adapter here, selected through `WGPU_BACKEND`.
pub fn cli_devices() -> Vec<(&'static str, Option<String>)> {
    [("reference", None), ("cpu", None)]
        .into_iter()
        .chain(
            gpus()
                .iter()
                .map(|e| ("gpu", Some(e.device().backend.to_lowercase()))),
        )
        .collect()
}

/// ‖a − b‖ / ‖b‖ in f64, or ‖a − b‖ when b is all zeros. NaN anywhere gives NaN, which fails
/// every `<=` check.
pub fn relative_norm_error(a: &[f32], b: &[f32]) -> f64 {
    let (diff, norm) = norms(a, b);
    if norm == 0.0 { diff } else { diff / norm }
}

/// ‖a − b‖ and ‖b‖.
pub fn norms(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|&y| f64::from(y).powi(2)).sum();
    (diff.sqrt(), norm.sqrt())
}

/// Writes a row-major `.npy` file of `shape` holding `data`, through xent's own writer.
pub fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &std::path::Path,
    shape: &[usize],
    data: &[T],
) {
    xent::io::npy::write(path, data, shape).unwrap();
}

/// With `XENT_EXPECT_BACKENDS` set (CI), each named backend must be among the engines checked.
pub fn check_expected_backends(engines: &[Engine]) {
    let Ok(expected) = std::env::var("XENT_EXPECT_BACKENDS") else {
        return;
    };
    for backend in expected.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        assert!(
            engines
                .iter()
                .any(|e| e.device().backend.eq_ignore_ascii_case(backend)),
            "XENT_EXPECT_BACKENDS names {backend}, but no engine under test runs on it"
        );
    }
}

/// Every adapter, with a device the test opens itself, as a wgpu user would.
pub fn caller_devices() -> Vec<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    caller_devices_with(|limits| limits)
}

/// As `caller_devices`, each device opened with the limits `limits` makes of its adapter's.
pub fn caller_devices_with(
    limits: impl Fn(wgpu::Limits) -> wgpu::Limits,
) -> Vec<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .map(|adapter| {
            let (device, queue) =
                pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                    label: Some("caller"),
                    required_limits: limits(adapter.limits()),
                    ..Default::default()
                }))
                .unwrap();
            (adapter, device, queue)
        })
        .collect()
}

/// A STORAGE | COPY_SRC | COPY_DST buffer on `engine`'s device holding `contents`, padded with
/// zeros to whole 16-byte words.
pub fn storage_buffer(engine: &Engine, contents: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let (device, _) = engine.wgpu().expect("a GPU engine");
    let mut padded = contents.to_vec();
    padded.resize(padded.len().next_multiple_of(16).max(16), 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test data"),
        contents: &padded,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
    })
}

/// Little-endian f32 values from bytes.
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
