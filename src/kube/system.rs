//! The cluster's own objects, as providers and the pipeline wait for them: nodes Ready
//! (also since a restart), a system Deployment available (CoreDNS), and the KEP-1755
//! `kube-public/local-registry-hosting` ConfigMap written by server-side apply.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, Patch, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node};

use super::{Error, MANAGED_BY_LABEL, MANAGER, Result};

/// Wait until the API server answers and `expected` nodes are Ready.
pub async fn wait_nodes_ready(client: &Client, expected: usize, timeout: Duration) -> Result<()> {
    wait_nodes_ready_since(client, expected, None, timeout).await
}

/// [`wait_nodes_ready`], counting only Ready conditions the kubelets reported after `since`:
/// after nodes were restarted, the API server still shows their last status from before.
pub async fn wait_nodes_ready_since(
    client: &Client,
    expected: usize,
    since: Option<k8s_openapi::jiff::Timestamp>,
    timeout: Duration,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let listed = tokio::time::timeout_at(deadline, api.list(&Default::default())).await;
        let last = match listed.unwrap_or_else(|_| Err(unanswered())) {
            Ok(list) => {
                let ready: Vec<_> = list
                    .items
                    .iter()
                    .filter(|n| {
                        n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                            c.iter().any(|c| {
                                c.type_ == "Ready"
                                    && c.status == "True"
                                    && since.is_none_or(|since| {
                                        c.last_heartbeat_time.as_ref().is_some_and(|t| t.0 >= since)
                                    })
                            })
                        })
                    })
                    .collect();
                if ready.len() >= expected {
                    return Ok(());
                }
                format!("{} of {} nodes Ready ({} registered)", ready.len(), expected, list.items.len())
            }
            Err(e) => format!("API server: {e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout { what: "nodes to become Ready".into(), after: timeout, last });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Wait until a Deployment has all its replicas available (e.g. `kube-system/coredns`, so
/// workloads resolve Service names as soon as `up` reports the cluster). Absent counts as done.
pub async fn wait_deployment_available(client: &Client, namespace: &str, name: &str, timeout: Duration) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = tokio::time::timeout_at(deadline, api.get_opt(name)).await;
        let last = match got.unwrap_or_else(|_| Err(unanswered())) {
            Ok(None) => return Ok(()),
            Ok(Some(d)) => {
                let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let available = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
                if available >= wanted {
                    return Ok(());
                }
                format!("{available} of {wanted} replicas available")
            }
            Err(e) => format!("API server: {e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout { what: format!("Deployment {namespace}/{name}"), after: timeout, last });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a wait reports as its last observation when a call to the API server was still pending
/// at the deadline (a paused node accepts connections and never answers).
fn unanswered() -> ::kube::Error {
    ::kube::Error::Service("no answer before the deadline (is the node paused?)".into())
}

/// Writes the KEP-1755 ConfigMap `kube-public/local-registry-hosting` with `document` (its
/// `localRegistryHosting.v1` value), by server-side apply.
pub async fn write_local_registry_hosting(client: &Client, document: &str) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let cm = ConfigMap {
        metadata: ::kube::api::ObjectMeta {
            name: Some("local-registry-hosting".into()),
            namespace: Some("kube-public".into()),
            labels: Some(BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGER.to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("localRegistryHosting.v1".to_string(), document.to_string())])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&cm).expect("a ConfigMap serializes");
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    api.patch("local-registry-hosting", &PatchParams::apply(MANAGER).force(), &Patch::Apply(value)).await.map_err(
        |source| Error::Api {
            action: "server-side apply of",
            object: "ConfigMap kube-public/local-registry-hosting".into(),
            source,
        },
    )?;
    Ok(())
}
