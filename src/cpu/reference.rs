//! The float64 reference. It is written to be obviously correct rather than fast: each loss is
//! its textbook formula over float64 log-probabilities, and every GPU result is checked against
//! it.

use crate::loss::{Checked, CheckedTarget, InputKind, LossKind, Reduction};
use crate::output::{Loss, Output};

/// x·log(y) with 0·log 0 = 0 (and 0·log y = 0 for any y), as `torch.xlogy`.
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 && !y.is_nan() {
        0.0
    } else {
        x * y.ln()
    }
}

/// log Σ exp(x), shifted by the row max so that no exp overflows. A NaN anywhere gives NaN; a row
/// of only −inf gives −inf.
fn log_sum_exp(row: &[f64]) -> f64 {
    if row.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    max + row.iter().map(|&x| (x - max).exp()).sum::<f64>().ln()
}

/// log1p(exp(−|x|)) + max(−x, 0) = −log σ(x), without overflow.
fn neg_log_sigmoid(x: f64) -> f64 {
    (-x.abs()).exp().ln_1p() + (-x).max(0.0)
}

/// One row's input in float64, after the soft cap; and its log-probabilities with the row's
/// log-sum-exp (0 where the input is not logits).
struct Row {
    x: Vec<f64>,
    log_q: Vec<f64>,
    lse: f64,
}

fn row(req: &Checked, r: usize) -> Row {
    let c = req.classes;
    let x: Vec<f64> = (r * c..(r + 1) * c)
        .map(|i| {
            let v = f64::from(req.input.get(i));
            match req.options.softcap {
                Some(cap) => f64::from(cap) * (v / f64::from(cap)).tanh(),
                None => v,
            }
        })
        .collect();
    let (log_q, lse) = match req.options.input_kind {
        InputKind::Logits => {
            let lse = log_sum_exp(&x);
            (x.iter().map(|v| v - lse).collect(), lse)
        }
        InputKind::Probs => (x.iter().map(|v| v.ln()).collect(), 0.0),
        InputKind::LogProbs => (x.clone(), 0.0),
    };
    Row { x, log_q, lse }
}

/// Per-row (or per-element) values of the main loss in nats, and of the z-loss term.
struct Unreduced {
    main: Vec<f64>,
    z: Vec<f64>,
    lse: Vec<f64>,
}

fn cross_entropy(req: &Checked) -> Unreduced {
    let c = req.classes;
    let eps = f64::from(req.options.label_smoothing);
    let s = f64::from(req.options.z_loss);
    let mut out = Unreduced {
        main: vec![],
        z: vec![],
        lse: vec![],
    };
    for r in 0..req.batch {
        let row = row(req, r);
        // The target distribution p' before smoothing, or None for an ignored row.
        let p: Option<Vec<f64>> = match &req.target {
            CheckedTarget::Classes(_) => req_target(req, r).map(|y| {
                let mut p = vec![0.0; c];
                p[y] = 1.0;
                p
            }),
            CheckedTarget::Dense(t) => Some(
                t[r * c..(r + 1) * c]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect(),
            ),
            CheckedTarget::None => unreachable!("checked: cross-entropy has a target"),
        };
        let (main, z) = match p {
            None => (0.0, 0.0),
            Some(p) => {
                let loss: f64 = (0..c)
                    .map(|k| {
                        let smoothed = (1.0 - eps) * p[k] + eps / c as f64;
                        -req.class_weight(k)
                            * if smoothed == 0.0 {
                                0.0
                            } else {
                                smoothed * row.log_q[k]
                            }
                    })
                    .sum();
                (loss, s * row.lse * row.lse)
            }
        };
        out.main.push(main);
        out.z.push(z);
        out.lse.push(row.lse);
    }
    out
}

fn req_target(req: &Checked, r: usize) -> Option<usize> {
    match &req.target {
        CheckedTarget::Classes(t) => (t[r] != crate::loss::IGNORED).then_some(t[r] as usize),
        _ => None,
    }
}

fn kl_div(req: &Checked) -> Unreduced {
    let CheckedTarget::Dense(t) = req.target else {
        unreachable!("checked: KL has a dense target")
    };
    let c = req.classes;
    let mut main = Vec::with_capacity(req.batch * c);
    let mut lse = Vec::with_capacity(req.batch);
    for r in 0..req.batch {
        let row = row(req, r);
        for k in 0..c {
            let t = f64::from(t[r * c + k]);
            main.push(if req.options.log_target {
                t.exp() * (t - row.log_q[k])
            } else if t == 0.0 {
                0.0
            } else {
                t * (t.ln() - row.log_q[k])
            });
        }
        lse.push(row.lse);
    }
    Unreduced {
        z: vec![0.0; main.len()],
        main,
        lse,
    }
}

fn entropy(req: &Checked) -> Unreduced {
    let mut out = Unreduced {
        main: vec![],
        z: vec![],
        lse: vec![],
    };
    for r in 0..req.batch {
        let row = row(req, r);
        let h: f64 = row.log_q.iter().map(|&lq| -xlogy(lq.exp(), lq.exp())).sum();
        out.main.push(h);
        out.z.push(0.0);
        out.lse.push(row.lse);
    }
    out
}

fn binary_cross_entropy(req: &Checked) -> Unreduced {
    let CheckedTarget::Dense(t) = req.target else {
        unreachable!("checked: BCE has dense labels")
    };
    let c = req.classes;
    let mut main = Vec::with_capacity(req.batch * c);
    for r in 0..req.batch {
        let row = row(req, r);
        for k in 0..c {
            let (x, y, w) = (row.x[k], f64::from(t[r * c + k]), req.class_weight(k));
            let loss = match req.options.input_kind {
                InputKind::Logits => {
                    let p = req.pos_weight.map_or(1.0, |pw| f64::from(pw[k]));
                    // −[p·y·log σ(x) + (1 − y)·log(1 − σ(x))], with log(1 − σ(x)) = log σ(−x).
                    p * y * neg_log_sigmoid(x) + (1.0 - y) * neg_log_sigmoid(-x)
                }
                // PyTorch clamps each log at −100 so that 0 and 1 give finite losses.
                _ => -(y * x.ln().max(-100.0) + (1.0 - y) * (1.0 - x).ln().max(-100.0)),
            };
            main.push(w * loss);
        }
    }
    Unreduced {
        z: vec![0.0; main.len()],
        main,
        lse: vec![],
    }
}

/// Computes any checked request in float64 and reduces it as the request says.
pub(crate) fn compute(req: &Checked) -> Output {
    let u = match req.loss {
        LossKind::CrossEntropy => cross_entropy(req),
        LossKind::KlDiv => kl_div(req),
        LossKind::Entropy => entropy(req),
        LossKind::BinaryCrossEntropy => binary_cross_entropy(req),
    };
    let ln = req.options.base.ln();
    let loss = match (req.options.reduction, req.divisors()) {
        (Reduction::None, _) => Loss::Unreduced {
            values: u
                .main
                .iter()
                .zip(&u.z)
                .map(|(m, z)| (m / ln + z) as f32)
                .collect(),
            shape: req.unreduced_shape(),
        },
        (_, None) => Loss::Scalar(0.0),
        (_, Some((main_divisor, z_divisor))) => {
            let main: f64 = u.main.iter().sum();
            let z: f64 = u.z.iter().sum();
            Loss::Scalar((main / main_divisor + z / z_divisor) as f32)
        }
    };
    Output {
        loss,
        lse: req
            .options
            .lse
            .then(|| u.lse.iter().map(|&v| v as f32).collect()),
        valid_rows: req.valid_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{Base, Request};

    fn run(req: Request) -> Output {
        compute(&req.check().unwrap())
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

    #[test]
    fn survives_magnitudes_that_overflow_a_naive_exp() {
        let lse = log_sum_exp(&[1.0e4, -1.0e4, 9_999.0]);
        assert!((lse - (1.0e4 + (1.0 + (-1.0_f64).exp()).ln())).abs() < 1e-9);
        assert!((neg_log_sigmoid(100.0) - (-100.0_f64).exp()).abs() < 1e-50);
        assert!((neg_log_sigmoid(-100.0) - 100.0).abs() < 1e-12);
    }

    #[test]
    fn masked_rows_and_nan_rows() {
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert!((log_sum_exp(&[f64::NEG_INFINITY, 0.0]) - 0.0).abs() < 1e-15);
        assert!(log_sum_exp(&[1.0, f64::NAN]).is_nan());
    }
}
