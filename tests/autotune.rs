//! The GPU autotune: every candidate kernel runs (and gives the right result) while a class of
//! shapes is tried, then one is kept, and from then on the same input gives the same bits. In a
//! binary of its own, with engines of its own, since the setting is shared by an engine's clones.

mod common;

use common::{logits, rng, targets};
use xent::{Engine, Request};

#[test]
fn every_candidate_is_right_and_the_winner_is_kept() {
    let mut rng = rng("autotune");
    let (batch, classes) = (40, 3000);
    let x = logits(&mut rng, batch * classes, 4.0);
    let t = targets(&mut rng, batch, classes, 0.1);
    let request = Request::cross_entropy(&x[..], [batch, classes], &t[..]).with_grad(true);
    let want = Engine::reference().compute(&request).unwrap();
    for engine in common::open_gpus() {
        let name = engine.device().to_string();
        assert!(engine.autotuned().is_empty(), "{name}: off by default");
        let engine = engine.autotune(true);
        let mut calls = 0;
        loop {
            let got = engine.compute(&request).unwrap();
            common::assert_scalar(
                &name,
                got.loss.scalar().unwrap(),
                want.loss.scalar().unwrap(),
                1e-5,
            );
            let error = common::relative_norm_error(
                got.grad.as_ref().unwrap(),
                want.grad.as_ref().unwrap(),
            );
            assert!(error <= 1e-5, "{name}: gradient off by {error}");
            calls += 1;
            let report = engine.autotuned();
            assert_eq!(report.len(), 1, "{name}: {report:?}");
            assert_eq!(engine.autotuning(), report[0].contains("trying"), "{name}");
            if !report[0].contains("trying") {
                break;
            }
            assert!(
                calls < 64,
                "{name}: still trying after {calls} calls: {report:?}"
            );
        }
        // Several candidates, each run twice.
        assert!(calls >= 4, "{name}: chose after {calls} calls");
        let report = engine.autotuned();
        assert!(
            report[0].starts_with("cross-entropy f32 with gradient, B ≤ 2^6, C ≤ 2^12: a "),
            "{name}: {report:?}"
        );
        let first = engine.compute(&request).unwrap();
        for _ in 0..3 {
            assert_eq!(engine.compute(&request).unwrap(), first, "{name}");
        }
        assert_eq!(engine.autotuned(), report, "{name}: the choice stays");
    }
}
