//! Random shapes, magnitudes, losses and options: every GPU engine and the fast CPU path against
//! the float64 reference, losses and gradients.

mod common;

use proptest::prelude::*;
use xent::{Engine, InputKind, Reduction, Request};

/// A random case: shape, input scale, and which loss and options to use.
#[derive(Clone, Debug)]
struct Case {
    batch: usize,
    classes: usize,
    logits: Vec<f32>,
    classes_target: Vec<i64>,
    uniform: Vec<f32>,
    weight: Vec<f32>,
    variant: usize,
    smoothing: f32,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=40,
        1usize..=700,
        prop_oneof![Just(1e-3_f32), Just(1.0), Just(30.0), Just(2e4)],
        0usize..7,
        prop_oneof![Just(0.0_f32), 0.0_f32..1.0],
    )
        .prop_flat_map(|(batch, classes, scale, variant, smoothing)| {
            let n = batch * classes;
            (
                proptest::collection::vec(-scale..scale, n),
                proptest::collection::vec(
                    prop_oneof![9 => 0..classes as i64, 1 => Just(-100_i64)],
                    batch,
                ),
                proptest::collection::vec(0.0_f32..1.0, n),
                proptest::collection::vec(0.1_f32..2.0, classes),
            )
                .prop_map(move |(logits, classes_target, uniform, weight)| Case {
                    batch,
                    classes,
                    logits,
                    classes_target,
                    uniform,
                    weight,
                    variant,
                    smoothing,
                })
        })
}

/// Rows of `values` scaled to sum to 1.
fn normalized(values: &[f32], classes: usize) -> Vec<f32> {
    values
        .chunks(classes)
        .flat_map(|row| {
            let sum: f32 = row.iter().sum::<f32>().max(f32::MIN_POSITIVE);
            row.iter().map(move |v| v / sum).collect::<Vec<_>>()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gpus_match_the_reference(c in case()) {
        let shape = [c.batch, c.classes];
        let dist = normalized(&c.uniform, c.classes);
        let request = match c.variant {
            0 => Request::cross_entropy(&c.logits[..], shape, &c.classes_target[..]),
            1 => Request::cross_entropy(&c.logits[..], shape, &c.classes_target[..])
                .weight(&c.weight)
                .label_smoothing(c.smoothing)
                .z_loss(1e-4),
            2 => Request::cross_entropy(&c.logits[..], shape, &dist[..])
                .weight(&c.weight)
                .label_smoothing(c.smoothing),
            3 => Request::binary_cross_entropy(&c.logits[..], shape, &c.uniform[..])
                .weight(&c.weight)
                .pos_weight(&c.weight),
            4 => Request::binary_cross_entropy(&dist[..], shape, &c.uniform[..])
                .input_kind(InputKind::Probs),
            5 => Request::kl_div(&c.logits[..], shape, &dist[..]),
            _ => Request::entropy(&dist[..], shape).input_kind(InputKind::Probs),
        };
        let scale = c.logits.iter().fold(1.0_f64, |m, &x| m.max(f64::from(x.abs())));
        for engine in &common::under_test() {
            let what = format!("{} {}x{} variant {}", engine.device(), c.batch, c.classes, c.variant);
            for reduction in [Reduction::None, Reduction::Mean] {
                let request = request.reduction(reduction);
                let want = Engine::reference().compute(&request).unwrap();
                let got = engine.compute(&request).unwrap();
                match reduction {
                    Reduction::None => common::assert_close(
                        &what,
                        got.loss.values().unwrap(),
                        want.loss.values().unwrap(),
                        1e-5 * scale,
                        1e-5,
                    ),
                    _ => common::assert_scalar(
                        &what,
                        got.loss.scalar().unwrap(),
                        want.loss.scalar().unwrap(),
                        1e-5 * scale,
                    ),
                }
            }
            let request = request.with_grad(true);
            let want = Engine::reference().compute(&request).unwrap().grad.unwrap();
            let got = engine.compute(&request).unwrap().grad.unwrap();
            // Each softmax is e^(x − lse) with lse in f32, whose rounding (about |x|·ε) moves
            // every e^(x − lse) by as much relatively.
            let tolerance = 1e-5_f64.max(8.0 * scale * f64::from(f32::EPSILON));
            let error = common::relative_norm_error(&got, &want);
            prop_assert!(error <= tolerance, "{}: gradient off by {} > {}", what, error, tolerance);
        }
    }
}
