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
pub mod wait;
pub mod wave;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Classify, ErrorKind};

pub use apply::{ApplyOptions, ApplyReport, Change, ObjectChange, WaveReport, apply_waves, apply_waves_with};
pub use client::KubeClient;
pub use diagnose::Diagnosis;
pub use object::ObjectKey;
pub use readiness::{Readiness, is_ready};
pub use status::{IngressStatus, ProjectStatus, ServiceStatus, WorkloadStatus, project_status};
pub use wave::{Phase, WAVE_ANNOTATION, Wave, plan_waves};

/// The label every samestack-owned resource carries, with the project name as value.
pub const PROJECT_LABEL: &str = "dev.samestack.project";
/// The standard "managed by" label, set to [`MANAGER`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Field manager for server-side apply, and value of [`MANAGED_BY_LABEL`].
pub const MANAGER: &str = "samestack";

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
    /// The API server rejected a manifest as invalid (HTTP 400/422): a template mistake.
    #[error("{object}: rejected by the API server: {message}")]
    Rejected {
        object: String,
        message: String,
        #[source]
        source: ::kube::Error,
    },
    /// An API call failed for another reason (network, permissions, server error).
    #[error("{action} {object} failed")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: ::kube::Error,
    },
    /// A wave did not become ready within its timeout.
    #[error("wave \"{wave}\" was not ready after {}s:\n{diagnosis}", timeout.as_secs())]
    NotReady { wave: &'static str, timeout: Duration, diagnosis: String },
    /// Something in a wave failed for good (a Job failed, a rollout exceeded its deadline).
    #[error("wave \"{wave}\" failed:\n{diagnosis}")]
    Failed { wave: &'static str, diagnosis: String },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidManifest { .. } | Error::UnknownKind { .. } | Error::Rejected { .. } => ErrorKind::User,
            Error::Kubeconfig { .. }
            | Error::Client { .. }
            | Error::Unreachable { .. }
            | Error::Api { .. }
            | Error::NotReady { .. }
            | Error::Failed { .. } => ErrorKind::Environment,
        }
    }
}
crate::classify!(Error);

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
