//! How a failure is classified and reported. The bottom of the crate: it imports no other
//! module of samestack, so every module can use it without an import cycle.
//!
//! Three classes, each with its exit code (see [`ErrorKind::exit_code`]):
//! - **user** (2): bad input — a config file, a flag, a template. The message says what, where
//!   and how to fix it.
//! - **environment** (1): the machine — Docker not running, a port taken, a cluster that does not
//!   become ready. Also the class of anything nobody classified (I/O at the command edge).
//! - **unexpected** (70, `EX_SOFTWARE` of sysexits.h): a samestack bug — an invariant broke.
//!   Only this class says "a samestack bug".
//!
//! Each domain error type says its class itself, by implementing [`Classify`], and registers
//! itself with [`classify!`](crate::classify) next to that impl. [`kind_of`] then finds the class of any
//! registered error anywhere in an `anyhow` chain, however it got there (`?`, `.context()`,
//! wrapped as another error's source), without this module naming any of those types.
//!
//! A command that ran to the end returns an exit status instead (e.g. `status` says "not
//! ready" with 1); an interrupted one fails with [`Interrupted`], which exits 128 + the signal.

use std::process::ExitCode;

/// Who has to act to fix a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a config file, a flag, a template. Exit code 2.
    User,
    /// The machine: Docker not running, a port taken, a disk full. Exit code 1.
    Environment,
    /// A samestack bug: something that cannot happen did. Exit code 70.
    Unexpected,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::User => 2,
            ErrorKind::Environment => 1,
            ErrorKind::Unexpected => 70,
        }
    }
}

/// Implemented by every domain error type: which class each of its values belongs to.
/// Register the type with [`classify!`](crate::classify) so [`kind_of`] finds it.
pub trait Classify: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;
}

/// One registered error type: tries to see `err` as that type and, if it is one, classifies it.
/// Built by [`classify!`](crate::classify); collected at link time (the `inventory` crate), so no list of the
/// crate's error types exists anywhere.
pub struct Classifier(pub fn(&(dyn std::error::Error + 'static)) -> Option<ErrorKind>);

inventory::collect!(Classifier);

/// The classifier function for one type: `Some(class)` when `err` is a `T`.
pub fn classifier_of<T: Classify>(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    err.downcast_ref::<T>().map(Classify::kind)
}

/// Registers a [`Classify`] type so [`kind_of`] finds it in error chains:
/// `crate::classify!(Error);` next to `impl Classify for Error`.
#[macro_export]
macro_rules! classify {
    ($ty:ty) => {
        inventory::submit! { $crate::error::Classifier($crate::error::classifier_of::<$ty>) }
    };
}

/// A samestack bug found at run time: an invariant that broke. Reports as unexpected (70).
#[derive(Debug, thiserror::Error)]
#[error("{what} (a samestack bug; please report it with the command line that led here)")]
pub struct Bug {
    pub what: String,
}

impl Classify for Bug {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unexpected
    }
}
classify!(Bug);

/// A signal stopped the command. Every step of `up` is idempotent, so the next run finishes the
/// job: what an interrupted step left (a node container never started, a bootstrap without its
/// CNI) is finished or made again, not taken for done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted; run the command again: it finishes or redoes what this run left unfinished")]
pub struct Interrupted {
    /// The signal's number (2 SIGINT, 15 SIGTERM, 1 SIGHUP): the exit status is 128 + it, as
    /// shells report a process a signal ended.
    pub signal: i32,
}

impl Interrupted {
    /// SIGINT (Ctrl-C).
    pub const SIGINT: Interrupted = Interrupted { signal: 2 };

    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(u8::MAX)
    }
}

impl Classify for Interrupted {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Environment
    }
}
classify!(Interrupted);

/// Walks the cause chain and returns the class of the first classified error found.
/// Anything unclassified (I/O at the command edge, an API error given context there) counts
/// as environment: it is the machine's state, not the input, and not known to be a bug.
pub fn kind_of(err: &anyhow::Error) -> ErrorKind {
    err.chain()
        .find_map(|cause| inventory::iter::<Classifier>.into_iter().find_map(|classify| (classify.0)(cause)))
        .unwrap_or(ErrorKind::Environment)
}

/// The process exit code for a failed command.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    if let Some(interrupted) = err.chain().find_map(|c| c.downcast_ref::<Interrupted>()) {
        return ExitCode::from(interrupted.exit_code());
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
/// whose text was already printed is left out). Every line goes through [`clip_text`], so no
/// echoed value (a 1 MB flag, a huge API-server answer) floods the terminal, whichever module
/// built the message; each error or cause is then cut to [`MAX_REPORTED`].
pub fn report_lines(err: &anyhow::Error) -> Vec<String> {
    let clip = |text: String| text.lines().map(clip_text).collect::<Vec<_>>().join("\n");
    let mut printed = String::new();
    let mut lines = Vec::new();
    for (i, cause) in err.chain().enumerate() {
        let text = cap_message(&clip(cause.to_string()), MAX_REPORTED);
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

/// The longest value a message echoes in full; longer ones are cut (a 1 MB value must not
/// become a 1 MB error message).
pub const MAX_ECHO: usize = 120;
/// Characters kept of a value that is cut.
const KEPT: usize = 60;
/// The longest message, whatever it holds.
const MAX_MESSAGE: usize = 4096;

/// `value` if it is short, else its start and how much was cut.
pub fn clip(value: &str) -> String {
    if value.chars().count() <= MAX_ECHO {
        return value.to_owned();
    }
    let kept: String = value.chars().take(KEPT).collect();
    format!("{kept}… ({} bytes in all)", value.len())
}

/// Cuts every long value in a message: `backticked` spans and whitespace-free runs longer
/// than [`MAX_ECHO`], then the message itself beyond [`MAX_MESSAGE`].
pub fn clip_text(message: &str) -> String {
    if message.len() <= MAX_ECHO {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            out.push_str(&clip(part));
        } else {
            let mut first = true;
            for token in part.split(' ') {
                if !first {
                    out.push(' ');
                }
                first = false;
                out.push_str(&clip(token));
                if out.len() > MAX_MESSAGE {
                    break;
                }
            }
        }
        if out.len() > MAX_MESSAGE {
            break;
        }
    }
    if out.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str("… (message cut)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad flag")]
    struct BadFlag;

    impl Classify for BadFlag {
        fn kind(&self) -> ErrorKind {
            ErrorKind::User
        }
    }
    classify!(BadFlag);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BadFlag);

    #[test]
    fn a_registered_error_is_found_anywhere_in_the_chain() {
        assert_eq!(kind_of(&anyhow::Error::from(BadFlag)), ErrorKind::User);
        assert_eq!(kind_of(&anyhow::Error::from(BadFlag).context("while doing x")), ErrorKind::User);
        // Outer is not registered: its source is, and decides.
        assert_eq!(kind_of(&anyhow::Error::from(Outer(BadFlag))), ErrorKind::User);
    }

    #[test]
    fn unclassified_is_environment_and_a_bug_is_unexpected() {
        assert_eq!(kind_of(&anyhow::anyhow!("disk full")), ErrorKind::Environment);
        let bug = anyhow::Error::from(Bug { what: "a plan named no wave".into() });
        assert_eq!(kind_of(&bug).exit_code(), 70);
        assert!(bug.to_string().contains("a samestack bug"));
    }

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
        let huge = "spec.template: Invalid value: ".to_string() + &"x y ".repeat(5_000);
        let err = anyhow::Error::new(Server(huge.clone())).context(huge.clone()).context("applying Job/migrate");
        let lines = report_lines(&err);
        assert_eq!(lines.len(), 2, "the repeated cause is left out: {lines:?}");
        assert!(lines.iter().all(|l| l.len() < MAX_REPORTED + 100), "{lines:?}");
        assert!(lines[1].ends_with("more characters cut)"), "{}", lines[1]);
    }

    #[test]
    fn a_signal_exits_with_128_plus_its_number() {
        let err = anyhow::Error::from(Interrupted { signal: 15 }).context("stopping");
        assert_eq!(exit_code(&err), ExitCode::from(143));
        assert_eq!(Interrupted::SIGINT.exit_code(), 130);
    }
}
