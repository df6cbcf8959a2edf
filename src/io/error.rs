//! How a reader or writer fails: an [`Error`] naming the file, with a one-line reason that quotes
//! a format crate's message safely.

use std::path::Path;

use crate::Error;

/// The longest message of a format crate's that is quoted in an error.
const MAX_QUOTED: usize = 200;

/// An [`Error::Npy`] about the file at `path`.
pub(super) fn npy_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// An [`Error::Safetensors`] about the file at `path`.
pub(super) fn safetensors_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Safetensors {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// One line of at most [`MAX_QUOTED`] characters, control characters escaped: npyz's parse errors
/// span lines and quote the header, which may hold anything (as may a `.safetensors` header).
pub(super) fn quote(message: &str) -> String {
    let line = message
        .lines()
        .filter(|l| !l.chars().all(|c| " |^-=".contains(c)))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::new();
    for (n, c) in line.chars().enumerate() {
        if n == MAX_QUOTED {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
