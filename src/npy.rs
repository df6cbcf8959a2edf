//! `.npy` input for the CLI, through the `npyz` crate.
//!
//! Whole files are read into memory first, and a header's claimed size is checked against the
//! bytes that are really there before anything is allocated from it. Float64 values are converted
//! to float32, which is what xent computes in; float16 input is kept as it is.

use std::path::Path;

use half::f16;
use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar};

use crate::error::{Error, Result};
use crate::loss::{Input, Target};

/// Float values as the input of a loss.
#[derive(Clone, Debug, PartialEq)]
pub enum Floats {
    /// float32, or float64 converted to float32.
    F32(Vec<f32>),
    /// float16.
    F16(Vec<f16>),
}

impl Floats {
    /// The values as a loss input.
    pub fn as_input(&self) -> Input<'_> {
        match self {
            Floats::F32(v) => Input::F32(v),
            Floats::F16(v) => Input::F16(v),
        }
    }

    /// The dtype's name.
    pub fn dtype(&self) -> &'static str {
        match self {
            Floats::F32(_) => "float32",
            Floats::F16(_) => "float16",
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

fn npy_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// A file's header facts and its data bytes, checked to hold what the header claims.
struct Npy<'a> {
    file: NpyFile<&'a [u8]>,
    kind: TypeChar,
    item: usize,
    shape: Vec<usize>,
}

fn open<'a>(path: &Path, bytes: &'a [u8]) -> Result<Npy<'a>> {
    let mut data = bytes;
    let header = NpyHeader::from_reader(&mut data)
        .map_err(|e| npy_error(path, format!("not a valid .npy file: {e}")))?;
    let file = NpyFile::with_header(header, data);
    if file.order() == Order::Fortran {
        return Err(npy_error(
            path,
            "Fortran-order arrays are not supported; save in C order",
        ));
    }
    let DType::Plain(ty) = file.dtype() else {
        return Err(npy_error(path, "structured dtypes are not supported"));
    };
    let item = ty.num_bytes().unwrap_or(0);
    let need = file
        .shape()
        .iter()
        .try_fold(item as u64, |acc, &d| acc.checked_mul(d));
    match need {
        Some(need) if need <= data.len() as u64 => Ok(Npy {
            shape: file.shape().iter().map(|&d| d as usize).collect(),
            kind: ty.type_char(),
            item,
            file,
        }),
        _ => Err(npy_error(
            path,
            format!(
                "the header claims shape {:?} but the file has only {} bytes of data",
                file.shape(),
                data.len()
            ),
        )),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
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

fn to_f32(floats: Floats) -> Vec<f32> {
    match floats {
        Floats::F32(v) => v,
        Floats::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
    }
}

/// Reads a 2-D float16, float32 or float64 input, with its shape.
pub fn read_input(path: &Path) -> Result<(Floats, [usize; 2])> {
    let bytes = read(path)?;
    let npy = open(path, &bytes)?;
    let [rows, columns] = npy.shape[..] else {
        return Err(npy_error(
            path,
            format!("shape is {:?}, expected [batch, classes]", npy.shape),
        ));
    };
    let descr = npy.descr();
    match npy.floats(path)? {
        Some(floats) => Ok((floats, [rows, columns])),
        None => Err(npy_error(
            path,
            format!("dtype is {descr}, expected float16, float32 or float64"),
        )),
    }
}

/// Reads a target: 1-D int32 or int64 class indices, or float values of any shape.
pub fn read_target(path: &Path) -> Result<TargetData> {
    let bytes = read(path)?;
    let npy = open(path, &bytes)?;
    let shape = npy.shape.clone();
    let descr = npy.descr();
    let bad = |e: std::io::Error| npy_error(path, e.to_string());
    match (npy.kind, npy.item) {
        (TypeChar::Int, 4 | 8) if shape.len() != 1 => Err(npy_error(
            path,
            format!("class indices have shape {shape:?}, expected [batch]"),
        )),
        (TypeChar::Int, 4) => Ok(TargetData::ClassesI32(npy.file.into_vec().map_err(bad)?)),
        (TypeChar::Int, 8) => Ok(TargetData::ClassesI64(npy.file.into_vec().map_err(bad)?)),
        _ => match npy.floats(path)? {
            Some(floats) => Ok(TargetData::Dense(to_f32(floats), shape)),
            None => Err(npy_error(
                path,
                format!("dtype is {descr}, expected int32/int64 class indices or float values"),
            )),
        },
    }
}

/// Reads a 1-D float vector (class weights), as float32.
pub fn read_vector(path: &Path) -> Result<Vec<f32>> {
    let bytes = read(path)?;
    let npy = open(path, &bytes)?;
    if npy.shape.len() != 1 {
        return Err(npy_error(
            path,
            format!("shape is {:?}, expected [classes]", npy.shape),
        ));
    }
    let descr = npy.descr();
    match npy.floats(path)? {
        Some(floats) => Ok(to_f32(floats)),
        None => Err(npy_error(
            path,
            format!("dtype is {descr}, expected float values"),
        )),
    }
}

/// Writes a row-major float32 array of the given shape.
pub fn write_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    use npyz::WriterBuilder;
    let fail = |e: std::io::Error| npy_error(path, e.to_string());
    let file = std::fs::File::create(path).map_err(fail)?;
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(fail)?;
    writer.extend(data.iter().copied()).map_err(fail)?;
    writer.finish().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn written_arrays_read_back() {
        let path =
            std::env::temp_dir().join(format!("xent-npy-{}-written.npy", std::process::id()));
        write_f32(&path, &[1.5, -2.0, 0.25, 8.0, 3.0, -1.0], &[2, 3]).unwrap();
        assert_eq!(
            read_input(&path).unwrap(),
            (Floats::F32(vec![1.5, -2.0, 0.25, 8.0, 3.0, -1.0]), [2, 3])
        );
        let err = write_f32(Path::new("/nonexistent/dir/g.npy"), &[1.0], &[1, 1]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/dir/g.npy: "),
            "{err}"
        );
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
