//! The files the CLI reads and writes: `.npy` arrays ([`npy`]) and `.safetensors` tensors
//! ([`safetensors`]), whose values are [`Floats`] (an input) or [`TargetData`] (a target).
//!
//! A file is opened once as a [`Source`]: mapped where it is a regular file, or read to its end
//! once where it is a pipe, a FIFO or a terminal. Readers take a `Source` (the `read_*`
//! functions) or any bytes (the `parse_*` functions, which are fuzzed), and return values that
//! borrow those bytes wherever they are already the values a loss takes (little-endian, aligned,
//! float32, float16 or bfloat16, int32 or int64), so that a mapped file is computed on with no
//! copy; values in another byte order or dtype, or misaligned, are converted once into one
//! buffer.
//!
//! Nothing in a file is trusted. Before a format's crate (npyz, safetensors) parses a header,
//! the header's length is checked against the bytes that follow it, and a `.npy` header must
//! also be short, shallow and hold a shape whose size fits in 64 bits, since npyz trusts all
//! three. The data a header claims is checked to be present before anything is read or
//! allocated from it. What is trusted: those crates' parsers, once given a header that passed
//! these checks, and the file system, including that no other process shrinks a file while it is
//! mapped (see [`Source`]). Malformed bytes of any kind are a one-line
//! [`Error::Npy`](crate::Error::Npy) or [`Error::Safetensors`](crate::Error::Safetensors) naming
//! the file, never a panic.
//!
//! The writer, [`npy::Writer`], creates a float32 `.npy` file under a temporary name, maps it for
//! the caller (an engine writes a gradient straight into it), and renames it into place once it
//! is flushed; [`npy::write`] writes a slice through it. A file that cannot be created or written
//! is an [`Error::Io`](crate::Error::Io) naming it, and leaves nothing behind.

mod decode;
mod error;
mod floats;
mod guard;
pub mod npy;
pub mod safetensors;
mod source;

pub use floats::{Floats, TargetData};
pub use guard::exit_on_shrunk_file;
pub use source::Source;
