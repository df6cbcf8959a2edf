//! The float64 reference. It is written to be obviously correct rather than fast: each loss is
//! its textbook formula over float64 log-probabilities, and every GPU result is checked against
//! it.

use crate::output::{Loss, Output};
use crate::request::{Checked, CheckedTarget, InputKind, LossKind, Reduction};

/// x·log(y) with 0·log 0 = 0 (and 0·log y = 0 for any y), as `torch.xlogy`.
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 && !y.is_nan() {
        0.0
    } else {
        x * y.ln()
    }
}

/// A row's log-softmax and log-sum-exp, both from the row shifted by its max: no exp overflows,
/// and log q keeps the small part of the log-sum-exp even where the logits are so large that
/// max + log Σ exp(x − max) rounds it away (near 1e20 a float64 steps by 16 384, so three equal
/// maxima there would each get log q = 0 instead of −log 3). A NaN anywhere gives NaN; a row of
/// only −inf gives lse −inf, and log q NaN.
fn log_softmax(row: &[f64]) -> (Vec<f64>, f64) {
    if row.iter().any(|x| x.is_nan()) {
        return (vec![f64::NAN; row.len()], f64::NAN);
    }
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return (vec![f64::NAN; row.len()], f64::NEG_INFINITY);
    }
    let shift = row.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
    (
        row.iter().map(|&x| (x - max) - shift).collect(),
        max + shift,
    )
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

/// Row r's input in float64, after the soft cap.
pub(crate) fn capped_row(req: &Checked, r: usize) -> Vec<f64> {
    let c = req.classes;
    (r * c..(r + 1) * c)
        .map(|i| {
            let v = f64::from(req.input.get(i));
            match req.options.softcap {
                Some(cap) => f64::from(cap) * (v / f64::from(cap)).tanh(),
                None => v,
            }
        })
        .collect()
}

fn row(req: &Checked, r: usize) -> Row {
    let x = capped_row(req, r);
    let (log_q, lse) = match req.options.input_kind {
        InputKind::Logits => log_softmax(&x),
        InputKind::Probs => (x.iter().map(|v| v.ln()).collect(), 0.0),
        InputKind::LogProbs => (x.clone(), 0.0),
    };
    Row { x, log_q, lse }
}

/// Per-row (or per-element) values of the main loss in nats and of the z-loss term; and, when a
/// gradient is asked for, their derivatives with respect to each (soft-capped) input element.
#[derive(Default)]
struct Unreduced {
    main: Vec<f64>,
    z: Vec<f64>,
    lse: Vec<f64>,
    d_main: Vec<f64>,
    d_z: Vec<f64>,
}

impl Unreduced {
    /// Appends one row's (or element's) value and z term.
    fn value(&mut self, main: f64, z: f64) {
        self.main.push(main);
        self.z.push(z);
    }

    /// Appends one element's derivatives, when the request asks for a gradient.
    fn derivative(&mut self, req: &Checked, d_main: f64, d_z: f64) {
        if req.options.grad {
            self.d_main.push(d_main);
            self.d_z.push(d_z);
        }
    }
}

fn softmax(row: &Row) -> Vec<f64> {
    row.log_q.iter().map(|lq| lq.exp()).collect()
}

/// −Σ w p′ log q with p′ = (1 − ε)p + ε/C, plus s·lse². Its derivative in x′_j is
/// (Σ w p′)·softmax_j − w_j p′_j on logits (and 2s·lse·softmax_j for the z-loss), −w_j p′_j on
/// log-probabilities, and −w_j p′_j / x_j on probabilities.
fn cross_entropy(req: &Checked) -> Unreduced {
    let c = req.classes;
    let eps = f64::from(req.options.label_smoothing);
    let s = f64::from(req.options.z_loss);
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        let row = row(req, r);
        // The target distribution before smoothing, or None for an ignored row.
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
        let Some(p) = p else {
            out.value(0.0, 0.0);
            out.lse.push(row.lse);
            (0..c).for_each(|_| out.derivative(req, 0.0, 0.0));
            continue;
        };
        // w_k p′_k
        let wp: Vec<f64> = (0..c)
            .map(|k| req.class_weight(k) * ((1.0 - eps) * p[k] + eps / c as f64))
            .collect();
        let loss: f64 = (0..c)
            .map(|k| {
                if wp[k] == 0.0 {
                    0.0
                } else {
                    -wp[k] * row.log_q[k]
                }
            })
            .sum();
        let z = s * row.lse * row.lse;
        out.value(loss, z);
        out.lse.push(row.lse);
        if req.options.grad {
            let total: f64 = wp.iter().sum();
            let q = softmax(&row);
            for k in 0..c {
                let (d_main, d_z) = match req.options.input_kind {
                    InputKind::Logits => (total * q[k] - wp[k], 2.0 * s * row.lse * q[k]),
                    InputKind::LogProbs => (-wp[k], 0.0),
                    InputKind::Probs if wp[k] == 0.0 => (0.0, 0.0),
                    InputKind::Probs => (-wp[k] / row.x[k], 0.0),
                };
                out.derivative(req, d_main, d_z);
            }
        }
    }
    out
}

fn req_target(req: &Checked, r: usize) -> Option<usize> {
    match &req.target {
        CheckedTarget::Classes(t) => (t[r] != crate::request::IGNORED).then_some(t[r] as usize),
        _ => None,
    }
}

/// Elementwise p (log p − log q), 0 where p = 0. Its derivative in x_j is
/// (Σ p)·softmax_j − p_j on logits, −p_j on log-probabilities and −p_j / x_j on probabilities.
fn kl_div(req: &Checked) -> Unreduced {
    let CheckedTarget::Dense(t) = req.target else {
        unreachable!("checked: KL has a dense target")
    };
    let c = req.classes;
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        let row = row(req, r);
        let p: Vec<f64> = (0..c)
            .map(|k| {
                let t = f64::from(t[r * c + k]);
                if req.options.log_target { t.exp() } else { t }
            })
            .collect();
        for (&p, &log_q) in p.iter().zip(&row.log_q) {
            out.value(if p == 0.0 { 0.0 } else { p * (p.ln() - log_q) }, 0.0);
        }
        out.lse.push(row.lse);
        if req.options.grad {
            let total: f64 = p.iter().sum();
            let q = softmax(&row);
            for k in 0..c {
                let d = match req.options.input_kind {
                    InputKind::Logits => total * q[k] - p[k],
                    InputKind::LogProbs => -p[k],
                    InputKind::Probs if p[k] == 0.0 => 0.0,
                    InputKind::Probs => -p[k] / row.x[k],
                };
                out.derivative(req, d, 0.0);
            }
        }
    }
    out
}

/// H = −Σ q log q per row. Its derivative in x_j is −q_j (log q_j + H) on logits,
/// −(log x_j + 1) on probabilities and −e^x_j (x_j + 1) on log-probabilities.
fn entropy(req: &Checked) -> Unreduced {
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        let row = row(req, r);
        let h: f64 = row.log_q.iter().map(|&lq| -xlogy(lq.exp(), lq.exp())).sum();
        out.value(h, 0.0);
        out.lse.push(row.lse);
        if req.options.grad {
            for (&x, &lq) in row.x.iter().zip(&row.log_q) {
                let d = match req.options.input_kind {
                    InputKind::Logits if lq == f64::NEG_INFINITY => 0.0,
                    InputKind::Logits => -lq.exp() * (lq + h),
                    InputKind::Probs => -(x.ln() + 1.0),
                    InputKind::LogProbs => -x.exp() * (x + 1.0),
                };
                out.derivative(req, d, 0.0);
            }
        }
    }
    out
}

/// Elementwise w·[pw·y·(−log σ(x)) + (1 − y)·(−log(1 − σ(x)))] on logits, with derivative
/// w·[σ(x)(1 + (pw − 1)y) − pw·y]; −w·[y log x + (1 − y) log(1 − x)] on probabilities (logs clamped
/// at −100, as PyTorch), with PyTorch's derivative w·(x − y) / max(x(1 − x), 1e-12).
fn binary_cross_entropy(req: &Checked) -> Unreduced {
    let CheckedTarget::Dense(t) = req.target else {
        unreachable!("checked: BCE has dense labels")
    };
    let c = req.classes;
    let mut out = Unreduced::default();
    for r in 0..req.batch {
        let row = row(req, r);
        for k in 0..c {
            let (x, y, w) = (row.x[k], f64::from(t[r * c + k]), req.class_weight(k));
            let (loss, d) = match req.options.input_kind {
                InputKind::Logits => {
                    let pw = req.pos_weight.map_or(1.0, |pw| f64::from(pw[k]));
                    let sigmoid = 1.0 / (1.0 + (-x).exp());
                    (
                        pw * y * neg_log_sigmoid(x) + (1.0 - y) * neg_log_sigmoid(-x),
                        sigmoid * (1.0 + (pw - 1.0) * y) - pw * y,
                    )
                }
                _ => (
                    -(y * x.ln().max(-100.0) + (1.0 - y) * (1.0 - x).ln().max(-100.0)),
                    (x - y) / (x * (1.0 - x)).max(1e-12),
                ),
            };
            out.value(w * loss, 0.0);
            out.derivative(req, w * d, 0.0);
        }
    }
    out
}

fn unreduced(req: &Checked) -> Unreduced {
    match req.loss {
        LossKind::CrossEntropy => cross_entropy(req),
        LossKind::KlDiv => kl_div(req),
        LossKind::Entropy => entropy(req),
        LossKind::BinaryCrossEntropy => binary_cross_entropy(req),
    }
}

/// Computes any checked request in float64 and reduces it as the request says; writes the
/// gradient of the reduced loss (of the sum of the values, for `none`) into `grad` when asked.
pub(crate) fn compute(req: &Checked, grad: Option<&mut [f32]>) -> Output {
    let u = unreduced(req);
    let ln = req.options.base.ln();
    let divisors = req.divisors();
    let loss = match (req.options.reduction, divisors) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Base, Input, Request};

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
