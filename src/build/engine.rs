//! The I/O with the Docker engine for builds: streaming the context tar into a build, reading
//! its output, pushing, looking images up, and removing old or purged ones. The decisions
//! (what a step log says, which tags are stale, registry names) are pure, in `log` and `names`.

use std::collections::HashMap;
use std::io::{self, Write};

use bollard::errors::Error as ApiError;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::log::{StepLog, build_failure};
use super::names::{parse_push_digest, sortable_time, stale_tags};
use super::progress::ServiceBar;
use super::*;
use crate::docker::{self, Client};

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
pub(super) async fn prune_old_images(client: &Client, repository: &str, current: &str, keep: usize) {
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

pub(super) async fn local_image_id(client: &Client, reference: &str) -> Result<Option<String>, Error> {
    match client.inspect_image(reference).await {
        Ok(image) => Ok(image.id),
        Err(e) if docker::is_not_found(&e) => Ok(None),
        Err(e) => Err(docker::Error::api(format!("inspect image {reference}"), e).into()),
    }
}

/// Streams the tar of `scan` into the build request and follows the engine's output.
pub(super) async fn build_image(
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

/// Pushes `repository:tag`; returns the manifest digest the registry stored. A push whose
/// stream breaks while the engine still answers is made once more (the registry keeps the
/// layers that arrived, so the second push sends only the rest); an engine that no longer
/// answers is [`Error::DaemonLost`].
pub(super) async fn push_image(
    client: &Client,
    service: &str,
    repository: &str,
    tag: &str,
    bar: &ServiceBar,
) -> Result<Pushed, Error> {
    match push_once(client, service, repository, tag, bar).await {
        Err(Error::DaemonLost { cause, .. }) if client.ping().await.is_ok() => {
            tracing::warn!(service, "the engine broke off pushing {repository}:{tag} ({cause}); pushing again");
            push_once(client, service, repository, tag, bar).await
        }
        other => other,
    }
}

async fn push_once(
    client: &Client,
    service: &str,
    repository: &str,
    tag: &str,
    bar: &ServiceBar,
) -> Result<Pushed, Error> {
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
    let mut uploaded = 0usize;
    while let Some(event) = events.next().await {
        match event {
            Ok(info) => {
                let status = info.status.unwrap_or_default();
                if status == "Pushed" || status == "Layer already exists" || status.starts_with("Mounted from") {
                    uploaded += usize::from(status == "Pushed");
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
    let digest = digest.ok_or_else(|| Error::PushFailed {
        service: service.to_string(),
        reference,
        message: "the engine did not report a manifest digest".to_string(),
    })?;
    Ok(Pushed { digest, layers: done as usize, uploaded })
}

/// What a push did.
pub(super) struct Pushed {
    /// The manifest digest in the registry.
    pub digest: String,
    /// Layers the push went through.
    pub layers: usize,
    /// Of those, the layers it uploaded; the others the registry had already (a cache from an
    /// earlier run, or another service's push of a shared base).
    pub uploaded: usize,
}

pub(super) const CHUNK: usize = 64 * 1024;

/// Blocking `Write` into the request body channel, in 64 KiB chunks.
pub(super) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(super) fn send(&mut self) -> io::Result<()> {
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
