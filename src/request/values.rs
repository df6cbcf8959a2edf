//! A request's host data: the input values and the target.

use std::borrow::Cow;
use std::ops::Range;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::kinds::Dtype;

/// The input values, row-major [B, C]. All are computed in f32; 16-bit values are read packed on
/// the GPU, two to a 32-bit word, so no adapter needs 16-bit float support.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 16-bit IEEE floats.
    F16(&'a [f16]),
    /// bfloat16 values.
    Bf16(&'a [bf16]),
}

impl<'a> Input<'a> {
    /// Elements `range` as f32: borrowed, or converted.
    pub(crate) fn f32s(&self, range: Range<usize>) -> Cow<'a, [f32]> {
        match *self {
            Input::F32(v) => Cow::Borrowed(&v[range]),
            other => {
                let mut out = Vec::new();
                other.widen_into(range, &mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Elements `range` converted to f32 into `out`, which is reused.
    pub(crate) fn widen_into(&self, range: Range<usize>, out: &mut Vec<f32>) {
        out.resize(range.len(), 0.0);
        match self {
            Input::F32(v) => out.copy_from_slice(&v[range]),
            Input::F16(v) => v[range].convert_to_f32_slice(out),
            Input::Bf16(v) => v[range].convert_to_f32_slice(out),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Input::F32(v) => v.len(),
            Input::F16(v) => v.len(),
            Input::Bf16(v) => v.len(),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Input::F32(_) => Dtype::F32,
            Input::F16(_) => Dtype::F16,
            Input::Bf16(_) => Dtype::Bf16,
        }
    }

    /// Element `i` as f32.
    pub(crate) fn get(&self, i: usize) -> f32 {
        match self {
            Input::F32(v) => v[i],
            Input::F16(v) => v[i].to_f32(),
            Input::Bf16(v) => v[i].to_f32(),
        }
    }

    /// The raw bytes of elements `range`.
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        match self {
            Input::F32(v) => bytemuck::cast_slice(&v[range]),
            Input::F16(v) => bytemuck::cast_slice(&v[range]),
            Input::Bf16(v) => bytemuck::cast_slice(&v[range]),
        }
    }
}

impl<'a> From<&'a [f32]> for Input<'a> {
    fn from(v: &'a [f32]) -> Self {
        Input::F32(v)
    }
}

impl<'a> From<&'a [f16]> for Input<'a> {
    fn from(v: &'a [f16]) -> Self {
        Input::F16(v)
    }
}

impl<'a> From<&'a [bf16]> for Input<'a> {
    fn from(v: &'a [bf16]) -> Self {
        Input::Bf16(v)
    }
}

/// What the input is compared against.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// No target (entropy).
    None,
    /// 32-bit class indices, one per row.
    ClassesI32(&'a [i32]),
    /// 64-bit class indices, one per row, as PyTorch stores them.
    ClassesI64(&'a [i64]),
    /// A row-major [B, C] distribution (cross-entropy, KL) or labels (BCE).
    Dense(&'a [f32]),
}

impl<'a> From<&'a [i32]> for Target<'a> {
    fn from(t: &'a [i32]) -> Self {
        Target::ClassesI32(t)
    }
}

impl<'a> From<&'a [i64]> for Target<'a> {
    fn from(t: &'a [i64]) -> Self {
        Target::ClassesI64(t)
    }
}

impl<'a> From<&'a [f32]> for Target<'a> {
    fn from(t: &'a [f32]) -> Self {
        Target::Dense(t)
    }
}
