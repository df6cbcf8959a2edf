//! The gradient formulas that both the fast path (in f32) and the shard pass (in float64)
//! compute, each written once over either float: the same operations in the same order in each
//! precision, so that each computes what it did with the formula written out. The reference
//! keeps formulas of its own: it is the oracle they are checked against.

use std::ops::{Add, Div, Mul, Sub};

/// A float the formulas compute in: f32 on the fast path, f64 in the shard pass.
pub(crate) trait Float:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    /// 1.
    const ONE: Self;
    /// 2.
    const TWO: Self;
}

impl Float for f32 {
    const ONE: Self = 1.0;
    const TWO: Self = 2.0;
}

impl Float for f64 {
    const ONE: Self = 1.0;
    const TWO: Self = 2.0;
}

/// A cross-entropy target's weight of class k, w_k p′_k, where p′ = (1 − ε)p + ε/C is the
/// target `p` smoothed by `eps` over `classes` classes and w the class weight.
#[inline(always)]
pub(crate) fn smoothed_target<F: Float>(weight: F, p: F, eps: F, classes: F) -> F {
    weight * ((F::ONE - eps) * p + eps / classes)
}

/// The z-loss part's coefficient of the softmax in a cross-entropy row's gradient, 2·β·s·lse:
/// the derivative of the z-loss term s·lse², scaled by β (`z_scale`).
#[inline(always)]
pub(crate) fn z_coef<F: Float>(z_scale: F, z_loss: F, lse: F) -> F {
    F::TWO * z_scale * z_loss * lse
}

/// One element of a cross-entropy row's gradient on logits, α(b·softmax − w p′) + z·softmax,
/// where α is `main_scale`, b = Σ w p′ over the row, and z is [`z_coef`]: the cross-entropy part
/// is formed before the z-loss part is added, as in the kernels, so that with w p′ the same
/// values b summed, a row whose softmax equals its target gets exactly the z-loss term.
#[inline(always)]
pub(crate) fn cross_entropy<F: Float>(main_scale: F, b: F, softmax: F, wp: F, z: F) -> F {
    main_scale * (b * softmax - wp) + z * softmax
}

/// The soft cap's chain rule: `g`, the gradient at the capped input x′ = c·tanh(x/c), times
/// d(c·tanh(x/c))/dx = 1 − (x′/c)².
#[inline(always)]
pub(crate) fn softcap<F: Float>(g: F, capped: F, cap: F) -> F {
    let r = capped / cap;
    g * (F::ONE - r * r)
}
