//! The dev loop's domain: watch the build contexts ([`watch`]), coalesce events ([`debounce`]),
//! decide per service between a file sync and a rebuild ([`plan`], pure), copy files into the
//! running pods and run `on_change` ([`copy`]; through an ephemeral container for images
//! without `tar` or a shell, [`ephemeral`]), forward every service port to 127.0.0.1
//! ([`forward`]), stream the pods' logs ([`logs`]) and report each reload's latency ([`latency`]);
//! the pods of a service, built-in or from the project's manifests, are found by [`pods`].

pub mod copy;
pub mod debounce;
pub mod ephemeral;
pub mod forward;
pub mod latency;
pub mod logs;
pub mod plan;
pub mod pods;
pub mod replay;
pub mod watch;

use std::path::PathBuf;

use crate::error::{Classify, ErrorKind};

pub use plan::{Action, Changed, Plan, ServiceRules, WatchRules};

/// A failure of the dev loop's own machinery (a reload that fails is reported, not returned).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel's inotify watch limit is reached: more directories than it allows.
    #[error(
        "cannot watch {path}: the inotify watch limit is reached (fs.inotify.max_user_watches = {limit}; samestack needs about {wanted} for this project, other programs hold the rest)\n  fix: sudo sysctl fs.inotify.max_user_watches={suggested}, and persist it in /etc/sysctl.d/99-samestack.conf"
    )]
    WatchLimit { path: PathBuf, limit: u64, wanted: usize, suggested: u64 },
    /// The user's inotify instance limit is reached (each watching program holds one).
    #[error(
        "cannot start a file watcher: too many inotify instances (fs.inotify.max_user_instances = {limit})\n  fix: sudo sysctl fs.inotify.max_user_instances={suggested}, and persist it in /etc/sysctl.d/99-samestack.conf"
    )]
    InstanceLimit { limit: u64, suggested: u64 },
    /// Watching a path failed for another reason.
    #[error("cannot watch {path}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    /// Reading the project tree failed.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A local port for a port-forward could not be bound.
    #[error("no free local port from {from} upward for {service}:{port}")]
    NoLocalPort { service: String, port: u16, from: u16 },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Environment
    }
}
crate::classify!(Error);

/// Reads a `u64` from a /proc file.
pub(crate) fn read_proc_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
