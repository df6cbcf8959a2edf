//! Reading `.npy` files: a file's bytes are read only once its header has passed the guard and
//! its data is checked to hold what the header claims, then as an input, a target or a vector,
//! in place where the data are already the values.

use std::borrow::Cow;
use std::path::Path;

use npyz::{DType, Endianness, NpyFile, NpyHeader, Order, TypeChar};

use crate::Result;
use crate::io::decode::{ByteOrder, f16_as_f32, f64_as_f32, values};
use crate::io::error::{npy_error, quote};
use crate::io::floats::{Floats, TargetData};
use crate::io::npy::header::check_header;
use crate::io::source::Source;

/// A file's header facts and exactly the data bytes its header claims.
struct Npy<'a> {
    data: &'a [u8],
    kind: TypeChar,
    item: usize,
    order: ByteOrder,
    shape: Vec<usize>,
    descr: String,
}

fn open<'a>(path: &Path, bytes: &'a [u8]) -> Result<Npy<'a>> {
    check_header(path, bytes)?;
    let mut data = bytes;
    let header = NpyHeader::from_reader(&mut data).map_err(|e| {
        npy_error(
            path,
            format!("not a valid .npy header: {}", quote(&e.to_string())),
        )
    })?;
    let file = NpyFile::with_header(header, data);
    if file.order() == Order::Fortran {
        return Err(npy_error(
            path,
            "Fortran-order arrays are not supported; save in C order",
        ));
    }
    let DType::Plain(ty) = file.dtype() else {
        return Err(npy_error(
            path,
            "structured dtypes are not supported; save a plain float or integer array",
        ));
    };
    // 0 for the dtypes without a fixed size (objects), which no reader below accepts.
    let item = ty.num_bytes().unwrap_or(0);
    let need = file
        .shape()
        .iter()
        .try_fold(item as u64, |acc, &d| acc.checked_mul(d));
    let shape: Option<Vec<usize>> = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect();
    match (need, shape) {
        (Some(need), Some(shape)) if need <= data.len() as u64 => Ok(Npy {
            data: &data[..need as usize],
            kind: ty.type_char(),
            item,
            order: match ty.endianness() {
                Endianness::Big => ByteOrder::Big,
                Endianness::Little | Endianness::Irrelevant => ByteOrder::Little,
            },
            shape,
            descr: file.dtype().descr(),
        }),
        (need, _) => Err(npy_error(
            path,
            format!(
                "truncated .npy file or a header that lies about its size: the header claims \
                 shape {:?} of {ty}, {}, but the file has only {} bytes of data",
                file.shape(),
                need.map_or("more than 2^64 bytes".into(), |n| format!("{n} bytes")),
                data.len()
            ),
        )),
    }
}

impl<'a> Npy<'a> {
    /// Float values as float32, borrowed where they are float32 already and converted in one
    /// pass where not, or None when the dtype is not a float.
    fn f32s(&self) -> Option<Cow<'a, [f32]>> {
        match (self.kind, self.item) {
            (TypeChar::Float, 2) => Some(Cow::Owned(f16_as_f32(self.data, self.order))),
            (TypeChar::Float, 4) => Some(values(self.data, self.order)),
            (TypeChar::Float, 8) => Some(Cow::Owned(f64_as_f32(self.data, self.order))),
            _ => None,
        }
    }

    /// Float values, float64 converted to float32, or None when the dtype is not a float.
    fn floats(&self) -> Option<Floats<'a>> {
        match (self.kind, self.item) {
            (TypeChar::Float, 2) => Some(Floats::F16(values(self.data, self.order))),
            (TypeChar::Float, 4) => Some(Floats::F32(values(self.data, self.order))),
            (TypeChar::Float, 8) => {
                Some(Floats::F32(Cow::Owned(f64_as_f32(self.data, self.order))))
            }
            _ => None,
        }
    }
}

/// Reads a 2-D float16, float32 or float64 input of a file, with its shape, as [`parse_input`]
/// does.
pub fn read_input(file: &Source) -> Result<(Floats<'_>, [usize; 2])> {
    parse_input(file.path(), file.bytes())
}

/// Parses the bytes of a 2-D float16, float32 or float64 `.npy` input, with its shape; `name`
/// names the file in errors. Little-endian float32 and float16 values that are aligned (numpy
/// pads its headers to 64 bytes) are borrowed from `bytes`; other values are converted once.
///
/// Any bytes give `Ok` or an [`Error::Npy`](crate::Error::Npy), never a panic, and nothing is
/// allocated from what the header claims until the bytes are checked to be there.
pub fn parse_input<'a>(name: &Path, bytes: &'a [u8]) -> Result<(Floats<'a>, [usize; 2])> {
    let npy = open(name, bytes)?;
    let [rows, columns] = npy.shape[..] else {
        return Err(npy_error(
            name,
            format!("shape is {:?}, expected [batch, classes]", npy.shape),
        ));
    };
    match npy.floats() {
        Some(floats) => Ok((floats, [rows, columns])),
        None => Err(npy_error(
            name,
            format!(
                "dtype is {}, expected float16, float32 or float64",
                npy.descr
            ),
        )),
    }
}

/// Reads a target of a file, as [`parse_target`] does.
pub fn read_target(file: &Source) -> Result<TargetData<'_>> {
    parse_target(file.path(), file.bytes())
}

/// Parses the bytes of a `.npy` target: 1-D int32 or int64 class indices, or float values of
/// any shape (float16 and float64 converted to float32); `name` names the file in errors.
/// Values are borrowed or converted, and malformed bytes are an
/// [`Error::Npy`](crate::Error::Npy), as in [`parse_input`].
pub fn parse_target<'a>(name: &Path, bytes: &'a [u8]) -> Result<TargetData<'a>> {
    let npy = open(name, bytes)?;
    let shape = &npy.shape;
    match (npy.kind, npy.item) {
        (TypeChar::Int, 4 | 8) if shape.len() != 1 => Err(npy_error(
            name,
            format!("class indices have shape {shape:?}, expected [batch]"),
        )),
        (TypeChar::Int, 4) => Ok(TargetData::ClassesI32(values(npy.data, npy.order))),
        (TypeChar::Int, 8) => Ok(TargetData::ClassesI64(values(npy.data, npy.order))),
        _ => match npy.f32s() {
            Some(values) => Ok(TargetData::Dense(values, npy.shape)),
            None => Err(npy_error(
                name,
                format!(
                    "dtype is {}, expected int32/int64 class indices or float values",
                    npy.descr
                ),
            )),
        },
    }
}

/// Reads a 1-D float vector (class weights) of a file, as [`parse_vector`] does.
pub fn read_vector(file: &Source) -> Result<Cow<'_, [f32]>> {
    parse_vector(file.path(), file.bytes())
}

/// Parses the bytes of a 1-D float `.npy` vector (class weights), as float32; `name` names the
/// file in errors. Values are borrowed or converted, and malformed bytes are an
/// [`Error::Npy`](crate::Error::Npy), as in [`parse_input`].
pub fn parse_vector<'a>(name: &Path, bytes: &'a [u8]) -> Result<Cow<'a, [f32]>> {
    let npy = open(name, bytes)?;
    if npy.shape.len() != 1 {
        return Err(npy_error(
            name,
            format!("shape is {:?}, expected [classes]", npy.shape),
        ));
    }
    match npy.f32s() {
        Some(values) => Ok(values),
        None => Err(npy_error(
            name,
            format!("dtype is {}, expected float values", npy.descr),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use npyz::WriterBuilder;

    /// A file's name and bytes, parsed by the `parse_*` functions (`read_*` open a [`Source`]).
    fn write(name: &str, bytes: &[u8]) -> (&'static Path, Vec<u8>) {
        (Path::new(name.to_string().leak()), bytes.to_vec())
    }

    fn npy_bytes<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn reads_inputs_of_every_float_dtype_and_targets() {
        let m = write(
            "m.npy",
            &npy_bytes(&[2, 3], &[0.5_f32, -1.0, 2.0, 3.0, 4.0, 5.5]),
        );
        assert_eq!(
            parse_input(m.0, &m.1).unwrap(),
            (
                Floats::F32(vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.5].into()),
                [2, 3]
            )
        );
        let d = write("d.npy", &npy_bytes(&[1, 2], &[0.25_f64, -3.0]));
        assert_eq!(
            parse_input(d.0, &d.1).unwrap(),
            (Floats::F32(vec![0.25, -3.0].into()), [1, 2])
        );
        let h = [f16::from_f32(1.5), f16::from_f32(-2.0)];
        let h = write("h.npy", &npy_bytes(&[2, 1], &h));
        assert!(
            matches!(parse_input(h.0, &h.1).unwrap(), (Floats::F16(v), [2, 1]) if v[0].to_f32() == 1.5)
        );
        let t = write("t.npy", &npy_bytes(&[2], &[1_i32, 2]));
        assert_eq!(
            parse_target(t.0, &t.1).unwrap(),
            TargetData::ClassesI32(vec![1, 2].into())
        );
        let soft = write("s.npy", &npy_bytes(&[1, 2], &[0.25_f64, 0.75]));
        assert_eq!(
            parse_target(soft.0, &soft.1).unwrap(),
            TargetData::Dense(vec![0.25, 0.75].into(), vec![1, 2])
        );
        let w = write("w.npy", &npy_bytes(&[2], &[0.5_f32, 2.0]));
        assert_eq!(parse_vector(w.0, &w.1).unwrap(), &[0.5, 2.0][..]);
    }

    #[test]
    fn rejects_wrong_dtype_rank_and_lying_headers() {
        let ints = write("i.npy", &npy_bytes(&[2, 2], &[1_i64, 2, 3, 4]));
        let err = parse_input(ints.0, &ints.1).unwrap_err().to_string();
        assert!(
            err.contains("expected float16, float32 or float64"),
            "{err}"
        );
        let flat = write("f.npy", &npy_bytes(&[4], &[1.0_f32, 2.0, 3.0, 4.0]));
        assert!(
            parse_input(flat.0, &flat.1)
                .unwrap_err()
                .to_string()
                .contains("expected [batch, classes]")
        );
        let classes_2d = write("c.npy", &npy_bytes(&[2, 2], &[1_i64, 2, 3, 4]));
        assert!(
            parse_target(classes_2d.0, &classes_2d.1)
                .unwrap_err()
                .to_string()
                .contains("expected [batch]")
        );
        let mut truncated = npy_bytes(&[4, 4], &[1.0_f32; 16]);
        truncated.truncate(truncated.len() - 8);
        let t = write("truncated.npy", &truncated);
        assert!(
            parse_input(t.0, &t.1)
                .unwrap_err()
                .to_string()
                .contains("claims shape")
        );
        let junk = write("j.npy", b"not an npy file at all");
        assert!(
            parse_input(junk.0, &junk.1)
                .unwrap_err()
                .to_string()
                .contains("not a valid .npy")
        );
    }
}
