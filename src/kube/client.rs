//! The connection to one cluster: the one builder of kube-rs clients ([`connect`]: from an
//! [`Access`], with connect and read timeouts), and [`KubeClient`], a client with a cached API
//! discovery that maps apiVersion/kind to a resource and its scope.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, DynamicObject};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use ::kube::{Client, Config};
use tokio::sync::Mutex;

use super::object::{group_of, version_of};
use super::{Error, Result};

/// A cluster that answers locally connects in milliseconds; a dead one should not hang a
/// command for minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// No single API response takes this long on a healthy cluster (lists, applies, logs tails).
/// Long-lived streams (exec, port-forward) stay open: each write resets it, and kube pings
/// every 60 s.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// How to reach a cluster's API server from the host.
#[derive(Debug, Clone)]
pub enum Access {
    /// A single-context kubeconfig (YAML) samestack owns, server address reachable from the host.
    Kubeconfig { yaml: String, context: String },
    /// A context in the user's own kubeconfig (the `existing` provider): `path` `None` =
    /// kube's own lookup (`KUBECONFIG`, else `~/.kube/config`); `context` `None` = its current one.
    UserContext { path: Option<PathBuf>, context: Option<String> },
}

/// The one way samestack builds a kube-rs client: from `access`, with [`CONNECT_TIMEOUT`] and
/// [`READ_TIMEOUT`]. Returns the client and the API server's URL. Nothing is sent yet.
pub async fn connect(access: &Access) -> Result<(Client, String)> {
    let (mut config, shown) = match access {
        Access::Kubeconfig { yaml, context } => {
            let yaml_error = |source| Error::KubeconfigYaml { context: context.clone(), source };
            let file = Kubeconfig::from_yaml(yaml).map_err(yaml_error)?;
            let options = KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
            let config = Config::from_custom_kubeconfig(file, &options).await.map_err(yaml_error)?;
            (config, PathBuf::from(format!("(samestack's kubeconfig of context {context})")))
        }
        Access::UserContext { path, context } => {
            let shown = path.clone().unwrap_or_else(|| PathBuf::from("$KUBECONFIG or ~/.kube/config"));
            let kubeconfig_error = |source| Error::Kubeconfig { path: shown.clone(), context: context.clone(), source };
            let options = KubeConfigOptions { context: context.clone(), ..Default::default() };
            let config = match path {
                Some(path) => {
                    let file = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
                    Config::from_custom_kubeconfig(file, &options).await
                }
                None => Config::from_kubeconfig(&options).await,
            }
            .map_err(kubeconfig_error)?;
            (config, shown)
        }
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|source| Error::Client { path: shown, source })?;
    Ok((client, server))
}

/// A connected cluster. Cheap to share by reference; the discovery is fetched once and
/// refreshed after CRDs are applied.
pub struct KubeClient {
    client: Client,
    server: String,
    discovery: Mutex<Option<Arc<Vec<Discovery>>>>,
}

/// A resolved resource type: how to address it, and whether it is namespaced.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub resource: ApiResource,
    pub capabilities: ApiCapabilities,
}

impl ResourceType {
    pub fn namespaced(&self) -> bool {
        self.capabilities.scope == Scope::Namespaced
    }
}

impl KubeClient {
    /// Connects to the cluster of `context` (the file's current context when None) in the
    /// kubeconfig at `kubeconfig`. Nothing is sent to the server yet.
    pub async fn connect(kubeconfig: &Path, context: Option<&str>) -> Result<Self> {
        let access = Access::UserContext { path: Some(kubeconfig.to_path_buf()), context: context.map(str::to_string) };
        Self::for_access(&access).await
    }

    /// Connects through [`connect`]. Nothing is sent to the server yet.
    pub async fn for_access(access: &Access) -> Result<Self> {
        let (client, server) = connect(access).await?;
        Ok(Self::from_client(client, server))
    }

    /// Wraps an existing kube-rs client (`server` is only used in messages).
    pub fn from_client(client: Client, server: impl Into<String>) -> Self {
        Self { client, server: server.into(), discovery: Mutex::new(None) }
    }

    /// The underlying kube-rs client, for calls this module does not wrap (exec, port-forward).
    pub fn raw(&self) -> &Client {
        &self.client
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server's Kubernetes version ("v1.34.4"); fails with [`Error::Unreachable`].
    pub async fn server_version(&self) -> Result<String> {
        let info = self.client.apiserver_version().await.map_err(|source| self.unreachable(source))?;
        Ok(info.git_version)
    }

    pub(crate) fn unreachable(&self, source: ::kube::Error) -> Error {
        Error::Unreachable { server: self.server.clone(), source }
    }

    /// The cached discovery, fetched on first use.
    pub(crate) async fn discovery(&self) -> Result<Arc<Vec<Discovery>>> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let fresh = Arc::new(self.discover().await?);
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Aggregated discovery (two requests, Kubernetes 1.26+). When that fails, group by group,
    /// skipping groups that do not answer: one broken aggregated API (a metrics server that is
    /// down) or a CRD being registered at this moment must not stop an apply.
    async fn discover(&self) -> Result<Vec<Discovery>> {
        match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) => return Ok(vec![d]),
            Err(err) => tracing::debug!(%err, "aggregated discovery failed; discovering group by group"),
        }
        let groups = self.client.list_api_groups().await.map_err(|s| self.unreachable(s))?;
        let names: Vec<String> =
            std::iter::once(String::new()).chain(groups.groups.into_iter().map(|g| g.name)).collect();
        let mut found = Vec::new();
        for name in names {
            match Discovery::new(self.client.clone()).filter(&[name.as_str()]).run().await {
                Ok(d) => found.push(d),
                Err(err) if name.is_empty() => return Err(self.unreachable(err)),
                Err(err) => tracing::warn!(group = %name, %err, "API group does not answer discovery; skipped"),
            }
        }
        Ok(found)
    }

    /// Forgets the cached discovery (after CRDs were established, new kinds exist).
    pub(crate) async fn forget_discovery(&self) {
        *self.discovery.lock().await = None;
    }

    /// Resolves an apiVersion/kind through discovery.
    pub(crate) async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<ResourceType>> {
        let gvk = GroupVersionKind::gvk(group_of(api_version), version_of(api_version), kind);
        Ok(self
            .discovery()
            .await?
            .iter()
            .find_map(|d| d.resolve_gvk(&gvk))
            .map(|(resource, capabilities)| ResourceType { resource, capabilities }))
    }

    /// Whether discovery serves `kind` in `group` (any version).
    pub(crate) async fn serves(&self, group: &str, kind: &str) -> Result<bool> {
        Ok(self.discovery().await?.iter().any(|d| d.get(group).is_some_and(|g| g.recommended_kind(kind).is_some())))
    }

    /// Every resource type in its group's preferred version that supports `verbs`.
    pub(crate) async fn types_supporting(&self, verbs: &[&str]) -> Result<Vec<ResourceType>> {
        let discovery = self.discovery().await?;
        Ok(discovery
            .iter()
            .flat_map(|d| d.groups())
            .flat_map(|g| g.recommended_resources())
            .filter(|(_, caps)| verbs.iter().all(|v| caps.supports_operation(v)))
            .map(|(resource, capabilities)| ResourceType { resource, capabilities })
            .collect())
    }

    /// An untyped API handle for a type, in `namespace` when the type is namespaced.
    pub(crate) fn api(&self, ty: &ResourceType, namespace: Option<&str>) -> Api<DynamicObject> {
        match (ty.namespaced(), namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ty.resource),
            _ => Api::all_with(self.client.clone(), &ty.resource),
        }
    }
}
