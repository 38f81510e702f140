//! `samestack dev` as a user runs it, on the guestbook example and a real cluster (cluster
//! tier). One long test shares one cluster: a synced edit is served by the same pod (same UID,
//! no restart); new, symlinked, renamed and deleted files reach the pod; ignored files lead to
//! nothing; a 1,000-file burst is one action; `on_change` failing is reported and the loop goes
//! on; an edit outside the sync rules rolls exactly that service (one new ReplicaSet); a pod
//! deleted by hand is forwarded to again and receives what was synced since the build; a
//! cluster refusing ephemeral containers (an admission policy) turns the sync of an image
//! without `tar` into a rebuild, said once; SIGINT ends everything and frees the ports; a
//! second `dev` reuses the registry and the cluster.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::docker_fixture::{BUSYBOX, POSTGRES, PYTHON_BASE, REGISTRY_IMAGE, TRAEFIK};
use crate::support::{Stack, replace_once};

fn cluster_or_skip(test: &str) -> Option<String> {
    crate::support::cluster_or_skip(test, &[PYTHON_BASE, POSTGRES, REGISTRY_IMAGE, TRAEFIK, BUSYBOX])
}

/// The sync container's image: the cluster tier's own busybox (built with the node image).
fn sync_image() -> String {
    crate::support::node_image().replace("/node:", "/cluster-busybox:")
}

/// A service whose image has neither `tar` nor a shell: a static busybox, alone in a
/// `FROM scratch` image, run as `httpd` (the only name it has there).
const SITE_DOCKERFILE: &str = r#"ARG BUSYBOX_IMAGE=busybox:1.37.0
FROM ${BUSYBOX_IMAGE} AS busybox
FROM scratch
COPY --from=busybox /bin/busybox /bin/httpd
COPY --chown=10001:10001 www /www
USER 10001:10001
ENTRYPOINT ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
"#;

/// The `site` service in samestack.yaml: files synced into /www; `on_change` signals the
/// app's process (it runs in the sync container, which shares the app's process namespace).
const SITE_SERVICE: &str = r#"services:
  site:
    build:
      context: ./site
    ports:
      - { name: http, port: 8080 }
    health: { path: /index.html, port: 8080 }
    sync:
      - { from: www, to: /www }
    on_change: "kill -0 1"
"#;

/// Long enough for a cold `up` on a loaded 2-core machine.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(900);
/// A reload: a sync takes about a second, a rebuild with a rollout much longer.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// A running `samestack dev --json`: its JSON lines as they come, its stderr collected.
pub(crate) struct Dev {
    child: Child,
    lines: Receiver<Value>,
    pending: VecDeque<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Dev {
    fn start(stack: &Stack, json: bool) -> Dev {
        let busybox = format!("BUSYBOX_IMAGE={BUSYBOX}");
        let mut extra = vec!["--build-arg", busybox.as_str()];
        if json {
            extra.extend(["--json", "-v"]);
        }
        Dev::spawn(stack, &extra)
    }

    /// `samestack dev` with `up`'s arguments and `extra`; `--json` for lines to wait for.
    pub(crate) fn spawn(stack: &Stack, extra: &[&str]) -> Dev {
        let mut args = stack.up_args();
        args[0] = "dev".into();
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut child = stack
            .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .env("SAMESTACK_SYNC_IMAGE", sync_image())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("samestack dev runs");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Dev { child, lines, pending: VecDeque::new(), stderr }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next line (in order, skipping none) matching `wanted`, within `timeout`.
    pub(crate) fn wait_for(&mut self, what: &str, timeout: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&wanted) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => self.pending.push_back(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} within {}s; lines {:?}\nstderr:\n{}",
                        timeout.as_secs(),
                        self.pending,
                        self.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("dev ended before {what}; lines {:?}\nstderr:\n{}", self.pending, self.stderr())
                }
            }
        }
    }

    /// The next reload of `service`.
    pub(crate) fn reload(&mut self, service: &str) -> Value {
        self.wait_for(&format!("a reload of {service}"), RELOAD_TIMEOUT, |l| {
            l["service"] == service && l.get("kind").is_some()
        })
    }

    pub(crate) fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "dev still runs 60 s after SIGINT:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on 127.0.0.1:port: status code and body; None when the connection fails.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Polls until `GET path` answers 200 with a body containing `wanted`.
pub(crate) fn wait_served(port: u16, path: &str, wanted: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        match get(port, path) {
            Some((200, body)) if body.contains(wanted) => return body,
            other => last = other,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("127.0.0.1:{port}{path} did not serve `{wanted}` within {}s; last answer {last:?}", timeout.as_secs());
}

async fn pods_of(client: &kube::Client, namespace: &str, service: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/name={service}");
    let mut list: Vec<Pod> = pods.list(&ListParams::default().labels(&selector)).await.unwrap().items;
    list.retain(|p| p.metadata.deletion_timestamp.is_none());
    list
}

async fn replica_sets(client: &kube::Client, namespace: &str, service: &str) -> usize {
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/name={service}");
    sets.list(&ListParams::default().labels(&selector)).await.unwrap().items.len()
}

/// Runs `script` with `sh -c` in the pod and returns its stdout.
async fn in_pod(client: &kube::Client, namespace: &str, pod: &str, script: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = AttachParams::default().stdout(true).stderr(false);
    let mut process = pods.exec(pod, ["sh", "-c", script], &params).await.unwrap();
    let mut out = String::new();
    process.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    process.join().await.unwrap();
    out
}

/// A ValidatingAdmissionPolicy (and its binding) denying ephemeral containers in `namespace`,
/// once the API server enforces it (a dry-run patch is refused).
async fn refuse_ephemeral_containers(client: &kube::Client, namespace: &str) {
    use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
    let name = format!("{namespace}-no-ephemeral");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": { "resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                "resources": ["pods/ephemeralcontainers"] }] },
            "validations": [{ "expression": "false", "message": "ephemeral containers are not allowed here" }]
        }
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": namespace } } }
        }
    }))
    .unwrap();
    Api::<ValidatingAdmissionPolicy>::all(client.clone()).create(&PostParams::default(), &policy).await.unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let probe = pods_of(client, namespace, "api").await[0].metadata.name.clone().unwrap();
    // Pod Security admission comes first: the probe meets `restricted`.
    let patch = serde_json::json!({ "spec": { "ephemeralContainers": [{
        "name": "policy-probe", "image": "none", "targetContainerName": "api",
        "securityContext": { "runAsNonRoot": true, "runAsUser": 10001, "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] }, "seccompProfile": { "type": "RuntimeDefault" } } }] } });
    let params = PatchParams { dry_run: true, ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match pods.patch_ephemeral_containers(&probe, &params, &Patch::Strategic(&patch)).await {
            Err(kube::Error::Api(e)) if e.message.contains("not allowed here") => return,
            other => assert!(Instant::now() < deadline, "the policy is not enforced after 60 s: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).map(|c| c[0].restart_count).unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_dev_syncs_rebuilds_forwards_and_stops_cleanly() {
    if cluster_or_skip("cluster_dev_syncs_rebuilds_forwards_and_stops_cleanly").is_none() {
        return;
    }
    let stack = Stack::new();
    let dir = stack.dir.path().to_path_buf();
    // on_change fails while /app/fail-on-change exists (after the reload it asked for).
    let yaml = std::fs::read_to_string(dir.join("samestack.yaml")).unwrap();
    let yaml = replace_once(
        &yaml,
        r#"on_change: "sh /app/reload.sh""#,
        r#"on_change: "sh /app/reload.sh && if test -e /app/fail-on-change; then echo on_change refused >&2; exit 3; fi""#,
    );
    let yaml = replace_once(&yaml, "services:\n", SITE_SERVICE);
    std::fs::write(dir.join("samestack.yaml"), yaml).unwrap();
    std::fs::create_dir_all(dir.join("site/www")).unwrap();
    std::fs::write(dir.join("site/Dockerfile"), SITE_DOCKERFILE).unwrap();
    std::fs::write(dir.join("site/www/index.html"), "site as built\n").unwrap();

    let mut dev = Dev::start(&stack, true);
    let mut forwards = Vec::new();
    let watching = loop {
        let line = dev.wait_for("the forwards and `watching`", START_TIMEOUT, |l| {
            l.get("forward").is_some() || l.get("watching").is_some()
        });
        match line.get("forward") {
            Some(f) => forwards.push(f.clone()),
            None => break line,
        }
    };
    assert!(watching["watching"]["directories"].as_u64().unwrap() >= 3, "{watching}");
    let local = |service: &str| -> u16 {
        let f = forwards.iter().find(|f| f["service"] == service).unwrap_or_else(|| panic!("{forwards:?}"));
        f["local"].as_u64().unwrap() as u16
    };
    let api_port = local("api");
    assert!(forwards.iter().any(|f| f["service"] == "worker" && f["port"] == 8081), "{forwards:?}");

    let client = samestack::kube::KubeClient::connect(&stack.kubeconfig(), Some(&format!("samestack-{}", stack.name)))
        .await
        .expect("the user's kubeconfig has the context");
    let client = client.raw().clone();
    let ns = stack.name.as_str();
    wait_served(api_port, "/", "hello from the guestbook api", Duration::from_secs(60));
    let before = pods_of(&client, ns, "api").await;
    assert_eq!(before.len(), 1, "one API pod in the dev profile");
    let api_uid = before[0].metadata.uid.clone().unwrap();
    let api_pod = before[0].metadata.name.clone().unwrap();
    let api_sets = replica_sets(&client, ns, "api").await;
    let worker_sets = replica_sets(&client, ns, "worker").await;

    // A synced edit: served by the same pod, not restarted.
    let app = dir.join("api/app.py");
    let source = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, source.replace("hello from the guestbook api", "hello, hot reload")).unwrap();
    let reload = dev.reload("api");
    assert_eq!(
        (reload["kind"].as_str(), reload["ok"].as_bool(), reload["files"].as_u64()),
        (Some("sync"), Some(true), Some(1)),
        "{reload}"
    );
    assert!(reload["seconds"].as_f64().unwrap() > 0.0, "{reload}");
    wait_served(api_port, "/", "hello, hot reload", Duration::from_secs(30));
    let after = pods_of(&client, ns, "api").await;
    assert_eq!(after[0].metadata.uid.as_deref(), Some(api_uid.as_str()), "the sync replaced the pod");
    assert_eq!(restarts(&after[0]), 0, "the sync restarted the container");

    // An image without `tar` or a shell: synced through an ephemeral container that writes
    // through the app's root, the same pod serves the edit; the next sync reuses that container.
    let site_port = local("site");
    wait_served(site_port, "/index.html", "site as built", Duration::from_secs(60));
    let site = pods_of(&client, ns, "site").await;
    let site_uid = site[0].metadata.uid.clone().unwrap();
    for round in 1..=2 {
        std::fs::write(dir.join("site/www/index.html"), format!("site synced {round}\n")).unwrap();
        let reload = dev.reload("site");
        assert_eq!((reload["kind"].as_str(), reload["ok"].as_bool()), (Some("sync"), Some(true)), "{reload}");
        if round == 1 {
            // Said once, also to scripts.
            let notice =
                dev.wait_for("the ephemeral notice", Duration::from_secs(5), |l| l["notice"]["service"] == "site");
            assert!(notice["notice"]["message"].as_str().unwrap().contains("ephemeral container"), "{notice}");
        }
        wait_served(site_port, "/index.html", &format!("site synced {round}"), Duration::from_secs(30));
        let now = pods_of(&client, ns, "site").await;
        assert_eq!(now.len(), 1, "one site pod");
        assert_eq!(now[0].metadata.uid.as_deref(), Some(site_uid.as_str()), "the sync replaced the pod");
        assert_eq!(restarts(&now[0]), 0, "the sync restarted the container");
        let ephemeral: Vec<&str> = now[0]
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .into_iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(ephemeral, ["samestack-sync"], "one sync container, reused");
    }

    // A new file, then a symlink to it: the link arrives as the target's content.
    std::fs::write(dir.join("api/notes.txt"), "first notes\n").unwrap();
    assert_eq!(dev.reload("api")["ok"], true);
    std::os::unix::fs::symlink(dir.join("api/notes.txt"), dir.join("api/link.txt")).unwrap();
    assert_eq!(dev.reload("api")["ok"], true);
    let link =
        in_pod(&client, ns, &api_pod, "test -f /app/link.txt && ! test -L /app/link.txt && cat /app/link.txt").await;
    assert_eq!(link, "first notes\n", "the link is its target's content, not a link");
    // Renamed: gone under the old name, present under the new one.
    std::fs::rename(dir.join("api/notes.txt"), dir.join("api/renamed.txt")).unwrap();
    let reload = dev.reload("api");
    assert_eq!(reload["ok"], true, "{reload}");
    let state = in_pod(&client, ns, &api_pod, "test -e /app/notes.txt && echo old; cat /app/renamed.txt").await;
    assert_eq!(state, "first notes\n", "after the rename");
    // Deleted.
    std::fs::remove_file(dir.join("api/renamed.txt")).unwrap();
    let reload = dev.reload("api");
    assert_eq!((reload["ok"].as_bool(), reload["deletions"].as_u64()), (Some(true), Some(1)), "{reload}");
    assert_eq!(in_pod(&client, ns, &api_pod, "test -e /app/renamed.txt || echo gone").await, "gone\n");

    // Ignored files lead to nothing: the next reload carries only the marker written after
    // them, and `-v` names the rules that dropped them.
    std::fs::write(dir.join("api/CHANGES.md"), "ignored by .dockerignore\n").unwrap();
    std::fs::create_dir_all(dir.join("api/.git")).unwrap();
    std::fs::write(dir.join("api/.git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(dir.join("api/marker.txt"), "1\n").unwrap();
    let reload = dev.reload("api");
    assert_eq!(reload["files"], 1, "only the marker: {reload}");
    let stderr = dev.stderr();
    assert!(stderr.contains("api: .dockerignore: `*.md`"), "{stderr}");

    // A burst of 1,000 files plus an edit of the worker: one action per service.
    let burst = dir.join("api/burst");
    std::fs::create_dir_all(&burst).unwrap();
    for i in 0..1000 {
        std::fs::write(burst.join(format!("f{i}.txt")), format!("{i}\n")).unwrap();
    }
    let worker = dir.join("worker/worker.py");
    let mut text = std::fs::read_to_string(&worker).unwrap();
    text.push_str("\n# edited by the dev test: outside every sync rule, so a rebuild\n");
    std::fs::write(&worker, text).unwrap();
    let synced = dev.reload("api");
    let rebuilt = dev.reload("worker");
    // The directory may have been seen before its files: its walk and its events together are
    // still 1,000 files in one action.
    assert_eq!((synced["kind"].as_str(), synced["files"].as_u64()), (Some("sync"), Some(1000)), "{synced}");
    assert_eq!((rebuilt["kind"].as_str(), rebuilt["ok"].as_bool()), (Some("rebuild"), Some(true)), "{rebuilt}");
    assert_eq!(in_pod(&client, ns, &api_pod, "ls /app/burst | wc -l").await.trim(), "1000");
    assert_eq!(replica_sets(&client, ns, "worker").await, worker_sets + 1, "exactly one new ReplicaSet for the worker");
    assert_eq!(replica_sets(&client, ns, "api").await, api_sets, "the API was not rolled");
    assert_eq!(pods_of(&client, ns, "api").await[0].metadata.uid.as_deref(), Some(api_uid.as_str()));
    // Nothing else came of the burst: the next reload is the next edit's.
    std::fs::write(dir.join("api/marker.txt"), "2\n").unwrap();
    assert_eq!(dev.reload("api")["files"], 1);

    // on_change failing: shown with its exit code and stderr, and the loop goes on.
    std::fs::write(dir.join("api/fail-on-change"), "x\n").unwrap();
    let failed = dev.reload("api");
    assert_eq!(failed["ok"], false, "{failed}");
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.contains("on_change exited with code 3") && detail.contains("on_change refused"), "{detail}");
    std::fs::remove_file(dir.join("api/fail-on-change")).unwrap();
    assert_eq!(dev.reload("api")["ok"], true, "the loop goes on after a failure");

    // A pod deleted by hand: the same local port reaches its replacement.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.delete(&api_pod, &DeleteParams::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let fresh = pods_of(&client, ns, "api").await;
        if fresh.iter().any(|p| p.metadata.uid.as_deref() != Some(api_uid.as_str())) {
            break;
        }
        assert!(Instant::now() < deadline, "no replacement pod");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The replacement starts from the image; once ready it receives every file synced since
    // the build (and the deletions), then `on_change`: it serves the synced code.
    let resent =
        dev.wait_for("a resend to the new API pod", RELOAD_TIMEOUT, |l| l["service"] == "api" && l["kind"] == "resend");
    assert_eq!(resent["ok"], true, "{resent}");
    assert!(resent["files"].as_u64().unwrap() >= 1002 && resent["deletions"].as_u64().unwrap() >= 1, "{resent}");
    let fresh = pods_of(&client, ns, "api").await;
    let new_pod = fresh[0].metadata.name.clone().unwrap();
    assert!(resent["detail"].as_str().unwrap().contains(&format!("new pod {new_pod}")), "{resent}");
    wait_served(api_port, "/", "hello, hot reload", Duration::from_secs(30));
    let state = in_pod(
        &client,
        ns,
        &new_pod,
        "ls /app/burst | wc -l; cat /app/marker.txt; test -e /app/fail-on-change || echo gone",
    )
    .await;
    assert_eq!(state.split_whitespace().collect::<Vec<_>>(), ["1000", "2", "gone"], "the new pod's /app");

    // The app's container restarting in the same pod (its process ends on SIGTERM): it starts
    // from the image again; once ready it gets the synced files again and serves the synced code.
    in_pod(&client, ns, &new_pod, "kill -TERM 1").await;
    let resent = dev.wait_for("a resend after the container restarted", RELOAD_TIMEOUT, |l| {
        l["service"] == "api" && l["kind"] == "resend"
    });
    assert_eq!(resent["ok"], true, "{resent}");
    assert!(resent["detail"].as_str().unwrap().contains(&format!("container restarted in pod {new_pod}")), "{resent}");
    assert_eq!(restarts(&pods.get(&new_pod).await.unwrap()), 1, "the same pod, its container restarted once");
    wait_served(api_port, "/", "hello, hot reload", Duration::from_secs(30));

    // A cluster that refuses ephemeral containers (an admission policy denying them in this
    // namespace): the next site pod cannot get one, which is said once, and site edits rebuild.
    refuse_ephemeral_containers(&client, ns).await;
    pods.delete(&site[0].metadata.name.clone().unwrap(), &DeleteParams::default()).await.unwrap();
    let refused = dev.wait_for("the refusal notice", RELOAD_TIMEOUT, |l| l["notice"]["service"] == "site");
    let message = refused["notice"]["message"].as_str().unwrap();
    assert!(message.contains("refused") && message.contains("rebuilds on every change"), "{refused}");
    for round in 1..=2 {
        std::fs::write(dir.join("site/www/index.html"), format!("site rebuilt {round}\n")).unwrap();
        let reload = dev.reload("site");
        assert_eq!((reload["kind"].as_str(), reload["ok"].as_bool()), (Some("rebuild"), Some(true)), "{reload}");
        assert!(reload["detail"].as_str().unwrap().contains("refused"), "the reason: {reload}");
        wait_served(site_port, "/index.html", &format!("site rebuilt {round}"), Duration::from_secs(60));
    }

    // SIGINT: dev ends with its summary, and every forwarded port is free again.
    let status = dev.interrupt();
    assert!(status.success(), "dev after SIGINT: {status:?}\n{}", dev.stderr());
    let summary = dev.wait_for("the summary", Duration::from_secs(10), |l| l.get("summary").is_some());
    assert!(summary["summary"].as_str().unwrap().contains("sync (p50"), "{summary}");
    let notices: Vec<&Value> = dev.pending.iter().filter(|l| l.get("notice").is_some()).collect();
    assert!(notices.is_empty(), "each notice once: {notices:?}");
    for f in &forwards {
        let port = f["local"].as_u64().unwrap() as u16;
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("port {port} still taken: {e}"));
    }
    drop(dev);

    // A second dev reuses the registry and the cluster.
    let mut again = Dev::start(&stack, false);
    let deadline = Instant::now() + START_TIMEOUT;
    while !again.stderr().contains("watching ") {
        assert!(Instant::now() < deadline, "the second dev did not start watching:\n{}", again.stderr());
        assert!(again.child.try_wait().unwrap().is_none(), "the second dev ended:\n{}", again.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = again.stderr();
    let line = |step: &str| text.lines().find(|l| l.starts_with(step)).unwrap_or_default().to_string();
    assert!(line("registry").contains("reused"), "{text}");
    assert!(line("cluster").contains("reused"), "{text}");
    assert!(again.interrupt().success(), "{}", again.stderr());
    drop(again);
    let purge = stack.samestack(&["down", "--purge"]);
    assert!(purge.status.success(), "{}", crate::support::output_text(&purge));
}
