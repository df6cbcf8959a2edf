//! Host side of `shaders/probe.wgsl`: the adapter's own read bandwidth over given bytes.

use super::GpuEngine;
use super::bindings::{Bound, ProbeBindings};
use super::chunk::{WORD_BYTES, chunk_cap};
use super::params::ParamArena;
use super::pipelines::Key;
use super::shaders::Module;
use super::timing::Timing;
use crate::error::{Error, Result};
use crate::output::KernelTime;

/// Mirrors `Params` in `probe.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    pub quads: u32,
    pub per_group: u32,
    _pad: [u32; 2],
}

/// Quads each workgroup reads: 64 KiB, a row of 16 384 classes.
const QUADS_PER_GROUP: u32 = 4096;

impl GpuEngine {
    /// Uploads `data` (not timed) in the same chunks as a loss call, then reads and sums it once
    /// on the device, and returns the time of that read.
    pub fn bandwidth_probe(&self, data: &[f32]) -> Result<KernelTime> {
        self.ctx.scoped("bandwidth probe", || {
            let device = &self.ctx.device;
            let limits = &self.ctx.limits;
            let cap = chunk_cap(limits) as usize / WORD_BYTES as usize * 4;
            let pieces: Vec<&[f32]> = data.chunks(cap.max(4)).collect();
            let mut arena = ParamArena::new(limits);
            let offsets: Vec<u32> = pieces
                .iter()
                .map(|piece| {
                    arena.push(&Params {
                        quads: piece.len().div_ceil(4) as u32,
                        per_group: QUADS_PER_GROUP,
                        _pad: [0; 2],
                    })
                })
                .collect();
            let uniform = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xent probe params"),
                size: arena.bytes.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.ctx.queue.write_buffer(&uniform, 0, &arena.bytes);
            let buffers = pieces
                .iter()
                .map(|piece| {
                    let buf = device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("xent probe data"),
                        size: (piece.len() as u64 * 4).next_multiple_of(WORD_BYTES),
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: true,
                    });
                    buf.get_mapped_range_mut(..piece.len() as u64 * 4)?
                        .copy_from_slice(bytemuck::cast_slice(piece));
                    buf.unmap();
                    Ok(buf)
                })
                .collect::<Result<Vec<_>>>()?;
            let groups_of =
                |piece: &[f32]| (piece.len().div_ceil(4) as u32).div_ceil(QUADS_PER_GROUP);
            let most = pieces.iter().map(|p| groups_of(p)).max().unwrap_or(1);
            let sums = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xent probe sums"),
                size: u64::from(most.max(1)) * 4,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let pipeline = self.pipeline(&Key {
                module: Module::Probe,
                entry: "probe_sum",
                constants: vec![("WORKGROUP", if self.ctx.cpu_adapter { 8 } else { 256 })],
            });
            let mut timing = Timing::new(&self.ctx, true, pieces.len());
            let mut encoder = device.create_command_encoder(&Default::default());
            for ((piece, buf), &offset) in pieces.iter().zip(&buffers).zip(&offsets) {
                let bind = ProbeBindings {
                    params: Bound::params::<Params>(&uniform),
                    data: buf,
                    sums: &sums,
                }
                .bind(device, &pipeline.layout);
                self.dispatch(
                    &mut timing,
                    &mut encoder,
                    &pipeline.pipeline,
                    &bind,
                    offset,
                    groups_of(piece),
                )?;
            }
            self.ctx.queue.submit([encoder.finish()]);
            timing.finish(&self.ctx)?.ok_or_else(|| Error::Wgpu {
                during: "bandwidth probe",
                message: "the probe's passes were not timed".into(),
            })
        })
    }
}
