//! The pods' logs, streamed while `dev` runs, each line prefixed with `service/pod` (coloured
//! per service on a terminal only). One watch on the project's pods finds new pods and
//! restarted containers; each container start gets its own follow stream, which ends by
//! itself when the container does.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;

use ::kube::Api;
use ::kube::api::LogParams;
use ::kube::runtime::{WatchStreamExt, watcher};
use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;

/// Colours cycled through the services (256-colour palette).
const COLOURS: &[u8] = &[39, 208, 40, 170, 220, 45, 197, 118];

/// What to stream.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub namespace: String,
    /// The project's pods, built-in and from its manifests ([`super::pods::project_selector`]).
    pub selector: String,
    /// Services whose logs are shown (the pods [`super::pods::service_of`] gives them).
    pub services: Vec<String>,
    /// Colour the prefixes (stderr is a terminal).
    pub colour: bool,
}

/// `service/pod` as printed before each line.
pub fn prefix(service: &str, pod: &str, colour: Option<u8>) -> String {
    let text = format!("{service}/{pod}");
    match colour {
        Some(c) => console::style(text).color256(c).force_styling(true).to_string(),
        None => text,
    }
}

/// Streams until dropped. A failed watch is retried by the watcher itself (with backoff).
pub async fn stream(client: ::kube::Client, settings: LogSettings) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &settings.namespace);
    let colours: BTreeMap<&str, u8> =
        settings.services.iter().enumerate().map(|(i, s)| (s.as_str(), COLOURS[i % COLOURS.len()])).collect();
    let started = k8s_openapi::jiff::Timestamp::now();
    let config = watcher::Config::default().labels(&settings.selector);
    let events = watcher(pods.clone(), config).default_backoff();
    let mut events = std::pin::pin!(events);
    // (pod uid, container restart count): a container start already streaming.
    let mut streaming: HashSet<(String, i32)> = HashSet::new();
    let mut streams = tokio::task::JoinSet::new();
    loop {
        let event = tokio::select! {
            event = events.try_next() => event,
            Some(_) = streams.join_next(), if !streams.is_empty() => continue,
        };
        let pod = match event {
            Ok(Some(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => pod,
            Ok(Some(_)) => continue,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%e, "pod watch for logs");
                continue;
            }
        };
        let Some(service) = super::pods::service_of(&pod).map(str::to_owned) else { continue };
        let container = super::pods::container_of(&pod, &service).to_owned();
        let Some(&colour) = colours.get(service.as_str()) else { continue };
        let (Some(name), Some(uid)) = (pod.metadata.name.clone(), pod.metadata.uid.clone()) else { continue };
        for status in pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()) {
            let running = status.state.as_ref().and_then(|s| s.running.as_ref());
            let Some(running) = running else { continue };
            if status.name != container || !streaming.insert((uid.clone(), status.restart_count)) {
                continue;
            }
            // A container that started before `dev` did: only what it logs from now on.
            let since = running.started_at.as_ref().map(|t| t.0).filter(|t| *t < started).map(|_| started);
            let params = LogParams {
                container: Some(status.name.clone()),
                follow: true,
                since_time: since,
                ..LogParams::default()
            };
            let prefix = prefix(&service, &name, settings.colour.then_some(colour));
            let pods = pods.clone();
            let name = name.clone();
            streams.spawn(async move {
                let Ok(reader) = pods.log_stream(&name, &params).await else { return };
                let mut lines = reader.lines();
                while let Some(Ok(line)) = lines.next().await {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{prefix} | {line}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn prefixes_are_plain_without_a_terminal() {
        assert_eq!(prefix("api", "api-5d8-x2", None), "api/api-5d8-x2");
        let coloured = prefix("api", "api-5d8-x2", Some(39));
        assert!(coloured.contains("\u{1b}[") && coloured.contains("api/api-5d8-x2"), "{coloured:?}");
    }
}
