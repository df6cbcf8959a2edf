//! What is asked: the loss, its input and target, its options; the one validation every backend
//! relies on ([`Checked`]); the reduction; and vocabulary shards.
//!
//! Data flows one way: a [`Request`] (host data) or a [`DeviceRequest`] (the caller's wgpu
//! buffers) is checked once into what a backend computes, so the backends differ only in how
//! they compute, never in what they accept.

mod builder;
mod check;
mod check_device;
mod check_host;
mod checked;
mod device;
mod device_linear;
mod exact_sum;
mod kinds;
mod linear;
mod linear_head;
mod markers;
mod merge;
mod options;
mod reduce;
mod shard;
mod values;

pub use builder::Request;
pub use device::{DeviceInput, DeviceOutput, DeviceRequest, DeviceTarget, IndexType};
pub use device_linear::{
    DeviceGrad, DeviceLinearGrads, DeviceLinearOutput, DeviceLinearRequest, DeviceVector,
};
pub use kinds::{Base, Dtype, InputKind, LossKind, Reduction};
pub use linear_head::{DEFAULT_CHUNK_BYTES, Linear};
pub use merge::merge_shards;
pub use options::{DEFAULT_IGNORE_INDEX, Options};
pub use shard::{Shard, ShardStats, ShardedLoss};
pub use values::{Input, Target};

pub(crate) use check::{Head, TargetKind};
pub(crate) use check_device::{CheckedDeviceTarget, DeviceRows};
pub(crate) use checked::{Checked, CheckedTarget, ShardInfo, ShardPass};
pub(crate) use device_linear::{CheckedDeviceLinear, GradTo};
pub(crate) use exact_sum::{ONE_AT, WORDS};
pub(crate) use linear::CheckedLinear;
pub(crate) use linear_head::chunk_rows as linear_chunk_rows;
pub(crate) use markers::{BAD, ELSEWHERE, IGNORED};
pub(crate) use reduce::{Scales, scalar};
pub(crate) use shard::{MergedRow, ROW_STATS};
