//! bfloat16 and float16 input on fresh random batches: every loss, on odd shapes (1×1, rows of 37
//! and 1001 values that straddle the 32-bit words holding two of them, and rows of 70001 that
//! take the split-row kernel), on every engine against the float64 reference on the same 16-bit
//! values, losses and gradients; and `xent loss` on `.safetensors` inputs of each dtype.
//!
//! A lone row of 70001 is split by the kernel rule on any GPU and on a CPU adapter with two
//! cores or more; two rows of 70001 (the second starting mid-word) also run through every
//! candidate of each adapter's autotune, split ones among them.

mod common;

use common::{distribution, logits, rng, round_to, run_cli, safetensors_file, targets};
use rand::Rng;
use xent::io::Floats;
use xent::{Dtype, Engine, InputKind, Loss, Output, Reduction, Request};

const SHAPES: [[usize; 2]; 5] = [[1, 1], [3, 37], [5, 1001], [1, 70_001], [2, 70_001]];

/// The shape that also runs through every autotune candidate.
const TUNED: [usize; 2] = [2, 70_001];

/// The inputs are the same 16-bit values on every engine and the reference, so the tolerance is
/// that of f32 arithmetic: 1e-5 relative (absolute below 1), gradients 1e-5 in relative norm.
const TOL: f64 = 1e-5;

/// Asserts `got` within `TOL` of `want`: the loss, the per-row or per-element values, the
/// gradient, whose error is set against its norm or `floor`, whichever is larger.
fn assert_matches(what: &str, got: &Output, want: &Output, floor: f64) {
    match (&got.loss, &want.loss) {
        (Loss::Scalar(g), Loss::Scalar(w)) => common::assert_scalar(what, *g, *w, TOL),
        (
            Loss::Unreduced { values, shape },
            Loss::Unreduced {
                values: w,
                shape: s,
            },
        ) => {
            assert_eq!(shape, s, "{what}");
            common::assert_close(what, values, w, TOL, TOL);
        }
        other => panic!("{what}: {other:?}"),
    }
    assert_eq!(got.valid_rows, want.valid_rows, "{what}");
    let (g, w) = (got.grad.as_deref().unwrap(), want.grad.as_deref().unwrap());
    let (err, norm) = common::norms(g, w);
    let scale = norm.max(floor);
    assert!(
        err <= TOL * scale,
        "{what}: gradient error {err:e} against a norm of {norm:e} (floor {floor:e})"
    );
}

#[test]
fn every_loss_in_bf16_and_f16_matches_the_reference_on_every_engine() {
    let mut rng = rng("16-bit dtypes");
    let engines = common::under_test();
    common::check_expected_backends(&engines);
    let tuning: Vec<Engine> = common::open_gpus()
        .into_iter()
        .map(|e| e.autotune(true))
        .collect();
    for dtype in [Dtype::Bf16, Dtype::F16] {
        for [batch, classes] in SHAPES {
            let shape = [batch, classes];
            let n = batch * classes;
            let x = round_to(dtype, &logits(&mut rng, n, 3.0));
            let log_probs = round_to(
                dtype,
                &distribution(&mut rng, batch, classes)
                    .iter()
                    .map(|p| p.ln())
                    .collect::<Vec<_>>(),
            );
            let t = targets(&mut rng, batch, classes, 0.2);
            let soft = distribution(&mut rng, batch, classes);
            let labels: Vec<f32> = (0..n).map(|_| rng.random()).collect();
            let weight: Vec<f32> = (0..classes).map(|_| rng.random_range(0.5..1.5)).collect();
            let requests = [
                (
                    "cross-entropy, smoothing and weights",
                    Request::cross_entropy(x.as_input(), shape, &t[..])
                        .label_smoothing(0.1)
                        .weight(&weight),
                ),
                (
                    "cross-entropy on log-probs",
                    Request::cross_entropy(log_probs.as_input(), shape, &t[..])
                        .input_kind(InputKind::LogProbs),
                ),
                (
                    "soft cross-entropy, z-loss",
                    Request::cross_entropy(x.as_input(), shape, &soft[..]).z_loss(1e-3),
                ),
                (
                    "binary cross-entropy, pos_weight",
                    Request::binary_cross_entropy(x.as_input(), shape, &labels[..])
                        .pos_weight(&weight),
                ),
                ("kl-div", Request::kl_div(x.as_input(), shape, &soft[..])),
                ("entropy", Request::entropy(x.as_input(), shape)),
            ];
            for (name, request) in requests {
                for reduction in [Reduction::Mean, Reduction::None] {
                    let request = request.reduction(reduction).with_grad(true);
                    // A BCE gradient element is α·w·(σ(x)(1 + (pw − 1)y) − pw·y): where the two
                    // terms nearly cancel (a 1×1 batch drew one a thousandth of its terms), any
                    // f32 evaluation, PyTorch's too, is off by an ulp of the terms, far more than
                    // 1e-5 of the difference. So its error is also allowed 1e-5 of half the norm
                    // of α over the elements (α = 1/(B·C) for the mean, 1 for none): the terms are
                    // at most 1.5²·α.
                    let floor = match (name.starts_with("binary"), reduction) {
                        (false, _) => 0.0,
                        (true, Reduction::Mean) => 0.5 / (n as f64).sqrt(),
                        (true, _) => 0.5 * (n as f64).sqrt(),
                    };
                    let want = Engine::reference().compute(&request).unwrap();
                    for engine in &engines {
                        let what = format!(
                            "{} {} {batch}x{classes} {name} {reduction:?}",
                            engine.device(),
                            dtype.name()
                        );
                        let got = engine
                            .compute(&request)
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_matches(&what, &got, &want, floor);
                    }
                    if shape != TUNED {
                        continue;
                    }
                    for engine in &tuning {
                        let what = format!(
                            "{} autotuned {} {batch}x{classes} {name} {reduction:?}",
                            engine.device(),
                            dtype.name()
                        );
                        let mut calls = 0;
                        while calls == 0 || engine.autotuning() {
                            let got = engine.compute(&request).unwrap();
                            let what = format!("{what} call {calls}");
                            assert_matches(&what, &got, &want, floor);
                            calls += 1;
                            assert!(calls < 64, "{what}: {:?}", engine.autotuned());
                        }
                    }
                }
            }
        }
    }
}

/// A path in the temporary directory, unique to this process and `name`.
fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("xent-dtypes-{}-{name}", std::process::id()))
}

/// `xent loss --input X.safetensors` on the reference: the same loss and gradient as the library
/// on the same values, for bf16, f16 and f32; `--grad-out` writes float32 whatever the dtype.
#[test]
fn safetensors_inputs_of_each_dtype_give_the_library_s_loss_and_gradient() {
    let mut rng = rng("safetensors CLI");
    let [batch, classes] = [3, 37];
    let t = targets(&mut rng, batch, classes, 0.0);
    let target = temp("t.npy");
    common::write_npy(&target, &[batch], &t);
    for dtype in [Dtype::Bf16, Dtype::F16, Dtype::F32] {
        let x = round_to(dtype, &logits(&mut rng, batch * classes, 3.0));
        let input = temp(&format!("x-{}.safetensors", dtype.name()));
        std::fs::write(
            &input,
            safetensors_file(&[("logits", &x, &[batch, classes])]),
        )
        .unwrap();
        let grad_out = temp(&format!("g-{}.npy", dtype.name()));
        let args = [
            "loss",
            "--input",
            input.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--device",
            "reference",
            "--grad-out",
            grad_out.to_str().unwrap(),
        ];
        let (code, stdout, stderr) = run_cli(&args, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stderr.contains(&format!("on {} logits input", x.dtype())),
            "{stderr}"
        );
        let request = Request::cross_entropy(x.as_input(), [batch, classes], &t[..]);
        let want = Engine::reference()
            .compute(&request.with_grad(true))
            .unwrap();
        let got: f32 = stdout.trim().parse().unwrap();
        assert_eq!(got, want.loss.scalar().unwrap(), "{}", dtype.name());
        let (Floats::F32(grad), shape) = common::read_input(&grad_out).unwrap() else {
            panic!("--grad-out wrote a non-float32 file");
        };
        assert_eq!(shape, [batch, classes]);
        assert_eq!(Some(grad.into_owned()), want.grad, "{}", dtype.name());
        std::fs::remove_file(input).unwrap();
        std::fs::remove_file(grad_out).unwrap();
    }
    std::fs::remove_file(target).unwrap();
}
