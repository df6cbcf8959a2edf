//! The plan of one loss call, decided once from a checked request, host or device: the row
//! kernel's variant and passes, the row chunks, the params, the row statistics, the passes before
//! and after the row kernel, and the reduction. The host path (`host.rs`) and the device path
//! (`resident.rs`) both record it (`record.rs`); they differ only in where its buffers come from.

use std::ops::Range;
use std::sync::Arc;

use super::GpuEngine;
use super::chunk::{chunk_cap, device_chunks, row_chunks};
use super::params::{CallParams, ParamArena};
use super::pipelines::Pipeline;
use super::rows::{self, RowKernel};
use super::spec::{Residence, Spec};
use super::tune::Trial;
use super::variant::Variant;
use crate::error::Result;
use crate::request::{
    Checked, DeviceRows, Dtype, MergedRow, ROW_STATS, Reduction, Scales, ShardPass, TargetKind,
};

/// Bytes of one row's (or one segment's) statistics: `Stats` in `rows_stats.wgsl`, six f32.
pub(super) const SEGMENT_STATS_BYTES: u64 = 24;

/// A checked request as its plan reads it, whichever side holds its values: what its kernels are
/// specialized to, and what comes out of them.
pub(crate) struct Call<'r> {
    pub spec: Spec,
    pub residence: Residence,
    /// A vocabulary shard's gradient pass: each row's merged statistics, which the pass reads
    /// instead of computing its own.
    pub merged: Option<&'r [MergedRow]>,
    /// The kernels' scales: the reduction's, or those of the merged shards.
    pub scales: Scales,
    /// The rows are summed to one value on the device (a scalar reduction).
    pub scalar: bool,
    /// Each element has a value (BCE's and KL's `none`), from the `elementwise` pass.
    pub elementwise: bool,
    /// f32 values the row kernels write per row: a shard's statistics pass writes `ROW_STATS`.
    pub row_stride: u64,
}

impl<'r> Call<'r> {
    /// A host call on `req`.
    pub fn host(engine: &GpuEngine, req: &'r Checked) -> Result<Self> {
        let spec = Spec::new(
            &req.head(),
            req.input.dtype(),
            req.target.kind(),
            req.shard.as_ref().map(|s| s.shard),
            Residence::Host,
        );
        let pass = req.shard.as_ref().map(|s| &s.pass);
        Self::new(engine, spec, Residence::Host, pass, || req.scales())
    }

    /// A device call on the rows `req`, whose values are of `dtype`.
    pub fn device(engine: &GpuEngine, req: &DeviceRows<'_, 'r>, dtype: Dtype) -> Result<Self> {
        let residence = Residence::Device {
            device_scales: req.device_scales(),
        };
        let spec = Spec::new(
            &req.head,
            dtype,
            req.target_kind(),
            req.shard.map(|(s, _)| s),
            residence,
        );
        let pass = req.shard.map(|(_, pass)| pass);
        Self::new(engine, spec, residence, pass, || req.scales())
    }

    /// The call of `spec`, or of its shard's `pass`, whose own reduction has `scales`; its
    /// per-row results must fit one storage binding.
    fn new(
        engine: &GpuEngine,
        spec: Spec,
        residence: Residence,
        pass: Option<&'r ShardPass>,
        scales: impl FnOnce() -> Scales,
    ) -> Result<Self> {
        let merged = pass.and_then(ShardPass::merged);
        let scalar = spec.options.reduction != Reduction::None && merged.is_none();
        let call = Call {
            merged: merged.map(|(rows, _)| rows),
            scales: merged.map_or_else(scales, |(_, scales)| scales),
            scalar,
            elementwise: !scalar && spec.loss.elementwise(),
            row_stride: match pass {
                Some(ShardPass::Stats) => ROW_STATS as u64,
                Some(ShardPass::Grad { .. }) | None => 1,
            },
            spec,
            residence,
        };
        engine.fits_binding("per-row results", spec.batch, call.row_values_bytes())?;
        Ok(call)
    }

    /// Bytes of one f32 a row of the batch: each row's lse.
    pub fn row_bytes(&self) -> u64 {
        self.spec.batch as u64 * 4
    }

    /// Bytes of the values the row kernels write per row: `row_stride` f32 a row.
    pub fn row_values_bytes(&self) -> u64 {
        self.row_bytes() * self.row_stride
    }

    /// The gradient is written into a buffer of its own: it is asked for, and not in place.
    pub fn separate_grad(&self) -> bool {
        self.spec.options.grad && !self.spec.options.grad_in_place
    }

    /// What the call returns when it has no rows, in which case it records nothing and has no
    /// plan; `None` when it has rows.
    pub fn empty(&self) -> Option<Empty> {
        (self.spec.batch == 0).then(|| Empty {
            scalar: self.scalar.then_some(0.0),
        })
    }
}

/// What a call of no rows returns: its per-row and elementwise results are empty.
pub(crate) struct Empty {
    /// The scalar reduction's value, where the call has one: the sum or mean of nothing is 0.
    pub scalar: Option<f32>,
}

/// The buffers that every chunk of a call binds alike, whoever made them: the host path's reused
/// workspace, or a device call's own.
pub(crate) struct SharedBuffers {
    pub params: wgpu::Buffer,
    pub class_targets: wgpu::Buffer,
    pub weight: wgpu::Buffer,
    pub pos_weight: wgpu::Buffer,
    pub partials: wgpu::Buffer,
    pub scales: wgpu::Buffer,
    pub edges: wgpu::Buffer,
    /// Bound where a pass reads nothing.
    pub empty: wgpu::Buffer,
    /// Bound where a pass writes nothing.
    pub empty_writable: wgpu::Buffer,
}

/// The passes of one call, in the order they run on each chunk: the statistics-only row passes
/// (`pre_kernel`), the row kernel's passes, the `elementwise` pass (before the row kernel when
/// there is a `pre_kernel`), and `stitch_edges`; then, over the whole batch, the reduction.
pub(crate) struct Plan<'r> {
    pub call: Call<'r>,
    /// The row chunks: each within one storage binding (and, from the host, one staging buffer).
    pub chunks: Vec<Range<usize>>,
    pub kernel: RowKernel,
    /// The row kernel's first pipeline; every row pass binds one bind group of its layout.
    pub row_pipeline: Arc<Pipeline>,
    /// With elementwise values and an in-place gradient, the row statistics come first (KL's
    /// values need the lse), then the values, then the gradient over the input.
    pub pre_kernel: Option<RowKernel>,
    /// BCE's and KL's `elementwise` pass, for the `none` reduction.
    pub elementwise: Option<Arc<Pipeline>>,
    /// `stitch_edges`, for a packed gradient of an odd C.
    pub stitch: Option<Arc<Pipeline>>,
    /// Bytes of the row statistics the passes keep, where they keep any (split rows, KL's
    /// `none`): enough for the largest chunk.
    pub partials: Option<u64>,
    /// Bytes of a packed gradient's row edges, for the largest chunk.
    pub edges: Option<u64>,
    pub arena: ParamArena,
    pub params: CallParams,
    /// The autotune's trial that a host call runs, whose kernel time is to be recorded.
    pub trial: Option<Trial>,
}

impl<'r> Plan<'r> {
    /// The plan of `call` on `engine`'s device. A host call may run one of the autotune's trials;
    /// a device call runs what the autotune has chosen, since it is not timed.
    pub fn new(engine: &GpuEngine, call: Call<'r>) -> Result<Self> {
        let ctx = &engine.ctx;
        let limits = &ctx.limits;
        let spec = &call.spec;
        let chunks = match call.residence {
            Residence::Host => {
                // A chunk's dense targets share its staging buffer with its input.
                let share = if spec.target == TargetKind::Dense {
                    2
                } else {
                    1
                };
                row_chunks(spec.batch, spec.classes, chunk_cap(limits) / share)?
            }
            Residence::Device { .. } => device_chunks(
                [spec.batch, spec.classes],
                limits.max_storage_buffer_binding_size,
                u64::from(limits.min_storage_buffer_offset_alignment),
            )?,
        };
        let trials = call.residence == Residence::Host;
        Self::over_chunks(engine, call, chunks, trials)
    }

    /// The plan of `call` over the row chunks `chunks`, which its caller has cut (a linear
    /// head's logits, which the device makes a chunk at a time); with `trials`, it may run one
    /// of the autotune's trials, and otherwise it runs what the autotune has chosen.
    pub fn over_chunks(
        engine: &GpuEngine,
        call: Call<'r>,
        chunks: Vec<Range<usize>>,
        trials: bool,
    ) -> Result<Self> {
        let ctx = &engine.ctx;
        let limits = &ctx.limits;
        let spec = &call.spec;
        let (variant, trial) = match call.merged {
            Some(_) => (Variant::merged_stats(spec, ctx.cpu_adapter), None),
            None if trials => engine.tuner.pick(spec, ctx.cpu_adapter),
            None => (engine.tuner.settled(spec, ctx.cpu_adapter), None),
        };
        let kernel = RowKernel::new(spec, ctx.subgroups, variant);
        let segments = kernel.segments();
        let (arena, params) =
            ParamArena::for_call(limits, spec, &chunks, segments, call.scales, call.scalar);
        let most_rows = chunks.iter().map(Range::len).max().unwrap_or(0);
        let partials = (kernel.split.is_some() || rows::keeps_stats(spec))
            .then(|| most_rows as u64 * u64::from(segments) * SEGMENT_STATS_BYTES);
        if let Some(bytes) = partials {
            engine.fits_binding("row statistics", most_rows, bytes)?;
        }
        let edges = spec.grad_packed.then_some(most_rows as u64 * 8);
        if let Some(bytes) = edges {
            engine.fits_binding("gradient row edges", most_rows, bytes)?;
        }
        let pre_kernel = (call.elementwise && spec.options.grad_in_place).then(|| {
            let mut stats_only = *spec;
            stats_only.options.grad = false;
            stats_only.options.grad_in_place = false;
            stats_only.grad_packed = false;
            RowKernel::new(&stats_only, ctx.subgroups, variant)
        });
        let row_pipeline = engine.pipeline(&kernel.key);
        let elementwise = call
            .elementwise
            .then(|| engine.pipeline(&rows::elementwise_key(spec)));
        let stitch = (spec.grad_packed && spec.classes % 2 == 1)
            .then(|| engine.pipeline(&rows::stitch_key(spec)));
        Ok(Plan {
            call,
            chunks,
            kernel,
            row_pipeline,
            pre_kernel,
            elementwise,
            stitch,
            partials,
            edges,
            arena,
            params,
            trial,
        })
    }

    /// The most compute passes the call records: what its timing must have room for.
    pub fn passes(&self) -> usize {
        let split = self
            .kernel
            .split
            .as_ref()
            .map_or(0, |split| 1 + usize::from(split.grad.is_some()));
        let pre = self
            .pre_kernel
            .as_ref()
            .map_or(0, |pre| 1 + usize::from(pre.split.is_some()));
        let per_chunk = 1
            + usize::from(self.elementwise.is_some())
            + split
            + pre
            + usize::from(self.stitch.is_some());
        self.chunks.len() * per_chunk + self.params.passes.len()
    }

    /// For a shard's gradient pass, chunk `k`'s rows' merged statistics as `segment_grad` reads
    /// them: `Stats` in `rows_stats.wgsl`, in each row's first of its segments' slots.
    pub fn merged_partials(&self, k: usize) -> Option<Vec<[f32; 6]>> {
        let segments = self.kernel.segments() as usize;
        let merged = &self.call.merged?[self.chunks[k].clone()];
        Some(
            merged
                .iter()
                .flat_map(|&(m, s, b)| {
                    let mut row = vec![[0.0; 6]; segments];
                    row[0] = [m, s, 0.0, 0.0, b, 0.0];
                    row
                })
                .collect(),
        )
    }
}
