//! The float64 reference. It is written to be obviously correct rather than fast: each loss is
//! its textbook formula over float64 log-probabilities, one file per loss family, and every
//! other engine's result is checked against it. It shares no code with the fast path.

mod bce;
mod cross_entropy;
mod entropy;
mod kl_div;
pub(crate) mod linear;
mod row;
mod unreduced;

pub(crate) use row::{cap, capped_row};
use unreduced::Unreduced;

use crate::output::{Loss, Output};
use crate::request::{Checked, LossKind, Reduction, scalar};

/// The request's values before the reduction, by its loss family.
fn unreduced(req: &Checked) -> Unreduced {
    match req.loss {
        LossKind::CrossEntropy => cross_entropy::values(req),
        LossKind::KlDiv => kl_div::values(req),
        LossKind::Entropy => entropy::values(req),
        LossKind::BinaryCrossEntropy => bce::values(req),
    }
}

/// Computes any checked request in float64 and reduces it as the request says; writes the
/// gradient of the reduced loss (of the sum of the values, for `none`) into `grad` when asked.
pub(crate) fn compute(req: &Checked, grad: Option<&mut [f32]>) -> Output {
    let u = unreduced(req);
    let divisors = req.divisors();
    let loss = reduced(&u, req, divisors);
    if let Some(grad) = grad {
        let (main_divisor, z_divisor) = divisors.unwrap_or((f64::INFINITY, f64::INFINITY));
        for (i, g) in grad.iter_mut().enumerate() {
            // The soft cap's chain rule: d(c·tanh(x/c))/dx = 1 − tanh²(x/c).
            let chain = req.options.softcap.map_or(1.0, |cap| {
                let t = (f64::from(req.input.get(i)) / f64::from(cap)).tanh();
                1.0 - t * t
            });
            *g = ((u.d_main[i] / main_divisor + u.d_z[i] / z_divisor) * chain) as f32;
        }
    }
    Output {
        loss,
        lse: req
            .options
            .lse
            .then(|| u.lse.iter().map(|&v| v as f32).collect()),
        grad: None,
        valid_rows: req.valid_rows,
        linear_grads: None,
    }
}

/// The loss of `u`, a request's values before the reduction, reduced as `req` says: each value in
/// its base with its z term for `none`, or the sums over the divisors.
fn reduced(u: &Unreduced, req: &Checked, divisors: Option<(f64, f64)>) -> Loss {
    let ln = req.options.base.ln();
    match req.options.reduction {
        Reduction::None => Loss::Unreduced {
            values: u
                .main
                .iter()
                .zip(&u.z)
                .map(|(m, z)| (m / ln + z) as f32)
                .collect(),
            shape: req.unreduced_shape(),
        },
        _ => scalar((u.main.iter().sum(), u.z.iter().sum()), divisors),
    }
}

#[cfg(test)]
mod tests {
    use super::bce::neg_log_sigmoid;
    use super::row::log_softmax;
    use super::*;
    use crate::request::{Base, Input, InputKind, Request};

    fn run(req: Request) -> Output {
        compute(&req.check().unwrap(), None)
    }

    fn scalar(req: Request) -> f64 {
        f64::from(run(req).loss.scalar().unwrap())
    }

    #[test]
    fn the_seed_examples() {
        let q = [0.2_f32, 0.7, 0.1];
        let label = [0.0_f32, 1.0, 0.0];
        let ce = Request::cross_entropy(&q[..], [1, 3], &label[..]).input_kind(InputKind::Probs);
        assert!((scalar(ce) - 0.356_674_94).abs() < 1e-6);
        let class = [1_i64];
        let ce = Request::cross_entropy(&q[..], [1, 3], &class[..]).input_kind(InputKind::Probs);
        assert!((scalar(ce) - 0.356_674_94).abs() < 1e-6);
        let q = [0.7_f32, 0.2, 0.1];
        let p = [1.0_f32, 0.0, 0.0];
        let kl = Request::kl_div(&q[..], [1, 3], &p[..]).input_kind(InputKind::Probs);
        assert!((scalar(kl.reduction(Reduction::Sum)) - 0.356_674_94).abs() < 1e-6);
        let y_hat = [0.8_f32, 0.9, 0.1];
        let y = [1.0_f32, 1.0, 0.0];
        let bce = Request::binary_cross_entropy(&y_hat[..], [1, 3], &y[..])
            .input_kind(InputKind::Probs)
            .reduction(Reduction::BatchMean);
        assert!((scalar(bce) - 0.433_864_58).abs() < 1e-6);
    }

    #[test]
    fn hand_computed_cross_entropy_with_an_ignored_row() {
        let logits = [2.0_f32, 1.0, 0.1, 0.5, 2.5, 0.3];
        let targets = [0_i64, -100];
        let out =
            run(Request::cross_entropy(&logits[..], [2, 3], &targets[..])
                .reduction(Reduction::None));
        let x = [2.0_f64, 1.0, f64::from(0.1_f32)];
        let expected = x.iter().map(|v| v.exp()).sum::<f64>().ln() - 2.0;
        let rows = out.loss.values().unwrap();
        assert!((f64::from(rows[0]) - expected).abs() < 1e-7);
        assert_eq!(rows[1], 0.0);
        assert_eq!(out.valid_rows, 1);
    }

    #[test]
    fn entropy_of_a_one_hot_row_is_zero_and_of_a_uniform_row_is_log_c() {
        let uniform = [0.25_f32; 4];
        let one_hot = [0.0_f32, 1.0, 0.0, 0.0];
        let both = [one_hot, uniform].concat();
        let out = run(Request::entropy(&both[..], [2, 4])
            .input_kind(InputKind::Probs)
            .reduction(Reduction::None));
        assert_eq!(out.loss.values().unwrap()[0], 0.0);
        let bits = run(Request::entropy(&uniform[..], [1, 4])
            .input_kind(InputKind::Probs)
            .base(Base::Two));
        assert!((bits.loss.scalar().unwrap() - 2.0).abs() < 1e-6);
    }

    /// The reduced loss in float64, before any rounding to f32.
    fn reduced_f64(req: &Checked) -> f64 {
        let u = unreduced(req);
        let (main_divisor, z_divisor) = req.divisors().unwrap();
        u.main.iter().sum::<f64>() / main_divisor + u.z.iter().sum::<f64>() / z_divisor
    }

    #[test]
    fn gradients_match_central_finite_differences() {
        // Inputs on a 2^-8 grid, so that x ± 2^-14 is exact in f32 and the difference quotient
        // sees exactly the step it divides by.
        let grid = |i: usize, lo: f32, hi: f32| {
            lo + ((i * 37 % 97) as f32 / 96.0 * (hi - lo) * 256.0).round() / 256.0
        };
        let (b, c) = (3, 5);
        let x: Vec<f32> = (0..b * c).map(|i| grid(i, -2.0, 2.0)).collect();
        let probs: Vec<f32> = (0..b * c).map(|i| grid(i, 0.05, 0.95)).collect();
        let p: Vec<f32> = (0..b * c)
            .map(|i| if i % 5 == 1 { 0.0 } else { 0.25 })
            .collect();
        let t = [4_i64, -100, 0];
        let w = [0.5_f32, 1.0, 2.0, 1.5, 0.75];
        let shape = [b, c];
        let cases: Vec<(&str, Request)> = vec![
            ("ce", Request::cross_entropy(&x[..], shape, &t[..])),
            (
                "ce all options",
                Request::cross_entropy(&x[..], shape, &t[..])
                    .weight(&w)
                    .label_smoothing(0.1)
                    .z_loss(0.01)
                    .softcap(1.5),
            ),
            (
                "ce soft",
                Request::cross_entropy(&x[..], shape, &p[..])
                    .weight(&w)
                    .label_smoothing(0.2)
                    .base(Base::Two),
            ),
            (
                "ce probs",
                Request::cross_entropy(&probs[..], shape, &t[..])
                    .input_kind(InputKind::Probs)
                    .label_smoothing(0.1),
            ),
            (
                "nll",
                Request::cross_entropy(&x[..], shape, &t[..])
                    .input_kind(InputKind::LogProbs)
                    .weight(&w),
            ),
            (
                "bce",
                Request::binary_cross_entropy(&x[..], shape, &probs[..])
                    .weight(&w)
                    .pos_weight(&w),
            ),
            (
                "bce probs",
                Request::binary_cross_entropy(&probs[..], shape, &p[..])
                    .input_kind(InputKind::Probs),
            ),
            ("kl", Request::kl_div(&x[..], shape, &p[..])),
            (
                "kl log target",
                Request::kl_div(&x[..], shape, &x[..])
                    .log_target(true)
                    .input_kind(InputKind::LogProbs),
            ),
            (
                "kl probs",
                Request::kl_div(&probs[..], shape, &p[..]).input_kind(InputKind::Probs),
            ),
            ("entropy", Request::entropy(&x[..], shape)),
            (
                "entropy probs",
                Request::entropy(&probs[..], shape).input_kind(InputKind::Probs),
            ),
            (
                "entropy log-probs",
                Request::entropy(&x[..], shape).input_kind(InputKind::LogProbs),
            ),
        ];
        let h = 1.0 / 16384.0;
        for (name, request) in cases {
            for reduction in [Reduction::Mean, Reduction::Sum, Reduction::BatchMean] {
                let request = request.reduction(reduction).with_grad(true);
                let checked = request.check().unwrap();
                let mut grad = vec![0.0; b * c];
                compute(&checked, Some(&mut grad));
                let Input::F32(base) = checked.input else {
                    unreachable!()
                };
                for i in 0..b * c {
                    let at = |delta: f32| {
                        let mut moved = base.to_vec();
                        moved[i] += delta;
                        reduced_f64(&request.with_input(&moved[..]).check().unwrap())
                    };
                    let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
                    let analytic = f64::from(grad[i]);
                    assert!(
                        (numeric - analytic).abs() <= 1e-5 * numeric.abs().max(1.0),
                        "{name} {reduction:?} element {i}: finite difference {numeric}, gradient {analytic}"
                    );
                }
            }
        }
    }

    #[test]
    fn survives_magnitudes_that_overflow_a_naive_exp() {
        let (_, lse) = log_softmax(&[1.0e4, -1.0e4, 9_999.0]);
        assert!((lse - (1.0e4 + (1.0 + (-1.0_f64).exp()).ln())).abs() < 1e-9);
        // Where max + log 3 rounds to max, log q still sees the log 3.
        let (log_q, _) = log_softmax(&[2.6e20, 2.6e20, 2.6e20, -12.0]);
        assert!((log_q[0] + 3.0_f64.ln()).abs() < 1e-15, "{log_q:?}");
        assert!((neg_log_sigmoid(100.0) - (-100.0_f64).exp()).abs() < 1e-50);
        assert!((neg_log_sigmoid(-100.0) - 100.0).abs() < 1e-12);
    }

    #[test]
    fn masked_rows_and_nan_rows() {
        assert_eq!(log_softmax(&[f64::NEG_INFINITY; 3]).1, f64::NEG_INFINITY);
        let (log_q, lse) = log_softmax(&[f64::NEG_INFINITY, 0.0]);
        assert_eq!((log_q, lse), (vec![f64::NEG_INFINITY, 0.0], 0.0));
        assert!(log_softmax(&[1.0, f64::NAN]).1.is_nan());
    }
}
