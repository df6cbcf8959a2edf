//! `.npy` files, through the `npyz` crate: the CLI's inputs, targets and class weights, and the
//! gradients it writes.
//!
//! Whole files are read into memory first ([`read_input`] and the others), or given as bytes
//! ([`parse_input`] and the others, which the readers call and which are fuzzed). Before npyz
//! parses a header, the magic string, the version and the header's length are checked against
//! the bytes that are really there; headers longer than 4096 bytes or with brackets nested more
//! than 4 deep are refused (npyz's parser takes time exponential in the nesting), as is a shape
//! whose dimensions multiply past 2^64. The data's claimed size is checked against the bytes
//! present before anything is allocated from it. Malformed bytes of any kind are a one-line
//! [`Error::Npy`](crate::Error::Npy), never a panic. Big-endian data is read, as native values.
//! Float64 values are converted to float32, which is what xent computes in; float16 input is
//! kept as it is.

mod header;
#[cfg(test)]
mod malformed_tests;
mod read;
mod write;

pub use read::{parse_input, parse_target, parse_vector, read_input, read_target, read_vector};
pub use write::{Writer, write};
