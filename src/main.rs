//! The `samestack` binary: parse arguments, set up logging, run, map the outcome to an exit code.
//! Everything else lives in the library (see `src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = samestack::cli::Cli::parse();
    samestack::ui::init_tracing(cli.global.quiet, cli.global.verbose);
    match samestack::commands::run(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            samestack::error::report(&err);
            samestack::error::exit_code(&err)
        }
    }
}
