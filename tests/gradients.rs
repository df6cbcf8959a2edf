//! Gradients on every GPU adapter against the float64 reference, in place and not.

mod common;
#[path = "common/counting.rs"]
mod counting;

use common::{gpus, logits, rng, targets, under_test};
use counting::peak_during;
use xent::{Engine, Error, Input, InputKind, Reduction, Request};

fn normalized(values: &[f32], classes: usize) -> Vec<f32> {
    values
        .chunks(classes)
        .flat_map(|row| {
            let e: Vec<f32> = row.iter().map(|v| v.exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect()
}

#[test]
fn every_loss_matches_the_reference_on_every_engine() {
    let mut rng = rng("gradients");
    for &(batch, classes) in &[(1, 1), (7, 13), (33, 129), (5, 3001), (300, 40)] {
        let x = logits(&mut rng, batch * classes, 3.0);
        let t = targets(&mut rng, batch, classes, 0.1);
        let u = logits(&mut rng, batch * classes, 1.0);
        let p = normalized(&u, classes);
        let labels: Vec<f32> = u.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
        let w: Vec<f32> = (0..classes).map(|k| 0.5 + (k % 5) as f32 * 0.3).collect();
        let shape = [batch, classes];
        let requests = [
            Request::cross_entropy(&x[..], shape, &t[..]),
            Request::cross_entropy(&x[..], shape, &t[..])
                .weight(&w)
                .label_smoothing(0.1)
                .z_loss(1e-3)
                .softcap(5.0),
            Request::cross_entropy(&x[..], shape, &p[..])
                .weight(&w)
                .label_smoothing(0.2),
            Request::cross_entropy(&p[..], shape, &t[..])
                .input_kind(InputKind::Probs)
                .label_smoothing(0.1),
            Request::cross_entropy(&x[..], shape, &t[..])
                .input_kind(InputKind::LogProbs)
                .weight(&w),
            Request::binary_cross_entropy(&x[..], shape, &labels[..])
                .weight(&w)
                .pos_weight(&w),
            Request::binary_cross_entropy(&labels[..], shape, &p[..]).input_kind(InputKind::Probs),
            Request::kl_div(&x[..], shape, &p[..]),
            Request::kl_div(&p[..], shape, &labels[..]).input_kind(InputKind::Probs),
            Request::entropy(&x[..], shape),
            Request::entropy(&p[..], shape).input_kind(InputKind::Probs),
        ];
        for (i, request) in requests.iter().enumerate() {
            for reduction in [Reduction::Mean, Reduction::None, Reduction::BatchMean] {
                let request = request.reduction(reduction).with_grad(true);
                let want = Engine::reference().compute(&request).unwrap().grad.unwrap();
                // A gradient whose terms cancel (one class, where only the z-loss term is left)
                // keeps the f32 rounding of those terms: an absolute floor of 1e-7 per element,
                // well under f32's 6e-8 relative error on terms of size ≤ 1.
                let floor = 1e-7 * (want.len() as f64).sqrt();
                for engine in &under_test() {
                    let got = engine.compute(&request).unwrap().grad.unwrap();
                    let (diff, want_norm) = common::norms(&got, &want);
                    assert!(
                        diff <= 1e-5 * want_norm + floor,
                        "{} request {i} {batch}x{classes} {reduction:?}: ‖got − want‖ {diff:e}, ‖want‖ {want_norm:e}",
                        engine.device()
                    );
                }
            }
        }
    }
}

#[test]
fn in_place_and_separate_gradients_are_identical() {
    let mut rng = rng("in place");
    for &(batch, classes) in &[(9, 7), (4, 2049), (100, 33)] {
        let x = logits(&mut rng, batch * classes, 3.0);
        let t = targets(&mut rng, batch, classes, 0.1);
        let request =
            Request::cross_entropy(&x[..], [batch, classes], &t[..]).label_smoothing(0.05);
        let labels: Vec<f32> = x.iter().map(|v| f32::from(*v > 0.0)).collect();
        let p = common::distribution(&mut rng, batch, classes);
        // BCE and KL `none` also run the elementwise pass, which reads the input too.
        let others = [
            Request::binary_cross_entropy(&x[..], [batch, classes], &labels[..])
                .reduction(Reduction::None),
            Request::kl_div(&x[..], [batch, classes], &p[..]).reduction(Reduction::None),
        ];
        for engine in gpus() {
            for request in [request].iter().chain(&others) {
                let separate = engine.compute(&request.with_grad(true)).unwrap();
                let in_place = engine.compute(&request.grad_in_place(true)).unwrap();
                let what = format!("{} {:?} {batch}x{classes}", engine.device(), request.loss());
                assert_eq!(separate, in_place, "{what}");
            }
        }
    }
}

#[test]
fn hard_label_rows_sum_to_zero_and_ignored_rows_are_zero() {
    let mut rng = rng("row sums");
    let (batch, classes) = (50, 1000);
    let x = logits(&mut rng, batch * classes, 2.0);
    let t = targets(&mut rng, batch, classes, 0.2);
    let request =
        Request::cross_entropy(&x[..], [batch, classes], &t[..]).reduction(Reduction::Sum);
    for engine in &under_test() {
        let grad = engine
            .compute(&request.with_grad(true))
            .unwrap()
            .grad
            .unwrap();
        for (r, row) in grad.chunks(classes).enumerate() {
            let sum: f32 = row.iter().sum();
            if t[r] == -100 {
                assert!(row.iter().all(|&g| g == 0.0), "{} row {r}", engine.device());
            } else {
                assert!(
                    sum.abs() < 1e-5,
                    "{} row {r} sums to {sum}",
                    engine.device()
                );
                assert!(row[t[r] as usize] < 0.0, "{} row {r}", engine.device());
            }
        }
    }
}

#[test]
fn an_all_ignored_mean_has_a_zero_gradient() {
    let mut rng = rng("all ignored grad");
    let x = logits(&mut rng, 4 * 70, 2.0);
    let t = [-100_i64; 4];
    let request = Request::cross_entropy(&x[..], [4, 70], &t[..]).with_grad(true);
    for engine in &under_test() {
        let out = engine.compute(&request).unwrap();
        assert_eq!(out.loss.scalar(), Some(0.0));
        assert!(
            out.grad.unwrap().iter().all(|&g| g == 0.0),
            "{}",
            engine.device()
        );
    }
}

#[test]
fn compute_into_writes_the_callers_slice_and_checks_its_length() {
    let mut rng = rng("compute into");
    let x = logits(&mut rng, 6 * 50, 2.0);
    let t = targets(&mut rng, 6, 50, 0.0);
    let request = Request::cross_entropy(&x[..], [6, 50], &t[..]);
    for engine in &under_test() {
        let mut grad = vec![f32::NAN; 300];
        let out = engine.compute_into(&request, &mut grad).unwrap();
        assert_eq!(out.grad, None);
        assert_eq!(
            Some(grad),
            engine.compute(&request.with_grad(true)).unwrap().grad
        );
        let err = engine.compute_into(&request, &mut [0.0; 299]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "grad has 299 values, but its shape [6, 50] needs 300"
        );
    }
}

#[test]
fn an_in_place_gradient_of_16_bit_input_is_refused() {
    for dtype in [xent::Dtype::F16, xent::Dtype::Bf16] {
        let x = common::round_to(dtype, &[0.5; 6]);
        let request =
            Request::cross_entropy(x.as_input(), [2, 3], &[0_i64, 1][..]).grad_in_place(true);
        let err = Engine::reference().compute(&request).unwrap_err();
        assert!(matches!(err, xent::Error::Unsupported { .. }), "{err}");
    }
}

/// Long rows, where one invocation per row would run past llvmpipe's limit of 65 535 loop
/// iterations per invocation (the gradient pass then wrote one quad per row): the kernel choice
/// keeps every invocation within it. At the edge of one invocation per row (120000 classes, 30000
/// quads), just past it, and far past it, with weights and smoothing (whose loops run inside the
/// row loop) and without.
#[test]
fn long_rows_get_every_gradient_element() {
    let mut rng = rng("long rows");
    for (batch, classes) in [(8, 120_000), (8, 120_004), (16, 131_072), (8, 262_144)] {
        let x = logits(&mut rng, batch * classes, 4.0);
        let t = targets(&mut rng, batch, classes, 0.0);
        let w: Vec<f32> = (0..classes).map(|k| 0.5 + (k % 3) as f32 * 0.25).collect();
        let plain = Request::cross_entropy(&x[..], [batch, classes], &t[..]).with_grad(true);
        let weighted = plain.weight(&w).label_smoothing(0.1);
        for request in [plain, weighted] {
            let want = Engine::reference().compute(&request).unwrap();
            for engine in gpus() {
                let what = format!("{} {batch}x{classes}", engine.device());
                let got = engine.compute(&request).unwrap();
                common::assert_scalar(
                    &what,
                    got.loss.scalar().unwrap(),
                    want.loss.scalar().unwrap(),
                    1e-5,
                );
                let (g, w) = (got.grad.unwrap(), want.grad.as_ref().unwrap().clone());
                // A quad left unwritten (or holding the last call's values) costs far more.
                let error = common::relative_norm_error(&g, &w);
                assert!(error <= 1e-5, "{what}: gradient off by {error}");
                // A 0 where the reference is far below the gradient's typical size is a
                // cancellation (with smoothing, b·softmax_k can round to exactly w_k·ε/C), not a
                // gap: an unwritten quad leaves typical values at 0.
                let mut sizes: Vec<f32> = w.iter().map(|v| v.abs()).collect();
                sizes.sort_by(f32::total_cmp);
                let typical = sizes[sizes.len() / 2];
                let unwritten: Vec<usize> = (0..g.len())
                    .filter(|&i| g[i] == 0.0 && w[i].abs() > 1e-3 * typical)
                    .collect();
                assert!(
                    unwritten.is_empty(),
                    "{what}: unwritten elements {:?}",
                    &unwritten[..unwritten.len().min(8)]
                );
            }
        }
    }
}

/// The scalar loss within 1e-5 of `want`'s, and the gradient within 1e-5 relative norm.
fn same_loss_and_gradient(what: &str, got: &xent::Output, want: &xent::Output) {
    let (a, e) = (got.loss.scalar().unwrap(), want.loss.scalar().unwrap());
    common::assert_scalar(what, a, e, 1e-5);
    let (g, w) = (got.grad.as_ref().unwrap(), want.grad.as_ref().unwrap());
    let error = common::relative_norm_error(g, w);
    assert!(error <= 1e-5, "{what}: gradient off by {error}");
}

/// Huge rows in small batches are split into segments, a workgroup each, whose statistics are
/// merged per row in order. A row of a million classes alone (which the rule splits wherever the
/// CPU has more than one core, for a CPU adapter, and on any GPU), for every loss with its
/// gradient, in place and not; and rows that start mid-quad through each of the autotune's
/// candidates, split ones among them.
#[test]
fn split_rows_match_the_reference() {
    let mut rng = rng("split rows");
    let classes = 1_000_003;
    let x = logits(&mut rng, classes, 4.0);
    let p = common::distribution(&mut rng, 1, classes);
    let labels: Vec<f32> = p.iter().map(|&v| (v * classes as f32).min(1.0)).collect();
    let w: Vec<f32> = (0..classes).map(|k| 0.5 + (k % 3) as f32 * 0.25).collect();
    let t = [classes as i64 - 2];
    let ce = Request::cross_entropy(&x[..], [1, classes], &t[..])
        .weight(&w)
        .label_smoothing(0.1)
        .softcap(20.0)
        .z_loss(1e-4);
    let requests = [
        ce,
        ce.grad_in_place(true),
        Request::kl_div(&x[..], [1, classes], &p[..]),
        Request::entropy(&x[..], [1, classes]),
        Request::binary_cross_entropy(&x[..], [1, classes], &labels[..]).pos_weight(&w),
    ];
    for request in requests {
        let request = request.with_grad(true);
        let want = Engine::reference().compute(&request).unwrap();
        for engine in under_test() {
            let what = format!("{} {:?} 1x{classes}", engine.device(), request.loss());
            same_loss_and_gradient(&what, &engine.compute(&request).unwrap(), &want);
        }
    }

    let (batch, classes) = (3, 70_001);
    let x = logits(&mut rng, batch * classes, 4.0);
    let t = targets(&mut rng, batch, classes, 0.0);
    let w = &w[..classes];
    let request = Request::cross_entropy(&x[..], [batch, classes], &t[..])
        .weight(w)
        .label_smoothing(0.1)
        .with_grad(true);
    let want = Engine::reference().compute(&request).unwrap();
    for engine in common::open_gpus() {
        let engine = engine.autotune(true);
        let what = format!("{} {batch}x{classes}", engine.device());
        let mut calls = 0;
        while calls == 0 || engine.autotuning() {
            let got = engine.compute(&request).unwrap();
            same_loss_and_gradient(&format!("{what} call {calls}"), &got, &want);
            calls += 1;
            assert!(calls < 64, "{what}: {:?}", engine.autotuned());
        }
        eprintln!("{what}: {calls} calls, {:?}", engine.autotuned());
    }
}

/// Computes `request` with its gradient into a buffer of its own, then the same request over an
/// empty input in place over a copy of its values: the same output (but `grad`), and the copy
/// holds the same gradient bits.
fn in_place_matches_separate(engine: &Engine, what: &str, values: &[f32], request: &Request) {
    let mut separate = vec![f32::NAN; values.len()];
    let want = engine
        .compute_into(&request.with_input(values), &mut separate)
        .unwrap();
    let mut in_place = values.to_vec();
    let got = engine
        .compute_in_place(&request.with_input(Input::F32(&[])), &mut in_place)
        .unwrap();
    let what = format!("{} {what}", engine.device());
    assert_eq!(got, want, "{what}");
    if let Some(i) = (0..values.len()).find(|&i| in_place[i].to_bits() != separate[i].to_bits()) {
        panic!(
            "{what}: element {i}: in place {}, separate {}",
            in_place[i], separate[i]
        );
    }
}

#[test]
fn host_gradients_in_place_equal_separate_ones_on_every_engine() {
    let mut rng = rng("host in place");
    // Short rows over several tasks, rows across blocks and tasks, one row longer than a task.
    let shapes = [
        (1, 1),
        (7, 13),
        (1000, 10),
        (33, 129),
        (5, 3001),
        (40, 9000),
        (1, 300_000),
    ];
    let engines: Vec<Engine> = under_test()
        .into_iter()
        .chain([Engine::reference()])
        .collect();
    for &(batch, classes) in &shapes {
        let shape = [batch, classes];
        let x = logits(&mut rng, batch * classes, 3.0);
        let t = targets(&mut rng, batch, classes, 0.1);
        let p = normalized(&logits(&mut rng, batch * classes, 1.0), classes);
        let w: Vec<f32> = (0..classes).map(|k| 0.5 + (k % 5) as f32 * 0.3).collect();
        let cases = [
            (
                "cross-entropy",
                &x,
                Request::cross_entropy(&x[..], shape, &t[..]),
            ),
            (
                "cross-entropy, every option",
                &x,
                Request::cross_entropy(&x[..], shape, &t[..])
                    .weight(&w)
                    .label_smoothing(0.1)
                    .z_loss(1e-3)
                    .softcap(5.0),
            ),
            (
                "soft targets",
                &x,
                Request::cross_entropy(&x[..], shape, &p[..]).label_smoothing(0.2),
            ),
            (
                "NLL",
                &x,
                Request::cross_entropy(&x[..], shape, &t[..]).input_kind(InputKind::LogProbs),
            ),
            (
                "BCE, none",
                &x,
                Request::binary_cross_entropy(&x[..], shape, &p[..])
                    .pos_weight(&w)
                    .reduction(Reduction::None),
            ),
            (
                "KL, none",
                &x,
                Request::kl_div(&x[..], shape, &p[..]).reduction(Reduction::None),
            ),
            (
                "entropy of probabilities",
                &p,
                Request::entropy(&p[..], shape).input_kind(InputKind::Probs),
            ),
            (
                "cross-entropy, none, z-loss, lse",
                &x,
                Request::cross_entropy(&x[..], shape, &t[..])
                    .reduction(Reduction::None)
                    .z_loss(1e-3)
                    .with_lse(true),
            ),
        ];
        for engine in &engines {
            for (name, values, request) in &cases {
                let what = format!("{name} {batch}x{classes}");
                in_place_matches_separate(engine, &what, values, request);
            }
        }
    }
}
#[test]
fn a_host_request_in_place_checks_everything_before_it_writes() {
    let mut rng = rng("host in place errors");
    let (batch, classes) = (6, 50);
    let x = logits(&mut rng, batch * classes, 2.0);
    let t = targets(&mut rng, batch, classes, 0.0);
    let request = Request::cross_entropy(Input::F32(&[]), [batch, classes], &t[..]);
    for engine in under_test() {
        let device = engine.device().to_string();
        // A request over an input of its own.
        let mut logits = x.clone();
        let over_x = Request::cross_entropy(&x[..], [batch, classes], &t[..]);
        let err = engine.compute_in_place(&over_x, &mut logits).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption {
                    option: "input",
                    ..
                }
            ),
            "{device}: {err}"
        );
        // Logits of the wrong length.
        let mut short = x[..x.len() - 1].to_vec();
        let err = engine.compute_in_place(&request, &mut short).unwrap_err();
        assert!(
            matches!(err, Error::LengthMismatch { what: "input", .. }),
            "{device}: {err}"
        );
        // A NaN in strict mode, and a target out of range: nothing is written.
        let mut nan = x.clone();
        nan[3 * classes + 7] = f32::NAN;
        let before = nan.clone();
        let err = engine
            .compute_in_place(&request.strict(true), &mut nan)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NonFinite {
                    what: "input",
                    row: 3,
                    class: 7,
                    ..
                }
            ),
            "{device}: {err}"
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&nan), bits(&before), "{device}");
        let mut bad = t.clone();
        bad[2] = classes as i64;
        let mut untouched = x.clone();
        let err = engine
            .compute_in_place(
                &Request::cross_entropy(Input::F32(&[]), [batch, classes], &bad[..]),
                &mut untouched,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::TargetOutOfRange { row: 2, .. }),
            "{device}: {err}"
        );
        assert_eq!(untouched, x, "{device}");
    }
}

/// On the fast CPU path a gradient in place allocates no buffer of the batch's size: on one
/// thread, a task's copy of its rows (at most 1 MiB) and small per-row state, against 8 MiB of
/// logits, where a gradient of its own allocates those 8 MiB.
#[test]
fn a_fast_gradient_in_place_allocates_no_batch_sized_buffer() {
    let mut rng = rng("in place memory");
    let (batch, classes) = (64, 32_000);
    let mut x = logits(&mut rng, batch * classes, 3.0);
    let t = targets(&mut rng, batch, classes, 0.1);
    let request = Request::cross_entropy(Input::F32(&[]), [batch, classes], &t[..]);
    let engine = Engine::cpu();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (separate, in_place) = one_thread.install(|| {
        let (out, separate) =
            peak_during(|| engine.compute(&request.with_input(&x[..]).with_grad(true)));
        out.unwrap();
        let (out, in_place) = peak_during(|| engine.compute_in_place(&request, &mut x));
        out.unwrap();
        (separate, in_place)
    });
    let bytes = batch * classes * 4;
    assert!(separate >= bytes, "{separate} bytes");
    assert!(in_place <= (1 << 20) + (1 << 16), "{in_place} bytes");
}
