//! Image builds: scan each service's context (`.dockerignore` honoured), name the image by a
//! digest of its inputs, skip the build when that image already exists locally and in the
//! registry, otherwise build through the Docker API from a streamed tar and push with progress.
//! Several services build in parallel, with a bound.

mod context;
mod dockerfile;
pub mod ignore;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::errors::Error as ApiError;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

pub use context::{Entry, EntryKind, Scan, scan};
pub use dockerfile::base_images;
pub use ignore::IgnoreRules;

use crate::docker::{self, Client};
use crate::registry;

/// Label carrying the input digest on every image samestack builds.
pub const LABEL_INPUT_DIGEST: &str = "dev.samestack.input-digest";
/// Hex characters of the input digest used as the image tag.
pub const TAG_LEN: usize = 12;
/// Lines of a failing step's output kept for the error message.
const OUTPUT_TAIL: usize = 20;

/// One service's image, as `up` maps it from the project file.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Service name, for messages and results.
    pub service: String,
    /// Build context directory.
    pub context: PathBuf,
    /// Dockerfile path, relative to the context (or absolute); `Dockerfile` when None.
    pub dockerfile: Option<PathBuf>,
    /// `--build-arg`s; part of the digest.
    pub build_args: BTreeMap<String, String>,
    /// Image repository including the registry host, e.g. `localhost:5001/shop-api`.
    pub repository: String,
}

impl BuildSpec {
    fn dockerfile_path(&self) -> PathBuf {
        let file = self.dockerfile.clone().unwrap_or_else(|| PathBuf::from("Dockerfile"));
        if file.is_absolute() { file } else { self.context.join(file) }
    }
}

/// How to build a set of services.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Host port of the local registry on 127.0.0.1: images are pushed there and looked up there
    /// to decide whether a build can be skipped. None: build locally only.
    pub registry_port: Option<u16>,
    /// Builds running at once (at least 1).
    pub parallelism: usize,
    /// Extra labels for every built image (e.g. the project).
    pub labels: BTreeMap<String, String>,
    /// After a build, keep this many of the repository's newest samestack-built tags locally
    /// (the new one included) and untag older ones, so a long dev session does not fill the
    /// disk. 0 keeps everything.
    pub keep_images: usize,
    /// Draws one progress line per service when it says bars draw (a terminal, not `--quiet`).
    pub printer: crate::ui::Printer,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            registry_port: None,
            parallelism: 2,
            labels: BTreeMap::new(),
            keep_images: 3,
            printer: crate::ui::Printer::default(),
        }
    }
}

/// What happened to one service's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildAction {
    /// Built (and pushed when a registry was given).
    Built,
    /// Already built locally with this digest; only pushed.
    Pushed,
    /// Unchanged: present locally and in the registry.
    Skipped,
}

/// The result for one service, for `up`'s report and for the manifests.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub service: String,
    /// `repository:tag`, the tag being the first [`TAG_LEN`] hex characters of the input digest.
    pub reference: String,
    pub tag: String,
    /// Full hex sha256 of the build inputs: context files (after `.dockerignore`), Dockerfile,
    /// build arguments and the ids of the base images.
    pub input_digest: String,
    /// Local image id (`sha256:...`).
    pub image_id: String,
    /// Manifest digest in the registry (`sha256:...`), when pushed or found there.
    pub registry_digest: Option<String>,
    pub action: BuildAction,
    /// Files, directories and links sent (after `.dockerignore`).
    pub context_entries: usize,
    pub scan_time: Duration,
    pub build_time: Duration,
    pub push_time: Duration,
}

impl BuildOutcome {
    /// `repository@sha256:...` when the registry digest is known, else `repository:tag`.
    pub fn pinned_reference(&self) -> String {
        match &self.registry_digest {
            Some(digest) => format!("{}@{digest}", repository_of(&self.reference)),
            None => self.reference.clone(),
        }
    }
}

/// Build failures, each saying which service and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Docker(#[from] docker::Error),
    /// The context directory does not exist.
    #[error("build context of service `{service}` not found: {} is not a directory; fix the service's build context path in samestack.yaml", path.display())]
    ContextMissing { service: String, path: PathBuf },
    /// The Dockerfile does not exist.
    #[error("Dockerfile of service `{service}` not found: {}; create it or fix the service's dockerfile path in samestack.yaml", path.display())]
    DockerfileMissing { service: String, path: PathBuf },
    /// A file of the context could not be read.
    #[error("cannot read the build context of service `{service}` at {}", path.display())]
    ContextUnreadable {
        service: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A Dockerfile step failed.
    #[error("building service `{service}` failed at `{step}`: {message}{}", indent_tail(output))]
    StepFailed { service: String, step: String, message: String, output: Vec<String> },
    /// The engine refused the build request itself (bad Dockerfile syntax, unknown base image...).
    #[error("building service `{service}` was refused by Docker: {message}")]
    Rejected { service: String, message: String },
    /// The daemon went away in the middle of a build or push.
    #[error(
        "Docker stopped answering while {activity} service `{service}`: {cause}; start it again \
         (`sudo systemctl start docker`) and rerun — nothing was tagged, the next run starts that image over"
    )]
    DaemonLost { service: String, activity: &'static str, cause: String },
    /// The engine's disk is full.
    #[error(
        "no space left on Docker's disk while building service `{service}`: {message}; free space \
         (`docker system df`, then remove unused images) and rerun"
    )]
    DiskFull { service: String, message: String },
    /// The push to the local registry failed.
    #[error("pushing `{reference}` (service `{service}`) to the local registry failed: {message}")]
    PushFailed { service: String, reference: String, message: String },
    /// An image to preload is not in the local engine.
    #[error(
        "--preload {image}: no such image in the local Docker engine\n  fix: build it, `docker load` it, or `docker pull` it on a machine that can, then run up again"
    )]
    PreloadMissing { image: String },
    /// The registry could not be asked whether it has the image.
    #[error("cannot query the local registry on 127.0.0.1:{port} for service `{service}`")]
    RegistryUnreachable {
        service: String,
        port: u16,
        #[source]
        source: io::Error,
    },
}

fn indent_tail(output: &[String]) -> String {
    if output.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n  last output of that step:");
    for line in output {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}

impl crate::error::Classify for Error {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            Error::Docker(e) => e.kind(),
            Error::ContextMissing { .. }
            | Error::DockerfileMissing { .. }
            | Error::ContextUnreadable { .. }
            | Error::StepFailed { .. }
            | Error::Rejected { .. }
            | Error::PreloadMissing { .. } => ErrorKind::User,
            Error::DaemonLost { .. }
            | Error::DiskFull { .. }
            | Error::PushFailed { .. }
            | Error::RegistryUnreachable { .. } => ErrorKind::Environment,
        }
    }
}
crate::classify!(Error);

/// Copies images from the local engine into the local registry, so that every provider's nodes
/// can pull them (what `kind load docker-image` does for kind alone; offline and air-gapped
/// use). Returns each image with the digest-pinned reference it has in the registry. Pushing an
/// image the registry already has only checks its layers.
pub async fn preload(
    client: &Client,
    images: &[String],
    registry_port: u16,
) -> Result<BTreeMap<String, String>, Error> {
    require_local_images(client, images).await?;
    let mut pinned = BTreeMap::new();
    for image in images {
        let (repository, tag) = registry_reference(image, registry_port);
        let options = bollard::query_parameters::TagImageOptionsBuilder::new().repo(&repository).tag(&tag).build();
        client
            .tag_image(image, Some(options))
            .await
            .map_err(|e| docker::Error::api(format!("tag {image} as {repository}:{tag}"), e))?;
        let digest = push_image(client, image, &repository, &tag, &ServiceBar(None)).await?;
        pinned.insert(image.clone(), format!("{repository}@{digest}"));
    }
    Ok(pinned)
}

/// Fails, naming the first, when an image to preload is not in the local engine (a preflight
/// check: `up` runs it before creating anything).
pub async fn require_local_images(client: &Client, images: &[String]) -> Result<(), Error> {
    for image in images {
        if client.inspect_image(image).await.is_err() {
            return Err(Error::PreloadMissing { image: image.clone() });
        }
    }
    Ok(())
}

/// Pure: where a local image goes in the registry on `port`: its path without any registry
/// host, and its tag (`latest` when it has none).
pub fn registry_reference(image: &str, port: u16) -> (String, String) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (name, tag) = match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (without_digest, "latest"),
    };
    let path = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => name,
    };
    (format!("localhost:{port}/{path}"), tag.to_string())
}

/// Builds (or skips) every service's image, at most `options.parallelism` at once, and pushes to
/// the registry when one is given. Outcomes come back in the order of `specs`. The first failure
/// cancels the builds still running and is returned.
pub async fn build_all(
    client: &Client,
    specs: &[BuildSpec],
    options: &BuildOptions,
) -> Result<Vec<BuildOutcome>, Error> {
    let progress = Arc::new(Progress::new(options.printer.bars()));
    // Builds overlap, pushes take turns: services share base layers, and a layer one push has
    // uploaded is only mounted (not uploaded again) by the next push to the same registry.
    let push_turn = Arc::new(tokio::sync::Mutex::new(()));
    let mut running = futures_util::stream::iter(specs.iter().enumerate())
        .map(|(i, spec)| {
            let (progress, push_turn) = (progress.clone(), push_turn.clone());
            async move { (i, build_service(client, spec, options, &progress, &push_turn).await) }
        })
        .buffer_unordered(options.parallelism.max(1));
    let mut outcomes: Vec<Option<BuildOutcome>> = vec![None; specs.len()];
    while let Some((i, result)) = running.next().await {
        outcomes[i] = Some(result?);
    }
    Ok(outcomes.into_iter().flatten().collect())
}

async fn build_service(
    client: &Client,
    spec: &BuildSpec,
    options: &BuildOptions,
    progress: &Progress,
    push_turn: &tokio::sync::Mutex<()>,
) -> Result<BuildOutcome, Error> {
    let service = spec.service.clone();
    let bar = progress.bar(&service);
    let started = Instant::now();
    let scan = scan_context(spec).await?;
    let input_digest = input_digest(client, &service, &scan, &spec.build_args).await?;
    let scan_time = started.elapsed();
    let tag = input_digest[..TAG_LEN].to_string();
    let reference = format!("{}:{tag}", spec.repository);

    let local = local_image_id(client, &reference).await?;
    let remote = match options.registry_port {
        Some(port) => registry::manifest_digest(port, registry_path(&spec.repository), &tag)
            .await
            .map_err(|source| Error::RegistryUnreachable { service: service.clone(), port, source })?,
        None => None,
    };
    let mut outcome = BuildOutcome {
        service: service.clone(),
        reference: reference.clone(),
        tag: tag.clone(),
        input_digest: input_digest.clone(),
        image_id: local.clone().unwrap_or_default(),
        registry_digest: remote.clone(),
        action: BuildAction::Skipped,
        context_entries: scan.entries.len(),
        scan_time,
        build_time: Duration::ZERO,
        push_time: Duration::ZERO,
    };
    let pushed_already = options.registry_port.is_none() || remote.is_some();
    if local.is_some() && pushed_already {
        tracing::info!(%service, %reference, "unchanged, build skipped");
        bar.finish(format!("{reference} unchanged"));
        return Ok(outcome);
    }

    if local.is_none() {
        let t = Instant::now();
        outcome.image_id = build_image(client, spec, &scan, &input_digest, &reference, options, &bar).await?;
        outcome.build_time = t.elapsed();
        outcome.action = BuildAction::Built;
    } else {
        outcome.action = BuildAction::Pushed;
    }
    if options.registry_port.is_some() {
        bar.message("waiting to push");
        let _turn = push_turn.lock().await;
        let t = Instant::now();
        outcome.registry_digest = Some(push_image(client, &service, &spec.repository, &tag, &bar).await?);
        outcome.push_time = t.elapsed();
    }
    if outcome.action == BuildAction::Built && options.keep_images > 0 {
        prune_old_images(client, &spec.repository, &tag, options.keep_images).await;
    }
    tracing::info!(%service, %reference, build = ?outcome.build_time, push = ?outcome.push_time, "image ready");
    bar.finish(format!("{reference} {}", if outcome.action == BuildAction::Built { "built" } else { "pushed" }));
    Ok(outcome)
}

async fn scan_context(spec: &BuildSpec) -> Result<Scan, Error> {
    let service = spec.service.clone();
    if !spec.context.is_dir() {
        return Err(Error::ContextMissing { service, path: spec.context.clone() });
    }
    let dockerfile = spec.dockerfile_path();
    if !dockerfile.is_file() {
        return Err(Error::DockerfileMissing { service, path: dockerfile });
    }
    // `scan` takes the Dockerfile relative to the context (or absolute), not relative to the
    // working directory as `dockerfile_path` gives it.
    let dockerfile = std::path::absolute(&dockerfile).unwrap_or(dockerfile);
    let (root, args) = (spec.context.clone(), spec.build_args.clone());
    tokio::task::spawn_blocking(move || scan(&root, &dockerfile, &args))
        .await
        .map_err(|e| Error::ContextUnreadable {
            service: service.clone(),
            path: spec.context.clone(),
            source: io::Error::other(e),
        })?
        .map_err(|source| Error::ContextUnreadable { service, path: spec.context.clone(), source })
}

/// The context digest combined with the ids of the Dockerfile's base images, so a rebuilt or
/// moved base tag gives a new tag. A base missing locally is pulled first (the build would pull it
/// anyway), so its id is known now and the digest is the same on the next run.
async fn input_digest(
    client: &Client,
    service: &str,
    scan: &Scan,
    build_args: &BTreeMap<String, String>,
) -> Result<String, Error> {
    use sha2::{Digest, Sha256};
    let text = tokio::fs::read_to_string(&scan.dockerfile).await.map_err(|source| Error::ContextUnreadable {
        service: service.to_string(),
        path: scan.dockerfile.clone(),
        source,
    })?;
    let mut hasher = Sha256::new();
    hasher.update(scan.digest.as_bytes());
    for base in base_images(&text, build_args) {
        let id = match local_image_id(client, &base).await? {
            Some(id) => id,
            None => {
                if let Err(e) = docker::pull(client, &base).await {
                    tracing::debug!(%base, error = %docker::describe(&e), "base image not pullable");
                }
                // Unpullable: leave it to the build to report, which names the step.
                local_image_id(client, &base).await?.unwrap_or_else(|| "absent".to_string())
            }
        };
        hasher.update(format!("\0base\0{base}={id}").as_bytes());
    }
    Ok(context::hex(&hasher.finalize()))
}

/// What `down --purge` removes from the local engine for a project: the images `up` built
/// for it (label `dev.samestack.project`, with all their tags), and tags that point into its
/// registry (`localhost:<port>/...`, e.g. preloaded images) on images that keep another name.
/// An image a container still uses stays. Returns the removed references.
pub async fn remove_project_images(
    client: &Client,
    project: &str,
    registry_port: Option<u16>,
) -> Result<Vec<String>, Error> {
    let images = client
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .map_err(|e| docker::Error::api("listing images", e))?;
    let prefix = registry_port.map(|p| format!("localhost:{p}/"));
    let mut removed = Vec::new();
    for image in &images {
        let tags: Vec<&String> = image.repo_tags.iter().filter(|t| t.as_str() != "<none>:<none>").collect();
        let built = image.labels.get(docker::LABEL_PROJECT).is_some_and(|p| p == project);
        let doomed: Vec<String> = if built {
            vec![image.id.clone()]
        } else {
            let into_registry = |t: &&String| prefix.as_deref().is_some_and(|p| t.starts_with(p));
            let (ours, others): (Vec<&String>, Vec<&String>) = tags.iter().copied().partition(into_registry);
            // An image known only by its registry tag came from elsewhere: leave it.
            if others.is_empty() { Vec::new() } else { ours.into_iter().cloned().collect() }
        };
        for reference in doomed {
            // Forced for built images: all their tags go at once (down removed the containers first).
            let options = bollard::query_parameters::RemoveImageOptionsBuilder::new().force(built).build();
            match client.remove_image(&reference, Some(options), None).await {
                Ok(_) => {
                    removed.push(if built { tags.first().map_or(reference, |t| t.to_string()) } else { reference })
                }
                Err(e) if docker::is_connection_lost(&e) => return Err(docker::Error::api("removing images", e).into()),
                Err(e) => tracing::debug!(%reference, error = %docker::describe(&e), "kept an image"),
            }
        }
    }
    Ok(removed)
}

/// Untags the repository's samestack-built images beyond the `keep` newest (never `current`).
/// Best effort: an image a container still uses stays, and failures are only logged.
async fn prune_old_images(client: &Client, repository: &str, current: &str, keep: usize) {
    let filters =
        HashMap::from([("reference", vec![repository.to_string()]), ("label", vec![LABEL_INPUT_DIGEST.to_string()])]);
    let options = bollard::query_parameters::ListImagesOptionsBuilder::new().filters(&filters).build();
    let Ok(images) = client.list_images(Some(options)).await else {
        return;
    };
    // The list's creation times are whole seconds; inspect gives nanoseconds, which orders
    // builds made within the same second.
    let mut tagged: Vec<(String, String)> = Vec::new();
    for image in &images {
        let created = match client.inspect_image(&image.id).await {
            Ok(inspect) => sortable_time(inspect.created.as_deref().unwrap_or_default()),
            Err(_) => continue,
        };
        for t in &image.repo_tags {
            if let Some((repo, tag)) = t.rsplit_once(':')
                && repo == repository
            {
                tagged.push((tag.to_string(), created.clone()));
            }
        }
    }
    for tag in stale_tags(&tagged, current, keep) {
        let reference = format!("{repository}:{tag}");
        match client.remove_image(&reference, None::<bollard::query_parameters::RemoveImageOptions>, None).await {
            Ok(_) => tracing::debug!(%reference, "removed an old image"),
            Err(e) => {
                tracing::debug!(%reference, error = %docker::describe(&e), "kept an old image")
            }
        }
    }
}

/// An RFC 3339 UTC time (`...:05.12Z`, fraction trimmed as Go prints it) as a string that
/// sorts chronologically: the fraction padded to nanoseconds.
fn sortable_time(rfc3339: &str) -> String {
    let trimmed = rfc3339.trim_end_matches('Z');
    let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    format!("{whole}.{fraction:0<9}")
}

/// Tags to remove: all but the `keep` newest by creation time, never `current`.
fn stale_tags<T: Ord>(tagged: &[(String, T)], current: &str, keep: usize) -> Vec<String> {
    let mut others: Vec<&(String, T)> = tagged.iter().filter(|(t, _)| t != current).collect();
    others.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    others.into_iter().skip(keep.saturating_sub(1)).map(|(t, _)| t.clone()).collect()
}

async fn local_image_id(client: &Client, reference: &str) -> Result<Option<String>, Error> {
    match client.inspect_image(reference).await {
        Ok(image) => Ok(image.id),
        Err(e) if docker::is_not_found(&e) => Ok(None),
        Err(e) => Err(docker::Error::api(format!("inspect image {reference}"), e).into()),
    }
}

/// `localhost:5001/shop/api` → `shop/api`: the repository name as the registry's API sees it.
fn registry_path(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((host, rest)) if host.contains(':') || host.contains('.') || host == "localhost" => rest,
        _ => repository,
    }
}

/// `repo:tag` → `repo` (a `:` inside the registry host is not a tag separator).
fn repository_of(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    }
}

/// Streams the tar of `scan` into the build request and follows the engine's output.
async fn build_image(
    client: &Client,
    spec: &BuildSpec,
    scan: &Scan,
    input_digest: &str,
    reference: &str,
    options: &BuildOptions,
    bar: &ServiceBar,
) -> Result<String, Error> {
    let service = spec.service.clone();
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let producer = {
        let scan = scan.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
            let result = context::write_tar(&scan, &mut writer);
            if let Err(e) = &result {
                let _ = writer.tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            result
        })
    };
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));

    let mut labels: HashMap<String, String> = options.labels.clone().into_iter().collect();
    labels.insert(LABEL_INPUT_DIGEST.to_string(), input_digest.to_string());
    let build_args: HashMap<String, String> = spec.build_args.clone().into_iter().collect();
    let build_options = BuildImageOptionsBuilder::new()
        .dockerfile(&scan.dockerfile_in_tar)
        .t(reference)
        .rm(true)
        .forcerm(true)
        .buildargs(&build_args)
        .labels(&labels)
        .build();

    let mut log = StepLog::default();
    let mut image_id = None;
    let mut events = client.build_image(build_options, None, Some(bollard::body_try_stream(body)));
    let mut failure = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref() {
                    for line in log.push(text) {
                        tracing::debug!(service = %service, "{line}");
                    }
                    bar.message(log.step.as_deref().unwrap_or("sending context"));
                }
                if let Some(id) = info.aux.and_then(|aux| aux.id) {
                    image_id = Some(id);
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(events);
    // A failed context upload surfaces as a transport error: report the real cause.
    if let Ok(Err(source)) = producer.await
        && source.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(Error::ContextUnreadable { service, path: spec.context.clone(), source });
    }
    if let Some(e) = failure {
        return Err(build_failure(&service, e, log));
    }
    match image_id {
        Some(id) => Ok(id),
        // Older engines do not always send the aux id: the tag is authoritative.
        None => local_image_id(client, reference).await?.ok_or_else(|| Error::Rejected {
            service,
            message: format!("the build finished without producing {reference}"),
        }),
    }
}

fn build_failure(service: &str, err: ApiError, log: StepLog) -> Error {
    let service = service.to_string();
    if docker::is_connection_lost(&err) {
        return Error::DaemonLost { service, activity: "building", cause: docker::describe(&err) };
    }
    let message = match &err {
        ApiError::DockerStreamError { error } => error.trim().to_string(),
        other => docker::describe(other),
    };
    if is_disk_full(&message) {
        return Error::DiskFull { service, message };
    }
    match (&err, log.step) {
        (ApiError::DockerStreamError { .. }, Some(step)) => {
            let mut output: Vec<String> = log.output.into_iter().collect();
            if !log.partial.trim().is_empty() {
                output.push(log.partial.trim_end().to_string());
            }
            Error::StepFailed { service, step, message, output }
        }
        _ => Error::Rejected { service, message },
    }
}

fn is_disk_full(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("no space left on device") || lower.contains("disk quota exceeded")
}

/// Follows the classic builder's text output: the current `Step N/M : ...` line and the last
/// lines that step printed.
#[derive(Debug, Default)]
struct StepLog {
    step: Option<String>,
    output: VecDeque<String>,
    partial: String,
}

impl StepLog {
    /// Adds a chunk of output (lines may be split across chunks); returns the complete lines.
    fn push(&mut self, chunk: &str) -> Vec<String> {
        self.partial.push_str(chunk);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            let line = line.trim_end().to_string();
            if line.starts_with("Step ") && line.contains(" : ") {
                self.step = Some(line.clone());
                self.output.clear();
            } else if !line.is_empty()
                && !line.starts_with(" ---> ")
                && !line.starts_with("Removing intermediate container")
            {
                if self.output.len() == OUTPUT_TAIL {
                    self.output.pop_front();
                }
                self.output.push_back(line.clone());
            }
            lines.push(line);
        }
        lines
    }
}

/// Pushes `repository:tag`; returns the manifest digest the registry stored.
async fn push_image(
    client: &Client,
    service: &str,
    repository: &str,
    tag: &str,
    bar: &ServiceBar,
) -> Result<String, Error> {
    let reference = format!("{repository}:{tag}");
    let layers = client
        .inspect_image(&reference)
        .await
        .ok()
        .and_then(|i| i.root_fs)
        .and_then(|r| r.layers)
        .map(|l| l.len())
        .unwrap_or(0);
    bar.start_push(layers as u64);
    let options = PushImageOptionsBuilder::new().tag(tag).build();
    let mut events = client.push_image(repository, Some(options), None);
    let mut digest = None;
    let mut done = 0u64;
    while let Some(event) = events.next().await {
        match event {
            Ok(info) => {
                let status = info.status.unwrap_or_default();
                if status == "Pushed" || status == "Layer already exists" || status.starts_with("Mounted from") {
                    done += 1;
                    bar.layer_done(done);
                } else if status == "Pushing"
                    && let Some(detail) = info.progress_detail
                {
                    bar.layer_bytes(detail.current.unwrap_or(0), detail.total.unwrap_or(0));
                }
                if let Some(d) = parse_push_digest(&status) {
                    digest = Some(d);
                }
            }
            Err(e) if docker::is_connection_lost(&e) => {
                return Err(Error::DaemonLost {
                    service: service.to_string(),
                    activity: "pushing",
                    cause: docker::describe(&e),
                });
            }
            Err(e) => {
                let message = match &e {
                    ApiError::DockerStreamError { error } => error.trim().to_string(),
                    other => docker::describe(other),
                };
                return Err(Error::PushFailed { service: service.to_string(), reference, message });
            }
        }
    }
    digest.ok_or_else(|| Error::PushFailed {
        service: service.to_string(),
        reference,
        message: "the engine did not report a manifest digest".to_string(),
    })
}

/// The engine's last push status reads `<tag>: digest: sha256:<hex> size: <n>`.
fn parse_push_digest(status: &str) -> Option<String> {
    let rest = status.split("digest: ").nth(1)?;
    let digest = rest.split_whitespace().next()?;
    (digest.starts_with("sha256:") && digest.len() == 71).then(|| digest.to_string())
}

const CHUNK: usize = 64 * 1024;

/// Blocking `Write` into the request body channel, in 64 KiB chunks.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading the build context"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Progress display for a set of builds: one line per service on a TTY, nothing otherwise.
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// `bars`: draw them (pass [`crate::ui::Printer::bars`]).
    pub fn new(bars: bool) -> Self {
        Progress { multi: bars.then(MultiProgress::new) }
    }

    fn bar(&self, service: &str) -> ServiceBar {
        let Some(multi) = &self.multi else {
            return ServiceBar(None);
        };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(service.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        ServiceBar(Some(bar))
    }
}

/// One service's line; a no-op without a TTY.
struct ServiceBar(Option<ProgressBar>);

impl ServiceBar {
    fn message(&self, msg: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(msg.to_string());
        }
    }

    fn start_push(&self, layers: u64) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:.bold} pushing [{bar:20}] {pos}/{len} layers {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_length(layers);
            bar.set_position(0);
        }
    }

    fn layer_done(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    fn layer_bytes(&self, current: i64, total: i64) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("{:.1}/{:.1} MB", current as f64 / 1e6, total as f64 / 1e6));
        }
    }

    fn finish(&self, msg: String) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("✓ {prefix:.bold} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.finish_with_message(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_log_tracks_the_current_step_and_its_output_across_split_chunks() {
        let mut log = StepLog::default();
        log.push("Step 1/3 : FROM base\n ---> abc\nStep 2/3 : RUN echo hi && fa");
        log.push("lse\n ---> Running in 123\nhi\nerr li");
        log.push("ne\n");
        assert_eq!(log.step.as_deref(), Some("Step 2/3 : RUN echo hi && false"));
        assert_eq!(log.output, vec!["hi", "err line"]);
    }

    #[test]
    fn step_failure_message_shows_step_and_output() {
        let mut log = StepLog::default();
        log.push("Step 3/5 : RUN make\nmake: *** no rule\n");
        let err = build_failure(
            "api",
            ApiError::DockerStreamError { error: "The command '/bin/sh -c make' returned a non-zero code: 2".into() },
            log,
        );
        let msg = err.to_string();
        assert!(msg.contains("service `api` failed at `Step 3/5 : RUN make`"), "{msg}");
        assert!(msg.contains("make: *** no rule"), "{msg}");
        assert_eq!(crate::error::Classify::kind(&err), crate::error::ErrorKind::User);
    }

    #[test]
    fn disk_full_is_an_environment_error() {
        let err = build_failure(
            "api",
            ApiError::DockerStreamError { error: "write /x: no space left on device".into() },
            StepLog::default(),
        );
        assert!(matches!(err, Error::DiskFull { .. }));
        assert_eq!(crate::error::Classify::kind(&err), crate::error::ErrorKind::Environment);
    }

    #[test]
    fn preloaded_images_keep_their_path_and_tag_under_the_local_registry() {
        assert_eq!(registry_reference("postgres:15.8", 5001), ("localhost:5001/postgres".into(), "15.8".into()));
        assert_eq!(
            registry_reference("samestack-test/postgres", 5001),
            ("localhost:5001/samestack-test/postgres".into(), "latest".into())
        );
        assert_eq!(registry_reference("ghcr.io/acme/db:1", 7), ("localhost:7/acme/db".into(), "1".into()));
        assert_eq!(registry_reference("localhost:5000/x/y:2", 7), ("localhost:7/x/y".into(), "2".into()));
        assert_eq!(registry_reference("acme/db@sha256:abc", 7), ("localhost:7/acme/db".into(), "latest".into()));
    }

    #[test]
    fn push_digest_is_parsed_from_the_final_status() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(parse_push_digest(&format!("0123abcd: digest: {d} size: 1234")), Some(d));
        assert_eq!(parse_push_digest("Pushed"), None);
    }

    #[test]
    fn stale_tags_keep_the_newest_and_the_current() {
        let tagged: Vec<(String, i64)> =
            [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("cur", 0)].iter().map(|(t, c)| (t.to_string(), *c)).collect();
        assert_eq!(stale_tags(&tagged, "cur", 3), vec!["b", "a"]);
        assert_eq!(stale_tags(&tagged, "cur", 1), vec!["d", "c", "b", "a"]);
        assert!(stale_tags(&tagged, "cur", 10).is_empty());
    }

    #[test]
    fn times_sort_chronologically_whatever_their_fraction_length() {
        let a = sortable_time("2026-11-22T04:50:01.12Z");
        let b = sortable_time("2026-11-22T04:50:01.123Z");
        let c = sortable_time("2026-11-22T04:50:02Z");
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn registry_paths_and_repositories() {
        assert_eq!(registry_path("localhost:5001/shop-api"), "shop-api");
        assert_eq!(registry_path("registry.local/a/b"), "a/b");
        assert_eq!(registry_path("shop/api"), "shop/api");
        assert_eq!(repository_of("localhost:5001/shop-api:0123456789ab"), "localhost:5001/shop-api");
        assert_eq!(repository_of("localhost:5001/shop-api"), "localhost:5001/shop-api");
    }
}
