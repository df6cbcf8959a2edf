//! Why a command failed, as the one line a script reads.

use xent::Error;

/// Why a command failed, in the one line a script sees.
#[derive(Debug)]
pub enum Failure {
    /// xent's error, and the flag it concerns (such as `--target`) when there is one.
    Input {
        /// The flag.
        flag: Option<&'static str>,
        /// The error.
        error: Error,
    },
    /// `xent verify` found results off the reference.
    Verify {
        /// Checks off the reference.
        failed: usize,
        /// Checks run.
        checks: usize,
    },
}

impl Failure {
    /// `error`, which concerns `flag`.
    pub fn about(flag: &'static str, error: Error) -> Self {
        Failure::Input {
            flag: Some(flag),
            error,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Input { flag: None, error }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Verify { failed, checks } => {
                write!(f, "{failed} of {checks} checks are off the reference")
            }
            Failure::Input { flag: None, error } => write!(f, "{error}"),
            // The option's own name would repeat the flag's.
            Failure::Input {
                flag: Some(flag),
                error: Error::InvalidOption { reason, .. },
            } => write!(f, "{flag}: {reason}"),
            // A file's error starts with its path: `--input x.npy: ...`.
            Failure::Input {
                flag: Some(flag),
                error: error @ (Error::Npy { .. } | Error::Safetensors { .. } | Error::Io { .. }),
            } => write!(f, "{flag} {error}"),
            Failure::Input {
                flag: Some(flag),
                error,
            } => write!(f, "{flag}: {error}"),
        }
    }
}
