//! Cluster tier for the `kind` provider, on real kind clusters made by the kind CLI (`.ci/run`
//! builds it with `.ci/ensure-kind`) from the project's offline node image. The engines here
//! refuse privileged containers; `.ci/ensure-docker` installs the test-environment runc shim
//! that lets kind's privileged nodes start (tests/cluster/README.md).
//!
//! One 1-node cluster walks `up` (the example all ready, Ingress over HTTP and HTTPS, registry
//! wired, KEP-1755 ConfigMap, images pulled through the local registry, `kind export logs`)
//! → `up` (nothing changes) → `up` with `provider: auto` (kind kept) → every container stopped,
//! `up` (ready again) → `down` (the kind cluster gone) → `down --purge` (nothing labelled left).
//! The restart may change the node's address (the registry, started first, can take it): the node
//! entrypoint rewrites it. A 1 server + 1 agent restart is not in the suite yet (see
//! tests/cluster/README.md, "kind").

use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use samestack::cluster::kind::KIND_CLUSTER_LABEL;

use crate::docker_fixture::{POSTGRES, PYTHON_BASE, REGISTRY_IMAGE, TRAEFIK, docker};
use crate::support::{self, Stack, output_text, step_line};

const KIND: (&str, &str) = ("  provider: auto\n", "  provider: kind\n");

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
    let stack = Stack::with_edits("kindit", &[KIND]);
    let _kind = KindCleanup(stack.name.clone());
    let node = format!("{}-control-plane", stack.name);

    // First `up`: kind makes the cluster from the project's node image; everything is ready.
    let first = stack.up();
    assert!(step_line(&first, "cluster").contains(&format!("created {} (kind, 1 node(s))", stack.name)), "{first}");
    assert!(step_line(&first, "images").contains("2 built or pushed"), "{first}");
    assert!(step_line(&first, "ingress").contains(&format!("installed, ready on {node}")), "{first}");
    assert!(step_line(&first, "apply").contains("all ready"), "{first}");
    assert!(kind_clusters().contains(&stack.name), "kind does not list {}", stack.name);
    assert_eq!(kind_nodes(&stack.name), std::slice::from_ref(&node));
    assert_eq!(docker(&["inspect", "-f", "{{.Config.Image}}", &node]).trim(), support::node_image());
    assert_serves(&stack, "first up");

    // The registry is wired into the node's containerd and announced by the KEP-1755 ConfigMap.
    let registry_name = samestack::settings::registry_container_name(&stack.name);
    let hosts = docker(&[
        "exec",
        &node,
        "cat",
        &format!("/etc/containerd/certs.d/localhost:{}/hosts.toml", stack.registry_port),
    ]);
    assert!(hosts.contains(&format!("http://{registry_name}:5000")), "{hosts}");
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

    // The pods run images only the local registry has; the node's containerd pulled them
    // through the mirror (crictl, part of kind's node contract, lists them).
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    let image =
        deployments.get("api").await.unwrap().spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
    let repository = format!("localhost:{}/{}/api", stack.registry_port, stack.name);
    assert!(image.starts_with(&format!("{repository}@sha256:")), "{image}");
    let pulled = docker(&["exec", &node, "crictl", "images", "--digests"]);
    assert!(pulled.contains(&repository), "the node has no {repository}:\n{pulled}");

    // kind's own tooling works on the node image: `kind export logs` ends with crictl's output.
    let logs = tempfile::tempdir().unwrap();
    kind(&["export", "logs", &logs.path().display().to_string(), "--name", &stack.name]);
    assert!(logs.path().join(&node).join("kubelet.log").exists(), "kind export logs wrote no kubelet.log");

    // Second `up`: nothing to build, nothing changed, the cluster reused.
    let second = stack.up();
    assert!(step_line(&second, "cluster").contains(&format!("reused {} (kind,", stack.name)), "{second}");
    assert!(step_line(&second, "images").contains("0 built or pushed, 2 unchanged"), "{second}");
    assert!(step_line(&second, "apply").contains("0 created, 0 changed"), "{second}");
    assert!(step_line(&second, "apply").contains("0 pruned"), "{second}");

    // `auto` keeps the provider that owns the cluster.
    stack.edit(KIND.1, KIND.0);
    let auto = stack.up();
    assert!(step_line(&auto, "cluster").contains(&format!("reused {} (kind, 1 node(s))", stack.name)), "{auto}");
    assert!(step_line(&auto, "apply").contains("0 created, 0 changed"), "{auto}");

    // A reboot: `up` starts the registry and the node again; the app answers once more.
    stop_everything(&stack);
    let rebooted = stack.up();
    assert!(step_line(&rebooted, "registry").contains("started"), "{rebooted}");
    assert!(step_line(&rebooted, "cluster").contains(&format!("started {} (kind,", stack.name)), "{rebooted}");
    assert!(step_line(&rebooted, "apply").contains("all ready"), "{rebooted}");
    assert_serves(&stack, "after a reboot");

    assert_down_removes_everything(&stack);
}
