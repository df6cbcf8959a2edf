//! Softmax cross-entropy on every GPU adapter and the fast CPU path against the float64 reference.

mod common;

use common::{assert_close, assert_scalar, logits, on_every_engine, rng, targets, under_test};
use rand::Rng;
use xent::{Engine, Loss, Output, Reduction, Request};

/// Tolerances of the issue: relative error of the mean 1e-5, per-row atol and rtol 1e-5.
const TOL: f64 = 1e-5;

fn compare(engine: &Engine, request: Request, row_scale: f64) {
    let reference = Engine::reference();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let request = request.reduction(reduction).with_lse(true);
        let got = engine.compute(&request).unwrap();
        let want = reference.compute(&request).unwrap();
        let what = format!("{} {reduction:?}", engine.device());
        assert_eq!(got.valid_rows, want.valid_rows, "{what}: valid_rows");
        // f32 logits of magnitude M carry an absolute error of about M·2^-24 into lse.
        let atol = TOL * row_scale.max(1.0);
        assert_close(
            &format!("{what} lse"),
            got.lse.as_deref().unwrap(),
            want.lse.as_deref().unwrap(),
            atol,
            TOL,
        );
        match (&got.loss, &want.loss) {
            (Loss::Scalar(g), Loss::Scalar(w)) => {
                assert_scalar(&what, *g, *w, TOL * row_scale.max(1.0));
            }
            (Loss::Unreduced { values: g, .. }, Loss::Unreduced { values: w, .. }) => {
                assert_close(&what, g, w, atol, TOL)
            }
            other => panic!("{what}: reduction shapes differ: {other:?}"),
        }
    }
}

fn random_case(test: &str, batch: usize, classes: usize, scale: f32, ignored: f64) {
    let mut rng = rng(test);
    let x = logits(&mut rng, batch * classes, scale);
    let t = targets(&mut rng, batch, classes, ignored);
    on_every_engine(test, |engine| {
        compare(
            engine,
            Request::cross_entropy(&x[..], [batch, classes], &t[..]),
            f64::from(scale),
        );
    });
}

#[test]
fn one_by_one() {
    random_case("one_by_one", 1, 1, 2.0, 0.0);
}

#[test]
fn three_by_seven() {
    random_case("three_by_seven", 3, 7, 2.0, 0.0);
}

#[test]
fn sizes_off_the_workgroup_grid_with_ignored_rows() {
    random_case("257x129", 257, 129, 3.0, 0.1);
}

#[test]
fn gpt2_vocabulary() {
    random_case("6x50257", 6, 50_257, 4.0, 0.0);
}

#[test]
fn more_rows_than_one_grid_dimension() {
    random_case("70000x10", 70_000, 10, 2.0, 0.05);
}

#[test]
fn batch_over_the_128_mib_storage_binding() {
    // 1100 × 32000 × 4 B = 140.8 MB, past lavapipe's 134 217 728-byte binding limit.
    random_case("1100x32000", 1100, 32_000, 2.0, 0.0);
}

#[test]
fn every_width_around_the_vec4_and_row_per_invocation_boundaries() {
    let mut rng = rng("widths");
    for classes in (1..=9).chain(60..=70).chain([255, 256, 257, 1023, 1025]) {
        let batch = 13;
        let x = logits(&mut rng, batch * classes, 3.0);
        let t = targets(&mut rng, batch, classes, 0.1);
        on_every_engine(&format!("width {classes}"), |engine| {
            compare(
                engine,
                Request::cross_entropy(&x[..], [batch, classes], &t[..]),
                3.0,
            );
        });
    }
}

#[test]
fn extreme_magnitudes_that_overflow_a_naive_exp() {
    random_case("extreme 33x500", 33, 500, 3.0e4, 0.0);
    random_case("tiny 9x77", 9, 77, 1.0e-6, 0.0);
}

/// Logits so large that a float64 max + log Σ exp rounds the log Σ exp away (near 1e20 a float64
/// steps by 16 384): three equal maxima still share the probability, so cross-entropy against one
/// of them and the entropy are both log 3, on every engine and the reference. Found by fuzzing: the
/// reference once gave entropy 0 here.
#[test]
fn equal_huge_maxima_share_the_probability() {
    let mut rng = rng("huge maxima");
    for classes in [15, 1000] {
        let mut x = logits(&mut rng, classes, 6.0);
        let big = 2.6e20_f32 * (1.0 + rng.random_range(0.0..0.5_f32));
        let spots: Vec<usize> = (0..3).map(|k| k * classes / 3).collect();
        for &i in &spots {
            x[i] = big;
        }
        let target = [spots[1] as i64];
        let ce = Request::cross_entropy(&x[..], [1, classes], &target[..]);
        let h = Request::entropy(&x[..], [1, classes]);
        let ln3 = 3.0_f32.ln();
        for engine in under_test().iter().chain([&Engine::reference()]) {
            for request in [ce, h] {
                let got = engine.compute(&request).unwrap().loss.scalar().unwrap();
                assert!(
                    (got - ln3).abs() <= 1e-6,
                    "{} {:?} 1x{classes}: {got}, expected log 3",
                    engine.device(),
                    request.loss()
                );
            }
            // softmax − one-hot: 1/3 at the other maxima, 1/3 − 1 at the target.
            let g = engine.compute(&ce.with_grad(true)).unwrap().grad.unwrap();
            let want = [1.0 / 3.0, -2.0 / 3.0, 1.0 / 3.0];
            for (&i, want) in spots.iter().zip(want) {
                assert!(
                    (g[i] - want).abs() <= 1e-6,
                    "{} 1x{classes}: grad[{i}] = {}, expected {want}",
                    engine.device(),
                    g[i]
                );
            }
        }
    }
}

#[test]
fn minus_infinity_masks_classes_off_the_target() {
    let mut rng = rng("masking");
    for classes in [5, 100, 3000] {
        let batch = 17;
        let mut x = logits(&mut rng, batch * classes, 2.0);
        let t = targets(&mut rng, batch, classes, 0.0);
        for (r, row) in x.chunks_mut(classes).enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                if c as i64 != t[r] && (c + r) % 3 != 0 {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        on_every_engine(&format!("masked width {classes}"), |engine| {
            compare(
                engine,
                Request::cross_entropy(&x[..], [batch, classes], &t[..]),
                2.0,
            );
        });
    }
}

#[test]
fn all_ignored_and_empty_batches_give_zero() {
    let mut rng = rng("all ignored");
    let x = logits(&mut rng, 4 * 300, 2.0);
    let t = [-100_i64; 4];
    on_every_engine("all ignored", |engine| {
        let request = Request::cross_entropy(&x[..], [4, 300], &t[..]);
        let out = engine.compute(&request).unwrap();
        assert_eq!(out.loss, Loss::Scalar(0.0));
        assert_eq!(out.valid_rows, 0);
        let empty = Request::cross_entropy(&[] as &[f32], [0, 300], &[] as &[i64]);
        let out = engine.compute(&empty).unwrap();
        assert_eq!(
            out,
            Output {
                loss: Loss::Scalar(0.0),
                lse: None,
                grad: None,
                valid_rows: 0,
                linear_grads: None,
            }
        );
    });
}

#[test]
fn int32_and_int64_targets_agree() {
    let mut rng = rng("target dtypes");
    let x = logits(&mut rng, 40 * 90, 2.0);
    let t64 = targets(&mut rng, 40, 90, 0.1);
    let t32: Vec<i32> = t64.iter().map(|&t| t as i32).collect();
    on_every_engine("target dtypes", |engine| {
        let a = engine
            .compute(&Request::cross_entropy(&x[..], [40, 90], &t64[..]))
            .unwrap();
        let b = engine
            .compute(&Request::cross_entropy(&x[..], [40, 90], &t32[..]))
            .unwrap();
        assert_eq!(a, b);
    });
}

#[test]
fn the_same_input_gives_the_same_bits() {
    let mut rng = rng("determinism");
    let (batch, classes) = (5000, 1000);
    let x = logits(&mut rng, batch * classes, 3.0);
    let t = targets(&mut rng, batch, classes, 0.05);
    on_every_engine("determinism", |engine| {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let request = Request::cross_entropy(&x[..], [batch, classes], &t[..])
                .reduction(reduction)
                .with_lse(true);
            let first = engine.compute(&request).unwrap();
            let second = engine.compute(&request).unwrap();
            let bits = |o: &Output| match &o.loss {
                Loss::Scalar(v) => vec![v.to_bits()],
                Loss::Unreduced { values: v, .. } => v.iter().map(|x| x.to_bits()).collect(),
            };
            assert_eq!(bits(&first), bits(&second), "{reduction:?}");
            assert_eq!(first.lse, second.lse);
        }
    });
}

/// A NaN logit makes its row's loss and gradient NaN and nothing else, whatever the NaN's payload
/// (payload bits must not reach an exp's exponent), on short and long rows.
#[test]
fn a_nan_logit_makes_its_row_nan_and_nothing_else() {
    let mut rng = rng("nan rows");
    for classes in [7, 500] {
        for bits in [
            0x7fc0_0000_u32,
            0x7fc0_0001,
            0x7fc0_01ff,
            0xffc0_0100,
            0x7f80_0001,
        ] {
            let batch = 6;
            let mut x = logits(&mut rng, batch * classes, 2.0);
            x[2 * classes + classes / 2] = f32::from_bits(bits);
            let t = targets(&mut rng, batch, classes, 0.0);
            on_every_engine(&format!("nan {bits:#x}, width {classes}"), |engine| {
                let request = Request::cross_entropy(&x[..], [batch, classes], &t[..])
                    .reduction(Reduction::None)
                    .with_grad(true);
                let out = engine.compute(&request).unwrap();
                let rows = out.loss.values().unwrap();
                for (r, v) in rows.iter().enumerate() {
                    assert_eq!(v.is_nan(), r == 2, "row {r}: {v}");
                }
                for (i, g) in out.grad.unwrap().iter().enumerate() {
                    assert_eq!(g.is_nan(), i / classes == 2, "gradient {i}: {g}");
                }
            });
        }
    }
}

/// Logits near 1e6 with a spread of a few units: the losses are a few nats, but Σ p·x and the
/// lse are near 1e6, where an f32 steps by 0.06. Soft targets, label smoothing and KL keep their
/// sums relative to the row's max, so every engine matches the reference to 1e-5 (summed as
/// Σ p·x − lse·Σ p, the GPU kernels were off by about 1e-2).
#[test]
fn soft_targets_smoothing_and_kl_keep_their_precision_at_large_logits() {
    let mut rng = rng("large logits");
    let (batch, classes) = (7, 3001);
    let x: Vec<f32> = logits(&mut rng, batch * classes, 3.0)
        .iter()
        .map(|v| v + 1.0e6)
        .collect();
    let t = targets(&mut rng, batch, classes, 0.1);
    let p = common::distribution(&mut rng, batch, classes);
    let shape = [batch, classes];
    let requests = [
        Request::cross_entropy(&x[..], shape, &p[..]),
        Request::cross_entropy(&x[..], shape, &t[..]).label_smoothing(0.1),
        Request::kl_div(&x[..], shape, &p[..]).reduction(Reduction::BatchMean),
    ];
    for engine in &under_test() {
        for request in requests {
            for reduction in [request.options().reduction, Reduction::None] {
                let request = request.reduction(reduction).with_grad(true);
                let got = engine.compute(&request).unwrap();
                let want = Engine::reference().compute(&request).unwrap();
                let what = format!("{} {:?} {reduction:?}", engine.device(), request.loss());
                match (&got.loss, &want.loss) {
                    (Loss::Scalar(g), Loss::Scalar(w)) => assert_scalar(&what, *g, *w, TOL),
                    (Loss::Unreduced { values: g, .. }, Loss::Unreduced { values: w, .. }) => {
                        assert_close(&what, g, w, TOL, TOL);
                    }
                    other => panic!("{what}: {other:?}"),
                }
                let error = common::relative_norm_error(
                    got.grad.as_ref().unwrap(),
                    want.grad.as_ref().unwrap(),
                );
                assert!(error <= TOL, "{what}: gradient error {error:e}");
            }
        }
    }
}
