//! Readiness per wave: judge every object that has a notion of readiness until all are ready,
//! one fails for good, or the wave's timeout passes; then gather the evidence for a diagnosis.
//! Each judgement follows a change the API server reports (watches on what is judged), with a
//! backing-off poll as the fallback, so a rollout is seen done within one round trip.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::kube::Resource;
use ::kube::api::{Api, ListParams, LogParams};
use ::kube::runtime::{WatchStreamExt, watcher};
use futures_util::StreamExt;
use futures_util::future::join_all;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::Value;

use super::client::{KubeClient, ResourceType};
use super::diagnose::{Diagnosis, LOG_LINES, PodLog, diagnose, logs_wanted};
use super::object::{ObjectKey, str_at};
use super::readiness::Restart;
use super::readiness::{Readiness, is_ready, pods_ready_since, pvc_ready, service_ready};
use super::wave::Phase;
use super::{Error, Result};

/// Pods looked at per object in a diagnosis.
const MAX_PODS: usize = 5;
/// Logs fetched per object in a diagnosis.
const MAX_LOGS: usize = 3;

/// Kinds whose readiness is awaited; everything else is ready once applied.
fn awaited(key: &ObjectKey) -> bool {
    matches!(
        (key.group.as_str(), key.kind.as_str()),
        ("", "Namespace" | "Service" | "PersistentVolumeClaim" | "Pod")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("batch", "Job")
            | ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
    )
}

/// Waits until every object of a wave is ready. A failed object (a Job that failed) ends the
/// wait at once with [`Error::Failed`]; the timeout ends it with [`Error::NotReady`]. Both
/// carry a diagnosis of every object that was not ready.
pub async fn wait_wave(
    client: &KubeClient,
    phase: Phase,
    objects: &[(ResourceType, ObjectKey)],
    timeout: Duration,
    restart: Option<&Restart>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&(ResourceType, ObjectKey)> = objects.iter().filter(|(_, k)| awaited(k)).collect();
    let mut immediate_binding: HashMap<String, bool> = HashMap::new();
    let changes = Changes::watch(client, &pending, restart.is_some());
    let mut interval = Duration::from_millis(200);
    loop {
        let mut still = Vec::new();
        let mut verdicts = Vec::new();
        for target in pending {
            let (ty, key) = target;
            let live = get(client, ty, key).await?;
            let verdict = match key.kind.as_str() {
                "Service" => service_ready(&live, &endpoint_slices(client, key).await?),
                "PersistentVolumeClaim" => {
                    let class = storage_class_of(client, &live).await?;
                    let immediate = match immediate_binding.get(&class) {
                        Some(b) => *b,
                        None => {
                            let b = binds_immediately(client, &class).await?;
                            immediate_binding.insert(class, b);
                            b
                        }
                    };
                    pvc_ready(&live, immediate)
                }
                kind @ ("Deployment" | "StatefulSet" | "DaemonSet") => match (is_ready(kind, &live), restart) {
                    (Readiness::Ready, Some(restart)) => pods_ready_since(&pods_of(client, key, &live).await?, restart),
                    (verdict, _) => verdict,
                },
                kind => is_ready(kind, &live),
            };
            if let Readiness::Failed(_) = verdict {
                let diagnosis = diagnosis_of(client, key, &live, &verdict).await;
                return Err(Error::Failed { wave: phase.label(), diagnosis: diagnosis.to_string() });
            }
            if !verdict.is_ready() {
                still.push(target);
                verdicts.push((target, live, verdict));
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut text = Vec::new();
            for ((_, key), live, verdict) in verdicts {
                text.push(diagnosis_of(client, key, &live, &verdict).await.to_string());
            }
            return Err(Error::NotReady { wave: phase.label(), timeout, diagnosis: text.join("\n") });
        }
        tracing::debug!(wave = phase.label(), pending = still.len(), "waiting");
        changes.next(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
        interval = (interval * 2).min(Duration::from_secs(2));
        pending = still;
    }
}

/// Wakes the readiness loop when something it judges changes: one watch per resource type and
/// namespace of the pending objects, plus the EndpointSlices a Service's readiness reads and
/// the Pods a check after a restart reads. The watches end when this is dropped.
struct Changes {
    notify: Arc<tokio::sync::Notify>,
    _watches: tokio::task::JoinSet<()>,
}

impl Changes {
    fn watch(client: &KubeClient, pending: &[&(ResourceType, ObjectKey)], pods: bool) -> Changes {
        let notify = Arc::new(tokio::sync::Notify::new());
        let mut watches = tokio::task::JoinSet::new();
        let mut seen = BTreeSet::new();
        for (ty, key) in pending {
            let namespace = key.namespace.as_deref().filter(|_| ty.namespaced());
            if seen.insert((key.group.clone(), key.kind.clone(), namespace.map(str::to_string))) {
                spawn_watch(&mut watches, client.api(ty, namespace), &notify);
            }
            let Some(ns) = namespace else { continue };
            let raw = client.raw().clone();
            if key.kind == "Service"
                && seen.insert(("discovery.k8s.io".into(), "EndpointSlice".into(), Some(ns.into())))
            {
                spawn_watch(&mut watches, Api::<EndpointSlice>::namespaced(raw.clone(), ns), &notify);
            }
            if pods && seen.insert((String::new(), "Pod".into(), Some(ns.into()))) {
                spawn_watch(&mut watches, Api::<Pod>::namespaced(raw, ns), &notify);
            }
        }
        Changes { notify, _watches: watches }
    }

    /// Returns at the next reported change (one that came since the last call counts), or
    /// after `fallback` (a watch that cannot start or missed an event).
    async fn next(&self, fallback: Duration) {
        tokio::select! {
            () = self.notify.notified() => {}
            () = tokio::time::sleep(fallback) => {}
        }
    }
}

fn spawn_watch<K>(watches: &mut tokio::task::JoinSet<()>, api: Api<K>, notify: &Arc<tokio::sync::Notify>)
where
    K: Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
{
    let notify = notify.clone();
    watches.spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                // `notify_one` keeps one wake-up for a loop that is busy judging.
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::debug!(error = %e, "readiness watch"),
            }
        }
    });
}

/// The pods of a workload, by its selector.
async fn pods_of(client: &KubeClient, key: &ObjectKey, live: &Value) -> Result<Vec<Value>> {
    let Some(selector) = pod_selector(&key.kind, live) else { return Ok(Vec::new()) };
    let api: Api<Pod> = Api::namespaced(client.raw().clone(), key.namespace.as_deref().unwrap_or("default"));
    let pods = api.list(&ListParams::default().labels(&selector)).await.map_err(list_error("pods", key))?;
    Ok(pods.items.iter().filter_map(|p| serde_json::to_value(p).ok()).collect())
}

async fn get(client: &KubeClient, ty: &ResourceType, key: &ObjectKey) -> Result<Value> {
    let api = client.api(ty, key.namespace.as_deref());
    let obj = api.get(&key.name).await.map_err(|source| Error::Api {
        action: "reading",
        object: key.to_string(),
        source: super::capped(source),
    })?;
    Ok(serde_json::to_value(obj).unwrap_or(Value::Null))
}

fn list_error(what: &str, key: &ObjectKey) -> impl FnOnce(::kube::Error) -> Error {
    let object = format!("{what} for {key}");
    move |source| Error::Api { action: "listing", object, source: super::capped(source) }
}

async fn endpoint_slices(client: &KubeClient, key: &ObjectKey) -> Result<Vec<Value>> {
    let api: Api<EndpointSlice> = Api::namespaced(client.raw().clone(), key.namespace.as_deref().unwrap_or("default"));
    let list = api
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={}", key.name)))
        .await
        .map_err(list_error("endpoint slices", key))?;
    Ok(list.items.iter().filter_map(|s| serde_json::to_value(s).ok()).collect())
}

/// The storage class a PVC uses: its own, or the cluster's default ("" when there is none).
async fn storage_class_of(client: &KubeClient, pvc: &Value) -> Result<String> {
    if let Some(class) = str_at(pvc, "/spec/storageClassName") {
        return Ok(class.to_string());
    }
    let api: Api<StorageClass> = Api::all(client.raw().clone());
    let classes = api.list(&ListParams::default()).await.map_err(|source| Error::Api {
        action: "listing",
        object: "storage classes".into(),
        source,
    })?;
    Ok(classes
        .items
        .iter()
        .find(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                .map(String::as_str)
                == Some("true")
        })
        .and_then(|c| c.metadata.name.clone())
        .unwrap_or_default())
}

/// Whether a storage class binds volumes at once (the API default) rather than on first use.
async fn binds_immediately(client: &KubeClient, class: &str) -> Result<bool> {
    if class.is_empty() {
        return Ok(false);
    }
    let api: Api<StorageClass> = Api::all(client.raw().clone());
    let sc = api.get_opt(class).await.map_err(|source| Error::Api {
        action: "reading",
        object: format!("StorageClass {class}"),
        source,
    })?;
    Ok(sc.is_some_and(|sc| sc.volume_binding_mode.as_deref().unwrap_or("Immediate") == "Immediate"))
}

/// The label selector of an object's pods: a workload's `spec.selector.matchLabels`, a
/// Service's `spec.selector`.
pub fn pod_selector(kind: &str, live: &Value) -> Option<String> {
    let map = match kind {
        "Service" => live.pointer("/spec/selector"),
        _ => live.pointer("/spec/selector/matchLabels"),
    }?
    .as_object()?;
    if map.is_empty() {
        return None;
    }
    Some(map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
}

/// Events that concern an object: its own, its pods', and (for a Deployment) its ReplicaSets',
/// which is where "forbidden: violates PodSecurity" and quota refusals are reported.
pub fn relevant_events(kind: &str, name: &str, pod_names: &[String], events: Vec<Value>) -> Vec<Value> {
    let prefix = format!("{name}-");
    events
        .into_iter()
        .filter(|e| {
            let k = str_at(e, "/involvedObject/kind").unwrap_or("");
            let n = str_at(e, "/involvedObject/name").unwrap_or("");
            (k == kind && n == name)
                || (k == "Pod" && pod_names.iter().any(|p| p == n))
                || (kind == "Deployment" && k == "ReplicaSet" && n.starts_with(&prefix))
        })
        .collect()
}

/// Gathers pods, events and logs for an object that is not ready, and formats them. Errors
/// while gathering are not fatal: the diagnosis is best effort.
pub async fn diagnosis_of(client: &KubeClient, key: &ObjectKey, live: &Value, verdict: &Readiness) -> Diagnosis {
    let state = match verdict {
        Readiness::Ready => "ready".to_string(),
        Readiness::Pending(s) | Readiness::Failed(s) => s.clone(),
    };
    let Some(ns) = key.namespace.as_deref() else {
        return diagnose(&key.to_string(), &state, false, &[], &[], &[]);
    };
    let pods_api: Api<Pod> = Api::namespaced(client.raw().clone(), ns);
    // A Service's pods belong to a workload, whose own diagnosis already shows them.
    let selector_used = key.kind != "Service" && pod_selector(&key.kind, live).is_some();
    let mut pods = if selector_used { pods_of(client, key, live).await.unwrap_or_default() } else { Vec::new() };
    // Not-ready pods first: they hold the evidence.
    pods.sort_by_key(|p| super::readiness::is_ready("Pod", p).is_ready());
    pods.truncate(MAX_PODS);
    let pod_names: Vec<String> = pods.iter().filter_map(|p| str_at(p, "/metadata/name").map(String::from)).collect();
    let events_api: Api<Event> = Api::namespaced(client.raw().clone(), ns);
    let events: Vec<Value> = events_api
        .list(&ListParams::default())
        .await
        .map(|l| l.items.iter().filter_map(|e| serde_json::to_value(e).ok()).collect())
        .unwrap_or_default();
    let events = relevant_events(&key.kind, &key.name, &pod_names, events);
    let wanted = logs_wanted(&pods).into_iter().take(MAX_LOGS);
    let logs = join_all(wanted.map(|request| {
        let pods_api = pods_api.clone();
        async move {
            let params = LogParams {
                container: Some(request.container.clone()),
                previous: request.previous,
                tail_lines: Some(LOG_LINES),
                ..Default::default()
            };
            let text =
                pods_api.logs(&request.pod, &params).await.unwrap_or_else(|e| format!("(logs unavailable: {e})"));
            PodLog { request, text }
        }
    }))
    .await;
    diagnose(&key.to_string(), &state, selector_used, &pods, &events, &logs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selectors_from_workloads_and_services() {
        let deploy = json!({"spec": {"selector": {"matchLabels": {"app": "api", "tier": "web"}}}});
        assert_eq!(pod_selector("Deployment", &deploy).as_deref(), Some("app=api,tier=web"));
        let svc = json!({"spec": {"selector": {"app": "api"}}});
        assert_eq!(pod_selector("Service", &svc).as_deref(), Some("app=api"));
        assert_eq!(pod_selector("Service", &json!({"spec": {}})), None);
    }

    #[test]
    fn events_of_the_object_its_pods_and_replicasets() {
        let ev = |kind: &str, name: &str| json!({"involvedObject": {"kind": kind, "name": name}});
        let events = vec![
            ev("Deployment", "api"),
            ev("ReplicaSet", "api-7d9f"),
            ev("ReplicaSet", "apiary-1"),
            ev("Pod", "api-7d9f-x"),
            ev("Pod", "worker-1"),
        ];
        let kept = relevant_events("Deployment", "api", &["api-7d9f-x".into()], events);
        let names: Vec<&str> = kept.iter().map(|e| str_at(e, "/involvedObject/name").unwrap()).collect();
        assert_eq!(names, ["api", "api-7d9f", "api-7d9f-x"]);
    }
}
