//! Syncing into images that have no `tar` or no shell (distroless, `FROM scratch`): an
//! ephemeral container (the `pods/ephemeralcontainers` subresource) in the app's pod, from a
//! small image with `sh` and `tar`, targeting the app container so that it shares its process
//! namespace. The app's process is PID 1 there, so `/proc/1/root` is the app container's root
//! filesystem: files are extracted through it, as the app's own user (the kernel allows a
//! process to reach another's root when both run as the same uid and nothing more is asked).
//!
//! One such container per pod, started once and then reused through exec for every sync (an
//! ephemeral container cannot be removed; it sleeps until the pod goes away, and the next
//! `dev` reuses it). Its security context meets Pod Security `restricted`, so namespaces that
//! enforce it admit it.

use std::time::Duration;

use ::kube::Api;
use ::kube::api::{Patch, PatchParams};
use k8s_openapi::api::core::v1::{ContainerStateWaiting, Pod};
use serde_json::{Value, json};

/// Name of the ephemeral container samestack adds to a pod.
pub const CONTAINER: &str = "samestack-sync";
/// The image of that container when nothing overrides it: upstream busybox (`sh` and `tar`,
/// about 2 MB), pinned.
pub const DEFAULT_IMAGE: &str = "busybox:1.37.0";
/// Environment variable overriding the image.
pub const IMAGE_ENV: &str = "SAMESTACK_SYNC_IMAGE";
/// Where the app container's root filesystem is, seen from the ephemeral container.
pub const TARGET_ROOT: &str = "/proc/1/root";
/// How long a new ephemeral container may take to run (its image may have to be pulled).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a pod cannot get (or keep) a running sync container: the service rebuilds instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The API server refused the ephemeral container (too old, forbidden, admission).
    #[error("the cluster refused an ephemeral container: {message}")]
    Refused { message: String },
    /// Neither the app container, the pod nor the image (a numeric `USER`) says which user
    /// the app runs as.
    #[error(
        "pod {pod} does not set `runAsUser` and its image has no numeric `USER`, so the sync container cannot run as the app's user (Pod Security `restricted` forbids root)\n  fix: set `USER <uid>:<gid>` in the Dockerfile, or `runAsUser` in the pod's security context"
    )]
    NoUser { pod: String },
    /// The ephemeral container did not start.
    #[error("the sync container `{CONTAINER}` (image {image}) did not start: {reason}")]
    NotStarted { image: String, reason: String },
}

/// The ephemeral container for `target` (the app container's name), run as `uid`:`gid`.
/// Pure; what the `restricted` level requires is all here.
pub fn container(image: &str, target: &str, uid: i64, gid: Option<i64>) -> Value {
    let mut security = json!({
        "runAsNonRoot": true,
        "runAsUser": uid,
        "allowPrivilegeEscalation": false,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    });
    if let Some(gid) = gid {
        security["runAsGroup"] = json!(gid);
    }
    json!({
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        // Sleeps until the pod goes; each sync is an exec into it.
        "command": ["sh", "-c", "while :; do sleep 3600; done"],
        "targetContainerName": target,
        "securityContext": security,
    })
}

/// A numeric image `USER` (`10001`, `10001:10001`) as uid and gid; None for a name, which
/// only the image's /etc/passwd can resolve, and for root.
pub fn numeric_user(user: &str) -> Option<(i64, Option<i64>)> {
    let (uid, gid) = match user.trim().split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user.trim(), None),
    };
    let uid: i64 = uid.parse().ok().filter(|u| *u > 0)?;
    match gid {
        None => Some((uid, None)),
        Some(gid) => Some((uid, Some(gid.parse().ok()?))),
    }
}

/// The user the app container runs as: its own `runAsUser`, else the pod's.
pub fn run_as(pod: &Pod, target: &str) -> (Option<i64>, Option<i64>) {
    let Some(spec) = &pod.spec else { return (None, None) };
    let own = spec.containers.iter().find(|c| c.name == target).and_then(|c| c.security_context.as_ref());
    let pod_level = spec.security_context.as_ref();
    let uid = own.and_then(|s| s.run_as_user).or_else(|| pod_level.and_then(|s| s.run_as_user));
    let gid = own.and_then(|s| s.run_as_group).or_else(|| pod_level.and_then(|s| s.run_as_group));
    (uid, gid)
}

/// What the pod's status says of the sync container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not in the pod's spec yet.
    Absent,
    /// In the spec, not running yet (being pulled or created).
    Starting,
    Running,
    /// It will not run: the reason.
    Failed(String),
}

/// Pure: reads the sync container's state from a pod.
pub fn state(pod: &Pod) -> State {
    let declared = pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.name == CONTAINER));
    if !declared {
        return State::Absent;
    }
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.ephemeral_container_statuses.as_ref())
        .and_then(|s| s.iter().find(|s| s.name == CONTAINER));
    let Some(state) = status.and_then(|s| s.state.as_ref()) else { return State::Starting };
    if state.running.is_some() {
        return State::Running;
    }
    if let Some(done) = &state.terminated {
        let why = done.message.clone().or_else(|| done.reason.clone()).unwrap_or_default();
        return State::Failed(format!("it exited with code {} {why}", done.exit_code).trim_end().to_string());
    }
    match &state.waiting {
        Some(ContainerStateWaiting { reason: Some(reason), message }) if is_fatal(reason) => Failed(
            format!("{reason}: {}", message.as_deref().unwrap_or_default()).trim_end_matches([' ', ':']).to_string(),
        ),
        _ => State::Starting,
    }
}
use State::Failed;

/// Waiting reasons that do not resolve by waiting longer.
fn is_fatal(reason: &str) -> bool {
    matches!(
        reason,
        "ErrImagePull"
            | "ImagePullBackOff"
            | "InvalidImageName"
            | "ErrImageNeverPull"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError"
    )
}

/// Makes sure `pod` has a running sync container targeting `target`; adds it when absent, run
/// as the app's user: the pod's `runAsUser`, else `image_user` (the image's numeric `USER`).
pub async fn ensure(
    client: &::kube::Client,
    namespace: &str,
    pod: &Pod,
    target: &str,
    image: &str,
    image_user: Option<(i64, Option<i64>)>,
) -> Result<(), Refusal> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match state(pod) {
        State::Running => return Ok(()),
        Failed(reason) => return Err(Refusal::NotStarted { image: image.into(), reason }),
        State::Starting => {}
        State::Absent => {
            let (uid, gid) = match (run_as(pod, target), image_user) {
                ((Some(uid), gid), _) => (uid, gid),
                ((None, _), Some(user)) => user,
                ((None, _), None) => return Err(Refusal::NoUser { pod: name.clone() }),
            };
            // A strategic merge patch appends to the pod's ephemeral containers.
            let patch = json!({ "spec": { "ephemeralContainers": [container(image, target, uid, gid)] } });
            match pods.patch_ephemeral_containers(&name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                Ok(_) => {}
                // Another sync (or an earlier dev) added it meanwhile.
                Err(::kube::Error::Api(e)) if e.code == 422 && e.message.contains("already") => {}
                Err(::kube::Error::Api(e)) => return Err(Refusal::Refused { message: e.message }),
                Err(e) => return Err(Refusal::Refused { message: e.to_string() }),
            }
        }
    }
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let fresh =
            pods.get(&name).await.map_err(|e| Refusal::NotStarted { image: image.into(), reason: e.to_string() })?;
        match state(&fresh) {
            State::Running => return Ok(()),
            Failed(reason) => return Err(Refusal::NotStarted { image: image.into(), reason }),
            State::Absent => {
                return Err(Refusal::Refused {
                    message: "the pod accepted the patch but lists no such container".into(),
                });
            }
            State::Starting if tokio::time::Instant::now() >= deadline => {
                return Err(Refusal::NotStarted {
                    image: image.into(),
                    reason: format!("not running after {} s", START_TIMEOUT.as_secs()),
                });
            }
            State::Starting => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The script run (through exec) in the sync container: `$1` is `on_change` (may be empty),
/// the rest are paths to delete (removed first, as in [`super::copy`]). Files go under the
/// app's root; `on_change` runs here, in the app's process namespace (`kill -HUP 1` signals
/// the app), since the app's image may have no shell. Exit codes 219/220 are the same as
/// [`super::copy`]'s.
pub const SCRIPT: &str = r#"c=$1; shift
r=/proc/1/root
for p; do rm -rf -- "$r$p" || exit 220; done
tar -x -o -f - -C "$r" || exit 219
[ -z "$c" ] || exec sh -c "$c""#;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStatus, EphemeralContainer};

    #[test]
    fn the_container_meets_pod_security_restricted() {
        let c = container("busybox:1.37.0", "web", 10001, Some(10002));
        let s = &c["securityContext"];
        assert_eq!(s["runAsNonRoot"], true);
        assert_eq!((s["runAsUser"].as_i64(), s["runAsGroup"].as_i64()), (Some(10001), Some(10002)));
        assert_eq!(s["allowPrivilegeEscalation"], false);
        assert_eq!(s["capabilities"]["drop"], json!(["ALL"]));
        assert!(s["capabilities"].get("add").is_none());
        assert_eq!(s["seccompProfile"]["type"], "RuntimeDefault");
        assert!(s.get("privileged").is_none());
        assert_eq!((c["targetContainerName"].as_str(), c["name"].as_str()), (Some("web"), Some(CONTAINER)));
        let parsed: EphemeralContainer = serde_json::from_value(c).expect("a valid EphemeralContainer");
        assert_eq!(parsed.image.as_deref(), Some("busybox:1.37.0"));
        assert!(container("i", "web", 5, None)["securityContext"].get("runAsGroup").is_none());
    }

    #[test]
    fn only_a_numeric_non_root_image_user_counts() {
        assert_eq!(numeric_user("10001"), Some((10001, None)));
        assert_eq!(numeric_user("10001:10002"), Some((10001, Some(10002))));
        assert_eq!(numeric_user("httpd"), None);
        assert_eq!(numeric_user("10001:staff"), None);
        assert_eq!(numeric_user("0"), None);
        assert_eq!(numeric_user(""), None);
    }

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_user_is_the_containers_else_the_pods() {
        let p = pod(json!({ "spec": {
            "securityContext": { "runAsUser": 10001, "runAsGroup": 10001 },
            "containers": [{ "name": "web", "securityContext": { "runAsUser": 999 } }, { "name": "other" }] } }));
        assert_eq!(run_as(&p, "web"), (Some(999), Some(10001)));
        assert_eq!(run_as(&p, "other"), (Some(10001), Some(10001)));
        let none = pod(json!({ "spec": { "containers": [{ "name": "web" }] } }));
        assert_eq!(run_as(&none, "web"), (None, None));
    }

    #[test]
    fn the_state_comes_from_the_spec_and_the_ephemeral_statuses() {
        let declared = json!({ "containers": [{ "name": "web" }], "ephemeralContainers": [{ "name": CONTAINER }] });
        assert_eq!(state(&pod(json!({ "spec": { "containers": [{ "name": "web" }] } }))), State::Absent);
        assert_eq!(state(&pod(json!({ "spec": declared }))), State::Starting);
        let mut running = pod(json!({ "spec": declared }));
        running.status = Some(k8s_openapi::api::core::v1::PodStatus {
            ephemeral_container_statuses: Some(vec![ContainerStatus {
                name: CONTAINER.into(),
                state: Some(ContainerState { running: Some(ContainerStateRunning::default()), ..Default::default() }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(state(&running), State::Running);
        let pulling = pod(json!({ "spec": declared, "status": { "ephemeralContainerStatuses": [
            { "name": CONTAINER, "image": "", "imageID": "", "ready": false, "restartCount": 0,
              "state": { "waiting": { "reason": "ContainerCreating" } } }] } }));
        assert_eq!(state(&pulling), State::Starting);
        let failed = pod(json!({ "spec": declared, "status": { "ephemeralContainerStatuses": [
            { "name": CONTAINER, "image": "", "imageID": "", "ready": false, "restartCount": 0,
              "state": { "waiting": { "reason": "ErrImagePull", "message": "not found" } } }] } }));
        assert_eq!(state(&failed), State::Failed("ErrImagePull: not found".into()));
        let exited = pod(json!({ "spec": declared, "status": { "ephemeralContainerStatuses": [
            { "name": CONTAINER, "image": "", "imageID": "", "ready": false, "restartCount": 0,
              "state": { "terminated": { "exitCode": 127, "reason": "Error" } } }] } }));
        assert_eq!(state(&exited), State::Failed("it exited with code 127 Error".into()));
    }
}
