//! The wgpu backend: device, pipelines, reused buffers, and the passes of one loss call.

pub(crate) mod adapter;
mod bindings;
mod chunk;
mod context;
mod pipelines;
mod pool;
mod probe;
mod reduce;
mod resident;
mod rows;
mod shaders;
mod timing;
mod tune;

use std::sync::{Mutex, PoisonError};

pub use adapter::{ADAPTER_NAME_VAR, AdapterSummary, adapters};
pub use shaders::{ShaderModule, shader_modules};

use crate::error::{Error, Result};
use crate::output::{KernelTime, Loss, Output};
use crate::request::{Checked, CheckedTarget, Reduction, Scales, ShardPass};
use bindings::{Bound, ReduceBindings, RowBindings};
use chunk::{chunk_cap, round_up, row_chunks};
use context::Context;
use pipelines::{Key, Pipelines};
use pool::{Slot, Staging};
use timing::Timing;

/// A device with xent's pipelines and buffers on it.
pub(crate) struct GpuEngine {
    ctx: Context,
    pipelines: Pipelines,
    workspace: Mutex<Workspace>,
    tuner: tune::Tuner,
}

/// The buffers one call uses, kept for the next. The mutex around it also serializes calls, which
/// the device would do anyway.
struct Workspace {
    staging: [Staging; 2],
    inputs: [Slot; 2],
    dense: [Slot; 2],
    elements: Slot,
    grad: Slot,
    class_targets: Slot,
    weight: Slot,
    pos_weight: Slot,
    empty: Slot,
    empty_writable: Slot,
    row_values: Slot,
    row_lse: Slot,
    partials: Slot,
    sums: [Slot; 2],
    params: Slot,
    readback: Slot,
    chunk_readback: [Slot; 2],
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
            // An in-place gradient is copied out of the input chunk.
            inputs: [
                Slot::new("xent input chunk 0", storage.union(U::COPY_SRC)),
                Slot::new("xent input chunk 1", storage.union(U::COPY_SRC)),
            ],
            dense: [
                Slot::new("xent dense target chunk 0", storage),
                Slot::new("xent dense target chunk 1", storage),
            ],
            elements: Slot::new("xent elementwise values", output),
            grad: Slot::new("xent gradient chunk", output),
            class_targets: Slot::new("xent class targets", storage),
            weight: Slot::new("xent weight", storage),
            pos_weight: Slot::new("xent pos_weight", storage),
            empty: Slot::new("xent unused binding", storage),
            // A buffer bound read-write may share no dispatch with a read-only binding.
            empty_writable: Slot::new("xent unused writable binding", storage),
            row_values: Slot::new("xent row values", output),
            row_lse: Slot::new("xent row lse", output),
            partials: Slot::new("xent segment statistics", storage),
            sums: [
                Slot::new("xent partial sums 0", output),
                Slot::new("xent partial sums 1", output),
            ],
            params: Slot::new("xent params", U::UNIFORM.union(U::COPY_DST)),
            readback: Slot::new("xent readback", U::MAP_READ.union(U::COPY_DST)),
            chunk_readback: [
                Slot::new("xent chunk readback 0", U::MAP_READ.union(U::COPY_DST)),
                Slot::new("xent chunk readback 1", U::MAP_READ.union(U::COPY_DST)),
            ],
        }
    }
}

impl Workspace {
    fn slots(&self) -> impl Iterator<Item = &Slot> {
        let single = [
            &self.elements,
            &self.grad,
            &self.class_targets,
            &self.weight,
            &self.pos_weight,
            &self.empty,
            &self.empty_writable,
            &self.row_values,
            &self.row_lse,
            &self.partials,
            &self.params,
            &self.readback,
        ];
        self.staging
            .iter()
            .map(|staging| &staging.slot)
            .chain(&self.inputs)
            .chain(&self.dense)
            .chain(&self.sums)
            .chain(&self.chunk_readback)
            .chain(single)
    }
}

/// Bytes of a buffer bound where a kernel reads nothing: at least one element of every binding's
/// type (24 bytes for the row statistics).
const UNUSED_BYTES: u64 = 32;

/// A chunk's results copied to a readback buffer by submission `after`, not yet read: its
/// gradient (when `grad`) and then its elementwise values, of `elements` of the batch.
struct Pending {
    buffer: wgpu::Buffer,
    after: wgpu::SubmissionIndex,
    elements: std::ops::Range<usize>,
    grad: bool,
}

/// Uniform params of every dispatch of one call, each at its own aligned dynamic offset.
struct ParamArena {
    bytes: Vec<u8>,
    align: usize,
}

/// Where a call's params sit in its arena: each chunk's row-kernel params, then each reduction
/// pass's (workgroups, params).
struct CallParams {
    chunks: Vec<u32>,
    passes: Vec<(u32, u32)>,
}

impl ParamArena {
    /// The arena of one call on `chunks` of `spec`, with `segments` per row and the reduction's
    /// (main, z-loss) `scales`; with `scalar`, the passes that sum the batch's rows too.
    fn for_call(
        limits: &wgpu::Limits,
        spec: &rows::Spec,
        chunks: &[std::ops::Range<usize>],
        segments: u32,
        scales: (f32, f32),
        scalar: bool,
    ) -> (Self, CallParams) {
        let mut arena = ParamArena {
            bytes: Vec::new(),
            align: limits.min_uniform_buffer_offset_alignment as usize,
        };
        let chunks = chunks
            .iter()
            .map(|c| arena.push(&rows::Params::chunk(spec, c, segments, scales)))
            .collect();
        let passes = if scalar {
            reduce::passes(spec.batch as u32)
                .into_iter()
                .map(|(groups, p)| (groups, arena.push(&p)))
                .collect()
        } else {
            Vec::new()
        };
        (arena, CallParams { chunks, passes })
    }

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
            tuner: tune::Tuner::default(),
        }
    }

    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    pub fn wgpu(&self) -> (&wgpu::Device, &wgpu::Queue) {
        (&self.ctx.device, &self.ctx.queue)
    }

    /// The same adapter opened afresh, with the same autotune setting: what a lost device is
    /// replaced with. A device of the caller's is the caller's to replace.
    pub fn reopen(&self) -> Result<Self> {
        if !self.ctx.owned {
            return Err(Error::DeviceLost(
                "the engine is on a device of the caller's; request a new device and use Engine::from_wgpu".into(),
            ));
        }
        let info = &self.ctx.info;
        let adapter = adapter::ranked(&adapter::instance())
            .into_iter()
            .find(|a| a.get_info() == *info)
            .ok_or_else(|| Error::NoAdapter(format!("{} is gone", info.name)))?;
        let engine = Self::open(&adapter)?;
        engine.set_autotune(self.tuner.is_on());
        Ok(engine)
    }

    /// Computes a checked request; the gradient, when asked for, goes into `grad`. With `timed`,
    /// the kernel time comes back too.
    pub fn compute(
        &self,
        req: &Checked,
        grad: Option<&mut [f32]>,
        timed: bool,
    ) -> Result<(Output, Option<KernelTime>)> {
        let mut ws = self
            .workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.ctx
            .scoped(req.loss.name(), || self.run(&mut ws, req, grad, timed))
    }

    /// A buffer that a kernel binds whole, of `bytes` for `rows` rows, must fit one storage
    /// binding, and the rows a u32 index.
    fn fits_binding(&self, what: &str, rows: usize, bytes: u64) -> Result<()> {
        let binding = self.ctx.limits.max_storage_buffer_binding_size;
        if bytes <= binding && rows <= u32::MAX as usize {
            return Ok(());
        }
        Err(Error::TooLarge {
            what: "batch",
            reason: format!(
                "{rows} rows need {bytes} bytes of {what}, over the {binding}-byte storage binding"
            ),
        })
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

    fn run(
        &self,
        ws: &mut Workspace,
        req: &Checked,
        grad: Option<&mut [f32]>,
        timed: bool,
    ) -> Result<(Output, Option<KernelTime>)> {
        let limits = &self.ctx.limits;
        let row_bytes = req.batch as u64 * 4;
        // A vocabulary shard's gradient pass, from each row's merged statistics: no loss; its
        // statistics pass writes several values per row.
        let pass = req.shard.as_ref().map(|s| &s.pass);
        let given = pass.and_then(ShardPass::merged);
        let row_stride = pass.map_or(1, ShardPass::row_stride);
        self.fits_binding("per-row results", req.batch, row_bytes * row_stride)?;
        let reduction = req.options.reduction;
        let scalar = reduction != Reduction::None && given.is_none();
        let unreduced = |values: Vec<f32>| Loss::Unreduced {
            values,
            shape: req.unreduced_shape(),
        };
        if req.batch == 0 {
            let empty = Output {
                loss: if scalar {
                    Loss::Scalar(0.0)
                } else {
                    unreduced(Vec::new())
                },
                lse: req.options.lse.then(Vec::new),
                grad: None,
                valid_rows: 0,
            };
            return Ok((empty, None));
        }
        let elementwise = !scalar && req.loss.elementwise();
        // The per-row results come back in one buffer; a chunk's gradient and elementwise values
        // come back chunk by chunk (see `drain_chunk`), so device memory stays bounded.
        let loss_bytes = match (scalar, elementwise || given.is_some()) {
            (true, _) => 4,
            (false, true) => 0,
            (false, false) => row_bytes * row_stride,
        };
        let readback_len = loss_bytes + if req.options.lse { row_bytes } else { 0 };
        let mut element_values = vec![0.0_f32; if elementwise { req.elements() } else { 0 }];
        let divisors = if given.is_some() {
            None
        } else {
            req.divisors()
        };
        let Scales {
            main: alpha,
            z_loss: beta,
        } = given.map_or_else(|| req.scales(), |(_, given)| given);
        // A chunk's dense targets share its staging buffer with its input.
        let dense_share = if matches!(req.target, CheckedTarget::Dense(_)) {
            2
        } else {
            1
        };
        let chunks = row_chunks(req.batch, req.classes, chunk_cap(limits) / dense_share)?;
        let cpu_adapter = self.ctx.info.device_type == wgpu::DeviceType::Cpu;
        let spec = req.spec();
        let (variant, trial) = match given {
            Some(_) => (rows::Variant::given_stats(&spec, cpu_adapter), None),
            None => self.tuner.pick(&spec, cpu_adapter),
        };
        let kernel = rows::RowKernel::new(&spec, self.ctx.subgroups, variant);
        let segments = kernel.segments();
        let (
            arena,
            CallParams {
                chunks: chunk_offsets,
                passes,
            },
        ) = ParamArena::for_call(limits, &spec, &chunks, segments, (alpha, beta), scalar);

        let device = &self.ctx.device;
        let queue = &self.ctx.queue;
        queue.write_buffer(
            ws.params.get(device, arena.bytes.len() as u64).0,
            0,
            &arena.bytes,
        );
        let dense = match &req.target {
            CheckedTarget::Dense(t) => Some(*t),
            _ => None,
        };
        let upload = |slot: &mut Slot, bytes: &[u8]| {
            queue.write_buffer(slot.get(device, bytes.len() as u64).0, 0, bytes);
        };
        if let CheckedTarget::Classes(t) = &req.target {
            upload(&mut ws.class_targets, bytemuck::cast_slice(t));
        }
        if let Some(w) = req.weight {
            upload(&mut ws.weight, bytemuck::cast_slice(w));
        }
        if let Some(w) = req.pos_weight {
            upload(&mut ws.pos_weight, bytemuck::cast_slice(w));
        }
        ws.empty.get(device, UNUSED_BYTES);
        ws.empty_writable.get(device, UNUSED_BYTES);
        ws.row_values.get(device, row_bytes * row_stride);
        ws.row_lse.get(device, row_bytes);
        let (readback, _) = ws.readback.get(device, readback_len);
        let readback = readback.clone();
        let or_empty =
            |slot: &Slot, used: bool| current(if used { slot } else { &ws.empty }).clone();
        let class_targets = or_empty(
            &ws.class_targets,
            matches!(req.target, CheckedTarget::Classes(_)),
        );
        let weight = or_empty(&ws.weight, req.weight.is_some());
        let pos_weight = or_empty(&ws.pos_weight, req.pos_weight.is_some());

        let row_layout = &self.pipeline(&kernel.key).layout;
        // With BCE's or KL's elementwise values and an in-place gradient, the statistics first
        // (KL's values need the lse), then the values, then the gradient over the input.
        let pre_kernel = (elementwise && req.options.grad_in_place).then(|| {
            let mut stats_only = spec;
            stats_only.options.grad = false;
            stats_only.options.grad_in_place = false;
            rows::RowKernel::new(&stats_only, self.ctx.subgroups, variant)
        });
        let partials = match kernel.split.is_some() || rows::keeps_stats(&spec) {
            // Mirrors `Stats` in `rows.wgsl`: six f32.
            true => {
                let most_rows = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
                let bytes = most_rows as u64 * u64::from(segments) * 24;
                self.fits_binding("row statistics", most_rows, bytes)?;
                ws.partials.get(device, bytes).0.clone()
            }
            false => current(&ws.empty_writable).clone(),
        };
        let split_passes = kernel
            .split
            .as_ref()
            .map_or(0, |split| 1 + usize::from(split.grad.is_some()));
        let element_pipeline = elementwise.then(|| self.pipeline(&rows::elementwise_key(&spec)));
        // The statistics-only passes before an in-place gradient with elementwise values.
        let pre_passes = pre_kernel
            .as_ref()
            .map_or(0, |pre| 1 + usize::from(pre.split.is_some()));
        let mut timing = Timing::new(
            &self.ctx,
            timed || trial.is_some(),
            chunks.len() * (1 + usize::from(elementwise) + split_passes + pre_passes)
                + passes.len(),
        );
        let mut grad = grad;
        let mut pending: std::collections::VecDeque<Pending> = Default::default();
        for (k, (rows, &offset)) in chunks.iter().zip(&chunk_offsets).enumerate() {
            let elements = rows.start * req.classes..rows.end * req.classes;
            // Chunk k's results go where chunk k - 2's are still waiting to be read.
            if pending.len() == 2 {
                let done = pending.pop_front().expect("two pending");
                self.drain_chunk(&done, grad.as_deref_mut(), &mut element_values)?;
            }
            let input = req.input.bytes(elements.clone());
            let input_bound = round_up(input.len() as u64, 16);
            let dense_bytes: &[u8] =
                dense.map_or(&[], |t| bytemuck::cast_slice(&t[elements.clone()]));
            self.upload_chunk(ws, k, input, dense_bytes)?;
            let mut encoder = device.create_command_encoder(&Default::default());
            let input_buf = current(&ws.inputs[k % 2]);
            let dense_bound = round_up(dense_bytes.len() as u64, 16);
            let dense_buf = current(if dense_bytes.is_empty() {
                &ws.empty
            } else {
                &ws.dense[k % 2]
            });
            let grad_bytes = elements.len() as u64 * 4;
            let grad_bound = round_up(grad_bytes, 16);
            let separate_grad = grad.is_some() && !req.options.grad_in_place;
            let grad_buf = if separate_grad {
                ws.grad.get(device, grad_bound).0.clone()
            } else {
                current(&ws.empty_writable).clone()
            };
            let bindings = RowBindings {
                params: Bound::params::<rows::Params>(current(&ws.params)),
                input: Bound::range(input_buf, 0, input_bound),
                class_targets: &class_targets,
                dense: Bound::range(dense_buf, 0, dense_bound.max(16)),
                weight: &weight,
                pos_weight: &pos_weight,
                values: Bound::whole(current(&ws.row_values)),
                lse: current(&ws.row_lse),
                grad: Bound::whole(&grad_buf),
                partials: &partials,
                scales: current(&ws.empty),
                edges: current(&ws.empty_writable),
            };
            let row_bind = bindings.bind(device, row_layout);
            let chunk_rows = rows.len() as u32;
            if let Some((merged, _)) = given {
                let stats = merged_partials(&merged[rows.clone()], segments);
                queue.write_buffer(&partials, 0, bytemuck::cast_slice(&stats));
            }
            if let Some(pre) = &pre_kernel {
                let passes = (&mut timing, &mut encoder, &row_bind, offset, chunk_rows);
                self.row_passes(passes, pre, false)?;
            }
            let element_out = match element_pipeline {
                Some(_) => {
                    let count = elements.len() as u64;
                    Some(ws.elements.get(device, count * 4).0.clone())
                }
                None => None,
            };
            let elementwise_pass = |timing: &mut Timing, encoder: &mut wgpu::CommandEncoder| match (
                &element_pipeline,
                &element_out,
            ) {
                (Some(pipeline), Some(out)) => {
                    let count = elements.len() as u64;
                    let values = Bound::range(out, 0, count * 4);
                    let chunk = (offset, count);
                    self.elementwise_pass(timing, encoder, pipeline, &bindings, values, chunk)
                }
                _ => Ok(()),
            };
            if pre_kernel.is_some() {
                elementwise_pass(&mut timing, &mut encoder)?;
            }
            let passes = (&mut timing, &mut encoder, &row_bind, offset, chunk_rows);
            self.row_passes(passes, &kernel, given.is_some())?;
            if pre_kernel.is_none() {
                elementwise_pass(&mut timing, &mut encoder)?;
            }
            let chunk_readback = if grad.is_some() || elementwise {
                let bytes = grad_bytes * (u64::from(grad.is_some()) + u64::from(elementwise));
                Some(ws.chunk_readback[k % 2].get(device, bytes).0.clone())
            } else {
                None
            };
            if let (true, Some(to)) = (grad.is_some(), &chunk_readback) {
                let source = if separate_grad { &grad_buf } else { input_buf };
                encoder.copy_buffer_to_buffer(source, 0, to, 0, grad_bytes);
            }
            if let Some(out) = &element_out {
                let at = if grad.is_some() { grad_bytes } else { 0 };
                let to = chunk_readback
                    .as_ref()
                    .expect("elementwise values come back");
                encoder.copy_buffer_to_buffer(out, 0, to, at, elements.len() as u64 * 4);
            }
            let submitted = queue.submit([encoder.finish()]);
            if let Some(buffer) = chunk_readback {
                pending.push_back(Pending {
                    buffer,
                    after: submitted,
                    elements,
                    grad: grad.is_some(),
                });
            }
        }

        let mut encoder = device.create_command_encoder(&Default::default());
        if scalar {
            let source = self.reduce(
                &mut timing,
                &mut encoder,
                current(&ws.params),
                &passes,
                current(&ws.row_values).clone(),
                |i, bytes| ws.sums[i % 2].get(device, bytes).0.clone(),
            )?;
            encoder.copy_buffer_to_buffer(&source, 0, &readback, 0, 4);
        } else if !elementwise {
            encoder.copy_buffer_to_buffer(current(&ws.row_values), 0, &readback, 0, loss_bytes);
        }
        if req.options.lse {
            encoder.copy_buffer_to_buffer(
                current(&ws.row_lse),
                0,
                &readback,
                loss_bytes,
                row_bytes,
            );
        }
        queue.submit([encoder.finish()]);
        // Map the staging buffers again now, in the same wait as the readback, so that the next
        // call can write into them at once.
        self.remap_staging(ws, Some(&readback))?;
        // Straight from the mapped bytes into f32 storage: no intermediate copy of the gradient,
        // and no assumption about the mapping's alignment.
        let floats = |bytes: &[u8]| {
            let mut out = vec![0.0_f32; bytes.len() / 4];
            bytemuck::cast_slice_mut(&mut out).copy_from_slice(bytes);
            out
        };
        let (head, lse) = {
            let view = readback.get_mapped_range(..readback_len.max(4))?;
            (
                floats(&view[..loss_bytes as usize]),
                floats(&view[loss_bytes as usize..readback_len as usize]),
            )
        };
        readback.unmap();
        for done in pending {
            self.drain_chunk(&done, grad.as_deref_mut(), &mut element_values)?;
        }
        let loss = match divisors {
            _ if elementwise => unreduced(element_values),
            _ if !scalar => unreduced(head),
            None => Loss::Scalar(0.0),
            Some(_) => Loss::Scalar(head[0]),
        };
        let output = Output {
            loss,
            lse: req.options.lse.then_some(lse),
            grad: None,
            valid_rows: req.valid_rows,
        };
        let time = timing.finish(&self.ctx)?;
        if let (Some(trial), Some(t)) = (trial, time) {
            self.tuner
                .record(trial, t.seconds / req.elements().max(1) as f64);
        }
        Ok((output, time.filter(|_| timed)))
    }

    /// Reads one chunk's results back, once the submission that copied them is done: its
    /// gradient into `grad`, then its elementwise values into `values`, at its elements.
    fn drain_chunk(
        &self,
        done: &Pending,
        grad: Option<&mut [f32]>,
        values: &mut [f32],
    ) -> Result<()> {
        let count = done.elements.len();
        self.ctx
            .map_after(&done.buffer, wgpu::MapMode::Read, Some(done.after.clone()))?;
        {
            let view = done.buffer.get_mapped_range(..)?;
            let mut at = 0;
            if let (true, Some(grad)) = (done.grad, grad) {
                bytemuck::cast_slice_mut(&mut grad[done.elements.clone()])
                    .copy_from_slice(&view[..count * 4]);
                at = count * 4;
            }
            if !values.is_empty() {
                bytemuck::cast_slice_mut(&mut values[done.elements.clone()])
                    .copy_from_slice(&view[at..at + count * 4]);
            }
        }
        done.buffer.unmap();
        Ok(())
    }

    /// Bytes of device memory the engine keeps between calls, in its reused buffers.
    pub fn pooled_bytes(&self) -> u64 {
        let ws = self
            .workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ws.slots().map(Slot::bytes).sum()
    }

    /// Turns the autotune on or off (see `tune.rs`).
    pub fn set_autotune(&self, on: bool) {
        self.tuner.set(on);
    }

    /// Whether the autotune still has trials to run for some class of shapes.
    pub fn autotuning(&self) -> bool {
        self.tuner.trying()
    }

    /// The autotune's state, a line per class of shapes.
    pub fn autotuned(&self) -> Vec<String> {
        self.tuner.report()
    }

    /// Maps every staging buffer that a call left unmapped, and `readback` for reading, in one
    /// wait.
    fn remap_staging(&self, ws: &mut Workspace, readback: Option<&wgpu::Buffer>) -> Result<()> {
        let mut maps: Vec<(&wgpu::Buffer, wgpu::MapMode)> = ws
            .staging
            .iter()
            .filter(|staging| !staging.mapped)
            .filter_map(|staging| staging.slot.current())
            .map(|buf| (buf, wgpu::MapMode::Write))
            .collect();
        maps.extend(readback.map(|buf| (buf, wgpu::MapMode::Read)));
        self.ctx.map_all(&maps)?;
        for staging in &mut ws.staging {
            staging.mapped = true;
        }
        Ok(())
    }

    /// Uploads `data` the way a call uploads its input, in the same chunks through the same
    /// staging buffers, and returns the seconds from the first write until the device holds it
    /// all: the upload alone, for the benchmark.
    pub fn upload(&self, data: &[f32]) -> Result<f64> {
        let mut ws = self
            .workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.ctx.scoped("upload", || {
            let cap = chunk_cap(&self.ctx.limits) as usize;
            let start = std::time::Instant::now();
            for (k, piece) in data.chunks((cap / 4).max(4)).enumerate() {
                self.upload_chunk(&mut ws, k, bytemuck::cast_slice(piece), &[])?;
            }
            self.remap_staging(&mut ws, None)?;
            Ok(start.elapsed().as_secs_f64())
        })
    }

    /// Uploads chunk `k`'s input (and dense targets) into the workspace's input (and dense)
    /// buffers of its parity, through staging buffer k % 2. The copies go in a submission of
    /// their own, so that the staging buffer can be written again (for chunk k + 2) as soon as
    /// they are done, while kernels still run.
    fn upload_chunk(&self, ws: &mut Workspace, k: usize, input: &[u8], dense: &[u8]) -> Result<()> {
        let device = &self.ctx.device;
        let input_bound = round_up(input.len() as u64, 16);
        let staging = self.stage(&mut ws.staging[k % 2], input, input_bound, dense)?;
        let mut encoder = device.create_command_encoder(&Default::default());
        let (input_buf, _) = ws.inputs[k % 2].get(device, input_bound);
        // Copies come in whole u32 words; `stage` padded an odd count of f16 values.
        let input_len = round_up(input.len() as u64, 4);
        encoder.copy_buffer_to_buffer(&staging, 0, input_buf, 0, input_len);
        if !dense.is_empty() {
            let (dense_buf, _) = ws.dense[k % 2].get(device, round_up(dense.len() as u64, 16));
            encoder.copy_buffer_to_buffer(&staging, input_bound, dense_buf, 0, dense.len() as u64);
        }
        ws.staging[k % 2].copied = Some(self.ctx.queue.submit([encoder.finish()]));
        Ok(())
    }

    /// Writes one chunk's input, and its dense targets at `dense_at`, into a staging buffer,
    /// mapping it first when an earlier chunk left it unmapped.
    fn stage(
        &self,
        staging: &mut Staging,
        input: &[u8],
        dense_at: u64,
        dense: &[u8],
    ) -> Result<wgpu::Buffer> {
        let (buf, fresh) = staging.slot.get(
            &self.ctx.device,
            dense_at + round_up(dense.len() as u64, 16),
        );
        if !fresh && !staging.mapped {
            self.ctx
                .map_after(buf, wgpu::MapMode::Write, staging.copied.take())?;
        }
        // Mapped ranges start on 8-byte boundaries and copies come in whole u32 words; an odd
        // count of f16 values is padded with zeros.
        let align = wgpu::MAP_ALIGNMENT as usize;
        let whole = input.len() / align * align;
        if whole > 0 {
            buf.get_mapped_range_mut(..whole as u64)?
                .copy_from_slice(&input[..whole]);
        }
        if whole < input.len() {
            let mut tail = vec![0_u8; align];
            tail[..input.len() - whole].copy_from_slice(&input[whole..]);
            buf.get_mapped_range_mut(whole as u64..(whole + align) as u64)?
                .copy_from_slice(&tail);
        }
        if !dense.is_empty() {
            buf.get_mapped_range_mut(dense_at..dense_at + dense.len() as u64)?
                .copy_from_slice(dense);
        }
        buf.unmap();
        staging.mapped = false;
        Ok(buf.clone())
    }

    /// The reduction passes (workgroups, params offset) that sum `source` to one value, each
    /// writing into the buffer `out(i, bytes)` gives pass i; returns the last, whose first f32 is
    /// the sum.
    fn reduce(
        &self,
        timing: &mut Timing,
        encoder: &mut wgpu::CommandEncoder,
        params: &wgpu::Buffer,
        passes: &[(u32, u32)],
        mut source: wgpu::Buffer,
        mut out: impl FnMut(usize, u64) -> wgpu::Buffer,
    ) -> Result<wgpu::Buffer> {
        let reduce = self.pipeline(&reduce::key());
        for (i, &(groups, offset)) in passes.iter().enumerate() {
            let sums = out(i, u64::from(groups) * 4);
            let bind = ReduceBindings {
                params: Bound::params::<reduce::Params>(params),
                values: &source,
                sums: &sums,
            }
            .bind(&self.ctx.device, &reduce.layout);
            self.dispatch(timing, encoder, &reduce.pipeline, &bind, offset, groups)?;
            source = sums;
        }
        Ok(source)
    }

    /// A row kernel's passes over one chunk of `rows` rows, all with one bind group (every row
    /// pipeline's layout has the same entries, which makes them group-equivalent): the first
    /// pass, and for split rows the merge and the gradient pass; with `given` statistics, the
    /// gradient pass alone.
    fn row_passes(
        &self,
        (timing, encoder, bind, offset, rows): (
            &mut Timing,
            &mut wgpu::CommandEncoder,
            &wgpu::BindGroup,
            u32,
            u32,
        ),
        kernel: &rows::RowKernel,
        given: bool,
    ) -> Result<()> {
        let groups = kernel.groups(rows);
        if !given {
            let first = self.pipeline(&kernel.key);
            self.dispatch(timing, encoder, &first.pipeline, bind, offset, groups)?;
        }
        if let Some(split) = &kernel.split {
            if !given {
                let merge = self.pipeline(&split.merge);
                let merge_groups = rows::Split::merge_groups(rows);
                self.dispatch(timing, encoder, &merge.pipeline, bind, offset, merge_groups)?;
            }
            if let Some(key) = &split.grad {
                let grad = self.pipeline(key);
                self.dispatch(timing, encoder, &grad.pipeline, bind, offset, groups)?;
            }
        }
        Ok(())
    }

    /// BCE's or KL's `elementwise` pass over a chunk of `count` elements at params `offset`,
    /// writing into `values`.
    fn elementwise_pass(
        &self,
        timing: &mut Timing,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &pipelines::Pipeline,
        bindings: &RowBindings,
        values: Bound,
        (offset, count): (u32, u64),
    ) -> Result<()> {
        let bind = RowBindings {
            values,
            ..*bindings
        }
        .bind(&self.ctx.device, &pipeline.layout);
        let groups = rows::elementwise_groups(count);
        self.dispatch(timing, encoder, &pipeline.pipeline, &bind, offset, groups)
    }

    /// One compute pass of `groups` workgroups, timed as `timing` says.
    fn dispatch(
        &self,
        timing: &mut Timing,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        bind: &wgpu::BindGroup,
        offset: u32,
        groups: u32,
    ) -> Result<()> {
        let (x, y) = self.grid(groups);
        timing.pass(&self.ctx, encoder, |pass| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind, &[offset]);
            pass.dispatch_workgroups(x, y, 1);
        })
    }
}

fn current(slot: &Slot) -> &wgpu::Buffer {
    slot.current().expect("slot filled earlier in this call")
}

/// Rows' merged statistics (a vocabulary shard's gradient pass) as `segment_grad` reads them:
/// `Stats` in `rows.wgsl`, in each row's first of its `segments` slots.
fn merged_partials(merged: &[crate::request::MergedRow], segments: u32) -> Vec<[f32; 6]> {
    merged
        .iter()
        .flat_map(|&(m, s, b)| {
            let mut row = vec![[0.0; 6]; segments as usize];
            row[0] = [m, s, 0.0, 0.0, b, 0.0];
            row
        })
        .collect()
}

#[cfg(test)]
mod faults {
    use super::*;
    use crate::request::Request;

    /// A fresh engine on every adapter; with `XENT_REQUIRE_GPU=1`, none is a failure.
    fn engines() -> Vec<GpuEngine> {
        let engines: Vec<GpuEngine> = adapter::ranked(&adapter::instance())
            .iter()
            .map(|a| GpuEngine::open(a).expect("the adapter opens"))
            .collect();
        assert!(
            !(engines.is_empty() && std::env::var("XENT_REQUIRE_GPU").is_ok_and(|v| v == "1")),
            "XENT_REQUIRE_GPU=1 but wgpu found no adapter"
        );
        engines
    }

    /// The engine still gives the reference's loss on a fresh batch.
    fn still_works(engine: &GpuEngine) {
        use rand::Rng;
        let mut rng = rand::rng();
        let x: Vec<f32> = (0..6 * 50).map(|_| rng.random_range(-8.0..8.0)).collect();
        let t: Vec<i64> = (0..6).map(|_| rng.random_range(0..50)).collect();
        let request = Request::cross_entropy(&x[..], [6, 50], &t[..]);
        let checked = request.check().unwrap();
        let (out, _) = engine.compute(&checked, None, false).unwrap();
        let expected = crate::cpu::reference::compute(&checked, None);
        let (a, e) = (out.loss.scalar().unwrap(), expected.loss.scalar().unwrap());
        assert!((a - e).abs() <= 1e-5 * e.abs(), "{a} against {e}");
    }

    #[test]
    fn a_buffer_over_the_limits_is_an_err_and_the_engine_still_works() {
        for engine in engines() {
            let limit = engine.ctx.limits.max_buffer_size;
            let err = engine
                .ctx
                .scoped("an oversized allocation", || {
                    let buffer = engine.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("xent test: over the limit"),
                        size: limit + 256,
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: false,
                    });
                    drop(buffer);
                    Ok(())
                })
                .unwrap_err();
            eprintln!("{}: {err}", engine.info().name);
            assert!(
                matches!(
                    err,
                    Error::OutOfMemory { .. }
                        | Error::Wgpu {
                            during: "an oversized allocation",
                            ..
                        }
                ),
                "{err:?}"
            );
            assert_eq!(err.to_string().lines().count(), 1);
            still_works(&engine);
        }
    }

    #[test]
    fn a_lost_device_is_an_err_and_the_engine_can_be_rebuilt() {
        for engine in engines() {
            still_works(&engine);
            engine.ctx.device.destroy();
            let x = [0.5_f32, -1.0, 2.0, 0.25];
            let request = Request::cross_entropy(&x[..], [2, 2], &[1_i64, 0][..]);
            let err = engine
                .compute(&request.check().unwrap(), None, false)
                .unwrap_err();
            eprintln!("{} after destroy: {err}", engine.info().name);
            assert!(
                matches!(
                    err,
                    Error::DeviceLost(_) | Error::Wgpu { .. } | Error::Map(_) | Error::Poll(_)
                ),
                "{err:?}"
            );
            assert_eq!(err.to_string().lines().count(), 1);
            let rebuilt = engine.reopen().unwrap();
            assert_eq!(rebuilt.info(), engine.info());
            still_works(&rebuilt);
        }
    }

    #[test]
    fn a_callers_device_is_not_reopened_by_xent() {
        for engine in engines() {
            let borrowed = GpuEngine::borrowed(engine.ctx.device.clone(), engine.ctx.queue.clone());
            let err = borrowed
                .reopen()
                .err()
                .expect("a borrowed device is refused");
            assert!(matches!(err, Error::DeviceLost(_)), "{err:?}");
        }
    }
}
