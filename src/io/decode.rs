//! A file's data bytes as values: used in place where they are already the values (native byte
//! order, aligned), or else converted in one pass into a single buffer.

use std::borrow::Cow;

use bytemuck::Pod;
use half::{bf16, f16};
use rayon::prelude::*;

/// The order of the bytes of each value in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn native(self) -> bool {
        self == if cfg!(target_endian = "little") {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        }
    }
}

/// The bytes above which a conversion runs on every thread, and the least each thread takes.
const PARALLEL_BYTES: usize = 1 << 20;

/// A value that a file stores in `N` bytes, in either byte order.
pub(super) trait Stored<const N: usize>: Pod + Send + Sync {
    fn from_bytes(bytes: [u8; N], order: ByteOrder) -> Self;
}

macro_rules! stored {
    ($($t:ty, $n:literal);*) => {$(
        impl Stored<$n> for $t {
            fn from_bytes(bytes: [u8; $n], order: ByteOrder) -> Self {
                match order {
                    ByteOrder::Little => <$t>::from_le_bytes(bytes),
                    ByteOrder::Big => <$t>::from_be_bytes(bytes),
                }
            }
        }
    )*};
}

stored!(f16, 2; bf16, 2; f32, 4; f64, 8; i32, 4; i64, 8);

/// The values `data` holds (its length a multiple of `N`): borrowed from it when they are in
/// the native byte order and aligned, or else converted into a new buffer.
pub(super) fn values<T: Stored<N>, const N: usize>(data: &[u8], order: ByteOrder) -> Cow<'_, [T]> {
    debug_assert_eq!(data.len() % N, 0);
    match bytemuck::try_cast_slice(data) {
        Ok(values) if order.native() => Cow::Borrowed(values),
        _ => Cow::Owned(converted(data, |b| T::from_bytes(b, order))),
    }
}

/// float64 values as float32, in one pass into one buffer.
pub(super) fn f64_as_f32(data: &[u8], order: ByteOrder) -> Vec<f32> {
    converted(data, |b| f64::from_bytes(b, order) as f32)
}

/// float16 values as float32 (exactly), in one pass into one buffer.
pub(super) fn f16_as_f32(data: &[u8], order: ByteOrder) -> Vec<f32> {
    converted(data, |b| f16::from_bytes(b, order).to_f32())
}

/// Each `N` bytes of `data` through `convert`, in parallel where `data` is over
/// [`PARALLEL_BYTES`], written once into the returned buffer.
fn converted<T: Send, const N: usize>(
    data: &[u8],
    convert: impl Fn([u8; N]) -> T + Sync,
) -> Vec<T> {
    if data.len() <= PARALLEL_BYTES {
        return data
            .as_chunks::<N>()
            .0
            .iter()
            .map(|&w| convert(w))
            .collect();
    }
    let mut out = Vec::new();
    data.par_chunks_exact(N)
        .with_min_len(PARALLEL_BYTES / N)
        .map(|w| convert(w.try_into().expect("chunks of N bytes")))
        .collect_into_vec(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_aligned_native_values_and_converts_the_rest() {
        let values32: Vec<f32> = (0..(PARALLEL_BYTES / 2))
            .map(|i| i as f32 * 0.5 - 7.0)
            .collect();
        let le: Vec<u8> = values32.iter().flat_map(|v| v.to_le_bytes()).collect();
        let be: Vec<u8> = values32.iter().flat_map(|v| v.to_be_bytes()).collect();
        let words: Vec<u32> = bytemuck::cast_slice(&le).to_vec();
        let aligned: &[u8] = bytemuck::cast_slice(&words);
        assert!(matches!(
            values::<f32, 4>(aligned, ByteOrder::Little),
            Cow::Borrowed(_)
        ));
        assert_eq!(values::<f32, 4>(aligned, ByteOrder::Little), &values32[..]);
        let mut shifted = vec![0_u8];
        shifted.extend(&le);
        let misaligned = values::<f32, 4>(&shifted[1..], ByteOrder::Little);
        assert!(matches!(misaligned, Cow::Owned(_)));
        assert_eq!(misaligned, &values32[..]);
        assert_eq!(values::<f32, 4>(&be, ByteOrder::Big), &values32[..]);
        let f64_be: Vec<u8> = values32
            .iter()
            .flat_map(|&v| f64::from(v).to_be_bytes())
            .collect();
        assert_eq!(f64_as_f32(&f64_be, ByteOrder::Big), values32);
        let short: Vec<u8> = [1_i64, -2].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(values::<i64, 8>(&short, ByteOrder::Big), &[1_i64, -2][..]);
    }
}
