//! Which wave each manifest is applied in. Waves run in order, each waited on before the next:
//! namespaces and CRDs, then config and secrets, then jobs such as migrations, then workloads;
//! kinds samestack does not know (custom resources) come last, once their CRDs are established.
//!
//! A manifest can name its wave with the annotation `dev.samestack/wave` (see [`WAVE_ANNOTATION`]);
//! the built-in templates put the database's StatefulSet and Service in wave `database`, which
//! runs between config and the migrations Job, because the migrations need a running database.

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
    /// Stateful services other steps need, such as the database the migrations run against
    /// (only by annotation).
    Database,
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
            Phase::Database => "database",
            Phase::Jobs => "jobs",
            Phase::Workloads => "workloads",
            Phase::Other => "other resources",
        }
    }
}

/// The annotation that puts a manifest in a named wave, overriding its kind's default.
pub const WAVE_ANNOTATION: &str = "dev.samestack/wave";

/// The wave named by a manifest's [`WAVE_ANNOTATION`]: `Ok(None)` without one, `Err` with the
/// unknown name otherwise.
pub fn annotated_phase(manifest: &Value) -> Result<Option<Phase>, String> {
    let Some(name) = manifest.pointer("/metadata/annotations").and_then(|a| a.get(WAVE_ANNOTATION)) else {
        return Ok(None);
    };
    match name.as_str().unwrap_or_default() {
        "foundation" | "namespaces" => Ok(Some(Phase::Foundation)),
        "config" => Ok(Some(Phase::Config)),
        "database" => Ok(Some(Phase::Database)),
        "jobs" | "migrations" => Ok(Some(Phase::Jobs)),
        "workloads" => Ok(Some(Phase::Workloads)),
        "other" => Ok(Some(Phase::Other)),
        other => Err(format!(
            "annotation {WAVE_ANNOTATION}: unknown wave {other:?}; use one of namespaces, config, database, migrations, workloads, other"
        )),
    }
}

/// The annotation that puts a manifest in the second stage: waves of their own after every
/// wave of the first (the project's own manifest sources, after the built-in templates').
pub const STAGE_ANNOTATION: &str = "dev.samestack/stage";

/// Whether a manifest belongs to the second stage (see [`STAGE_ANNOTATION`]).
pub fn in_second_stage(manifest: &Value) -> bool {
    manifest.pointer("/metadata/annotations").and_then(|a| a.get(STAGE_ANNOTATION)).and_then(Value::as_str)
        == Some("sources")
}

/// The manifests applied together, then waited on.
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    pub phase: Phase,
    /// A wave of the second stage (see [`STAGE_ANNOTATION`]).
    pub second_stage: bool,
    pub objects: Vec<Value>,
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
/// (except that Namespaces precede CRDs); the second stage's manifests (see
/// [`STAGE_ANNOTATION`]) follow in waves of their own, in the same order. Empty waves are left out. Manifests without
/// apiVersion/kind land in [`Phase::Other`]; validation reports them before anything is applied.
pub fn plan_waves(manifests: &[Value]) -> Vec<Wave> {
    let mut tagged: Vec<(bool, Phase, bool, usize, &Value)> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let group = group_of(str_at(m, "/apiVersion").unwrap_or(""));
            let kind = str_at(m, "/kind").unwrap_or("");
            let phase = annotated_phase(m).ok().flatten().unwrap_or_else(|| phase_of(group, kind));
            (in_second_stage(m), phase, kind != "Namespace", i, m)
        })
        .collect();
    tagged.sort_by_key(|(second, phase, not_ns, i, _)| (*second, *phase, *not_ns, *i));
    let mut waves: Vec<Wave> = Vec::new();
    for (second_stage, phase, _, _, manifest) in tagged {
        match waves.last_mut() {
            Some(wave) if wave.phase == phase && wave.second_stage == second_stage => {
                wave.objects.push(manifest.clone())
            }
            _ => waves.push(Wave { phase, second_stage, objects: vec![manifest.clone()] }),
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
    fn the_wave_annotation_puts_the_database_before_the_migrations() {
        let mut db = m("apps/v1", "StatefulSet", "database");
        db["metadata"]["annotations"] = json!({WAVE_ANNOTATION: "database"});
        let mut migrate = m("batch/v1", "Job", "migrations-1a2b");
        migrate["metadata"]["annotations"] = json!({WAVE_ANNOTATION: "migrations"});
        let set = vec![m("apps/v1", "Deployment", "api"), migrate, db, m("v1", "Secret", "db")];
        let waves = plan_waves(&set);
        let phases: Vec<Phase> = waves.iter().map(|w| w.phase).collect();
        assert_eq!(phases, [Phase::Config, Phase::Database, Phase::Jobs, Phase::Workloads]);
        assert_eq!(names(&waves[1]), ["database"]);
        assert_eq!(names(&waves[2]), ["migrations-1a2b"]);
    }

    #[test]
    fn the_second_stage_follows_every_wave_of_the_first() {
        let late = |kind: &str, api: &str, name: &str| {
            let mut o = m(api, kind, name);
            o["metadata"]["annotations"] = json!({STAGE_ANNOTATION: "sources"});
            o
        };
        let set = vec![
            late("Deployment", "apps/v1", "chart-api"),
            late("ConfigMap", "v1", "chart-cfg"),
            m("apps/v1", "Deployment", "api"),
            m("v1", "Secret", "db"),
        ];
        let waves = plan_waves(&set);
        let got: Vec<(bool, Phase)> = waves.iter().map(|w| (w.second_stage, w.phase)).collect();
        assert_eq!(
            got,
            [(false, Phase::Config), (false, Phase::Workloads), (true, Phase::Config), (true, Phase::Workloads)]
        );
        assert_eq!(names(&waves[3]), ["chart-api"]);
    }

    #[test]
    fn an_unknown_wave_name_is_an_error() {
        let mut x = m("v1", "ConfigMap", "c");
        x["metadata"]["annotations"] = json!({WAVE_ANNOTATION: "early"});
        assert!(annotated_phase(&x).unwrap_err().contains("unknown wave \"early\""));
        assert_eq!(annotated_phase(&m("v1", "ConfigMap", "c")), Ok(None));
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
