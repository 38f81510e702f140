//! Kubernetes in-process (kube-rs, no kubectl): a client from a kubeconfig, server-side apply in
//! waves, pruning of what the templates no longer produce, readiness per wave, a diagnosis when
//! something does not become ready, and the status queries behind `samestack status`.
//!
//! Pure planning lives in [`wave`], [`prune`], [`readiness`] and [`diagnose`]; the I/O shells are
//! [`client`], [`apply`], [`wait`] and [`status`].

pub mod apply;
pub mod client;
pub mod diagnose;
pub mod object;
pub mod prune;
pub mod readiness;
pub mod status;
pub mod system;
pub mod wait;
pub mod wave;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Classify, ErrorKind};

pub use apply::{ApplyOptions, ApplyReport, Change, ObjectChange, WaveReport, apply_waves, apply_waves_with};
pub use client::{Access, KubeClient, connect};
pub use diagnose::Diagnosis;
pub use object::ObjectKey;
pub use readiness::{Readiness, Restart, is_ready};
pub use status::{IngressStatus, ProjectStatus, ServiceStatus, WorkloadStatus, project_status};
pub use wave::{Phase, WAVE_ANNOTATION, Wave, plan_waves};

/// The standard "managed by" label, set to [`MANAGER`].
pub use crate::labels::MANAGED_BY as MANAGED_BY_LABEL;
/// Field manager for server-side apply, and value of [`MANAGED_BY_LABEL`].
pub use crate::labels::MANAGER;
/// The label every samestack-owned resource carries, with the project name as value.
pub use crate::labels::PROJECT as PROJECT_LABEL;

/// The label selector matching every resource samestack owns for `project`.
pub fn ownership_selector(project: &str) -> String {
    format!("{PROJECT_LABEL}={project},{MANAGED_BY_LABEL}={MANAGER}")
}

/// A failure talking to, or converging, a Kubernetes cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig file could not be read or parsed, or lacks the requested context.
    #[error("cannot use kubeconfig {path}{}", context.as_deref().map(|c| format!(" (context {c})")).unwrap_or_default())]
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
        #[source]
        source: ::kube::config::KubeconfigError,
    },
    /// A client could not be built from an otherwise readable kubeconfig (TLS material, proxy).
    #[error("cannot build a Kubernetes client from {path}")]
    Client {
        path: PathBuf,
        #[source]
        source: ::kube::Error,
    },
    /// The API server did not answer (discovery, version) — the cluster is down or unreachable.
    #[error("the Kubernetes API server at {server} is not reachable; is the cluster running? (`samestack status`)")]
    Unreachable {
        server: String,
        #[source]
        source: ::kube::Error,
    },
    /// A manifest lacks a required field (apiVersion, kind, metadata.name).
    #[error("manifest #{index} is invalid: {reason}")]
    InvalidManifest { index: usize, reason: String },
    /// The cluster serves no such apiVersion/kind, and no CRD in the set defines it.
    #[error(
        "{kind} {name}: the cluster does not serve {api_version}/{kind}; check apiVersion and kind, or add the CRD that defines it"
    )]
    UnknownKind { api_version: String, kind: String, name: String },
    /// The API server rejected a manifest (HTTP 400/404/422). Bad input was refused before
    /// rendering finished, so what reaches the server is what samestack made of valid input:
    /// not the user's mistake (an immutable field changed, a template samestack ships).
    /// `message` is the server's, cut to [`MAX_SERVER_MESSAGE`]; the server's full answer is not
    /// kept as a source, so the message is printed once.
    #[error(
        "{object}: rejected by the API server (HTTP {code}): {message}\n  fix: if a field the server calls immutable changed, delete {object} and run the command again; otherwise this is a samestack bug, please report it with the message"
    )]
    Rejected { object: String, code: u16, message: String },
    /// An API call failed for another reason (network, permissions, server error).
    /// `source` is [`capped`].
    #[error("{action} {object} failed")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: ::kube::Error,
    },
    /// The API server stopped answering (a paused or dead node): a call was still pending when
    /// the step's time was up.
    #[error(
        "the Kubernetes API server at {server} did not answer within {}s while {what}\n  fix: is the cluster paused or stopped? `samestack status` shows it, `docker ps` shows a paused node (`docker unpause` it); then run the command again",
        after.as_secs()
    )]
    Unanswered { server: String, what: String, after: Duration },
    /// A wave did not become ready within its timeout.
    #[error("wave \"{wave}\" was not ready after {}s:\n{diagnosis}", timeout.as_secs())]
    NotReady { wave: &'static str, timeout: Duration, diagnosis: String },
    /// Something in a wave failed for good (a Job failed, a rollout exceeded its deadline).
    #[error("wave \"{wave}\" failed:\n{diagnosis}")]
    Failed { wave: &'static str, diagnosis: String },
    /// A kubeconfig given as YAML (a cluster samestack owns) is not usable.
    #[error("kubeconfig of context {context} is not usable")]
    KubeconfigYaml {
        context: String,
        #[source]
        source: ::kube::config::KubeconfigError,
    },
    /// The cluster did not reach a state in time (nodes Ready, a system Deployment available).
    #[error("timed out after {after:?} waiting for {what} (last seen: {last})")]
    Timeout { what: String, after: Duration, last: String },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidManifest { .. } | Error::UnknownKind { .. } => ErrorKind::User,
            Error::Rejected { .. }
            | Error::Kubeconfig { .. }
            | Error::Client { .. }
            | Error::Unreachable { .. }
            | Error::Unanswered { .. }
            | Error::Api { .. }
            | Error::NotReady { .. }
            | Error::Failed { .. }
            | Error::KubeconfigYaml { .. }
            | Error::Timeout { .. } => ErrorKind::Environment,
        }
    }
}
crate::classify!(Error);

/// How much of a message from the API server an error keeps. A rejected Job comes back with
/// its whole pod template in the message (21 KB seen), once per cause.
pub const MAX_SERVER_MESSAGE: usize = 1000;

/// A kube-rs error with the API server's message (and the messages of its causes) cut to
/// [`MAX_SERVER_MESSAGE`]: its display repeats the whole status twice.
pub fn capped(err: ::kube::Error) -> ::kube::Error {
    match err {
        ::kube::Error::Api(mut status) => {
            status.message = crate::error::cap_message(&status.message, MAX_SERVER_MESSAGE);
            if let Some(details) = status.details.as_mut() {
                details.causes.truncate(3);
                for cause in &mut details.causes {
                    cause.message = crate::error::cap_message(&cause.message, MAX_SERVER_MESSAGE / 4);
                }
            }
            ::kube::Error::Api(status)
        }
        other => other,
    }
}

/// Extra time a wave gets after its timeout to gather the diagnosis of what is not ready; past
/// it, the API server counts as not answering.
pub const DIAGNOSIS_GRACE: Duration = Duration::from_secs(15);

/// Runs `work` against the API server, giving up after `after`: a deadline checked only between
/// calls never fires while a call hangs on a server that accepts connections and never answers.
pub async fn within<T>(
    client: &KubeClient,
    what: impl FnOnce() -> String,
    after: Duration,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::Unanswered { server: client.server().to_string(), what: what(), after }),
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected_job(message: &str) -> ::kube::Error {
        let status: ::kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 422, "reason": "Invalid", "message": message,
            "details": {"name": "migrate", "kind": "Job", "causes": [{"reason": "FieldValueInvalid", "message": message, "field": "spec.template"}]},
        }))
        .unwrap();
        ::kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_rejected_object_is_not_the_users_mistake_and_its_message_is_cut() {
        let huge = format!(
            "Job.batch \"migrate\" is invalid: spec.template: Invalid value: {}: field is immutable",
            "x".repeat(21_000)
        );
        let err = Error::Rejected {
            object: "Job/migrate".into(),
            code: 422,
            message: crate::error::cap_message(&huge, MAX_SERVER_MESSAGE),
        };
        assert_eq!(err.kind(), ErrorKind::Environment);
        let text = err.to_string();
        assert!(text.len() < MAX_SERVER_MESSAGE + 400, "{} bytes", text.len());
        assert!(text.contains("HTTP 422") && text.contains("fix:"), "{text}");
        assert!(std::error::Error::source(&err).is_none(), "the server's answer is not printed a second time");
    }

    #[test]
    fn capped_cuts_the_status_and_its_causes() {
        let err = capped(rejected_job(&"y".repeat(30_000)));
        let text = format!("{err}");
        assert!(text.len() < 4 * MAX_SERVER_MESSAGE, "{} bytes", text.len());
        let ::kube::Error::Api(status) = err else { panic!("still an API error") };
        assert_eq!(status.code, 422);
    }
}
