//! Reading the caller's buffers (a device-resident call's results) back to the host.

use std::ops::Range;

use super::GpuEngine;
use crate::error::{Error, Result};

impl GpuEngine {
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

    /// Waits for everything submitted, then copies the first `out.len()` f32 of `buffer` into
    /// `out`, through one staging buffer of at most `READ_PIECE_BYTES` reused piece by piece, so
    /// that a large gradient costs no host copy beyond the caller's slice.
    pub(super) fn read_into(&self, buffer: &wgpu::Buffer, out: &mut [f32]) -> Result<()> {
        let bytes = out.len() as u64 * 4;
        let piece = bytes.clamp(4, READ_PIECE_BYTES);
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent read"),
            size: piece,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for (k, values) in out.chunks_mut((piece / 4) as usize).enumerate() {
            let len = values.len() as u64 * 4;
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(buffer, k as u64 * piece, &staging, 0, len);
            self.ctx.queue.submit([encoder.finish()]);
            self.ctx.map(&staging, wgpu::MapMode::Read)?;
            bytemuck::cast_slice_mut(values).copy_from_slice(&staging.get_mapped_range(..len)?);
            staging.unmap();
        }
        Ok(())
    }
}

/// The most bytes `read_into` stages at once.
const READ_PIECE_BYTES: u64 = 16 << 20;
