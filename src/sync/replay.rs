//! Synced files for pods that were not there when they were synced: a container that restarted
//! or a new pod (scale-up, eviction, a pod deleted by hand) starts from the image, which holds
//! none of the edits synced since the service's last build. [`Synced`] keeps, per service, what
//! was synced since that build (pure); [`Containers`] notices app containers that became ready
//! and have not received it (pure); [`watch`] feeds it the pods' changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ::kube::Api;
use ::kube::runtime::{WatchStreamExt, watcher};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::plan::Copy;
use super::pods;

/// What was synced into one service's pods since its image was last built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Record {
    /// Container path → local source (read again when re-sent: its content now).
    files: BTreeMap<String, PathBuf>,
    /// Container paths removed (a directory's files are covered by it).
    deletions: BTreeSet<String>,
}

/// Per service, the files and deletions synced since its last build.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    services: BTreeMap<String, Record>,
}

/// What a fresh container of a service needs to match the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub files: Vec<Copy>,
    /// Removed before the files are written (a file may have come back under a removed
    /// directory).
    pub deletions: Vec<String>,
}

impl Synced {
    /// A sync of `files` and `deletions` into `service`'s pods (whether every pod took it or
    /// not: it is what the pods should hold).
    pub fn record(&mut self, service: &str, files: &[Copy], deletions: &[String]) {
        let record = self.services.entry(service.to_string()).or_default();
        for gone in deletions {
            let under = format!("{}/", gone.trim_end_matches('/'));
            record.files.retain(|remote, _| remote != gone && !remote.starts_with(&under));
            record.deletions.retain(|d| !d.starts_with(&under));
            record.deletions.insert(gone.clone());
        }
        for file in files {
            record.deletions.remove(&file.remote);
            record.files.insert(file.remote.clone(), file.local.clone());
        }
    }

    /// `service`'s image was built again from the files on disk: it holds every sync.
    pub fn built(&mut self, service: &str) {
        self.services.remove(service);
    }

    /// What a fresh container of `service` misses; None when nothing was synced since the build.
    pub fn replay(&self, service: &str) -> Option<Replay> {
        let record = self.services.get(service).filter(|r| !r.files.is_empty() || !r.deletions.is_empty())?;
        Some(Replay {
            files: record
                .files
                .iter()
                .map(|(remote, local)| Copy { local: local.clone(), remote: remote.clone() })
                .collect(),
            deletions: record.deletions.iter().cloned().collect(),
        })
    }
}

/// A ready app container that has not received the service's syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    pub service: String,
    pub pod: String,
    /// True for a container that restarted in a pod seen before; false for a new pod.
    pub restarted: bool,
}

/// The app container each pod ran when it last received the syncs (or when `dev` started), by
/// pod UID (pure).
#[derive(Debug, Clone, Default)]
pub struct Containers {
    seen: BTreeMap<String, String>,
}

impl Containers {
    /// Takes in one pod's state: its app container ([`pods::container_of`]) when it is ready and not
    /// the one last seen. The pods there when `dev` started were seen first, with `initial`
    /// set, so they never count (they run the image just built).
    pub fn observe(&mut self, service: &str, pod: &Pod, initial: bool) -> Option<Fresh> {
        let uid = pod.metadata.uid.clone()?;
        let container = app_container_id(pod, service)?;
        if initial {
            self.seen.insert(uid, container);
            return None;
        }
        if !pods::is_ready(pod) || self.seen.get(&uid) == Some(&container) {
            return None;
        }
        let before = self.seen.insert(uid, container);
        Some(Fresh { service: service.into(), pod: pod.metadata.name.clone()?, restarted: before.is_some() })
    }

    /// A pod that went away.
    pub fn forget(&mut self, pod: &Pod) {
        if let Some(uid) = &pod.metadata.uid {
            self.seen.remove(uid);
        }
    }
}

/// The container ID of the running container of `service` ([`pods::container_of`]).
fn app_container_id(pod: &Pod, service: &str) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let name = pods::container_of(pod, service);
    let status = statuses.iter().find(|s| s.name == name)?;
    status.state.as_ref()?.running.as_ref()?;
    status.container_id.clone()
}

/// Watches the pods matching `selector` (their service by [`pods::service_of`]) and sends every fresh app container of `services` on `fresh`, until dropped.
pub async fn watch(
    client: ::kube::Client,
    namespace: String,
    selector: String,
    services: BTreeSet<String>,
    fresh: mpsc::UnboundedSender<Fresh>,
) {
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&selector);
    let mut events = std::pin::pin!(watcher(pods, config).default_backoff());
    let mut containers = Containers::default();
    // Until the first listing is complete, the pods are the ones `dev` started with.
    let mut initial = true;
    let service_of = |pod: &Pod| pods::service_of(pod).filter(|s| services.contains(*s)).map(String::from);
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(watcher::Event::InitDone) => {
                initial = false;
                continue;
            }
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                containers.forget(&pod);
                continue;
            }
            Ok(watcher::Event::Init) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "watching pods for fresh containers");
                continue;
            }
        };
        let Some(service) = service_of(&pod) else { continue };
        if let Some(found) = containers.observe(&service, &pod, initial)
            && fresh.send(found).is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn copy(local: &str, remote: &str) -> Copy {
        Copy { local: local.into(), remote: remote.into() }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_replay_holds_every_sync_since_the_build_latest_first() {
        let mut synced = Synced::default();
        assert_eq!(synced.replay("api"), None);
        synced.record("api", &[copy("/p/api/app.py", "/app/app.py"), copy("/p/api/old.py", "/app/old.py")], &[]);
        synced.record("api", &[copy("/p/api/app.py", "/app/app.py")], &strings(&["/app/old.py", "/app/db.py"]));
        synced.record("web", &[copy("/p/web/i.html", "/www/i.html")], &[]);
        let replay = synced.replay("api").unwrap();
        assert_eq!(replay.files, [copy("/p/api/app.py", "/app/app.py")]);
        assert_eq!(replay.deletions, strings(&["/app/db.py", "/app/old.py"]));
        // A file that comes back is written, no longer removed.
        synced.record("api", &[copy("/p/api/db.py", "/app/db.py")], &[]);
        let replay = synced.replay("api").unwrap();
        assert_eq!(replay.files, [copy("/p/api/app.py", "/app/app.py"), copy("/p/api/db.py", "/app/db.py")]);
        assert_eq!(replay.deletions, strings(&["/app/old.py"]));
        // A build takes it all into the image; other services keep theirs.
        synced.built("api");
        assert_eq!(synced.replay("api"), None);
        assert_eq!(synced.replay("web").unwrap().files.len(), 1);
    }

    #[test]
    fn a_removed_directory_covers_what_was_synced_under_it() {
        let mut synced = Synced::default();
        synced.record("api", &[copy("/p/api/pkg/a.py", "/app/pkg/a.py"), copy("/p/api/pkgs.py", "/app/pkgs.py")], &[]);
        synced.record("api", &[], &strings(&["/app/pkg/sub/x.py"]));
        synced.record("api", &[], &strings(&["/app/pkg"]));
        let replay = synced.replay("api").unwrap();
        assert_eq!(replay.files, [copy("/p/api/pkgs.py", "/app/pkgs.py")], "a sibling with the same prefix stays");
        assert_eq!(replay.deletions, strings(&["/app/pkg"]));
        // A file written under it afterwards: removed first, then written.
        synced.record("api", &[copy("/p/api/pkg/b.py", "/app/pkg/b.py")], &[]);
        let replay = synced.replay("api").unwrap();
        assert_eq!(replay.deletions, strings(&["/app/pkg"]));
        assert!(replay.files.contains(&copy("/p/api/pkg/b.py", "/app/pkg/b.py")));
    }

    fn pod(uid: &str, container: Option<&str>, ready: bool) -> Pod {
        let state = match container {
            Some(_) => json!({ "running": { "startedAt": "2026-12-02T15:00:00Z" } }),
            None => json!({ "waiting": { "reason": "ContainerCreating" } }),
        };
        serde_json::from_value(json!({
            "metadata": { "name": format!("api-{uid}"), "uid": uid },
            "status": {
                "phase": "Running",
                "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
                "containerStatuses": [
                    { "name": "sidecar", "containerID": "containerd://other", "image": "", "imageID": "",
                      "ready": true, "restartCount": 0, "state": { "running": {} } },
                    { "name": "api", "containerID": container, "image": "", "imageID": "",
                      "ready": ready, "restartCount": 0, "state": state }]
            }
        }))
        .unwrap()
    }

    #[test]
    fn fresh_containers_are_new_pods_and_restarts_once_ready() {
        let mut c = Containers::default();
        // The pods of the start never count, not even when they turn ready later.
        assert_eq!(c.observe("api", &pod("a", Some("c1"), false), true), None);
        assert_eq!(c.observe("api", &pod("a", Some("c1"), true), false), None);
        assert_eq!(c.observe("api", &pod("a", Some("c1"), true), false), None, "the same container again");
        // A new pod: counted once, when its container runs and the pod is ready.
        assert_eq!(c.observe("api", &pod("b", None, false), false), None);
        assert_eq!(c.observe("api", &pod("b", Some("c2"), false), false), None);
        let fresh = c.observe("api", &pod("b", Some("c2"), true), false);
        assert_eq!(fresh, Some(Fresh { service: "api".into(), pod: "api-b".into(), restarted: false }));
        assert_eq!(c.observe("api", &pod("b", Some("c2"), true), false), None);
        // The first pod's container restarts: counted as a restart once ready again.
        assert_eq!(c.observe("api", &pod("a", Some("c3"), false), false), None);
        let fresh = c.observe("api", &pod("a", Some("c3"), true), false);
        assert_eq!(fresh, Some(Fresh { service: "api".into(), pod: "api-a".into(), restarted: true }));
        // Forgotten when it goes; a pod of the same name later is another pod (another UID).
        c.forget(&pod("a", Some("c3"), true));
        assert!(c.observe("api", &pod("a2", Some("c4"), true), false).is_some());
    }
}
