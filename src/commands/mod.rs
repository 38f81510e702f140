//! One module per command; each orchestrates the domain modules and holds no domain logic.

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::error::{Interrupted, NotAvailable};

mod ci;
mod doctor;
mod down;
pub mod init;
pub mod parity;
pub mod render;
pub mod schema;
pub mod status;
pub mod up;

/// The outcome of a command that ran to the end: success, or a negative result such as
/// undeclared drift or a blocking doctor finding (exit code 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    /// Another program's exit code, passed on (`ci` exits with its command's).
    Code(u8),
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Code(code) => ExitCode::from(code),
        }
    }
}

/// Runs a parsed command line. The async runtime starts here, after parsing.
pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // `ci` listens for SIGINT/SIGTERM/SIGHUP itself: it passes them to its command and
        // tears its environment down before it exits.
        if matches!(cli.command, Command::Ci(_)) {
            return dispatch(cli).await;
        }
        // Dropping the command's future cancels whatever it was waiting on; each step is
        // idempotent, so stopping between any two awaits leaves a state the next run finishes.
        tokio::select! {
            outcome = dispatch(cli) => outcome,
            _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
        }
    })
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitStatus> {
    let global = &cli.global;
    let command = match cli.command {
        Command::Render(args) => return render::run(global, args).await,
        Command::Parity(args) => return parity::run(global, args).await,
        Command::Init(args) => return init::run(global, args).await,
        Command::Schema => return schema::run().await,
        Command::Up(args) => return up::run(global, args).await,
        Command::Dev(_) => "dev",
        Command::Ci(args) => return ci::run(global, args).await,
        Command::Doctor(args) => return doctor::run(&args, &cli.global).await,
        Command::Status(args) => return status::run(global, args).await,
        Command::Down(args) => return down::run(global, args).await,
    };
    Err(NotAvailable { command }.into())
}
