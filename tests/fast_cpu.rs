//! The fast CPU path: its precision against the float64 reference, and the same bits whatever the
//! thread count.

mod common;

use common::{logits, rng, targets};
use xent::{Engine, Reduction, Request};

fn in_pool<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(work)
}

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
