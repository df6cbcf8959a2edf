#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cpu;
mod engine;
mod error;
pub mod gpu;
pub mod io;
mod output;
mod request;

pub use engine::{DeviceInfo, DeviceKind, Engine};
pub use error::{Argument, Error, Result};
pub use output::{Clock, KernelTime, Loss, Output};
pub use request::{
    Base, DEFAULT_IGNORE_INDEX, DeviceInput, DeviceOutput, DeviceRequest, DeviceTarget, Dtype,
    IndexType, Input, InputKind, LossKind, Options, Reduction, Request, Shard, ShardStats,
    ShardedLoss, Target, merge_shards,
};
