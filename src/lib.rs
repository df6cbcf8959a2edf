#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cpu;
mod engine;
mod error;
pub mod gpu;
mod loss;
pub mod npy;
mod output;

pub use engine::{DeviceInfo, DeviceKind, Engine};
pub use error::{Error, Result};
pub use loss::{DEFAULT_IGNORE_INDEX, Options, Reduction, SoftmaxCrossEntropy, Targets};
pub use output::{Loss, Output};
