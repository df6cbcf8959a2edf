//! What a parse gave, as a value that compares bit for bit: each float by its bits, each shape
//! and error text as it is. Shared by the file fuzz targets, which compare the parses of the same
//! bytes at every alignment, and by `fuzz/tests/source.rs`, which compares them with the reads
//! of the same bytes through a `Source`.

#![allow(dead_code, reason = "each includer uses its own parsers' part")]

use std::borrow::Cow;

use xent::io::{Floats, TargetData};

/// A parse's result: its values' dtype, shape and bits, or its error (variant, file and reason).
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Floats {
        dtype: &'static str,
        shape: [usize; 2],
        bits: Vec<u32>,
    },
    ClassesI32(Vec<i32>),
    ClassesI64(Vec<i64>),
    Dense {
        shape: Vec<usize>,
        bits: Vec<u32>,
    },
    Vector(Vec<u32>),
    Error(String),
}

fn f32_bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn floats(f: &Floats<'_>) -> (&'static str, Vec<u32>) {
    let bits = match f {
        Floats::F32(v) => f32_bits(v),
        Floats::F16(v) => v.iter().map(|x| u32::from(x.to_bits())).collect(),
        Floats::Bf16(v) => v.iter().map(|x| u32::from(x.to_bits())).collect(),
    };
    (f.dtype(), bits)
}

fn error(e: &xent::Error) -> Parsed {
    Parsed::Error(format!("{e:?}"))
}

/// An input's result (`npy::parse_input`, `safetensors::parse_input`, or their `read_input`).
pub fn input(r: &xent::Result<(Floats<'_>, [usize; 2])>) -> Parsed {
    match r {
        Ok((f, shape)) => {
            let (dtype, bits) = floats(f);
            Parsed::Floats {
                dtype,
                shape: *shape,
                bits,
            }
        }
        Err(e) => error(e),
    }
}

/// A target's result (`npy::parse_target` or `read_target`).
pub fn target(r: &xent::Result<TargetData<'_>>) -> Parsed {
    match r {
        Ok(TargetData::ClassesI32(v)) => Parsed::ClassesI32(v.to_vec()),
        Ok(TargetData::ClassesI64(v)) => Parsed::ClassesI64(v.to_vec()),
        Ok(TargetData::Dense(v, shape)) => Parsed::Dense {
            shape: shape.clone(),
            bits: f32_bits(v),
        },
        Err(e) => error(e),
    }
}

/// A vector's result (`npy::parse_vector` or `read_vector`).
pub fn vector(r: &xent::Result<Cow<'_, [f32]>>) -> Parsed {
    match r {
        Ok(v) => Parsed::Vector(f32_bits(v)),
        Err(e) => error(e),
    }
}

/// Where values are borrowed: the size of a value in the file, and how many bytes of `bytes`
/// they are (panics if they are borrowed from anywhere else); None where they are a buffer of
/// their own.
#[allow(
    clippy::ptr_arg,
    reason = "whether the values are borrowed is the question"
)]
pub fn borrowed<T: Clone>(values: &Cow<'_, [T]>, bytes: &[u8]) -> Option<(usize, usize)> {
    let Cow::Borrowed(v) = values else {
        return None;
    };
    let size = size_of_val(*v);
    let (start, end) = (v.as_ptr() as usize, v.as_ptr() as usize + size);
    let range = bytes.as_ptr_range();
    assert!(
        range.start as usize <= start && end <= range.end as usize,
        "values borrowed from outside the file's bytes"
    );
    Some((size_of::<T>(), size))
}

/// [`borrowed`] for float values of any dtype.
pub fn borrowed_floats(f: &Floats<'_>, bytes: &[u8]) -> Option<(usize, usize)> {
    match f {
        Floats::F32(v) => borrowed(v, bytes),
        Floats::F16(v) => borrowed(v, bytes),
        Floats::Bf16(v) => borrowed(v, bytes),
    }
}

/// [`borrowed`] for a target.
pub fn borrowed_target(t: &TargetData<'_>, bytes: &[u8]) -> Option<(usize, usize)> {
    match t {
        TargetData::ClassesI32(v) => borrowed(v, bytes),
        TargetData::ClassesI64(v) => borrowed(v, bytes),
        TargetData::Dense(v, _) => borrowed(v, bytes),
    }
}
