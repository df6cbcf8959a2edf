//! The uniform params of one call's dispatches, in one buffer at aligned dynamic offsets.

use std::ops::Range;

use super::rows;
use super::spec::Spec;
use super::tree_sum;
use crate::request::Scales;

/// Uniform params of every dispatch of one call, each at its own aligned dynamic offset.
pub(crate) struct ParamArena {
    pub bytes: Vec<u8>,
    align: usize,
}

/// Where a call's params sit in its arena: each chunk's row-kernel params, then each reduction
/// pass's (workgroups, params).
pub(crate) struct CallParams {
    pub chunks: Vec<u32>,
    pub passes: Vec<(u32, u32)>,
}

impl ParamArena {
    /// An empty arena whose offsets meet the uniform offset alignment of `limits`.
    pub fn new(limits: &wgpu::Limits) -> Self {
        ParamArena {
            bytes: Vec::new(),
            align: limits.min_uniform_buffer_offset_alignment as usize,
        }
    }

    /// The arena of one call on `chunks` of `spec`, with `segments` per row and the kernels'
    /// `scales`; with `scalar`, the passes that sum the batch's rows too.
    pub fn for_call(
        limits: &wgpu::Limits,
        spec: &Spec,
        chunks: &[Range<usize>],
        segments: u32,
        scales: Scales,
        scalar: bool,
    ) -> (Self, CallParams) {
        let mut arena = ParamArena::new(limits);
        let chunks = chunks
            .iter()
            .map(|c| arena.push(&rows::Params::chunk(spec, c, segments, scales)))
            .collect();
        let passes = if scalar {
            tree_sum::passes(spec.batch as u32)
                .into_iter()
                .map(|(groups, p)| (groups, arena.push(&p)))
                .collect()
        } else {
            Vec::new()
        };
        (arena, CallParams { chunks, passes })
    }

    /// Appends `params` at the next aligned offset, and returns that offset.
    pub fn push<T: bytemuck::Pod>(&mut self, params: &T) -> u32 {
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(bytemuck::bytes_of(params));
        self.bytes
            .resize(self.bytes.len().next_multiple_of(self.align), 0);
        offset as u32
    }
}
