//! Host calls: a request on the caller's slices, checked, computed by the backend, and its
//! output returned; and a vocabulary shard's two passes.

use super::Engine;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::request::{Request, Shard, ShardPass, ShardStats, ShardedLoss};

impl Engine {
    /// Checks a request, then computes it on this engine's device. The gradient, when asked for,
    /// comes back in [`Output::grad`].
    ///
    /// A linear request ([`Request::linear_cross_entropy`]) returns the gradient of its hidden
    /// states in [`Output::grad`] and those of its head in [`Output::linear_grads`].
    pub fn compute(&self, request: &Request) -> Result<Output> {
        if request.linear().is_some() {
            return self.compute_linear(request);
        }
        let checked = request.check()?;
        let mut grad = vec![
            0.0;
            if checked.options.grad {
                checked.elements()
            } else {
                0
            }
        ];
        let mut out = self
            .backend
            .compute(&checked, checked.options.grad.then_some(&mut grad[..]))?;
        out.grad = checked.options.grad.then_some(grad);
        Ok(out)
    }

    /// Computes a request and its gradient, writing the gradient (row-major [B, C] f32) into
    /// `grad` rather than a new vector.
    ///
    /// ```
    /// use xent::{Engine, Request};
    /// let logits = [2.0_f32, 1.0, 0.1];
    /// let mut grad = [0.0_f32; 3];
    /// Engine::cpu()
    ///     .compute_into(&Request::cross_entropy(&logits[..], [1, 3], &[0_i64][..]), &mut grad)
    ///     .unwrap();
    /// assert!(grad[0] < 0.0 && grad[1] > 0.0); // softmax − one-hot
    /// assert!(grad.iter().sum::<f32>().abs() < 1e-6);
    /// ```
    pub fn compute_into(&self, request: &Request, grad: &mut [f32]) -> Result<Output> {
        let checked = request.with_grad(true).check()?;
        checked.check_grad(grad)?;
        self.backend.compute(&checked, Some(grad))
    }

    /// Computes a request on the values of `logits` and writes its gradient over them, for a
    /// training step that needs the logits no more. The request names the loss, the shape, the
    /// target and the options, and is built over an empty input (`Input::F32(&[])`, or
    /// [`Request::with_input`]): its input is `logits`, checked as [`Engine::compute`] checks an
    /// input before anything is written, so an error leaves `logits` as they were. The gradient
    /// and the output are those of [`Engine::compute_into`], bit for bit; [`Output::grad`] is
    /// `None`.
    ///
    /// On the fast CPU path the gradient needs no memory of the batch's size (at most 1 MiB, or
    /// one row, beside the logits); a GPU writes it over its uploaded copy of the logits, and the
    /// reference into a buffer of its own, then each copies it into `logits`.
    ///
    /// ```
    /// use xent::{Engine, Input, Request};
    /// let mut logits = vec![2.0_f32, 1.0, 0.1, 0.5, 2.5, 0.3];
    /// let targets = [0_i64, 1];
    /// let request = Request::cross_entropy(Input::F32(&[]), [2, 3], &targets[..]);
    /// let out = Engine::cpu().compute_in_place(&request, &mut logits).unwrap();
    /// assert!((out.loss.scalar().unwrap() - 0.3185).abs() < 1e-3);
    /// assert!(logits[0] < 0.0 && logits[1] > 0.0); // (softmax − one-hot) / 2
    /// ```
    pub fn compute_in_place(&self, request: &Request, logits: &mut [f32]) -> Result<Output> {
        let checked = request.check_in_place(logits)?;
        self.backend.compute_in_place(checked, logits)
    }

    /// One vocabulary shard's statistics: `request` is cross-entropy on logits on the shard's
    /// columns ([B, C_s], with the weights of those classes) against the batch's class indices
    /// over all `shard.total_classes`; its reduction, lse and gradient options are set aside.
    /// The result goes to [`merge_shards`](crate::merge_shards) with the other shards'.
    ///
    /// A linear request ([`Request::linear_cross_entropy`]) is a shard of a head when its
    /// weight (and bias, and class weights) hold the head's classes
    /// [`first_class`, `first_class` + V_s), V_s its weight's rows; its targets are the whole
    /// head's class indices. Its statistics are those of its logits H·W_sᵀ + b_s, computed a
    /// chunk of rows at a time as [`Engine::compute`] computes them; its gradients are
    /// [`Engine::shard_linear_grad`]'s.
    pub fn shard_stats(&self, request: &Request, shard: Shard) -> Result<ShardStats> {
        let (classes, rows) = if request.linear().is_some() {
            let checked = request.check_linear_shard(shard, ShardPass::Stats)?;
            let rows = self.backend.shard_linear_stats(&checked)?;
            (checked.logits.classes, rows)
        } else {
            let checked = request.check_shard(shard, ShardPass::Stats)?;
            (checked.classes, self.backend.shard_stats(&checked)?)
        };
        Ok(ShardStats::from_rows(shard, classes, &rows))
    }

    /// One vocabulary shard's slice of the gradient ([B, C_s], row-major) of the merged loss:
    /// `request` and `shard` as for [`Engine::shard_stats`], and `merged` what
    /// [`merge_shards`](crate::merge_shards) gave, whose scales carry the reduction (the
    /// request's own is set aside). A linear request's shard has gradients of its head and
    /// hidden states instead: [`Engine::shard_linear_grad`].
    pub fn shard_grad(
        &self,
        request: &Request,
        shard: Shard,
        merged: &ShardedLoss,
        grad: &mut [f32],
    ) -> Result<()> {
        if request.linear().is_some() {
            return Err(Error::InvalidOption {
                option: "shard",
                reason: "a linear request's shard writes the gradients of its head and hidden \
                         states, by Engine::shard_linear_grad, not Engine::shard_grad"
                    .into(),
            });
        }
        let checked = request.check_shard(shard, merged.grad_pass())?;
        checked.check_grad(grad)?;
        self.backend.shard_grad(&checked, grad)
    }
}
