//! Whole text files that `xent bench` reads and writes, their errors naming the file.

use std::path::Path;

use xent::{Error, Result};

/// A file that could not be read or written.
fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The text of the file at `path`.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_error(path, &e))
}

/// Writes `text` to the file at `path`.
pub fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| io_error(path, &e))
}
