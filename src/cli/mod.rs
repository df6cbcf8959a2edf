//! Argument parsing and dispatch to the subcommands.

mod adapters;
mod bench;
mod demo;
mod loss;
mod plot;

use clap::{Parser, Subcommand, ValueEnum};
use xent::{Engine, Result};

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
    /// Compute the loss of logits and targets stored as .npy files.
    Loss(loss::LossArgs),
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

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => demo::run(),
        Command::Adapters => {
            adapters::run();
            Ok(())
        }
        Command::Loss(args) => loss::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
