//! Uploads from the host: each chunk's input (and dense targets) written into a MAP_WRITE staging
//! buffer and copied to the device in a submission of its own, two staging buffers in turn, so
//! that the upload of one chunk overlaps the kernels on the one before. The staging buffers
//! themselves (`Staging`) are reused buffers, kept in `buffer_pool.rs` with the other slots: the
//! workspace holds them, and this module reads the workspace.

use super::GpuEngine;
use super::buffer_pool::Staging;
use super::chunk::{WORD_BYTES, chunk_cap};
use super::workspace::Workspace;
use crate::error::Result;

impl GpuEngine {
    /// Uploads `data` the way a call uploads its input, in the same chunks through the same
    /// staging buffers, and returns the seconds from the first write until the device holds it
    /// all: the upload alone, for the benchmark.
    pub fn upload_time(&self, data: &[f32]) -> Result<f64> {
        let mut ws = self.workspace();
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

    /// Maps every staging buffer that a call left unmapped, and `readback` for reading, in one
    /// wait.
    pub(super) fn remap_staging(
        &self,
        ws: &mut Workspace,
        readback: Option<&wgpu::Buffer>,
    ) -> Result<()> {
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

    /// Uploads chunk `k`'s input (and dense targets) into the workspace's input (and dense)
    /// buffers of its parity, through staging buffer k % 2. The copies go in a submission of
    /// their own, so that the staging buffer can be written again (for chunk k + 2) as soon as
    /// they are done, while kernels still run.
    pub(super) fn upload_chunk(
        &self,
        ws: &mut Workspace,
        k: usize,
        input: &[u8],
        dense: &[u8],
    ) -> Result<()> {
        let device = &self.ctx.device;
        let input_bound = (input.len() as u64).next_multiple_of(WORD_BYTES);
        let staging = self.stage(&mut ws.staging[k % 2], input, input_bound, dense)?;
        let mut encoder = device.create_command_encoder(&Default::default());
        let (input_buf, _) = ws.inputs[k % 2].get(device, input_bound);
        // Copies come in whole u32 words; `stage` padded an odd count of f16 values.
        let input_len = (input.len() as u64).next_multiple_of(4);
        encoder.copy_buffer_to_buffer(&staging, 0, input_buf, 0, input_len);
        if !dense.is_empty() {
            let (dense_buf, _) =
                ws.dense[k % 2].get(device, (dense.len() as u64).next_multiple_of(WORD_BYTES));
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
            dense_at + (dense.len() as u64).next_multiple_of(WORD_BYTES),
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
}
