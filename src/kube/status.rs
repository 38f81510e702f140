//! What `samestack status` shows about a project's resources: each workload's readiness
//! (desired/ready), Services with their ports, Ingress hosts. Plain data, `Serialize` for --json.

use ::kube::api::{Api, DynamicObject, ListParams};
use ::kube::discovery::ApiResource;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;
use serde_json::Value;

use super::client::KubeClient;
use super::object::{i64_at, str_at};
use super::readiness::{Readiness, is_ready};
use super::{Error, Result, ownership_selector};

/// One workload's readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadStatus {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Replicas wanted (pods scheduled, for a DaemonSet; completions, for a Job).
    pub desired: i64,
    /// Replicas ready (succeeded, for a Job).
    pub ready: i64,
    pub readiness: Readiness,
}

/// One Service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePortStatus {
    pub name: Option<String>,
    pub port: i64,
    pub target_port: Option<String>,
    pub node_port: Option<i64>,
    pub protocol: String,
}

/// One Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    pub namespace: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub cluster_ip: Option<String>,
    pub ports: Vec<ServicePortStatus>,
}

/// One Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressStatus {
    pub namespace: String,
    pub name: String,
    pub hosts: Vec<String>,
    pub tls: bool,
    /// Load balancer addresses (IP or host name), when the ingress controller reported them.
    pub addresses: Vec<String>,
}

/// Everything `status` reports from the cluster for one project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectStatus {
    pub workloads: Vec<WorkloadStatus>,
    pub services: Vec<ServiceStatus>,
    pub ingresses: Vec<IngressStatus>,
}

impl ProjectStatus {
    /// True when every workload is ready.
    pub fn all_ready(&self) -> bool {
        self.workloads.iter().all(|w| w.readiness.is_ready())
    }
}

fn meta(obj: &Value) -> (String, String) {
    (
        str_at(obj, "/metadata/namespace").unwrap_or_default().to_string(),
        str_at(obj, "/metadata/name").unwrap_or_default().to_string(),
    )
}

/// A workload's status from its live JSON.
pub fn workload_from(kind: &str, obj: &Value) -> WorkloadStatus {
    let (namespace, name) = meta(obj);
    let (desired, ready) = match kind {
        "DaemonSet" => (
            i64_at(obj, "/status/desiredNumberScheduled").unwrap_or(0),
            i64_at(obj, "/status/numberReady").unwrap_or(0),
        ),
        "Job" => (i64_at(obj, "/spec/completions").unwrap_or(1), i64_at(obj, "/status/succeeded").unwrap_or(0)),
        _ => (i64_at(obj, "/spec/replicas").unwrap_or(1), i64_at(obj, "/status/readyReplicas").unwrap_or(0)),
    };
    WorkloadStatus { kind: kind.into(), namespace, name, desired, ready, readiness: is_ready(kind, obj) }
}

/// A Service's status from its live JSON.
pub fn service_from(obj: &Value) -> ServiceStatus {
    let (namespace, name) = meta(obj);
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| ServicePortStatus {
            name: str_at(p, "/name").map(String::from),
            port: i64_at(p, "/port").unwrap_or(0),
            target_port: p.get("targetPort").map(|t| match t {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            node_port: i64_at(p, "/nodePort"),
            protocol: str_at(p, "/protocol").unwrap_or("TCP").into(),
        })
        .collect();
    ServiceStatus {
        namespace,
        name,
        type_: str_at(obj, "/spec/type").unwrap_or("ClusterIP").into(),
        cluster_ip: str_at(obj, "/spec/clusterIP").map(String::from),
        ports,
    }
}

/// An Ingress's status from its live JSON.
pub fn ingress_from(obj: &Value) -> IngressStatus {
    let (namespace, name) = meta(obj);
    let mut hosts: Vec<String> = obj
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| str_at(r, "/host").map(String::from))
        .collect();
    hosts.dedup();
    let tls = obj.pointer("/spec/tls").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    let addresses = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| str_at(i, "/ip").or_else(|| str_at(i, "/hostname")).map(String::from))
        .collect();
    IngressStatus { namespace, name, hosts, tls, addresses }
}

async fn list<K>(client: &KubeClient, project: &str) -> Result<Vec<Value>>
where
    K: ::kube::Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(client.raw().clone(), &ar);
    let list =
        api.list(&ListParams::default().labels(&ownership_selector(project))).await.map_err(|source| match source {
            ::kube::Error::Api(_) => Error::Api { action: "listing", object: format!("{} objects", ar.kind), source },
            other => client.unreachable(other),
        })?;
    let mut items: Vec<Value> = list.items.iter().filter_map(|o| serde_json::to_value(o).ok()).collect();
    items.sort_by_key(meta);
    Ok(items)
}

/// The workloads, Services and Ingresses samestack owns for `project`, in every namespace.
pub async fn project_status(client: &KubeClient, project: &str) -> Result<ProjectStatus> {
    let (deployments, statefulsets, daemonsets, jobs, services, ingresses) = tokio::try_join!(
        list::<Deployment>(client, project),
        list::<StatefulSet>(client, project),
        list::<DaemonSet>(client, project),
        list::<Job>(client, project),
        list::<Service>(client, project),
        list::<Ingress>(client, project),
    )?;
    let mut workloads = Vec::new();
    for (kind, items) in
        [("Deployment", deployments), ("StatefulSet", statefulsets), ("DaemonSet", daemonsets), ("Job", jobs)]
    {
        // Jobs made by a CronJob come and go; only the project's own Jobs (migrations) count.
        workloads.extend(
            items.iter().filter(|o| o.pointer("/metadata/ownerReferences").is_none()).map(|o| workload_from(kind, o)),
        );
    }
    Ok(ProjectStatus {
        workloads,
        services: services.iter().map(service_from).collect(),
        ingresses: ingresses.iter().map(ingress_from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn workloads_services_and_ingresses_from_json() {
        let deploy = json!({"metadata": {"name": "api", "namespace": "shop", "generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}});
        let w = workload_from("Deployment", &deploy);
        assert_eq!((w.desired, w.ready, w.namespace.as_str()), (2, 1, "shop"));
        assert!(!w.readiness.is_ready());
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["readiness"], json!({"state": "pending", "reason": "1 of 2 updated replicas available"}));

        let svc = json!({"metadata": {"name": "api", "namespace": "shop"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.7",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080, "protocol": "TCP"}, {"port": 9090, "targetPort": 9090}]}});
        let s = service_from(&svc);
        assert_eq!(s.type_, "NodePort");
        assert_eq!(s.ports[0].node_port, Some(30080));
        assert_eq!(s.ports[1].target_port.as_deref(), Some("9090"));

        let ing = json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"tls": [{"hosts": ["shop.localhost"]}],
            "rules": [{"host": "shop.localhost"}, {"host": "api.shop.localhost"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.2"}]}}});
        let i = ingress_from(&ing);
        assert_eq!(i.hosts, ["shop.localhost", "api.shop.localhost"]);
        assert!(i.tls);
        assert_eq!(i.addresses, ["172.18.0.2"]);
    }

    #[test]
    fn job_and_daemonset_counts() {
        let job = json!({"metadata": {"name": "migrate"}, "spec": {"completions": 1}, "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}});
        let w = workload_from("Job", &job);
        assert_eq!((w.desired, w.ready), (1, 1));
        assert!(w.readiness.is_ready());
        let ds = json!({"metadata": {"name": "agent", "generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(workload_from("DaemonSet", &ds).ready, 2);
    }
}
