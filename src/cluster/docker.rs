//! The native `docker` provider: node containers created through the Docker API from a
//! kind-contract node image (docs/node-contract.md), bootstrapped with kubeadm. Docker is the
//! only prerequisite.
//!
//! Nodes ask for `privileged` like kind's do. Engines whose capability bounding set lacks
//! `CAP_SYS_RESOURCE` refuse that ("unable to apply caps"); the provider then removes the
//! failed container and retries with the explicit option set of the node contract, and says
//! so once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigCgroupnsModeEnum,
    Ipam, IpamConfig, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions};
use futures_util::StreamExt;

use super::kubeadm::{self, Bootstrap, KubeadmParams, Privileges};
use super::{
    Access, Cluster, ClusterSpec, ClusterState, ClusterStatus, Error, LABEL_CLUSTER, LABEL_PROJECT, LABEL_ROLE,
    NodeInfo, PortMapping, Provider, RegistryEndpoint, kubeconfig, node,
};

/// Label with the node's part: `server` or `agent`.
const LABEL_NODE_ROLE: &str = "dev.samestack.node-role";
/// Label with the canonical host port mappings, compared when reusing a cluster.
const LABEL_PORTS: &str = "dev.samestack.ports";
/// The node image as the spec named it. Docker lists a container's image by id once its tag has
/// moved (a rebuilt or re-pulled node image), and a moved tag is no reason to recreate a cluster.
const LABEL_NODE_IMAGE: &str = "dev.samestack.node-image";
const API_PORT: &str = "6443/tcp";
const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// Written into the server node once the whole bootstrap is done: kubeadm on every node, CNI,
/// storage, every node Ready, cluster DNS available. `admin.conf` alone is no proof: it exists
/// seconds into `kubeadm init`, and an interrupted run leaves kubeadm finishing on its own
/// while the CNI is never applied (the nodes never get Ready).
pub const BOOTSTRAPPED_MARKER: &str = "/kind/samestack-bootstrapped";
const NODE_BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the API server of running nodes without the marker may take to list the nodes.
const UNMARKED_LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// How often creating the cluster network is tried when racers keep taking the probed subnet.
const NETWORK_ATTEMPTS: usize = 3;

/// True when the engine refused a network because its subnet is taken.
fn overlaps(err: &bollard::errors::Error) -> bool {
    crate::docker::describe(err).to_ascii_lowercase().contains("overlap")
}

/// The native provider. Cheap to clone the Docker client it holds.
pub struct DockerProvider {
    docker: Docker,
    /// Set once the engine refused a privileged node: later nodes go straight to the explicit set.
    explicit_privileges: AtomicBool,
}

/// How long the steps of the last bootstrap took, for the report and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub steps: Vec<(String, Duration)>,
}

/// Names of what the provider creates for a cluster.
pub fn network_name(cluster: &str) -> String {
    format!("samestack-{cluster}")
}

/// The container (and Kubernetes node) name of a node.
pub fn node_name(cluster: &str, role: &str, index: u32) -> String {
    format!("samestack-{cluster}-{role}-{index}")
}

/// Pure: the canonical form of port mappings stored on the nodes and compared on reuse.
pub fn ports_label(ports: &[PortMapping]) -> String {
    let mut items: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{}/{}",
                p.host_ip.as_deref().unwrap_or("127.0.0.1"),
                p.host_port,
                p.container_port,
                p.protocol
            )
        })
        .collect();
    items.sort();
    items.join(",")
}

/// Pure: why existing nodes do not match the spec, or `None` when they do. `nodes` are
/// `(role, image, ports label)` of the existing containers.
pub fn mismatch(spec_image: &str, spec: &ClusterSpec, nodes: &[(String, String, String)]) -> Option<String> {
    let servers = nodes.iter().filter(|n| n.0 == "server").count() as u32;
    let agents = nodes.iter().filter(|n| n.0 == "agent").count() as u32;
    if servers != spec.servers || agents != spec.agents {
        return Some(format!(
            "it has {servers} server(s) and {agents} agent(s), the configuration asks for {} and {}",
            spec.servers, spec.agents
        ));
    }
    if let Some((_, image, _)) = nodes.iter().find(|n| n.1 != spec_image) {
        return Some(format!("its nodes run image {image}, the configuration asks for {spec_image}"));
    }
    let wanted = ports_label(&spec.ports);
    if let Some((_, _, ports)) = nodes.iter().find(|n| n.0 == "server" && n.2 != wanted) {
        return Some(format!("its host ports are [{ports}], the configuration asks for [{wanted}]"));
    }
    None
}

/// Pure: split a network's IPv4 subnet in two: Docker hands out addresses dynamically from the
/// first half (`ip_range`, for the registry and anything else that joins), node `index` gets a
/// fixed address in the second half. Fixed node addresses survive restarts in any order, which
/// kubeadm's advertise address and the kubelet's node IP rely on.
pub fn address_plan(subnet: &str, index: u32) -> Option<(String, String)> {
    let (addr, prefix) = subnet.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    if !(8..=28).contains(&prefix) {
        return None;
    }
    let half = prefix + 1;
    let network = u32::from(addr) & (u32::MAX << (32 - prefix));
    let upper = network + (1u32 << (32 - half));
    let node = upper + 2 + index;
    if node >= network + (1u32 << (32 - prefix)) - 1 {
        return None;
    }
    Some((format!("{}/{half}", std::net::Ipv4Addr::from(network)), std::net::Ipv4Addr::from(node).to_string()))
}

/// What `ensure` does with node containers an earlier run left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Started (or running) and fully bootstrapped.
    Keep,
    /// Bootstrapped but not marked so (made by a samestack that wrote no marker, or the marker
    /// was lost), and every node Ready: keep it and its data, and run the bootstrap's last
    /// steps again (CNI and storage applied, nodes Ready, DNS, the marker).
    Finish,
    /// Remove everything and create the cluster again, for the reason given.
    Recreate(&'static str),
    /// Starting failed for a reason recreating would not fix: report it.
    Fail,
}

/// What the server node shows of the last bootstrap, for [`reuse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrapped {
    /// [`BOOTSTRAPPED_MARKER`] is there.
    Marked,
    /// No marker, but `admin.conf` exists and every node is Ready (since the restart, when the
    /// nodes were started again): the cluster worked.
    Unmarked,
    /// No marker, and no `admin.conf` or not every node Ready: the bootstrap stopped early.
    Unfinished,
}

/// Pure: the decision behind [`Reuse`]. `started` is the start of the stopped nodes (`Err`
/// with the engine's message); `found` what the nodes show of the bootstrap.
///
/// A node the engine refuses to start because it asks for `privileged` was left by a run
/// interrupted in the middle of creating it, before the fallback to the explicit capability
/// set: it never ran, so it holds nothing, and the create path (which falls back) makes it again.
pub fn reuse(started: Result<(), String>, found: Bootstrapped) -> Reuse {
    match (started, found) {
        (Err(message), _) if kubeadm::privileges_refused(&message) => {
            Reuse::Recreate("a node left by an interrupted run asks for privileges this engine refuses")
        }
        (Err(_), _) => Reuse::Fail,
        (Ok(()), Bootstrapped::Marked) => Reuse::Keep,
        (Ok(()), Bootstrapped::Unmarked) => Reuse::Finish,
        (Ok(()), Bootstrapped::Unfinished) => Reuse::Recreate("the cluster's bootstrap did not finish last time"),
    }
}

/// The engine's message of a failed node start, for [`reuse`].
fn start_failure(err: &Error) -> String {
    match err {
        Error::Docker { source, .. } => crate::docker::describe(source),
        other => other.to_string(),
    }
}

/// Pure: the HostConfig privileges part for a node.
pub fn privilege_options(privileges: Privileges) -> HostConfig {
    let common = HostConfig {
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        security_opt: Some(vec!["seccomp=unconfined".into(), "apparmor=unconfined".into()]),
        ..Default::default()
    };
    match privileges {
        Privileges::Privileged => HostConfig { privileged: Some(true), ..common },
        Privileges::Explicit => HostConfig {
            cap_add: Some(vec!["ALL".into()]),
            cap_drop: Some(vec!["SYS_RESOURCE".into()]),
            // `--security-opt systempaths=unconfined` is a CLI spelling: the API takes empty
            // masked and read-only path lists (so /proc/sys is writable).
            masked_paths: Some(Vec::new()),
            readonly_paths: Some(Vec::new()),
            device_cgroup_rules: Some(vec!["a *:* rwm".into()]),
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/kmsg".into()),
                path_in_container: Some("/dev/kmsg".into()),
                cgroup_permissions: Some("rwm".into()),
            }]),
            ..common
        },
    }
}

/// Pure: the full create request of a node container.
pub fn node_container(
    spec: &ClusterSpec,
    image: &str,
    name: &str,
    role: &str,
    address: Option<&str>,
    privileges: Privileges,
) -> ContainerCreateBody {
    let network = network_name(&spec.name);
    let mut labels = HashMap::from([
        (LABEL_PROJECT.to_string(), spec.project.clone()),
        (LABEL_CLUSTER.to_string(), spec.name.clone()),
        (LABEL_ROLE.to_string(), "node".to_string()),
        (LABEL_NODE_ROLE.to_string(), role.to_string()),
        (LABEL_NODE_IMAGE.to_string(), image.to_string()),
    ]);
    let mut port_bindings = HashMap::new();
    let mut exposed = Vec::new();
    if role == "server" {
        labels.insert(LABEL_PORTS.to_string(), ports_label(&spec.ports));
        // The API server on a random free host port, loopback only.
        port_bindings.insert(
            API_PORT.to_string(),
            Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: None }]),
        );
        exposed.push(API_PORT.to_string());
        for p in &spec.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            port_bindings.entry(key.clone()).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(
                PortBinding {
                    host_ip: Some(p.host_ip.clone().unwrap_or_else(|| "127.0.0.1".into())),
                    host_port: Some(p.host_port.to_string()),
                },
            );
            exposed.push(key);
        }
    }
    let host_config = HostConfig {
        network_mode: Some(network.clone()),
        init: Some(false),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(1),
        }),
        tmpfs: Some(HashMap::from([("/tmp".to_string(), String::new()), ("/run".to_string(), String::new())])),
        binds: Some(vec!["/lib/modules:/lib/modules:ro".into()]),
        port_bindings: Some(port_bindings),
        ..privilege_options(privileges)
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        hostname: Some(name.to_string()),
        tty: Some(true),
        labels: Some(labels),
        volumes: Some(vec!["/var".into()]),
        exposed_ports: Some(exposed),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network,
                EndpointSettings {
                    aliases: Some(vec![name.to_string()]),
                    ipam_config: address
                        .map(|a| EndpointIpamConfig { ipv4_address: Some(a.to_string()), ..Default::default() }),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

impl DockerProvider {
    /// Connect to the local Docker engine.
    pub async fn connect() -> Result<Self, Error> {
        Ok(Self::with_client(node::connect().await?))
    }

    /// Use an existing client (the crate's shared one).
    pub fn with_client(docker: Docker) -> Self {
        DockerProvider { docker, explicit_privileges: AtomicBool::new(false) }
    }

    /// The Docker client.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn labels(spec: &ClusterSpec) -> Vec<String> {
        vec![
            format!("{LABEL_PROJECT}={}", spec.project),
            format!("{LABEL_CLUSTER}={}", spec.name),
            format!("{LABEL_ROLE}=node"),
        ]
    }

    /// The cluster's node containers: `(name, role, image, ports label, running)`, servers first.
    async fn node_containers(&self, spec: &ClusterSpec) -> Result<Vec<(NodeInfo, String, String)>, Error> {
        let mut nodes: Vec<_> = node::containers_with_labels(&self.docker, &Self::labels(spec))
            .await?
            .iter()
            .map(|c| {
                let labels = c.labels.clone().unwrap_or_default();
                let info = NodeInfo {
                    name: node::summary_name(c),
                    role: labels.get(LABEL_NODE_ROLE).cloned().unwrap_or_default(),
                    running: node::summary_running(c),
                };
                let image = labels.get(LABEL_NODE_IMAGE).cloned().or_else(|| c.image.clone()).unwrap_or_default();
                (info, image, labels.get(LABEL_PORTS).cloned().unwrap_or_default())
            })
            .collect();
        nodes.sort_by(|a, b| (a.0.role != "server", &a.0.name).cmp(&(b.0.role != "server", &b.0.name)));
        Ok(nodes)
    }

    async fn api_port(&self, container: &str) -> Result<Option<String>, Error> {
        let inspect = self
            .docker
            .inspect_container(container, None)
            .await
            .map_err(|source| Error::Docker { action: format!("inspect node {container}"), source })?;
        Ok(inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get(API_PORT).cloned().flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port))
            .filter(|p| !p.is_empty()))
    }

    async fn node_ip(&self, spec: &ClusterSpec, container: &str) -> Result<String, Error> {
        let inspect = self
            .docker
            .inspect_container(container, None)
            .await
            .map_err(|source| Error::Docker { action: format!("inspect node {container}"), source })?;
        inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|n| n.get(&network_name(&spec.name)).cloned())
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| Error::Timeout {
                what: format!("an address for {container} on network {}", network_name(&spec.name)),
                after: Duration::ZERO,
                last: "the node has no IP on the cluster network".into(),
            })
    }

    async fn ensure_image(&self, image: &str) -> Result<(), Error> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        tracing::info!(image, "pulling the node image");
        let options = CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            item.map_err(|source| Error::NodeImage { image: image.to_string(), source })?;
        }
        Ok(())
    }

    /// Create the cluster network `samestack-<cluster>` (labelled) unless it exists, with its
    /// subnet split by [`address_plan`]. Returns the subnet when nodes can get fixed addresses.
    /// Never makes a second network of the name, also when two `up`s race (see
    /// [`crate::docker::create_network_unique`]).
    pub async fn ensure_network(&self, spec: &ClusterSpec) -> Result<Option<String>, Error> {
        let name = network_name(&spec.name);
        let action = |what: &str| format!("{what} network {name}");
        let planned = |ipam: Option<&Ipam>| {
            ipam.and_then(|i| i.config.as_ref())
                .and_then(|c| c.iter().find(|c| c.ip_range.is_some()))
                .and_then(|c| c.subnet.clone())
        };
        let labels = HashMap::from([
            (LABEL_PROJECT.to_string(), spec.project.clone()),
            (LABEL_CLUSTER.to_string(), spec.name.clone()),
        ]);
        let request = |name: &str, ipam: Option<Ipam>| NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ipam,
            ..Default::default()
        };
        let mut last = None;
        for _ in 0..NETWORK_ATTEMPTS {
            if let Some(existing) = crate::docker::keep_one_network(&self.docker, &name).await? {
                let id = existing.id.clone().unwrap_or_default();
                if let Some(subnet) = planned(existing.ipam.as_ref()) {
                    return Ok(Some(subnet));
                }
                let inspect = self
                    .docker
                    .inspect_network(&id, None)
                    .await
                    .map_err(|source| Error::Docker { action: action("inspect"), source })?;
                if inspect.containers.as_ref().is_some_and(|c| !c.is_empty()) {
                    return Ok(None);
                }
                // Left over without an address plan and unused: make it again, with one.
                match self.docker.remove_network(&id).await {
                    Ok(()) => {}
                    Err(e) if crate::docker::is_not_found(&e) => {}
                    Err(source) => return Err(Error::Docker { action: action("remove"), source }),
                }
            }
            // Let Docker pick a free subnet for a probe network of a name no one else uses,
            // then make the real one with that subnet split in two.
            let probe = format!("{name}-probe-{}-{}", std::process::id(), kubeadm::new_token().replace('.', ""));
            let created = self
                .docker
                .create_network(request(&probe, None))
                .await
                .map_err(|source| Error::Docker { action: action("create a probe for"), source })?;
            let inspect = self.docker.inspect_network(&created.id, None).await;
            let _ = self.docker.remove_network(&created.id).await;
            let inspect = inspect.map_err(|source| Error::Docker { action: action("inspect a probe for"), source })?;
            let auto = inspect.ipam.and_then(|i| i.config).and_then(|c| c.into_iter().find(|c| c.subnet.is_some()));
            let plan = auto.and_then(|c| {
                let (ip_range, _) = address_plan(c.subnet.as_deref()?, 0)?;
                Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: c.subnet.clone(),
                        ip_range: Some(ip_range),
                        gateway: c.gateway,
                        ..Default::default()
                    }]),
                    ..Default::default()
                })
            });
            let Some(ipam) = plan else {
                crate::docker::create_network_unique(&self.docker, request(&name, None)).await?;
                return Ok(None);
            };
            match crate::docker::create_network_unique(&self.docker, request(&name, Some(ipam))).await {
                // The network kept may be a racer's, with its own subnet: read it back.
                Ok(id) => {
                    let kept = self
                        .docker
                        .inspect_network(&id, None)
                        .await
                        .map_err(|source| Error::Docker { action: action("inspect"), source })?;
                    return Ok(planned(kept.ipam.as_ref()));
                }
                // A racer took the subnet between the probe and the create: look again.
                Err(crate::docker::Error::Api { source, .. }) if overlaps(&source) => last = Some(source),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Docker {
            action: action("create"),
            source: last.unwrap_or(bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "no free subnet".into(),
            }),
        })
    }

    /// Every network of the cluster: the one in use, duplicates from races, probes left by an
    /// interrupted create.
    async fn cluster_networks(&self, spec: &ClusterSpec) -> Result<Vec<bollard::models::Network>, Error> {
        let labels = [(LABEL_PROJECT, spec.project.as_str()), (LABEL_CLUSTER, spec.name.as_str())];
        let mut found = crate::docker::find_networks(&self.docker, &labels).await?;
        // A network of the name made before the labels were set is the cluster's too.
        for net in crate::docker::networks_named(&self.docker, &network_name(&spec.name)).await? {
            if !found.iter().any(|f| f.id == net.id) {
                found.push(net);
            }
        }
        Ok(found)
    }

    async fn remove_container(&self, name: &str) -> Result<(), Error> {
        Ok(crate::docker::remove_container(&self.docker, name).await?)
    }

    /// Create and start one node container (`role`: `server` or `agent`) on the cluster
    /// network, falling back from privileged to the explicit set once the engine refuses it.
    /// Returns the privileges the node got.
    pub async fn create_node(
        &self,
        spec: &ClusterSpec,
        image: &str,
        name: &str,
        role: &str,
        address: Option<&str>,
    ) -> Result<Privileges, Error> {
        loop {
            let privileges = if self.explicit_privileges.load(Ordering::Relaxed) {
                Privileges::Explicit
            } else {
                Privileges::Privileged
            };
            let body = node_container(spec, image, name, role, address, privileges);
            let options = CreateContainerOptions { name: Some(name.to_string()), ..Default::default() };
            let created = self.docker.create_container(Some(options), body).await;
            let result = match created {
                Ok(_) => self.docker.start_container(name, None).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(privileges),
                Err(source)
                    if privileges == Privileges::Privileged && kubeadm::privileges_refused(&source.to_string()) =>
                {
                    tracing::warn!(
                        "the Docker engine refuses privileged containers ({source}); creating nodes with an explicit capability set instead (all but CAP_SYS_RESOURCE, unconfined seccomp/apparmor/system paths)"
                    );
                    self.explicit_privileges.store(true, Ordering::Relaxed);
                    self.remove_container(name).await?;
                }
                Err(source) => {
                    let _ = self.remove_container(name).await;
                    return Err(Error::Docker { action: format!("create and start node {name} from {image}"), source });
                }
            }
        }
    }

    /// Wait until systemd runs in the node and containerd is active.
    async fn wait_booted(&self, name: &str) -> Result<(), Error> {
        let deadline = Instant::now() + NODE_BOOT_TIMEOUT;
        loop {
            let last = match node::exec_output(&self.docker, name, &["systemctl", "is-active", "containerd"], &[]).await
            {
                Ok(out) if out.status == 0 && out.output.trim() == "active" => return Ok(()),
                Ok(out) => out.output.trim().to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("systemd and containerd in node {name}"),
                    after: NODE_BOOT_TIMEOUT,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What the nodes show of the last bootstrap. Without the marker the cluster still counts as
    /// bootstrapped when `admin.conf` is there and every node is Ready: by the first node list
    /// the API server gives within [`UNMARKED_LIST_TIMEOUT`] when the nodes were running, or
    /// Ready since `restart` within the usual timeout when they were started again.
    async fn bootstrap_state(&self, spec: &ClusterSpec, restart: Option<&super::Restart>) -> Bootstrapped {
        let server = node_name(&spec.name, "server", 0);
        let marked = node::exec_output(&self.docker, &server, &["test", "-f", BOOTSTRAPPED_MARKER], &[]).await;
        if marked.is_ok_and(|o| o.status == 0) {
            return Bootstrapped::Marked;
        }
        let expected = (spec.servers + spec.agents) as usize;
        let ready = async {
            // `access` reads admin.conf: absent, the bootstrap never got far.
            let client = super::client_for(&self.access(spec).await?).await?;
            match restart {
                Some(restart) => {
                    super::wait_nodes_ready_since(&client, expected, Some(restart), super::NODES_READY_TIMEOUT).await?;
                    Ok::<_, Error>(true)
                }
                None => Ok(super::nodes_ready_now(&client, UNMARKED_LIST_TIMEOUT).await? >= expected),
            }
        };
        match ready.await {
            Ok(true) => Bootstrapped::Unmarked,
            Ok(false) => Bootstrapped::Unfinished,
            Err(e) => {
                tracing::debug!(cluster = spec.name, error = %e, "no bootstrap marker, and the cluster does not answer as bootstrapped");
                Bootstrapped::Unfinished
            }
        }
    }

    /// The cluster's add-ons from the node image: its CNI (rendered for this cluster) and, when
    /// the image has one, its default storage. `kubectl apply`: idempotent.
    async fn apply_addons(&self, spec: &ClusterSpec) -> Result<(), Error> {
        let server = node_name(&spec.name, "server", 0);
        let cni = node::run(&self.docker, &server, &["cat", "/kind/manifests/default-cni.yaml"]).await?;
        let cni = kubeadm::render_cni(&cni, kubeadm::POD_SUBNET, &format!("{server}:6443")).map_err(|message| {
            Error::NodeContract {
                image: spec.node_image(),
                message: format!("/kind/manifests/default-cni.yaml: {message}"),
            }
        })?;
        node::write_file(&self.docker, &server, "/kind/samestack-cni.yaml", &cni).await?;
        let kubectl = |file: &'static str| ["kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "apply", "-f", file];
        node::run(&self.docker, &server, &kubectl("/kind/samestack-cni.yaml")).await?;
        let has_storage =
            node::exec_output(&self.docker, &server, &["test", "-f", "/kind/manifests/default-storage.yaml"], &[])
                .await?
                .status
                == 0;
        if has_storage {
            node::run(&self.docker, &server, &kubectl("/kind/manifests/default-storage.yaml")).await?;
        }
        Ok(())
    }

    /// The bootstrap's last steps: every node Ready, cluster DNS available, then the marker —
    /// last, so only a bootstrap that got this far counts as done on the next run. `lap` is
    /// called after each wait.
    async fn finish_bootstrap(&self, spec: &ClusterSpec, mut lap: impl FnMut(&str)) -> Result<(), Error> {
        let server = node_name(&spec.name, "server", 0);
        let client = super::client_for(&self.access(spec).await?).await?;
        let expected = (spec.servers + spec.agents) as usize;
        super::wait_nodes_ready(&client, expected, super::NODES_READY_TIMEOUT).await?;
        lap("nodes Ready");
        super::wait_deployment_available(&client, "kube-system", "coredns", super::NODES_READY_TIMEOUT).await?;
        lap("cluster DNS available");
        let version = node::run(&self.docker, &server, &["cat", "/kind/version"]).await?;
        node::write_file(&self.docker, &server, BOOTSTRAPPED_MARKER, &format!("{}\n", version.trim())).await
    }

    /// Create every node and bootstrap the cluster. Returns how long each step took.
    pub async fn create(&self, spec: &ClusterSpec) -> Result<Timings, Error> {
        let mut timings = Timings::default();
        let image = spec.node_image();
        let mut step = Instant::now();
        let mut lap = |timings: &mut Timings, what: &str| {
            timings.steps.push((what.to_string(), step.elapsed()));
            tracing::info!(cluster = spec.name, "{what}: {:.1?}", step.elapsed());
            step = Instant::now();
        };
        self.ensure_image(&image).await?;
        let subnet = self.ensure_network(spec).await?;
        let address = |index: u32| subnet.as_deref().and_then(|s| address_plan(s, index)).map(|p| p.1);
        let server = node_name(&spec.name, "server", 0);
        let agents: Vec<String> = (0..spec.agents).map(|i| node_name(&spec.name, "agent", i)).collect();
        self.create_node(spec, &image, &server, "server", address(0).as_deref()).await?;
        for (i, agent) in agents.iter().enumerate() {
            self.create_node(spec, &image, agent, "agent", address(1 + i as u32).as_deref()).await?;
        }
        lap(&mut timings, "create node containers");
        for name in std::iter::once(&server).chain(&agents) {
            self.wait_booted(name).await?;
        }
        lap(&mut timings, "boot nodes");
        if let Some(registry) = &spec.registry {
            self.wire_nodes(spec, registry).await?;
        }
        let version = node::run(&self.docker, &server, &["cat", "/kind/version"]).await?.trim().to_string();
        let containerd = node::run(&self.docker, &server, &["cat", "/etc/containerd/config.toml"]).await?;
        let token = kubeadm::new_token();
        let params = |name: &str, ip: String, bootstrap| KubeadmParams {
            cluster: spec.name.clone(),
            version: version.clone(),
            control_plane: server.clone(),
            node_name: name.to_string(),
            node_ip: ip,
            token: token.clone(),
            cgroup_driver: kubeadm::cgroup_driver(&containerd).to_string(),
            bootstrap,
        };
        let ip = self.node_ip(spec, &server).await?;
        let init =
            kubeadm::config(&params(&server, ip, Bootstrap::Init { schedule_on_control_plane: spec.agents == 0 }));
        node::write_file(&self.docker, &server, kubeadm::KUBEADM_CONFIG, &init).await?;
        node::run(
            &self.docker,
            &server,
            &[
                "kubeadm",
                "init",
                "--config=/kind/kubeadm.conf",
                "--skip-phases=preflight",
                "--skip-token-print",
                "--v=6",
            ],
        )
        .await?;
        lap(&mut timings, "kubeadm init");
        self.apply_addons(spec).await?;
        lap(&mut timings, "CNI and storage");
        for agent in &agents {
            let ip = self.node_ip(spec, agent).await?;
            node::write_file(
                &self.docker,
                agent,
                kubeadm::KUBEADM_CONFIG,
                &kubeadm::config(&params(agent, ip, Bootstrap::Join)),
            )
            .await?;
            node::run(
                &self.docker,
                agent,
                &["kubeadm", "join", "--config=/kind/kubeadm.conf", "--skip-phases=preflight", "--v=6"],
            )
            .await?;
        }
        if !agents.is_empty() {
            lap(&mut timings, "kubeadm join");
        }
        self.finish_bootstrap(spec, |what| lap(&mut timings, what)).await?;
        Ok(timings)
    }

    /// Registry wiring on the node side: network, containerd `hosts.toml`.
    async fn wire_nodes(&self, spec: &ClusterSpec, registry: &RegistryEndpoint) -> Result<(), Error> {
        node::connect_network(&self.docker, &network_name(&spec.name), &registry.container_name).await?;
        for (info, _, _) in self.node_containers(spec).await? {
            node::wire_containerd(&self.docker, &info.name, registry).await?;
        }
        Ok(())
    }
}

impl Provider for DockerProvider {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn status(&self, spec: &ClusterSpec) -> Result<ClusterStatus, Error> {
        let nodes: Vec<NodeInfo> = self.node_containers(spec).await?.into_iter().map(|n| n.0).collect();
        let state = ClusterState::of(&nodes);
        let api_server = match nodes.iter().find(|n| n.role == "server" && n.running) {
            Some(server) => self.api_port(&server.name).await?.map(|p| format!("https://127.0.0.1:{p}")),
            None => None,
        };
        Ok(ClusterStatus { provider: "docker", state, nodes, api_server })
    }

    async fn ensure(&self, spec: &ClusterSpec) -> Result<Cluster, Error> {
        if spec.servers != 1 {
            return Err(Error::Unsupported {
                provider: "docker",
                what: format!(
                    "create {} control-plane nodes (it creates exactly one; use agents for more nodes)",
                    spec.servers
                ),
            });
        }
        let image = spec.node_image();
        let existing = self.node_containers(spec).await?;
        let mut created = false;
        let mut timings = Timings::default();
        let mut restart = None;
        let begin = Instant::now();
        if existing.is_empty() {
            timings = self.create(spec).await?;
            created = true;
        } else {
            let described: Vec<_> =
                existing.iter().map(|(i, img, ports)| (i.role.clone(), img.clone(), ports.clone())).collect();
            if let Some(reason) = mismatch(&image, spec, &described) {
                return Err(Error::Mismatch { name: spec.name.clone(), reason });
            }
            restart = super::Restart::of_stopped(existing.iter().map(|n| &n.0));
            let started = match &restart {
                Some(_) => self.start(spec).await,
                None => Ok(()),
            };
            if started.is_ok() && restart.is_some() {
                timings.steps.push(("start stopped nodes".into(), begin.elapsed()));
            }
            let found = match &started {
                Ok(()) => self.bootstrap_state(spec, restart.as_ref()).await,
                Err(_) => Bootstrapped::Unfinished,
            };
            match reuse(started.as_ref().map(drop).map_err(start_failure), found) {
                Reuse::Keep => {}
                Reuse::Finish => {
                    self.apply_addons(spec).await?;
                    self.finish_bootstrap(spec, |what| timings.steps.push((what.to_string(), begin.elapsed()))).await?;
                    tracing::warn!(
                        cluster = spec.name,
                        "the cluster has no bootstrap marker ({BOOTSTRAPPED_MARKER}: made by an older samestack, or lost) but every node is Ready: adopted it with its data, applied the CNI and storage again and marked it bootstrapped"
                    );
                }
                Reuse::Recreate(why) => {
                    // Nothing in an unfinished create is worth keeping.
                    tracing::warn!(cluster = spec.name, "{why}; recreating the cluster");
                    restart = None;
                    self.delete(spec).await?;
                    timings = self.create(spec).await?;
                    created = true;
                }
                Reuse::Fail => return Err(started.expect_err("only a failed start fails")),
            }
        }
        let access = self.access(spec).await?;
        if !created {
            // After a start the API server needs a moment; this also proves a reused cluster answers.
            let client = super::client_for(&access).await?;
            let expected = (spec.servers + spec.agents) as usize;
            super::wait_nodes_ready_since(&client, expected, restart.as_ref(), super::NODES_READY_TIMEOUT).await?;
        }
        if let Some(registry) = &spec.registry {
            // Idempotent; after a start the registry may have been recreated and left the network.
            self.wire_registry(spec, registry).await?;
        }
        timings.steps.push(("total".into(), begin.elapsed()));
        Ok(Cluster {
            name: spec.name.clone(),
            provider: "docker",
            created,
            restart,
            access,
            nodes: self.nodes(spec).await?,
            network: Some(network_name(&spec.name)),
            timings: timings.steps,
        })
    }

    async fn start(&self, spec: &ClusterSpec) -> Result<(), Error> {
        let nodes = self.node_containers(spec).await?;
        for (info, _, _) in nodes.iter().filter(|n| !n.0.running) {
            self.docker
                .start_container(&info.name, None)
                .await
                .map_err(|source| Error::Docker { action: format!("start node {}", info.name), source })?;
        }
        for (info, _, _) in &nodes {
            self.wait_booted(&info.name).await?;
        }
        Ok(())
    }

    async fn delete(&self, spec: &ClusterSpec) -> Result<(), Error> {
        for (info, _, _) in self.node_containers(spec).await? {
            self.remove_container(&info.name).await?;
        }
        for network in self.cluster_networks(spec).await? {
            let Some(id) = network.id.as_deref() else { continue };
            let name = network.name.clone().unwrap_or_else(|| id.to_string());
            if let Ok(inspect) = self.docker.inspect_network(id, None).await {
                // Containers samestack did not create for this cluster (the registry) only leave it.
                for (container, _) in inspect.containers.unwrap_or_default() {
                    let request = NetworkDisconnectRequest { container, force: Some(true) };
                    let _ = self.docker.disconnect_network(id, request).await;
                }
            }
            match self.docker.remove_network(id).await {
                Ok(()) => {}
                Err(e) if crate::docker::is_not_found(&e) => {}
                Err(source) => return Err(Error::Docker { action: format!("remove network {name}"), source }),
            }
        }
        Ok(())
    }

    async fn access(&self, spec: &ClusterSpec) -> Result<Access, Error> {
        let server = node_name(&spec.name, "server", 0);
        let admin = node::run(&self.docker, &server, &["cat", ADMIN_CONF]).await?;
        let port = self.api_port(&server).await?.ok_or_else(|| Error::Timeout {
            what: format!("the API server port of {server} to be published"),
            after: Duration::ZERO,
            last: "no host port bound to 6443/tcp".into(),
        })?;
        let context = spec.context_name();
        let yaml = kubeconfig::for_host(&admin, &format!("https://127.0.0.1:{port}"), &context)?;
        Ok(Access::Kubeconfig { yaml, context })
    }

    async fn nodes(&self, spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error> {
        Ok(self.node_containers(spec).await?.into_iter().map(|n| n.0).collect())
    }

    async fn wire_registry(&self, spec: &ClusterSpec, registry: &RegistryEndpoint) -> Result<(), Error> {
        self.wire_nodes(spec, registry).await?;
        let client = super::client_for(&self.access(spec).await?).await?;
        super::write_local_registry_hosting(&client, registry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        let mut spec = ClusterSpec::new("shop", "dev");
        spec.ports =
            vec![PortMapping { host_ip: None, host_port: 8080, container_port: 30080, protocol: "tcp".into() }];
        spec
    }

    #[test]
    fn node_container_is_labelled_networked_and_publishes_the_api_on_loopback() {
        let body = node_container(
            &spec(),
            "img:1",
            "samestack-dev-server-0",
            "server",
            Some("172.18.128.2"),
            Privileges::Privileged,
        );
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_NODE_IMAGE], "img:1", "reuse compares the image by the name asked for");
        assert_eq!(labels[LABEL_PROJECT], "shop");
        assert_eq!(labels[LABEL_CLUSTER], "dev");
        assert_eq!(labels[LABEL_ROLE], "node");
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("samestack-dev"));
        assert_eq!(host.privileged, Some(true));
        let ports = host.port_bindings.as_ref().unwrap();
        let api = ports[API_PORT].as_ref().unwrap();
        assert_eq!(api[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(api[0].host_port, None, "a random free port");
        assert_eq!(ports["30080/tcp"].as_ref().unwrap()[0].host_port.as_deref(), Some("8080"));
        assert_eq!(body.volumes, Some(vec!["/var".to_string()]));
        let endpoint = &body.networking_config.as_ref().unwrap().endpoints_config.as_ref().unwrap()["samestack-dev"];
        assert_eq!(endpoint.ipam_config.as_ref().unwrap().ipv4_address.as_deref(), Some("172.18.128.2"));
        assert!(host.tmpfs.as_ref().unwrap().contains_key("/run"));
    }

    #[test]
    fn nodes_left_by_an_interrupted_run_are_kept_only_when_started_and_bootstrapped() {
        let refused = "OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown";
        for found in [Bootstrapped::Marked, Bootstrapped::Unmarked, Bootstrapped::Unfinished] {
            assert!(matches!(reuse(Err(refused.into()), found), Reuse::Recreate(why) if why.contains("privileges")));
            assert_eq!(reuse(Err("No such container: x".into()), found), Reuse::Fail);
        }
        assert!(
            matches!(reuse(Ok(()), Bootstrapped::Unfinished), Reuse::Recreate(why) if why.contains("did not finish"))
        );
        assert_eq!(reuse(Ok(()), Bootstrapped::Marked), Reuse::Keep);
    }

    #[test]
    fn a_cluster_without_the_marker_whose_nodes_are_ready_is_adopted_not_recreated() {
        // Made by a samestack that wrote no marker, or the marker got lost: its data stays.
        assert_eq!(reuse(Ok(()), Bootstrapped::Unmarked), Reuse::Finish);
    }

    #[test]
    fn explicit_privileges_are_the_node_contract_set() {
        let host = privilege_options(Privileges::Explicit);
        assert_eq!(host.privileged, None);
        assert_eq!(host.cap_add, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_drop, Some(vec!["SYS_RESOURCE".to_string()]));
        assert_eq!((host.masked_paths.as_deref(), host.readonly_paths.as_deref()), (Some(&[][..]), Some(&[][..])));
        assert!(host.security_opt.as_ref().unwrap().contains(&"seccomp=unconfined".to_string()));
        assert_eq!(host.device_cgroup_rules, Some(vec!["a *:* rwm".to_string()]));
        assert_eq!(host.devices.as_ref().unwrap()[0].path_on_host.as_deref(), Some("/dev/kmsg"));
        assert_eq!(host.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::PRIVATE));
    }

    #[test]
    fn address_plan_keeps_nodes_out_of_the_dynamic_range() {
        assert_eq!(address_plan("172.18.0.0/16", 0), Some(("172.18.0.0/17".into(), "172.18.128.2".into())));
        assert_eq!(address_plan("172.18.0.0/16", 3), Some(("172.18.0.0/17".into(), "172.18.128.5".into())));
        assert_eq!(address_plan("192.168.16.0/20", 0), Some(("192.168.16.0/21".into(), "192.168.24.2".into())));
        assert_eq!(address_plan("10.1.2.0/28", 5), None, "no room left in a tiny subnet");
        assert_eq!(address_plan("fd00::/64", 0), None, "IPv4 only");
    }

    #[test]
    fn agents_publish_nothing() {
        let body = node_container(&spec(), "img:1", "samestack-dev-agent-0", "agent", None, Privileges::Explicit);
        assert!(body.host_config.unwrap().port_bindings.unwrap().is_empty());
    }

    #[test]
    fn reuse_requires_same_nodes_image_and_ports() {
        let spec = spec();
        let ports = ports_label(&spec.ports);
        let ok = vec![("server".to_string(), "img:1".to_string(), ports.clone())];
        assert_eq!(mismatch("img:1", &spec, &ok), None);
        assert!(mismatch("img:2", &spec, &ok).unwrap().contains("img:2"));
        let wrong_ports = vec![("server".to_string(), "img:1".to_string(), String::new())];
        assert!(mismatch("img:1", &spec, &wrong_ports).unwrap().contains("host ports"));
        let extra = vec![ok[0].clone(), ("agent".to_string(), "img:1".to_string(), String::new())];
        assert!(mismatch("img:1", &spec, &extra).unwrap().contains("1 agent"));
    }
}
