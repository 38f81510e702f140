//! The one Docker Engine API client (bollard) and helpers every Docker-facing module shares:
//! connecting (with `DOCKER_HOST` and API version negotiation), ownership labels, finding
//! containers, networks and volumes by label, create-if-missing for volumes and networks (a
//! network name is never duplicated), and removing a container whose cgroups were left frozen.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as ApiError;
use std::path::{Path, PathBuf};

use bollard::models::{ContainerSummary, Network, NetworkCreateRequest, Volume, VolumeCreateRequest};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
};

/// The bollard client, shared by value (it is a cheap handle to one connection pool).
pub type Client = bollard::Docker;

/// Label naming the samestack project that owns a Docker object.
pub use crate::labels::PROJECT as LABEL_PROJECT;
/// Label naming what an owned object is for (`registry`, `node`, ...).
pub use crate::labels::ROLE as LABEL_ROLE;

/// Where the engine listens when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Requests that stream (builds, pushes) can wait a long time for their first response byte
/// while a large context uploads; bollard's 2-minute default is too short for that.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Failures talking to the Docker engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No daemon answers at the configured address.
    #[error(
        "Docker is not running: {cause} (at {host}); start it with `sudo systemctl start docker` \
         (or start Docker Desktop), or point DOCKER_HOST at a running engine"
    )]
    NotRunning {
        host: String,
        cause: String,
        #[source]
        source: Option<ApiError>,
    },
    /// The engine answered but refused or failed a request.
    #[error("Docker engine request failed: {action}")]
    Api {
        action: String,
        #[source]
        source: ApiError,
    },
}

impl crate::error::Classify for Error {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Environment
    }
}
crate::classify!(Error);

impl Error {
    /// Wraps an API error with what samestack was doing; a lost connection becomes [`Error::NotRunning`].
    pub fn api(action: impl Into<String>, source: ApiError) -> Self {
        if is_connection_lost(&source) {
            return Error::NotRunning { host: host(), cause: describe(&source), source: Some(source) };
        }
        Error::Api { action: action.into(), source }
    }
}

/// The address samestack talks to: `DOCKER_HOST`, or the default local socket.
pub fn host() -> String {
    std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// Connects to the engine (honouring `DOCKER_HOST`), checks that it answers and negotiates the
/// API version down to what the engine speaks.
pub async fn connect() -> Result<Client, Error> {
    connect_to(&host()).await
}

/// Like [`connect`], to an explicit address (`unix:///path`, `tcp://host:port`).
pub async fn connect_to(host: &str) -> Result<Client, Error> {
    let host = host.to_string();
    let client = Client::connect_with_host(&host).map_err(|source| Error::NotRunning {
        host: host.clone(),
        cause: describe(&source),
        source: Some(source),
    })?;
    let client = client.with_timeout(REQUEST_TIMEOUT);
    client.negotiate_version().await.map_err(|source| Error::NotRunning {
        host,
        cause: describe(&source),
        source: Some(source),
    })
}

/// True when an error means the daemon went away (socket gone, connection reset), as opposed to
/// the daemon answering with an error.
pub fn is_connection_lost(err: &ApiError) -> bool {
    matches!(
        err,
        ApiError::IOError { .. }
            | ApiError::HyperResponseError { .. }
            | ApiError::HyperLegacyError { .. }
            | ApiError::SocketNotFoundError(_)
            | ApiError::RequestTimeoutError
    )
}

/// True when the engine answered 404 (no such container, image, volume, network).
pub fn is_not_found(err: &ApiError) -> bool {
    matches!(err, ApiError::DockerResponseServerError { status_code: 404, .. })
}

/// True when the engine answered 409 (name already in use, object in use).
pub fn is_conflict(err: &ApiError) -> bool {
    matches!(err, ApiError::DockerResponseServerError { status_code: 409, .. })
}

/// The engine's own message for an error it answered with, else the error's display.
pub fn describe(err: &ApiError) -> String {
    match err {
        ApiError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        ApiError::SocketNotFoundError(path) => format!("no socket at {path}"),
        ApiError::IOError { err } => root_cause(err),
        ApiError::HyperLegacyError { err } => root_cause(err),
        other => root_cause(other),
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `image` with `:latest` added when it names neither a tag nor a digest (the API would
/// otherwise pull every tag of the repository).
pub fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') { image.to_string() } else { format!("{image}:latest") }
}

/// Pulls `image`; the error is the engine's (a stream error carries its message).
pub async fn pull(client: &Client, image: &str) -> Result<(), ApiError> {
    use futures_util::StreamExt;
    let options =
        bollard::query_parameters::CreateImageOptionsBuilder::new().from_image(&with_default_tag(image)).build();
    let mut events = client.create_image(Some(options), None, None);
    while let Some(event) = events.next().await {
        event?;
    }
    Ok(())
}

/// Labels that mark an object as owned by `project` for `role`.
pub fn owner_labels(project: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([(LABEL_PROJECT.to_string(), project.to_string()), (LABEL_ROLE.to_string(), role.to_string())])
}

/// Containers (running or not) carrying every `key=value` label given.
pub async fn find_containers(client: &Client, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, Error> {
    let filters: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    containers_labelled(client, &filters).await
}

/// The one label query for containers: all of them (running or not) matching every Docker
/// label filter given (`key=value`, or `key` for "has the label").
pub async fn containers_labelled(client: &Client, filters: &[String]) -> Result<Vec<ContainerSummary>, Error> {
    let filters = HashMap::from([("label", filters.to_vec())]);
    let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    client.list_containers(Some(options)).await.map_err(|e| Error::api("list containers by label", e))
}

/// Running containers publishing `host_port` (TCP) on any host address.
pub async fn containers_publishing(client: &Client, host_port: u16) -> Result<Vec<ContainerSummary>, Error> {
    let filters = HashMap::from([("publish", vec![format!("{host_port}/tcp")])]);
    let options = ListContainersOptionsBuilder::new().filters(&filters).build();
    let found = client.list_containers(Some(options)).await.map_err(|e| Error::api("list containers by port", e))?;
    // The `publish` filter matches container ports too on some engines; keep real host bindings.
    Ok(found.into_iter().filter(|c| c.ports.iter().flatten().any(|p| p.public_port == Some(host_port))).collect())
}

/// A container's first name without the leading slash, else its short id.
pub fn container_name(summary: &ContainerSummary) -> String {
    summary
        .names
        .iter()
        .flatten()
        .next()
        .map(|n| n.trim_start_matches('/').to_string())
        .or_else(|| summary.id.as_ref().map(|id| id.chars().take(12).collect()))
        .unwrap_or_else(|| "<unnamed>".to_string())
}

/// Creates the named volume unless it exists; an existing one is left as it is.
pub async fn ensure_volume(client: &Client, name: &str, labels: HashMap<String, String>) -> Result<(), Error> {
    match client.inspect_volume(name).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => {
            let request =
                VolumeCreateRequest { name: Some(name.to_string()), labels: Some(labels), ..Default::default() };
            client.create_volume(request).await.map(|_| ()).map_err(|e| Error::api(format!("create volume {name}"), e))
        }
        Err(e) => Err(Error::api(format!("inspect volume {name}"), e)),
    }
}

/// Creates the named bridge network unless it exists; returns its id.
pub async fn ensure_network(client: &Client, name: &str, labels: HashMap<String, String>) -> Result<String, Error> {
    if let Some(existing) = keep_one_network(client, name).await? {
        return Ok(existing.id.unwrap_or_default());
    }
    let request = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".to_string()),
        labels: Some(labels),
        ..Default::default()
    };
    create_network_unique(client, request).await
}

/// Networks called exactly `name` (the engine's name filter matches substrings), the one
/// [`create_network_unique`] keeps first.
pub async fn networks_named(client: &Client, name: &str) -> Result<Vec<Network>, Error> {
    let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
    let options = ListNetworksOptions { filters: Some(filters) };
    let found =
        client.list_networks(Some(options)).await.map_err(|e| Error::api(format!("list networks {name}"), e))?;
    let mut found: Vec<Network> = found.into_iter().filter(|n| n.name.as_deref() == Some(name)).collect();
    found.sort_by_key(network_age_key);
    Ok(found)
}

/// Oldest first; the id breaks ties, so every racer picks the same network.
fn network_age_key(network: &Network) -> (Option<k8s_openapi::jiff::Timestamp>, String) {
    let created = network.created.as_ref().and_then(|c| c.parse().ok());
    (created, network.id.clone().unwrap_or_default())
}

/// Creates a network, never a second one of the same name. Engines before API 1.44 create a
/// duplicate unless the request says `CheckDuplicate`, which bollard's request type cannot say;
/// two `up`s at once then each made one ("network ... is ambiguous"). So: create, then keep the
/// oldest network of that name and remove the others (ours or a racer's) that nothing uses.
/// Returns the id of the network to use.
pub async fn create_network_unique(client: &Client, request: NetworkCreateRequest) -> Result<String, Error> {
    let name = request.name.clone();
    let created = match client.create_network(request).await {
        Ok(created) => created.id,
        // Engines that check names (API 1.44+) refuse the second: use the first.
        Err(e) if is_conflict(&e) => String::new(),
        Err(e) => return Err(Error::api(format!("create network {name}"), e)),
    };
    match keep_one_network(client, &name).await? {
        Some(kept) => Ok(kept.id.unwrap_or_default()),
        // A racer's `down` removed it meanwhile; ours is what there is.
        None if !created.is_empty() => Ok(created),
        None => Err(Error::Api {
            action: format!("create network {name}"),
            source: ApiError::DockerResponseServerError { status_code: 404, message: "the network vanished".into() },
        }),
    }
}

/// Keeps the oldest network called `name` and removes the younger ones nothing is attached to
/// (left by earlier races); returns the one kept, `None` when there is none.
pub async fn keep_one_network(client: &Client, name: &str) -> Result<Option<Network>, Error> {
    let mut found = networks_named(client, name).await?.into_iter();
    let Some(kept) = found.next() else { return Ok(None) };
    for extra in found {
        let Some(id) = extra.id.as_deref() else { continue };
        // In use (a racer attached a container already): it stays, and whoever uses it keeps it.
        match client.remove_network(id).await {
            Ok(()) => tracing::info!(network = name, id, "removed a duplicate network"),
            Err(e) => tracing::debug!(network = name, id, error = %describe(&e), "duplicate network left"),
        }
    }
    Ok(Some(kept))
}

/// Networks carrying every `key=value` label given.
pub async fn find_networks(client: &Client, labels: &[(&str, &str)]) -> Result<Vec<Network>, Error> {
    let filters = HashMap::from([("label".to_string(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect())]);
    let options = ListNetworksOptions { filters: Some(filters) };
    client.list_networks(Some(options)).await.map_err(|e| Error::api("list networks by label", e))
}

/// Volumes carrying every `key=value` label given.
pub async fn find_volumes(client: &Client, labels: &[(&str, &str)]) -> Result<Vec<Volume>, Error> {
    let filters = HashMap::from([("label".to_string(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect())]);
    let options = ListVolumesOptions { filters: Some(filters) };
    let list = client.list_volumes(Some(options)).await.map_err(|e| Error::api("list volumes by label", e))?;
    Ok(list.volumes.unwrap_or_default())
}

/// Where the engine's cgroup v1 freezer and the cgroup v2 tree keep a container's cgroups,
/// for the cgroupfs and the systemd drivers.
pub fn container_cgroup_dirs(root: &Path, id: &str) -> Vec<PathBuf> {
    vec![
        root.join("freezer/docker").join(id),
        root.join("freezer/system.slice").join(format!("docker-{id}.scope")),
        root.join("docker").join(id),
        root.join("system.slice").join(format!("docker-{id}.scope")),
    ]
}

/// Thaws every frozen cgroup under `dirs` (cgroup v1 `freezer.state`, v2 `cgroup.freeze`);
/// returns how many it thawed. A pod's cgroup inside a node left FROZEN (seen with cgroup v1)
/// keeps its processes in state D: the engine's kill never gets an exit event and the node
/// container cannot be removed until it is thawed.
pub fn thaw_cgroups(dirs: &[PathBuf]) -> usize {
    fn walk(dir: &Path, thawed: &mut usize) {
        let v1 = dir.join("freezer.state");
        if std::fs::read_to_string(&v1).is_ok_and(|s| s.trim() != "THAWED") && std::fs::write(&v1, "THAWED").is_ok() {
            *thawed += 1;
        }
        let v2 = dir.join("cgroup.freeze");
        if std::fs::read_to_string(&v2).is_ok_and(|s| s.trim() == "1") && std::fs::write(&v2, "0").is_ok() {
            *thawed += 1;
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&entry.path(), thawed);
            }
        }
    }
    let mut thawed = 0;
    for dir in dirs {
        walk(dir, &mut thawed);
    }
    thawed
}

/// Where cgroups are mounted on this host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How often [`remove_container`] tries before it gives up.
const REMOVE_ATTEMPTS: usize = 3;

/// Force-removes a container with its anonymous volumes; absent is fine. When the engine
/// cannot kill it ("did not receive an exit event": frozen cgroups), thaws its cgroups and tries
/// again. Thawing needs the engine on this host and write access to its cgroups (root); without,
/// the error says what to do.
pub async fn remove_container(client: &Client, name: &str) -> Result<(), Error> {
    let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match client.remove_container(name, Some(options.clone())).await {
            Ok(()) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            // Someone else's removal of it is already under way: wait for it below.
            Err(e) => e,
        };
        let id = match client.inspect_container(name, None).await {
            Ok(inspect) => inspect.id.unwrap_or_else(|| name.to_string()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(_) => name.to_string(),
        };
        let thawed =
            tokio::task::spawn_blocking(move || thaw_cgroups(&container_cgroup_dirs(Path::new(CGROUP_ROOT), &id)))
                .await
                .unwrap_or(0);
        tracing::warn!(container = name, attempt, thawed, error = %describe(&err), "could not remove the container; thawed its frozen cgroups, trying again");
        if attempt >= REMOVE_ATTEMPTS {
            return Err(Error::Api {
                action: format!(
                    "remove container {name} ({attempt} attempts; if its processes hang in a frozen cgroup, write THAWED to the freezer.state files under {CGROUP_ROOT}/freezer/docker/<its id>, then `docker rm -f {name}`)"
                ),
                source: err,
            });
        }
        tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_name_a_tag() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(with_default_tag("registry:2"), "registry:2");
        assert_eq!(with_default_tag("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn owner_labels_carry_project_and_role() {
        let labels = owner_labels("shop", "registry");
        assert_eq!(labels[LABEL_PROJECT], "shop");
        assert_eq!(labels[LABEL_ROLE], "registry");
    }

    #[test]
    fn not_running_message_says_how_to_start_docker() {
        let err =
            Error::NotRunning { host: "unix:///x.sock".into(), cause: "no socket at /x.sock".into(), source: None };
        let msg = err.to_string();
        assert!(msg.starts_with("Docker is not running: no socket at /x.sock"), "{msg}");
        assert!(msg.contains("sudo systemctl start docker"), "{msg}");
    }

    #[test]
    fn frozen_cgroups_anywhere_under_a_container_are_thawed() {
        let root = tempfile::tempdir().unwrap();
        let dirs = container_cgroup_dirs(root.path(), "abc");
        let pod = dirs[0].join("kubepods.slice/kubepods-besteffort.slice/cri-containerd-1.scope");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::write(dirs[0].join("freezer.state"), "THAWED\n").unwrap();
        std::fs::write(pod.join("freezer.state"), "FROZEN\n").unwrap();
        let v2 = dirs[3].join("kubepods");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cgroup.freeze"), "1\n").unwrap();
        assert_eq!(thaw_cgroups(&dirs), 2);
        assert_eq!(std::fs::read_to_string(pod.join("freezer.state")).unwrap(), "THAWED");
        assert_eq!(std::fs::read_to_string(v2.join("cgroup.freeze")).unwrap(), "0");
        assert_eq!(thaw_cgroups(&dirs), 0, "nothing frozen any more");
        assert_eq!(thaw_cgroups(&container_cgroup_dirs(root.path(), "gone")), 0);
    }

    #[test]
    fn the_oldest_network_of_a_name_is_kept_whatever_the_timestamps_precision() {
        let net = |id: &str, created: &str| Network {
            id: Some(id.into()),
            created: Some(created.to_string()),
            ..Default::default()
        };
        // RFC 3339 with trailing zeros trimmed: `.12` is earlier than `.123`, not later.
        let mut found = vec![net("b", "2026-12-02T05:40:01.123Z"), net("c", "2026-12-02T05:40:01.12Z")];
        found.push(net("a", "2026-12-02T05:40:01.123Z"));
        found.sort_by_key(network_age_key);
        let ids: Vec<_> = found.iter().map(|n| n.id.clone().unwrap()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }

    #[test]
    fn server_errors_are_classified_by_status() {
        let e = ApiError::DockerResponseServerError { status_code: 404, message: "No such image".into() };
        assert!(is_not_found(&e) && !is_conflict(&e) && !is_connection_lost(&e));
        assert_eq!(describe(&e), "No such image");
    }
}
