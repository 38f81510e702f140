//! The `kind` provider: drives the installed `kind` CLI with a generated Cluster config.
//!
//! The config always points containerd's registry `config_path` at `/etc/containerd/certs.d`
//! (a `containerdConfigPatches` entry), so wiring the local registry later is one `hosts.toml`
//! file per node — written through `docker exec`, never a recreate. The registry container
//! joins kind's `kind` network.
//!
//! A cluster an interrupted `kind create cluster` left (see [`unfinished`]) is deleted and made
//! again by the next `ensure`, which says why; one that got as far as `kubeadm init` is kept.
//!
//! kind always creates privileged node containers; engines that refuse privileged containers
//! ("unable to apply caps", e.g. sandboxes without CAP_SYS_RESOURCE) cannot run kind nodes.
//! There, use the native `docker` provider, which falls back to an explicit capability set.
//! The unit tests here check generated configs and command lines; `tests/it/cluster_kind.rs`
//! runs the provider on real kind clusters (in CI behind a test-environment runc shim that only
//! the test machines get, see tests/cluster/README.md).

use std::path::{Path, PathBuf};

use bollard::Docker;
use serde::Serialize;

use super::{
    Access, Cluster, ClusterSpec, ClusterState, ClusterStatus, Error, NodeInfo, Provider, RegistryEndpoint, kubeconfig,
    node, run_cli, write_temp_config,
};

/// The Docker network kind puts every cluster on.
pub const KIND_NETWORK: &str = "kind";
/// The label kind sets on node containers, valued with the cluster name.
pub const KIND_CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
const KIND_ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// The containerd patch making `hosts.toml` files under `/etc/containerd/certs.d` effective.
pub const CONTAINERD_PATCH: &str =
    "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"";

/// The kind CLI found on PATH.
pub struct KindProvider {
    binary: PathBuf,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindCluster {
    kind: &'static str,
    api_version: &'static str,
    name: String,
    networking: Networking,
    nodes: Vec<KindNode>,
    containerd_config_patches: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    api_server_address: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindNode {
    role: &'static str,
    image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_port_mappings: Vec<KindPortMapping>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindPortMapping {
    container_port: u16,
    host_port: u16,
    listen_address: String,
    protocol: String,
}

/// Pure: the kind Cluster config for a spec.
pub fn cluster_config(spec: &ClusterSpec) -> String {
    let image = spec.node_image();
    let mut nodes = Vec::new();
    for i in 0..spec.servers.max(1) {
        let extra_port_mappings = if i == 0 {
            spec.ports
                .iter()
                .map(|p| KindPortMapping {
                    container_port: p.container_port,
                    host_port: p.host_port,
                    listen_address: p.host_ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
                    protocol: p.protocol.to_ascii_uppercase(),
                })
                .collect()
        } else {
            Vec::new()
        };
        nodes.push(KindNode { role: "control-plane", image: image.clone(), extra_port_mappings });
    }
    for _ in 0..spec.agents {
        nodes.push(KindNode { role: "worker", image: image.clone(), extra_port_mappings: Vec::new() });
    }
    let config = KindCluster {
        kind: "Cluster",
        api_version: "kind.x-k8s.io/v1alpha4",
        name: spec.name.clone(),
        networking: Networking { api_server_address: "127.0.0.1" },
        nodes,
        containerd_config_patches: vec![CONTAINERD_PATCH.to_string()],
    };
    serde_saphyr::to_string(&config).expect("the kind config serializes")
}

/// Pure: `kind create cluster` arguments. kind writes its kubeconfig to `kubeconfig` (a
/// samestack-owned scratch file), never to the user's.
pub fn create_args(spec: &ClusterSpec, config: &Path, kubeconfig: &Path) -> Vec<String> {
    vec![
        "create".into(),
        "cluster".into(),
        "--name".into(),
        spec.name.clone(),
        "--config".into(),
        config.display().to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--wait".into(),
        "5m".into(),
    ]
}

/// Pure: `kind delete cluster` arguments.
pub fn delete_args(spec: &ClusterSpec, kubeconfig: &Path) -> Vec<String> {
    vec![
        "delete".into(),
        "cluster".into(),
        "--name".into(),
        spec.name.clone(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
    ]
}

/// Pure: `kind get kubeconfig` arguments.
pub fn kubeconfig_args(spec: &ClusterSpec) -> Vec<String> {
    vec!["get".into(), "kubeconfig".into(), "--name".into(), spec.name.clone()]
}

/// Pure: why the kind cluster an earlier run left is unfinished, or `None`. `nodes` are its node
/// containers; `never_started` whether one of them was created and never started (kind starts
/// each as it makes it); `admin_conf` whether the running control plane has
/// `/etc/kubernetes/admin.conf` (`None`: not known, e.g. the node is stopped). Ctrl-C during
/// `kind create cluster` reaches kind too, which stops where it is and leaves the nodes it made:
/// before `kubeadm init` wrote admin.conf (the kubeconfig `kind get kubeconfig` reads), nothing
/// in them is worth keeping.
pub fn unfinished(nodes: &[NodeInfo], never_started: bool, admin_conf: Option<bool>) -> Option<&'static str> {
    if !nodes.iter().any(|n| n.role == "server") {
        return Some("it has no control-plane node");
    }
    if never_started {
        return Some("a node was created and never started");
    }
    (admin_conf == Some(false)).then_some("its control plane has no admin.conf, so kubeadm init never ran")
}

impl KindProvider {
    /// Find `kind` on PATH.
    pub async fn find() -> Result<Self, Error> {
        let binary = which::which("kind").map_err(|_| Error::CliNotFound { tool: "kind" })?;
        Ok(KindProvider { binary })
    }

    fn scratch_kubeconfig(spec: &ClusterSpec) -> PathBuf {
        kubeconfig::owned_path(&spec.name).with_file_name("kind-kubeconfig")
    }

    async fn node_list(&self, docker: &Docker, spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error> {
        let mut nodes: Vec<NodeInfo> =
            node::containers_with_label(docker, &format!("{KIND_CLUSTER_LABEL}={}", spec.name))
                .await?
                .iter()
                .map(|c| NodeInfo {
                    name: node::summary_name(c),
                    role: match c.labels.as_ref().and_then(|l| l.get(KIND_ROLE_LABEL)).map(String::as_str) {
                        Some("worker") => "agent".into(),
                        _ => "server".into(),
                    },
                    running: node::summary_running(c),
                })
                .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }
}

impl Provider for KindProvider {
    fn name(&self) -> &'static str {
        "kind"
    }

    async fn status(&self, spec: &ClusterSpec) -> Result<ClusterStatus, Error> {
        let docker = node::connect().await?;
        let nodes = self.node_list(&docker, spec).await?;
        let state = ClusterState::of(&nodes);
        Ok(ClusterStatus { provider: "kind", state, nodes, api_server: None })
    }

    async fn ensure(&self, spec: &ClusterSpec) -> Result<Cluster, Error> {
        let mut status = self.status(spec).await?;
        if status.state != ClusterState::Absent {
            let docker = node::connect().await?;
            let never_started = node::containers_with_label(&docker, &format!("{KIND_CLUSTER_LABEL}={}", spec.name))
                .await?
                .iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.to_string() == "created"));
            let server = status.nodes.iter().find(|n| n.role == "server" && n.running);
            let admin_conf = match server {
                Some(server) => {
                    let test = ["test", "-f", "/etc/kubernetes/admin.conf"];
                    Some(node::exec_output(&docker, &server.name, &test, &[]).await?.status == 0)
                }
                None => None,
            };
            if let Some(why) = unfinished(&status.nodes, never_started, admin_conf) {
                tracing::warn!(
                    cluster = spec.name,
                    "the kind cluster is unfinished ({why}: `kind create cluster` was interrupted); deleting it and creating it again"
                );
                self.delete(spec).await?;
                status = self.status(spec).await?;
            }
        }
        let created = status.state == ClusterState::Absent;
        if created {
            let (_dir, config) = write_temp_config("kind.yaml", &cluster_config(spec))?;
            let scratch = Self::scratch_kubeconfig(spec);
            if let Some(parent) = scratch.parent() {
                let _ = super::kubeconfig::create_private_dir(parent);
            }
            run_cli(&self.binary, &create_args(spec, &config, &scratch)).await?;
        }
        let restart = super::start_stopped(self, spec, &status).await?;
        if let Some(registry) = &spec.registry {
            self.wire_registry(spec, registry).await?;
        }
        Ok(Cluster {
            name: spec.name.clone(),
            provider: "kind",
            created,
            restart,
            access: self.access(spec).await?,
            nodes: self.nodes(spec).await?,
            network: Some(KIND_NETWORK.into()),
            timings: Vec::new(),
        })
    }

    async fn start(&self, spec: &ClusterSpec) -> Result<(), Error> {
        // kind has no start command; its nodes come back with `docker start`.
        let docker = node::connect().await?;
        for n in self.node_list(&docker, spec).await?.iter().filter(|n| !n.running) {
            docker
                .start_container(&n.name, None)
                .await
                .map_err(|source| Error::Docker { action: format!("start kind node {}", n.name), source })?;
        }
        Ok(())
    }

    async fn delete(&self, spec: &ClusterSpec) -> Result<(), Error> {
        let scratch = Self::scratch_kubeconfig(spec);
        if let Err(first) = run_cli(&self.binary, &delete_args(spec, &scratch)).await {
            // `kind delete` cannot kill a node whose pod cgroups were left frozen: remove the
            // nodes ourselves (thawing them), then let kind clean up the rest.
            tracing::warn!(cluster = spec.name, error = %first, "kind could not delete the cluster; removing its nodes directly");
            let docker = node::connect().await?;
            for c in node::containers_with_label(&docker, &format!("{KIND_CLUSTER_LABEL}={}", spec.name)).await? {
                crate::docker::remove_container(&docker, &node::summary_name(&c)).await?;
            }
            run_cli(&self.binary, &delete_args(spec, &scratch)).await?;
        }
        let _ = std::fs::remove_file(scratch);
        Ok(())
    }

    async fn access(&self, spec: &ClusterSpec) -> Result<Access, Error> {
        let text = run_cli(&self.binary, &kubeconfig_args(spec)).await?;
        let context = spec.context_name();
        Ok(Access::Kubeconfig { yaml: kubeconfig::rename(&text, &context)?, context })
    }

    async fn nodes(&self, spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error> {
        self.node_list(&node::connect().await?, spec).await
    }

    async fn wire_registry(&self, spec: &ClusterSpec, registry: &RegistryEndpoint) -> Result<(), Error> {
        let docker = node::connect().await?;
        node::connect_network(&docker, KIND_NETWORK, &registry.container_name).await?;
        for n in self.node_list(&docker, spec).await? {
            node::wire_containerd(&docker, &n.name, registry).await?;
        }
        let client = super::client_for(&self.access(spec).await?).await?;
        super::write_local_registry_hosting(&client, registry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PortMapping;

    fn spec() -> ClusterSpec {
        let mut spec = ClusterSpec::new("shop", "dev");
        spec.agents = 2;
        spec.node_image = Some("samestack-test/node:v1.34.4".into());
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
    fn kind_config_has_nodes_image_ports_and_the_registry_config_path() {
        let text = cluster_config(&spec());
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["kind"], "Cluster");
        assert_eq!(v["apiVersion"], "kind.x-k8s.io/v1alpha4");
        assert_eq!(v["name"], "dev");
        assert_eq!(v["networking"]["apiServerAddress"], "127.0.0.1");
        let nodes = v["nodes"].as_array().unwrap();
        let roles: Vec<_> = nodes.iter().map(|n| n["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["control-plane", "worker", "worker"]);
        assert!(nodes.iter().all(|n| n["image"] == "samestack-test/node:v1.34.4"));
        assert_eq!(
            nodes[0]["extraPortMappings"][0],
            serde_json::json!({"containerPort": 30080, "hostPort": 8080, "listenAddress": "127.0.0.1", "protocol": "TCP"})
        );
        assert!(nodes[1].get("extraPortMappings").is_none());
        let patch = v["containerdConfigPatches"][0].as_str().unwrap();
        assert!(patch.contains("config_path = \"/etc/containerd/certs.d\""), "{patch}");
    }

    #[test]
    fn a_cluster_left_by_an_interrupted_kind_create_is_unfinished() {
        let node = |role: &str, running| NodeInfo { name: format!("dev-{role}"), role: role.into(), running };
        let whole = [node("server", true), node("agent", true)];
        assert_eq!(unfinished(&whole, false, Some(true)), None);
        assert!(unfinished(&whole, false, Some(false)).unwrap().contains("admin.conf"));
        let stopped = [node("server", false), node("agent", false)];
        assert_eq!(unfinished(&stopped, false, None), None, "stopped after it ran: not known");
        assert!(unfinished(&stopped, true, None).unwrap().contains("never started"));
        assert!(unfinished(&[node("agent", true)], false, None).unwrap().contains("no control-plane"));
        // Fewer nodes than the configuration asks for, yet bootstrapped: a changed config, not
        // an interrupted create; never deleted for it.
        assert_eq!(unfinished(&whole[..1], false, Some(true)), None);
    }

    #[test]
    fn kind_command_lines_keep_the_users_kubeconfig_out_of_it() {
        let spec = spec();
        let args = create_args(&spec, Path::new("/tmp/k/kind.yaml"), Path::new("/state/dev/kind-kubeconfig"));
        assert_eq!(
            args.join(" "),
            "create cluster --name dev --config /tmp/k/kind.yaml --kubeconfig /state/dev/kind-kubeconfig --wait 5m"
        );
        assert_eq!(
            delete_args(&spec, Path::new("/state/dev/kind-kubeconfig")).join(" "),
            "delete cluster --name dev --kubeconfig /state/dev/kind-kubeconfig"
        );
        assert_eq!(kubeconfig_args(&spec).join(" "), "get kubeconfig --name dev");
    }
}
