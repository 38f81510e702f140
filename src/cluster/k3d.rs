//! The `k3d` provider: drives the installed `k3d` CLI with a generated `Simple` config.
//!
//! The registry is wired through k3s's `registries.yaml` (a mirror for `localhost:<port>`
//! pointing at `http://<registry container>:<port>`), given in the config at creation. Adding
//! the registry to an existing cluster writes `/etc/rancher/k3s/registries.yaml` into each node
//! and restarts the node containers (k3s reads the file at start) — the cluster is kept.
//! The cluster network is `samestack-<cluster>`, which the registry joins.
//!
//! k3d always creates privileged node containers; engines that refuse privileged containers
//! (like the CI machines here) cannot run k3d nodes, so the tests of this module check the
//! generated config and command lines only. Node images are k3s images, not kind-contract
//! ones: only the spec's explicit `node_image` overrides k3d's default.

use std::path::{Path, PathBuf};

use bollard::Docker;
use serde::Serialize;

use super::{
    Access, Cluster, ClusterSpec, ClusterState, ClusterStatus, Error, NodeInfo, Provider, RegistryEndpoint, kubeconfig,
    node, run_cli, write_temp_config,
};

/// The label k3d sets on node containers, valued with the cluster name.
pub const K3D_CLUSTER_LABEL: &str = "k3d.cluster";
const K3D_ROLE_LABEL: &str = "k3d.role";
const REGISTRIES_YAML: &str = "/etc/rancher/k3s/registries.yaml";

/// The k3d CLI found on PATH.
pub struct K3dProvider {
    binary: PathBuf,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Simple {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    servers: u32,
    agents: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    network: String,
    #[serde(rename = "kubeAPI")]
    kube_api: KubeApi,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registries: Option<Registries>,
    options: Options,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeApi {
    #[serde(rename = "hostIP")]
    host_ip: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Port {
    port: String,
    node_filters: Vec<String>,
}

#[derive(Serialize)]
struct Registries {
    config: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Options {
    kubeconfig: KubeconfigOptions,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeconfigOptions {
    update_default_kubeconfig: bool,
    switch_current_context: bool,
}

/// The k3d cluster network for a cluster.
pub fn network_name(cluster: &str) -> String {
    format!("samestack-{cluster}")
}

/// Pure: k3s's `registries.yaml` mirroring `localhost:<port>` to the registry container.
pub fn registries_yaml(registry: &RegistryEndpoint) -> String {
    format!(
        "mirrors:\n  \"{host}\":\n    endpoint:\n      - \"http://{net}\"\n",
        host = registry.host(),
        net = registry.in_network()
    )
}

/// Pure: the k3d `Simple` config for a spec.
pub fn cluster_config(spec: &ClusterSpec) -> String {
    let config = Simple {
        api_version: "k3d.io/v1alpha5",
        kind: "Simple",
        metadata: Metadata { name: spec.name.clone() },
        servers: spec.servers.max(1),
        agents: spec.agents,
        image: spec.node_image.clone().filter(|i| !i.trim().is_empty()),
        network: network_name(&spec.name),
        kube_api: KubeApi { host_ip: "127.0.0.1" },
        ports: spec
            .ports
            .iter()
            .map(|p| Port {
                port: format!(
                    "{}:{}:{}/{}",
                    p.host_ip.as_deref().unwrap_or("127.0.0.1"),
                    p.host_port,
                    p.container_port,
                    p.protocol
                ),
                node_filters: vec!["server:0".into()],
            })
            .collect(),
        registries: spec.registry.as_ref().map(|r| Registries { config: registries_yaml(r) }),
        options: Options {
            kubeconfig: KubeconfigOptions { update_default_kubeconfig: false, switch_current_context: false },
        },
    };
    serde_saphyr::to_string(&config).expect("the k3d config serializes")
}

/// Pure: `k3d cluster create` arguments.
pub fn create_args(config: &Path) -> Vec<String> {
    vec![
        "cluster".into(),
        "create".into(),
        "--config".into(),
        config.display().to_string(),
        "--wait".into(),
        "--timeout".into(),
        "300s".into(),
    ]
}

/// Pure: `k3d cluster start|delete <name>` and `k3d kubeconfig get <name>` arguments.
pub fn lifecycle_args(verb: &str, spec: &ClusterSpec) -> Vec<String> {
    match verb {
        "kubeconfig" => vec!["kubeconfig".into(), "get".into(), spec.name.clone()],
        "start" => vec!["cluster".into(), "start".into(), spec.name.clone(), "--wait".into()],
        other => vec!["cluster".into(), other.into(), spec.name.clone()],
    }
}

impl K3dProvider {
    /// Find `k3d` on PATH.
    pub async fn find() -> Result<Self, Error> {
        let binary = which::which("k3d").map_err(|_| Error::CliNotFound { tool: "k3d" })?;
        Ok(K3dProvider { binary })
    }

    async fn node_list(&self, docker: &Docker, spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error> {
        let mut nodes: Vec<NodeInfo> =
            node::containers_with_label(docker, &format!("{K3D_CLUSTER_LABEL}={}", spec.name))
                .await?
                .iter()
                .filter_map(|c| {
                    let role = c.labels.as_ref().and_then(|l| l.get(K3D_ROLE_LABEL)).cloned().unwrap_or_default();
                    // The load balancer and tools containers are not nodes.
                    matches!(role.as_str(), "server" | "agent").then(|| NodeInfo {
                        name: node::summary_name(c),
                        role,
                        running: node::summary_running(c),
                    })
                })
                .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }
}

impl Provider for K3dProvider {
    fn name(&self) -> &'static str {
        "k3d"
    }

    async fn status(&self, spec: &ClusterSpec) -> Result<ClusterStatus, Error> {
        let docker = node::connect().await?;
        let nodes = self.node_list(&docker, spec).await?;
        let state = ClusterState::of(&nodes);
        Ok(ClusterStatus { provider: "k3d", state, nodes, api_server: None })
    }

    async fn ensure(&self, spec: &ClusterSpec) -> Result<Cluster, Error> {
        let status = self.status(spec).await?;
        let created = status.state == ClusterState::Absent;
        if created {
            let (_dir, config) = write_temp_config("k3d.yaml", &cluster_config(spec))?;
            run_cli(&self.binary, &create_args(&config)).await?;
        }
        let restart = super::start_stopped(self, spec, &status).await?;
        if let Some(registry) = &spec.registry {
            self.wire_registry(spec, registry).await?;
        }
        Ok(Cluster {
            name: spec.name.clone(),
            provider: "k3d",
            created,
            restart,
            access: self.access(spec).await?,
            nodes: self.nodes(spec).await?,
            network: Some(network_name(&spec.name)),
            timings: Vec::new(),
        })
    }

    async fn start(&self, spec: &ClusterSpec) -> Result<(), Error> {
        run_cli(&self.binary, &lifecycle_args("start", spec)).await.map(drop)
    }

    async fn delete(&self, spec: &ClusterSpec) -> Result<(), Error> {
        run_cli(&self.binary, &lifecycle_args("delete", spec)).await.map(drop)
    }

    async fn access(&self, spec: &ClusterSpec) -> Result<Access, Error> {
        let text = run_cli(&self.binary, &lifecycle_args("kubeconfig", spec)).await?;
        let context = spec.context_name();
        Ok(Access::Kubeconfig { yaml: kubeconfig::rename(&text, &context)?, context })
    }

    async fn nodes(&self, spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error> {
        self.node_list(&node::connect().await?, spec).await
    }

    async fn wire_registry(&self, spec: &ClusterSpec, registry: &RegistryEndpoint) -> Result<(), Error> {
        let docker = node::connect().await?;
        node::connect_network(&docker, &network_name(&spec.name), &registry.container_name).await?;
        let wanted = registries_yaml(registry);
        for n in self.node_list(&docker, spec).await? {
            let current = node::exec_output(&docker, &n.name, &["cat", REGISTRIES_YAML], &[]).await?;
            if current.status == 0 && current.output == wanted {
                continue;
            }
            node::write_file(&docker, &n.name, REGISTRIES_YAML, &wanted).await?;
            // k3s reads registries.yaml only at start: restart the node, keep the cluster.
            docker
                .restart_container(&n.name, None)
                .await
                .map_err(|source| Error::Docker { action: format!("restart k3d node {}", n.name), source })?;
        }
        let client = super::client_for(&self.access(spec).await?).await?;
        super::wait_nodes_ready(
            &client,
            (spec.servers.max(1) + spec.agents) as usize,
            std::time::Duration::from_secs(300),
        )
        .await?;
        super::write_local_registry_hosting(&client, registry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PortMapping;

    fn spec() -> ClusterSpec {
        let mut spec = ClusterSpec::new("shop", "dev");
        spec.agents = 1;
        spec.ports =
            vec![PortMapping { host_ip: None, host_port: 8080, container_port: 30080, protocol: "tcp".into() }];
        spec.registry = Some(RegistryEndpoint {
            container_name: "samestack-registry".into(),
            host_port: 5001,
            port_in_network: 5000,
        });
        spec
    }

    #[test]
    fn k3d_config_has_counts_ports_network_and_registry_mirror() {
        let text = cluster_config(&spec());
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], "k3d.io/v1alpha5");
        assert_eq!(v["kind"], "Simple");
        assert_eq!(v["metadata"]["name"], "dev");
        assert_eq!((v["servers"].as_u64(), v["agents"].as_u64()), (Some(1), Some(1)));
        assert!(v.get("image").is_none(), "k3d's default k3s image unless overridden");
        assert_eq!(v["network"], "samestack-dev");
        assert_eq!(v["kubeAPI"]["hostIP"], "127.0.0.1");
        assert_eq!(v["ports"][0], serde_json::json!({"port": "127.0.0.1:8080:30080/tcp", "nodeFilters": ["server:0"]}));
        assert_eq!(v["options"]["kubeconfig"]["updateDefaultKubeconfig"], false);
        let registries: serde_json::Value =
            serde_saphyr::from_str(v["registries"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(registries["mirrors"]["localhost:5001"]["endpoint"][0], "http://samestack-registry:5000");
    }

    #[test]
    fn k3d_config_takes_an_explicit_image_and_omits_registries_without_one() {
        let mut spec = spec();
        spec.node_image = Some("rancher/k3s:v1.34.1-k3s1".into());
        spec.registry = None;
        let v: serde_json::Value = serde_saphyr::from_str(&cluster_config(&spec)).unwrap();
        assert_eq!(v["image"], "rancher/k3s:v1.34.1-k3s1");
        assert!(v.get("registries").is_none());
    }

    #[test]
    fn k3d_command_lines() {
        let spec = spec();
        assert_eq!(
            create_args(Path::new("/tmp/x/k3d.yaml")).join(" "),
            "cluster create --config /tmp/x/k3d.yaml --wait --timeout 300s"
        );
        assert_eq!(lifecycle_args("start", &spec).join(" "), "cluster start dev --wait");
        assert_eq!(lifecycle_args("delete", &spec).join(" "), "cluster delete dev");
        assert_eq!(lifecycle_args("kubeconfig", &spec).join(" "), "kubeconfig get dev");
    }
}
