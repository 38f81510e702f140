//! Port-forwards from the host to a Service, in-process (no kubectl): a listener on
//! `127.0.0.1:<free port>`, and for every connection a port-forward to one ready pod behind the
//! Service, on the container port the Service targets. Picking the pod per connection keeps the
//! forward working across a rollout. The forward ends when its [`Forward`] is dropped.

use ::kube::api::{Api, ListParams};
use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::Value;

use super::client::KubeClient;
use super::object::str_at;
use super::readiness::{Readiness, is_ready};
use super::{Error, Result};

/// A running port-forward; stops accepting (and drops its connections) when dropped.
#[derive(Debug)]
pub struct Forward {
    pub service: String,
    pub local_port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Forward {
    /// `http://127.0.0.1:<local port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.local_port)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a forward to a Service needs from it: the pod selector and the first port's target
/// (a number, or the name of a container port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub selector: String,
    pub port: TargetPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// Pure: the forward target of a Service's live JSON; `None` for a Service without a selector
/// or ports (nothing to forward to).
pub fn target_of(service: &Value) -> Option<Target> {
    let selector = service.pointer("/spec/selector")?.as_object()?;
    if selector.is_empty() {
        return None;
    }
    let selector = selector.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>();
    let first = service.pointer("/spec/ports/0")?;
    let port = match first.get("targetPort") {
        Some(Value::Number(n)) => TargetPort::Number(u16::try_from(n.as_u64()?).ok()?),
        Some(Value::String(name)) => match name.parse::<u16>() {
            Ok(n) => TargetPort::Number(n),
            Err(_) => TargetPort::Name(name.clone()),
        },
        _ => TargetPort::Number(u16::try_from(first.get("port")?.as_u64()?).ok()?),
    };
    Some(Target { selector: selector.join(","), port })
}

/// Pure: the container port `port` means in `pod` (a named port is looked up in its containers).
pub fn container_port(pod: &Value, port: &TargetPort) -> Option<u16> {
    match port {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => pod
            .pointer("/spec/containers")?
            .as_array()?
            .iter()
            .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
            .find(|p| str_at(p, "/name") == Some(name.as_str()))
            .and_then(|p| p.get("containerPort")?.as_u64())
            .and_then(|n| u16::try_from(n).ok()),
    }
}

/// Starts forwarding connections to `listener` (bound by the caller, e.g. on `127.0.0.1:0`)
/// to Service `namespace/name`; `None` when the Service has nothing to forward to (no
/// selector, no ports).
pub async fn to_service(
    client: &KubeClient,
    namespace: &str,
    name: &str,
    listener: tokio::net::TcpListener,
) -> Result<Option<Forward>> {
    let services: Api<Service> = Api::namespaced(client.raw().clone(), namespace);
    let object = format!("Service {namespace}/{name}");
    let live =
        services.get(name).await.map_err(|source| Error::Api { action: "reading", object: object.clone(), source })?;
    let Some(target) = target_of(&serde_json::to_value(live).unwrap_or_default()) else {
        return Ok(None);
    };
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.raw().clone(), namespace);
    let task = tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            let pods = pods.clone();
            let target = target.clone();
            let object = object.clone();
            tokio::spawn(async move {
                if let Err(why) = forward_one(&pods, &target, connection).await {
                    tracing::warn!("port-forward to {object}: {why}");
                }
            });
        }
    });
    Ok(Some(Forward { service: name.to_string(), local_port, task }))
}

/// Carries one host connection to a ready pod of `target`.
async fn forward_one(pods: &Api<Pod>, target: &Target, mut connection: tokio::net::TcpStream) -> anyhow::Result<()> {
    let list = pods.list(&ListParams::default().labels(&target.selector)).await?;
    let ready = list
        .items
        .into_iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .find(|p| is_ready("Pod", p) == Readiness::Ready)
        .ok_or_else(|| anyhow::anyhow!("no ready pod matches {}", target.selector))?;
    let pod = str_at(&ready, "/metadata/name").unwrap_or_default().to_string();
    let port = container_port(&ready, &target.port)
        .ok_or_else(|| anyhow::anyhow!("pod {pod} has no container port {:?}", target.port))?;
    let mut forwarder = pods.portforward(&pod, &[port]).await?;
    let mut upstream = forwarder.take_stream(port).ok_or_else(|| anyhow::anyhow!("no stream for port {port}"))?;
    // The connection ends when either side closes; errors of a closed socket are the usual end.
    let _ = tokio::io::copy_bidirectional(&mut connection, &mut upstream).await;
    drop(upstream);
    forwarder.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_service_targets_its_first_port_by_number_or_name() {
        let svc = json!({"spec": {"selector": {"app": "api", "tier": "web"}, "ports": [{"port": 80, "targetPort": 8080}, {"port": 81}]}});
        assert_eq!(
            target_of(&svc),
            Some(Target { selector: "app=api,tier=web".into(), port: TargetPort::Number(8080) })
        );
        let named = json!({"spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": "http"}]}});
        assert_eq!(target_of(&named).unwrap().port, TargetPort::Name("http".into()));
        let default = json!({"spec": {"selector": {"app": "api"}, "ports": [{"port": 9000}]}});
        assert_eq!(target_of(&default).unwrap().port, TargetPort::Number(9000), "targetPort defaults to port");
    }

    #[test]
    fn services_without_selector_or_ports_have_no_target() {
        assert_eq!(target_of(&json!({"spec": {"ports": [{"port": 80}]}})), None);
        assert_eq!(target_of(&json!({"spec": {"selector": {}, "ports": [{"port": 80}]}})), None);
        assert_eq!(target_of(&json!({"spec": {"selector": {"app": "x"}}})), None);
    }

    #[test]
    fn named_ports_resolve_in_the_pods_containers() {
        let pod = json!({"spec": {"containers": [
            {"name": "side", "ports": [{"name": "metrics", "containerPort": 9090}]},
            {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]},
        ]}});
        assert_eq!(container_port(&pod, &TargetPort::Name("http".into())), Some(8080));
        assert_eq!(container_port(&pod, &TargetPort::Name("grpc".into())), None);
        assert_eq!(container_port(&pod, &TargetPort::Number(7)), Some(7));
    }
}
