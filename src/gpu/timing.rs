//! The kernel time of one call: GPU timestamps at the start and end of every compute pass where
//! the device has them, and otherwise the host's wall time of each pass submitted on its own
//! after everything before it has finished.

use std::time::{Duration, Instant};

use super::context::Context;
use crate::error::Result;
use crate::output::{Clock, KernelTime};

/// How the passes of one call are being timed.
pub(crate) enum Timing {
    /// Not timed: the passes go into the caller's encoder.
    Off,
    /// Two timestamps per pass, resolved after the last one.
    Timestamps {
        set: wgpu::QuerySet,
        capacity: u32,
        used: u32,
    },
    /// The sum of the passes' wall times.
    WallAfterSync(Duration),
}

impl Timing {
    /// Timing for a call of at most `passes` compute passes, when `timed`.
    pub fn new(ctx: &Context, timed: bool, passes: usize) -> Self {
        if !timed {
            return Timing::Off;
        }
        if !ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Timing::WallAfterSync(Duration::ZERO);
        }
        let capacity = (2 * passes.max(1)) as u32;
        Timing::Timestamps {
            set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("xent pass timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            }),
            capacity,
            used: 0,
        }
    }

    /// Records one compute pass, encoded by `record`, into `encoder` (or, timed on the wall
    /// clock, on its own between two waits).
    pub fn pass(
        &mut self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        record: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> Result<()> {
        match self {
            Timing::Off => record(&mut encoder.begin_compute_pass(&Default::default())),
            Timing::Timestamps {
                set,
                capacity,
                used,
            } => {
                let writes = (*used + 2 <= *capacity).then(|| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(*used),
                    end_of_pass_write_index: Some(*used + 1),
                });
                if writes.is_some() {
                    *used += 2;
                }
                record(
                    &mut encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: writes,
                    }),
                );
            }
            Timing::WallAfterSync(total) => {
                let before = std::mem::replace(
                    encoder,
                    ctx.device.create_command_encoder(&Default::default()),
                );
                ctx.queue.submit([before.finish()]);
                ctx.wait()?;
                let start = Instant::now();
                let mut alone = ctx.device.create_command_encoder(&Default::default());
                record(&mut alone.begin_compute_pass(&Default::default()));
                ctx.queue.submit([alone.finish()]);
                ctx.wait()?;
                *total += start.elapsed();
            }
        }
        Ok(())
    }

    /// The kernel time, once everything recorded has been submitted; `None` when not timed.
    pub fn finish(self, ctx: &Context) -> Result<Option<KernelTime>> {
        match self {
            Timing::Off => Ok(None),
            Timing::WallAfterSync(total) => Ok(Some(KernelTime {
                seconds: total.as_secs_f64(),
                clock: Clock::WallAfterSync,
            })),
            Timing::Timestamps { set, used, .. } => {
                let bytes = u64::from(used.max(2)) * 8;
                let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("xent timestamps"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let readback = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("xent timestamps readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                if used > 0 {
                    encoder.resolve_query_set(&set, 0..used, &resolve, 0);
                    encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
                }
                ctx.queue.submit([encoder.finish()]);
                ctx.map(&readback, wgpu::MapMode::Read)?;
                let ticks: u64 = {
                    let view = readback.get_mapped_range(..)?;
                    let stamps: &[u64] = bytemuck::cast_slice(&view);
                    stamps[..used as usize]
                        .chunks_exact(2)
                        .map(|pair| pair[1].saturating_sub(pair[0]))
                        .sum()
                };
                readback.unmap();
                let period = f64::from(ctx.queue.get_timestamp_period());
                Ok(Some(KernelTime {
                    seconds: ticks as f64 * period * 1e-9,
                    clock: Clock::Timestamps,
                }))
            }
        }
    }
}
