//! The ranges of a buffer that a product binds for one matrix: the smallest that holds it, from a
//! start aligned down to the storage offset alignment, and the range that the CPU adapters'
//! kernels read 16 bytes at a time (gemm_lanes.wgsl).

use crate::error::{Error, Result};
use crate::gpu::bindings::Bound;

/// A matrix of `bytes`-byte elements from element `offset` of `buffer`, stored as
/// `[rows, cols]` with rows `ld` elements apart.
pub(super) struct Stored<'b> {
    pub what: &'static str,
    pub buffer: &'b wgpu::Buffer,
    pub offset: u64,
    pub bytes: u64,
    pub shape: [u32; 2],
    pub ld: u32,
}

/// Where a matrix is bound.
#[derive(Clone, Copy)]
pub(super) struct Span<'b> {
    /// The smallest range that holds it (its first word, for an empty matrix).
    pub range: Bound<'b>,
    /// Its first element, counted from the range's start.
    pub within: u32,
    /// The range of its quads (four elements from a multiple of four, each row's last padded to
    /// four), from the same start in whole 16-byte words, at least one; and whether the quads
    /// are aligned (the first element and the rows a multiple of four apart). `None` where the
    /// buffer or the storage binding is too short for it.
    pub quads: Option<(Bound<'b>, bool)>,
}

impl<'b> Stored<'b> {
    /// The matrix's span: `Error::TooLarge` where its range exceeds one storage binding,
    /// `Error::DeviceBuffer` where it does not fit its buffer or its rows overlap.
    pub fn span(&self, limits: &wgpu::Limits) -> Result<Span<'b>> {
        let Stored {
            what,
            offset,
            bytes,
            shape: [rows, cols],
            ld,
            ..
        } = *self;
        let misfit = |reason: String| Err(Error::DeviceBuffer { what, reason });
        if rows > 1 && ld < cols {
            return misfit(format!("rows {ld} elements apart are shorter than {cols}"));
        }
        if rows == 0 || cols == 0 {
            // Nothing is read: the buffer's first word is bound, wherever the matrix would be.
            let quads =
                (self.buffer.size() >= 16).then(|| (Bound::range(self.buffer, 0, 16), true));
            return Ok(Span {
                range: Bound::range(self.buffer, 0, 4),
                within: 0,
                quads,
            });
        }
        let before_last = u64::from(rows - 1) * u64::from(ld);
        let extent = before_last + u64::from(cols);
        let padded = before_last + u64::from(cols.next_multiple_of(4));
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(16);
        let (Some(first), Some(last), Some(last_quad)) = (
            offset.checked_mul(bytes),
            offset
                .checked_add(extent)
                .and_then(|e| e.checked_mul(bytes)),
            offset
                .checked_add(padded)
                .and_then(|e| e.checked_mul(bytes)),
        ) else {
            return misfit(format!("element {offset} is past any buffer"));
        };
        let start = first / align * align;
        let end = last.next_multiple_of(4);
        let binding = limits.max_storage_buffer_binding_size;
        let within = offset - start / bytes;
        if end - start > binding || within + extent > u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                what,
                reason: format!(
                    "[{rows}, {cols}] with rows {ld} apart takes {} bytes, over the \
                     {binding}-byte storage binding",
                    end - start
                ),
            });
        }
        if end > self.buffer.size() {
            return misfit(format!(
                "[{rows}, {cols}] with rows {ld} apart from element {offset} ends at byte {end}, \
                 past the buffer's {}",
                self.buffer.size()
            ));
        }
        let quad_end = last_quad.next_multiple_of(16).max(start + 16);
        let aligned = within % 4 == 0 && (rows <= 1 || ld % 4 == 0);
        let quads = (quad_end <= self.buffer.size() && quad_end - start <= binding)
            .then(|| (Bound::range(self.buffer, start, quad_end - start), aligned));
        Ok(Span {
            range: Bound::range(self.buffer, start, end - start),
            within: within as u32,
            quads,
        })
    }
}
