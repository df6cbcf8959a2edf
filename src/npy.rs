//! `.npy` input for the CLI, through the `npyz` crate.
//!
//! Whole files are read into memory first, and a header's claimed size is checked against the
//! bytes that are really there before anything is allocated from it.

use std::path::Path;

use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar};

use crate::error::{Error, Result};

/// A row-major f32 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// The values, row-major.
    pub data: Vec<f32>,
    /// `[rows, columns]`.
    pub shape: [usize; 2],
}

/// Class indices as the file stored them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClassIndices {
    /// int32.
    I32(Vec<i32>),
    /// int64.
    I64(Vec<i64>),
}

fn npy_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Opens a file and checks what every reader needs: C order, a plain dtype, and data that the
/// file really holds.
fn open<'a>(path: &Path, bytes: &'a [u8]) -> Result<(NpyFile<&'a [u8]>, TypeChar, usize)> {
    let mut data = bytes;
    let header = NpyHeader::from_reader(&mut data)
        .map_err(|e| npy_error(path, format!("not a valid .npy file: {e}")))?;
    let npy = NpyFile::with_header(header, data);
    if npy.order() == Order::Fortran {
        return Err(npy_error(
            path,
            "Fortran-order arrays are not supported; save in C order",
        ));
    }
    let DType::Plain(ty) = npy.dtype() else {
        return Err(npy_error(path, "structured dtypes are not supported"));
    };
    let item = ty.num_bytes().unwrap_or(0);
    let need = npy
        .shape()
        .iter()
        .try_fold(item as u64, |acc, &d| acc.checked_mul(d));
    match need {
        Some(need) if need <= data.len() as u64 => Ok((npy, ty.type_char(), item)),
        _ => Err(npy_error(
            path,
            format!(
                "the header claims shape {:?} but the file has only {} bytes of data",
                npy.shape(),
                data.len()
            ),
        )),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| npy_error(path, e.to_string()))
}

fn dims(npy: &NpyFile<&[u8]>) -> Vec<usize> {
    npy.shape().iter().map(|&d| d as usize).collect()
}

/// Reads a 2-D float32 array of logits.
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    let bytes = read(path)?;
    let (npy, kind, item) = open(path, &bytes)?;
    let shape = dims(&npy);
    if kind != TypeChar::Float || item != 4 {
        return Err(npy_error(
            path,
            format!("dtype is {}, expected float32", npy.dtype().descr()),
        ));
    }
    let [rows, columns] = shape[..] else {
        return Err(npy_error(
            path,
            format!("shape is {shape:?}, expected [batch, classes]"),
        ));
    };
    let data = npy
        .into_vec::<f32>()
        .map_err(|e| npy_error(path, e.to_string()))?;
    Ok(Matrix {
        data,
        shape: [rows, columns],
    })
}

/// Reads a 1-D int32 or int64 array of class indices.
pub fn read_class_indices(path: &Path) -> Result<ClassIndices> {
    let bytes = read(path)?;
    let (npy, kind, item) = open(path, &bytes)?;
    let shape = dims(&npy);
    if shape.len() != 1 {
        return Err(npy_error(
            path,
            format!("shape is {shape:?}, expected [batch]"),
        ));
    }
    let bad = |e: std::io::Error| npy_error(path, e.to_string());
    match (kind, item) {
        (TypeChar::Int, 4) => Ok(ClassIndices::I32(npy.into_vec().map_err(bad)?)),
        (TypeChar::Int, 8) => Ok(ClassIndices::I64(npy.into_vec().map_err(bad)?)),
        _ => Err(npy_error(
            path,
            format!(
                "dtype is {}, expected int32 or int64 class indices",
                npy.dtype().descr()
            ),
        )),
    }
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
    fn reads_matrices_and_indices() {
        let m = write(
            "m.npy",
            &npy_bytes(&[2, 3], &[0.5_f32, -1.0, 2.0, 3.0, 4.0, 5.5]),
        );
        assert_eq!(
            read_matrix(&m).unwrap(),
            Matrix {
                data: vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.5],
                shape: [2, 3]
            }
        );
        let t = write("t.npy", &npy_bytes(&[2], &[1_i32, 2]));
        assert_eq!(
            read_class_indices(&t).unwrap(),
            ClassIndices::I32(vec![1, 2])
        );
    }

    #[test]
    fn rejects_wrong_dtype_rank_and_lying_headers() {
        let ints = write("i.npy", &npy_bytes(&[2, 2], &[1_i64, 2, 3, 4]));
        assert!(
            read_matrix(&ints)
                .unwrap_err()
                .to_string()
                .contains("expected float32")
        );
        let flat = write("f.npy", &npy_bytes(&[4], &[1.0_f32, 2.0, 3.0, 4.0]));
        assert!(
            read_matrix(&flat)
                .unwrap_err()
                .to_string()
                .contains("expected [batch, classes]")
        );
        let mut truncated = npy_bytes(&[4, 4], &[1.0_f32; 16]);
        truncated.truncate(truncated.len() - 8);
        let t = write("truncated.npy", &truncated);
        assert!(
            read_matrix(&t)
                .unwrap_err()
                .to_string()
                .contains("claims shape")
        );
        let junk = write("j.npy", b"not an npy file at all");
        assert!(
            read_matrix(&junk)
                .unwrap_err()
                .to_string()
                .contains("not a valid .npy")
        );
    }
}
