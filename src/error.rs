//! How a failure is classified and reported: user mistakes exit 2, environment problems
//! and negative results exit 1. Each domain module has its own `thiserror` enum and says,
//! through [`Classify`], which class each variant belongs to.

use std::process::ExitCode;

/// Who has to act to fix a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a config file, a flag, a template. Exit code 2.
    User,
    /// The machine: Docker not running, a port taken, a disk full. Exit code 1.
    Environment,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::User => 2,
            ErrorKind::Environment => 1,
        }
    }
}

/// Implemented by every domain error enum so the top level can pick the exit code.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

/// A command that exists in the CLI but whose implementation has not landed yet.
#[derive(Debug, thiserror::Error)]
#[error("`samestack {command}` is not available yet in this version")]
pub struct NotAvailable {
    pub command: &'static str,
}

impl Classify for NotAvailable {
    fn kind(&self) -> ErrorKind {
        ErrorKind::User
    }
}

/// The user pressed Ctrl-C. Every step of `up` is idempotent, so the next run finishes the job.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; nothing is left half-made that the next run cannot finish (run the command again)")]
pub struct Interrupted;

/// Exit status for an interrupted command, as shells report SIGINT.
const INTERRUPTED_EXIT: u8 = 130;

/// Walks the cause chain and returns the class of the first domain error found.
/// Anything unclassified (I/O at the command edge, a bug) counts as environment.
pub fn kind_of(err: &anyhow::Error) -> ErrorKind {
    macro_rules! classify {
        ($cause:expr, $($ty:ty),+ $(,)?) => {
            $(if let Some(e) = $cause.downcast_ref::<$ty>() { return e.kind(); })+
        };
    }
    for cause in err.chain() {
        classify!(
            cause,
            NotAvailable,
            crate::config::Error,
            crate::profile::Error,
            crate::render::Error,
            crate::commands::render::ImageFlagError,
            crate::docker::Error,
            crate::registry::Error,
            crate::build::Error,
            crate::cluster::Error,
            crate::kube::Error,
            crate::preflight::Error,
            crate::settings::FlagError,
            crate::tls::Error,
            crate::sync::Error,
        );
    }
    ErrorKind::Environment
}

pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    if err.is::<Interrupted>() {
        return ExitCode::from(INTERRUPTED_EXIT);
    }
    ExitCode::from(kind_of(err).exit_code())
}

/// Prints an error and its causes once, at the top level, to stderr.
pub fn report(err: &anyhow::Error) {
    let mut chain = err.chain();
    if let Some(top) = chain.next() {
        eprintln!("error: {top}");
    }
    for cause in chain {
        eprintln!("  caused by: {cause}");
    }
}
