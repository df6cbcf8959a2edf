//! Device-resident requests: the plan of one loss call recorded on the caller's buffers, into the
//! caller's command encoder. Every buffer of the call is made for it (nothing is shared with the
//! host path's reused workspace), so that calls recorded before a submission cannot overwrite
//! each other's params or results.

use wgpu::util::DeviceExt;

use super::bindings::{Bound, RowBindings};
use super::chunk::WORD_BYTES;
use super::plan::{Call, Plan, SharedBuffers};
use super::targets::{TargetBuffers, TargetParams};
use super::timing::Timing;
use super::{GpuEngine, UNUSED_BYTES, rows};
use crate::error::{Error, Result};
use crate::request::{
    CheckedDeviceTarget, CheckedTarget, DeviceOutput, DeviceRequest, DeviceRows, Shard, ShardPass,
};

/// The buffers a device call makes for its results.
pub(super) struct Results {
    pub row_values: wgpu::Buffer,
    pub lse: wgpu::Buffer,
    /// The gradient, unless it is in place.
    pub grad: Option<wgpu::Buffer>,
    pub element_values: Option<wgpu::Buffer>,
}

/// What a device call's row passes bind for one chunk beyond what every chunk binds alike: the
/// chunk's `elements` of the batch, its input and gradient, and for a shard's gradient pass the
/// rows' merged statistics.
pub(super) struct ChunkBuffers<'b> {
    pub elements: std::ops::Range<u64>,
    pub input: Bound<'b>,
    pub grad: Bound<'b>,
    pub merged: Option<&'b wgpu::Buffer>,
}

impl<'b> ChunkBuffers<'b> {
    /// The row bindings of the chunk, with the buffers every chunk shares, the call's results,
    /// and the dense target (a buffer and the byte offset of its element 0) where there is one.
    pub fn bindings(
        self,
        shared: &'b SharedBuffers,
        results: &'b Results,
        dense: Option<&'b (wgpu::Buffer, u64)>,
    ) -> RowBindings<'b> {
        let (first, count) = (self.elements.start, self.elements.end - self.elements.start);
        RowBindings {
            params: Bound::params::<rows::Params>(&shared.params),
            input: self.input,
            class_targets: &shared.class_targets,
            dense: match dense {
                Some((buffer, offset)) => Bound::range(
                    buffer,
                    offset + first * 4,
                    (count * 4).next_multiple_of(WORD_BYTES),
                ),
                None => Bound::whole(&shared.empty),
            },
            weight: &shared.weight,
            pos_weight: &shared.pos_weight,
            values: Bound::whole(&results.row_values),
            lse: &results.lse,
            grad: self.grad,
            partials: self.merged.unwrap_or(&shared.partials),
            scales: &shared.scales,
            edges: &shared.edges,
        }
    }
}

/// Device-side usage, offset and size checks of one buffer a request names.
pub(super) fn check_buffer(
    what: &'static str,
    buffer: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
    align: u64,
) -> Result<()> {
    let fail = |reason: String| Err(Error::DeviceBuffer { what, reason });
    if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
        return fail(format!(
            "usage {:?} lacks STORAGE, which a kernel needs to bind it",
            buffer.usage()
        ));
    }
    if !offset.is_multiple_of(align) {
        return fail(format!(
            "offset {offset} is not a multiple of the device's storage offset alignment {align}"
        ));
    }
    match offset.checked_add(bytes) {
        Some(end) if end <= buffer.size() => Ok(()),
        _ => fail(format!(
            "needs {bytes} bytes from offset {offset} (the values, padded to whole 16-byte words), but the buffer has {}",
            buffer.size()
        )),
    }
}

impl GpuEngine {
    /// Records a device-resident request into an encoder of its own and submits it, with the
    /// encoder's own validation inside the error scope.
    pub fn submit(&self, req: &DeviceRequest) -> Result<DeviceOutput> {
        self.ctx.scoped("a device-resident loss", || {
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            let out = self.record_passes(&mut encoder, req, None)?;
            self.ctx.queue.submit([encoder.finish()]);
            Ok(out)
        })
    }

    /// Records a device-resident request into `encoder`: the whole rows, or one vocabulary
    /// shard's pass.
    pub fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        req: &DeviceRequest,
        shard: Option<(Shard, &ShardPass)>,
    ) -> Result<DeviceOutput> {
        self.ctx.scoped("a device-resident loss", || {
            self.record_passes(encoder, req, shard)
        })
    }

    fn record_passes(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        req: &DeviceRequest,
        shard: Option<(Shard, &ShardPass)>,
    ) -> Result<DeviceOutput> {
        let align = u64::from(self.ctx.limits.min_storage_buffer_offset_alignment);
        let req = req.check(shard, |what, buffer, offset, bytes| {
            check_buffer(what, buffer, offset, bytes, align)
        })?;
        let input = req.input;
        let req = req.rows;
        let [batch, classes] = req.head.shape;
        if matches!(req.target, CheckedDeviceTarget::Classes { .. }) {
            // The target passes' weights and counts, 8 bytes a row.
            self.fits_binding("target counts", batch, batch as u64 * 8)?;
        }
        let call = Call::device(self, &req, input.dtype)?;
        let status = self.storage_init(
            "xent target status",
            bytemuck::cast_slice(&[u32::MAX, 0, 0, 0]),
        );
        let results = self.results(&call)?;
        let o = &req.head.options;
        let shard = req.shard.map(|(s, _)| s);
        let mut output = DeviceOutput {
            values: call.merged.is_none().then(|| {
                let values = results.element_values.as_ref();
                values.unwrap_or(&results.row_values).clone()
            }),
            loss: None,
            lse: o.lse.then(|| results.lse.clone()),
            grad: results.grad.clone(),
            status: status.clone(),
            batch,
            classes: shard.map_or(classes, |s| s.total_classes),
            ignore_index: o.ignore_index,
            shard: shard
                .filter(|_| call.merged.is_none())
                .map(|s| (s, classes)),
        };
        if let Some(empty) = call.empty() {
            output.loss = empty
                .scalar
                .map(|zero| self.storage_init("xent loss", bytemuck::bytes_of(&zero)));
            return Ok(output);
        }
        let mut plan = Plan::new(self, call)?;
        let shared = self.prepare_device(encoder, &mut plan, &req, &status)?;
        let size = input.dtype.size() as u64;
        let grad_size = plan.call.spec.grad_size();
        let dense = self.dense_target(&req.target);
        let mut timing = Timing::Off;
        for (k, rows) in plan.chunks.iter().enumerate() {
            let first = rows.start as u64 * classes as u64;
            let count = rows.len() as u64 * classes as u64;
            // A shard's gradient pass: each row's merged statistics where `segment_grad` reads
            // them, in a buffer of the chunk's own (the passes of every chunk are recorded before
            // any runs).
            let merged = plan.merged_partials(k).map(|stats| {
                self.storage_init("xent merged statistics", bytemuck::cast_slice(&stats))
            });
            let input = Bound::range(
                input.buffer,
                input.offset + first * size,
                (count * size).next_multiple_of(WORD_BYTES),
            );
            let grad = match &results.grad {
                Some(g) => Bound::range(
                    g,
                    first * grad_size,
                    (count * grad_size).next_multiple_of(WORD_BYTES),
                ),
                None => Bound::whole(&shared.empty_writable),
            };
            let chunk = ChunkBuffers {
                elements: first..first + count,
                input,
                grad,
                merged: merged.as_ref(),
            };
            let bindings = chunk.bindings(&shared, &results, dense.as_ref());
            let values = results
                .element_values
                .as_ref()
                .map(|out| Bound::range(out, first * 4, count * 4));
            plan.record_chunk(self, (&mut timing, encoder), k, &bindings, values)?;
        }
        output.loss = plan.record_reduce(
            self,
            (&mut timing, encoder),
            &shared.params,
            results.row_values,
            |_, bytes| self.exact_output_buffer("xent partial sums", bytes),
        )?;
        Ok(output)
    }

    /// The buffers of a call's results.
    pub(super) fn results(&self, call: &Call) -> Result<Results> {
        let spec = &call.spec;
        let batch = spec.batch as u64;
        let elements = batch * spec.classes as u64;
        let grad_size = spec.grad_size();
        let grad = if call.separate_grad() {
            Some(self.output_buffer(
                "xent gradient",
                (elements * grad_size).next_multiple_of(WORD_BYTES),
            )?)
        } else {
            None
        };
        let row_values = self.output_buffer("xent row values", call.row_values_bytes())?;
        let lse = self.output_buffer("xent row lse", call.row_bytes())?;
        let element_values = if call.elementwise {
            Some(self.output_buffer("xent elementwise values", elements * 4)?)
        } else {
            None
        };
        Ok(Results {
            row_values,
            lse,
            grad,
            element_values,
        })
    }

    /// Makes the params (the plan's, and the target passes') and the buffers every chunk binds
    /// alike, uploads the class weights and host targets, and records the target passes of class
    /// targets that only the device holds, which write into `status`.
    pub(super) fn prepare_device(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        plan: &mut Plan,
        req: &DeviceRows,
        status: &wgpu::Buffer,
    ) -> Result<SharedBuffers> {
        let head = &req.head;
        let o = &head.options;
        let [batch, classes] = head.shape;
        let ignore = o.ignore_index as u64;
        let shard = req.shard.map(|(s, _)| s);
        let (first, total) = shard.map_or((0, classes), |s| (s.first_class, s.total_classes));
        let ln = o.base.ln().to_bits();
        let target_offset = plan.arena.push(&TargetParams {
            rows: batch as u32,
            classes: total as u32,
            ignore_lo: ignore as u32,
            ignore_hi: (ignore >> 32) as u32,
            ln_lo: ln as u32,
            ln_hi: (ln >> 32) as u32,
            first: first as u32,
            held: classes as u32,
        });
        let device = &self.ctx.device;
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("xent params"),
            contents: &plan.arena.bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let empty = self.output_buffer("xent unused binding", UNUSED_BYTES)?;
        let empty_writable = self.output_buffer("xent unused writable binding", UNUSED_BYTES)?;
        let upload = |label: &str, values: Option<&[f32]>| match values {
            Some(v) => self.storage_init(label, bytemuck::cast_slice(v)),
            None => empty.clone(),
        };
        let weight = upload("xent weight", head.weight);
        let pos_weight = upload("xent pos_weight", head.pos_weight);
        let scales = self.output_buffer("xent scales", 16)?;
        let class_targets = match &req.target {
            CheckedDeviceTarget::Host(CheckedTarget::Classes(encoded)) => {
                self.storage_init("xent class targets", bytemuck::cast_slice(encoded))
            }
            &CheckedDeviceTarget::Classes {
                buffer,
                offset,
                bytes,
                index,
            } => {
                let encoded = self.output_buffer("xent class targets", batch as u64 * 4)?;
                let buffers = TargetBuffers {
                    raw: Bound::range(buffer, offset, bytes),
                    index,
                    weight: (&weight, head.weight.is_some()),
                    encoded: &encoded,
                    status,
                    scales: &scales,
                };
                self.encode_targets(encoder, (&params, target_offset), &buffers, batch)?;
                encoded
            }
            _ => empty.clone(),
        };
        // A shard's gradient pass reads merged statistics from a buffer per chunk instead.
        let partials = match (plan.partials, plan.call.merged) {
            (Some(bytes), None) => self.output_buffer("xent segment statistics", bytes)?,
            _ => empty_writable.clone(),
        };
        let edges = match plan.edges {
            Some(bytes) => self.output_buffer("xent gradient row edges", bytes)?,
            None => empty_writable.clone(),
        };
        Ok(SharedBuffers {
            params,
            class_targets,
            weight,
            pos_weight,
            partials,
            scales: if plan.call.spec.device_scales {
                scales
            } else {
                empty.clone()
            },
            edges,
            empty,
            empty_writable,
        })
    }

    /// A new STORAGE | COPY_SRC buffer of `bytes` (at least 16) for a call's results, within the
    /// device's buffer limit.
    pub(super) fn output_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.exact_output_buffer(label, bytes.max(16))
    }

    /// A new STORAGE | COPY_SRC buffer of exactly `bytes`, within the device's buffer limit: the
    /// reduction's sums, whose last is the one f32 of [`DeviceOutput::loss`].
    pub(super) fn exact_output_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let limit = self.ctx.limits.max_buffer_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: "output",
                reason: format!("{label} needs {bytes} bytes, over the {limit}-byte buffer limit"),
            });
        }
        Ok(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    /// A new STORAGE | COPY_SRC buffer holding `bytes`.
    pub(super) fn storage_init(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }

    /// Where a call's dense target is: the caller's buffer and offset, or a host target uploaded
    /// whole; `None` for other targets.
    pub(super) fn dense_target(&self, target: &CheckedDeviceTarget) -> Option<(wgpu::Buffer, u64)> {
        match target {
            CheckedDeviceTarget::Host(CheckedTarget::Dense(t)) => {
                let mut bytes = bytemuck::cast_slice::<f32, u8>(t).to_vec();
                bytes.resize(
                    (bytes.len() as u64)
                        .next_multiple_of(WORD_BYTES)
                        .max(WORD_BYTES) as usize,
                    0,
                );
                Some((self.storage_init("xent dense target", &bytes), 0))
            }
            CheckedDeviceTarget::Dense { buffer, offset } => Some(((*buffer).clone(), *offset)),
            _ => None,
        }
    }
}
