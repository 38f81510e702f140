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

/// The user pressed Ctrl-C. Every step of `up` is idempotent, so the next run finishes the job:
/// what an interrupted step left (a node container never started, a bootstrap without its CNI)
/// is finished or made again, not taken for done.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; run the command again: it finishes or redoes what this run left unfinished")]
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

/// How long one line of a reported error (the error or one of its causes) may get: a cause
/// can carry a whole server answer (a rejected object comes back with its spec).
pub const MAX_REPORTED: usize = 2000;

/// Pure: `message` cut to `max` characters (on a character boundary), saying how much was cut.
pub fn cap_message(message: &str, max: usize) -> String {
    let message = message.trim();
    match message.char_indices().nth(max) {
        None => message.to_string(),
        Some((end, _)) => format!("{}… ({} more characters cut)", &message[..end], message[end..].chars().count()),
    }
}

/// Pure: the lines [`report`] prints: the error, then each cause that adds something (a cause
/// whose text was already printed is left out), each cut to [`MAX_REPORTED`].
pub fn report_lines(err: &anyhow::Error) -> Vec<String> {
    let mut printed = String::new();
    let mut lines = Vec::new();
    for (i, cause) in err.chain().enumerate() {
        let text = cap_message(&cause.to_string(), MAX_REPORTED);
        if i > 0 && printed.contains(&text) {
            continue;
        }
        lines.push(if i == 0 { format!("error: {text}") } else { format!("  caused by: {text}") });
        printed.push_str(&text);
    }
    lines
}

/// Prints an error and its causes once, at the top level, to stderr.
pub fn report(err: &anyhow::Error) {
    for line in report_lines(err) {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary_saying_how_much() {
        assert_eq!(cap_message(" short ", 10), "short");
        assert_eq!(cap_message("ééééé", 2), "éé… (3 more characters cut)");
    }

    #[test]
    fn a_huge_cause_is_printed_once_and_cut() {
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Server(String);
        let huge = "spec.template: Invalid value: ".to_string() + &"x".repeat(21_000);
        let err = anyhow::Error::new(Server(huge.clone())).context(huge.clone()).context("applying Job/migrate");
        let lines = report_lines(&err);
        assert_eq!(lines.len(), 2, "the repeated cause is left out: {lines:?}");
        assert!(lines.iter().all(|l| l.len() < MAX_REPORTED + 100), "{lines:?}");
        assert!(lines[1].ends_with("more characters cut)"), "{}", lines[1]);
    }
}
