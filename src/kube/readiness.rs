//! Whether an object is ready, judged from its live JSON alone (pure). Services and PVCs need
//! more context (endpoints, the storage class's binding mode): see [`service_ready`] and
//! [`pvc_ready`].

use serde::Serialize;
use serde_json::Value;

use super::object::{i64_at, str_at};

/// The verdict on one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Readiness {
    Ready,
    /// Not yet; the reason says what is awaited.
    Pending(String),
    /// Will not become ready without a change (a failed Job, an exceeded progress deadline).
    Failed(String),
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// The status of condition `type_` ("True"/"False"/"Unknown") and its object, if present.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find(|c| str_at(c, "/type") == Some(type_))
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    condition(obj, type_).and_then(|c| str_at(c, "/status")) == Some("True")
}

/// Stopped nodes started again (a reboot, `docker start`): statuses the API reported before
/// `at` describe the cluster from before the restart. Made by the providers
/// (`Restart::of_stopped` in [`crate::cluster`]); readiness and waits take it into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The moment from which statuses count: just before the start, less a second, because
    /// the API's timestamps are whole seconds.
    pub at: k8s_openapi::jiff::Timestamp,
    /// Kubernetes node names (the node containers' names).
    pub nodes: Vec<String>,
}

/// After nodes were started again: a workload is ready only when each of its pods on those
/// nodes has turned Ready since (Pods that finished or are going away do not count). Until
/// the kubelets report, the API still shows the pods' readiness from before the restart, and
/// the controllers' ready counts follow it.
pub fn pods_ready_since(pods: &[Value], restart: &Restart) -> Readiness {
    for pod in pods {
        let on_restarted_node = str_at(pod, "/spec/nodeName").is_some_and(|n| restart.nodes.iter().any(|r| r == n));
        let finished = matches!(str_at(pod, "/status/phase"), Some("Succeeded" | "Failed"));
        if !on_restarted_node || finished || pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let fresh = condition(pod, "Ready").is_some_and(|c| {
            str_at(c, "/status") == Some("True")
                && str_at(c, "/lastTransitionTime")
                    .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                    .is_some_and(|t| t >= restart.at)
        });
        if !fresh {
            let name = str_at(pod, "/metadata/name").unwrap_or("?");
            return Readiness::Pending(format!("pod {name} has not been ready since its node restarted"));
        }
    }
    Readiness::Ready
}

/// Readiness of an object of `kind` from its live state. Kinds without a notion of readiness
/// (ConfigMaps, RBAC...) are ready once applied.
pub fn is_ready(kind: &str, obj: &Value) -> Readiness {
    match kind {
        "Namespace" => match str_at(obj, "/status/phase") {
            Some("Active") => Readiness::Ready,
            Some("Terminating") => Readiness::Pending("namespace is terminating".into()),
            other => Readiness::Pending(format!("phase {}", other.unwrap_or("unknown"))),
        },
        "CustomResourceDefinition" => {
            if condition_true(obj, "Established") {
                Readiness::Ready
            } else if let Some(c) = condition(obj, "NamesAccepted").filter(|c| str_at(c, "/status") == Some("False")) {
                Readiness::Failed(format!("names not accepted: {}", str_at(c, "/message").unwrap_or("")))
            } else {
                Readiness::Pending("not established yet".into())
            }
        }
        "Job" => job_ready(obj),
        "Deployment" => deployment_ready(obj),
        "StatefulSet" => statefulset_ready(obj),
        "DaemonSet" => daemonset_ready(obj),
        "Pod" => {
            if condition_true(obj, "Ready") || str_at(obj, "/status/phase") == Some("Succeeded") {
                Readiness::Ready
            } else if str_at(obj, "/status/phase") == Some("Failed") {
                Readiness::Failed("pod failed".into())
            } else {
                Readiness::Pending("pod not ready".into())
            }
        }
        _ => Readiness::Ready,
    }
}

fn generation_observed(obj: &Value) -> Option<Readiness> {
    let generation = i64_at(obj, "/metadata/generation").unwrap_or(0);
    let observed = i64_at(obj, "/status/observedGeneration").unwrap_or(0);
    (observed < generation).then(|| Readiness::Pending("waiting for the controller to see the new spec".into()))
}

fn job_ready(obj: &Value) -> Readiness {
    if condition_true(obj, "Complete") {
        return Readiness::Ready;
    }
    if let Some(c) = condition(obj, "Failed").filter(|c| str_at(c, "/status") == Some("True")) {
        let reason = str_at(c, "/reason").unwrap_or("Failed");
        let message = str_at(c, "/message").unwrap_or("");
        return Readiness::Failed(format!(
            "job failed: {reason}{}",
            if message.is_empty() { String::new() } else { format!(": {message}") }
        ));
    }
    let active = i64_at(obj, "/status/active").unwrap_or(0);
    let succeeded = i64_at(obj, "/status/succeeded").unwrap_or(0);
    let failed = i64_at(obj, "/status/failed").unwrap_or(0);
    let completions = i64_at(obj, "/spec/completions").unwrap_or(1);
    Readiness::Pending(format!("{succeeded}/{completions} completed, {active} running, {failed} failed attempts"))
}

fn deployment_ready(obj: &Value) -> Readiness {
    if let Some(pending) = generation_observed(obj) {
        return pending;
    }
    if let Some(c) = condition(obj, "Progressing")
        && str_at(c, "/reason") == Some("ProgressDeadlineExceeded")
    {
        return Readiness::Failed(format!(
            "rollout exceeded its progress deadline: {}",
            str_at(c, "/message").unwrap_or("")
        ));
    }
    let desired = i64_at(obj, "/spec/replicas").unwrap_or(1);
    let updated = i64_at(obj, "/status/updatedReplicas").unwrap_or(0);
    let replicas = i64_at(obj, "/status/replicas").unwrap_or(0);
    let available = i64_at(obj, "/status/availableReplicas").unwrap_or(0);
    if updated < desired {
        Readiness::Pending(format!("{updated} of {desired} replicas updated"))
    } else if replicas > updated {
        Readiness::Pending(format!("{} old replicas pending termination", replicas - updated))
    } else if available < updated {
        Readiness::Pending(format!("{available} of {updated} updated replicas available"))
    } else {
        Readiness::Ready
    }
}

fn statefulset_ready(obj: &Value) -> Readiness {
    if let Some(pending) = generation_observed(obj) {
        return pending;
    }
    if str_at(obj, "/spec/updateStrategy/type") == Some("OnDelete") {
        return Readiness::Ready;
    }
    let desired = i64_at(obj, "/spec/replicas").unwrap_or(1);
    let ready = i64_at(obj, "/status/readyReplicas").unwrap_or(0);
    if ready < desired {
        return Readiness::Pending(format!("{ready} of {desired} replicas ready"));
    }
    let partition = i64_at(obj, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    if partition > 0 {
        let updated = i64_at(obj, "/status/updatedReplicas").unwrap_or(0);
        return if updated < desired - partition {
            Readiness::Pending(format!("{updated} of {} partitioned replicas updated", desired - partition))
        } else {
            Readiness::Ready
        };
    }
    match (str_at(obj, "/status/currentRevision"), str_at(obj, "/status/updateRevision")) {
        (Some(current), Some(update)) if current != update => {
            Readiness::Pending(format!("rolling update to revision {update}"))
        }
        _ => Readiness::Ready,
    }
}

fn daemonset_ready(obj: &Value) -> Readiness {
    if let Some(pending) = generation_observed(obj) {
        return pending;
    }
    if str_at(obj, "/spec/updateStrategy/type") == Some("OnDelete") {
        return Readiness::Ready;
    }
    let desired = i64_at(obj, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = i64_at(obj, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = i64_at(obj, "/status/numberAvailable").unwrap_or(0);
    if updated < desired {
        Readiness::Pending(format!("{updated} of {desired} pods updated"))
    } else if available < desired {
        Readiness::Pending(format!("{available} of {desired} pods available"))
    } else {
        Readiness::Ready
    }
}

/// A Service fronting workloads (it has a selector) is ready when at least one of its
/// EndpointSlices has a ready endpoint. Services without a selector (external, headless by
/// hand) are ready once applied.
pub fn service_ready(service: &Value, endpoint_slices: &[Value]) -> Readiness {
    let has_selector = service.pointer("/spec/selector").and_then(Value::as_object).is_some_and(|s| !s.is_empty());
    if !has_selector || str_at(service, "/spec/type") == Some("ExternalName") {
        return Readiness::Ready;
    }
    let ready = endpoint_slices
        .iter()
        .flat_map(|s| s.pointer("/endpoints").and_then(Value::as_array).into_iter().flatten())
        .any(|e| e.pointer("/conditions/ready").and_then(Value::as_bool).unwrap_or(true));
    if ready { Readiness::Ready } else { Readiness::Pending("no ready endpoints".into()) }
}

/// A PVC is waited on only when its StorageClass binds immediately; with
/// WaitForFirstConsumer it binds when its pod is scheduled, in a later wave.
pub fn pvc_ready(pvc: &Value, binds_immediately: bool) -> Readiness {
    if !binds_immediately || str_at(pvc, "/status/phase") == Some("Bound") {
        Readiness::Ready
    } else {
        Readiness::Pending(format!("volume claim {}", str_at(pvc, "/status/phase").unwrap_or("not bound")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn after_a_restart_only_pods_ready_since_count_on_the_restarted_nodes() {
        let restart = Restart { at: "2026-11-22T08:00:00Z".parse().unwrap(), nodes: vec!["n1".into()] };
        let pod = |name: &str, node: &str, phase: &str, ready_at: &str| {
            json!({"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": phase,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]}})
        };
        let fresh = pod("a", "n1", "Running", "2026-11-22T08:00:05Z");
        let stale = pod("b", "n1", "Running", "2026-11-22T07:00:00Z");
        let elsewhere = pod("c", "n2", "Running", "2026-11-22T07:00:00Z");
        let finished = pod("d", "n1", "Succeeded", "2026-11-22T07:00:00Z");
        assert!(pods_ready_since(&[fresh.clone(), elsewhere, finished], &restart).is_ready());
        assert_eq!(
            pending(pods_ready_since(&[fresh.clone(), stale.clone()], &restart)),
            "pod b has not been ready since its node restarted"
        );
        let mut going = stale;
        going["metadata"]["deletionTimestamp"] = json!("2026-11-22T08:00:01Z");
        assert!(pods_ready_since(&[fresh, going], &restart).is_ready());
        let mut not_ready = pod("e", "n1", "Running", "2026-11-22T08:00:05Z");
        not_ready["status"]["conditions"][0]["status"] = json!("False");
        assert!(!pods_ready_since(&[not_ready], &restart).is_ready());
    }

    fn pending(r: Readiness) -> String {
        match r {
            Readiness::Pending(s) => s,
            other => panic!("expected pending, got {other:?}"),
        }
    }

    #[test]
    fn deployment_rollout() {
        let fresh =
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1}});
        assert!(pending(is_ready("Deployment", &fresh)).contains("controller"));
        let updating = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}});
        assert_eq!(pending(is_ready("Deployment", &updating)), "1 of 2 replicas updated");
        let old_left = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}});
        assert!(pending(is_ready("Deployment", &old_left)).contains("1 old replicas"));
        let unavailable = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}});
        assert_eq!(pending(is_ready("Deployment", &unavailable)), "1 of 2 updated replicas available");
        let done = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}});
        assert_eq!(is_ready("Deployment", &done), Readiness::Ready);
        let zero = json!({"metadata": {"generation": 1}, "spec": {"replicas": 0}, "status": {"observedGeneration": 1}});
        assert_eq!(is_ready("Deployment", &zero), Readiness::Ready);
        let stuck = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"api-1\" has timed out progressing."}]}});
        assert!(matches!(is_ready("Deployment", &stuck), Readiness::Failed(m) if m.contains("timed out")));
    }

    #[test]
    fn job_complete_failed_or_running() {
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}});
        assert_eq!(is_ready("Job", &done), Readiness::Ready);
        let failed = json!({"status": {"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            is_ready("Job", &failed),
            Readiness::Failed("job failed: BackoffLimitExceeded: Job has reached the specified backoff limit".into())
        );
        let running = json!({"spec": {"completions": 1}, "status": {"active": 1, "failed": 1}});
        assert_eq!(pending(is_ready("Job", &running)), "0/1 completed, 1 running, 1 failed attempts");
    }

    #[test]
    fn statefulset_and_daemonset() {
        let sts = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "db-1", "updateRevision": "db-2"}});
        assert!(pending(is_ready("StatefulSet", &sts)).contains("db-2"));
        let sts_done = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "db-2", "updateRevision": "db-2"}});
        assert_eq!(is_ready("StatefulSet", &sts_done), Readiness::Ready);
        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(pending(is_ready("DaemonSet", &ds)), "1 of 2 pods available");
    }

    #[test]
    fn namespace_crd_and_config() {
        assert_eq!(is_ready("Namespace", &json!({"status": {"phase": "Active"}})), Readiness::Ready);
        assert!(pending(is_ready("Namespace", &json!({"status": {"phase": "Terminating"}}))).contains("terminating"));
        let crd = json!({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}});
        assert_eq!(is_ready("CustomResourceDefinition", &crd), Readiness::Ready);
        let clash = json!({"status": {"conditions": [{"type": "NamesAccepted", "status": "False", "message": "\"widgets\" is already in use"}]}});
        assert!(matches!(is_ready("CustomResourceDefinition", &clash), Readiness::Failed(_)));
        assert_eq!(is_ready("ConfigMap", &json!({})), Readiness::Ready);
    }

    #[test]
    fn services_need_ready_endpoints_only_with_a_selector() {
        let svc = json!({"spec": {"selector": {"app": "api"}}});
        assert!(!service_ready(&svc, &[]).is_ready());
        let not_ready = json!({"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": false}}]});
        assert!(!service_ready(&svc, std::slice::from_ref(&not_ready)).is_ready());
        let ready = json!({"endpoints": [{"addresses": ["10.0.0.2"], "conditions": {"ready": true}}]});
        assert!(service_ready(&svc, &[not_ready, ready]).is_ready());
        assert!(service_ready(&json!({"spec": {}}), &[]).is_ready());
    }

    #[test]
    fn pvc_waits_only_for_immediate_binding() {
        let pvc = json!({"status": {"phase": "Pending"}});
        assert!(!pvc_ready(&pvc, true).is_ready());
        assert!(pvc_ready(&pvc, false).is_ready());
        assert!(pvc_ready(&json!({"status": {"phase": "Bound"}}), true).is_ready());
    }
}
