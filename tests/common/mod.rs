//! Shared by the integration tests: the engines a test runs on, random inputs and files, NaN-aware
//! comparison, device buffers, and the `xent` binary.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test crate uses a different part of this module"
)]

mod assert;
mod buffers;
mod cli;
/// The measures `xent verify` reports, included by path so that a bound means the same here.
#[path = "../../src/cli/compare.rs"]
mod compare;
mod data;
mod engines;
mod linear;

pub use assert::{assert_close, assert_scalar, norms, relative_norm_error};
pub use buffers::{
    GUARD, GUARD_BYTE, float_bytes, floats, guarded_buffer, read_floats, storage_buffer,
};
pub use cli::{cli_devices, run_cli};
pub use data::{
    REDUCTIONS, distribution, fixture_dirs, logits, read_input, read_matrix, read_safetensors,
    read_target, read_vector, rng, round_to, safetensors_file, safetensors_raw, targets, write_npy,
};
pub use engines::{
    caller_devices, caller_devices_with, check_expected_backends, gpus, in_pool, on_every_engine,
    open_gpus, under_test,
};
pub use linear::{assert_added, head_logits, product_magnitudes};
