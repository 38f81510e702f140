//! Which wave each manifest is applied in. Waves run in order, each waited on before the next:
//! namespaces and CRDs, then config and secrets, then jobs such as migrations, then workloads;
//! kinds samestack does not know (custom resources) come last, once their CRDs are established.
//! A manifest may name its wave with the annotation `dev.samestack/wave` (a [`Phase`] name):
//! the templates put the database in `data`, so it is ready before the migrations Job runs.

use serde::Serialize;
use serde_json::Value;

use super::object::{group_of, str_at};

/// A wave's place in the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Namespaces and CustomResourceDefinitions: everything else lives in or depends on them.
    Foundation,
    /// ConfigMaps, Secrets, ServiceAccounts, RBAC, NetworkPolicies, quotas, storage.
    Config,
    /// Stateful services the jobs need, such as the database (only by annotation).
    Data,
    /// Jobs, such as database migrations, that must finish before the workloads start.
    Jobs,
    /// Deployments, StatefulSets, DaemonSets, Services, Ingress, PDB, HPA, CronJobs.
    Workloads,
    /// Kinds samestack does not know, usually custom resources.
    Other,
}

impl Phase {
    /// A short name for progress lines and errors.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Foundation => "namespaces and CRDs",
            Phase::Config => "config and secrets",
            Phase::Data => "data services",
            Phase::Jobs => "jobs",
            Phase::Workloads => "workloads",
            Phase::Other => "other resources",
        }
    }
}

/// The manifests applied together, then waited on.
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    pub phase: Phase,
    pub objects: Vec<Value>,
}

/// The annotation that overrides the kind-based phase.
pub const WAVE_ANNOTATION: &str = "dev.samestack/wave";

impl std::str::FromStr for Phase {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "foundation" => Phase::Foundation,
            "config" => Phase::Config,
            "data" => Phase::Data,
            "jobs" => Phase::Jobs,
            "workloads" => Phase::Workloads,
            "other" => Phase::Other,
            _ => return Err(()),
        })
    }
}

/// The phase of a manifest: its `dev.samestack/wave` annotation when that names a phase, else
/// by kind.
pub fn phase_of_manifest(manifest: &Value) -> Phase {
    let annotated = manifest
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(WAVE_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok());
    annotated.unwrap_or_else(|| {
        phase_of(group_of(str_at(manifest, "/apiVersion").unwrap_or("")), str_at(manifest, "/kind").unwrap_or(""))
    })
}

/// The phase of a kind in a group (the group matters: a custom resource may be called "Job").
pub fn phase_of(group: &str, kind: &str) -> Phase {
    match (group, kind) {
        ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition") => Phase::Foundation,
        ("", "ConfigMap" | "Secret" | "ServiceAccount" | "LimitRange" | "ResourceQuota")
        | ("", "PersistentVolumeClaim" | "PersistentVolume")
        | ("rbac.authorization.k8s.io", "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding")
        | ("networking.k8s.io", "NetworkPolicy" | "IngressClass")
        | ("storage.k8s.io", "StorageClass")
        | ("scheduling.k8s.io", "PriorityClass") => Phase::Config,
        ("batch", "Job") => Phase::Jobs,
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("", "Service" | "Pod" | "ReplicationController")
        | ("networking.k8s.io", "Ingress")
        | ("policy", "PodDisruptionBudget")
        | ("autoscaling", "HorizontalPodAutoscaler")
        | ("batch", "CronJob") => Phase::Workloads,
        _ => Phase::Other,
    }
}

/// Splits a manifest set into waves, in phase order, keeping the input order within a wave
/// (except that Namespaces precede CRDs). Empty waves are left out. Manifests without
/// apiVersion/kind land in [`Phase::Other`]; validation reports them before anything is applied.
pub fn plan_waves(manifests: &[Value]) -> Vec<Wave> {
    let mut tagged: Vec<(Phase, bool, usize, &Value)> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| (phase_of_manifest(m), str_at(m, "/kind") != Some("Namespace"), i, m))
        .collect();
    tagged.sort_by_key(|(phase, not_ns, i, _)| (*phase, *not_ns, *i));
    let mut waves: Vec<Wave> = Vec::new();
    for (phase, _, _, manifest) in tagged {
        match waves.last_mut() {
            Some(wave) if wave.phase == phase => wave.objects.push(manifest.clone()),
            _ => waves.push(Wave { phase, objects: vec![manifest.clone()] }),
        }
    }
    waves
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
    }

    #[test]
    fn an_annotated_database_is_ready_before_the_migrations_job() {
        let mut db = m("apps/v1", "StatefulSet", "database");
        db["metadata"]["annotations"] = json!({ WAVE_ANNOTATION: "data" });
        let mut odd = m("v1", "ConfigMap", "odd");
        odd["metadata"]["annotations"] = json!({ WAVE_ANNOTATION: "no-such-phase" });
        let set = vec![m("batch/v1", "Job", "migrations"), db, m("apps/v1", "Deployment", "api"), odd];
        let waves = plan_waves(&set);
        let phases: Vec<Phase> = waves.iter().map(|w| w.phase).collect();
        assert_eq!(phases, [Phase::Config, Phase::Data, Phase::Jobs, Phase::Workloads]);
        assert_eq!(names(&waves[1]), ["database"]);
        assert_eq!(names(&waves[0]), ["odd"], "an unknown wave name falls back to the kind's phase");
    }

    fn names(wave: &Wave) -> Vec<&str> {
        wave.objects.iter().map(|o| str_at(o, "/metadata/name").unwrap()).collect()
    }

    #[test]
    fn orders_waves_namespaces_config_jobs_workloads_other() {
        let set = vec![
            m("apps/v1", "Deployment", "api"),
            m("v1", "Service", "api"),
            m("example.com/v1", "Widget", "w"),
            m("batch/v1", "Job", "migrate"),
            m("v1", "Secret", "db"),
            m("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"),
            m("v1", "Namespace", "shop"),
            m("v1", "ConfigMap", "cfg"),
            m("networking.k8s.io/v1", "NetworkPolicy", "deny"),
            m("v1", "PersistentVolumeClaim", "data"),
            m("batch/v1", "CronJob", "backup"),
            m("policy/v1", "PodDisruptionBudget", "api"),
            m("autoscaling/v2", "HorizontalPodAutoscaler", "api"),
            m("rbac.authorization.k8s.io/v1", "RoleBinding", "rb"),
        ];
        let waves = plan_waves(&set);
        let phases: Vec<Phase> = waves.iter().map(|w| w.phase).collect();
        assert_eq!(phases, [Phase::Foundation, Phase::Config, Phase::Jobs, Phase::Workloads, Phase::Other]);
        assert_eq!(names(&waves[0]), ["shop", "widgets.example.com"], "namespaces before CRDs");
        assert_eq!(names(&waves[1]), ["db", "cfg", "deny", "data", "rb"], "input order kept");
        assert_eq!(names(&waves[2]), ["migrate"]);
        assert_eq!(names(&waves[3]), ["api", "api", "backup", "api", "api"]);
        assert_eq!(names(&waves[4]), ["w"]);
        assert_eq!(waves.iter().map(|w| w.objects.len()).sum::<usize>(), set.len(), "nothing lost");
    }

    #[test]
    fn leaves_out_empty_waves() {
        let waves = plan_waves(&[m("apps/v1", "Deployment", "api"), m("v1", "ConfigMap", "c")]);
        assert_eq!(waves.iter().map(|w| w.phase).collect::<Vec<_>>(), [Phase::Config, Phase::Workloads]);
        assert!(plan_waves(&[]).is_empty());
    }

    #[test]
    fn a_custom_kind_named_like_a_builtin_is_other() {
        assert_eq!(phase_of("example.com", "Job"), Phase::Other);
        assert_eq!(phase_of("batch", "Job"), Phase::Jobs);
        assert_eq!(phase_of("", "Deployment"), Phase::Other, "core group has no Deployment");
    }

    #[test]
    fn manifests_without_kind_go_last() {
        let waves = plan_waves(&[json!({"metadata": {"name": "x"}}), m("v1", "Namespace", "n")]);
        assert_eq!(waves.last().unwrap().phase, Phase::Other);
    }
}
