//! Image builds: scan each service's context (`.dockerignore` honoured), name the image by a
//! digest of its inputs, skip the build when that image already exists locally and in the
//! registry, otherwise build through the Docker API from a streamed tar and push with progress.
//! Several services build in parallel, with a bound.
//!
//! Pure: `context` (the tar's entries and digest), `dockerfile` (base images), `ignore`,
//! `names` (registry references, stale tags) and `log` (what a build's output says). I/O:
//! `engine` (build, push, look up, remove) and `progress` (bars); this module plans and runs them.

mod context;
mod dockerfile;
mod engine;
pub mod ignore;
mod log;
mod names;
mod progress;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

pub use context::{Entry, EntryKind, Scan, scan};
pub use dockerfile::base_images;
pub use engine::remove_project_images;
pub use ignore::IgnoreRules;
pub use names::registry_reference;
pub use progress::Progress;

use engine::{build_image, local_image_id, prune_old_images, push_image};
use names::{registry_path, repository_of};
use progress::ServiceBar;

use crate::docker::{self, Client};
use crate::registry;

/// Label carrying the input digest on every image samestack builds.
pub use crate::labels::INPUT_DIGEST as LABEL_INPUT_DIGEST;
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
    /// Layers the push went through (0 when nothing was pushed).
    pub layers_pushed: usize,
    /// Of those, the layers uploaded; the rest the registry already had (e.g. from a
    /// `--registry-cache` an earlier run filled).
    pub layers_uploaded: usize,
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
    #[error(
        "cannot query the local registry on 127.0.0.1:{port} for service `{service}`: is its container stopped?\n  fix: `samestack status` shows the registry; `samestack up` starts a stopped one (or `docker start` it)"
    )]
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
        let digest = push_image(client, image, &repository, &tag, &ServiceBar(None)).await?.digest;
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
        layers_pushed: 0,
        layers_uploaded: 0,
    };
    // With a registry, what the nodes run is pulled from there: when it holds this input
    // digest's image, no local copy is needed (a CI runner whose engine is new but whose
    // `--registry-cache` an earlier job filled has none). Without one, the local image is it.
    let unchanged = if options.registry_port.is_some() { remote.is_some() } else { local.is_some() };
    if unchanged {
        tracing::info!(%service, %reference, local = local.is_some(), "unchanged, build skipped");
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
        let pushed = push_image(client, &service, &spec.repository, &tag, &bar).await?;
        outcome.registry_digest = Some(pushed.digest);
        outcome.layers_pushed = pushed.layers;
        outcome.layers_uploaded = pushed.uploaded;
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
