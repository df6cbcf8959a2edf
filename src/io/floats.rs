//! The values a file holds, as a loss takes them: [`Floats`] for an input, [`TargetData`] for a
//! target. Each borrows the file's bytes where they are the values already, and owns a converted
//! copy where they are not.

use std::borrow::Cow;

use half::{bf16, f16};

use crate::{Input, Target};

/// Float values as the input of a loss.
#[derive(Clone, Debug, PartialEq)]
pub enum Floats<'a> {
    /// float32, or float64 converted to float32.
    F32(Cow<'a, [f32]>),
    /// float16.
    F16(Cow<'a, [f16]>),
    /// bfloat16, which `.npy` has no dtype for: from a `.safetensors` file
    /// ([`crate::io::safetensors`]).
    Bf16(Cow<'a, [bf16]>),
}

impl<'a> Floats<'a> {
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
        let input = self.as_input();
        input.f32s(0..input.len()).into_owned()
    }

    /// The values in a buffer of their own, copied where they were borrowed.
    pub fn into_owned(self) -> Floats<'static> {
        match self {
            Floats::F32(v) => Floats::F32(Cow::Owned(v.into_owned())),
            Floats::F16(v) => Floats::F16(Cow::Owned(v.into_owned())),
            Floats::Bf16(v) => Floats::Bf16(Cow::Owned(v.into_owned())),
        }
    }

    /// Whether the values are the file's own bytes, used in place, rather than a converted copy.
    pub fn in_place(&self) -> bool {
        match self {
            Floats::F32(v) => matches!(v, Cow::Borrowed(_)),
            Floats::F16(v) => matches!(v, Cow::Borrowed(_)),
            Floats::Bf16(v) => matches!(v, Cow::Borrowed(_)),
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
pub enum TargetData<'a> {
    /// int32 class indices, 1-D.
    ClassesI32(Cow<'a, [i32]>),
    /// int64 class indices, 1-D.
    ClassesI64(Cow<'a, [i64]>),
    /// Float values (float16 and float64 converted to float32), with their shape.
    Dense(Cow<'a, [f32]>, Vec<usize>),
}

impl TargetData<'_> {
    /// The values in a buffer of their own, copied where they were borrowed.
    pub fn into_owned(self) -> TargetData<'static> {
        match self {
            TargetData::ClassesI32(t) => TargetData::ClassesI32(Cow::Owned(t.into_owned())),
            TargetData::ClassesI64(t) => TargetData::ClassesI64(Cow::Owned(t.into_owned())),
            TargetData::Dense(t, shape) => TargetData::Dense(Cow::Owned(t.into_owned()), shape),
        }
    }

    /// The values as a loss target.
    pub fn as_target(&self) -> Target<'_> {
        match self {
            TargetData::ClassesI32(t) => Target::ClassesI32(t),
            TargetData::ClassesI64(t) => Target::ClassesI64(t),
            TargetData::Dense(t, _) => Target::Dense(t),
        }
    }
}
