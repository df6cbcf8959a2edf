//! The fast CPU path: every loss in one fused pass per row (two with the gradient), SIMD through
//! loops the compiler vectorizes for the CPU found at run time (`multiversion`), threads over row
//! blocks (rayon), and no [B, C] temporary.
//!
//! Per row, the logits are taken in blocks that fit in L1: the block's max, a rescale of the
//! running sum when the max rises, then the block's exps, with a polynomial exp that vectorizes.
//! Block sums are f32 over 16 lanes; the running sums are f64. Rows are reduced in a fixed order,
//! so the result does not depend on the thread count.

use multiversion::multiversion;
use multiversion::target::target_cfg;
use rayon::prelude::*;

use crate::loss::{Checked, CheckedTarget, IGNORED, Input, InputKind, LossKind, Reduction};
use crate::output::{Loss, Output};

/// Elements per block of the online softmax: 8 KiB of f32, well inside L1.
const BLOCK: usize = 2048;
/// Accumulator lanes: wide enough for AVX-512, and independent chains for AVX2 and NEON.
const LANES: usize = 16;
/// Below this many elements a call stays on the calling thread: spawning work on the pool costs
/// more than it saves (50–80 µs at 64 × 1000 here).
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;
/// Rows per rayon task.
const ROWS_PER_TASK: usize = 16;

/// a·b + c, fused where the CPU version being compiled has FMA (a constant in each
/// `multiversion` clone, so the branch folds away; without FMA, `mul_add` would call libm).
#[inline(always)]
fn mul_add(a: f32, b: f32, c: f32, fma: bool) -> f32 {
    if fma { a.mul_add(b, c) } else { a * b + c }
}

/// e^x for f32, branch-free so that loops over it vectorize: x = n·ln 2 + r with |r| ≤ ln 2 / 2,
/// e^r by its degree-7 Taylor polynomial (relative error below 1e-8 on that range), and 2^n put
/// into the exponent bits. Below −87.3 (the normal range) it gives 0, above 88.7 +inf; NaN stays
/// NaN.
#[inline(always)]
fn exp(x: f32, fma: bool) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to the nearest integer n, which then sits in the low mantissa bits:
    // both n as a float and n as bits come out without a float-to-int conversion, which would
    // not vectorize (Rust's `as` saturates).
    const ROUND: f32 = 12_582_912.0;
    const C: [f32; 8] = [
        1.0,
        1.0,
        0.5,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
    ];
    let clamped = x.clamp(-87.3, 88.7);
    let shifted = mul_add(clamped, LOG2E, ROUND, fma);
    let n = shifted - ROUND;
    let r = mul_add(-n, LN2_LO, mul_add(-n, LN2_HI, clamped, fma), fma);
    let mut p = C[7];
    for &coefficient in C[..7].iter().rev() {
        p = mul_add(p, r, coefficient, fma);
    }
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let y = p * scale;
    if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else {
        y
    }
}

/// The largest value; NaN does not win here, but a NaN row still ends NaN through its exps.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn max_of(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    tail.iter().fold(
        acc.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |m, &v| m.max(v),
    )
}

/// Σ e^(x − m) over one block.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn sum_exp(xs: &[f32], m: f32) -> f32 {
    #[target_cfg(any(target_feature = "fma", target_arch = "aarch64"))]
    const FMA: bool = true;
    #[target_cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
    const FMA: bool = false;
    let fma = FMA;
    let mut s = [0.0_f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    // The tail goes through the same vector code, padded with −inf, whose exp is 0.
    let mut tail = [f32::NEG_INFINITY; LANES];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    let mut add = |c: &[f32]| {
        for k in 0..LANES {
            s[k] += exp(c[k] - m, fma);
        }
    };
    chunks.for_each(&mut add);
    add(&tail);
    s.iter().sum::<f32>()
}

/// Σ e^(x − m) over one block, keeping each e^(x − m) in `out` for the gradient.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn sum_exp_store(xs: &[f32], m: f32, out: &mut [f32]) -> f32 {
    #[target_cfg(any(target_feature = "fma", target_arch = "aarch64"))]
    const FMA: bool = true;
    #[target_cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
    const FMA: bool = false;
    let fma = FMA;
    let mut s = [0.0_f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut outs = out.chunks_exact_mut(LANES);
    for (c, o) in chunks.zip(&mut outs) {
        for k in 0..LANES {
            let e = exp(c[k] - m, fma);
            o[k] = e;
            s[k] += e;
        }
    }
    let mut total = s.iter().sum::<f32>();
    for (&v, o) in tail.iter().zip(outs.into_remainder()) {
        *o = exp(v - m, fma);
        total += *o;
    }
    total
}

/// g ← factor·g.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn scale(g: &mut [f32], factor: f32) {
    for v in g {
        *v *= factor;
    }
}

/// Σ e^(x − m) and Σ e^(x − m)·(x − m) over one block, for entropy.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn sum_exp_t(xs: &[f32], m: f32) -> (f32, f32) {
    #[target_cfg(any(target_feature = "fma", target_arch = "aarch64"))]
    const FMA: bool = true;
    #[target_cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
    const FMA: bool = false;
    let fma = FMA;
    let mut s = 0.0_f32;
    let mut t = 0.0_f32;
    for &v in xs {
        let d = v - m;
        let e = exp(d, fma);
        s += e;
        // exp(−inf)·(−inf) would be NaN; a class of probability 0 adds nothing.
        t += if e > 0.0 { e * d } else { 0.0 };
    }
    (s, t)
}

/// A row's running statistics, as in the kernels: max, Σ e^(x−m), Σ e^(x−m)(x−m).
struct Softmax {
    m: f32,
    s: f64,
    t: f64,
}

impl Softmax {
    /// The statistics of a row. With `store`, each element's e^(x − m) goes into it, m being
    /// the running max when its block was read, and each block's m into `maxes`: the gradient
    /// then needs one multiply per element instead of a second exp.
    fn of(x: &[f32], with_t: bool, mut store: Option<(&mut [f32], &mut Vec<f32>)>) -> Self {
        let mut st = Softmax {
            m: f32::NEG_INFINITY,
            s: 0.0,
            t: 0.0,
        };
        for (b, block) in x.chunks(BLOCK).enumerate() {
            let block_max = max_of(block).max(f32::MIN);
            if block_max > st.m {
                // The first block sets the max; later ones rescale what came before.
                if st.s > 0.0 {
                    let shift = f64::from(st.m) - f64::from(block_max);
                    let scale = shift.exp();
                    st.t = scale * (st.t + shift * st.s);
                    st.s *= scale;
                }
                st.m = block_max;
            }
            let (s, t) = match (&mut store, with_t) {
                (Some((out, maxes)), _) => {
                    maxes.push(st.m);
                    let at = b * BLOCK;
                    (
                        sum_exp_store(block, st.m, &mut out[at..at + block.len()]),
                        0.0,
                    )
                }
                (None, true) => sum_exp_t(block, st.m),
                (None, false) => (sum_exp(block, st.m), 0.0),
            };
            st.s += f64::from(s);
            st.t += f64::from(t);
        }
        st
    }

    /// Turns what `of` stored into the softmax times `coef`: each block's e^(x − m_b) times
    /// e^(m_b − lse)·coef.
    fn stored_softmax(g: &mut [f32], maxes: &[f32], lse: f32, coef: f32) {
        for (block, &m) in g.chunks_mut(BLOCK).zip(maxes) {
            scale(
                block,
                ((f64::from(m) - f64::from(lse)).exp() * f64::from(coef)) as f32,
            );
        }
    }

    fn lse(&self) -> f32 {
        (f64::from(self.m) + self.s.ln()) as f32
    }
}

/// What one row contributes: its main value (in nats, weighted), its z term and its lse. (The
/// elementwise losses write their `none` values straight into the output.)
struct RowResult {
    main: f64,
    z: f64,
    lse: f32,
}

/// One row's input as f32 after the soft cap, borrowed when nothing changes it.
fn row_input<'a>(req: &'a Checked, r: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
    let range = r * req.classes..(r + 1) * req.classes;
    match (req.input, req.options.softcap) {
        (Input::F32(v), None) => &v[range],
        (input, cap) => {
            scratch.clear();
            scratch.extend(range.map(|i| {
                let x = input.get(i);
                cap.map_or(x, |c| c * (x / c).tanh())
            }));
            scratch
        }
    }
}

fn log_q_unshifted(kind: InputKind, x: f32) -> f32 {
    if kind == InputKind::Probs { x.ln() } else { x }
}

/// The gradient of −α·Σ m_k log q_k where log q is the input itself (log-probabilities, −α m_k)
/// or its log (probabilities, −α m_k / x_k; 0 where m_k = 0, even at x_k = 0).
fn target_only_grad(
    g: &mut [f32],
    x: &[f32],
    kind: InputKind,
    alpha: f32,
    mass: impl Fn(usize) -> f32,
) {
    for (k, (g, &v)) in g.iter_mut().zip(x).enumerate() {
        let m = mass(k);
        *g = match kind {
            InputKind::Probs if m == 0.0 => 0.0,
            InputKind::Probs => -alpha * m / v,
            _ => -alpha * m,
        };
    }
}

/// Computes one row: its value, and when asked its gradient (scaled by α and β) and elementwise
/// values (scaled by α).
fn row(
    req: &Checked,
    r: usize,
    scale: (f32, f32),
    scratch: &mut Vec<f32>,
    mut grad: Option<&mut [f32]>,
    elements: Option<&mut [f32]>,
) -> RowResult {
    let (alpha, beta) = scale;
    let c = req.classes;
    let kind = req.options.input_kind;
    let logits = kind == InputKind::Logits;
    let x = row_input(req, r, scratch);
    let weight = |k: usize| req.weight.map_or(1.0, |w| w[k]);
    let needs_softmax = logits && req.loss != LossKind::BinaryCrossEntropy;
    let entropy = req.loss == LossKind::Entropy;
    let mut maxes = Vec::new();
    let store = (!entropy)
        .then_some(grad.as_deref_mut())
        .flatten()
        .map(|g| (g, &mut maxes));
    let st = needs_softmax.then(|| Softmax::of(x, entropy, store));
    let lse = st.as_ref().map_or(0.0, Softmax::lse);
    let mut out = RowResult {
        main: 0.0,
        z: 0.0,
        lse,
    };
    match req.loss {
        LossKind::CrossEntropy => {
            let eps = req.options.label_smoothing;
            let (y, p) = match &req.target {
                CheckedTarget::Classes(t) if t[r] == IGNORED => {
                    if let Some(g) = grad {
                        g.fill(0.0);
                    }
                    return out;
                }
                CheckedTarget::Classes(t) => (Some(t[r] as usize), None),
                CheckedTarget::Dense(t) => (None, Some(&t[r * c..(r + 1) * c])),
                CheckedTarget::None => unreachable!("checked: cross-entropy has a target"),
            };
            // w_k p′_k for every class.
            let wp = |k: usize| {
                let p_k = match (y, &p) {
                    (Some(y), _) => f32::from(u8::from(k == y)),
                    (None, Some(p)) => p[k],
                    (None, None) => 0.0,
                };
                weight(k) * ((1.0 - eps) * p_k + eps / c as f32)
            };
            // Σ w p′ log q = Σ w p′ x′ − lse·Σ w p′ (log q unshifted for probs and log-probs).
            // Σ w p′ log q = Σ w p′ x′ − lse·Σ w p′ (log q unshifted for probs and log-probs). One
            // unweighted, unsmoothed class needs no loop.
            let one_hot = y.filter(|_| eps == 0.0 && req.weight.is_none());
            let (mut a, mut b) = (0.0_f64, 0.0_f64);
            if let Some(y) = one_hot {
                a = f64::from(log_q_unshifted(kind, x[y]));
                b = 1.0;
            } else {
                for (k, &v) in x.iter().enumerate() {
                    let w = wp(k);
                    if w != 0.0 {
                        a += f64::from(w) * f64::from(log_q_unshifted(kind, v));
                        b += f64::from(w);
                    }
                }
            }
            out.main = -(a - f64::from(lse) * b);
            if logits {
                out.z = f64::from(req.options.z_loss) * f64::from(lse) * f64::from(lse);
            }
            if let Some(g) = grad.as_deref_mut() {
                if logits {
                    // α(b·softmax − w p′) + 2βs·lse·softmax, the cross-entropy part formed before
                    // the z-loss part is added, as in the kernels: with w p′ the same values b
                    // summed, a row whose softmax equals its target gets exactly the z-loss term.
                    let z = 2.0 * beta * req.options.z_loss * lse;
                    let b = b as f32;
                    match one_hot {
                        Some(y) => {
                            Softmax::stored_softmax(g, &maxes, lse, alpha + z);
                            // softmax_y − 1 in f32, then scaled.
                            let softmax_y = exp(x[y] - lse, false);
                            g[y] = alpha * (softmax_y - 1.0) + z * softmax_y;
                        }
                        None => {
                            Softmax::stored_softmax(g, &maxes, lse, 1.0);
                            for (k, g) in g.iter_mut().enumerate() {
                                *g = alpha * (b * *g - wp(k)) + z * *g;
                            }
                        }
                    }
                } else {
                    target_only_grad(g, x, kind, alpha, wp);
                }
            }
        }
        LossKind::KlDiv => {
            let CheckedTarget::Dense(t) = &req.target else {
                unreachable!("checked")
            };
            let t = &t[r * c..(r + 1) * c];
            let p = |k: usize| {
                if req.options.log_target {
                    t[k].exp()
                } else {
                    t[k]
                }
            };
            let (mut a, mut b, mut plogp) = (0.0_f64, 0.0_f64, 0.0_f64);
            let mut values = elements;
            for (k, &v) in x.iter().enumerate() {
                let p_k = p(k);
                if p_k > 0.0 {
                    let log_p = if req.options.log_target {
                        t[k]
                    } else {
                        p_k.ln()
                    };
                    let lq = log_q_unshifted(kind, v);
                    a += f64::from(p_k) * f64::from(lq);
                    b += f64::from(p_k);
                    plogp += f64::from(p_k) * f64::from(log_p);
                    if let Some(values) = values.as_deref_mut() {
                        values[k] = alpha * p_k * (log_p - (lq - lse));
                    }
                } else if let Some(values) = values.as_deref_mut() {
                    values[k] = 0.0;
                }
            }
            out.main = plogp - (a - f64::from(lse) * b);
            if let Some(g) = grad.as_deref_mut() {
                if logits {
                    Softmax::stored_softmax(g, &maxes, lse, alpha * b as f32);
                    for (k, g) in g.iter_mut().enumerate() {
                        *g -= alpha * p(k);
                    }
                } else {
                    target_only_grad(g, x, kind, alpha, p);
                }
            }
        }
        LossKind::Entropy => {
            let h = match (&st, kind) {
                (Some(st), _) => st.s.ln() - st.t / st.s,
                (None, InputKind::Probs) => x
                    .iter()
                    .map(|&q| {
                        if q > 0.0 {
                            -f64::from(q) * f64::from(q.ln())
                        } else {
                            0.0
                        }
                    })
                    .sum(),
                (None, _) => x
                    .iter()
                    .map(|&lq| {
                        let q = lq.exp();
                        if q > 0.0 {
                            -f64::from(q) * f64::from(lq)
                        } else {
                            0.0
                        }
                    })
                    .sum(),
            };
            out.main = h;
            if let Some(g) = grad.as_deref_mut() {
                let h = h as f32;
                for (g, &v) in g.iter_mut().zip(x) {
                    *g = match kind {
                        InputKind::Logits => {
                            let lq = v - lse;
                            let q = lq.exp();
                            if q > 0.0 { -alpha * q * (lq + h) } else { 0.0 }
                        }
                        InputKind::Probs => -alpha * (v.ln() + 1.0),
                        InputKind::LogProbs => -alpha * v.exp() * (v + 1.0),
                    };
                }
            }
        }
        LossKind::BinaryCrossEntropy => {
            let CheckedTarget::Dense(t) = &req.target else {
                unreachable!("checked")
            };
            let t = &t[r * c..(r + 1) * c];
            let mut values = elements;
            let mut sum = 0.0_f64;
            for (k, &v) in x.iter().enumerate() {
                let (y, w) = (t[k], weight(k));
                let (loss, d) = if logits {
                    let pw = req.pos_weight.map_or(1.0, |p| p[k]);
                    // −log σ(x) = log1p(e^−|x|) + max(−x, 0).
                    let softplus = (-v.abs()).exp().ln_1p();
                    let sigmoid = 1.0 / (1.0 + (-v).exp());
                    (
                        pw * y * (softplus + (-v).max(0.0)) + (1.0 - y) * (softplus + v.max(0.0)),
                        sigmoid * (1.0 + (pw - 1.0) * y) - pw * y,
                    )
                } else {
                    (
                        -(y * v.ln().max(-100.0) + (1.0 - y) * (1.0 - v).ln().max(-100.0)),
                        (v - y) / (v * (1.0 - v)).max(1e-12),
                    )
                };
                sum += f64::from(w * loss);
                if let Some(values) = values.as_deref_mut() {
                    values[k] = alpha * w * loss;
                }
                if let Some(g) = grad.as_deref_mut() {
                    g[k] = alpha * w * d;
                }
            }
            out.main = sum;
        }
    }
    // The soft cap's chain rule: d(c·tanh(x/c))/dx = 1 − (x′/c)².
    if let (Some(cap), Some(g)) = (req.options.softcap, grad) {
        for (g, &v) in g.iter_mut().zip(x) {
            let r = v / cap;
            *g *= 1.0 - r * r;
        }
    }
    out
}

/// A block of rows and its slices of the gradient and of the elementwise values.
struct Task<'a> {
    rows: std::ops::Range<usize>,
    grad: Option<&'a mut [f32]>,
    values: Option<&'a mut [f32]>,
}

impl Task<'_> {
    fn run(self, req: &Checked, scale: (f32, f32)) -> Vec<RowResult> {
        let c = req.classes;
        let mut scratch = Vec::new();
        let mut grad = self.grad.map(|g| g.chunks_mut(c));
        let mut values = self.values.map(|v| v.chunks_mut(c));
        self.rows
            .map(|r| {
                let g = grad.as_mut().and_then(Iterator::next);
                let v = values.as_mut().and_then(Iterator::next);
                row(req, r, scale, &mut scratch, g, v)
            })
            .collect()
    }
}

/// Computes any checked request on the CPU in f32, as the kernels do, and reduces it as the
/// request says; writes the gradient of the reduced loss into `grad` when asked.
pub(crate) fn compute(req: &Checked, grad: Option<&mut [f32]>) -> Output {
    let c = req.classes;
    let divisors = req.divisors();
    let scale = divisors.map_or((0.0, 0.0), |(main, z)| {
        ((1.0 / main) as f32, (1.0 / z) as f32)
    });
    let elementwise = req.options.reduction == Reduction::None && req.loss.elementwise();
    let mut values = vec![0.0_f32; if elementwise { req.elements() } else { 0 }];
    let block = ROWS_PER_TASK * c;
    let mut grad_blocks = grad.map(|g| g.chunks_mut(block));
    let mut value_blocks = elementwise.then(|| values.chunks_mut(block));
    let tasks: Vec<Task> = (0..req.batch)
        .step_by(ROWS_PER_TASK)
        .map(|start| Task {
            rows: start..req.batch.min(start + ROWS_PER_TASK),
            grad: grad_blocks.as_mut().and_then(Iterator::next),
            values: value_blocks.as_mut().and_then(Iterator::next),
        })
        .collect();
    let rows: Vec<RowResult> = if req.elements() < PARALLEL_MIN_ELEMENTS {
        tasks.into_iter().flat_map(|t| t.run(req, scale)).collect()
    } else {
        tasks
            .into_par_iter()
            .map(|t| t.run(req, scale))
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .collect()
    };
    let ln = req.options.base.ln();
    let loss = match (req.options.reduction, divisors) {
        (Reduction::None, _) if elementwise => Loss::Unreduced {
            values,
            shape: req.unreduced_shape(),
        },
        (Reduction::None, _) => Loss::Unreduced {
            values: rows.iter().map(|r| (r.main / ln + r.z) as f32).collect(),
            shape: req.unreduced_shape(),
        },
        (_, None) => Loss::Scalar(0.0),
        (_, Some((main_divisor, z_divisor))) => {
            let main: f64 = rows.iter().map(|r| r.main).sum();
            let z: f64 = rows.iter().map(|r| r.z).sum();
            Loss::Scalar((main / main_divisor + z / z_divisor) as f32)
        }
    };
    Output {
        loss,
        lse: req
            .options
            .lse
            .then(|| rows.iter().map(|r| r.lse).collect()),
        grad: None,
        valid_rows: req.valid_rows,
    }
}
