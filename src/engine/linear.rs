//! Linear requests: cross-entropy on the logits of an output head, with the gradients of the
//! hidden states, the head's weight and its bias returned or put into the caller's slices; and a
//! vocabulary shard of a head's gradients.

use super::Engine;
use crate::error::{Error, Result};
use crate::output::{LinearGrads, LinearGradsMut, Output};
use crate::request::{Request, Shard, ShardedLoss};

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
        checked.check_grads(&grads)?;
        self.backend.compute_linear(&checked, grads)
    }

    /// One vocabulary shard of a linear head's gradients, from the merged loss: `request` and
    /// `shard` as for [`Engine::shard_stats`] (the weight, bias and class weights holding the
    /// shard's V_s classes), and `merged` what [`merge_shards`](crate::merge_shards) gave, whose
    /// scales carry the reduction (the request's own is set aside). Into the slices of `grads`,
    /// each when given, checked, and written or added to as [`Engine::compute_linear_into`]
    /// does: the shard's slices of the head's gradients, dW [V_s, D] and db `[V_s]`, and its
    /// *partial* gradient of the hidden states [N, D], G_s·W_s (G_s the gradient of the shard's
    /// logits). The hidden states' gradient is the sum of every shard's partial one, which the
    /// caller forms with the collective of their choice (an all-reduce), as Megatron-style
    /// tensor-parallel heads do.
    ///
    /// ```
    /// use std::ops::Range;
    /// use xent::{Engine, LinearGradsMut, Options, Request, Shard, merge_shards};
    /// let (n, d, v) = (2, 2, 3);
    /// let (hidden, weight) = ([0.5_f32, -1.0, 2.0, 0.25], [1.0_f32, 0.0, 0.0, 1.0, 1.0, 1.0]);
    /// let targets = [2_i64, 0];
    /// // Classes [0, 2) on one engine, [2, 3) on another, each holding its rows of W.
    /// let shards = [(0..2, Engine::cpu()), (2..3, Engine::reference())];
    /// let on = |c: &Range<usize>| {
    ///     let w = &weight[c.start * d..c.end * d];
    ///     let request = Request::linear_cross_entropy(&hidden[..], [n, d], w, [c.len(), d], &targets[..]);
    ///     (request, Shard { first_class: c.start, total_classes: v })
    /// };
    /// let mut stats = Vec::new();
    /// for (classes, engine) in &shards {
    ///     let (request, shard) = on(classes);
    ///     stats.push(engine.shard_stats(&request, shard)?);
    /// }
    /// let merged = merge_shards(&stats, &targets, None, &Options::default())?;
    /// // Each shard writes its rows of dW; the partial dH are summed (here, added into one buffer).
    /// let (mut d_hidden, mut d_weight) = (vec![0.0_f32; n * d], vec![0.0_f32; v * d]);
    /// for (classes, engine) in &shards {
    ///     let (request, shard) = on(classes);
    ///     let grads = LinearGradsMut {
    ///         hidden: Some(&mut d_hidden),
    ///         weight: Some(&mut d_weight[classes.start * d..classes.end * d]),
    ///         bias: None,
    ///         add: true,
    ///     };
    ///     engine.shard_linear_grad(&request, shard, &merged, grads)?;
    /// }
    /// let whole = Request::linear_cross_entropy(&hidden[..], [n, d], &weight[..], [v, d], &targets[..]);
    /// let want = Engine::reference().compute(&whole.with_grad(true))?;
    /// let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-6);
    /// assert!(close(&[merged.loss.scalar().unwrap()], &[want.loss.scalar().unwrap()]));
    /// assert!(close(&d_hidden, &want.grad.unwrap()));
    /// assert!(close(&d_weight, &want.linear_grads.unwrap().weight));
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn shard_linear_grad(
        &self,
        request: &Request,
        shard: Shard,
        merged: &ShardedLoss,
        grads: LinearGradsMut,
    ) -> Result<()> {
        if request.linear().is_none() {
            return Err(Error::InvalidOption {
                option: "shard",
                reason: "a request without a linear head writes its shard's gradient by \
                         Engine::shard_grad, not Engine::shard_linear_grad"
                    .into(),
            });
        }
        let checked = request.check_linear_shard(shard, merged.grad_pass())?;
        checked.check_grads(&grads)?;
        self.backend.shard_linear_grad(&checked, grads)
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
