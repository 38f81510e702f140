//! The cluster's own objects, as providers and the pipeline wait for them: nodes Ready
//! (also since a restart), a system Deployment available (CoreDNS), and the KEP-1755
//! `kube-public/local-registry-hosting` ConfigMap written by server-side apply.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, Patch, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node};

use super::readiness::Restart;
use super::{Error, MANAGED_BY_LABEL, MANAGER, Result};

/// Wait until the API server answers and `expected` nodes are Ready.
pub async fn wait_nodes_ready(client: &Client, expected: usize, timeout: Duration) -> Result<()> {
    wait_nodes_ready_since(client, expected, None, timeout).await
}

/// [`wait_nodes_ready`], after `restart`: a node it started again counts only with a Ready
/// condition its kubelet reported since (the API server still shows its last status from
/// before); a node that kept running counts as it is (its kubelet reports an unchanged status
/// only every few minutes).
pub async fn wait_nodes_ready_since(
    client: &Client,
    expected: usize,
    restart: Option<&Restart>,
    timeout: Duration,
) -> Result<()> {
    poll_nodes(client, "nodes to become Ready", timeout, |nodes| {
        let ready = count_ready(nodes, restart);
        if ready >= expected {
            return Ok(());
        }
        Err(format!("{ready} of {expected} nodes Ready ({} registered)", nodes.len()))
    })
    .await
}

/// How many nodes are Ready now, by the first answer of the API server within `timeout`
/// (asked again while it does not answer): no waiting for nodes to become Ready.
pub async fn nodes_ready_now(client: &Client, timeout: Duration) -> Result<usize> {
    poll_nodes(client, "the API server to list the nodes", timeout, |nodes| Ok(count_ready(nodes, None))).await
}

/// Lists the nodes every 2 s until `decide` returns `Ok` or `timeout` passes; `decide`'s `Err`
/// (or the API server's) is what a timeout reports as last seen.
async fn poll_nodes<T>(
    client: &Client,
    what: &str,
    timeout: Duration,
    decide: impl Fn(&[Node]) -> std::result::Result<T, String>,
) -> Result<T> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let listed = tokio::time::timeout_at(deadline, api.list(&Default::default())).await;
        let last = match listed.unwrap_or_else(|_| Err(unanswered())) {
            Ok(list) => match decide(&list.items) {
                Ok(done) => return Ok(done),
                Err(last) => last,
            },
            Err(e) => format!("API server: {e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout { what: what.into(), after: timeout, last });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Pure: the nodes whose Ready condition is True (for a node `restart` names, reported since).
fn count_ready(nodes: &[Node], restart: Option<&Restart>) -> usize {
    nodes
        .iter()
        .filter(|n| {
            let restarted = restart.filter(|r| n.metadata.name.as_ref().is_some_and(|name| r.nodes.contains(name)));
            n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                c.iter().any(|c| {
                    c.type_ == "Ready"
                        && c.status == "True"
                        && restarted.is_none_or(|r| c.last_heartbeat_time.as_ref().is_some_and(|t| t.0 >= r.at))
                })
            })
        })
        .count()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: &str, heartbeat: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"conditions": [
                {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat},
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn after_a_restart_only_the_restarted_nodes_need_a_fresh_ready_condition() {
        let before = "2026-12-02T08:00:00Z";
        let after = "2026-12-02T08:05:00Z";
        let restart = Restart { at: "2026-12-02T08:01:00Z".parse().unwrap(), nodes: vec!["agent".into()] };
        assert_eq!(count_ready(&[node("server", "True", before), node("agent", "True", before)], None), 2);
        // The agent's condition is from before its restart; the server kept running.
        assert_eq!(count_ready(&[node("server", "True", before), node("agent", "True", before)], Some(&restart)), 1);
        assert_eq!(count_ready(&[node("server", "True", before), node("agent", "True", after)], Some(&restart)), 2);
        assert_eq!(count_ready(&[node("server", "False", after), node("agent", "Unknown", after)], None), 0);
    }
}
