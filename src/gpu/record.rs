//! Recording compute passes into an encoder: one dispatch on a grid within the device's limits, a
//! plan's passes over one chunk, and the reduction that sums the rows.

use super::GpuEngine;
use super::bindings::{Bound, ReduceBindings, RowBindings};
use super::pipelines::Pipeline;
use super::plan::Plan;
use super::rows::{self, RowKernel};
use super::timing::Timing;
use super::tree_sum;
use crate::error::Result;

/// Where a chunk's passes go, and what they bind: the timing, the encoder, the row bind group,
/// its params' dynamic offset, and the chunk's rows.
type RowPass<'p> = (
    &'p mut Timing,
    &'p mut wgpu::CommandEncoder,
    &'p wgpu::BindGroup,
    u32,
    u32,
);

impl Plan<'_> {
    /// Records the passes over chunk `k`, in the plan's order, bound as `bindings` says (every
    /// row pipeline's layout has the same entries, which makes one bind group serve them all);
    /// the `elementwise` pass writes into `values`.
    pub fn record_chunk(
        &self,
        engine: &GpuEngine,
        (timing, encoder): (&mut Timing, &mut wgpu::CommandEncoder),
        k: usize,
        bindings: &RowBindings,
        values: Option<Bound>,
    ) -> Result<()> {
        let rows = &self.chunks[k];
        let offset = self.params.chunks[k];
        let row_bind = bindings.bind(&engine.ctx.device, &self.row_pipeline.layout);
        let chunk_rows = rows.len() as u32;
        if let Some(pre) = &self.pre_kernel {
            let passes = (&mut *timing, &mut *encoder, &row_bind, offset, chunk_rows);
            engine.row_passes(passes, pre, false)?;
        }
        let count = rows.len() as u64 * self.call.spec.classes as u64;
        let elementwise = |timing: &mut Timing, encoder: &mut wgpu::CommandEncoder| match (
            &self.elementwise,
            values,
        ) {
            (Some(pipeline), Some(values)) => engine.elementwise_pass(
                (timing, encoder),
                pipeline,
                bindings,
                values,
                (offset, count),
            ),
            _ => Ok(()),
        };
        if self.pre_kernel.is_some() {
            elementwise(timing, encoder)?;
        }
        let passes = (&mut *timing, &mut *encoder, &row_bind, offset, chunk_rows);
        engine.row_passes(passes, &self.kernel, self.call.merged.is_some())?;
        if self.pre_kernel.is_none() {
            elementwise(timing, encoder)?;
        }
        if let Some(stitch) = &self.stitch {
            let groups = rows::Split::merge_groups(chunk_rows);
            engine.dispatch(timing, encoder, &stitch.pipeline, &row_bind, offset, groups)?;
        }
        Ok(())
    }

    /// Records the reduction of a scalar call: the passes that sum `source` (the row values) to
    /// one value, pass i writing into the buffer `out(i, bytes)` makes. Returns the last, whose
    /// first f32 is the sum; `None` where the call has no scalar.
    pub fn record_reduce(
        &self,
        engine: &GpuEngine,
        (timing, encoder): (&mut Timing, &mut wgpu::CommandEncoder),
        params: &wgpu::Buffer,
        mut source: wgpu::Buffer,
        mut out: impl FnMut(usize, u64) -> Result<wgpu::Buffer>,
    ) -> Result<Option<wgpu::Buffer>> {
        if !self.call.scalar {
            return Ok(None);
        }
        let reduce = engine.pipeline(&tree_sum::key());
        for (i, &(groups, offset)) in self.params.passes.iter().enumerate() {
            let sums = out(i, u64::from(groups) * 4)?;
            let bind = ReduceBindings {
                params: Bound::params::<tree_sum::Params>(params),
                values: &source,
                sums: &sums,
            }
            .bind(&engine.ctx.device, &reduce.layout);
            engine.dispatch(timing, encoder, &reduce.pipeline, &bind, offset, groups)?;
            source = sums;
        }
        Ok(Some(source))
    }
}

impl GpuEngine {
    /// One compute pass of `groups` workgroups, timed as `timing` says.
    pub(super) fn dispatch(
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

    /// A 2-D grid of `groups` workgroups within the per-dimension limit.
    fn grid(&self, groups: u32) -> (u32, u32) {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension.max(1);
        let x = groups.clamp(1, max);
        (x, groups.div_ceil(x))
    }

    /// A row kernel's passes over one chunk: the first pass, and for split rows the merge and the
    /// gradient pass; from `merged` statistics, the gradient pass alone.
    fn row_passes(
        &self,
        (timing, encoder, bind, offset, rows): RowPass<'_>,
        kernel: &RowKernel,
        merged: bool,
    ) -> Result<()> {
        let groups = kernel.groups(rows);
        if !merged {
            let first = self.pipeline(&kernel.key);
            self.dispatch(timing, encoder, &first.pipeline, bind, offset, groups)?;
        }
        if let Some(split) = &kernel.split {
            if !merged {
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
        (timing, encoder): (&mut Timing, &mut wgpu::CommandEncoder),
        pipeline: &Pipeline,
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
}
