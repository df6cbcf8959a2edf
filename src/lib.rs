#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

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
pub use error::{Argument, Error, Result};
pub use loss::{
    Base, DEFAULT_IGNORE_INDEX, Dtype, Input, InputKind, LossKind, Options, Reduction, Request,
    Target,
};
pub use output::{Clock, KernelTime, Loss, Output};
pub use shard::{Shard, ShardStats, ShardedLoss, merge_shards};
