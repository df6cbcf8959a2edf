//! What a row kernel is specialized to: everything of a call but its values.

use crate::request::{Dtype, Head, LossKind, Options, Shard, TargetKind};

/// Where a call's buffers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Residence {
    /// The engine's own, filled from the host, with the results read back.
    Host,
    /// The caller's, on the device. With `device_scales`, the reduction's scales are computed
    /// there (a mean over class targets only the device holds).
    Device { device_scales: bool },
}

/// What a row kernel is specialized to: everything of a request but its values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub loss: LossKind,
    pub dtype: Dtype,
    pub batch: usize,
    pub classes: usize,
    pub target: TargetKind,
    pub weight: bool,
    pub pos_weight: bool,
    pub options: Options,
    /// The reduction's scales are read from the `scales` binding, where a pass on the device
    /// wrote them, rather than from the params.
    pub device_scales: bool,
    /// The gradient of 16-bit input is written in the input's dtype, packed, rather than as f32.
    pub grad_packed: bool,
    /// A vocabulary shard's pass: its rows' total classes.
    pub total_classes: Option<usize>,
}

impl Spec {
    /// The specialization of a checked request of `head`, with input of `dtype` and a target of
    /// `target`'s kind, on vocabulary `shard` when it is a shard's, its buffers where `residence`
    /// says: a host call's gradient is f32, a device call's in the input's dtype.
    pub fn new(
        head: &Head,
        dtype: Dtype,
        target: TargetKind,
        shard: Option<Shard>,
        residence: Residence,
    ) -> Self {
        let [batch, classes] = head.shape;
        let (device_scales, grad_packed) = match residence {
            Residence::Host => (false, false),
            Residence::Device { device_scales } => {
                (device_scales, head.options.grad && dtype != Dtype::F32)
            }
        };
        Spec {
            loss: head.loss,
            dtype,
            batch,
            classes,
            target,
            weight: head.weight.is_some(),
            pos_weight: head.pos_weight.is_some(),
            options: head.options,
            device_scales,
            grad_packed,
            total_classes: shard.map(|s| s.total_classes),
        }
    }

    /// Bytes of one element of the gradient the kernels write: 2 packed, 4 as f32.
    pub fn grad_size(&self) -> u64 {
        if self.grad_packed { 2 } else { 4 }
    }
}
