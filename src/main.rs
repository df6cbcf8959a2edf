//! The `xent` command-line tool. See `xent --help`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xent: error: {e}");
            ExitCode::FAILURE
        }
    }
}
