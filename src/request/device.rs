//! Device-resident requests: logits (and targets) already in the caller's wgpu buffers, computed
//! into the caller's command encoder, with the results left in buffers on the device.
//!
//! ```no_run
//! # fn main() -> xent::Result<()> {
//! use xent::{DeviceInput, DeviceRequest, DeviceTarget, Dtype, Engine, IndexType, LossKind};
//! # let (device, queue): (wgpu::Device, wgpu::Queue) = unimplemented!();
//! # let (logits, labels): (wgpu::Buffer, wgpu::Buffer) = unimplemented!();
//! let engine = Engine::from_wgpu(device.clone(), queue.clone());
//! let mut request = DeviceRequest::new(
//!     LossKind::CrossEntropy,
//!     DeviceInput { buffer: &logits, offset: 0, shape: [8, 50257], dtype: Dtype::Bf16 },
//!     DeviceTarget::Classes { buffer: &labels, offset: 0, index: IndexType::I64 },
//! );
//! request.options.grad_in_place = true;
//! let mut encoder = device.create_command_encoder(&Default::default());
//! let out = engine.record(&mut encoder, &request)?;
//! queue.submit([encoder.finish()]);
//! let loss = engine.read_loss(&out)?; // blocks; the gradient is now in `logits`
//! # Ok(()) }
//! ```

use super::kinds::{Dtype, LossKind};
use super::options::Options;
use super::shard::Shard;
use super::values::Target;

/// A row-major [B, C] input in a buffer of the caller's.
///
/// The buffer needs `STORAGE` usage (it is bound read-write, and written when the gradient is in
/// place); `offset` is a multiple of the device's `min_storage_buffer_offset_alignment`, and the
/// buffer holds the B·C values from `offset` rounded up to a whole 16 bytes (the kernels read
/// 16-byte words; the padding's values are never used). 16-bit values are packed two to a u32
/// word, the first in the low half, as a `[B, C]` tensor of them is laid out in memory.
#[derive(Clone, Copy, Debug)]
pub struct DeviceInput<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of element [0, 0].
    pub offset: u64,
    /// [B, C].
    pub shape: [usize; 2],
    /// The element type.
    pub dtype: Dtype,
}

/// The integer type of class indices on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexType {
    /// 32-bit signed.
    I32,
    /// 64-bit signed, as PyTorch stores them.
    I64,
}

impl IndexType {
    /// Bytes per index.
    pub fn size(self) -> usize {
        match self {
            IndexType::I32 => 4,
            IndexType::I64 => 8,
        }
    }
}

/// The target of a device-resident request.
#[derive(Clone, Copy, Debug)]
pub enum DeviceTarget<'a> {
    /// No target (entropy).
    None,
    /// A target on the host, checked there and uploaded: class indices, or a [B, C] f32 array.
    Host(Target<'a>),
    /// B class indices in a `STORAGE` buffer at `offset` (aligned as [`DeviceInput::offset`]).
    /// They are checked on the device: a row whose target is neither in [0, C) nor the ignore
    /// index gets a NaN loss and gradient, and [`crate::Engine::read_loss`] or
    /// [`crate::Engine::check_targets`] reports the first such row as
    /// [`crate::Error::TargetOutOfRange`].
    Classes {
        /// The buffer.
        buffer: &'a wgpu::Buffer,
        /// Byte offset of row 0's index.
        offset: u64,
        /// Their integer type.
        index: IndexType,
    },
    /// A row-major [B, C] f32 target (a distribution, or BCE's labels) in a `STORAGE` buffer,
    /// at `offset` and padded as [`DeviceInput`].
    Dense {
        /// The buffer.
        buffer: &'a wgpu::Buffer,
        /// Byte offset of element [0, 0].
        offset: u64,
    },
}

/// A loss computation on device buffers: the counterpart of [`crate::Request`], with the options
/// as plain fields.
#[derive(Clone, Copy, Debug)]
pub struct DeviceRequest<'a> {
    /// The loss.
    pub loss: LossKind,
    /// The input.
    pub input: DeviceInput<'a>,
    /// The target.
    pub target: DeviceTarget<'a>,
    /// Per-class weights (host values, uploaded), of length C.
    pub weight: Option<&'a [f32]>,
    /// BCE's per-class positive weights (host values, uploaded), of length C.
    pub pos_weight: Option<&'a [f32]>,
    /// The options. `strict` is refused (the values are never on the host); `grad_in_place`
    /// writes the gradient over the input buffer, in its dtype.
    pub options: Options,
}

impl<'a> DeviceRequest<'a> {
    /// A request with PyTorch's default options and no weights.
    pub fn new(loss: LossKind, input: DeviceInput<'a>, target: DeviceTarget<'a>) -> Self {
        DeviceRequest {
            loss,
            input,
            target,
            weight: None,
            pos_weight: None,
            options: Options::default(),
        }
    }
}

/// What a device-resident request leaves on the device. Every buffer has `STORAGE | COPY_SRC`
/// usage and is the caller's to keep, read or drop.
///
/// For a vocabulary shard's statistics pass ([`crate::Engine::record_shard_stats`]) `values` holds
/// the statistics, which [`crate::Engine::read_shard_stats`] reads; a shard's gradient pass
/// ([`crate::Engine::record_shard_grad`]) writes only the gradient and the status, and has no
/// `values`.
#[derive(Debug)]
pub struct DeviceOutput {
    /// f32 values: for `Reduction::None`, the unreduced loss (`[B]`, or `[B, C]` for BCE and KL);
    /// for the scalar reductions, each row's term of the scalar (its loss already divided by
    /// the reduction's divisor), whose sum is `loss`. `None` for a vocabulary shard's gradient
    /// pass.
    pub values: Option<wgpu::Buffer>,
    /// The scalar (one f32), for the scalar reductions.
    pub loss: Option<wgpu::Buffer>,
    /// Each row's log-sum-exp (B f32), when asked for.
    pub lse: Option<wgpu::Buffer>,
    /// The gradient, row-major [B, C] in the input's dtype, when asked for and not in place (in
    /// place, it is in the input buffer).
    pub grad: Option<wgpu::Buffer>,
    /// Three u32: the first row whose device class target was out of range (`u32::MAX` for
    /// none), then that target as an i64 (low word first).
    pub status: wgpu::Buffer,
    pub(crate) batch: usize,
    /// The targets' range: C, or a vocabulary shard's total classes.
    pub(crate) classes: usize,
    pub(crate) ignore_index: i64,
    /// For a vocabulary shard's statistics pass (whose `values` hold the statistics), the shard
    /// and the classes it holds.
    pub(crate) shard: Option<(Shard, usize)>,
}
