//! Pure: what a build's output says — the step under way and its last lines, and the error
//! a failed build becomes (a disk that is full is the machine's problem, not the Dockerfile's).

use std::collections::VecDeque;

use bollard::errors::Error as ApiError;

use super::{Error, OUTPUT_TAIL};
use crate::docker;

pub(super) fn build_failure(service: &str, err: ApiError, log: StepLog) -> Error {
    let service = service.to_string();
    if docker::is_connection_lost(&err) {
        return Error::DaemonLost { service, activity: "building", cause: docker::describe(&err) };
    }
    let message = match &err {
        ApiError::DockerStreamError { error } => error.trim().to_string(),
        other => docker::describe(other),
    };
    if is_disk_full(&message) {
        return Error::DiskFull { service, message };
    }
    match (&err, log.step) {
        (ApiError::DockerStreamError { .. }, Some(step)) => {
            let mut output: Vec<String> = log.output.into_iter().collect();
            if !log.partial.trim().is_empty() {
                output.push(log.partial.trim_end().to_string());
            }
            Error::StepFailed { service, step, message, output }
        }
        _ => Error::Rejected { service, message },
    }
}

pub(super) fn is_disk_full(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("no space left on device") || lower.contains("disk quota exceeded")
}

/// Follows the classic builder's text output: the current `Step N/M : ...` line and the last
/// lines that step printed.
#[derive(Debug, Default)]
pub(super) struct StepLog {
    pub(super) step: Option<String>,
    output: VecDeque<String>,
    partial: String,
}

impl StepLog {
    /// Adds a chunk of output (lines may be split across chunks); returns the complete lines.
    pub(super) fn push(&mut self, chunk: &str) -> Vec<String> {
        self.partial.push_str(chunk);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            let line = line.trim_end().to_string();
            if line.starts_with("Step ") && line.contains(" : ") {
                self.step = Some(line.clone());
                self.output.clear();
            } else if !line.is_empty()
                && !line.starts_with(" ---> ")
                && !line.starts_with("Removing intermediate container")
            {
                if self.output.len() == OUTPUT_TAIL {
                    self.output.pop_front();
                }
                self.output.push_back(line.clone());
            }
            lines.push(line);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use bollard::errors::Error as ApiError;

    use super::*;

    #[test]
    fn step_log_tracks_the_current_step_and_its_output_across_split_chunks() {
        let mut log = StepLog::default();
        log.push("Step 1/3 : FROM base\n ---> abc\nStep 2/3 : RUN echo hi && fa");
        log.push("lse\n ---> Running in 123\nhi\nerr li");
        log.push("ne\n");
        assert_eq!(log.step.as_deref(), Some("Step 2/3 : RUN echo hi && false"));
        assert_eq!(log.output, vec!["hi", "err line"]);
    }

    #[test]
    fn step_failure_message_shows_step_and_output() {
        let mut log = StepLog::default();
        log.push("Step 3/5 : RUN make\nmake: *** no rule\n");
        let err = build_failure(
            "api",
            ApiError::DockerStreamError { error: "The command '/bin/sh -c make' returned a non-zero code: 2".into() },
            log,
        );
        let msg = err.to_string();
        assert!(msg.contains("service `api` failed at `Step 3/5 : RUN make`"), "{msg}");
        assert!(msg.contains("make: *** no rule"), "{msg}");
        assert_eq!(crate::error::Classify::kind(&err), crate::error::ErrorKind::User);
    }

    #[test]
    fn disk_full_is_an_environment_error() {
        let err = build_failure(
            "api",
            ApiError::DockerStreamError { error: "write /x: no space left on device".into() },
            StepLog::default(),
        );
        assert!(matches!(err, Error::DiskFull { .. }));
        assert_eq!(crate::error::Classify::kind(&err), crate::error::ErrorKind::Environment);
    }
}
