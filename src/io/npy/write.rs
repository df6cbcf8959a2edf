//! Writing `.npy` files: a row-major array in its own dtype, as the CLI writes gradients.

use std::path::Path;

use crate::Result;
use crate::io::error::npy_error;

/// Writes a row-major array of the given shape, in `T`'s own dtype (float32 for the gradients
/// the CLI writes).
pub fn write<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    data: &[T],
    shape: &[usize],
) -> Result<()> {
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
    use crate::io::Floats;
    use crate::io::npy::read_input;

    #[test]
    fn written_arrays_read_back() {
        let path =
            std::env::temp_dir().join(format!("xent-npy-{}-written.npy", std::process::id()));
        super::write(&path, &[1.5_f32, -2.0, 0.25, 8.0, 3.0, -1.0], &[2, 3]).unwrap();
        assert_eq!(
            read_input(&path).unwrap(),
            (Floats::F32(vec![1.5, -2.0, 0.25, 8.0, 3.0, -1.0]), [2, 3])
        );
        let err =
            super::write(Path::new("/nonexistent/dir/g.npy"), &[1.0_f32], &[1, 1]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/dir/g.npy: "),
            "{err}"
        );
    }
}
