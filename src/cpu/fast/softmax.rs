//! A row's online softmax statistics, as the kernels keep them: the logits taken in blocks that
//! fit in L1, each block's max, a rescale of the running sums when the max rises, then the
//! block's exps; and what the gradient needs of them.

use super::blocks::{BLOCK, max_of, multiply, sum_exp, sum_exp_t};
use super::math::exp;
use crate::cpu::gradient;
use crate::request::Scales;

/// A row's statistics, as in the kernels: max, Σ e^(x−m), Σ e^(x−m)(x−m), and log Σ e^(x−m),
/// taken once per row.
pub(super) struct Softmax {
    pub m: f32,
    pub s: f64,
    pub t: f64,
    pub log_s: f64,
}

/// A row's logits for [`Softmax::of`], and where their exps go when the gradient needs them.
pub(super) enum Logits<'a> {
    /// Read only.
    Read(&'a [f32]),
    /// Read, each exp into the second slice, and each block's max into the `Vec`.
    Store(&'a [f32], &'a mut [f32], &'a mut Vec<f32>),
    /// Each exp over its logit, and each block's max into the first `Vec`: each block is copied
    /// into the second first, from cache (the loop over the block before read it ahead).
    InPlace(&'a mut [f32], &'a mut Vec<f32>, &'a mut Vec<f32>),
}

impl Logits<'_> {
    fn len(&self) -> usize {
        match self {
            Logits::Read(x) | Logits::Store(x, ..) => x.len(),
            Logits::InPlace(x, ..) => x.len(),
        }
    }

    /// The values at `range`.
    fn values(&self, range: std::ops::Range<usize>) -> &[f32] {
        match self {
            Logits::Read(x) | Logits::Store(x, ..) => &x[range],
            Logits::InPlace(x, ..) => &x[range],
        }
    }
}

/// The max of a row's first block, read in the loop over the last block of the row before it
/// (see [`Softmax::of`]).
#[derive(Default)]
pub(super) struct Ahead(Option<(usize, f32)>);

impl Softmax {
    /// The statistics of row r, whose first block's max `ahead` holds when the row before read
    /// it, reading in turn the max of `after` (the next row's first block) in the loop over this
    /// row's last block, as each block reads the next, and leaving it in `ahead`. When `x` stores
    /// them, each element's e^(x − m) is kept, m being the running max when its block was read,
    /// and each block's m: the gradient then needs one multiply per element instead of a second
    /// exp.
    pub fn of(mut x: Logits, with_t: bool, r: usize, after: &[f32], ahead: &mut Ahead) -> Self {
        let first_max = ahead.0.take().filter(|&(row, _)| row == r).map(|(_, m)| m);
        let (mut m, mut s_all, mut t_all) = (f32::NEG_INFINITY, 0.0_f64, 0.0_f64);
        let len = x.len();
        let mut block_max = first_max.unwrap_or_else(|| max_of(x.values(0..len.min(BLOCK))));
        for at in (0..len).step_by(BLOCK) {
            let end = len.min(at + BLOCK);
            let block_max_now = block_max.max(f32::MIN);
            if block_max_now > m {
                // The first block sets the max; later ones rescale what came before.
                if s_all > 0.0 {
                    let shift = f64::from(m) - f64::from(block_max_now);
                    let rescale = shift.exp();
                    t_all = rescale * (t_all + shift * s_all);
                    s_all *= rescale;
                }
                m = block_max_now;
            }
            let next_end = len.min(end + BLOCK);
            let (block, out, next): (&[f32], _, &[f32]) = match &mut x {
                Logits::Read(x) => (&x[at..end], None, &x[end..next_end]),
                Logits::Store(x, out, maxes) => {
                    maxes.push(m);
                    (&x[at..end], Some(&mut out[at..end]), &x[end..next_end])
                }
                Logits::InPlace(x, maxes, copy) => {
                    maxes.push(m);
                    let (head, tail) = x.split_at_mut(end);
                    copy.clear();
                    copy.extend_from_slice(&head[at..]);
                    (&copy[..], Some(&mut head[at..]), &tail[..next_end - end])
                }
            };
            let next = if next.is_empty() { after } else { next };
            let (s, t) = if with_t {
                block_max = max_of(next);
                sum_exp_t(block, m)
            } else {
                let (s, next_max) = sum_exp(block, m, out, next);
                block_max = next_max;
                (s, 0.0)
            };
            s_all += f64::from(s);
            t_all += f64::from(t);
        }
        ahead.0 = (!after.is_empty()).then_some((r + 1, block_max));
        Softmax {
            m,
            s: s_all,
            t: t_all,
            log_s: s_all.ln(),
        }
    }

    /// A short row's statistics, as the short-row loop gives them.
    #[inline(always)]
    pub fn short(m: f32, s: f32, log_s: f32) -> Self {
        Softmax {
            m,
            s: f64::from(s),
            t: 0.0,
            log_s: f64::from(log_s),
        }
    }

    /// The factor that turns the e^(x − m_b) of a block read at running max m_b into the softmax
    /// times `coef`: e^((m_b − m) − log s)·coef, which is coef / s for a block read at the row's
    /// max (every block of most rows).
    fn factor(&self, m_b: f32, coef: f32) -> f32 {
        if m_b == self.m {
            self.at_max(coef)
        } else {
            ((f64::from(m_b) - f64::from(self.m) - self.log_s).exp() * f64::from(coef)) as f32
        }
    }

    /// [`Softmax::factor`] for a block read at the row's max: coef / s.
    #[inline(always)]
    pub fn at_max(&self, coef: f32) -> f32 {
        (f64::from(coef) / self.s) as f32
    }

    /// Turns what `of` stored into the softmax times `coef`, block by block.
    pub fn stored_softmax(&self, g: &mut [f32], maxes: &[f32], coef: f32) {
        for (block, &m) in g.chunks_mut(BLOCK).zip(maxes) {
            multiply(block, self.factor(m, coef));
        }
    }

    /// The z-loss part's coefficient of the softmax in a cross-entropy row's gradient
    /// ([`gradient::z_coef`]), with the lse rounded to f32.
    #[inline(always)]
    pub fn z_coef(&self, z_scale: f32, z_loss: f32) -> f32 {
        gradient::z_coef(z_scale, z_loss, self.lse() as f32)
    }

    /// For a row against one unweighted, unsmoothed class y (logit `x_y`): the coefficient of
    /// its softmax in the gradient, α + z, and the gradient at y, [`gradient::cross_entropy`]
    /// with b = w p′ = 1, α(softmax_y − 1) + z·softmax_y, where α is the main scale and z the
    /// z-loss part's coefficient ([`Softmax::z_coef`]).
    #[inline(always)]
    pub fn one_hot_terms(&self, x_y: f32, scales: Scales, z_loss: f32) -> (f32, f32) {
        let z = self.z_coef(scales.z_loss, z_loss);
        let softmax_y = exp(self.log_q(x_y) as f32, false);
        (
            scales.main + z,
            gradient::cross_entropy(scales.main, 1.0, softmax_y, 1.0, z),
        )
    }

    /// The log-sum-exp in float64: the sums it multiplies are float64, and with a rounded lse,
    /// lse·Σ w p′ − Σ w p′ x would cancel to nothing near logits of 1e8.
    #[inline(always)]
    pub fn lse(&self) -> f64 {
        f64::from(self.m) + self.log_s
    }

    /// log q of logit `x`: (x − m) − log s, the max taken off first. x − lse would lose log s
    /// wherever m + log s rounds to m (an f32 near 1e8 steps by 8): three equal maxima there
    /// would each get log q = 0 instead of −log 3.
    #[inline(always)]
    pub fn log_q(&self, x: f32) -> f64 {
        (f64::from(x) - f64::from(self.m)) - self.log_s
    }
}
