//! PyTorch's `F.cross_entropy` (float64, from `scripts/gen_fixtures.py`) against every engine,
//! through the library and through `xent loss --json`.

mod common;

use std::path::{Path, PathBuf};

use common::{
    assert_close, assert_scalar, cli_devices, fixture_dirs, read_input, read_target, run_cli,
};
use serde_json::Value;
use xent::io::{Floats, TargetData};
use xent::{Engine, Reduction, Request};

const TOL: f64 = 1e-5;

struct Fixture {
    name: String,
    dir: PathBuf,
    logits: Vec<f32>,
    shape: [usize; 2],
    targets: Vec<i64>,
    expected: Value,
}

impl Fixture {
    fn number(&self, key: &str) -> f32 {
        self.expected[key].as_f64().unwrap() as f32
    }

    fn numbers(&self, key: &str) -> Vec<f32> {
        self.expected[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    }

    /// f32 logits of magnitude M carry an absolute error of about M·2^-24 into lse, so the
    /// absolute tolerance grows with the largest finite logit.
    fn atol(&self) -> f64 {
        let max = self
            .logits
            .iter()
            .filter(|x| x.is_finite())
            .fold(1.0_f64, |m, &x| m.max(f64::from(x.abs())));
        TOL * max
    }
}

fn fixtures() -> Vec<Fixture> {
    fixture_dirs("cross_entropy", 8)
        .into_iter()
        .map(|dir| {
            let TargetData::ClassesI64(targets) = read_target(&dir.join("target.npy")).unwrap()
            else {
                panic!("target.npy is int64");
            };
            let i32_targets = read_target(&dir.join("target_i32.npy")).unwrap();
            assert_eq!(
                i32_targets,
                TargetData::ClassesI32(targets.iter().map(|&t| t as i32).collect())
            );
            let (Floats::F32(logits), shape) = read_input(&dir.join("input.npy")).unwrap() else {
                panic!("input.npy is float32");
            };
            let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
            Fixture {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                logits: logits.into_owned(),
                shape,
                targets: targets.into_owned(),
                expected: serde_json::from_str(&text).unwrap(),
                dir,
            }
        })
        .collect()
}

fn check_engine(engine: &Engine, f: &Fixture) {
    let what = format!("{} {}", engine.device(), f.name);
    let request = Request::cross_entropy(&f.logits[..], f.shape, &f.targets[..]).with_lse(true);
    let run = |r: Reduction| engine.compute(&request.reduction(r)).unwrap();
    let mean = run(Reduction::Mean);
    assert_eq!(
        mean.valid_rows as u64,
        f.expected["valid_rows"].as_u64().unwrap(),
        "{what}"
    );
    let atol = f.atol();
    assert_scalar(
        &format!("{what} mean"),
        mean.loss.scalar().unwrap(),
        f.number("mean"),
        atol.max(TOL),
    );
    assert_scalar(
        &format!("{what} sum"),
        run(Reduction::Sum).loss.scalar().unwrap(),
        f.number("sum"),
        atol.max(TOL),
    );
    let none = run(Reduction::None);
    assert_close(
        &format!("{what} none"),
        none.loss.values().unwrap(),
        &f.numbers("none"),
        atol,
        TOL,
    );
    assert_close(
        &format!("{what} lse"),
        none.lse.as_deref().unwrap(),
        &f.numbers("lse"),
        atol,
        TOL,
    );
}

#[test]
fn every_engine_matches_pytorch() {
    let fixtures = fixtures();
    for f in &fixtures {
        check_engine(&Engine::reference(), f);
    }
    common::on_every_engine("pytorch fixtures", |engine| {
        for f in &fixtures {
            check_engine(engine, f);
        }
    });
}

#[test]
fn cli_json_matches_pytorch() {
    let fixtures = fixtures();
    for (device, backend) in cli_devices() {
        let env: Vec<(&str, &str)> = backend
            .iter()
            .map(|b| ("WGPU_BACKEND", b.as_str()))
            .collect();
        for f in &fixtures {
            let input = f.dir.join("input.npy");
            let target = f.dir.join(if f.name.len() % 2 == 0 {
                "target.npy"
            } else {
                "target_i32.npy"
            });
            for reduction in ["mean", "sum", "none"] {
                let args = [
                    "loss",
                    "--input",
                    input.to_str().unwrap(),
                    "--target",
                    target.to_str().unwrap(),
                    "--reduction",
                    reduction,
                    "--device",
                    device,
                    "--json",
                ];
                let (code, stdout, stderr) = run_cli(&args, &env);
                let what = format!("{device} {env:?} {} {reduction}", f.name);
                assert_eq!(code, 0, "{what}: {stderr}");
                let doc: Value = serde_json::from_str(&stdout).unwrap();
                let kind = if device == "gpu" { "gpu" } else { "cpu" };
                assert_eq!(doc["device"], kind, "{what}");
                assert!(
                    doc["adapter"].is_string() && doc["backend"].is_string(),
                    "{what}"
                );
                assert_eq!(doc["valid_rows"], f.expected["valid_rows"], "{what}");
                if let Some((_, backend)) = env.first() {
                    assert_eq!(
                        doc["backend"].as_str().unwrap().to_lowercase(),
                        *backend,
                        "{what}"
                    );
                }
                if reduction == "none" {
                    let losses: Vec<f32> = doc["losses"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap() as f32)
                        .collect();
                    assert_eq!(doc["shape"], serde_json::json!([f.shape[0]]), "{what}");
                    assert_close(&what, &losses, &f.numbers("none"), f.atol(), TOL);
                } else {
                    let loss = doc["loss"].as_f64().unwrap() as f32;
                    assert_scalar(&what, loss, f.number(reduction), f.atol().max(TOL));
                }
            }
        }
    }
}

#[test]
fn cli_gpu_without_an_adapter_fails_with_one_line() {
    // No Metal adapter exists on Linux, so this asks for a GPU that is not there.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cross_entropy/3x7");
    let input = dir.join("input.npy");
    let target = dir.join("target.npy");
    let args = [
        "loss",
        "--input",
        input.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--device",
        "gpu",
    ];
    let (code, stdout, stderr) = run_cli(&args, &[("WGPU_BACKEND", "metal")]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    let reason: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("xent: error:"))
        .collect();
    assert_eq!(reason.len(), 1, "{stderr}");
    assert!(reason[0].contains("no GPU adapter"), "{stderr}");
}

#[test]
fn cli_bad_input_is_a_one_line_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cross_entropy/3x7");
    let input = dir.join("input.npy");
    let target = dir.join("target.npy");
    let (input, target) = (input.to_str().unwrap(), target.to_str().unwrap());
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "loss", "--input", input, "--target", target, "--loss", "entropy",
            ],
            "entropy takes no target",
        ),
        (
            &[
                "loss", "--input", target, "--target", target, "--device", "cpu",
            ],
            "expected [batch, classes]",
        ),
        (
            &["loss", "--input", "/nonexistent.npy", "--target", target],
            "/nonexistent.npy",
        ),
        (
            &[
                "loss",
                "--input",
                input,
                "--target",
                target,
                "--reduction",
                "avg",
            ],
            "avg",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, stderr) = run_cli(args, &[]);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
