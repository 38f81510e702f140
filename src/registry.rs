//! The local OCI registry container: create or reuse (label-owned, idempotent), health-check,
//! say who holds its port when it is taken, remove. Also the few registry HTTP calls samestack
//! needs (`/v2/` health, manifest lookups), over a minimal HTTP/1.1 client for 127.0.0.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::docker::{self, Client, LABEL_PROJECT, LABEL_ROLE};

/// The registry image used when neither the spec nor `SAMESTACK_REGISTRY_IMAGE` names one.
pub const DEFAULT_IMAGE: &str = "registry:2";
/// Environment variable overriding the registry image (offline and air-gapped machines).
pub const IMAGE_ENV: &str = "SAMESTACK_REGISTRY_IMAGE";
/// The port the registry listens on inside its container (and on cluster networks).
pub const CONTAINER_PORT: u16 = 5000;
/// Value of the role label on the registry container and its volume.
pub const ROLE: &str = "registry";
/// Where the registry keeps its data inside the container (the `registry:2` contract).
const DATA_DIR: &str = "/var/lib/registry";
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// What the caller wants: mapped by `up` from the project file.
#[derive(Debug, Clone)]
pub struct RegistrySpec {
    /// Container name, e.g. `samestack-registry` or `<project>-registry`.
    pub name: String,
    /// Host port on 127.0.0.1 the registry is published on.
    pub host_port: u16,
    /// The image, as the settings resolved it (flag, `SAMESTACK_REGISTRY_IMAGE`, the project
    /// file); `None` or blank: [`DEFAULT_IMAGE`].
    pub image: Option<String>,
    /// Project that owns the container (label `dev.samestack.project`).
    pub project: String,
    /// A host directory for the registry's data instead of the named volume (`--registry-cache`):
    /// CI runners cache directories between jobs, not volumes. Kept by `down --purge` and `ci`'s
    /// teardown; the registry then runs as the invoking user, so what it writes is theirs.
    /// Checked by [`check_cache_dir`] when the settings are resolved.
    pub cache: Option<PathBuf>,
}

impl RegistrySpec {
    /// The image to run: the spec's, else `registry:2`.
    pub fn resolved_image(&self) -> String {
        self.image.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_IMAGE).to_string()
    }

    /// The named volume holding the registry's data.
    pub fn volume(&self) -> String {
        volume_name(&self.name)
    }

    /// What is mounted at the registry's data directory: the cache directory, else the volume.
    fn data_source(&self) -> String {
        match &self.cache {
            Some(dir) => dir.display().to_string(),
            None => self.volume(),
        }
    }
}

/// The data volume of the registry container `name`.
pub fn volume_name(name: &str) -> String {
    format!("{name}-data")
}

/// A running, healthy registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub name: String,
    pub container_id: String,
    pub image: String,
    pub host_port: u16,
    /// What [`ensure`] had to do.
    pub action: Action,
}

impl Registry {
    /// How Docker on this host pushes to it: `localhost:<port>`.
    pub fn host_address(&self) -> String {
        format!("localhost:{}", self.host_port)
    }
}

/// What [`ensure`] did to get a healthy registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It was running and healthy: nothing changed.
    Reused,
    /// It existed but was stopped: started.
    Started,
    /// It did not exist (or its settings changed): created and started.
    Created,
}

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Docker(#[from] docker::Error),
    /// The host port is held by something else.
    #[error(
        "cannot publish the registry on 127.0.0.1:{port}: the port is already in use by {holder}; \
         stop it or choose another registry port in samestack.yaml"
    )]
    PortTaken { port: u16, holder: String },
    /// A container with the registry's name exists but samestack does not own it.
    #[error(
        "a container named `{name}` already exists and is not a samestack registry ({owner}); \
         remove it (`docker rm -f {name}`) or choose another registry name"
    )]
    NameTaken { name: String, owner: String },
    /// The image is not present and could not be pulled.
    #[error(
        "registry image `{image}` is not available locally and could not be pulled: {cause}; \
         load it with `docker load`, or set {IMAGE_ENV} to a local registry image"
    )]
    ImageUnavailable { image: String, cause: String },
    /// The container disappeared between inspecting and starting it (the engine was still
    /// cleaning up after an interrupted run); [`ensure`] looks again.
    #[error("registry container `{name}` disappeared while being started; run the command again")]
    Vanished { name: String },
    /// The registry cache directory cannot be used as given.
    #[error(
        "--registry-cache {}: {problem}\n  fix: {fix}", path.display()
    )]
    BadCache { path: PathBuf, problem: String, fix: String },
    /// The registry cache directory could not be created.
    #[error("creating the registry cache directory {}: {source}", path.display())]
    CacheUnwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Started, but `/v2/` never answered.
    #[error(
        "registry `{name}` did not become healthy on 127.0.0.1:{port} within {secs}s (last: {last}); its log ends with:\n{log_tail}"
    )]
    Unhealthy { name: String, port: u16, secs: u64, last: String, log_tail: String },
}

impl crate::error::Classify for Error {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            Error::Docker(e) => e.kind(),
            Error::NameTaken { .. } | Error::BadCache { .. } => ErrorKind::User,
            Error::PortTaken { .. }
            | Error::ImageUnavailable { .. }
            | Error::Unhealthy { .. }
            | Error::Vanished { .. }
            | Error::CacheUnwritable { .. } => ErrorKind::Environment,
        }
    }
}
crate::classify!(Error);

/// Creates the registry container, or reuses the one samestack made before. Idempotent: when it
/// runs with the wanted image and port nothing changes; a stopped one is started; one whose image or
/// port changed is recreated (its data volume is kept). Returns once `GET /v2/` answers.
pub async fn ensure(client: &Client, spec: &RegistrySpec) -> Result<Registry, Error> {
    // A run interrupted mid-create leaves the engine finishing (or cleaning up) that create on
    // its own: the container can vanish between our inspect and our start. One fresh look is
    // enough, since by then the engine is done with it.
    match ensure_once(client, spec).await {
        Err(Error::Vanished { name }) => {
            tracing::info!(%name, "registry container vanished while starting (an interrupted run's leftovers): waiting until the engine is done with it");
            wait_gone(client, &name, VANISH_TIMEOUT).await?;
            ensure_once(client, spec).await
        }
        other => other,
    }
}

/// How long the engine may take to finish removing an interrupted run's half-made container.
const VANISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until no container is called `name` any more.
async fn wait_gone(client: &Client, name: &str, timeout: Duration) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    while inspect(client, name).await?.is_some() {
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Vanished { name: name.to_string() });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn ensure_once(client: &Client, spec: &RegistrySpec) -> Result<Registry, Error> {
    let image = spec.resolved_image();
    let existing = inspect(client, &spec.name).await?;
    let action = match existing {
        Some(found) => {
            let labels = found.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
            check_owner(&spec.name, &spec.project, &labels)?;
            let same = found.config.as_ref().and_then(|c| c.image.as_deref()) == Some(image.as_str())
                && published_port(&found) == Some(spec.host_port)
                && mounted_data(&found).as_deref() == Some(spec.data_source().as_str());
            let running = found.state.as_ref().and_then(|s| s.running).unwrap_or(false);
            match (same, running) {
                (true, true) => Action::Reused,
                (true, false) => {
                    free_port_or_holder(client, spec.host_port).await?;
                    start(client, spec).await?;
                    Action::Started
                }
                (false, _) => {
                    // The new image first: when it cannot be had, the old registry keeps running.
                    ensure_image(client, &image).await?;
                    tracing::info!(name = %spec.name, "registry settings changed: recreating it (its data is kept)");
                    remove_container(client, &spec.name).await?;
                    create(client, spec, &image).await?;
                    Action::Created
                }
            }
        }
        None => {
            create(client, spec, &image).await?;
            Action::Created
        }
    };
    let container_id = inspect(client, &spec.name).await?.and_then(|c| c.id).unwrap_or_default();
    wait_healthy(client, &spec.name, spec.host_port, HEALTH_TIMEOUT).await?;
    Ok(Registry { name: spec.name.clone(), container_id, image, host_port: spec.host_port, action })
}

/// Removes the registry container `name` if samestack owns it; `purge` also removes its data
/// volume. Missing objects are not an error.
pub async fn remove(client: &Client, name: &str, purge: bool) -> Result<(), Error> {
    if let Some(found) = inspect(client, name).await? {
        let labels = found.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        if labels.get(LABEL_ROLE).map(String::as_str) != Some(ROLE) {
            return Err(Error::NameTaken { name: name.to_string(), owner: owner_description(&labels) });
        }
        remove_container(client, name).await?;
    }
    if purge {
        match client.remove_volume(&volume_name(name), None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) => {}
            Err(e) if docker::is_not_found(&e) => {}
            Err(e) => {
                return Err(docker::Error::api(format!("remove volume {}", volume_name(name)), e).into());
            }
        }
    }
    Ok(())
}

fn check_owner(name: &str, project: &str, labels: &HashMap<String, String>) -> Result<(), Error> {
    let ours = labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE)
        && labels.get(LABEL_PROJECT).map(String::as_str) == Some(project);
    if ours { Ok(()) } else { Err(Error::NameTaken { name: name.to_string(), owner: owner_description(labels) }) }
}

fn owner_description(labels: &HashMap<String, String>) -> String {
    match (labels.get(LABEL_PROJECT), labels.get(LABEL_ROLE)) {
        (Some(p), Some(r)) => format!("it belongs to samestack project `{p}` as its {r}"),
        (Some(p), None) => format!("it belongs to samestack project `{p}`"),
        _ => "no samestack labels".to_string(),
    }
}

async fn inspect(client: &Client, name: &str) -> Result<Option<bollard::models::ContainerInspectResponse>, Error> {
    match client.inspect_container(name, None).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if docker::is_not_found(&e) => Ok(None),
        Err(e) => Err(docker::Error::api(format!("inspect container {name}"), e).into()),
    }
}

fn published_port(found: &bollard::models::ContainerInspectResponse) -> Option<u16> {
    let bindings = found.host_config.as_ref()?.port_bindings.as_ref()?;
    let list = bindings.get(&format!("{CONTAINER_PORT}/tcp"))?.as_ref()?;
    list.iter().find_map(|b| b.host_port.as_deref()?.parse().ok())
}

/// The source of what is mounted at the registry's data directory (a volume name or a host path).
fn mounted_data(found: &bollard::models::ContainerInspectResponse) -> Option<String> {
    let binds = found.host_config.as_ref()?.binds.as_ref()?;
    binds.iter().find_map(|b| b.strip_suffix(&format!(":{DATA_DIR}")).map(String::from))
}

async fn create(client: &Client, spec: &RegistrySpec, image: &str) -> Result<(), Error> {
    ensure_image(client, image).await?;
    free_port_or_holder(client, spec.host_port).await?;
    let labels = docker::owner_labels(&spec.project, ROLE);
    // A cache directory is the invoking user's, and so is what the registry writes into it (the
    // runner's cache step must read it back); a volume is the engine's, and the image's user
    // writes it.
    let user = match &spec.cache {
        Some(dir) => {
            create_cache_dir(dir)?;
            Some(format!("{}:{}", rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw()))
        }
        None => {
            docker::ensure_volume(client, &spec.volume(), labels.clone()).await?;
            None
        }
    };
    let port_key = format!("{CONTAINER_PORT}/tcp");
    let host_config = HostConfig {
        port_bindings: Some(HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(spec.host_port.to_string()) }]),
        )])),
        binds: Some(vec![format!("{}:{DATA_DIR}", spec.data_source())]),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        user,
        labels: Some(labels),
        exposed_ports: Some(vec![port_key]),
        // Lets `up --purge`-style cleanups delete pushed images; matches common local setups.
        env: Some(vec!["REGISTRY_STORAGE_DELETE_ENABLED=true".into()]),
        host_config: Some(host_config),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&spec.name).build();
    match client.create_container(Some(options), body).await {
        Ok(_) => {}
        // Created concurrently by another samestack run: treat like an existing one.
        Err(e) if docker::is_conflict(&e) => {}
        Err(e) => {
            return Err(docker::Error::api(format!("create registry container {}", spec.name), e).into());
        }
    }
    start(client, spec).await
}

async fn start(client: &Client, spec: &RegistrySpec) -> Result<(), Error> {
    match client.start_container(&spec.name, None).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let message = docker::describe(&e);
            if message.contains("address already in use") || message.contains("port is already allocated") {
                // Lost a race for the port: do not leave a created-but-dead container behind.
                let holder = crate::ports::holder(client, spec.host_port).await;
                let _ = remove_container(client, &spec.name).await;
                return Err(Error::PortTaken { port: spec.host_port, holder });
            }
            if docker::is_not_found(&e) {
                return Err(Error::Vanished { name: spec.name.clone() });
            }
            Err(docker::Error::api(format!("start registry container {}", spec.name), e).into())
        }
    }
}

async fn remove_container(client: &Client, name: &str) -> Result<(), Error> {
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    match client.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if docker::is_not_found(&e) => Ok(()),
        Err(e) => Err(docker::Error::api(format!("remove container {name}"), e).into()),
    }
}

async fn ensure_image(client: &Client, image: &str) -> Result<(), Error> {
    match client.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if docker::is_not_found(&e) => {}
        Err(e) => return Err(docker::Error::api(format!("inspect image {image}"), e).into()),
    }
    tracing::info!(%image, "pulling the registry image");
    match docker::pull(client, image).await {
        Ok(()) => Ok(()),
        Err(e) if docker::is_connection_lost(&e) => Err(docker::Error::api("pull", e).into()),
        Err(e) => Err(Error::ImageUnavailable { image: image.to_string(), cause: docker::describe(&e) }),
    }
}

/// Checks a `--registry-cache` directory before anything is created, and returns it absolute
/// (the engine mounts host paths, not relative ones). It may be missing (the registry step
/// creates it, `0700`); an existing one must be a directory this user owns (the runner's cache
/// step reads it back as this user) that others cannot write (they could plant images the
/// cluster then runs).
pub fn check_cache_dir(path: &Path) -> Result<PathBuf, Error> {
    use std::os::unix::fs::MetadataExt as _;
    let bad = |problem: String, fix: String| Error::BadCache { path: path.to_path_buf(), problem, fix };
    let absolute = std::path::absolute(path)
        .map_err(|e| bad(format!("cannot be made absolute: {e}"), "give an absolute path".into()))?;
    if absolute.to_str().is_none_or(|p| p.contains(':') || p.contains(',')) {
        return Err(bad(
            "the path has a ':' or ',' or is not UTF-8, which the engine's mount syntax cannot carry".into(),
            "choose a directory without them".into(),
        ));
    }
    let meta = match std::fs::metadata(&absolute) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(absolute),
        Err(e) => return Err(bad(format!("cannot be read: {e}"), "choose a directory you can read".into())),
    };
    if !meta.is_dir() {
        return Err(bad(
            "exists and is not a directory".into(),
            "name a directory (it is created when missing)".into(),
        ));
    }
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid {
        return Err(bad(
            format!("is owned by uid {}, not by you (uid {uid})", meta.uid()),
            format!("`chown -R {uid} {}`, or choose a directory of your own", absolute.display()),
        ));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(bad(
            format!("is writable by every user (mode {:o})", meta.mode() & 0o7777),
            format!("`chmod o-w {}`", absolute.display()),
        ));
    }
    Ok(absolute)
}

/// Creates a missing cache directory readable by this user only (an existing one is left as is).
fn create_cache_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::CacheUnwritable { path: dir.to_path_buf(), source })
}

/// Ok when 127.0.0.1:`port` can be bound; otherwise [`Error::PortTaken`] naming the holder.
async fn free_port_or_holder(client: &Client, port: u16) -> Result<(), Error> {
    // Other bind failures (permissions for low ports...) are for the engine to report.
    if crate::ports::is_taken(port) {
        return Err(Error::PortTaken { port, holder: crate::ports::holder(client, port).await });
    }
    Ok(())
}

/// Polls `GET /v2/` until the registry answers 200 (or 401: up, with auth) or `timeout` passes.
pub async fn wait_healthy(client: &Client, name: &str, port: u16, timeout: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match http_request(port, "GET", "/v2/", &[]).await {
            Ok(resp) if resp.status == 200 || resp.status == 401 => return Ok(()),
            Ok(resp) => last = format!("HTTP {}", resp.status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::Unhealthy {
        name: name.to_string(),
        port,
        secs: timeout.as_secs(),
        last,
        log_tail: log_tail(client, name).await,
    })
}

async fn log_tail(client: &Client, name: &str) -> String {
    let options = LogsOptionsBuilder::new().stdout(true).stderr(true).tail("20").build();
    let mut logs = client.logs(name, Some(options));
    let mut out = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out
}

/// The manifest digest of `repository:tag` in the registry at `127.0.0.1:port`, or None when
/// the registry does not have it.
pub async fn manifest_digest(port: u16, repository: &str, tag: &str) -> std::io::Result<Option<String>> {
    const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.index.v1+json";
    let resp = http_request(port, "HEAD", &format!("/v2/{repository}/manifests/{tag}"), &[("Accept", ACCEPT)]).await?;
    match resp.status {
        200 => Ok(Some(resp.header("docker-content-digest").unwrap_or_default().to_string())),
        404 => Ok(None),
        other => Err(std::io::Error::other(format!("registry answered HTTP {other} for {repository}:{tag}"))),
    }
}

/// An HTTP response from the registry: status and headers (bodies are not needed).
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close`; reads the status line and
/// headers. The registry is local and plain HTTP, so a full client library is not needed.
async fn http_request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        parse_head(&buf)
    };
    tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "registry did not answer within 5s"))?
}

fn parse_head(buf: &[u8]) -> std::io::Result<Response> {
    let text = String::from_utf8_lossy(buf);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Response { status, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_headers() {
        let resp =
            parse_head(b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:abc\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("docker-content-digest"), Some("sha256:abc"));
        assert!(parse_head(b"garbage").is_err());
    }

    #[test]
    fn cache_dirs_must_be_directories_of_ones_own_that_others_cannot_write() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("registry");
        assert_eq!(check_cache_dir(&missing).unwrap(), missing, "a missing one is created later");
        create_cache_dir(&missing).unwrap();
        assert_eq!(std::fs::metadata(&missing).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(check_cache_dir(&missing).unwrap(), missing);

        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = check_cache_dir(&file).unwrap_err().to_string();
        assert!(err.contains("not a directory") && err.contains("fix:"), "{err}");

        std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_cache_dir(&missing).unwrap_err();
        assert!(err.to_string().contains("writable by every user") && err.to_string().contains("chmod o-w"), "{err}");
        assert_eq!(crate::error::Classify::kind(&err), crate::error::ErrorKind::User);

        let err = check_cache_dir(Path::new("/tmp/a:b")).unwrap_err().to_string();
        assert!(err.contains("':'"), "{err}");
        // Relative paths are made absolute for the engine.
        assert!(check_cache_dir(Path::new("rel/cache")).unwrap().is_absolute());
    }
}
