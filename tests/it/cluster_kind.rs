//! Cluster tier for the `kind` provider, on real kind clusters made by the kind CLI (`.ci/run`
//! builds it with `.ci/ensure-kind`) from the project's offline node image. The engines here
//! refuse privileged containers; `.ci/ensure-docker` installs the test-environment runc shim
//! that lets kind's privileged nodes start (tests/cluster/README.md).
//!
//! One cluster of 1 server + 1 agent walks `up` interrupted while kind creates it (the next
//! `up` makes the unfinished cluster again) → `up` (the example all ready, Ingress over HTTP and
//! HTTPS, registry wired into both nodes, KEP-1755 ConfigMap, images pulled through the local
//! registry, `kind export logs`) → `up` (nothing changes) → `up` with `provider: auto` (kind
//! kept) → the API's pod unreachable from the control plane (`up` fails naming the route and the
//! address) → every container stopped, `up` (ready again, the app answering at once) → `down` (the
//! kind cluster gone) → `down --purge` (nothing labelled left). The restart may change the
//! nodes' addresses (the registry, started first, can take one; the nodes can swap theirs): the
//! node entrypoint rewrites them. One cluster of two nodes covers the 1-node restart's path too
//! (the control plane restarts, with the ingress controller on it) at the cost of one cluster.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use samestack::cluster::kind::KIND_CLUSTER_LABEL;

use crate::docker_fixture::{POSTGRES, PYTHON_BASE, REGISTRY_IMAGE, TRAEFIK, docker};
use crate::support::{self, Stack, output_text, step_line};

const KIND: (&str, &str) = ("  provider: auto\n", "  provider: kind\n");
const AGENT: (&str, &str) = ("  agents: 0\n", "  agents: 1\n");

/// The cluster tier plus a `kind` CLI on PATH; skips loudly outside CI, fails in CI.
fn kind_or_skip(test: &str) -> Option<()> {
    support::cluster_or_skip(test, &[PYTHON_BASE, POSTGRES, REGISTRY_IMAGE, TRAEFIK])?;
    if which::which("kind").is_ok() {
        return Some(());
    }
    let how = "build it with .ci/ensure-kind and put the directory it prints on PATH";
    if support::in_ci() {
        panic!("{test}: `kind` is not on PATH; CI=true requires the kind tests to run; {how}");
    }
    eprintln!("SKIP {test}: `kind` is not on PATH ({how})");
    None
}

fn kind(args: &[&str]) -> String {
    let out = Command::new("kind").args(args).output().expect("kind runs");
    assert!(out.status.success(), "kind {} failed:\n{}", args.join(" "), output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kind_clusters() -> Vec<String> {
    kind(&["get", "clusters"]).lines().map(str::to_string).collect()
}

/// Deletes the kind cluster when dropped, whatever the test did (kind's nodes carry kind's
/// labels, not the project's: [`support::ProjectCleanup`] does not see them).
struct KindCleanup(String);

impl Drop for KindCleanup {
    fn drop(&mut self) {
        if std::env::var_os("SAMESTACK_TEST_KEEP").is_some() {
            eprintln!("SAMESTACK_TEST_KEEP set: leaving kind cluster {}", self.0);
            return;
        }
        let _ = Command::new("kind").args(["delete", "cluster", "--name", &self.0]).output();
    }
}

/// The node containers of a kind cluster, sorted by name.
fn kind_nodes(cluster: &str) -> Vec<String> {
    let label = format!("label={KIND_CLUSTER_LABEL}={cluster}");
    let mut nodes: Vec<String> = docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &label])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    nodes.sort();
    nodes
}

/// A reboot: every container of the project (the registry) and of its kind cluster stops.
fn stop_everything(stack: &Stack) {
    let project = format!("label=dev.samestack.project={}", stack.name);
    let mut containers: Vec<String> =
        docker(&["ps", "-q", "--filter", &project]).lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
    containers.extend(kind_nodes(&stack.name));
    assert!(containers.len() >= 2, "expected the registry and the nodes: {containers:?}");
    let args: Vec<&str> = ["stop", "-t", "5"].into_iter().chain(containers.iter().map(String::as_str)).collect();
    docker(&args);
}

/// The app answers through the ingress controller on the host, over HTTP and HTTPS.
fn assert_serves(stack: &Stack, when: &str) {
    let (status_line, body) = stack.get_through_ingress("guestbook.localhost", "/healthz");
    assert!(status_line.contains(" 200 "), "GET /healthz through the ingress ({when}): {status_line}\n{body}");
    let (status_line, _) = stack.get_through_ingress("elsewhere.localhost", "/healthz");
    assert!(status_line.contains(" 404 "), "a host no Ingress names reached the API ({when}): {status_line}");
    assert_eq!(stack.get_https("guestbook.localhost", "/healthz"), (Some(0), "200".into()), "HTTPS ({when})");
}

/// `down` removes the kind cluster and keeps only the registry; `down --purge` leaves nothing.
fn assert_down_removes_everything(stack: &Stack) {
    let down = stack.samestack(&["down"]);
    assert!(down.status.success(), "{}", output_text(&down));
    assert!(!kind_clusters().contains(&stack.name), "kind still lists {}: {:?}", stack.name, kind_clusters());
    assert_eq!(kind_nodes(&stack.name), Vec::<String>::new(), "kind node containers left");
    stack.assert_down_kept_only_the_registry_and_purge_removes_it();
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_kind_up_serves_the_example_reuses_restarts_and_down_deletes_the_cluster() {
    let test = "cluster_kind_up_serves_the_example_reuses_restarts_and_down_deletes_the_cluster";
    if kind_or_skip(test).is_none() {
        return;
    }
    let stack = Stack::with_edits("kindit", &[KIND, AGENT]);
    let _kind = KindCleanup(stack.name.clone());
    let node = format!("{}-control-plane", stack.name);
    let nodes = [node.clone(), format!("{}-worker", stack.name)];

    // Ctrl-C while kind creates the cluster, as from a terminal: the signal reaches kind too,
    // which stops where it is and leaves the nodes it made. The next `up` says the cluster is
    // unfinished and makes it again.
    let up_args = stack.up_args();
    let mut interrupted = stack.command(&up_args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut child = interrupted.process_group(0).stderr(Stdio::null()).spawn().expect("samestack runs");
    let deadline = Instant::now() + Duration::from_secs(300);
    while kind_nodes(&stack.name).is_empty() {
        assert!(Instant::now() < deadline, "kind made no node container");
        assert!(child.try_wait().unwrap().is_none(), "up ended before kind made a node");
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = Command::new("kill").args(["-INT", "--", &format!("-{}", child.id())]).status().unwrap();
    assert!(sent.success());
    // 130, or 1 when kind's own exit on the signal is seen first: either way it failed.
    assert!(!child.wait().unwrap().success(), "up interrupted in the cluster step succeeded");
    assert!(!kind_nodes(&stack.name).is_empty(), "the interrupted kind create left no node to recover from");
    // The engine finishes a create request the killed kind sent: until then it lists a node it
    // cannot start ("No such container"). A user's next `up` comes seconds later.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kind_nodes(&stack.name)
        .iter()
        .all(|n| Command::new("docker").args(["inspect", n]).output().unwrap().status.success())
    {
        assert!(Instant::now() < deadline, "the engine never finished the nodes kind asked for");
        std::thread::sleep(Duration::from_millis(200));
    }

    // First whole `up`: kind makes the cluster from the project's node image; everything is ready.
    let first = stack.up();
    assert!(first.contains("the kind cluster is unfinished"), "{first}");
    assert!(step_line(&first, "cluster").contains(&format!("created {} (kind, 2 node(s))", stack.name)), "{first}");
    assert!(step_line(&first, "images").contains("2 built or pushed"), "{first}");
    assert!(step_line(&first, "ingress").contains(&format!("installed, ready on {node}")), "{first}");
    assert!(step_line(&first, "apply").contains("all ready, 1 Ingress path(s) routed"), "{first}");
    assert!(kind_clusters().contains(&stack.name), "kind does not list {}", stack.name);
    assert_eq!(kind_nodes(&stack.name), nodes);
    for n in &nodes {
        assert_eq!(docker(&["inspect", "-f", "{{.Config.Image}}", n]).trim(), support::node_image());
    }
    assert_serves(&stack, "first up");

    // The registry is wired into each node's containerd and announced by the KEP-1755 ConfigMap.
    let registry_name = samestack::settings::registry_container_name(&stack.name);
    let hosts_toml = format!("/etc/containerd/certs.d/localhost:{}/hosts.toml", stack.registry_port);
    for n in &nodes {
        let hosts = docker(&["exec", n, "cat", &hosts_toml]);
        assert!(hosts.contains(&format!("http://{registry_name}:5000")), "{n}: {hosts}");
    }
    let client = samestack::kube::KubeClient::connect(&stack.kubeconfig(), Some(&format!("samestack-{}", stack.name)))
        .await
        .expect("the user's kubeconfig has the context");
    let hosting = kube::Api::<ConfigMap>::namespaced(client.raw().clone(), "kube-public")
        .get("local-registry-hosting")
        .await
        .expect("the KEP-1755 ConfigMap exists");
    let doc = &hosting.data.unwrap()["localRegistryHosting.v1"];
    assert!(doc.contains(&format!("host: \"localhost:{}\"", stack.registry_port)), "{doc}");
    assert!(doc.contains(&format!("hostFromClusterNetwork: \"{registry_name}:5000\"")), "{doc}");

    // The pods run images only the local registry has; the containerd of the node the API runs
    // on pulled them through the mirror (crictl, part of kind's node contract, lists them).
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    let image =
        deployments.get("api").await.unwrap().spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
    let repository = format!("localhost:{}/{}/api", stack.registry_port, stack.name);
    assert!(image.starts_with(&format!("{repository}@sha256:")), "{image}");
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    let api_only = kube::api::ListParams::default().labels("app.kubernetes.io/name=api");
    let api_pods = pods.list(&api_only).await.unwrap();
    let api_node = api_pods.items[0].spec.as_ref().unwrap().node_name.clone().unwrap();
    let pulled = docker(&["exec", &api_node, "crictl", "images", "--digests"]);
    assert!(pulled.contains(&repository), "the node has no {repository}:\n{pulled}");

    // kind's own tooling works on the node image: `kind export logs` ends with crictl's output.
    let logs = tempfile::tempdir().unwrap();
    kind(&["export", "logs", &logs.path().display().to_string(), "--name", &stack.name]);
    for n in &nodes {
        assert!(logs.path().join(n).join("kubelet.log").exists(), "kind export logs wrote no kubelet.log for {n}");
    }

    // Second `up`: nothing to build, nothing changed, the cluster reused.
    let second = stack.up();
    assert!(step_line(&second, "cluster").contains(&format!("reused {} (kind,", stack.name)), "{second}");
    assert!(step_line(&second, "images").contains("0 built or pushed, 2 unchanged"), "{second}");
    assert!(step_line(&second, "apply").contains("0 created, 0 changed"), "{second}");
    assert!(step_line(&second, "apply").contains("0 pruned"), "{second}");

    // `auto` keeps the provider that owns the cluster.
    stack.edit(KIND.1, KIND.0);
    let auto = stack.up();
    assert!(step_line(&auto, "cluster").contains(&format!("reused {} (kind, 2 node(s))", stack.name)), "{auto}");
    assert!(step_line(&auto, "apply").contains("0 created, 0 changed"), "{auto}");

    // The control plane, where the API server and Traefik run, cannot reach the API's pod
    // (as while the network plugin has not yet updated the routes between the nodes after a
    // restart): `up` does not say ready, it names the route and the pod's address.
    let api_ip = pods.list(&api_only).await.unwrap().items[0].status.as_ref().unwrap().pod_ip.clone().unwrap();
    let unreachable = ["exec", node.as_str(), "ip", "route", "add", "unreachable", &format!("{api_ip}/32")];
    docker(&unreachable);
    let failed = stack.up_failing_within(5);
    docker(&unreachable.map(|a| if a == "add" { "del" } else { a }));
    let route = format!("Ingress {0}/api (guestbook.localhost/): http://{api_ip}:", stack.name);
    assert!(
        failed.contains("serves no route for these Ingress paths after 5 s") && failed.contains(&route),
        "{failed}"
    );

    // A reboot: `up` starts the registry and both nodes again; the app answers once more, as
    // soon as `up` says it is ready.
    stop_everything(&stack);
    let rebooted = stack.up();
    assert!(step_line(&rebooted, "registry").contains("started"), "{rebooted}");
    assert!(
        step_line(&rebooted, "cluster").contains(&format!("started {} (kind, 2 node(s))", stack.name)),
        "{rebooted}"
    );
    assert!(step_line(&rebooted, "apply").contains("all ready, 1 Ingress path(s) routed"), "{rebooted}");
    assert_serves(&stack, "after a reboot");

    assert_down_removes_everything(&stack);
}
