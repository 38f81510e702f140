//! Faults that must converge, on the real engine: networks never duplicated by racing creates,
//! `down` that removes the kubeconfig context first and names what it could not remove, a
//! registry stopped under a running `up`, an API server that stops answering. Test names carry
//! their tier (`docker_*`, `cluster_*`); the others need nothing.

use std::path::Path;
use std::process::{Command, Output};

use samestack::cluster::{ClusterSpec, DockerProvider};

use crate::docker_fixture::{BUSYBOX, docker};
use crate::support;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A project directory with an isolated HOME whose kubeconfig holds the project's context next
/// to someone else's.
struct Project {
    dir: tempfile::TempDir,
    name: String,
    _cleanup: support::ProjectCleanup,
}

impl Project {
    fn new(prefix: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let name = support::unique_name(prefix);
        std::fs::write(
            dir.path().join("samestack.yaml"),
            format!(
                "name: {name}\nregistry:\n  enabled: false\nservices:\n  web:\n    image: samestack-test/busybox:bookworm\n    ports: [{{ port: 80 }}]\n"
            ),
        )
        .unwrap();
        let kube = dir.path().join("home/.kube");
        std::fs::create_dir_all(&kube).unwrap();
        let context = format!("samestack-{name}");
        std::fs::write(
            kube.join("config"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster: {{server: 'https://127.0.0.1:1'}}\n- name: other\n  cluster: {{server: 'https://127.0.0.1:2'}}\nusers:\n- name: {context}\n  user: {{token: x}}\n- name: other\n  user: {{token: y}}\ncontexts:\n- name: {context}\n  context: {{cluster: {context}, user: {context}}}\n- name: other\n  context: {{cluster: other, user: other}}\ncurrent-context: {context}\n"
            ),
        )
        .unwrap();
        Project { _cleanup: support::ProjectCleanup(name.clone()), dir, name }
    }

    fn samestack(&self, args: &[&str], docker_host: Option<&str>) -> Output {
        let mut command = support::samestack();
        command.args(args).current_dir(self.dir.path()).env("HOME", self.dir.path().join("home"));
        command.env_remove("KUBECONFIG").env_remove("XDG_STATE_HOME");
        if let Some(host) = docker_host {
            command.env("DOCKER_HOST", host);
        }
        command.output().expect("samestack runs")
    }

    fn kubeconfig(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("home/.kube/config")).unwrap()
    }
}

#[test]
fn down_removes_the_context_even_when_the_cluster_cannot_be_removed() {
    let project = Project::new("downctx");
    let dead = format!("unix://{}", project.dir.path().join("no-engine.sock").display());
    let out = project.samestack(&["down"], Some(&dead));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Docker is not running"), "{}", text(&out));
    let kubeconfig = project.kubeconfig();
    assert!(!kubeconfig.contains(&project.name), "the context stayed although down failed:\n{kubeconfig}");
    assert!(kubeconfig.contains("name: other"), "someone else's context went too:\n{kubeconfig}");
}

fn docker_ok(test: &str) -> bool {
    if support::docker_or_skip(test).is_none() {
        return false;
    }
    if Command::new("docker").args(["image", "inspect", BUSYBOX]).output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if support::in_ci() {
        panic!("{test}: {BUSYBOX} is missing; build it with tests/images/build busybox");
    }
    eprintln!("SKIP {test}: {BUSYBOX} missing (tests/images/build busybox)");
    false
}

fn networks_named(name: &str) -> Vec<String> {
    docker(&["network", "ls", "--format", "{{.ID}} {{.Name}}"])
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(name))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_racing_network_creates_leave_one_network_and_delete_removes_every_copy() {
    if !docker_ok("docker_racing_network_creates_leave_one_network_and_delete_removes_every_copy") {
        return;
    }
    let project = support::unique_name("netrace");
    let _cleanup = support::ProjectCleanup(project.clone());
    let spec = ClusterSpec::new(project.clone(), project.clone());
    let name = samestack::cluster::docker::network_name(&project);

    // Four creates at once, as two (or more) cold `up`s of one project do.
    let racers = (0..4).map(|_| {
        let spec = spec.clone();
        tokio::spawn(async move { DockerProvider::connect().await.unwrap().ensure_network(&spec).await })
    });
    let subnets: Vec<Option<String>> =
        futures_util::future::join_all(racers).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert!(subnets[0].is_some(), "the network has an address plan: {subnets:?}");
    assert!(subnets.iter().all(|s| s == &subnets[0]), "every racer uses the same network: {subnets:?}");
    assert_eq!(networks_named(&name).len(), 1, "{:?}", networks_named(&name));
    let inspect = docker(&["network", "inspect", "--format", "{{.Name}}", &name]);
    assert_eq!(inspect, name, "the name is not ambiguous");

    // Duplicates an older samestack left (this engine makes them when not told otherwise):
    // ensure keeps one, delete removes them all.
    let engine = samestack::docker::connect().await.unwrap();
    for _ in 0..2 {
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            labels: Some(samestack::docker::owner_labels(&project, "node")),
            ..Default::default()
        };
        engine.create_network(request).await.unwrap();
    }
    let provider = DockerProvider::connect().await.unwrap();
    assert_eq!(provider.ensure_network(&spec).await.unwrap(), subnets[0], "the oldest, planned network is kept");
    assert_eq!(networks_named(&name).len(), 1, "{:?}", networks_named(&name));
    let request = bollard::models::NetworkCreateRequest { name: name.clone(), ..Default::default() };
    engine.create_network(request).await.unwrap();
    samestack::cluster::Provider::delete(&provider, &spec).await.unwrap();
    assert_eq!(networks_named(&name), Vec::<String>::new(), "delete removes every network of the name");
}

#[test]
fn docker_down_removes_leftover_networks_and_names_the_volume_it_cannot_remove() {
    if !docker_ok("docker_down_removes_leftover_networks_and_names_the_volume_it_cannot_remove") {
        return;
    }
    let project = Project::new("downleft");
    let label = format!("dev.samestack.project={}", project.name);
    let volume = format!("{}-data", project.name);
    docker(&["network", "create", "--label", &label, &format!("{}-extra", project.name)]);
    docker(&["volume", "create", "--label", &label, &volume]);
    // Something samestack did not make holds the volume.
    let holder = format!("{}-holder", project.name);
    docker(&["create", "--name", &holder, "-v", &format!("{volume}:/data"), BUSYBOX, "true"]);
    let _holder = RemoveOnDrop(holder.clone());

    let out = project.samestack(&["down"], None);
    let output = text(&out);
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert!(output.contains(&format!("volume {volume}: ")) && output.contains("in use"), "{output}");
    assert!(!output.contains("network"), "the unused network was removed, not reported: {output}");
    assert!(!project.kubeconfig().contains(&project.name), "the context stayed");
    let networks = docker(&["network", "ls", "-q", "--filter", &format!("label={label}")]);
    assert_eq!(networks, "", "the leftover network is gone");

    docker(&["rm", "-f", &holder]);
    let out = project.samestack(&["down"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("label={label}")]), "");
}

/// Removes a container not labelled with the project when the test ends.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// A kubeconfig whose API server is a TCP listener that accepts connections and never answers,
/// like a paused node behind an open connection: plain HTTP, so the connection is made at once
/// and each request is what hangs (a TLS handshake would end with the connect timeout).
/// The listener lives as long as the returned task.
async fn silent_api_server(dir: &std::path::Path) -> (std::path::PathBuf, String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            open.push(conn);
        }
    });
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{server}'}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    (path, server, held)
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_and_node_waits_against_an_api_server_that_never_answers_end_with_an_error_not_a_hang() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (kubeconfig, server, held) = silent_api_server(dir.path()).await;
    let client = samestack::kube::KubeClient::connect(&kubeconfig, None).await.unwrap();
    let options = samestack::kube::ApplyOptions { wave_timeout: Duration::from_secs(2), ..Default::default() };
    let set = [serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "silent"}})];
    let started = Instant::now();
    // The bound is the test's, not a timing assertion: without a deadline around each wave's
    // calls, apply_waves never returns here.
    let outcome =
        tokio::time::timeout(Duration::from_secs(300), samestack::kube::apply_waves(&client, "p", &set, &options))
            .await;
    let err = outcome.expect("apply_waves hung on a silent API server").unwrap_err().to_string();
    eprintln!("apply_waves gave up after {:.1?}: {err}", started.elapsed());
    assert!(err.contains(&server) && err.contains("did not answer"), "{err}");
    assert!(err.contains("fix:") && err.contains("docker unpause"), "{err}");

    let outcome = tokio::time::timeout(
        Duration::from_secs(300),
        samestack::cluster::wait_nodes_ready(client.raw(), 1, Duration::from_secs(2)),
    )
    .await;
    let err = outcome.expect("wait_nodes_ready hung on a silent API server").unwrap_err().to_string();
    assert!(err.contains("nodes to become Ready") && err.contains("no answer"), "{err}");
    held.abort();
}

/// A small real project for the cluster tier: one service built from the busybox test image
/// (httpd as a non-root user), the local registry, no ingress controller, an isolated HOME.
struct ClusterProject {
    dir: tempfile::TempDir,
    name: String,
    _cleanup: support::ProjectCleanup,
}

impl ClusterProject {
    fn new() -> ClusterProject {
        let dir = tempfile::tempdir().unwrap();
        let name = support::unique_name("faults");
        let port = crate::docker_fixture::free_port();
        std::fs::write(
            dir.path().join("samestack.yaml"),
            format!(
                "name: {name}\ncluster:\n  provider: docker\n  ingress: {{ enabled: false }}\nregistry:\n  host_port: {port}\nservices:\n  web:\n    build: {{ context: ./web }}\n    ports: [{{ name: http, port: 8080 }}]\n    health: {{ path: /, port: 8080 }}\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(
            dir.path().join("web/Dockerfile"),
            "ARG BASE_IMAGE=busybox:1.36\nFROM ${BASE_IMAGE}\nRUN mkdir -p /www && echo ok > /www/index.html\nUSER 10001:10001\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        ClusterProject { _cleanup: support::ProjectCleanup(name.clone()), dir, name }
    }

    fn command(&self, args: &[&str]) -> Command {
        support::command_in(self.dir.path(), args)
    }

    fn up_command(&self) -> Command {
        let base = format!("BASE_IMAGE={BUSYBOX}");
        self.command(&["up", "--build-arg", &base, "--ready-timeout", "300"])
    }

    fn node(&self) -> String {
        samestack::cluster::docker::node_name(&self.name, "server", 0)
    }

    fn registry(&self) -> String {
        samestack::settings::registry_container_name(&self.name)
    }

    fn labelled(&self) -> Vec<String> {
        let label = format!("label=dev.samestack.project={}", self.name);
        let mut found = Vec::new();
        for args in [
            vec!["ps", "-a", "--format", "container {{.Names}}", "--filter", &label],
            vec!["network", "ls", "--format", "network {{.Name}}", "--filter", &label],
            vec!["volume", "ls", "--format", "volume {{.Name}}", "--filter", &label],
        ] {
            found.extend(docker(&args).lines().filter(|l| !l.is_empty()).map(String::from));
        }
        found
    }
}

/// Runs `child` to its end, collecting stderr; `on_line` sees each line as it comes.
fn follow(mut child: std::process::Child, mut on_line: impl FnMut(&str, u32)) -> (std::process::ExitStatus, String) {
    use std::io::{BufRead, BufReader};
    let pid = child.id();
    let mut output = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        on_line(&line, pid);
        output.push_str(&line);
        output.push('\n');
    }
    (child.wait().unwrap(), output)
}

fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap().success());
}

/// The cgroup control files of the pod containers inside a node: cgroup v1 `freezer.state`
/// under the node's freezer cgroup, else cgroup v2 `cgroup.freeze`.
fn pod_freezers(node_id: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("cri-containerd-") {
                for file in ["freezer.state", "cgroup.freeze"] {
                    if path.join(file).exists() {
                        found.push(path.join(file));
                    }
                }
            }
            walk(&path, found);
        }
    }
    let mut found = Vec::new();
    for dir in samestack::docker::container_cgroup_dirs(Path::new(samestack::docker::CGROUP_ROOT), node_id) {
        walk(&dir, &mut found);
    }
    found
}

/// One cluster, several faults in turn, each from the state the previous one left: SIGINT once
/// the node's admin.conf exists (kubeadm goes on inside the node, the CNI is never applied);
/// the registry stopped while `up` runs; `status` with the registry stopped; the node paused
/// under a running apply; a pod's cgroup frozen, then `down`. Each case prints its time.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_faults_interrupted_bootstrap_stopped_registry_paused_node_and_frozen_pod_converge() {
    use std::time::{Duration, Instant};
    let test = "cluster_faults_interrupted_bootstrap_stopped_registry_paused_node_and_frozen_pod_converge";
    if support::cluster_or_skip(test, &[BUSYBOX, crate::docker_fixture::REGISTRY_IMAGE]).is_none() {
        return;
    }
    let project = ClusterProject::new();
    let node = project.node();

    // 1. SIGINT after admin.conf, before the CNI: the next `up` must not take it for done.
    let started = Instant::now();
    let child = project.up_command().stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let watcher = {
        let node = node.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline {
                let has = Command::new("docker")
                    .args(["exec", &node, "test", "-f", "/etc/kubernetes/admin.conf"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if has {
                    signal(pid, "INT");
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        })
    };
    let (status, output) = follow(child, |_, _| {});
    assert!(watcher.join().unwrap(), "admin.conf never appeared:\n{output}");
    assert_eq!(status.code(), Some(130), "{output}");
    assert!(output.contains("run the command again"), "{output}");
    let marker = Command::new("docker")
        .args(["exec", &node, "test", "-f", samestack::cluster::docker::BOOTSTRAPPED_MARKER])
        .status()
        .unwrap();
    assert!(!marker.success(), "an interrupted bootstrap must not be marked done");
    eprintln!("{test}: case 1, SIGINT after admin.conf: {:.1?}", started.elapsed());

    let started = Instant::now();
    let out = project.up_command().output().unwrap();
    let converged = text(&out);
    assert!(out.status.success(), "up after the interrupted bootstrap:\n{converged}");
    let cluster_line = converged.lines().find(|l| l.starts_with("cluster")).unwrap_or_default();
    assert!(cluster_line.contains("created"), "the unfinished cluster is made again: {converged}");
    eprintln!("{test}: case 1, the next up converges: {:.1?}", started.elapsed());

    // 2. The registry stops while `up` runs (between its registry and images steps): `up`
    // starts it again and finishes. SIGSTOP holds `up` still while the registry stops.
    let started = Instant::now();
    let registry = project.registry();
    let child = project.up_command().stderr(std::process::Stdio::piped()).spawn().unwrap();
    let (status, output) = follow(child, |line, pid| {
        if line.starts_with("registry") {
            signal(pid, "STOP");
            docker(&["stop", "-t", "2", &registry]);
            signal(pid, "CONT");
        }
    });
    assert!(status.success(), "up with the registry stopped under it:\n{output}");
    assert!(output.contains("the registry stopped answering"), "{output}");
    assert_eq!(docker(&["inspect", "--format", "{{.State.Running}}", &registry]), "true");
    eprintln!("{test}: case 2, registry stopped during up: {:.1?}", started.elapsed());

    // 3. `status` with the registry stopped is not healthy.
    docker(&["stop", "-t", "2", &registry]);
    let out = project.command(&["status"]).output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("(stopped); `samestack up` starts it"), "{report}");
    docker(&["start", &registry]);

    // 4. The node paused: the API server accepts connections and never answers. An apply gives
    // up with a clear error instead of hanging (the bound is the test's guard, not a timing claim).
    let started = Instant::now();
    let kubeconfig = project.dir.path().join("home/.kube/config");
    let client =
        samestack::kube::KubeClient::connect(&kubeconfig, Some(&format!("samestack-{}", project.name))).await.unwrap();
    let ns = format!("{}-paused", project.name);
    let set = [serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})];
    let options = samestack::kube::ApplyOptions { wave_timeout: Duration::from_secs(5), ..Default::default() };
    // Warm the client's connection and discovery first: the pause then hits an open connection.
    samestack::kube::apply_waves(&client, &ns, &set, &options).await.expect("apply before the pause");
    docker(&["pause", &node]);
    let _unpause = Unpause(node.clone());
    let outcome = tokio::time::timeout(
        Duration::from_secs(300),
        samestack::kube::apply_waves(&client, &format!("{ns}-2"), &set, &options),
    )
    .await;
    docker(&["unpause", &node]);
    let err = outcome.expect("apply hung on a paused node").expect_err("a paused node cannot answer").to_string();
    assert!(err.contains(client.server()), "the error names the API server: {err}");
    eprintln!("{test}: case 4, paused node: error after {:.1?}: {err}", started.elapsed());

    // 5. A pod's cgroup frozen inside the node, then `down --purge`: it finishes, nothing is left.
    let started = Instant::now();
    let node_id = docker(&["inspect", "--format", "{{.Id}}", &node]);
    let freezers = pod_freezers(&node_id);
    let frozen = freezers.first().unwrap_or_else(|| panic!("no pod cgroup found under the node {node_id}"));
    let value = if frozen.ends_with("freezer.state") { "FROZEN" } else { "1" };
    std::fs::write(frozen, value).unwrap();
    // cgroup v1 reports FREEZING until every task stopped; either way the kill will not land.
    let state = std::fs::read_to_string(frozen).unwrap();
    assert!(["FROZEN", "FREEZING", "1"].contains(&state.trim()), "{} is {state}", frozen.display());
    let out = project.command(&["down", "--purge"]).output().unwrap();
    assert!(out.status.success(), "down with a frozen pod cgroup:\n{}", text(&out));
    eprintln!("{test}: down said:\n{}", text(&out));
    assert_eq!(project.labelled(), Vec::<String>::new(), "down --purge left something");
    let kubeconfig = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(!kubeconfig.contains(&project.name), "down left the context:\n{kubeconfig}");
    eprintln!("{test}: case 5, down with a frozen pod cgroup: {:.1?}", started.elapsed());
}

/// Unpauses a node when the test ends early, so the cleanup can remove it.
struct Unpause(String);

impl Drop for Unpause {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["unpause", &self.0]).output();
    }
}
