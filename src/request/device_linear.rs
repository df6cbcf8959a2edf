//! A fused linear cross-entropy on the caller's wgpu buffers: H, W, b and the targets on the
//! device, the passes recorded into the caller's encoder, the gradients written into new buffers
//! or into (or added to) the caller's.
//!
//! ```no_run
//! # fn main() -> xent::Result<()> {
//! use xent::{DeviceGrad, DeviceInput, DeviceLinearRequest, DeviceTarget, Dtype, Engine, IndexType};
//! # let (device, queue): (wgpu::Device, wgpu::Queue) = unimplemented!();
//! # let (hidden, head, labels, head_grad): (wgpu::Buffer, wgpu::Buffer, wgpu::Buffer, wgpu::Buffer) = unimplemented!();
//! let engine = Engine::from_wgpu(device.clone(), queue.clone());
//! let mut request = DeviceLinearRequest::new(
//!     DeviceInput { buffer: &hidden, offset: 0, shape: [4096, 2048], dtype: Dtype::F32 },
//!     DeviceInput { buffer: &head, offset: 0, shape: [32000, 2048], dtype: Dtype::Bf16 },
//!     DeviceTarget::Classes { buffer: &labels, offset: 0, index: IndexType::I64 },
//! );
//! // dH over H; dW added to the f32 gradient a micro-batch loop accumulates.
//! request.grads.hidden = DeviceGrad::InPlace;
//! request.grads.weight = DeviceGrad::Into { buffer: &head_grad, offset: 0, add: true };
//! let mut encoder = device.create_command_encoder(&Default::default());
//! let out = engine.record_linear(&mut encoder, &request)?;
//! queue.submit([encoder.finish()]);
//! let loss = engine.read_loss(&out.loss)?;
//! # Ok(()) }
//! ```

use super::check::{Head, TargetKind};
use super::check_device::{DeviceRows, device_target, target_kind_of};
use super::checked::ShardPass;
use super::device::{DeviceInput, DeviceOutput, DeviceTarget};
use super::kinds::{Dtype, LossKind};
use super::options::Options;
use super::shard::Shard;
use crate::error::{Error, Result};

/// f32 values `[V]` in a buffer of the caller's, from `offset` (aligned as
/// [`DeviceInput::offset`]).
#[derive(Clone, Copy, Debug)]
pub struct DeviceVector<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the first value.
    pub offset: u64,
}

/// Where one gradient of a device-resident linear head goes.
#[derive(Clone, Copy, Debug, Default)]
pub enum DeviceGrad<'a> {
    /// Not computed.
    #[default]
    Skip,
    /// Into a new f32 buffer of the output's.
    New,
    /// Into the caller's f32 buffer from `offset` (aligned as [`DeviceInput::offset`]): written
    /// over, or with `add` added to what it holds, as gradient accumulation over micro-batches
    /// needs.
    Into {
        /// The buffer.
        buffer: &'a wgpu::Buffer,
        /// Byte offset of the first value.
        offset: u64,
        /// Add to what the buffer holds rather than write over it.
        add: bool,
    },
    /// The hidden states' gradient only: over H, in its buffer (H must be f32).
    InPlace,
}

/// Where a device-resident linear head's gradients go: those of H [N, D], W [V, D] and b `[V]`.
/// With all three skipped, only the loss is computed, without the backward products.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceLinearGrads<'a> {
    /// dH.
    pub hidden: DeviceGrad<'a>,
    /// dW.
    pub weight: DeviceGrad<'a>,
    /// db (only for a head with a bias).
    pub bias: DeviceGrad<'a>,
}

/// Cross-entropy on the logits H·Wᵀ + b of an output head on device buffers: the counterpart of
/// [`Request::linear_cross_entropy`](crate::Request::linear_cross_entropy), with the options as
/// plain fields. H [N, D] and W [V, D] are each f32, f16 or bf16, laid out as
/// [`DeviceInput`] says (16-bit values packed two to a word); their buffers need `STORAGE`.
#[derive(Clone, Copy, Debug)]
pub struct DeviceLinearRequest<'a> {
    /// H, [N, D].
    pub hidden: DeviceInput<'a>,
    /// W, [V, D]: one row per class.
    pub weight: DeviceInput<'a>,
    /// b, `[V]` f32.
    pub bias: Option<DeviceVector<'a>>,
    /// The target: N class indices, or an [N, V] distribution.
    pub target: DeviceTarget<'a>,
    /// Per-class weights (host values, uploaded), of length V.
    pub class_weight: Option<&'a [f32]>,
    /// Cross-entropy's options. `strict` is refused; `grad` and `grad_in_place` are set aside
    /// (`grads` says which gradients are computed and where they go).
    pub options: Options,
    /// The most bytes of logits a chunk of rows holds; see
    /// [`Request::linear_chunk_bytes`](crate::Request::linear_chunk_bytes).
    pub chunk_bytes: Option<usize>,
    /// Where the gradients go.
    pub grads: DeviceLinearGrads<'a>,
}

impl<'a> DeviceLinearRequest<'a> {
    /// A request with PyTorch's default options, no bias, no class weights, and no gradients.
    pub fn new(hidden: DeviceInput<'a>, weight: DeviceInput<'a>, target: DeviceTarget<'a>) -> Self {
        DeviceLinearRequest {
            hidden,
            weight,
            bias: None,
            target,
            class_weight: None,
            options: Options::default(),
            chunk_bytes: None,
            grads: DeviceLinearGrads::default(),
        }
    }
}

/// What a device-resident linear head leaves on the device.
#[derive(Debug)]
pub struct DeviceLinearOutput {
    /// The loss, lse and target status, as for a [`DeviceRequest`](crate::DeviceRequest) (its
    /// `grad` is `None`): read it with [`Engine::read_loss`](crate::Engine::read_loss).
    pub loss: DeviceOutput,
    /// dH [N, D] f32: a new buffer, the caller's, or H's own buffer (in place).
    pub hidden: Option<wgpu::Buffer>,
    /// dW [V, D] f32: a new buffer, or the caller's.
    pub weight: Option<wgpu::Buffer>,
    /// db `[V]` f32: a new buffer, or the caller's.
    pub bias: Option<wgpu::Buffer>,
}

/// A gradient's destination, checked: a new buffer, or the caller's from a byte offset, written
/// or added to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GradTo<'a> {
    New,
    Into {
        buffer: &'a wgpu::Buffer,
        offset: u64,
        add: bool,
    },
}

/// A checked device-resident linear head: the rows of its logits, and the operands of the
/// products that make them.
#[derive(Debug)]
pub(crate) struct CheckedDeviceLinear<'a, 'p> {
    pub rows: DeviceRows<'a, 'p>,
    pub hidden: DeviceInput<'a>,
    pub weight: DeviceInput<'a>,
    pub bias: Option<DeviceVector<'a>>,
    /// dH, dW and db, each when computed.
    pub grads: [Option<GradTo<'a>>; 3],
    pub chunk_bytes: Option<usize>,
}

impl<'a> DeviceLinearRequest<'a> {
    /// Checks the request (or one vocabulary shard's pass of it: W and b hold the shard's
    /// classes) as a host linear request is checked; `buffer(what, buffer, offset, bytes)`
    /// checks each buffer it names by the device's rules.
    pub(crate) fn check<'p>(
        &self,
        shard: Option<(Shard, &'p ShardPass)>,
        buffer: impl Fn(&'static str, &wgpu::Buffer, u64, u64) -> Result<()>,
    ) -> Result<CheckedDeviceLinear<'a, 'p>> {
        let [rows, dim] = self.hidden.shape;
        let [classes, weight_dim] = self.weight.shape;
        let kind = target_kind_of(&self.target);
        let g = &self.grads;
        let mut options = self.options;
        options.grad = [g.hidden, g.weight, g.bias]
            .iter()
            .any(|g| !matches!(g, DeviceGrad::Skip));
        options.grad_in_place = false;
        let mut head = Head {
            loss: LossKind::CrossEntropy,
            shape: [rows, classes],
            options,
            weight: self.class_weight,
            pos_weight: None,
        };
        if let Some((s, pass)) = shard {
            head.for_shard(kind == TargetKind::Classes, s, pass.merged().is_some())?;
        }
        let elements = head.check(
            kind,
            |_| {
                if weight_dim != dim {
                    return Err(Error::InvalidOption {
                        option: "linear_weight",
                        reason: format!(
                            "the weight's rows have {weight_dim} columns, and the hidden states' {dim}"
                        ),
                    });
                }
                let operand = |what, input: &DeviceInput, count: usize| {
                    let bytes = count
                        .checked_mul(input.dtype.size())
                        .ok_or_else(|| too_large(what, input.shape))?;
                    buffer(what, input.buffer, input.offset, (bytes as u64).next_multiple_of(4))
                };
                operand("input", &self.hidden, rows.saturating_mul(dim))?;
                operand("linear_weight", &self.weight, classes.saturating_mul(dim))?;
                if let Some(b) = self.bias {
                    buffer("linear_bias", b.buffer, b.offset, classes as u64 * 4)?;
                }
                Ok(())
            },
            |_| match head.options.strict {
                true => Err(Error::DeviceBuffer {
                    what: "strict",
                    reason: "strict mode checks values on the host, and device-resident values never come there".into(),
                }),
                false => Ok(()),
            },
        )?;
        let grads = self.check_grads([rows, classes, dim], &buffer)?;
        let target = device_target(
            self.target,
            &head,
            shard.map(|(s, _)| s),
            elements,
            None,
            &buffer,
        )?;
        if let Some((_, pass)) = shard {
            pass.check_rows(rows)?;
        }
        // The row kernels leave G over the logits, which the gradients' products read.
        head.options.grad_in_place = head.options.grad;
        Ok(CheckedDeviceLinear {
            rows: DeviceRows {
                head,
                target,
                shard,
            },
            hidden: self.hidden,
            weight: self.weight,
            bias: self.bias,
            grads,
            chunk_bytes: self.chunk_bytes,
        })
    }

    /// Each gradient's destination, checked: the caller's buffers by `buffer`, dH in place only
    /// over f32 hidden states, db only for a head with a bias.
    fn check_grads(
        &self,
        [rows, classes, dim]: [usize; 3],
        buffer: &impl Fn(&'static str, &wgpu::Buffer, u64, u64) -> Result<()>,
    ) -> Result<[Option<GradTo<'a>>; 3]> {
        let g = &self.grads;
        let wanted = [
            (
                "hidden states' gradient",
                g.hidden,
                rows.saturating_mul(dim),
            ),
            (
                "linear weight's gradient",
                g.weight,
                classes.saturating_mul(dim),
            ),
            ("linear bias's gradient", g.bias, classes),
        ];
        let mut checked = [None; 3];
        for (i, (what, grad, values)) in wanted.into_iter().enumerate() {
            let fail = |reason: &str| Error::DeviceBuffer {
                what,
                reason: reason.into(),
            };
            checked[i] = match grad {
                DeviceGrad::Skip => None,
                _ if i == 2 && self.bias.is_none() => {
                    return Err(fail("the head has no bias"));
                }
                DeviceGrad::New => Some(GradTo::New),
                DeviceGrad::Into {
                    buffer: held,
                    offset,
                    add,
                } => {
                    let bytes = (values as u64).saturating_mul(4);
                    buffer(what, held, offset, bytes)?;
                    if let Some(operand) = self.operand_in(held) {
                        return Err(fail(&format!(
                            "is in the buffer of {operand}, which the products read while they \
                             write it; give it a buffer of its own"
                        )));
                    }
                    Some(GradTo::Into {
                        buffer: held,
                        offset,
                        add,
                    })
                }
                DeviceGrad::InPlace if i != 0 => {
                    return Err(fail(
                        "only the hidden states' gradient can be written in place",
                    ));
                }
                DeviceGrad::InPlace if self.hidden.dtype != Dtype::F32 => {
                    return Err(fail(
                        "in place needs f32 hidden states (the gradient is f32); give it a buffer of its own",
                    ));
                }
                DeviceGrad::InPlace if self.weight.buffer == self.hidden.buffer => {
                    return Err(fail(
                        "in place needs H in a buffer of its own: W is in H's buffer, and dH's \
                         product reads W while it writes H",
                    ));
                }
                DeviceGrad::InPlace => Some(GradTo::Into {
                    buffer: self.hidden.buffer,
                    offset: self.hidden.offset,
                    add: false,
                }),
            };
        }
        Ok(checked)
    }
}

impl DeviceLinearRequest<'_> {
    /// Which of the buffers the passes read (H, W, b, the targets) is `buffer`, if any.
    fn operand_in(&self, buffer: &wgpu::Buffer) -> Option<&'static str> {
        let target = match self.target {
            DeviceTarget::Classes { buffer, .. } | DeviceTarget::Dense { buffer, .. } => {
                Some(buffer)
            }
            DeviceTarget::None | DeviceTarget::Host(_) => None,
        };
        [
            ("the hidden states", Some(self.hidden.buffer)),
            ("the linear weight", Some(self.weight.buffer)),
            ("the linear bias", self.bias.map(|b| b.buffer)),
            ("the target", target),
        ]
        .into_iter()
        .find_map(|(name, held)| (held == Some(buffer)).then_some(name))
    }
}

fn too_large(what: &'static str, [rows, columns]: [usize; 2]) -> Error {
    Error::TooLarge {
        what,
        reason: format!("[{rows}, {columns}] has more bytes than memory can address"),
    }
}
