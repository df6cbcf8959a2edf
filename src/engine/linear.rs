//! Linear requests: cross-entropy on the logits of an output head, with the gradients of the
//! hidden states, the head's weight and its bias returned or put into the caller's slices.

use super::Engine;
use crate::error::{Error, Result};
use crate::output::{LinearGrads, LinearGradsMut, Output};
use crate::request::Request;

impl Engine {
    /// Computes a linear request ([`Request::linear_cross_entropy`]) and puts its gradients into
    /// the caller's slices: those of the hidden states [N, D], the weight [V, D] and the bias
    /// `[V]`, each when given, written over or, with [`LinearGradsMut::add`], added to what they
    /// hold (a weight's gradient accumulated over micro-batches). With none given it computes
    /// the loss only, and skips the backward products. A slice of the wrong length, or one for a
    /// bias the head lacks, is an error before anything is written.
    ///
    /// ```
    /// use xent::{Engine, LinearGradsMut, Request};
    /// let (hidden, weight) = ([0.5_f32, -1.0, 2.0, 0.25], [1.0_f32, 0.0, 0.0, 1.0, 1.0, 1.0]);
    /// let request = Request::linear_cross_entropy(&hidden[..], [2, 2], &weight[..], [3, 2], &[2_i64, 0][..]);
    /// let mut d_weight = vec![0.0_f32; 6];
    /// for _micro_batch in 0..2 {
    ///     let grads = LinearGradsMut { weight: Some(&mut d_weight), add: true, ..Default::default() };
    ///     Engine::cpu().compute_linear_into(&request, grads).unwrap();
    /// }
    /// let once = Engine::cpu().compute(&request.with_grad(true)).unwrap().linear_grads.unwrap();
    /// assert_eq!(d_weight, once.weight.iter().map(|g| 2.0 * g).collect::<Vec<_>>());
    /// ```
    pub fn compute_linear_into(&self, request: &Request, grads: LinearGradsMut) -> Result<Output> {
        let checked = request.check_linear()?;
        let [n, v] = [checked.logits.batch, checked.logits.classes];
        let d = checked.head.dim;
        let has_bias = checked.head.bias.is_some();
        for (what, slice, expected) in [
            ("hidden states' gradient", grads.hidden.as_deref(), n * d),
            ("linear weight's gradient", grads.weight.as_deref(), v * d),
            (
                "linear bias's gradient",
                grads.bias.as_deref(),
                if has_bias { v } else { 0 },
            ),
        ] {
            if let Some(slice) = slice
                && slice.len() != expected
            {
                let reason = if expected == 0 {
                    "the head has no bias".into()
                } else {
                    format!("it holds {} values, and needs {expected}", slice.len())
                };
                return Err(Error::InvalidOption {
                    option: what,
                    reason,
                });
            }
        }
        self.backend.compute_linear(&checked, grads)
    }

    /// [`Engine::compute`] of a linear request: the gradients, when asked for, in new vectors,
    /// allocated once the request is checked.
    pub(super) fn compute_linear(&self, request: &Request) -> Result<Output> {
        let checked = request.check_linear()?;
        if !checked.logits.options.grad {
            return self
                .backend
                .compute_linear(&checked, LinearGradsMut::default());
        }
        let [n, v] = [checked.logits.batch, checked.logits.classes];
        let d = checked.head.dim;
        let mut hidden = vec![0.0; n * d];
        let mut weight = vec![0.0; v * d];
        let mut bias = checked.head.bias.map(|_| vec![0.0; v]);
        let grads = LinearGradsMut {
            hidden: Some(&mut hidden),
            weight: Some(&mut weight),
            bias: bias.as_deref_mut(),
            add: false,
        };
        let mut out = self.backend.compute_linear(&checked, grads)?;
        out.grad = Some(hidden);
        out.linear_grads = Some(LinearGrads { weight, bias });
        Ok(out)
    }
}
