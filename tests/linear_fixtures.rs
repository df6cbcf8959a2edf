//! Fused linear cross-entropy against PyTorch's float64 values and autograd gradients
//! (`scripts/gen_linear_fixtures.py`, `tests/fixtures/linear_cross_entropy/README.md`) on every
//! GPU adapter, the fast CPU path and the float64 reference: every case, reduction and target file
//! (int64 and int32), the loss, lse, valid rows and the gradients of H, W and b; gradients written
//! into and added to the caller's slices; and the reference's gradients against finite differences
//! of its own loss.
//!
//! Tolerance: 1e-5 relative (absolute below 1) for every value, and 1e-5 in relative norm for
//! each gradient. The absolute tolerance of values grows with the largest logit, as in
//! `tests/torch_fixtures.rs`: f32 logits of magnitude M carry an error of about M·2⁻²⁴.

mod common;

use std::path::{Path, PathBuf};

use common::{
    REDUCTIONS, assert_close, assert_scalar, fixture_dirs, read_input, read_matrix, read_target,
    read_vector, relative_norm_error,
};
use serde_json::Value;
use xent::io::{Floats, TargetData};
use xent::{Base, DeviceKind, Engine, LinearGradsMut, Output, Reduction, Request, Target};

const TOL: f64 = 1e-5;

struct Case {
    name: String,
    dir: PathBuf,
    spec: Value,
    hidden: Floats<'static>,
    weight: Floats<'static>,
    bias: Option<Vec<f32>>,
    class_weight: Option<Vec<f32>>,
    /// target.npy, and target_i32.npy for class targets.
    targets: Vec<(&'static str, TargetData<'static>)>,
    /// [N, D, V].
    size: [usize; 3],
    /// The largest |H·Wᵀ + b| of the case, in float64.
    max_logit: f64,
}

/// A 2-D float file of the case: `.safetensors` (bfloat16 cases) or `.npy`.
fn matrix(dir: &Path, file: &str) -> (Floats<'static>, [usize; 2]) {
    read_matrix(&dir.join(file)).unwrap()
}

fn cases() -> Vec<Case> {
    let cases: Vec<Case> = fixture_dirs("linear_cross_entropy", 28)
        .into_iter()
        .map(load)
        .collect();
    for dtype in ["float32", "float16", "bfloat16"] {
        let count = cases.iter().filter(|c| c.hidden.dtype() == dtype).count();
        assert!(count >= 4, "{dtype} fixtures missing");
    }
    cases
}

fn load(dir: PathBuf) -> Case {
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let files = &spec["files"];
    let size = ["n", "d", "v"].map(|k| spec[k].as_u64().unwrap() as usize);
    let [n, d, v] = size;
    let (hidden, hidden_shape) = matrix(&dir, files["hidden"].as_str().unwrap());
    let (weight, weight_shape) = matrix(&dir, files["weight"].as_str().unwrap());
    assert_eq!((hidden_shape, weight_shape), ([n, d], [v, d]));
    let dtype = spec["dtype"].as_str().unwrap();
    assert_eq!((hidden.dtype(), weight.dtype()), (dtype, dtype));
    let vector = |key: &str| {
        files[key]
            .as_str()
            .map(|f| read_vector(&dir.join(f)).unwrap())
    };
    let mut targets = vec![(
        "target.npy",
        read_target(&dir.join(files["target"].as_str().unwrap())).unwrap(),
    )];
    if let Some(f) = files["target_i32"].as_str() {
        let t = read_target(&dir.join(f)).unwrap();
        assert!(matches!(t, TargetData::ClassesI32(_)), "{f} is int32");
        targets.push(("target_i32.npy", t));
    }
    let bias = vector("bias");
    let (h, w) = (hidden.to_f32(), weight.to_f32());
    let mut max_logit = 1.0_f64;
    for r in 0..n {
        for k in 0..v {
            let dot: f64 = (0..d)
                .map(|j| f64::from(h[r * d + j]) * f64::from(w[k * d + j]))
                .sum();
            let z = dot + bias.as_ref().map_or(0.0, |b| f64::from(b[k]));
            max_logit = max_logit.max(z.abs());
        }
    }
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        class_weight: vector("class_weight"),
        bias,
        hidden,
        weight,
        targets,
        size,
        max_logit,
        spec,
        dir,
    }
}

impl Case {
    /// `r` with the case's options of cross-entropy on logits (not its reduction): a linear
    /// request, or one on the case's logits.
    fn with_options<'a>(&'a self, r: Request<'a>) -> Request<'a> {
        let s = &self.spec;
        let mut r = r
            .ignore_index(s["ignore_index"].as_i64().unwrap())
            .label_smoothing(s["label_smoothing"].as_f64().unwrap() as f32)
            .z_loss(s["z_loss"].as_f64().unwrap() as f32)
            .base(match s["base"].as_str().unwrap() {
                "e" => Base::E,
                "2" => Base::Two,
                "10" => Base::Ten,
                other => panic!("unknown base {other}"),
            });
        if let Some(cap) = s["softcap"].as_f64() {
            r = r.softcap(cap as f32);
        }
        if let Some(w) = &self.class_weight {
            r = r.weight(w);
        }
        r
    }

    fn request<'a>(&'a self, target: Target<'a>, reduction: Reduction) -> Request<'a> {
        let [n, d, v] = self.size;
        let r = Request::linear_cross_entropy(
            self.hidden.as_input(),
            [n, d],
            self.weight.as_input(),
            [v, d],
            target,
        );
        let r = self
            .with_options(r)
            .reduction(reduction)
            .with_lse(true)
            .with_grad(true);
        match &self.bias {
            Some(b) => r.linear_bias(b),
            None => r,
        }
    }

    fn numbers(value: &Value) -> Vec<f32> {
        let values = value.as_array().unwrap().iter();
        values.map(|v| v.as_f64().unwrap() as f32).collect()
    }

    /// PyTorch's gradient `what` (hidden, weight, bias) of reduction `r`, rounded to f32.
    fn expected_grad(&self, r: &str, what: &str) -> Option<Vec<f32>> {
        let file = self.spec["grad_files"][r][what].as_str()?;
        let path = self.dir.join(file);
        Some(match what {
            "bias" => read_vector(&path).unwrap(),
            _ => read_input(&path).unwrap().0.to_f32(),
        })
    }

    /// The absolute tolerance of values: 1e-5 of the largest logit.
    fn atol(&self) -> f64 {
        TOL * self.max_logit
    }
}

/// Checks one output of `case` at reduction `name` against PyTorch's values.
fn check_output(what: &str, case: &Case, name: &str, out: &Output) {
    let expected = &case.spec["expected"];
    let [n, d, v] = case.size;
    let atol = case.atol();
    assert_eq!(
        out.valid_rows as u64,
        case.spec["valid_rows"].as_u64().unwrap(),
        "{what}: valid_rows"
    );
    match name {
        "none" => {
            let xent::Loss::Unreduced { values, shape } = &out.loss else {
                panic!("{what}: a scalar for none");
            };
            assert_eq!(shape, &[n], "{what}");
            assert_close(what, values, &Case::numbers(&expected["none"]), atol, TOL);
        }
        _ => {
            let want = expected[name].as_f64().unwrap() as f32;
            assert_scalar(what, out.loss.scalar().unwrap(), want, atol.max(TOL));
        }
    }
    let lse = out.lse.as_deref().expect("with_lse gives lse");
    let want_lse = Case::numbers(&case.spec["lse"]);
    assert_close(&format!("{what} lse"), lse, &want_lse, atol, TOL);
    let grads = out
        .linear_grads
        .as_ref()
        .expect("with_grad gives the head's");
    let got = [
        ("hidden", out.grad.as_deref(), n * d),
        ("weight", Some(&grads.weight[..]), v * d),
        ("bias", grads.bias.as_deref(), v),
    ];
    for (part, got, len) in got {
        let want = case.expected_grad(name, part);
        assert_eq!(got.is_some(), want.is_some(), "{what}: d{part} present");
        if let (Some(got), Some(want)) = (got, want) {
            assert_eq!(
                (got.len(), want.len()),
                (len, len),
                "{what}: d{part} length"
            );
            let err = relative_norm_error(got, &want);
            assert!(err <= TOL, "{what}: d{part} relative norm error {err:e}");
        }
    }
}

fn check(engine: &Engine, case: &Case) {
    for (file, target) in &case.targets {
        for (name, reduction) in REDUCTIONS {
            let what = format!("{} {} {file} {name}", engine.device(), case.name);
            let request = case.request(target.as_target(), reduction);
            let out = engine
                .compute(&request)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            check_output(&what, case, name, &out);
            // The loss alone (no backward products) is the same loss.
            let loss_only = engine.compute(&request.with_grad(false)).unwrap();
            assert!(loss_only.linear_grads.is_none() && loss_only.grad.is_none());
            match (&loss_only.loss, &out.loss) {
                (xent::Loss::Scalar(a), xent::Loss::Scalar(b)) => {
                    assert_scalar(&format!("{what} loss only"), *a, *b, 1e-6)
                }
                (a, b) => assert_close(
                    &format!("{what} loss only"),
                    a.values().unwrap(),
                    b.values().unwrap(),
                    1e-6 * case.max_logit,
                    1e-6,
                ),
            }
        }
    }
}

#[test]
fn the_fast_path_matches_pytorch() {
    for case in &cases() {
        check(&Engine::cpu(), case);
    }
}

#[test]
fn the_reference_matches_pytorch() {
    for case in &cases() {
        check(&Engine::reference(), case);
    }
}

#[test]
fn every_gpu_adapter_matches_pytorch() {
    let gpus = common::gpus();
    common::check_expected_backends(gpus);
    if gpus.is_empty() {
        eprintln!("no GPU adapter: nothing to check (set XENT_REQUIRE_GPU=1 to fail instead)");
    }
    let cases = cases();
    for engine in gpus {
        for case in &cases {
            check(engine, case);
        }
    }
}

/// The reference, the fast CPU path and every GPU adapter.
fn every_engine() -> Vec<Engine> {
    let mut engines = vec![Engine::reference()];
    engines.extend(common::under_test());
    engines
}

#[test]
fn every_row_ignored_gives_a_mean_of_zero_and_zero_gradients() {
    let case = load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/linear_cross_entropy/lce_all_ignored_4x6x5"),
    );
    assert_eq!(case.spec["torch_mean_is_nan"], true);
    assert_eq!(case.spec["valid_rows"], 0);
    for engine in every_engine() {
        for (file, target) in &case.targets {
            let what = format!("{} {file}", engine.device());
            let out = engine
                .compute(&case.request(target.as_target(), Reduction::Mean))
                .unwrap();
            assert_eq!(out.loss.scalar(), Some(0.0), "{what}");
            assert_eq!(out.valid_rows, 0, "{what}");
            let grads = out.linear_grads.unwrap();
            let all = [out.grad.unwrap(), grads.weight, grads.bias.unwrap()].concat();
            assert!(all.iter().all(|&g| g == 0.0), "{what}: {all:?}");
        }
    }
}

/// `compute_linear_into` writes what `compute` returns, bit for bit, and with `add` adds it to
/// what the slices held, in chunks of `chunk_rows` rows (the fixture has 64), on every engine.
///
/// On the CPU, adding rounds at the magnitude of what the slices held, once per addition into
/// them: dH once per row (twice where V > 512, gemm's depth blocks), dW once per chunk (each
/// chunk's Gᵀ·H_c is added into it), db once per row (db += each row of G). The bound is that
/// many units in the last place of |held| + |added|, plus one.
///
/// On a GPU each product is formed whole, then added to what its buffer holds (C + Σ): dH once
/// (its product, then the slice's value), so the sum is exactly the f32 sum of the old value and
/// the written one; dW and db once per chunk, the chunk's product (or column sums) added to the
/// buffer, where writing adds every chunk's but the first's. Both sum the same chunk products in
/// the same order, so they differ by the 2K − 1 roundings of those additions (K chunks), each
/// at most half an ulp of a partial sum, which is at most |held| + Σ_r |G_r|·|H_r|
/// (`common::assert_added`).
fn into_slices_agree_with_compute(chunk_rows: usize) {
    let case = load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/linear_cross_entropy/lce_large_bias_weight_ignore_64x32x1000"),
    );
    let [n, d, v] = case.size;
    let target = case.targets[0].1.as_target();
    // Bounds of the GPU's partial sums, from the reference's G on the head's logits.
    let hidden = case.hidden.to_f32();
    let logits = common::head_logits(
        &hidden,
        &case.weight.to_f32(),
        case.bias.as_deref(),
        [n, d, v],
    );
    let on_logits = case
        .with_options(Request::cross_entropy(&logits[..], [n, v], target))
        .with_grad(true);
    let g = Engine::reference()
        .compute(&on_logits)
        .unwrap()
        .grad
        .unwrap();
    let [dw_size, db_size] = common::product_magnitudes(&g, &hidden, [n, d, v]);
    let chunks = n.div_ceil(chunk_rows);
    for engine in every_engine() {
        let what = format!("{} chunks of {chunk_rows} rows", engine.device());
        let request = case
            .request(target, Reduction::Mean)
            .linear_chunk_bytes(chunk_rows * v * 4);
        let out = engine.compute(&request).unwrap();
        let want = out.linear_grads.clone().unwrap();
        let want = [out.grad.clone().unwrap(), want.weight, want.bias.unwrap()];
        let start: Vec<Vec<f32>> = [n * d, v * d, v]
            .iter()
            .map(|&len| (0..len).map(|i| (i % 7) as f32 - 3.0).collect())
            .collect();
        for add in [false, true] {
            let mut got = start.clone();
            let [h, w, b] = &mut got[..] else {
                unreachable!()
            };
            let grads = LinearGradsMut {
                hidden: Some(h),
                weight: Some(w),
                bias: Some(b),
                add,
            };
            let into = engine.compute_linear_into(&request, grads).unwrap();
            assert_eq!(into.loss, out.loss, "{what} add {add}");
            assert_eq!(into.lse, out.lse, "{what} add {add}");
            assert!(into.grad.is_none() && into.linear_grads.is_none());
            for (part, ((got, want), start)) in got.iter().zip(&want).zip(&start).enumerate() {
                let what = format!("{what}: gradient {part}");
                if !add {
                    assert_eq!(got, want, "{what} written");
                } else if engine.device().kind == DeviceKind::Gpu {
                    gpu_added(
                        &what,
                        part,
                        [got, want, start],
                        chunks,
                        [&dw_size, &db_size],
                    );
                } else {
                    cpu_added(&what, [2, chunks + 1, n + 1][part], [got, want, start]);
                }
            }
        }
    }
}

/// The fast path's and the reference's sum: within `ulps` units in the last place of
/// |held| + |added|.
fn cpu_added(what: &str, ulps: usize, [got, want, start]: [&Vec<f32>; 3]) {
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(start).enumerate() {
        let bound = ulps as f32 * f32::EPSILON * (s.abs() + w.abs());
        assert!(
            (g - (s + w)).abs() <= bound,
            "{what}[{i}] added to {s} is {g}, not {} (±{bound:e})",
            s + w
        );
    }
}

/// A GPU's sum: dH (`part` 0) exactly the f32 sum; dW and db within the 2K − 1 roundings of
/// their K chunks' additions, at partial sums bounded by `sizes` (dW's, db's).
fn gpu_added(
    what: &str,
    part: usize,
    [got, want, start]: [&Vec<f32>; 3],
    chunks: usize,
    sizes: [&[f64]; 2],
) {
    if part == 0 {
        for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(start).enumerate() {
            assert_eq!(
                g.to_bits(),
                (s + w).to_bits(),
                "{what}[{i}]: {w} added to {s} is {g}"
            );
        }
        return;
    }
    common::assert_added(what, got, start, want, 2 * chunks - 1, sizes[part - 1]);
}

#[test]
fn writing_and_adding_into_slices_agree_with_compute() {
    // 8 chunks of 8 rows: the fast path adds dW and db over 8 chunks.
    into_slices_agree_with_compute(8);
}

/// With `add`, chunks of one row (gemm's one-row path accumulates term by term) are as precise
/// as any other: dH's product is computed whole, then added.
#[test]
fn adding_through_one_row_chunks_is_as_precise() {
    into_slices_agree_with_compute(1);
}

/// The reference's gradients against central differences of its own loss.
///
/// The public API takes f32 (or 16-bit) values and returns an f32 loss, so the differences are
/// taken in f32 inputs. Every input is a multiple of 2⁻⁶ below 4 in magnitude, and the step is
/// h = 2⁻⁷, so x ± h is exact in f32: the perturbation is exactly ±h. What remains is the
/// rounding of the returned f32 loss (about 6e-8·|L| / h ≈ 1e-5·|L|) and the O(h²) truncation
/// (about 1e-5 here), both far inside the 1e-3 bound, which any wrong term (a missed chain rule,
/// a wrong divisor) exceeds by orders of magnitude.
#[test]
fn reference_gradients_match_finite_differences() {
    const H: f32 = 1.0 / 128.0;
    let mut rng = common::rng("reference_gradients_match_finite_differences");
    let (n, d, v) = (3, 4, 5);
    let mut dyadic = |len: usize, scale: f32| -> Vec<f32> {
        let x = common::logits(&mut rng, len, scale);
        x.iter()
            .map(|x| (x * 64.0).round().clamp(-255.0, 255.0) / 64.0)
            .collect()
    };
    let (hidden, weight, bias) = (dyadic(n * d, 1.0), dyadic(v * d, 1.0), dyadic(v, 0.5));
    let class_weight = [0.5, 1.0, 2.0, 0.25, 1.5];
    let classes = [1_i64, -100, 4];
    let soft = common::distribution(&mut rng, n, v);
    type Options = fn(Request) -> Request;
    let variants: [(&str, Target, Options); 5] = [
        ("plain", Target::ClassesI64(&classes), |r| r),
        ("all options", Target::ClassesI64(&classes), |r| {
            r.label_smoothing(0.1).z_loss(0.01).softcap(2.0)
        }),
        ("base 2", Target::ClassesI64(&classes), |r| {
            r.label_smoothing(0.1).softcap(2.0).base(Base::Two)
        }),
        ("soft", Target::Dense(&soft), |r| {
            r.label_smoothing(0.2).reduction(Reduction::BatchMean)
        }),
        ("sum", Target::ClassesI64(&classes), |r| {
            r.reduction(Reduction::Sum).z_loss(0.05)
        }),
    ];
    for (name, target, options) in variants {
        let loss = |h: &[f32], w: &[f32], b: &[f32]| -> f64 {
            let mut r = Request::linear_cross_entropy(h, [n, d], w, [v, d], target).linear_bias(b);
            if name == "all options" {
                r = r.weight(&class_weight);
            }
            let out = Engine::reference().compute(&options(r)).unwrap();
            f64::from(out.loss.scalar().unwrap())
        };
        let mut r = Request::linear_cross_entropy(&hidden[..], [n, d], &weight[..], [v, d], target)
            .linear_bias(&bias)
            .with_grad(true);
        if name == "all options" {
            r = r.weight(&class_weight);
        }
        let out = Engine::reference().compute(&options(r)).unwrap();
        let grads = out.linear_grads.unwrap();
        let analytic = [out.grad.unwrap(), grads.weight, grads.bias.unwrap()];
        for (part, grad) in analytic.iter().enumerate() {
            let largest = grad.iter().fold(0.0_f64, |m, g| m.max(f64::from(g.abs())));
            assert!(largest > 1e-3, "{name}: gradient {part} is all but zero");
            for (i, &g) in grad.iter().enumerate() {
                let mut inputs = [hidden.clone(), weight.clone(), bias.clone()];
                inputs[part][i] += H;
                let up = loss(&inputs[0], &inputs[1], &inputs[2]);
                inputs[part][i] -= 2.0 * H;
                let down = loss(&inputs[0], &inputs[1], &inputs[2]);
                let fd = (up - down) / (2.0 * f64::from(H));
                let g = f64::from(g);
                assert!(
                    (fd - g).abs() <= 1e-3 * (g.abs() + largest),
                    "{name}: gradient {part}[{i}] is {g}, finite differences {fd}"
                );
            }
        }
    }
}
