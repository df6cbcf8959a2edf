//! Random shapes, magnitudes and ignored rows: every GPU engine against the float64 reference.

mod common;

use proptest::prelude::*;
use xent::{Engine, Reduction, Request};

fn case() -> impl Strategy<Value = (usize, usize, Vec<f32>, Vec<i64>)> {
    (
        1usize..=40,
        1usize..=700,
        prop_oneof![Just(1e-3_f32), Just(1.0), Just(30.0), Just(2e4)],
    )
        .prop_flat_map(|(batch, classes, scale)| {
            (
                Just(batch),
                Just(classes),
                proptest::collection::vec(-scale..scale, batch * classes),
                proptest::collection::vec(
                    prop_oneof![9 => 0..classes as i64, 1 => Just(-100_i64)],
                    batch,
                ),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gpus_match_the_reference((batch, classes, logits, targets) in case()) {
        let request = Request::cross_entropy(&logits[..], [batch, classes], &targets[..])
            .reduction(Reduction::None)
            .with_lse(true);
        let want = Engine::cpu().compute(&request).unwrap();
        let scale = logits.iter().fold(1.0_f64, |m, &x| m.max(f64::from(x.abs())));
        for engine in common::gpus() {
            let got = engine.compute(&request).unwrap();
            let what = format!("{} {batch}x{classes}", engine.device());
            common::assert_close(&what, got.loss.values().unwrap(), want.loss.values().unwrap(), 1e-5 * scale, 1e-5);
            common::assert_close(&what, got.lse.as_deref().unwrap(), want.lse.as_deref().unwrap(), 1e-5 * scale, 1e-5);
            let mean = engine.compute(&request.reduction(Reduction::Mean)).unwrap();
            let want_mean = Engine::cpu().compute(&request.reduction(Reduction::Mean)).unwrap();
            common::assert_scalar(&what, mean.loss.scalar().unwrap(), want_mean.loss.scalar().unwrap(), 1e-5 * scale);
        }
    }
}
