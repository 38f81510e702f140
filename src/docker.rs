//! The one Docker Engine API client (bollard) and helpers every Docker-facing module shares:
//! connecting (with `DOCKER_HOST` and API version negotiation), ownership labels, finding
//! containers by label, and create-if-missing for volumes and networks.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as ApiError;
use bollard::models::{ContainerSummary, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::ListContainersOptionsBuilder;

/// The bollard client, shared by value (it is a cheap handle to one connection pool).
pub type Client = bollard::Docker;

/// Label naming the samestack project that owns a Docker object.
pub const LABEL_PROJECT: &str = "dev.samestack.project";
/// Label naming what an owned object is for (`registry`, `node`, ...).
pub const LABEL_ROLE: &str = "dev.samestack.role";

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
    let filters = HashMap::from([("label", labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())]);
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
    match client.inspect_network(name, None).await {
        Ok(net) => Ok(net.id.unwrap_or_default()),
        Err(e) if is_not_found(&e) => {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".to_string()),
                labels: Some(labels),
                ..Default::default()
            };
            match client.create_network(request).await {
                Ok(created) => Ok(created.id),
                // Created concurrently by another caller: fine, use it.
                Err(e) if is_conflict(&e) => client
                    .inspect_network(name, None)
                    .await
                    .map(|n| n.id.unwrap_or_default())
                    .map_err(|e| Error::api(format!("inspect network {name}"), e)),
                Err(e) => Err(Error::api(format!("create network {name}"), e)),
            }
        }
        Err(e) => Err(Error::api(format!("inspect network {name}"), e)),
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
    fn server_errors_are_classified_by_status() {
        let e = ApiError::DockerResponseServerError { status_code: 404, message: "No such image".into() };
        assert!(is_not_found(&e) && !is_conflict(&e) && !is_connection_lost(&e));
        assert_eq!(describe(&e), "No such image");
    }
}
