//! Host side of `shaders/targets.wgsl`: class targets that only the device holds, checked and
//! encoded there, the first bad one named in the status, and a mean's scales computed from them.

use super::GpuEngine;
use super::bindings::{Bound, TargetBindings};
use super::pipelines::Key;
use super::shaders::Module;
use super::shaders::TARGETS_WORKGROUP;
use super::timing::Timing;
use crate::error::Result;
use crate::request::IndexType;

/// Mirrors `Params` in `targets.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct TargetParams {
    pub rows: u32,
    pub classes: u32,
    pub ignore_lo: u32,
    pub ignore_hi: u32,
    pub ln_lo: u32,
    pub ln_hi: u32,
    pub first: u32,
    pub held: u32,
}

/// The buffers of the target passes.
pub(crate) struct TargetBuffers<'b> {
    /// The caller's class indices.
    pub raw: Bound<'b>,
    pub index: IndexType,
    /// The class weights, and whether there are any.
    pub weight: (&'b wgpu::Buffer, bool),
    pub encoded: &'b wgpu::Buffer,
    pub status: &'b wgpu::Buffer,
    pub scales: &'b wgpu::Buffer,
}

impl GpuEngine {
    /// Records `encode_targets` and `device_scales` for `batch` rows, with their params at
    /// `offset` of `params`: the device's class targets checked and encoded, the first bad one
    /// named in the status, and the mean's scales.
    pub(super) fn encode_targets(
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
                raw: b.raw,
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
}
