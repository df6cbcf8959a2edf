//! The files of `xent loss`, each opened once ([`Source`]: mapped, or a pipe read once) and read
//! in place where it can be, with the flag each error concerns.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use xent::io::{Floats, Source, TargetData, npy, safetensors};
use xent::{Error, LossKind, Result};

use crate::cli::failure::Failure;

/// The file at `path`, opened for the reader of `flag`.
pub fn open(flag: &'static str, path: &Path) -> std::result::Result<Source, Failure> {
    Source::open(path).map_err(|e| Failure::about(flag, e))
}

/// The file at `path` when there is one, opened for the reader of `flag`.
pub fn optional(
    flag: &'static str,
    path: &Option<PathBuf>,
) -> std::result::Result<Option<Source>, Failure> {
    path.as_deref().map(|p| open(flag, p)).transpose()
}

/// A [classes] float vector (class weights, pos_weight, a linear head's bias).
pub fn vector<'a>(
    flag: &'static str,
    file: Option<&'a Source>,
) -> std::result::Result<Option<Cow<'a, [f32]>>, Failure> {
    let read = file.map(npy::read_vector).transpose();
    read.map_err(|e| Failure::about(flag, e))
}

/// A target, whose float values must have `shape`, which is `whose` (the input's, or a linear
/// head's logits').
pub fn target<'a>(
    file: &'a Source,
    loss: LossKind,
    shape: [usize; 2],
    whose: &str,
) -> std::result::Result<TargetData<'a>, Failure> {
    let check = || -> Result<TargetData<'a>> {
        let data = npy::read_target(file)?;
        if let TargetData::Dense(_, dims) = &data
            && dims[..] != shape
        {
            return Err(Error::InvalidTarget {
                loss: loss.name(),
                reason: format!(
                    "{}: a float target must have the {whose} shape {shape:?}, not {dims:?}",
                    file.path().display()
                ),
            });
        }
        Ok(data)
    };
    check().map_err(|e| Failure::about("--target", e))
}

/// A 2-D float array of `flag`'s file: a tensor of a `.safetensors` file (by its extension), the
/// one `tensor` names (set by `tensor_flag`) or its only one, or else a `.npy` array.
pub fn matrix<'a>(
    flag: &'static str,
    file: &'a Source,
    tensor: Option<&str>,
    tensor_flag: &'static str,
) -> std::result::Result<(Floats<'a>, [usize; 2]), Failure> {
    let path = file.path();
    let is_safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let read = match (is_safetensors, tensor) {
        (true, tensor) => safetensors::read_input(file, tensor),
        (false, None) => npy::read_input(file),
        (false, Some(_)) => {
            return Err(Failure::about(
                tensor_flag,
                Error::InvalidOption {
                    option: "tensor",
                    reason: format!(
                        "names a tensor of a .safetensors file, and {} is read as .npy",
                        path.display()
                    ),
                },
            ));
        }
    };
    read.map_err(|e| Failure::about(flag, e))
}
