//! The values a file holds, as a loss takes them: [`Floats`] for an input, [`TargetData`] for a
//! target.

use half::{bf16, f16};

use crate::{Input, Target};

/// Float values as the input of a loss.
#[derive(Clone, Debug, PartialEq)]
pub enum Floats {
    /// float32, or float64 converted to float32.
    F32(Vec<f32>),
    /// float16.
    F16(Vec<f16>),
    /// bfloat16, which `.npy` has no dtype for: from a `.safetensors` file
    /// ([`crate::io::safetensors`]).
    Bf16(Vec<bf16>),
}

impl Floats {
    /// The values as a loss input.
    pub fn as_input(&self) -> Input<'_> {
        match self {
            Floats::F32(v) => Input::F32(v),
            Floats::F16(v) => Input::F16(v),
            Floats::Bf16(v) => Input::Bf16(v),
        }
    }

    /// The values converted to float32 (exactly: every float16 and bfloat16 is a float32).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Floats::F32(v) => v.clone(),
            Floats::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Floats::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// The values as float32, as [`Floats::to_f32`] gives them, without a copy when they are
    /// float32 already.
    pub(super) fn into_f32(self) -> Vec<f32> {
        match self {
            Floats::F32(v) => v,
            other => other.to_f32(),
        }
    }

    /// The dtype's name.
    pub fn dtype(&self) -> &'static str {
        match self {
            Floats::F32(_) => "float32",
            Floats::F16(_) => "float16",
            Floats::Bf16(_) => "bfloat16",
        }
    }
}

/// A target file: class indices, or float values of any shape.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetData {
    /// int32 class indices, 1-D.
    ClassesI32(Vec<i32>),
    /// int64 class indices, 1-D.
    ClassesI64(Vec<i64>),
    /// Float values (float16 and float64 converted to float32), with their shape.
    Dense(Vec<f32>, Vec<usize>),
}

impl TargetData {
    /// The values as a loss target.
    pub fn as_target(&self) -> Target<'_> {
        match self {
            TargetData::ClassesI32(t) => Target::ClassesI32(t),
            TargetData::ClassesI64(t) => Target::ClassesI64(t),
            TargetData::Dense(t, _) => Target::Dense(t),
        }
    }
}
