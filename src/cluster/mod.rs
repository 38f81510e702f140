//! Cluster providers behind one trait: native docker, kind, k3d, existing, and `auto` which
//! picks one. A provider creates or reuses a cluster, starts it again after a reboot, deletes
//! it, hands out a host-reachable kubeconfig, and wires the local registry into the nodes.
//!
//! The module takes its own input, [`ClusterSpec`], not the config file types: the command
//! layer resolves settings and builds the spec.
//!
//! # How `auto` chooses
//! 1. If a cluster of this name already exists under kind or k3d (their node containers carry
//!    `io.x-k8s.kind.cluster=<name>` / `k3d.cluster=<name>` labels), that provider is kept, so
//!    switching to `auto` never orphans a cluster.
//! 2. Otherwise, when a Docker engine answers: the native `docker` provider. It needs nothing
//!    but Docker, runs the same kind-contract node images kind uses, and also works on engines
//!    that refuse privileged containers (it falls back to an explicit capability set).
//! 3. Otherwise there is nothing to create a cluster with: an error says to start Docker or to
//!    choose `existing` with a kubeconfig context.
//!
//! kind and k3d are only used when asked for (`provider: kind|k3d`) or found owning the cluster.

pub mod docker;
pub mod existing;
pub mod k3d;
pub mod kind;
pub mod kubeadm;
pub mod kubeconfig;
pub mod node;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Classify, ErrorKind};

pub use docker::DockerProvider;
pub use existing::ExistingProvider;
pub use k3d::K3dProvider;
pub use kind::KindProvider;

/// Label carrying the cluster name on node containers and the cluster network.
pub use crate::labels::CLUSTER as LABEL_CLUSTER;
/// Label carrying the project name on every Docker object samestack creates.
pub use crate::labels::PROJECT as LABEL_PROJECT;
/// Label carrying the role of a container (`node` for cluster nodes).
pub use crate::labels::ROLE as LABEL_ROLE;
/// Node image used by the native and kind providers when nothing overrides it.
pub const DEFAULT_NODE_IMAGE: &str = "kindest/node:v1.34.0";
/// Environment variable overriding the node image (offline and air-gapped use).
pub const NODE_IMAGE_ENV: &str = "SAMESTACK_NODE_IMAGE";

/// Which provider to use, as the user chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderChoice {
    /// Pick one, see the module documentation for the order.
    Auto,
    /// Native: node containers through the Docker API.
    Docker,
    /// The `kind` CLI.
    Kind,
    /// The `k3d` CLI.
    K3d,
    /// A kubeconfig context the user already has: `context` `None` = the current context;
    /// `kubeconfig` `None` = `KUBECONFIG` or `~/.kube/config`.
    Existing { context: Option<String>, kubeconfig: Option<PathBuf> },
}

/// A host port published to a port of the (first server) node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to bind; `127.0.0.1` when `None`.
    pub host_ip: Option<String>,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// The local registry container the nodes should pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEndpoint {
    /// Docker container name; resolvable by the nodes once it joins the cluster network.
    pub container_name: String,
    /// Port published on the host: images are tagged `localhost:<host_port>/...`.
    pub host_port: u16,
    /// Port the registry listens on inside the Docker network (5000 for `registry:2`).
    pub port_in_network: u16,
}

impl RegistryEndpoint {
    /// The name images are pushed to from the host, and pulled by in manifests.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.host_port)
    }

    /// The address the nodes' container runtime really talks to.
    pub fn in_network(&self) -> String {
        format!("{}:{}", self.container_name, self.port_in_network)
    }
}

/// Everything a provider needs to create, reuse or delete one cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Project name: the `dev.samestack.project` label.
    pub project: String,
    /// Cluster name, unique on this Docker engine; the kubeconfig context is `samestack-<name>`.
    pub name: String,
    pub provider: ProviderChoice,
    /// Control-plane nodes (the native provider creates one; more are refused).
    pub servers: u32,
    /// Worker nodes.
    pub agents: u32,
    /// e.g. `1.34.0`; picks the default node image tag when `node_image` is unset.
    pub kubernetes_version: Option<String>,
    /// Node image, as the settings resolved it (flag, `SAMESTACK_NODE_IMAGE`, the project
    /// file); `None`: the default for `kubernetes_version`.
    pub node_image: Option<String>,
    pub ports: Vec<PortMapping>,
    pub registry: Option<RegistryEndpoint>,
}

impl ClusterSpec {
    /// A spec with one server, no agents, no ports, no registry.
    pub fn new(project: impl Into<String>, name: impl Into<String>) -> Self {
        ClusterSpec {
            project: project.into(),
            name: name.into(),
            provider: ProviderChoice::Auto,
            servers: 1,
            agents: 0,
            kubernetes_version: None,
            node_image: None,
            ports: Vec::new(),
            registry: None,
        }
    }

    /// The kubeconfig context (and cluster and user entry) name samestack adds.
    pub fn context_name(&self) -> String {
        context_name(&self.name)
    }

    /// The kind-contract node image: the spec's, then `kindest/node:v<kubernetes_version>`,
    /// then [`DEFAULT_NODE_IMAGE`].
    pub fn node_image(&self) -> String {
        resolve_node_image(self.node_image.as_deref(), self.kubernetes_version.as_deref())
    }
}

/// The kubeconfig context name for a cluster.
pub fn context_name(cluster: &str) -> String {
    format!("samestack-{cluster}")
}

/// Pure rule behind [`ClusterSpec::node_image`].
pub fn resolve_node_image(spec: Option<&str>, version: Option<&str>) -> String {
    let non_empty = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    non_empty(spec)
        .or_else(|| non_empty(version).map(|v| format!("kindest/node:v{}", v.trim_start_matches('v'))))
        .unwrap_or_else(|| DEFAULT_NODE_IMAGE.to_string())
}

/// Whether the cluster exists and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Nothing of it exists.
    Absent,
    /// All nodes run.
    Running,
    /// Nodes exist but none runs (after a reboot or `docker stop`).
    Stopped,
    /// Some nodes run, some do not.
    Degraded,
}

impl ClusterState {
    /// Pure: the state of a cluster from its nodes.
    pub fn of(nodes: &[NodeInfo]) -> ClusterState {
        let running = nodes.iter().filter(|n| n.running).count();
        match (nodes.len(), running) {
            (0, _) => ClusterState::Absent,
            (n, r) if n == r => ClusterState::Running,
            (_, 0) => ClusterState::Stopped,
            _ => ClusterState::Degraded,
        }
    }
}

/// Writes a CLI provider's generated config into a fresh temporary directory; the directory
/// (and the file) go when the returned guard drops.
fn write_temp_config(file_name: &str, content: &str) -> Result<(tempfile::TempDir, PathBuf), Error> {
    let dir = tempfile::tempdir().map_err(|source| Error::KubeconfigIo {
        path: std::env::temp_dir(),
        action: "create a temporary directory",
        source,
    })?;
    let config = dir.path().join(file_name);
    std::fs::write(&config, content).map_err(|source| Error::KubeconfigIo {
        path: config.clone(),
        action: "write",
        source,
    })?;
    Ok((dir, config))
}

/// One node of a cluster as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Container name (also the Kubernetes node name for kind-style nodes).
    pub name: String,
    /// `server` or `agent`.
    pub role: String,
    pub running: bool,
}

/// What `status` shows about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub provider: &'static str,
    pub state: ClusterState,
    pub nodes: Vec<NodeInfo>,
    /// `https://127.0.0.1:<port>` when known.
    pub api_server: Option<String>,
}

/// How to reach a cluster's API server from the host (defined with the client builder).
pub use crate::kube::Access;

/// A running cluster, as `ensure` leaves it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub provider: &'static str,
    /// True when this call created it; false when it was reused.
    pub created: bool,
    /// The nodes this call started again, and when: statuses reported before that (node
    /// conditions, pod readiness) describe the cluster from before the restart.
    pub restart: Option<Restart>,
    pub access: Access,
    pub nodes: Vec<NodeInfo>,
    /// The Docker network the nodes (and the registry) are on, when there is one.
    pub network: Option<String>,
    /// How long each step of this call took (node creation, kubeadm init, Ready...).
    pub timings: Vec<(String, Duration)>,
}

impl Cluster {
    /// True when stopped nodes were started by this call.
    pub fn started(&self) -> bool {
        self.restart.is_some()
    }

    /// A kube client for this cluster.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        client_for(&self.access).await
    }

    /// The kubeconfig YAML to merge into the user's file, when samestack owns one.
    pub fn kubeconfig_yaml(&self) -> Option<&str> {
        match &self.access {
            Access::Kubeconfig { yaml, .. } => Some(yaml),
            Access::UserContext { .. } => None,
        }
    }
}

/// A kube client from an [`Access`], through the one builder ([`crate::kube::connect`]).
pub async fn client_for(access: &Access) -> Result<kube::Client, Error> {
    Ok(crate::kube::connect(access).await?.0)
}

/// What every provider does. Native async fns: dispatch over providers goes through
/// [`AnyProvider`], so callers get `Send` futures without boxing.
#[allow(async_fn_in_trait)]
pub trait Provider {
    /// Short name shown to the user: `docker`, `kind`, `k3d`, `existing`.
    fn name(&self) -> &'static str;

    /// Whether the cluster exists, runs, and on which nodes.
    async fn status(&self, spec: &ClusterSpec) -> Result<ClusterStatus, Error>;

    /// Create the cluster, or reuse it when it exists and matches the spec (starting stopped
    /// nodes), then wire the registry when the spec has one. Idempotent.
    async fn ensure(&self, spec: &ClusterSpec) -> Result<Cluster, Error>;

    /// Start the nodes of an existing, stopped cluster (after a reboot). No-op when running.
    async fn start(&self, spec: &ClusterSpec) -> Result<(), Error>;

    /// Delete the cluster and everything the provider created for it. No-op when absent.
    async fn delete(&self, spec: &ClusterSpec) -> Result<(), Error>;

    /// How to reach the API server from the host.
    async fn access(&self, spec: &ClusterSpec) -> Result<Access, Error>;

    /// The node containers.
    async fn nodes(&self, spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error>;

    /// Make the nodes pull `localhost:<port>/...` from the registry container, without
    /// recreating anything, and write the KEP-1755 ConfigMap.
    async fn wire_registry(&self, spec: &ClusterSpec, registry: &RegistryEndpoint) -> Result<(), Error>;
}

/// One of the providers, chosen at run time.
pub enum AnyProvider {
    Docker(DockerProvider),
    Kind(KindProvider),
    K3d(K3dProvider),
    Existing(ExistingProvider),
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyProvider::Docker($p) => $e,
            AnyProvider::Kind($p) => $e,
            AnyProvider::K3d($p) => $e,
            AnyProvider::Existing($p) => $e,
        }
    };
}

impl Provider for AnyProvider {
    fn name(&self) -> &'static str {
        dispatch!(self, p => p.name())
    }
    async fn status(&self, spec: &ClusterSpec) -> Result<ClusterStatus, Error> {
        dispatch!(self, p => p.status(spec).await)
    }
    async fn ensure(&self, spec: &ClusterSpec) -> Result<Cluster, Error> {
        dispatch!(self, p => p.ensure(spec).await)
    }
    async fn start(&self, spec: &ClusterSpec) -> Result<(), Error> {
        dispatch!(self, p => p.start(spec).await)
    }
    async fn delete(&self, spec: &ClusterSpec) -> Result<(), Error> {
        dispatch!(self, p => p.delete(spec).await)
    }
    async fn access(&self, spec: &ClusterSpec) -> Result<Access, Error> {
        dispatch!(self, p => p.access(spec).await)
    }
    async fn nodes(&self, spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error> {
        dispatch!(self, p => p.nodes(spec).await)
    }
    async fn wire_registry(&self, spec: &ClusterSpec, registry: &RegistryEndpoint) -> Result<(), Error> {
        dispatch!(self, p => p.wire_registry(spec, registry).await)
    }
}

/// What the machine offers, for the pure `auto` decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Available {
    pub docker_engine: bool,
    pub kind_cli: bool,
    pub k3d_cli: bool,
    /// The cluster already exists as a kind cluster.
    pub kind_owns_cluster: bool,
    /// The cluster already exists as a k3d cluster.
    pub k3d_owns_cluster: bool,
}

/// The concrete provider `auto` (or an explicit choice) resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Docker,
    Kind,
    K3d,
    Existing,
}

/// Pure: which provider to use for a choice on a machine. See the module docs for the order.
pub fn choose(choice: &ProviderChoice, available: &Available) -> Result<ProviderKind, Error> {
    match choice {
        ProviderChoice::Docker => Ok(ProviderKind::Docker),
        ProviderChoice::Kind => Ok(ProviderKind::Kind),
        ProviderChoice::K3d => Ok(ProviderKind::K3d),
        ProviderChoice::Existing { .. } => Ok(ProviderKind::Existing),
        ProviderChoice::Auto => {
            if available.kind_owns_cluster && available.kind_cli {
                Ok(ProviderKind::Kind)
            } else if available.k3d_owns_cluster && available.k3d_cli {
                Ok(ProviderKind::K3d)
            } else if available.docker_engine {
                Ok(ProviderKind::Docker)
            } else {
                Err(Error::NoProvider)
            }
        }
    }
}

/// Resolve the spec's provider choice on this machine and build the provider.
pub async fn select(spec: &ClusterSpec) -> Result<AnyProvider, Error> {
    let kind = match &spec.provider {
        ProviderChoice::Auto => {
            let connected = node::connect().await;
            let (engine, engine_error) = match connected {
                Ok(engine) => (Some(engine), None),
                Err(e) => (None, Some(e)),
            };
            let mut available = Available {
                docker_engine: engine.is_some(),
                kind_cli: which::which("kind").is_ok(),
                k3d_cli: which::which("k3d").is_ok(),
                ..Default::default()
            };
            if let Some(engine) = &engine {
                available.kind_owns_cluster =
                    node::containers_with_label(engine, &format!("io.x-k8s.kind.cluster={}", spec.name))
                        .await
                        .map(|c| !c.is_empty())
                        .unwrap_or(false);
                available.k3d_owns_cluster = node::containers_with_label(engine, &format!("k3d.cluster={}", spec.name))
                    .await
                    .map(|c| !c.is_empty())
                    .unwrap_or(false);
            }
            match (choose(&spec.provider, &available), engine_error) {
                // Docker was the way; say why it is not there rather than only that it is not.
                (Err(Error::NoProvider), Some(engine_error)) => return Err(engine_error),
                (choice, _) => choice?,
            }
        }
        other => choose(other, &Available::default())?,
    };
    Ok(match kind {
        ProviderKind::Docker => AnyProvider::Docker(DockerProvider::connect().await?),
        ProviderKind::Kind => AnyProvider::Kind(KindProvider::find().await?),
        ProviderKind::K3d => AnyProvider::K3d(K3dProvider::find().await?),
        ProviderKind::Existing => {
            let (context, path) = match &spec.provider {
                ProviderChoice::Existing { context, kubeconfig } => (context.clone(), kubeconfig.clone()),
                _ => (None, None),
            };
            AnyProvider::Existing(ExistingProvider::new(path, context))
        }
    })
}

/// The KEP-1755 `localRegistryHosting.v1` document for a registry.
pub fn local_registry_hosting(registry: &RegistryEndpoint) -> String {
    format!(
        "host: \"{host}\"\nhostFromContainerRuntime: \"{host}\"\nhostFromClusterNetwork: \"{net}\"\nhelp: \"Images pushed to {host} (samestack's local registry) are pulled by the nodes through the wired mirror.\"\n",
        host = registry.host(),
        net = registry.in_network(),
    )
}

/// Write the KEP-1755 ConfigMap `kube-public/local-registry-hosting` for `registry`.
pub async fn write_local_registry_hosting(client: &kube::Client, registry: &RegistryEndpoint) -> Result<(), Error> {
    Ok(crate::kube::system::write_local_registry_hosting(client, &local_registry_hosting(registry)).await?)
}

/// Stopped nodes started again by `ensure` (defined with the readiness rules that use it).
pub use crate::kube::Restart;

impl Restart {
    /// The restart about to happen for the nodes that are not running; `None` when all are.
    pub fn of_stopped<'a>(nodes: impl IntoIterator<Item = &'a NodeInfo>) -> Option<Restart> {
        let nodes: Vec<String> = nodes.into_iter().filter(|n| !n.running).map(|n| n.name.clone()).collect();
        let at = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(1);
        (!nodes.is_empty()).then_some(Restart { at, nodes })
    }
}

/// For the CLI providers: starts the nodes `status` lists as stopped and waits until every
/// node reports Ready since; `None` when nothing was stopped.
async fn start_stopped(
    provider: &impl Provider,
    spec: &ClusterSpec,
    status: &ClusterStatus,
) -> Result<Option<Restart>, Error> {
    let Some(restart) = Restart::of_stopped(&status.nodes) else { return Ok(None) };
    provider.start(spec).await?;
    let client = client_for(&provider.access(spec).await?).await?;
    let expected = provider.nodes(spec).await?.len();
    wait_nodes_ready_since(&client, expected, Some(&restart), NODES_READY_TIMEOUT).await?;
    Ok(Some(restart))
}

/// How long nodes may take to report Ready after a create or a start.
pub const NODES_READY_TIMEOUT: Duration = Duration::from_secs(300);

pub use crate::kube::system::{nodes_ready_now, wait_deployment_available, wait_nodes_ready, wait_nodes_ready_since};

/// Run a provider CLI (kind, k3d) and return its stdout; failure carries the output's tail.
pub(crate) async fn run_cli(binary: &std::path::Path, args: &[String]) -> Result<String, Error> {
    let command = format!("{} {}", binary.display(), args.join(" "));
    tracing::debug!(%command, "running");
    let out =
        tokio::process::Command::new(binary).args(args).stdin(std::process::Stdio::null()).output().await.map_err(
            |e| Error::Cli { command: command.clone(), status: "could not start".into(), output: e.to_string() },
        )?;
    if !out.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(Error::Cli { command, status: out.status.to_string(), output: node::tail(&text, 25) });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Errors of cluster providers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Docker engine answers, and no other provider was chosen.
    #[error(
        "no cluster provider is usable: no Docker engine answers (start Docker, or set `provider: existing` to use a kubeconfig context you already have)"
    )]
    NoProvider,
    /// The Docker engine could not be reached.
    #[error(transparent)]
    Engine(#[from] crate::docker::Error),
    /// A Docker API call failed.
    #[error("Docker: could not {action}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The node image is neither present nor pullable.
    #[error(
        "node image {image} is not available locally and could not be pulled; build or load it, or set {NODE_IMAGE_ENV} / the node image override to an image you have"
    )]
    NodeImage {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The node image does not provide what docs/node-contract.md says it must.
    #[error("node image {image} does not meet the node contract: {message}")]
    NodeContract { image: String, message: String },
    /// A command run in a node container failed.
    #[error("in node {node}: `{command}` exited with {status}; last output:\n{output}")]
    Exec { node: String, command: String, status: i64, output: String },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what} (last seen: {last})")]
    Timeout { what: String, after: Duration, last: String },
    /// A provider CLI is not installed.
    #[error("`{tool}` was not found on PATH; install it, or use `provider: docker` (needs only Docker)")]
    CliNotFound { tool: &'static str },
    /// A provider CLI could not be run or failed.
    #[error("`{command}` failed ({status}); last output:\n{output}")]
    Cli { command: String, status: String, output: String },
    /// The existing cluster does not match the spec; reusing it would be wrong.
    #[error(
        "cluster {name} exists but does not match the configuration: {reason}; run `samestack down` to remove it (the next `up` recreates it) or change the configuration back"
    )]
    Mismatch { name: String, reason: String },
    /// The spec asks for something this provider cannot do.
    #[error("provider {provider} cannot {what}")]
    Unsupported { provider: &'static str, what: String },
    /// A kubeconfig file could not be read or written.
    #[error("kubeconfig {path}: {action}")]
    KubeconfigIo {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A kubeconfig is not valid YAML or lacks what is needed.
    #[error("kubeconfig {what} is not usable: {message}")]
    KubeconfigInvalid { what: String, message: String },
    /// The requested context is not in the kubeconfig.
    #[error(
        "kubeconfig context {context} not found in {path}; list them with `kubectl config get-contexts` and set the provider's context to one of them"
    )]
    ContextNotFound { context: String, path: String },
    /// A Kubernetes client or wait failed (see [`crate::kube::Error`]).
    #[error(transparent)]
    Client(#[from] crate::kube::Error),
    /// A Kubernetes API call failed.
    #[error("Kubernetes: could not {action}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Mismatch { .. } | Error::Unsupported { .. } | Error::ContextNotFound { .. } => ErrorKind::User,
            Error::Client(e) => e.kind(),
            _ => ErrorKind::Environment,
        }
    }
}
crate::classify!(Error);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_names_the_stopped_nodes_only() {
        let node = |name: &str, running| NodeInfo { name: name.into(), role: "server".into(), running };
        assert_eq!(Restart::of_stopped(&[node("a", true), node("b", true)]), None);
        let before = k8s_openapi::jiff::Timestamp::now();
        let restart = Restart::of_stopped(&[node("a", true), node("b", false), node("c", false)]).unwrap();
        assert_eq!(restart.nodes, ["b", "c"]);
        assert!(restart.at < before, "statuses from the restart's own second must count");
    }

    #[test]
    fn node_image_is_the_spec_then_the_version_then_the_default() {
        // Flag > SAMESTACK_NODE_IMAGE > cluster.node_image is settings' rule (settings::tests).
        assert_eq!(resolve_node_image(Some("a:1"), Some("1.30.0")), "a:1");
        assert_eq!(resolve_node_image(Some(" "), Some("v1.30.0")), "kindest/node:v1.30.0");
        assert_eq!(resolve_node_image(None, None), DEFAULT_NODE_IMAGE);
    }

    #[test]
    fn auto_prefers_the_provider_that_owns_the_cluster_then_native_docker() {
        let docker_only = Available { docker_engine: true, ..Default::default() };
        assert_eq!(choose(&ProviderChoice::Auto, &docker_only).unwrap(), ProviderKind::Docker);
        let with_kind = Available { docker_engine: true, kind_cli: true, k3d_cli: true, ..Default::default() };
        assert_eq!(choose(&ProviderChoice::Auto, &with_kind).unwrap(), ProviderKind::Docker);
        let kind_owns = Available { kind_owns_cluster: true, ..with_kind.clone() };
        assert_eq!(choose(&ProviderChoice::Auto, &kind_owns).unwrap(), ProviderKind::Kind);
        let k3d_owns = Available { k3d_owns_cluster: true, ..with_kind };
        assert_eq!(choose(&ProviderChoice::Auto, &k3d_owns).unwrap(), ProviderKind::K3d);
        assert!(matches!(choose(&ProviderChoice::Auto, &Available::default()), Err(Error::NoProvider)));
        assert_eq!(choose(&ProviderChoice::Kind, &Available::default()).unwrap(), ProviderKind::Kind);
    }

    #[test]
    fn local_registry_hosting_names_host_and_in_network_addresses() {
        let reg =
            RegistryEndpoint { container_name: "samestack-registry".into(), host_port: 5001, port_in_network: 5000 };
        let doc = local_registry_hosting(&reg);
        let v: serde_json::Value = serde_saphyr::from_str(&doc).unwrap();
        assert_eq!(v["host"], "localhost:5001");
        assert_eq!(v["hostFromContainerRuntime"], "localhost:5001");
        assert_eq!(v["hostFromClusterNetwork"], "samestack-registry:5000");
    }
}
