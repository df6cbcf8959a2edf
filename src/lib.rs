#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(doctest)]
#[doc = include_str!("../docs/losses.md")]
mod losses_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/device-resident.md")]
mod device_resident_md {}

mod cpu;
mod device;
mod engine;
mod error;
pub mod gpu;
mod loss;
pub mod npy;
mod output;
mod scale;
mod shard;
pub mod tensors;

pub use device::{DeviceInput, DeviceOutput, DeviceRequest, DeviceTarget, IndexType};
pub use engine::{DeviceInfo, DeviceKind, Engine};
pub use error::{Error, Result};
pub use loss::{
    Base, DEFAULT_IGNORE_INDEX, Dtype, Input, InputKind, LossKind, Options, Reduction, Request,
    Target,
};
pub use output::{Clock, KernelTime, Loss, Output};
pub use shard::{Shard, ShardStats, ShardedLoss, merge_shards};
