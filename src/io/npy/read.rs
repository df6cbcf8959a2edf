//! Reading `.npy` files: a file is opened only once its header has passed the guard and its
//! data is checked to hold what the header claims, then read as an input, a target or a vector.

use std::path::Path;

use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar};

use crate::Result;
use crate::io::error::{npy_error, quote};
use crate::io::floats::{Floats, TargetData};
use crate::io::npy::header::check_header;

/// A file's header facts and its data bytes, checked to hold what the header claims.
struct Npy<'a> {
    file: NpyFile<&'a [u8]>,
    kind: TypeChar,
    item: usize,
    shape: Vec<usize>,
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
            shape,
            kind: ty.type_char(),
            item,
            file,
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

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| npy_error(path, e.to_string()))
}

impl Npy<'_> {
    fn descr(&self) -> String {
        self.file.dtype().descr()
    }

    /// Float values as float32, or None when the dtype is not a float.
    fn floats(self, path: &Path) -> Result<Option<Floats>> {
        let bad = |e: std::io::Error| npy_error(path, e.to_string());
        Ok(match (self.kind, self.item) {
            (TypeChar::Float, 2) => Some(Floats::F16(self.file.into_vec().map_err(bad)?)),
            (TypeChar::Float, 4) => Some(Floats::F32(self.file.into_vec().map_err(bad)?)),
            (TypeChar::Float, 8) => Some(Floats::F32(
                self.file
                    .into_vec::<f64>()
                    .map_err(bad)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
            )),
            _ => None,
        })
    }
}

/// Reads a 2-D float16, float32 or float64 input, with its shape.
pub fn read_input(path: &Path) -> Result<(Floats, [usize; 2])> {
    parse_input(path, &read_bytes(path)?)
}

/// Parses the bytes of a 2-D float16, float32 or float64 `.npy` input, with its shape, as
/// [`read_input`] does; `name` names the file in errors.
///
/// Any bytes give `Ok` or an [`Error::Npy`](crate::Error::Npy), never a panic, and nothing is
/// allocated from what the header claims until the bytes are checked to be there.
pub fn parse_input(name: &Path, bytes: &[u8]) -> Result<(Floats, [usize; 2])> {
    let npy = open(name, bytes)?;
    let [rows, columns] = npy.shape[..] else {
        return Err(npy_error(
            name,
            format!("shape is {:?}, expected [batch, classes]", npy.shape),
        ));
    };
    let descr = npy.descr();
    match npy.floats(name)? {
        Some(floats) => Ok((floats, [rows, columns])),
        None => Err(npy_error(
            name,
            format!("dtype is {descr}, expected float16, float32 or float64"),
        )),
    }
}

/// Reads a target: 1-D int32 or int64 class indices, or float values of any shape.
pub fn read_target(path: &Path) -> Result<TargetData> {
    parse_target(path, &read_bytes(path)?)
}

/// Parses the bytes of a `.npy` target, as [`read_target`] does: 1-D int32 or int64 class
/// indices, or float values of any shape; `name` names the file in errors. Malformed bytes are
/// an [`Error::Npy`](crate::Error::Npy), as in [`parse_input`].
pub fn parse_target(name: &Path, bytes: &[u8]) -> Result<TargetData> {
    let npy = open(name, bytes)?;
    let shape = npy.shape.clone();
    let descr = npy.descr();
    let bad = |e: std::io::Error| npy_error(name, e.to_string());
    match (npy.kind, npy.item) {
        (TypeChar::Int, 4 | 8) if shape.len() != 1 => Err(npy_error(
            name,
            format!("class indices have shape {shape:?}, expected [batch]"),
        )),
        (TypeChar::Int, 4) => Ok(TargetData::ClassesI32(npy.file.into_vec().map_err(bad)?)),
        (TypeChar::Int, 8) => Ok(TargetData::ClassesI64(npy.file.into_vec().map_err(bad)?)),
        _ => match npy.floats(name)? {
            Some(floats) => Ok(TargetData::Dense(floats.into_f32(), shape)),
            None => Err(npy_error(
                name,
                format!("dtype is {descr}, expected int32/int64 class indices or float values"),
            )),
        },
    }
}

/// Reads a 1-D float vector (class weights), as float32.
pub fn read_vector(path: &Path) -> Result<Vec<f32>> {
    parse_vector(path, &read_bytes(path)?)
}

/// Parses the bytes of a 1-D float `.npy` vector (class weights), as float32, as [`read_vector`]
/// does; `name` names the file in errors. Malformed bytes are an
/// [`Error::Npy`](crate::Error::Npy), as in [`parse_input`].
pub fn parse_vector(name: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    let npy = open(name, bytes)?;
    if npy.shape.len() != 1 {
        return Err(npy_error(
            name,
            format!("shape is {:?}, expected [classes]", npy.shape),
        ));
    }
    let descr = npy.descr();
    match npy.floats(name)? {
        Some(floats) => Ok(floats.into_f32()),
        None => Err(npy_error(
            name,
            format!("dtype is {descr}, expected float values"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use npyz::WriterBuilder;

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("xent-npy-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
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
            read_input(&m).unwrap(),
            (Floats::F32(vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.5]), [2, 3])
        );
        let d = write("d.npy", &npy_bytes(&[1, 2], &[0.25_f64, -3.0]));
        assert_eq!(
            read_input(&d).unwrap(),
            (Floats::F32(vec![0.25, -3.0]), [1, 2])
        );
        let h = [f16::from_f32(1.5), f16::from_f32(-2.0)];
        let h = write("h.npy", &npy_bytes(&[2, 1], &h));
        assert!(
            matches!(read_input(&h).unwrap(), (Floats::F16(v), [2, 1]) if v[0].to_f32() == 1.5)
        );
        let t = write("t.npy", &npy_bytes(&[2], &[1_i32, 2]));
        assert_eq!(read_target(&t).unwrap(), TargetData::ClassesI32(vec![1, 2]));
        let soft = write("s.npy", &npy_bytes(&[1, 2], &[0.25_f64, 0.75]));
        assert_eq!(
            read_target(&soft).unwrap(),
            TargetData::Dense(vec![0.25, 0.75], vec![1, 2])
        );
        let w = write("w.npy", &npy_bytes(&[2], &[0.5_f32, 2.0]));
        assert_eq!(read_vector(&w).unwrap(), vec![0.5, 2.0]);
    }

    #[test]
    fn rejects_wrong_dtype_rank_and_lying_headers() {
        let ints = write("i.npy", &npy_bytes(&[2, 2], &[1_i64, 2, 3, 4]));
        let err = read_input(&ints).unwrap_err().to_string();
        assert!(
            err.contains("expected float16, float32 or float64"),
            "{err}"
        );
        let flat = write("f.npy", &npy_bytes(&[4], &[1.0_f32, 2.0, 3.0, 4.0]));
        assert!(
            read_input(&flat)
                .unwrap_err()
                .to_string()
                .contains("expected [batch, classes]")
        );
        let classes_2d = write("c.npy", &npy_bytes(&[2, 2], &[1_i64, 2, 3, 4]));
        assert!(
            read_target(&classes_2d)
                .unwrap_err()
                .to_string()
                .contains("expected [batch]")
        );
        let mut truncated = npy_bytes(&[4, 4], &[1.0_f32; 16]);
        truncated.truncate(truncated.len() - 8);
        let t = write("truncated.npy", &truncated);
        assert!(
            read_input(&t)
                .unwrap_err()
                .to_string()
                .contains("claims shape")
        );
        let junk = write("j.npy", b"not an npy file at all");
        assert!(
            read_input(&junk)
                .unwrap_err()
                .to_string()
                .contains("not a valid .npy")
        );
    }
}
