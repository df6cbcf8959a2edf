#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cpu;
mod engine;
mod error;
pub mod gpu;
mod loss;
pub mod npy;
mod output;
pub mod tensors;

pub use engine::{DeviceInfo, DeviceKind, Engine};
pub use error::{Error, Result};
pub use loss::{
    Base, DEFAULT_IGNORE_INDEX, Dtype, Input, InputKind, LossKind, Options, Reduction, Request,
    Target,
};
pub use output::{Clock, KernelTime, Loss, Output};
