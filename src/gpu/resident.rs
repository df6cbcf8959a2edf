//! Device-resident requests: the passes of one loss call on the caller's buffers, recorded into
//! the caller's command encoder. Every buffer of the call is made for it (nothing is shared with
//! the host path's reused workspace), so that calls recorded before a submission cannot overwrite
//! each other's params or results.

use std::ops::Range;

use wgpu::util::DeviceExt;

use super::bindings::{Bound, RowBindings, TargetBindings};
use super::chunk::{gcd, round_up};
use super::pipelines::Key;
use super::shaders::Module;
use super::timing::Timing;
use super::{CallParams, GpuEngine, ParamArena, UNUSED_BYTES, rows};
use crate::error::{Error, Result};
use crate::request::Shard;
use crate::request::{DeviceOutput, DeviceRequest, DeviceTarget, IndexType};
use crate::request::{
    Dtype, IGNORED, Reduce, Reduction, Scales, ShardPass, Target, TargetKind, check_options,
    check_shape, check_target_kind, encode_classes, length, shard_options,
};

/// Mirrors `Params` in `targets.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct TargetParams {
    rows: u32,
    classes: u32,
    ignore_lo: u32,
    ignore_hi: u32,
    ln_lo: u32,
    ln_hi: u32,
    first: u32,
    held: u32,
}

/// Invocations of `encode_targets` per workgroup: `WORKGROUP` in `targets.wgsl`.
const TARGETS_WORKGROUP: u32 = 256;

/// A range of a buffer, held.
#[derive(Clone)]
struct Span {
    buffer: wgpu::Buffer,
    offset: u64,
    size: u64,
}

impl Span {
    fn of(buffer: &wgpu::Buffer, offset: u64, size: u64) -> Self {
        Span {
            buffer: buffer.clone(),
            offset,
            size,
        }
    }

    fn bound(&self) -> Bound<'_> {
        Bound::range(&self.buffer, self.offset, self.size)
    }
}

/// A request's target, checked, as the kernels will read it.
enum Targets {
    None,
    /// Encoded on the host.
    Host(Vec<u32>),
    /// On the device, to be encoded there.
    Device(Span, IndexType),
    Dense(Span),
}

/// The buffers of the device's target passes.
struct TargetBuffers<'b> {
    raw: &'b Span,
    index: IndexType,
    /// The class weights, and whether there are any.
    weight: (&'b wgpu::Buffer, bool),
    encoded: &'b wgpu::Buffer,
    status: &'b wgpu::Buffer,
    scales: &'b wgpu::Buffer,
}

/// Device-side usage, offset and size checks of one buffer a request names.
fn check_buffer(
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

/// Row chunks of a device input, each within one storage binding, starting at offsets the device
/// can bind: a multiple of `align` bytes of the widest per-element array (f32 values and
/// gradients).
fn device_chunks(
    [batch, classes]: [usize; 2],
    max_binding: u64,
    align: u64,
) -> Result<Vec<Range<usize>>> {
    let row_bytes = classes as u64 * 4;
    // The whole batch in one binding, wherever it starts.
    if (batch as u64).saturating_mul(row_bytes) <= max_binding.saturating_sub(16) {
        return Ok(std::iter::once(0..batch).collect());
    }
    // The fewest rows whose bytes, in every dtype (2 or 4 per element), are a multiple of align.
    let step = {
        let half_row = classes as u64 * 2;
        align / gcd(half_row, align)
    };
    let fit = max_binding.saturating_sub(16) / row_bytes / step * step;
    if fit == 0 {
        return Err(Error::TooLarge {
            what: "logits",
            reason: format!(
                "{step} rows of {classes} classes take {} bytes, over the {max_binding}-byte storage binding",
                step * row_bytes
            ),
        });
    }
    let fit = usize::try_from(fit).unwrap_or(usize::MAX);
    Ok((0..batch)
        .step_by(fit)
        .map(|start| start..batch.min(start.saturating_add(fit)))
        .collect())
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
        let device = &self.ctx.device;
        let limits = &self.ctx.limits;
        let input = &req.input;
        let shape = input.shape;
        let [batch, classes] = shape;
        let mut o = req.options;
        // As `Request::grad_in_place` does: a gradient in place is a gradient.
        o.grad |= o.grad_in_place;
        // A shard's gradient pass reads each row's merged statistics and the merged scales.
        let pass = shard.map(|(_, pass)| pass);
        let given = pass.and_then(ShardPass::merged);
        if let Some((s, _)) = shard {
            let class_targets = matches!(
                req.target,
                DeviceTarget::Classes { .. }
                    | DeviceTarget::Host(Target::ClassesI32(_) | Target::ClassesI64(_))
            );
            o = shard_options(req.loss, &o, class_targets, shape, s, given.is_some())?;
        }
        let shard = shard.map(|(s, _)| s);
        let elements = check_shape(shape)? as u64;
        if o.strict {
            return Err(Error::DeviceBuffer {
                what: "strict",
                reason: "strict mode checks values on the host, and device-resident values never come there".into(),
            });
        }
        let (weight, pos_weight) =
            check_options(req.loss, &o, classes, req.weight, req.pos_weight)?;
        let align = u64::from(limits.min_storage_buffer_offset_alignment);
        let size = input.dtype.size() as u64;
        check_buffer(
            "input",
            input.buffer,
            input.offset,
            round_up(elements * size, 16),
            align,
        )?;
        let targets = match req.target {
            DeviceTarget::None => Targets::None,
            DeviceTarget::Host(Target::None) => Targets::None,
            DeviceTarget::Host(Target::ClassesI32(t)) => Targets::Host(encode_classes(
                shape,
                o.ignore_index,
                shard,
                t.len(),
                |r| i64::from(t[r]),
            )?),
            DeviceTarget::Host(Target::ClassesI64(t)) => Targets::Host(encode_classes(
                shape,
                o.ignore_index,
                shard,
                t.len(),
                |r| t[r],
            )?),
            DeviceTarget::Host(Target::Dense(t)) => {
                let shape = format!("[{batch}, {classes}]");
                length("target", shape, elements as usize, t.len())?;
                let mut bytes = bytemuck::cast_slice::<f32, u8>(t).to_vec();
                bytes.resize(round_up(bytes.len() as u64, 16).max(16) as usize, 0);
                let buffer = self.storage_init("xent dense target", &bytes);
                Targets::Dense(Span::of(&buffer, 0, bytes.len() as u64))
            }
            DeviceTarget::Classes {
                buffer,
                offset,
                index,
            } => {
                let bytes = round_up(batch as u64 * index.size() as u64, 4);
                check_buffer("target", buffer, offset, bytes, align)?;
                Targets::Device(Span::of(buffer, offset, bytes), index)
            }
            DeviceTarget::Dense { buffer, offset } => {
                let bytes = round_up(elements * 4, 16);
                check_buffer("target", buffer, offset, bytes, align)?;
                Targets::Dense(Span::of(buffer, offset, bytes))
            }
        };
        if let Targets::Dense(t) = &targets
            && t.buffer == *input.buffer
        {
            return Err(Error::DeviceBuffer {
                what: "target",
                reason: "is the input's buffer: one dispatch may not bind a buffer both read-write (the input) and read-only (the target); put them in two buffers".into(),
            });
        }
        let kind = match targets {
            Targets::None => TargetKind::None,
            Targets::Host(..) | Targets::Device(..) => TargetKind::Classes,
            Targets::Dense(_) => TargetKind::Dense,
        };
        check_target_kind(req.loss, kind, shape)?;
        // After the request's own checks, as on the host.
        if let Some(pass) = pass {
            pass.check_rows(batch)?;
        }
        let binding = limits.max_storage_buffer_binding_size;
        if matches!(targets, Targets::Device(..)) {
            // The target passes' weights and counts, 8 bytes a row.
            self.fits_binding("target counts", batch, batch as u64 * 8)?;
        }

        // The reduction's scales: from the host, unless a mean needs the weights of targets that
        // only the device holds.
        let device_scales = matches!(targets, Targets::Device(..))
            && o.reduction == Reduction::Mean
            && shard.is_none();
        let Scales {
            main: alpha,
            z_loss: beta,
        } = if let Some((_, given)) = given {
            given
        } else if device_scales {
            Scales::default()
        } else {
            let (encoded, valid) = match &targets {
                Targets::Host(t) => (Some(&t[..]), t.iter().filter(|&&y| y != IGNORED).count()),
                _ => (None, batch),
            };
            Reduce {
                loss: req.loss,
                options: &o,
                shape,
                valid_rows: valid,
                targets: encoded,
                weight,
            }
            .scales()
        };
        let scalar = o.reduction != Reduction::None && given.is_none();
        let elementwise = !scalar && req.loss.elementwise();
        let grad_packed = o.grad && input.dtype != Dtype::F32;
        let spec = rows::Spec {
            loss: req.loss,
            dtype: input.dtype,
            batch,
            classes,
            target: kind,
            weight: weight.is_some(),
            pos_weight: pos_weight.is_some(),
            options: o,
            device_scales,
            grad_packed,
            shard_classes: shard.map(|s| s.total_classes),
        };

        let status = self.storage_init(
            "xent target status",
            bytemuck::cast_slice(&[u32::MAX, 0, 0, 0]),
        );
        let make = |label: &str, bytes: u64| -> Result<wgpu::Buffer> {
            if bytes > limits.max_buffer_size {
                return Err(Error::TooLarge {
                    what: "output",
                    reason: format!(
                        "{label} needs {bytes} bytes, over the {}-byte buffer limit",
                        limits.max_buffer_size
                    ),
                });
            }
            Ok(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(16),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }))
        };
        let grad_size = if grad_packed { 2 } else { 4 };
        let grad = if o.grad && !o.grad_in_place {
            Some(make("xent gradient", round_up(elements * grad_size, 16))?)
        } else {
            None
        };
        let row_stride = pass.map_or(1, ShardPass::row_stride);
        self.fits_binding("per-row results", batch, batch as u64 * 4 * row_stride)?;
        let row_values = make("xent row values", batch as u64 * 4 * row_stride)?;
        let lse = make("xent row lse", batch as u64 * 4)?;
        let element_values = if elementwise {
            Some(make("xent elementwise values", elements * 4)?)
        } else {
            None
        };
        let mut output = DeviceOutput {
            values: given
                .is_none()
                .then(|| element_values.clone().unwrap_or_else(|| row_values.clone())),
            loss: None,
            lse: o.lse.then(|| lse.clone()),
            grad: grad.clone(),
            status: status.clone(),
            batch,
            classes: shard.map_or(classes, |s| s.total_classes),
            ignore_index: o.ignore_index,
            shard: shard.filter(|_| given.is_none()).map(|s| (s, classes)),
        };
        if batch == 0 {
            output.loss = scalar.then(|| self.storage_init("xent loss", &[0; 4]));
            return Ok(output);
        }

        let chunks = device_chunks(shape, binding, align)?;
        let most_rows = chunks.iter().map(|c| c.len()).max().unwrap_or(0) as u64;
        let cpu_adapter = self.ctx.info.device_type == wgpu::DeviceType::Cpu;
        let variant = match given {
            Some(_) => rows::Variant::given_stats(&spec, cpu_adapter),
            None => self.tuner.settled(&spec, cpu_adapter),
        };
        let kernel = rows::RowKernel::new(&spec, self.ctx.subgroups, variant);
        let segments = kernel.segments();
        let (
            mut arena,
            CallParams {
                chunks: chunk_offsets,
                passes,
            },
        ) = ParamArena::for_call(limits, &spec, &chunks, segments, (alpha, beta), scalar);
        let ignore = o.ignore_index as u64;
        let (first, total) = shard.map_or((0, classes), |s| (s.first_class, s.total_classes));
        let ln = o.base.ln().to_bits();
        let target_offset = arena.push(&TargetParams {
            rows: batch as u32,
            classes: total as u32,
            ignore_lo: ignore as u32,
            ignore_hi: (ignore >> 32) as u32,
            ln_lo: ln as u32,
            ln_hi: (ln >> 32) as u32,
            first: first as u32,
            held: classes as u32,
        });
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("xent params"),
            contents: &arena.bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });

        let empty = make("xent unused binding", UNUSED_BYTES)?;
        let empty_writable = make("xent unused writable binding", UNUSED_BYTES)?;
        let upload = |label: &str, values: Option<&[f32]>| match values {
            Some(v) => self.storage_init(label, bytemuck::cast_slice(v)),
            None => empty.clone(),
        };
        let weight_buf = upload("xent weight", weight);
        let pos_weight_buf = upload("xent pos_weight", pos_weight);
        let scales = make("xent scales", 16)?;
        let class_targets = match &targets {
            Targets::Host(encoded) => {
                self.storage_init("xent class targets", bytemuck::cast_slice(encoded))
            }
            Targets::Device(raw, index) => {
                let encoded = make("xent class targets", batch as u64 * 4)?;
                self.encode_targets(
                    encoder,
                    (&params, target_offset),
                    &TargetBuffers {
                        raw,
                        index: *index,
                        weight: (&weight_buf, weight.is_some()),
                        encoded: &encoded,
                        status: &status,
                        scales: &scales,
                    },
                    batch,
                )?;
                encoded
            }
            _ => empty.clone(),
        };
        // Mirrors `Stats` in `rows.wgsl`: six f32.
        // A shard's gradient pass reads merged statistics from a buffer per chunk instead.
        let partials = if kernel.split.is_some() || rows::keeps_stats(&spec) {
            let bytes = most_rows * u64::from(segments) * 24;
            self.fits_binding("row statistics", most_rows as usize, bytes)?;
            match given {
                Some(_) => empty_writable.clone(),
                None => make("xent segment statistics", bytes)?,
            }
        } else {
            empty_writable.clone()
        };
        let edges = if grad_packed {
            self.fits_binding("gradient row edges", most_rows as usize, most_rows * 8)?;
            make("xent gradient row edges", most_rows * 8)?
        } else {
            empty_writable.clone()
        };
        let row_layout = &self.pipeline(&kernel.key).layout;
        // As on the host: with elementwise values and an in-place gradient, the statistics, the
        // values, then the gradient.
        let pre_kernel = (elementwise && o.grad_in_place).then(|| {
            let mut stats_only = spec;
            stats_only.options.grad = false;
            stats_only.options.grad_in_place = false;
            stats_only.grad_packed = false;
            rows::RowKernel::new(&stats_only, self.ctx.subgroups, variant)
        });
        let element_pipeline = elementwise.then(|| self.pipeline(&rows::elementwise_key(&spec)));
        let stitch =
            (grad_packed && classes % 2 == 1).then(|| self.pipeline(&rows::stitch_key(&spec)));
        let mut timing = Timing::Off;
        for (rows, &offset) in chunks.iter().zip(&chunk_offsets) {
            let first = rows.start as u64 * classes as u64;
            let count = rows.len() as u64 * classes as u64;
            let dense = match &targets {
                Targets::Dense(t) => {
                    Bound::range(&t.buffer, t.offset + first * 4, round_up(count * 4, 16))
                }
                _ => Bound::whole(&empty),
            };
            let bindings = RowBindings {
                params: Bound::params::<rows::Params>(&params),
                input: Bound::range(
                    input.buffer,
                    input.offset + first * size,
                    round_up(count * size, 16),
                ),
                class_targets: &class_targets,
                dense,
                weight: &weight_buf,
                pos_weight: &pos_weight_buf,
                values: Bound::whole(&row_values),
                lse: &lse,
                grad: match &grad {
                    Some(g) => Bound::range(g, first * grad_size, round_up(count * grad_size, 16)),
                    None => Bound::whole(&empty_writable),
                },
                partials: &partials,
                scales: if device_scales { &scales } else { &empty },
                edges: &edges,
            };
            // A shard's gradient pass: each row's merged statistics where `segment_grad` reads
            // them, in a buffer of the chunk's own (the passes of every chunk are recorded before
            // any runs).
            let given_partials = given.map(|(merged, _)| {
                let stats = super::merged_partials(&merged[rows.clone()], segments);
                self.storage_init("xent merged statistics", bytemuck::cast_slice(&stats))
            });
            let bindings = RowBindings {
                partials: given_partials.as_ref().unwrap_or(&partials),
                ..bindings
            };
            let row_bind = bindings.bind(device, row_layout);
            let chunk_rows = rows.len() as u32;
            let values = element_values
                .as_ref()
                .map(|out| Bound::range(out, first * 4, count * 4));
            if let Some(pre) = &pre_kernel {
                self.row_passes(
                    (&mut timing, encoder, &row_bind, offset, chunk_rows),
                    pre,
                    false,
                )?;
            }
            let elementwise_pass = |timing: &mut Timing, encoder: &mut wgpu::CommandEncoder| match (
                &element_pipeline,
                values,
            ) {
                (Some(pipeline), Some(values)) => self.elementwise_pass(
                    timing,
                    encoder,
                    pipeline,
                    &bindings,
                    values,
                    (offset, count),
                ),
                _ => Ok(()),
            };
            if pre_kernel.is_some() {
                elementwise_pass(&mut timing, encoder)?;
            }
            self.row_passes(
                (&mut timing, encoder, &row_bind, offset, chunk_rows),
                &kernel,
                given.is_some(),
            )?;
            if pre_kernel.is_none() {
                elementwise_pass(&mut timing, encoder)?;
            }
            if let Some(stitch) = &stitch {
                let stitch_groups = rows::Split::merge_groups(rows.len() as u32);
                self.dispatch(
                    &mut timing,
                    encoder,
                    &stitch.pipeline,
                    &row_bind,
                    offset,
                    stitch_groups,
                )?;
            }
        }
        if scalar {
            let loss = self.reduce(
                &mut timing,
                encoder,
                &params,
                &passes,
                row_values,
                |_, bytes| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("xent partial sums"),
                        size: bytes,
                        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    })
                },
            )?;
            output.loss = Some(loss);
        }
        Ok(output)
    }

    /// Records `encode_targets` and `device_scales`: the device's class targets checked and
    /// encoded, the first bad one named in the status, and the mean's scales.
    fn encode_targets(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (params, offset): (&wgpu::Buffer, u32),
        b: &TargetBuffers,
        batch: usize,
    ) -> Result<()> {
        let device = &self.ctx.device;
        let counts = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent target counts"),
            size: (batch as u64 * 8).max(16),
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let constants = vec![
            ("TARGET_I64", u32::from(b.index == IndexType::I64)),
            ("HAS_WEIGHT", u32::from(b.weight.1)),
        ];
        let mut timing = Timing::Off;
        for (entry, groups) in [
            ("encode_targets", (batch as u32).div_ceil(TARGETS_WORKGROUP)),
            ("device_scales", 1),
        ] {
            let pipeline = self.pipeline(&Key {
                module: Module::Targets,
                entry,
                constants: constants.clone(),
            });
            let bind = TargetBindings {
                params: Bound::params::<TargetParams>(params),
                raw: b.raw.bound(),
                weight: b.weight.0,
                encoded: b.encoded,
                counts: &counts,
                status: b.status,
                scales: b.scales,
            }
            .bind(device, &pipeline.layout);
            self.dispatch(
                &mut timing,
                encoder,
                &pipeline.pipeline,
                &bind,
                offset,
                groups,
            )?;
        }
        Ok(())
    }

    /// Waits for everything submitted, then copies bytes `range` of `buffer` to the host.
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, range: Range<u64>) -> Result<Vec<u8>> {
        let mut bytes = self.read_buffers(&[(buffer, range)])?;
        Ok(bytes.remove(0))
    }

    /// Waits for everything submitted, then copies each byte range of its buffer to the host,
    /// all through one staging buffer and one wait.
    pub fn read_buffers(&self, reads: &[(&wgpu::Buffer, Range<u64>)]) -> Result<Vec<Vec<u8>>> {
        let fail = |reason: String| {
            Err(Error::DeviceBuffer {
                what: "read",
                reason,
            })
        };
        // Copies move whole 4-byte words: the words around each range are copied, and cut.
        let mut words = Vec::with_capacity(reads.len());
        for (buffer, range) in reads {
            if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
                return fail(format!("usage {:?} lacks COPY_SRC", buffer.usage()));
            }
            let end = range.end.checked_next_multiple_of(4).unwrap_or(u64::MAX);
            if range.start > range.end || range.end > buffer.size() || end > buffer.size() {
                return fail(format!(
                    "{range:?} is not within the buffer's {} bytes (in whole 4-byte words)",
                    buffer.size()
                ));
            }
            words.push(range.start / 4 * 4..end);
        }
        let total: u64 = words.iter().map(|w| w.end - w.start).sum();
        self.ctx.scoped("reading a device buffer", || {
            let device = &self.ctx.device;
            let staging = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xent read"),
                size: total.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = device.create_command_encoder(&Default::default());
            let mut at = 0;
            for ((buffer, _), w) in reads.iter().zip(&words) {
                encoder.copy_buffer_to_buffer(buffer, w.start, &staging, at, w.end - w.start);
                at += w.end - w.start;
            }
            self.ctx.queue.submit([encoder.finish()]);
            self.ctx.map(&staging, wgpu::MapMode::Read)?;
            let mapped = staging.get_mapped_range(..total.max(4))?;
            let mut at = 0;
            let bytes = reads
                .iter()
                .zip(&words)
                .map(|((_, range), w)| {
                    let cut =
                        (at + range.start - w.start) as usize..(at + range.end - w.start) as usize;
                    at += w.end - w.start;
                    mapped[cut].to_vec()
                })
                .collect();
            drop(mapped);
            staging.unmap();
            Ok(bytes)
        })
    }

    /// A new STORAGE | COPY_SRC buffer holding `bytes`.
    fn storage_init(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }
}
