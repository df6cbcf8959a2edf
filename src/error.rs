//! The one error type of the library.

/// Everything that can go wrong in xent. Each variant says what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A buffer's length does not match the shape it was given with.
    #[error("{what} has {actual} values, but its shape {shape} needs {expected}")]
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// The shape, spelled as in the error message (`[4, 10]`).
        shape: String,
        /// Values the shape needs.
        expected: usize,
        /// Values supplied.
        actual: usize,
    },
    /// The class dimension is empty.
    #[error("logits have 0 classes; cross-entropy needs at least one class")]
    NoClasses,
    /// A class-index target is outside [0, classes) and is not the ignore index.
    #[error(
        "target {target} at row {row} is outside [0, {classes}) and is not ignore_index {ignore_index}"
    )]
    TargetOutOfRange {
        /// The batch row.
        row: usize,
        /// The offending target.
        target: i64,
        /// Number of classes.
        classes: usize,
        /// The ignore index in force.
        ignore_index: i64,
    },
    /// An option does not apply to this loss or input kind.
    #[error("{option} is not supported for {loss} on {input_kind}")]
    Unsupported {
        /// The option.
        option: &'static str,
        /// The loss.
        loss: &'static str,
        /// The input kind.
        input_kind: &'static str,
    },
    /// An option's value is out of its range.
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A class weight is negative, NaN or infinite.
    #[error("{what}[{class}] is {value}; weights must be finite and ≥ 0")]
    InvalidWeight {
        /// `weight` or `pos_weight`.
        what: &'static str,
        /// The class.
        class: usize,
        /// The value.
        value: f32,
    },
    /// A probabilities input holds a value outside [0, 1].
    #[error("input[{row}, {class}] is {value}, not a probability in [0, 1]")]
    NotAProbability {
        /// The row.
        row: usize,
        /// The class.
        class: usize,
        /// The value.
        value: f32,
    },
    /// Strict mode found a NaN or +inf.
    #[error("{what} row {row}, class {class} is {value}; strict mode rejects NaN and +inf")]
    NonFinite {
        /// `input` or `target`.
        what: &'static str,
        /// The row.
        row: usize,
        /// The class.
        class: usize,
        /// The value.
        value: f32,
    },
    /// The target does not suit the loss.
    #[error("{loss}: {reason}")]
    InvalidTarget {
        /// The loss.
        loss: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The input is larger than this backend can address.
    #[error("{what} is too large: {reason}")]
    TooLarge {
        /// Which input.
        what: &'static str,
        /// The limit that was hit.
        reason: String,
    },
    /// A buffer of a device-resident request, or the request itself, does not suit the device.
    #[error("{what}: {reason}")]
    DeviceBuffer {
        /// Which buffer (`input`, `target`) or option.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No GPU adapter could be found or opened.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// wgpu refused the device request.
    #[error("could not open a device on adapter {adapter}: {source}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        source: wgpu::RequestDeviceError,
    },
    /// A wgpu validation or internal error, captured from an error scope or the uncaptured-error
    /// handler.
    #[error("wgpu error during {during}: {message}")]
    Wgpu {
        /// What xent was doing.
        during: &'static str,
        /// wgpu's message.
        message: String,
    },
    /// The device ran out of memory.
    #[error("the GPU ran out of memory during {during}")]
    OutOfMemory {
        /// What xent was doing.
        during: &'static str,
    },
    /// The device was lost; build a new engine.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// Mapping a buffer for reading or writing failed.
    #[error("mapping a GPU buffer failed: {0}")]
    Map(#[from] wgpu::BufferAsyncError),
    /// A mapped buffer's bytes could not be reached.
    #[error("reaching a mapped GPU buffer failed: {0}")]
    MapRange(String),
    /// Waiting on the device failed.
    #[error("waiting for the GPU failed: {0}")]
    Poll(#[from] wgpu::PollError),
    /// A `.npy` file could not be read or has the wrong dtype or shape.
    #[error("{path}: {reason}")]
    Npy {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `.safetensors` file could not be read, is malformed, or its tensor has the wrong dtype
    /// or shape.
    #[error("{path}: {reason}")]
    Safetensors {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be opened, mapped, read or written, or a helper program could not be
    /// run.
    #[error("{path}: {reason}")]
    Io {
        /// The file or program.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// `Result` with xent's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An argument of a [`Request`](crate::Request) that an error can be about: what the caller
/// should fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Argument {
    /// The input values, their shape included.
    Input,
    /// The target.
    Target,
    /// The per-class weights ([`Request::weight`](crate::Request::weight)).
    Weight,
    /// BCE's weights of positive labels ([`Request::pos_weight`](crate::Request::pos_weight)).
    PosWeight,
    /// What the input values are ([`Request::input_kind`](crate::Request::input_kind)).
    InputKind,
    /// [`Request::label_smoothing`](crate::Request::label_smoothing).
    LabelSmoothing,
    /// [`Request::z_loss`](crate::Request::z_loss).
    ZLoss,
    /// [`Request::softcap`](crate::Request::softcap).
    Softcap,
    /// [`Request::log_target`](crate::Request::log_target).
    LogTarget,
    /// [`Request::base`](crate::Request::base).
    Base,
    /// [`Request::with_lse`](crate::Request::with_lse).
    Lse,
    /// A linear head's weight ([`Request::linear_cross_entropy`](crate::Request::linear_cross_entropy)).
    LinearWeight,
    /// A linear head's bias ([`Request::linear_bias`](crate::Request::linear_bias)).
    LinearBias,
}

impl Error {
    /// The argument of the request that this error is about, when it is about one; `None` for
    /// errors of the device, of files, of shards and of device buffers, and for errors about a
    /// combination of arguments.
    ///
    /// ```
    /// use xent::{Argument, Request};
    /// let request = Request::cross_entropy(&[0.5_f32; 4][..], [2, 2], &[0_i64, 1][..]);
    /// let err = request.label_smoothing(1.5).validate().unwrap_err();
    /// assert_eq!(err.argument(), Some(Argument::LabelSmoothing));
    /// ```
    pub fn argument(&self) -> Option<Argument> {
        match self {
            Error::LengthMismatch { what, .. }
            | Error::InvalidWeight { what, .. }
            | Error::NonFinite { what, .. }
            | Error::TooLarge { what, .. } => match *what {
                "input" | "logits" | "batch" => Some(Argument::Input),
                "target" => Some(Argument::Target),
                "weight" => Some(Argument::Weight),
                "pos_weight" => Some(Argument::PosWeight),
                "linear_weight" => Some(Argument::LinearWeight),
                "linear_bias" => Some(Argument::LinearBias),
                _ => None,
            },
            Error::NoClasses | Error::NotAProbability { .. } => Some(Argument::Input),
            Error::TargetOutOfRange { .. } | Error::InvalidTarget { .. } => Some(Argument::Target),
            Error::Unsupported { option, .. } | Error::InvalidOption { option, .. } => {
                match *option {
                    "input" => Some(Argument::Input),
                    "weight" => Some(Argument::Weight),
                    "pos_weight" => Some(Argument::PosWeight),
                    "input kind" => Some(Argument::InputKind),
                    "label_smoothing" => Some(Argument::LabelSmoothing),
                    "z_loss" => Some(Argument::ZLoss),
                    "softcap" => Some(Argument::Softcap),
                    "log_target" => Some(Argument::LogTarget),
                    "base" => Some(Argument::Base),
                    "lse" => Some(Argument::Lse),
                    "linear_weight" => Some(Argument::LinearWeight),
                    "linear_bias" => Some(Argument::LinearBias),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl From<wgpu::MapRangeError> for Error {
    fn from(e: wgpu::MapRangeError) -> Self {
        Error::MapRange(one_line(&e.to_string()))
    }
}

/// wgpu's messages span lines (a cause chain, a source excerpt); errors here are one line each.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_argument() {
        let length = |what| Error::LengthMismatch {
            what,
            shape: "[2]".into(),
            expected: 2,
            actual: 3,
        };
        let unsupported = |option| Error::Unsupported {
            option,
            loss: "kl-div",
            input_kind: "logits",
        };
        let invalid = |option| Error::InvalidOption {
            option,
            reason: String::new(),
        };
        let cases = [
            (length("input"), Some(Argument::Input)),
            (length("target"), Some(Argument::Target)),
            (length("weight"), Some(Argument::Weight)),
            (length("pos_weight"), Some(Argument::PosWeight)),
            (length("grad"), None),
            (Error::NoClasses, Some(Argument::Input)),
            (
                Error::InvalidTarget {
                    loss: "kl-div",
                    reason: String::new(),
                },
                Some(Argument::Target),
            ),
            (unsupported("input kind"), Some(Argument::InputKind)),
            (unsupported("log_target"), Some(Argument::LogTarget)),
            (unsupported("lse"), Some(Argument::Lse)),
            (invalid("label_smoothing"), Some(Argument::LabelSmoothing)),
            (invalid("z_loss"), Some(Argument::ZLoss)),
            (invalid("softcap"), Some(Argument::Softcap)),
            (invalid("base"), Some(Argument::Base)),
            (invalid("shard"), None),
            (Error::NoAdapter(String::new()), None),
        ];
        for (error, argument) in cases {
            assert_eq!(error.argument(), argument, "{error}");
        }
    }
}
