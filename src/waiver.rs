//! The production-parity lint's checks and the waivers a profile may declare for them
//! (`lint_waivers`). Plain data, below both `profile` (which reads and checks the waivers) and
//! `render::lint` (which runs the checks and applies them).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One production-parity check. The names are what `lint_waivers` and `--json` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Long-running containers have a readinessProbe and a livenessProbe.
    Probes,
    /// Every container sets requests and limits for cpu and memory.
    Resources,
    /// Containers run as non-root (`runAsNonRoot: true`, pod or container level).
    RunAsNonRoot,
    /// Containers have a read-only root filesystem.
    ReadOnlyRoot,
    /// Containers set `allowPrivilegeEscalation: false`.
    PrivilegeEscalation,
    /// Containers drop ALL capabilities.
    Capabilities,
    /// Containers run under seccomp `RuntimeDefault` or `Localhost` (pod or container level).
    Seccomp,
    /// Images are pinned: a digest, or a tag other than `latest`.
    PinnedImage,
    /// Every Deployment and StatefulSet is selected by a PodDisruptionBudget of its namespace.
    DisruptionBudget,
    /// Every pod template is selected by a NetworkPolicy of its namespace.
    NetworkPolicy,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::Probes,
        Check::Resources,
        Check::RunAsNonRoot,
        Check::ReadOnlyRoot,
        Check::PrivilegeEscalation,
        Check::Capabilities,
        Check::Seccomp,
        Check::PinnedImage,
        Check::DisruptionBudget,
        Check::NetworkPolicy,
    ];

    /// The name used in `lint_waivers`, `--json` and the human report.
    pub fn name(self) -> &'static str {
        match self {
            Check::Probes => "probes",
            Check::Resources => "resources",
            Check::RunAsNonRoot => "run_as_non_root",
            Check::ReadOnlyRoot => "read_only_root",
            Check::PrivilegeEscalation => "privilege_escalation",
            Check::Capabilities => "capabilities",
            Check::Seccomp => "seccomp",
            Check::PinnedImage => "pinned_image",
            Check::DisruptionBudget => "disruption_budget",
            Check::NetworkPolicy => "network_policy",
        }
    }
}

/// A profile's decision that one check does not apply to one object: `lint_waivers` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The check waived: probes, resources, run_as_non_root, read_only_root,
    /// privilege_escalation, capabilities, seccomp, pinned_image, disruption_budget,
    /// network_policy.
    pub check: Check,
    /// The object, as `Kind/name` (e.g. `DaemonSet/node-agent`).
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9]*/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub object: String,
    /// Only this container (default: every container of the object).
    #[serde(default)]
    pub container: Option<String>,
    /// Why the check does not apply (shown in the report).
    #[schemars(length(min = 1))]
    pub reason: String,
}

impl Waiver {
    /// What is wrong with the entry (pure); `None` when it is well-formed. `is_name` says
    /// whether a string is a valid Kubernetes object name.
    pub fn problem(&self, is_name: impl Fn(&str) -> bool) -> Option<String> {
        let ok_object = self.object.split_once('/').is_some_and(|(kind, name)| {
            kind.starts_with(|c: char| c.is_ascii_alphabetic())
                && kind.chars().all(|c| c.is_ascii_alphanumeric())
                && is_name(name)
        });
        if !ok_object {
            return Some(format!("object `{}` is not of the form `Kind/name` (e.g. `Deployment/api`)", self.object));
        }
        if self.reason.trim().is_empty() {
            return Some(format!("the waiver of {} for {} gives no reason", self.check.name(), self.object));
        }
        None
    }
}
