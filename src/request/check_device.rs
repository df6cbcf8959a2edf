//! The check of a device-resident request: the steps every request passes ([`Head::check`]),
//! with the checks of the caller's buffers where a host request checks its values.

use super::check::{Head, TargetKind, target_kind};
use super::checked::{CheckedTarget, ShardPass};
use super::device::{DeviceInput, DeviceRequest, DeviceTarget, IndexType};
use super::kinds::Reduction;
use super::reduce::Scales;
use super::shard::Shard;
use crate::error::{Error, Result};

/// A device-resident request's target, checked.
#[derive(Debug)]
pub(crate) enum CheckedDeviceTarget<'a> {
    /// No target, or one on the host, checked (and class indices encoded) there.
    Host(CheckedTarget<'a>),
    /// B class indices in a buffer of the caller's, `bytes` of it from `offset`; their values
    /// are checked on the device.
    Classes {
        buffer: &'a wgpu::Buffer,
        offset: u64,
        bytes: u64,
        index: IndexType,
    },
    /// A [B, C] f32 target in a buffer of the caller's, from `offset`.
    Dense {
        buffer: &'a wgpu::Buffer,
        offset: u64,
    },
}

/// The rows of a validated device-resident request, whatever holds their values: what its row
/// kernels compute.
#[derive(Debug)]
pub(crate) struct DeviceRows<'a, 'p> {
    /// Its loss, shape, options (a gradient in place is a gradient; a shard's pass has its own)
    /// and class weights.
    pub head: Head<'a>,
    pub target: CheckedDeviceTarget<'a>,
    /// A vocabulary shard's pass, when the request is one.
    pub shard: Option<(Shard, &'p ShardPass)>,
}

/// A validated device-resident request: its rows, and the buffer that holds their values.
#[derive(Debug)]
pub(crate) struct CheckedDevice<'a, 'p> {
    pub rows: DeviceRows<'a, 'p>,
    pub input: DeviceInput<'a>,
}

impl<'a> DeviceRequest<'a> {
    /// Checks the request, or one vocabulary shard's pass of it (see [`Head::for_shard`]), as a
    /// host request is checked; `buffer(what, buffer, offset, bytes)` checks each buffer it
    /// names, where a kernel will bind `bytes` of it from `offset`, by the device's rules. The
    /// values in the caller's buffers are not read: `strict` is refused, and device class
    /// targets are checked by the kernels.
    pub(crate) fn check<'p>(
        &self,
        shard: Option<(Shard, &'p ShardPass)>,
        buffer: impl Fn(&'static str, &wgpu::Buffer, u64, u64) -> Result<()>,
    ) -> Result<CheckedDevice<'a, 'p>> {
        let kind = target_kind_of(&self.target);
        let mut head = Head {
            loss: self.loss,
            shape: self.input.shape,
            options: self.options.with_in_place_grad(),
            weight: self.weight,
            pos_weight: self.pos_weight,
        };
        if let Some((s, pass)) = shard {
            head.for_shard(kind == TargetKind::Classes, s, pass.merged().is_some())?;
        }
        let input = &self.input;
        let elements = head.check(
            kind,
            |_| match head.options.strict {
                true => Err(Error::DeviceBuffer {
                    what: "strict",
                    reason: "strict mode checks values on the host, and device-resident values never come there".into(),
                }),
                false => Ok(()),
            },
            |elements| {
                let bytes = elements as u64 * input.dtype.size() as u64;
                buffer("input", input.buffer, input.offset, bytes.next_multiple_of(16))
            },
        )?;
        let [batch, _] = head.shape;
        let target = device_target(
            self.target,
            &head,
            shard.map(|(s, _)| s),
            elements,
            Some(input.buffer),
            &buffer,
        )?;
        if let Some((_, pass)) = shard {
            pass.check_rows(batch)?;
        }
        Ok(CheckedDevice {
            rows: DeviceRows {
                head,
                target,
                shard,
            },
            input: self.input,
        })
    }
}

/// The kind of a device-resident request's target.
pub(crate) fn target_kind_of(target: &DeviceTarget) -> TargetKind {
    match target {
        DeviceTarget::None => TargetKind::None,
        DeviceTarget::Host(t) => target_kind(t),
        DeviceTarget::Classes { .. } => TargetKind::Classes,
        DeviceTarget::Dense { .. } => TargetKind::Dense,
    }
}

/// Checks a device-resident request's `target` for rows of `head` (of `elements` values), on
/// vocabulary `shard` when it is a shard's: a host target as a host request's, and each buffer
/// it names by `buffer`; a dense target may not be in `input`'s buffer, which the kernels bind
/// read-write.
pub(crate) fn device_target<'a>(
    target: DeviceTarget<'a>,
    head: &Head,
    shard: Option<Shard>,
    elements: usize,
    input: Option<&wgpu::Buffer>,
    buffer: &impl Fn(&'static str, &wgpu::Buffer, u64, u64) -> Result<()>,
) -> Result<CheckedDeviceTarget<'a>> {
    let [batch, _] = head.shape;
    Ok(match target {
        DeviceTarget::None => CheckedDeviceTarget::Host(CheckedTarget::None),
        DeviceTarget::Host(t) => CheckedDeviceTarget::Host(head.check_target(t, shard)?),
        DeviceTarget::Classes {
            buffer: held,
            offset,
            index,
        } => {
            let bytes = (batch as u64 * index.size() as u64).next_multiple_of(4);
            buffer("target", held, offset, bytes)?;
            CheckedDeviceTarget::Classes {
                buffer: held,
                offset,
                bytes,
                index,
            }
        }
        DeviceTarget::Dense {
            buffer: held,
            offset,
        } => {
            buffer(
                "target",
                held,
                offset,
                (elements as u64 * 4).next_multiple_of(16),
            )?;
            if input == Some(held) {
                return Err(Error::DeviceBuffer {
                    what: "target",
                    reason: "is the input's buffer: one dispatch may not bind a buffer both read-write (the input) and read-only (the target); put them in two buffers".into(),
                });
            }
            CheckedDeviceTarget::Dense {
                buffer: held,
                offset,
            }
        }
    })
}

impl DeviceRows<'_, '_> {
    /// The kind of its target.
    pub fn target_kind(&self) -> TargetKind {
        match &self.target {
            CheckedDeviceTarget::Host(t) => t.kind(),
            CheckedDeviceTarget::Classes { .. } => TargetKind::Classes,
            CheckedDeviceTarget::Dense { .. } => TargetKind::Dense,
        }
    }

    /// Whether the reduction's scales are computed on the device: a mean over class targets that
    /// only the device holds, outside a vocabulary shard's passes.
    pub fn device_scales(&self) -> bool {
        matches!(self.target, CheckedDeviceTarget::Classes { .. })
            && self.head.options.reduction == Reduction::Mean
            && self.shard.is_none()
    }

    /// The kernels' scales as the host knows them (see [`Reduce::scales`](super::reduce::Reduce::scales)); 0 where they are
    /// computed on the device ([`DeviceRows::device_scales`]).
    pub fn scales(&self) -> Scales {
        if self.device_scales() {
            return Scales::default();
        }
        let [batch, _] = self.head.shape;
        let (targets, valid_rows) = match &self.target {
            CheckedDeviceTarget::Host(t) => (t.classes(), t.valid_rows(batch)),
            _ => (None, batch),
        };
        self.head.reduce(targets, valid_rows).scales()
    }
}
