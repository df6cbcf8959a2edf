//! Device-resident calls: requests on the caller's wgpu buffers, recorded into the caller's
//! encoder, and the reads of what they leave on the device. Only a backend with a wgpu device
//! answers them.

use super::Engine;
use crate::error::{Error, Result};
use crate::gpu::GpuEngine;
use crate::request::{
    DeviceLinearGrads, DeviceLinearOutput, DeviceLinearRequest, DeviceOutput, DeviceRequest,
    ROW_STATS, Shard, ShardPass, ShardStats, ShardedLoss,
};

impl Engine {
    /// Records a request on device buffers into the caller's `encoder`: every pass, on buffers of
    /// its own and the caller's, with nothing read back. The results are in the returned
    /// buffers once the caller has submitted the encoder (and the gradient, in place, in the
    /// input buffer). Shapes, options, buffer usages, offsets, sizes and aliasing are checked
    /// here, so that the passes recorded are valid; device class targets are checked on the
    /// device (see [`Engine::check_targets`]). Only on a GPU engine, and with the caller's
    /// buffers on its device ([`Engine::from_wgpu`]). After an `Err`, some passes may already
    /// be in `encoder`: drop it rather than submit it.
    pub fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceRequest,
    ) -> Result<DeviceOutput> {
        self.gpu_engine()?.record(encoder, request, None)
    }

    /// [`Engine::record`] into an encoder of the engine's own, submitted at once.
    pub fn submit(&self, request: &DeviceRequest) -> Result<DeviceOutput> {
        self.gpu_engine()?.submit(request)
    }

    /// [`Engine::shard_stats`] on device buffers, recorded into `encoder` as [`Engine::record`]
    /// records a request: `request` is cross-entropy on logits on the shard's columns
    /// ([B, C_s], with the weights of those classes) against the batch's class indices over all
    /// `shard.total_classes`, on the host or the device; its reduction, lse and gradient options
    /// are set aside. Once the encoder is submitted, [`Engine::read_shard_stats`] reads the
    /// statistics for [`merge_shards`](crate::merge_shards), a few numbers per row: the logits
    /// never leave the device.
    pub fn record_shard_stats(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceRequest,
        shard: Shard,
    ) -> Result<DeviceOutput> {
        self.gpu_engine()?
            .record(encoder, request, Some((shard, &ShardPass::Stats)))
    }

    /// Blocks until the device is done, then reads what [`Engine::record_shard_stats`] left on
    /// it; a device class target out of range is [`Error::TargetOutOfRange`], as
    /// [`Engine::check_targets`] says.
    pub fn read_shard_stats(&self, out: &DeviceOutput) -> Result<ShardStats> {
        let (Some((shard, classes)), Some(values)) = (out.shard, &out.values) else {
            return Err(Error::DeviceBuffer {
                what: "values",
                reason: "are not a vocabulary shard's statistics (from record_shard_stats)".into(),
            });
        };
        let bytes = (out.batch * ROW_STATS * 4) as u64;
        let read = self
            .gpu_engine()?
            .read_buffers(&[(&out.status, 0..12), (values, 0..bytes)])?;
        target_status(out, &read[0])?;
        let rows: Vec<f32> = bytemuck::pod_collect_to_vec(&read[1]);
        Ok(ShardStats::from_rows(shard, classes, &rows))
    }

    /// [`Engine::shard_grad`] on device buffers, recorded into `encoder`: `request` and `shard` as
    /// for [`Engine::record_shard_stats`], and `merged` what [`merge_shards`](crate::merge_shards)
    /// gave, whose scales carry the reduction. The shard's slice of the gradient goes to
    /// [`DeviceOutput::grad`], or over the input in its dtype with `grad_in_place`.
    pub fn record_shard_grad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceRequest,
        shard: Shard,
        merged: &ShardedLoss,
    ) -> Result<DeviceOutput> {
        self.gpu_engine()?
            .record(encoder, request, Some((shard, &merged.grad_pass())))
    }

    /// A fused linear cross-entropy on device buffers ([`DeviceLinearRequest`]), recorded into
    /// `encoder` as [`Engine::record`] records a request: the logits H·Wᵀ + b are made a chunk
    /// of rows at a time in one buffer of the engine's, never whole, and the gradients go where
    /// `request.grads` says (new buffers, the caller's, added to, or dH over H). Read the loss
    /// with [`Engine::read_loss`] on [`DeviceLinearOutput::loss`].
    pub fn record_linear(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceLinearRequest,
    ) -> Result<DeviceLinearOutput> {
        self.gpu_engine()?
            .record_linear_request(encoder, request, None)
    }

    /// [`Engine::record_shard_stats`] for a linear head whose weight (and bias) hold the shard's
    /// classes: read the statistics with [`Engine::read_shard_stats`] on
    /// [`DeviceLinearOutput::loss`]. The gradients are not computed.
    pub fn record_linear_shard_stats(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceLinearRequest,
        shard: Shard,
    ) -> Result<DeviceLinearOutput> {
        let request = DeviceLinearRequest {
            grads: DeviceLinearGrads::default(),
            ..*request
        };
        self.gpu_engine()?.record_linear_request(
            encoder,
            &request,
            Some((shard, &ShardPass::Stats)),
        )
    }

    /// [`Engine::record_shard_grad`] for a linear head whose weight (and bias) hold the shard's
    /// classes: the shard's dW and db, and its part of dH (which the caller sums over the
    /// shards), where `request.grads` says.
    pub fn record_linear_shard_grad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceLinearRequest,
        shard: Shard,
        merged: &ShardedLoss,
    ) -> Result<DeviceLinearOutput> {
        self.gpu_engine()?.record_linear_request(
            encoder,
            request,
            Some((shard, &merged.grad_pass())),
        )
    }

    /// Blocks until the device is done, then returns a device-resident call's scalar loss; the
    /// first out-of-range device class target is an error, as [`Engine::check_targets`] says.
    pub fn read_loss(&self, out: &DeviceOutput) -> Result<f32> {
        let Some(loss) = &out.loss else {
            self.check_targets(out)?;
            return Err(Error::DeviceBuffer {
                what: "loss",
                reason: "there is no scalar (reduction none, or a vocabulary shard's pass, whose loss the merge gives); read the values buffer".into(),
            });
        };
        // The status and the loss in one read, so one wait.
        let bytes = self
            .gpu_engine()?
            .read_buffers(&[(&out.status, 0..12), (loss, 0..4)])?;
        target_status(out, &bytes[0])?;
        let loss = &bytes[1];
        Ok(f32::from_le_bytes([loss[0], loss[1], loss[2], loss[3]]))
    }

    /// Blocks until the device is done, then gives [`Error::TargetOutOfRange`] for the first row
    /// whose device class target was neither in [0, C) nor the ignore index (that row's loss and
    /// gradient are NaN).
    pub fn check_targets(&self, out: &DeviceOutput) -> Result<()> {
        target_status(out, &self.read_buffer(&out.status, 0..12)?)
    }

    /// Blocks until the device is done, then copies bytes `range` of `buffer` (with `COPY_SRC`
    /// usage) to the host: for reading a device-resident call's buffers.
    pub fn read_buffer(
        &self,
        buffer: &wgpu::Buffer,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>> {
        self.gpu_engine()?.read_buffer(buffer, range)
    }

    /// The wgpu device and queue of a GPU engine (the caller's, for [`Engine::from_wgpu`]), for
    /// making the buffers of device-resident requests; `None` on the CPU.
    pub fn wgpu(&self) -> Option<(&wgpu::Device, &wgpu::Queue)> {
        self.backend.gpu().map(GpuEngine::wgpu)
    }

    fn gpu_engine(&self) -> Result<&GpuEngine> {
        self.backend.gpu().ok_or_else(|| Error::DeviceBuffer {
            what: "engine",
            reason: format!(
                "{} has no wgpu device; device-resident requests need a GPU engine",
                self.info.adapter
            ),
        })
    }
}

/// What a device-resident call's status words say: `Ok` when every device class target was
/// valid, else the first bad row and its target.
fn target_status(out: &DeviceOutput, bytes: &[u8]) -> Result<()> {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    match word(0) {
        u32::MAX => Ok(()),
        row => Err(Error::TargetOutOfRange {
            row: row as usize,
            target: (u64::from(word(8)) << 32 | u64::from(word(4))) as i64,
            classes: out.classes,
            ignore_index: out.ignore_index,
        }),
    }
}
