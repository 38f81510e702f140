//! Checks `up` runs before it creates anything: every host port the stack will publish is
//! free, or already held by this project's own containers (a re-run). A taken port is
//! reported with who holds it, and nothing is created.
//!
//! "Own" containers carry the `dev.samestack.project` label, or are the nodes kind or k3d made
//! for this project's cluster: those CLIs label their nodes with the cluster name only.

use std::collections::HashMap;

use bollard::Docker as Client;

use crate::cluster::k3d::K3D_CLUSTER_LABEL;
use crate::cluster::kind::KIND_CLUSTER_LABEL;

use crate::docker::{self, LABEL_PROJECT};
use crate::ports;

/// A host port the stack needs, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPort {
    pub port: u16,
    /// e.g. "the registry (registry.host_port)".
    pub purpose: String,
}

/// Who holds a port now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortUse {
    Free,
    /// A container; `project` is its `dev.samestack.project` label.
    Container {
        name: String,
        project: Option<String>,
    },
    Process {
        description: String,
    },
}

/// Preflight failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Docker(#[from] docker::Error),
    /// Ports the stack needs are held by something else; nothing was created.
    #[error("{}", format_taken(.taken))]
    PortsTaken { taken: Vec<(WantedPort, String)> },
}

impl crate::error::Classify for Error {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Error::Docker(e) => crate::error::Classify::kind(e),
            Error::PortsTaken { .. } => crate::error::ErrorKind::Environment,
        }
    }
}
crate::classify!(Error);

fn format_taken(taken: &[(WantedPort, String)]) -> String {
    let mut out = String::from("host ports samestack needs are taken (nothing was created):");
    for (wanted, holder) in taken {
        out.push_str(&format!("\n  127.0.0.1:{} for {}: in use by {holder}", wanted.port, wanted.purpose));
    }
    out.push_str("\n  fix: stop what holds them, or choose other ports in samestack.yaml");
    out
}

/// Pure: which wanted ports block `up`. A port held by a container of `project` is ours
/// (a previous `up`), so it does not block.
pub fn blocking(project: &str, uses: &[(WantedPort, PortUse)]) -> Vec<(WantedPort, String)> {
    uses.iter()
        .filter_map(|(wanted, use_)| {
            let holder = match use_ {
                PortUse::Free => return None,
                PortUse::Container { project: Some(p), .. } if p == project => return None,
                PortUse::Container { name, .. } => format!("container `{name}`"),
                PortUse::Process { description } => description.clone(),
            };
            Some((wanted.clone(), holder))
        })
        .collect()
}

/// Pure: the project a container belongs to, from its labels: its `dev.samestack.project`
/// label, else `project` when it is a kind or k3d node of `cluster` (this project's cluster).
pub fn owning_project(labels: Option<&HashMap<String, String>>, project: &str, cluster: &str) -> Option<String> {
    let labels = labels?;
    if let Some(owner) = labels.get(LABEL_PROJECT) {
        return Some(owner.clone());
    }
    [KIND_CLUSTER_LABEL, K3D_CLUSTER_LABEL]
        .iter()
        .any(|key| labels.get(*key).is_some_and(|c| c == cluster))
        .then(|| project.to_string())
}

/// Looks up who holds each wanted port, then fails with every blocking one at once. `cluster`
/// is the project's cluster name (kind and k3d nodes carry only that).
pub async fn check_ports(client: &Client, project: &str, cluster: &str, wanted: &[WantedPort]) -> Result<(), Error> {
    let mut uses = Vec::with_capacity(wanted.len());
    for w in wanted {
        let containers = docker::containers_publishing(client, w.port).await?;
        let use_ = match containers.first() {
            Some(c) => PortUse::Container {
                name: docker::container_name(c),
                project: owning_project(c.labels.as_ref(), project, cluster),
            },
            None if bound_by_own_container(client, project, cluster, w.port).await? => PortUse::Container {
                name: "this project's own container (starting)".into(),
                project: Some(project.to_string()),
            },
            None => {
                let port = w.port;
                match tokio::task::spawn_blocking(move || ports::process_listening_on(port)).await.ok().flatten() {
                    Some((pid, command)) => PortUse::Process { description: format!("process {pid} ({command})") },
                    None if ports::is_free(port) => PortUse::Free,
                    None => PortUse::Process { description: "a process not visible from here (try `ss -ltnp`)".into() },
                }
            }
        };
        uses.push((w.clone(), use_));
    }
    let taken = blocking(project, &uses);
    if taken.is_empty() { Ok(()) } else { Err(Error::PortsTaken { taken }) }
}

/// True when a container of `project`, in any state, asks for `port` on the host. A run
/// interrupted while the engine was starting one leaves the engine's port proxy listening
/// before the container counts as running; that port is still ours.
async fn bound_by_own_container(client: &Client, project: &str, cluster: &str, port: u16) -> Result<bool, Error> {
    let mut own = docker::find_containers(client, &[(LABEL_PROJECT, project)]).await?;
    for key in [KIND_CLUSTER_LABEL, K3D_CLUSTER_LABEL] {
        own.extend(docker::find_containers(client, &[(key, cluster)]).await?);
    }
    for summary in own {
        let Some(id) = summary.id else { continue };
        let Ok(found) = client.inspect_container(&id, None).await else { continue };
        let wanted = found.host_config.and_then(|h| h.port_bindings).unwrap_or_default();
        let asks = wanted.values().flatten().flatten().any(|b| b.host_port.as_deref() == Some(&port.to_string()));
        if asks {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(port: u16) -> WantedPort {
        WantedPort { port, purpose: "the registry".into() }
    }

    #[test]
    fn kind_and_k3d_nodes_of_the_projects_cluster_are_its_own() {
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let owner = |pairs: &[(&str, &str)]| owning_project(Some(&labels(pairs)), "shop", "dev");
        assert_eq!(owner(&[(LABEL_PROJECT, "other")]), Some("other".into()));
        assert_eq!(owner(&[(KIND_CLUSTER_LABEL, "dev")]), Some("shop".into()));
        assert_eq!(owner(&[(K3D_CLUSTER_LABEL, "dev")]), Some("shop".into()));
        assert_eq!(owner(&[(KIND_CLUSTER_LABEL, "elsewhere")]), None);
        assert_eq!(owner(&[]), None);
        assert_eq!(owning_project(None, "shop", "dev"), None);
    }

    #[test]
    fn free_ports_and_our_own_containers_do_not_block() {
        let uses = vec![
            (wanted(5001), PortUse::Free),
            (wanted(8080), PortUse::Container { name: "samestack-shop-server-0".into(), project: Some("shop".into()) }),
        ];
        assert!(blocking("shop", &uses).is_empty());
    }

    #[test]
    fn other_projects_containers_and_processes_block_with_their_names() {
        let uses = vec![
            (wanted(5001), PortUse::Container { name: "other-registry".into(), project: Some("blog".into()) }),
            (wanted(8080), PortUse::Process { description: "process 42 (nginx)".into() }),
            (wanted(9090), PortUse::Container { name: "db".into(), project: None }),
        ];
        let taken = blocking("shop", &uses);
        assert_eq!(taken.len(), 3);
        let message = Error::PortsTaken { taken }.to_string();
        assert!(message.contains("127.0.0.1:5001 for the registry: in use by container `other-registry`"), "{message}");
        assert!(message.contains("process 42 (nginx)"), "{message}");
        assert!(message.contains("fix:"), "{message}");
    }
}
