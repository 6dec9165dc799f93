use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    halosync::cli::run(halosync::cli::Cli::parse())
}
