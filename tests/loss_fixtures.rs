//! Every loss and option against PyTorch's float64 values (`scripts/gen_loss_fixtures.py`), on the
//! float64 reference, the fast CPU path and every GPU adapter, through the library and through
//! `xent loss --json`: float32, float64 and float16 inputs from `.npy` files, and bfloat16 inputs
//! from `.safetensors` files.
//!
//! Tolerance: 1e-5 relative (absolute below 1) for every value, gradients 1e-5 in relative norm,
//! whatever the dtype and magnitude. The inputs are exactly the values PyTorch computed on (16-bit
//! values are exact in f32), so only xent's f32 arithmetic separates the two, and it works on
//! x − max: the bfloat16 rows of logits at ±3e38 match to the same 1e-5, among them a row of
//! logits all −3e38 whose loss is ln 31.

mod common;

use std::path::{Path, PathBuf};

use common::{
    REDUCTIONS, assert_close, assert_scalar, cli_devices, fixture_dirs, read_input, read_matrix,
    read_target, read_vector, run_cli,
};
use serde_json::Value;
use xent::io::{Floats, TargetData};
use xent::{Base, Engine, InputKind, LossKind, Reduction, Request, Target};

const TOL: f64 = 1e-5;

struct Case {
    name: String,
    dir: PathBuf,
    spec: Value,
    /// input.npy, or input.safetensors for bfloat16.
    input_file: PathBuf,
    input: Floats<'static>,
    shape: [usize; 2],
    target: Option<TargetData<'static>>,
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
}

fn cases() -> Vec<Case> {
    let cases: Vec<Case> = fixture_dirs("losses", 80)
        .into_iter()
        .map(|dir| {
            let optional = |file: &str| {
                let path = dir.join(file);
                path.exists().then_some(path)
            };
            let spec: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap())
                    .unwrap();
            let input_file = optional("input.safetensors").unwrap_or_else(|| dir.join("input.npy"));
            let (input, shape) = read_matrix(&input_file).unwrap();
            Case {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                target: optional("target.npy").map(|p| read_target(&p).unwrap()),
                weight: optional("weight.npy").map(|p| read_vector(&p).unwrap()),
                pos_weight: optional("pos_weight.npy").map(|p| read_vector(&p).unwrap()),
                spec,
                input_file,
                input,
                shape,
                dir,
            }
        })
        .collect();
    let count = |dtype: &str| cases.iter().filter(|c| c.input.dtype() == dtype).count();
    assert!(count("bfloat16") >= 14, "bfloat16 fixtures missing");
    assert!(count("float16") >= 16, "float16 fixtures missing");
    cases
}

impl Case {
    fn str(&self, key: &str) -> &str {
        self.spec[key].as_str().unwrap()
    }

    fn request(&self, reduction: Reduction) -> Request<'_> {
        let loss = match self.str("loss") {
            "cross-entropy" => LossKind::CrossEntropy,
            "binary-cross-entropy" => LossKind::BinaryCrossEntropy,
            "kl-div" => LossKind::KlDiv,
            "entropy" => LossKind::Entropy,
            other => panic!("unknown loss {other}"),
        };
        let target = self
            .target
            .as_ref()
            .map_or(Target::None, TargetData::as_target);
        let mut r = Request::new(loss, self.input.as_input(), self.shape, target)
            .reduction(reduction)
            .input_kind(match self.str("input_kind") {
                "logits" => InputKind::Logits,
                "probs" => InputKind::Probs,
                "log-probs" => InputKind::LogProbs,
                other => panic!("unknown input kind {other}"),
            })
            .ignore_index(self.spec["ignore_index"].as_i64().unwrap())
            .label_smoothing(self.spec["label_smoothing"].as_f64().unwrap() as f32)
            .z_loss(self.spec["z_loss"].as_f64().unwrap() as f32)
            .log_target(self.spec["log_target"].as_bool().unwrap())
            .base(match self.str("base") {
                "e" => Base::E,
                "2" => Base::Two,
                "10" => Base::Ten,
                other => panic!("unknown base {other}"),
            });
        if let Some(cap) = self.spec["softcap"].as_f64() {
            r = r.softcap(cap as f32);
        }
        if let Some(w) = &self.weight {
            r = r.weight(w);
        }
        if let Some(w) = &self.pos_weight {
            r = r.pos_weight(w);
        }
        r
    }

    fn expected_scalar(&self, key: &str) -> f32 {
        self.spec["expected"][key].as_f64().unwrap() as f32
    }

    fn expected_values(&self) -> (Vec<f32>, Vec<usize>) {
        let e = &self.spec["expected"];
        let values = e["none"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let shape = e["none_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        (values, shape)
    }
}

impl Case {
    /// PyTorch autograd's gradient of the reduced loss, as f32.
    fn expected_grad(&self, reduction: &str) -> Vec<f32> {
        match read_input(&self.dir.join(format!("grad_{reduction}.npy"))).unwrap() {
            (Floats::F32(g), shape) if shape == self.shape => g.into_owned(),
            other => panic!("{}: grad_{reduction}.npy is {other:?}", self.name),
        }
    }
}

fn check(engine: &Engine, case: &Case) {
    for (name, reduction) in REDUCTIONS {
        let what = format!("{} {} {name}", engine.device(), case.name);
        let out = engine
            .compute(&case.request(reduction).with_grad(true))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let err =
            common::relative_norm_error(out.grad.as_deref().unwrap(), &case.expected_grad(name));
        assert!(err <= TOL, "{what}: gradient relative norm error {err:e}");
        assert_eq!(
            out.valid_rows as u64,
            case.spec["valid_rows"].as_u64().unwrap(),
            "{what}"
        );
        match reduction {
            Reduction::None => {
                let (want, shape) = case.expected_values();
                let xent::Loss::Unreduced {
                    values,
                    shape: got_shape,
                } = &out.loss
                else {
                    panic!("{what}: a scalar for none");
                };
                assert_eq!(got_shape, &shape, "{what}");
                assert_close(&what, values, &want, TOL, TOL);
            }
            _ => assert_scalar(
                &what,
                out.loss.scalar().unwrap(),
                case.expected_scalar(name),
                TOL,
            ),
        }
    }
}

#[test]
fn the_reference_matches_pytorch() {
    for case in &cases() {
        check(&Engine::reference(), case);
    }
}

#[test]
fn every_engine_matches_pytorch() {
    let cases = cases();
    common::on_every_engine("loss fixtures", |engine| {
        for case in &cases {
            check(engine, case);
        }
    });
}

/// The CLI arguments that describe a case, writing its gradient to `grad_out`.
fn cli_args(case: &Case, reduction: &str, device: &str, grad_out: &Path) -> Vec<String> {
    let path = |f: &str| case.dir.join(f).to_string_lossy().into_owned();
    let mut args: Vec<String> = [
        "loss",
        "--input",
        &case.input_file.to_string_lossy(),
        "--loss",
        case.str("loss"),
        "--input-kind",
        case.str("input_kind"),
        "--reduction",
        reduction,
        "--base",
        case.str("base"),
        "--device",
        device,
        "--json",
        "--grad-out",
        &grad_out.to_string_lossy(),
    ]
    .map(String::from)
    .to_vec();
    let s = &case.spec;
    args.extend(["--ignore-index".into(), s["ignore_index"].to_string()]);
    args.extend(["--label-smoothing".into(), s["label_smoothing"].to_string()]);
    args.extend(["--z-loss".into(), s["z_loss"].to_string()]);
    if let Some(cap) = s["softcap"].as_f64() {
        args.extend(["--softcap".into(), cap.to_string()]);
    }
    if s["log_target"].as_bool().unwrap() {
        args.push("--log-target".into());
    }
    for (file, flag) in [
        ("target.npy", "--target"),
        ("weight.npy", "--weight"),
        ("pos_weight.npy", "--pos-weight"),
    ] {
        if case.dir.join(file).exists() {
            args.extend([flag.into(), path(file)]);
        }
    }
    args
}

#[test]
fn cli_json_matches_pytorch() {
    for (d, (device, backend)) in cli_devices().iter().enumerate() {
        for (i, case) in cases().iter().enumerate() {
            // Each case runs one reduction per device, rotating so that all four are covered.
            let (reduction, _) = REDUCTIONS[(i + d) % 4];
            let env: Vec<(&str, &str)> = backend
                .iter()
                .map(|b| ("WGPU_BACKEND", b.as_str()))
                .collect();
            let grad_out =
                std::env::temp_dir().join(format!("xent-grad-{}-{d}-{i}.npy", std::process::id()));
            let (code, stdout, stderr) =
                run_cli(&cli_args(case, reduction, device, &grad_out), &env);
            let what = format!("{device} {backend:?} {} {reduction}", case.name);
            assert_eq!(code, 0, "{what}: {stderr}");
            let doc: Value = serde_json::from_str(&stdout).unwrap();
            let (Floats::F32(grad), shape) = read_input(&grad_out).unwrap() else {
                panic!("{what}: --grad-out wrote a non-f32 file");
            };
            assert_eq!(shape, case.shape, "{what}");
            let err = common::relative_norm_error(&grad, &case.expected_grad(reduction));
            assert!(err <= TOL, "{what}: --grad-out relative norm error {err:e}");
            std::fs::remove_file(&grad_out).unwrap();
            let kind = if *device == "gpu" { "gpu" } else { "cpu" };
            assert_eq!(doc["device"], kind, "{what}");
            assert_eq!(doc["valid_rows"], case.spec["valid_rows"], "{what}");
            if let Some(b) = backend {
                assert_eq!(
                    doc["backend"].as_str().unwrap().to_lowercase(),
                    *b,
                    "{what}"
                );
            }
            if reduction == "none" {
                let (want, shape) = case.expected_values();
                let got: Vec<f32> = doc["losses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                assert_eq!(doc["shape"], serde_json::json!(shape), "{what}");
                assert_close(&what, &got, &want, TOL, TOL);
            } else {
                let got = doc["loss"].as_f64().unwrap() as f32;
                assert_scalar(&what, got, case.expected_scalar(reduction), TOL);
            }
        }
    }
}
