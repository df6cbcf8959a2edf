#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(doctest)]
#[doc = include_str!("../docs/losses.md")]
mod losses_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/device-resident.md")]
mod device_resident_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/linear.md")]
mod linear_md {}

mod cpu;
mod engine;
mod error;
pub mod gpu;
pub mod io;
mod output;
mod request;

pub use engine::{DeviceInfo, DeviceKind, Engine};
pub use error::{Argument, Error, Result};
pub use output::{Clock, KernelTime, LinearGrads, LinearGradsMut, Loss, Output};
pub use request::{
    Base, DEFAULT_CHUNK_BYTES, DEFAULT_IGNORE_INDEX, DeviceGrad, DeviceInput, DeviceLinearGrads,
    DeviceLinearOutput, DeviceLinearRequest, DeviceOutput, DeviceRequest, DeviceTarget,
    DeviceVector, Dtype, IndexType, Input, InputKind, Linear, LossKind, Options, Reduction,
    Request, Shard, ShardStats, ShardedLoss, Target, merge_shards,
};
