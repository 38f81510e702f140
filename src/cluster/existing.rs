//! The `existing` provider: a kubeconfig context the user already has (Docker Desktop,
//! minikube, a remote cluster). samestack never creates, starts or deletes such a cluster;
//! registry wiring is limited to the KEP-1755 ConfigMap, since its nodes are not ours to touch.

use std::path::PathBuf;

use kube::config::Kubeconfig;

use super::{Access, Cluster, ClusterSpec, ClusterState, ClusterStatus, Error, NodeInfo, Provider, RegistryEndpoint};

/// A context of the user's kubeconfig.
pub struct ExistingProvider {
    /// A specific kubeconfig file; `None` = `KUBECONFIG` or `~/.kube/config` (kube-rs rules).
    path: Option<PathBuf>,
    /// The context; `None` = the current context.
    context: Option<String>,
}

impl ExistingProvider {
    pub fn new(path: Option<PathBuf>, context: Option<String>) -> Self {
        ExistingProvider { path, context }
    }

    fn read(&self) -> Result<Kubeconfig, Error> {
        let what =
            self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "KUBECONFIG / ~/.kube/config".into());
        match &self.path {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(|e| Error::KubeconfigInvalid { what, message: e.to_string() })
    }

    /// The context name to use, checked to exist.
    pub fn context(&self) -> Result<String, Error> {
        let kc = self.read()?;
        let path =
            self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the default kubeconfig".into());
        let name = match &self.context {
            Some(c) => c.clone(),
            None => kc
                .current_context
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| Error::ContextNotFound { context: "(current context)".into(), path: path.clone() })?,
        };
        if !kc.contexts.iter().any(|c| c.name == name) {
            return Err(Error::ContextNotFound { context: name, path });
        }
        Ok(name)
    }
}

impl Provider for ExistingProvider {
    fn name(&self) -> &'static str {
        "existing"
    }

    async fn status(&self, _spec: &ClusterSpec) -> Result<ClusterStatus, Error> {
        let state = match self.context() {
            Ok(_) => ClusterState::Running,
            Err(Error::ContextNotFound { .. }) => ClusterState::Absent,
            Err(e) => return Err(e),
        };
        Ok(ClusterStatus { provider: "existing", state, nodes: Vec::new(), api_server: None })
    }

    async fn ensure(&self, spec: &ClusterSpec) -> Result<Cluster, Error> {
        let access = self.access(spec).await?;
        if let Some(registry) = &spec.registry {
            self.wire_registry(spec, registry).await?;
        }
        Ok(Cluster {
            name: spec.name.clone(),
            provider: "existing",
            created: false,
            restart: None,
            access,
            nodes: Vec::new(),
            network: None,
            timings: Vec::new(),
        })
    }

    async fn start(&self, _spec: &ClusterSpec) -> Result<(), Error> {
        Ok(())
    }

    /// Deliberately nothing: the cluster is the user's.
    async fn delete(&self, _spec: &ClusterSpec) -> Result<(), Error> {
        Ok(())
    }

    async fn access(&self, _spec: &ClusterSpec) -> Result<Access, Error> {
        Ok(Access::UserContext { path: self.path.clone(), context: Some(self.context()?) })
    }

    async fn nodes(&self, _spec: &ClusterSpec) -> Result<Vec<NodeInfo>, Error> {
        Ok(Vec::new())
    }

    async fn wire_registry(&self, spec: &ClusterSpec, registry: &RegistryEndpoint) -> Result<(), Error> {
        tracing::warn!(
            "provider `existing`: the cluster's nodes are not samestack's, so their container runtime is not wired to {}; \
             they pull it only if they can reach it themselves",
            registry.host()
        );
        let client = super::client_for(&self.access(spec).await?).await?;
        super::write_local_registry_hosting(&client, registry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:1}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: mine\n  context: {cluster: c, user: u}\ncurrent-context: mine\n";

    #[test]
    fn existing_uses_the_current_or_the_named_context_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, KC).unwrap();
        assert_eq!(ExistingProvider::new(Some(path.clone()), None).context().unwrap(), "mine");
        assert_eq!(ExistingProvider::new(Some(path.clone()), Some("mine".into())).context().unwrap(), "mine");
        let err = ExistingProvider::new(Some(path), Some("other".into())).context().unwrap_err();
        assert!(matches!(&err, Error::ContextNotFound { context, .. } if context == "other"), "{err}");
        assert_eq!(crate::error::Classify::kind(&err), crate::error::ErrorKind::User);
    }
}
