//! A linear request from the host on a GPU: H, W and b uploaded once as they are (16-bit values
//! stay packed), the passes of `linear_record.rs` recorded on them, and the loss and gradients
//! read back into the caller's slices. The logits chunk is the engine's pooled buffer, of the
//! request's byte budget; the gradients' buffers are the call's own.

use super::GpuEngine;
use super::chunk::WORD_BYTES;
use super::gemm::MAX_DEPTH;
use super::linear_record::class_blocks;
use super::resident::check_buffer;
use super::timing::Timing;
use crate::error::{Error, Result};
use crate::output::{KernelTime, LinearGradsMut, Loss, Output};
use crate::request::{
    CheckedDeviceLinear, CheckedDeviceTarget, CheckedLinear, DeviceInput, DeviceLinearOutput,
    DeviceLinearRequest, DeviceRows, DeviceVector, GradTo, Input, ROW_STATS, Shard, ShardPass,
    linear_chunk_rows,
};

/// What a host call uploads: H, W and b, and the gradients' buffers that start from the
/// caller's values (to be added to).
struct Uploaded {
    hidden: wgpu::Buffer,
    weight: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
    grads: [Option<wgpu::Buffer>; 3],
}

impl GpuEngine {
    /// Computes a checked linear request, putting its gradients into the slices of `grads`
    /// (written, or added to with `grads.add`); with `timed`, the kernel time comes back too.
    /// For a vocabulary shard's statistics pass the loss is each row's statistics,
    /// `ROW_STATS` values a row.
    pub fn compute_linear(
        &self,
        req: &CheckedLinear,
        grads: LinearGradsMut,
        timed: bool,
    ) -> Result<(Output, Option<KernelTime>)> {
        let mut ws = self.workspace();
        self.ctx.scoped("linear cross-entropy", || {
            let LinearGradsMut {
                hidden,
                weight,
                bias,
                add,
            } = grads;
            let mut slices = [hidden, weight, bias];
            let n = req.logits.batch;
            let up = self.upload_head(req, &slices, add)?;
            let wanted = [0, 1, 2].map(|i| slices[i].is_some());
            let checked = device_request(req, &up, wanted);
            let mut timing =
                Timing::new(&self.ctx, timed, linear_passes(&checked, &self.ctx.limits));
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            let out =
                self.record_linear(&mut encoder, &mut timing, &checked, &mut ws.logits, false)?;
            self.ctx.queue.submit([encoder.finish()]);
            let time = timing.finish(&self.ctx)?;
            let unreduced = out.loss.loss.is_none();
            let stats = req.logits.shard.is_some() && unreduced;
            let row_values = if stats { n * ROW_STATS } else { n };
            let mut reads = Vec::new();
            if let Some(loss) = &out.loss.loss {
                reads.push((loss, 0..4));
            } else if let Some(values) = &out.loss.values {
                reads.push((values, 0..row_values as u64 * 4));
            }
            if let Some(lse) = &out.loss.lse {
                reads.push((lse, 0..n as u64 * 4));
            }
            let read = self.read_buffers(&reads)?;
            for (buffer, slice) in [&out.hidden, &out.weight, &out.bias]
                .into_iter()
                .zip(&mut slices)
            {
                if let (Some(buffer), Some(slice)) = (buffer, slice.as_deref_mut()) {
                    self.read_into(buffer, slice)?;
                }
            }
            let floats = |bytes: &Vec<u8>| bytemuck::pod_collect_to_vec::<u8, f32>(bytes);
            let loss = match (&out.loss.loss, read.first()) {
                (Some(_), _) if req.logits.divisors().is_none() => Loss::Scalar(0.0),
                (Some(_), Some(bytes)) => Loss::Scalar(floats(bytes)[0]),
                (None, bytes) => Loss::Unreduced {
                    values: bytes.map(floats).unwrap_or_default(),
                    shape: vec![row_values],
                },
                (Some(_), None) => unreachable!("the loss was read"),
            };
            let output = Output {
                loss,
                lse: out
                    .loss
                    .lse
                    .as_ref()
                    .map(|_| floats(read.last().expect("the lse was read"))),
                grad: None,
                valid_rows: req.logits.valid_rows,
                linear_grads: None,
            };
            Ok((output, time))
        })
    }

    /// Times the products of a linear request alone, chunk by chunk as a call runs them: the
    /// logits' product, and with `backward` those of the three gradients (over the logits in
    /// place of G). H and W are uploaded first, untimed.
    pub fn linear_probe(&self, req: &CheckedLinear, backward: bool) -> Result<KernelTime> {
        let mut ws = self.workspace();
        self.ctx.scoped("linear probe", || {
            let up = self.upload_head(req, &[None, None, None], false)?;
            let bias = req.head.bias.is_some();
            let checked = device_request(req, &up, [backward, backward, backward && bias]);
            let mut timing =
                Timing::new(&self.ctx, true, linear_passes(&checked, &self.ctx.limits));
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            self.record_linear(&mut encoder, &mut timing, &checked, &mut ws.logits, true)?;
            self.ctx.queue.submit([encoder.finish()]);
            timing.finish(&self.ctx)?.ok_or_else(|| Error::Wgpu {
                during: "linear probe",
                message: "the products were not timed".into(),
            })
        })
    }

    /// Uploads H, W and b as they are, and where gradients are added to the caller's slices,
    /// those slices into the buffers the products add to.
    fn upload_head(
        &self,
        req: &CheckedLinear,
        slices: &[Option<&mut [f32]>; 3],
        add: bool,
    ) -> Result<Uploaded> {
        let whole = |input: Input, what| self.buffer_with(what, input.bytes(0..input.len()));
        let hidden = whole(req.head.hidden, "hidden states")?;
        let weight = whole(req.head.weight, "linear weight")?;
        let bias = match req.head.bias {
            Some(b) => Some(self.buffer_with("linear bias", bytemuck::cast_slice(b))?),
            None => None,
        };
        let mut grads = [None, None, None];
        if add {
            for (grad, slice) in grads.iter_mut().zip(slices) {
                if let Some(old) = slice.as_deref() {
                    let bytes = bytemuck::cast_slice(old);
                    *grad = Some(self.buffer_with("xent linear gradient", bytes)?);
                }
            }
        }
        Ok(Uploaded {
            hidden,
            weight,
            bias,
            grads,
        })
    }

    /// A STORAGE | COPY_SRC buffer holding `bytes`, padded to whole words.
    fn buffer_with(&self, label: &'static str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        let size = (bytes.len() as u64)
            .next_multiple_of(WORD_BYTES)
            .max(WORD_BYTES);
        let limit = self.ctx.limits.max_buffer_size;
        if size > limit {
            return Err(Error::TooLarge {
                what: label,
                reason: format!("{size} bytes, over the device's {limit}-byte buffer limit"),
            });
        }
        let buffer = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        // Mapped ranges are whole 4-byte words: an odd count of 16-bit values is padded.
        let padded: std::borrow::Cow<[u8]> = if bytes.len().is_multiple_of(4) {
            bytes.into()
        } else {
            let mut whole = bytes.to_vec();
            whole.resize(bytes.len().next_multiple_of(4), 0);
            whole.into()
        };
        buffer
            .get_mapped_range_mut(..padded.len() as u64)?
            .copy_from_slice(&padded);
        buffer.unmap();
        Ok(buffer)
    }

    /// Records a device-resident linear head into `encoder`: the whole rows, or one vocabulary
    /// shard's pass.
    pub fn record_linear_request(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        req: &DeviceLinearRequest,
        shard: Option<(Shard, &ShardPass)>,
    ) -> Result<DeviceLinearOutput> {
        let align = u64::from(self.ctx.limits.min_storage_buffer_offset_alignment);
        let checked = req.check(shard, |what, buffer, offset, bytes| {
            check_buffer(what, buffer, offset, bytes, align)
        })?;
        let mut ws = self.workspace();
        self.ctx.scoped("a device-resident linear head", || {
            self.record_linear(encoder, &mut Timing::Off, &checked, &mut ws.logits, false)
        })
    }
}

/// The most compute passes a linear call records: per chunk, at most six row passes and the
/// products' pieces (`gemm::MAX_DEPTH` terms each) over each block of classes; then the
/// reduction's tree.
fn linear_passes(req: &CheckedDeviceLinear, limits: &wgpu::Limits) -> usize {
    let shape = req.rows.head.shape;
    let chunks = shape[0].div_ceil(linear_chunk_rows(shape, req.chunk_bytes));
    let d = req.hidden.shape[1];
    let blocks = class_blocks([shape[1], d], limits).len();
    let pieces = |terms: usize| terms.div_ceil(MAX_DEPTH as usize).max(1);
    // Per chunk: the row passes, the logits' and dH's pieces, and dW's and db's first pieces;
    // the rest of dW's and db's pieces, over the rows, are bounded over all chunks together.
    let per_chunk = 6 + blocks * (pieces(d) + 1) + pieces(shape[1]) + blocks + 1;
    let over_rows = (blocks + 1) * (shape[0] / MAX_DEPTH as usize);
    chunks * per_chunk + over_rows + 8
}

/// The device request of a host linear request on what `up` uploaded, with the gradients
/// `wanted` (dH, dW, db) into new buffers, or added to the uploaded ones.
fn device_request<'u>(
    req: &'u CheckedLinear,
    up: &'u Uploaded,
    wanted: [bool; 3],
) -> CheckedDeviceLinear<'u, 'u> {
    let [n, v] = [req.logits.batch, req.logits.classes];
    let d = req.head.dim;
    let mut head = req.logits.head();
    head.options.grad = wanted.iter().any(|&w| w);
    head.options.grad_in_place = head.options.grad;
    let input = |buffer, shape, dtype| DeviceInput {
        buffer,
        offset: 0,
        shape,
        dtype,
    };
    let to = |i: usize| {
        wanted[i].then(|| match &up.grads[i] {
            Some(buffer) => GradTo::Into {
                buffer,
                offset: 0,
                add: true,
            },
            None => GradTo::New,
        })
    };
    CheckedDeviceLinear {
        rows: DeviceRows {
            head,
            target: CheckedDeviceTarget::Host(req.logits.target.clone()),
            shard: req.logits.shard.as_ref().map(|s| (s.shard, &s.pass)),
        },
        hidden: input(&up.hidden, [n, d], req.head.hidden.dtype()),
        weight: input(&up.weight, [v, d], req.head.weight.dtype()),
        bias: up
            .bias
            .as_ref()
            .map(|buffer| DeviceVector { buffer, offset: 0 }),
        grads: [to(0), to(1), to(2)],
        chunk_bytes: req.head.chunk_bytes,
    }
}
