//! Argument parsing and dispatch to the subcommands.

mod adapters;
mod bench;
mod compare;
mod demo;
mod failure;
mod loss;
mod random;
mod verify;

use clap::{Parser, Subcommand};

use failure::Failure;

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
    /// One linear call of `xent bench` in a process of its own, which prints its peak memory.
    #[command(name = "bench-linear-child", hide = true)]
    BenchLinearChild(bench::LinearChildArgs),
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
        Command::BenchLinearChild(args) => Ok(bench::run_linear_child(&args)?),
        Command::Verify(args) => match verify::run(&args)? {
            (0, _) => Ok(()),
            (failed, checks) => Err(Failure::Verify { failed, checks }),
        },
    }
}
