//! The files the CLI reads and writes: `.npy` arrays ([`npy`]) and `.safetensors` tensors
//! ([`safetensors`]), whose values are [`Floats`] (an input) or [`TargetData`] (a target).
//!
//! Nothing in a file is trusted. A reader takes the whole file's bytes: the `read_*` functions
//! read them from disk, the `parse_*` functions are given them (and are fuzzed). Before a
//! format's crate (npyz, safetensors) parses a header, the header's length is checked against
//! the bytes that follow it, and a `.npy` header must also be short, shallow and hold a shape
//! whose size fits in 64 bits, since npyz trusts all three. The data a header claims is checked
//! to be present before anything is allocated from it. What is trusted: those crates' parsers,
//! once given a header that passed these checks, and the file system. Malformed bytes of any
//! kind are a one-line [`Error::Npy`](crate::Error::Npy) or
//! [`Error::Safetensors`](crate::Error::Safetensors) naming the file, never a panic.
//!
//! The writer, [`npy::write`], writes the values and shape it is given; a file that cannot be
//! created or written is an [`Error::Npy`](crate::Error::Npy) naming it.

mod error;
mod floats;
pub mod npy;
pub mod safetensors;

pub use floats::{Floats, TargetData};
