//! The wgpu backend: device, pipelines, reused buffers, and the passes of one loss call.

pub(crate) mod adapter;
mod chunk;
mod context;
mod pipelines;
mod pool;
mod reduce;
mod shaders;
mod softmax_xent;

use std::sync::{Mutex, PoisonError};

pub use adapter::{ADAPTER_NAME_VAR, AdapterSummary, adapters};
pub use shaders::{ShaderModule, shader_modules};

use crate::error::{Error, Result};
use crate::loss::{Checked, Reduction};
use crate::output::{Loss, Output};
use chunk::{CHUNK_CAP_BYTES, round_up, row_chunks};
use context::Context;
use pipelines::{Key, Pipelines};
use pool::{Slot, Staging};

/// A device with xent's pipelines and buffers on it.
pub(crate) struct GpuEngine {
    ctx: Context,
    pipelines: Pipelines,
    workspace: Mutex<Workspace>,
}

/// The buffers one call uses, kept for the next. The mutex around it also serializes calls, which
/// the device would do anyway.
struct Workspace {
    staging: [Staging; 2],
    chunks: [Slot; 2],
    targets: Slot,
    row_loss: Slot,
    row_lse: Slot,
    sums: [Slot; 2],
    params: Slot,
    readback: Slot,
}

impl Workspace {
    fn new() -> Self {
        use wgpu::BufferUsages as U;
        let storage = U::STORAGE.union(U::COPY_DST);
        let output = U::STORAGE.union(U::COPY_SRC);
        Workspace {
            staging: [
                Staging::new("xent staging 0"),
                Staging::new("xent staging 1"),
            ],
            chunks: [
                Slot::new("xent logits chunk 0", storage),
                Slot::new("xent logits chunk 1", storage),
            ],
            targets: Slot::new("xent targets", storage),
            row_loss: Slot::new("xent row loss", output),
            row_lse: Slot::new("xent row lse", output),
            sums: [
                Slot::new("xent partial sums 0", output),
                Slot::new("xent partial sums 1", output),
            ],
            params: Slot::new("xent params", U::UNIFORM.union(U::COPY_DST)),
            readback: Slot::new("xent readback", U::MAP_READ.union(U::COPY_DST)),
        }
    }
}

/// Uniform params of every dispatch of one call, each at its own aligned dynamic offset.
struct ParamArena {
    bytes: Vec<u8>,
    align: usize,
}

impl ParamArena {
    fn push<T: bytemuck::Pod>(&mut self, params: &T) -> u32 {
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(bytemuck::bytes_of(params));
        self.bytes
            .resize(self.bytes.len().next_multiple_of(self.align), 0);
        offset as u32
    }
}

impl GpuEngine {
    pub fn open(adapter: &wgpu::Adapter) -> Result<Self> {
        Ok(Self::with_context(Context::open(adapter)?))
    }

    pub fn borrowed(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self::with_context(Context::borrowed(device, queue))
    }

    fn with_context(ctx: Context) -> Self {
        GpuEngine {
            ctx,
            pipelines: Pipelines::default(),
            workspace: Mutex::new(Workspace::new()),
        }
    }

    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    pub fn softmax_cross_entropy(&self, req: &Checked) -> Result<Output> {
        let mut ws = self
            .workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.ctx
            .scoped("softmax cross-entropy", || self.run_softmax(&mut ws, req))
    }

    /// A 2-D grid of `groups` workgroups within the per-dimension limit.
    fn grid(&self, groups: u32) -> (u32, u32) {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension.max(1);
        let x = groups.clamp(1, max);
        (x, groups.div_ceil(x))
    }

    fn pipeline(&self, key: &Key) -> std::sync::Arc<pipelines::Pipeline> {
        self.pipelines.get(&self.ctx.device, key)
    }

    fn run_softmax(&self, ws: &mut Workspace, req: &Checked) -> Result<Output> {
        let limits = &self.ctx.limits;
        let binding = limits.max_storage_buffer_binding_size;
        let row_bytes = req.batch as u64 * 4;
        if row_bytes > binding || req.batch > u32::MAX as usize {
            return Err(Error::TooLarge {
                what: "batch",
                reason: format!(
                    "{} rows need {row_bytes} bytes of per-row results, over the {binding}-byte storage binding",
                    req.batch
                ),
            });
        }
        let reduction = req.options.reduction;
        let scalar = reduction != Reduction::None;
        if req.batch == 0 {
            return Ok(Output {
                loss: if scalar {
                    Loss::Scalar(0.0)
                } else {
                    Loss::PerRow(Vec::new())
                },
                lse: req.options.lse.then(Vec::new),
                valid_rows: 0,
            });
        }
        let chunk_cap = binding.min(limits.max_buffer_size).min(CHUNK_CAP_BYTES);
        let chunks = row_chunks(req.batch, req.classes, chunk_cap)?;
        let variant = softmax_xent::Variant::for_shape(req.classes, self.ctx.subgroups);
        let mut arena = ParamArena {
            bytes: Vec::new(),
            align: limits.min_uniform_buffer_offset_alignment as usize,
        };
        let chunk_offsets: Vec<u32> = chunks
            .iter()
            .map(|c| {
                arena.push(&softmax_xent::Params {
                    rows: c.len() as u32,
                    classes: req.classes as u32,
                    row_base: c.start as u32,
                    _pad: 0,
                })
            })
            .collect();
        let divisor = match reduction {
            Reduction::Mean if req.valid_rows > 0 => req.valid_rows as f32,
            _ => 1.0,
        };
        let passes: Vec<(u32, u32)> = if scalar {
            reduce::passes(req.batch as u32, divisor)
                .into_iter()
                .map(|(groups, p)| (groups, arena.push(&p)))
                .collect()
        } else {
            Vec::new()
        };

        let device = &self.ctx.device;
        let queue = &self.ctx.queue;
        let (params, _) = ws.params.get(device, arena.bytes.len() as u64);
        queue.write_buffer(params, 0, &arena.bytes);
        let (targets, _) = ws.targets.get(device, row_bytes);
        queue.write_buffer(targets, 0, bytemuck::cast_slice(&req.targets));
        ws.row_loss.get(device, row_bytes);
        ws.row_lse.get(device, row_bytes);

        let softmax = self.pipeline(&variant.key);
        for (k, (rows, &offset)) in chunks.iter().zip(&chunk_offsets).enumerate() {
            let data: &[u8] =
                bytemuck::cast_slice(&req.logits[rows.start * req.classes..rows.end * req.classes]);
            let bytes = data.len() as u64;
            let bound = round_up(bytes, 16);
            let staging = &mut ws.staging[k % 2];
            let (staging_buf, fresh) = staging.slot.get(device, bound);
            if !fresh && !staging.mapped {
                self.ctx.map(staging_buf, wgpu::MapMode::Write)?;
            }
            staging_buf
                .get_mapped_range_mut(..bytes)?
                .copy_from_slice(data);
            staging_buf.unmap();
            staging.mapped = false;
            let (chunk_buf, _) = ws.chunks[k % 2].get(device, bound);
            let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("xent softmax chunk"),
                layout: &softmax.layout,
                entries: &[
                    uniform_entry(params, size_of::<softmax_xent::Params>()),
                    range_entry(1, chunk_buf, bound),
                    whole_entry(2, current(&ws.targets)),
                    whole_entry(3, current(&ws.row_loss)),
                    whole_entry(4, current(&ws.row_lse)),
                ],
            });
            let mut encoder = device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(staging_buf, 0, chunk_buf, 0, bytes);
            self.dispatch(
                &mut encoder,
                &softmax.pipeline,
                &bind,
                offset,
                variant.groups(rows.len() as u32),
            );
            queue.submit([encoder.finish()]);
        }

        let mut encoder = device.create_command_encoder(&Default::default());
        let mut readback_len = 0;
        let mut source = current(&ws.row_loss).clone();
        if scalar {
            let reduce = self.pipeline(&reduce::key());
            for (i, &(groups, offset)) in passes.iter().enumerate() {
                let (out, _) = ws.sums[i % 2].get(device, u64::from(groups) * 4);
                let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("xent reduce pass"),
                    layout: &reduce.layout,
                    entries: &[
                        uniform_entry(params, size_of::<reduce::Params>()),
                        whole_entry(1, &source),
                        whole_entry(2, out),
                    ],
                });
                self.dispatch(&mut encoder, &reduce.pipeline, &bind, offset, groups);
                source = out.clone();
            }
            readback_len += 4;
        } else {
            readback_len += row_bytes;
        }
        let lse_at = readback_len;
        if req.options.lse {
            readback_len += row_bytes;
        }
        let (readback, _) = ws.readback.get(device, readback_len);
        encoder.copy_buffer_to_buffer(&source, 0, readback, 0, lse_at);
        if req.options.lse {
            encoder.copy_buffer_to_buffer(current(&ws.row_lse), 0, readback, lse_at, row_bytes);
        }
        queue.submit([encoder.finish()]);
        // Map the staging buffers again now, in the same wait as the readback, so that the next
        // call can write into them at once.
        for staging in &mut ws.staging {
            if let Some(buf) = staging.slot.current().filter(|_| !staging.mapped) {
                self.ctx.map(buf, wgpu::MapMode::Write)?;
                staging.mapped = true;
            }
        }
        self.ctx.map(readback, wgpu::MapMode::Read)?;
        let values: Vec<f32> = {
            let view = readback.get_mapped_range(..readback_len)?;
            bytemuck::cast_slice(&view).to_vec()
        };
        readback.unmap();
        let (head, lse) = values.split_at((lse_at / 4) as usize);
        let loss = match reduction {
            Reduction::None => Loss::PerRow(head.to_vec()),
            Reduction::Mean if req.valid_rows == 0 => Loss::Scalar(0.0),
            _ => Loss::Scalar(head[0]),
        };
        Ok(Output {
            loss,
            lse: req.options.lse.then(|| lse.to_vec()),
            valid_rows: req.valid_rows,
        })
    }

    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        bind: &wgpu::BindGroup,
        offset: u32,
        groups: u32,
    ) {
        let (x, y) = self.grid(groups);
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
    }
}

fn current(slot: &Slot) -> &wgpu::Buffer {
    slot.current().expect("slot filled earlier in this call")
}

fn uniform_entry(buffer: &wgpu::Buffer, size: usize) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset: 0,
            size: wgpu::BufferSize::new(size as u64),
        }),
    }
}

fn range_entry(binding: u32, buffer: &wgpu::Buffer, size: u64) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset: 0,
            size: wgpu::BufferSize::new(size),
        }),
    }
}

fn whole_entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}
