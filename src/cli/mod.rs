//! Argument parsing and dispatch to the subcommands.

mod adapters;
mod bench;
mod compare;
mod demo;
mod loss;
mod random;
mod verify;

use clap::{Parser, Subcommand, ValueEnum};
use xent::{Engine, Error, Result};

/// Cross-entropy losses on wgpu and the CPU.
#[derive(Parser, Debug)]
#[command(name = "xent", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compute the loss of a generated batch on every adapter, the fast CPU path and the reference
    /// (the default).
    Demo,
    /// List every adapter wgpu finds, best first, with its backend, type, limits and features.
    Adapters,
    /// Compute the loss of logits and targets stored as .npy files (the logits may be a
    /// .safetensors tensor).
    Loss(loss::LossArgs),
    /// Check every adapter and the fast CPU path against the float64 reference on fresh random
    /// batches of every loss, losses and gradients; exits with 1 when any check fails.
    Verify(verify::VerifyArgs),
    /// Time every path on a grid of shapes against each device's bandwidth probe, and print a
    /// table (JSON, CSV and an SVG plot on request).
    Bench(bench::BenchArgs),
}

/// Which engine a command runs on.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum DeviceChoice {
    /// A hardware GPU when there is one, or else the fast CPU path.
    #[default]
    Auto,
    /// The best GPU adapter, software ones included; an error when there is none.
    Gpu,
    /// The fast CPU path (SIMD, threads, f32).
    Cpu,
    /// The float64 CPU reference.
    Reference,
}

impl DeviceChoice {
    fn engine(self) -> Result<Engine> {
        match self {
            DeviceChoice::Auto => Ok(Engine::new()),
            DeviceChoice::Gpu => Engine::gpu(),
            DeviceChoice::Cpu => Ok(Engine::cpu()),
            DeviceChoice::Reference => Ok(Engine::reference()),
        }
    }
}

/// Why a command failed, in the one line a script sees.
#[derive(Debug)]
pub enum Failure {
    /// xent's error, and the argument it concerns (a flag such as `--target`) when there is one.
    Input {
        argument: Option<&'static str>,
        error: Error,
    },
    /// `xent verify` found results off the reference.
    Verify { failed: usize, checks: usize },
}

impl Failure {
    /// `error`, which concerns `argument`.
    pub fn about(argument: &'static str, error: Error) -> Self {
        Failure::Input {
            argument: Some(argument),
            error,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Input {
            argument: None,
            error,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Verify { failed, checks } => {
                write!(f, "{failed} of {checks} checks are off the reference")
            }
            Failure::Input {
                argument: None,
                error,
            } => write!(f, "{error}"),
            // The option's own name would repeat the flag's.
            Failure::Input {
                argument: Some(flag),
                error: Error::InvalidOption { reason, .. },
            } => write!(f, "{flag}: {reason}"),
            // A file's error starts with its path: `--input x.npy: ...`.
            Failure::Input {
                argument: Some(flag),
                error: error @ (Error::Npy { .. } | Error::Safetensors { .. } | Error::Io { .. }),
            } => write!(f, "{flag} {error}"),
            Failure::Input {
                argument: Some(flag),
                error,
            } => write!(f, "{flag}: {error}"),
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> std::result::Result<(), Failure> {
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => Ok(demo::run()?),
        Command::Adapters => {
            adapters::run();
            Ok(())
        }
        Command::Loss(args) => loss::run(&args),
        Command::Bench(args) => Ok(bench::run(&args)?),
        Command::Verify(args) => match verify::run(&args)? {
            (0, _) => Ok(()),
            (failed, checks) => Err(Failure::Verify { failed, checks }),
        },
    }
}
