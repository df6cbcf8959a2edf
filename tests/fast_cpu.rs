//! The fast CPU path: its precision against the float64 reference, and the same bits whatever the
//! thread count.

mod common;

use common::{in_pool, logits, rng, targets};
use xent::{Engine, Loss, Reduction, Request};

#[test]
fn the_mean_is_within_1e6_and_rows_within_1e5_of_the_reference() {
    let mut rng = rng("fast precision");
    let (batch, classes) = (512, 32_000);
    let x = logits(&mut rng, batch * classes, 4.0);
    let t = targets(&mut rng, batch, classes, 0.05);
    let request = Request::cross_entropy(&x[..], [batch, classes], &t[..]).with_lse(true);
    let fast = Engine::cpu().compute(&request).unwrap();
    let want = Engine::reference().compute(&request).unwrap();
    common::assert_scalar(
        "mean",
        fast.loss.scalar().unwrap(),
        want.loss.scalar().unwrap(),
        1e-6,
    );
    let rows = request.reduction(Reduction::None);
    common::assert_close(
        "rows",
        Engine::cpu().compute(&rows).unwrap().loss.values().unwrap(),
        Engine::reference()
            .compute(&rows)
            .unwrap()
            .loss
            .values()
            .unwrap(),
        1e-5,
        1e-5,
    );
}

#[test]
fn the_same_input_gives_the_same_bits_on_any_thread_count() {
    let mut rng = rng("fast determinism");
    let (batch, classes) = (300, 5000);
    let x = logits(&mut rng, batch * classes, 3.0);
    let t = targets(&mut rng, batch, classes, 0.1);
    for reduction in [Reduction::Mean, Reduction::None] {
        let request = Request::cross_entropy(&x[..], [batch, classes], &t[..])
            .reduction(reduction)
            .label_smoothing(0.1)
            .with_grad(true);
        let one = in_pool(1, || Engine::cpu().compute(&request).unwrap());
        for threads in [2, 3, 8] {
            let many = in_pool(threads, || Engine::cpu().compute(&request).unwrap());
            assert_eq!(one, many, "{threads} threads, {reduction:?}");
        }
    }
}

/// Short rows (32 classes or fewer) take their softmax eight rows at a time: odd class counts,
/// batches that leave rows over (1000 rows of 10 classes make tasks of 409 rows, each ending in
/// a partial step), masked classes, a fully masked row, ignored rows among the others, and the
/// gradient, on cross-entropy with class targets (and z-loss) and soft targets, and on KL. Class
/// targets write their gradient in the short-row step itself: each element within 1e-5 of the
/// reference's largest, ignored rows exactly 0. Without a gradient, class-target rows take a path
/// of their own: the same bits as with one, loss, lse and each row's value.
#[test]
fn short_rows_match_the_reference_with_masks_and_gradients() {
    let mut rng = rng("fast short rows");
    for classes in [1, 2, 3, 7, 10, 31, 32, 33] {
        for batch in [1, 8, 13, 300, 1000] {
            let mut x = logits(&mut rng, batch * classes, 6.0);
            // Mask about one class in five; row 0 entirely.
            for (i, v) in x.iter_mut().enumerate() {
                if i < classes || (classes > 1 && i % 5 == 2) {
                    *v = f32::NEG_INFINITY;
                }
            }
            let t: Vec<i64> = targets(&mut rng, batch, classes, 0.0)
                .into_iter()
                .enumerate()
                // Row 0 is masked, so it must be ignored, and so is every seventh row; others must
                // not target a masked class.
                .map(|(r, y)| {
                    if r % 7 == 0 {
                        -100
                    } else if x[r * classes + y as usize] == f32::NEG_INFINITY {
                        (0..classes as i64)
                            .find(|&k| x[r * classes + k as usize].is_finite())
                            .unwrap()
                    } else {
                        y
                    }
                })
                .collect();
            let dist: Vec<f32> = (0..batch * classes)
                .map(|i| if x[i].is_finite() { 1.0 } else { 0.0 })
                .collect::<Vec<_>>()
                .chunks(classes)
                .flat_map(|row| {
                    let n: f32 = row.iter().sum::<f32>().max(1.0);
                    row.iter().map(move |v| v / n).collect::<Vec<_>>()
                })
                .collect();
            // Dense targets cannot skip a row: theirs is unmasked (its target is all zeros).
            let mut x_dense = x.clone();
            x_dense[..classes].fill(0.5);
            let shape = [batch, classes];
            let requests = [
                Request::cross_entropy(&x[..], shape, &t[..]),
                Request::cross_entropy(&x[..], shape, &t[..]).z_loss(1e-3),
                Request::cross_entropy(&x_dense[..], shape, &dist[..]),
                Request::kl_div(&x_dense[..], shape, &dist[..]).reduction(Reduction::BatchMean),
            ];
            for (i, request) in requests.iter().enumerate() {
                let request = request.with_grad(true).with_lse(true);
                let what = format!("{batch}x{classes} request {i}");
                let got = Engine::cpu().compute(&request).unwrap();
                let want = Engine::reference().compute(&request).unwrap();
                common::assert_scalar(
                    &what,
                    got.loss.scalar().unwrap(),
                    want.loss.scalar().unwrap(),
                    1e-6,
                );
                common::assert_close(
                    &what,
                    got.lse.as_ref().unwrap(),
                    want.lse.as_ref().unwrap(),
                    1e-5,
                    1e-6,
                );
                let (g, w) = (got.grad.unwrap(), want.grad.unwrap());
                assert!(
                    common::relative_norm_error(&g, &w) <= 1e-5,
                    "{what}: gradient off by {}",
                    common::relative_norm_error(&g, &w)
                );
                let largest = w.iter().fold(0.0_f32, |a, v| a.max(v.abs()));
                for (k, (got, want)) in g.iter().zip(&w).enumerate() {
                    assert!(
                        (got - want).abs() <= 1e-5 * largest,
                        "{what}: gradient element {k}: {got} against {want}"
                    );
                }
                if i < 2 {
                    for r in (0..batch).step_by(7) {
                        let row = &g[r * classes..(r + 1) * classes];
                        assert!(row.iter().all(|&v| v == 0.0), "{what}: ignored row {r}");
                    }
                }
                let forward = Engine::cpu().compute(&request.with_grad(false)).unwrap();
                assert_eq!(forward.loss, got.loss, "{what}: forward alone");
                assert_eq!(forward.lse, got.lse, "{what}: forward alone");
                let rows = request.reduction(Reduction::None);
                let alone = Engine::cpu().compute(&rows.with_grad(false)).unwrap();
                let with_grad = Engine::cpu().compute(&rows).unwrap();
                assert_eq!(alone.loss, with_grad.loss, "{what}: rows alone");
                let (Loss::Unreduced { values: v, .. }, Loss::Unreduced { values: w, .. }) = (
                    &alone.loss,
                    &Engine::reference().compute(&rows).unwrap().loss,
                ) else {
                    panic!("{what}: unreduced rows");
                };
                common::assert_close(&what, v, w, 1e-5, 1e-6);
            }
        }
    }
}

/// Each row's first block has its max read while the row before it is summed: rows of very
/// different scales (a carried max from the wrong row would overflow or flush their exps), row
/// lengths under, at, and over a multiple of the 2048-class block, batches that split into tasks
/// unevenly, with and without the gradient, and requests that do not read ahead (entropy, a soft
/// cap).
#[test]
fn rows_read_ahead_keep_their_own_max() {
    let mut rng = rng("fast read ahead");
    for classes in [33, 1000, 2047, 2048, 2049, 4096, 5000] {
        let batch = 37;
        let mut x = logits(&mut rng, batch * classes, 2.0);
        for (r, row) in x.chunks_mut(classes).enumerate() {
            let offset = [70.0, -70.0, 0.0, 35.0][r % 4];
            row.iter_mut().for_each(|v| *v += offset);
        }
        let t = targets(&mut rng, batch, classes, 0.0);
        let shape = [batch, classes];
        let requests = [
            Request::cross_entropy(&x[..], shape, &t[..]).reduction(Reduction::None),
            Request::cross_entropy(&x[..], shape, &t[..])
                .reduction(Reduction::None)
                .with_grad(true),
            Request::cross_entropy(&x[..], shape, &t[..])
                .reduction(Reduction::None)
                .softcap(30.0),
            Request::entropy(&x[..], shape).reduction(Reduction::None),
        ];
        for (i, request) in requests.iter().enumerate() {
            let request = request.with_lse(i != 3);
            let what = format!("{batch}x{classes} request {i}");
            let got = in_pool(2, || Engine::cpu().compute(&request).unwrap());
            let want = Engine::reference().compute(&request).unwrap();
            common::assert_close(
                &what,
                got.loss.values().unwrap(),
                want.loss.values().unwrap(),
                1e-5,
                1e-5,
            );
            if let (Some(got), Some(want)) = (&got.lse, &want.lse) {
                common::assert_close(&what, got, want, 1e-5, 1e-6);
            }
            if let (Some(g), Some(w)) = (&got.grad, &want.grad) {
                let error = common::relative_norm_error(g, w);
                assert!(error <= 1e-5, "{what}: gradient off by {error}");
            }
        }
    }
}
