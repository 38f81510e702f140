//! Cluster tier for the native `docker` provider on the offline node image: create a cluster,
//! wire a registry container, pull a locally built image through the wired mirror, reach it
//! through a Service by DNS name, reuse, restart after a stop, delete, and prove nothing is left.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Service};
use kube::Api;
use kube::api::{ListParams, LogParams, PostParams};
use samestack::cluster::{Access, ClusterSpec, DockerProvider, Provider, ProviderChoice, RegistryEndpoint, kubeconfig};

use crate::support;

const REGISTRY_IMAGE: &str = "samestack-test/registry:latest";
const BUSYBOX_IMAGE: &str = "samestack-test/busybox:latest";
/// Resolve the Service through cluster DNS, fetch `/` over HTTP, retry until it answers.
const PROBE_SCRIPT: &str = r#"until ip=$(nslookup web.samestack-it.svc.cluster.local | awk '/^Address:/ { a = $2 } END { print a }') \
  && [ -n "$ip" ] && printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$ip" 80 | grep hello-from-samestack; do sleep 1; done"#;

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("docker runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

fn docker_ok(args: &[&str]) -> String {
    let (ok, text) = docker(args);
    assert!(ok, "docker {} failed: {text}", args.join(" "));
    text
}

fn cluster_or_skip(test: &str) -> Option<String> {
    support::cluster_or_skip(test, &[REGISTRY_IMAGE, BUSYBOX_IMAGE])
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

/// Poll until the pod has finished; returns its phase.
async fn wait_pod_done(pods: &Api<Pod>, name: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let pod = pods.get(name).await.expect("pod exists");
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            return phase;
        }
        if Instant::now() > deadline {
            panic!("pod {name} still {phase} after {timeout:?}: {:?}", pod.status);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn cluster_native_provider_pulls_through_the_registry_mirror_serves_by_dns_and_deletes_cleanly() {
    let test = "cluster_native_provider_pulls_through_the_registry_mirror_serves_by_dns_and_deletes_cleanly";
    let Some(node_image) = cluster_or_skip(test) else { return };
    let project = support::unique_name("cl");
    let _cleanup = support::ProjectCleanup(project.clone());

    // A registry container of our own, with a locally built image pushed to it.
    let registry_name = format!("{project}-registry");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &registry_name,
        "--label",
        &format!("dev.samestack.project={project}"),
        "-p",
        "127.0.0.1::5000",
        REGISTRY_IMAGE,
    ]);
    let published = docker_ok(&["port", &registry_name, "5000/tcp"]);
    let host_port: u16 = published.lines().next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    let image = format!("localhost:{host_port}/samestack-busybox:t1");
    docker_ok(&["tag", BUSYBOX_IMAGE, &image]);
    let mut pushed = false;
    for _ in 0..50 {
        // The registry needs a moment to listen after its container starts.
        if docker(&["push", &image]).0 {
            pushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    docker(&["rmi", &image]);
    assert!(pushed, "could not push {image}");
    let registry = RegistryEndpoint { container_name: registry_name.clone(), host_port, port_in_network: 5000 };

    let mut spec = ClusterSpec::new(project.clone(), project.clone());
    spec.provider = ProviderChoice::Docker;
    spec.node_image = Some(node_image);
    spec.registry = Some(registry.clone());
    let provider = DockerProvider::connect().await.unwrap();

    let started = Instant::now();
    let cluster = provider.ensure(&spec).await.unwrap();
    eprintln!("FIGURE cluster create: {:.1?} total; steps: {:?}", started.elapsed(), cluster.timings);
    assert!(cluster.created);
    assert_eq!(cluster.nodes.len(), 1);
    let client = cluster.client().await.unwrap();
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    assert_eq!(nodes.items.len(), 1);

    // KEP-1755 ConfigMap.
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "kube-public").get("local-registry-hosting").await.unwrap();
    let doc = &cm.data.unwrap()["localRegistryHosting.v1"];
    assert!(doc.contains(&format!("host: \"localhost:{host_port}\"")), "{doc}");

    // A second ensure reuses the cluster.
    let again = Instant::now();
    let reused = provider.ensure(&spec).await.unwrap();
    eprintln!("FIGURE cluster reuse: {:.1?}", again.elapsed());
    assert!(!reused.created && !reused.started());

    // The kubeconfig merges into a user file and works from there.
    let home = tempfile::tempdir().unwrap();
    let user = home.path().join("config");
    let installed =
        kubeconfig::install(&project, &spec.context_name(), cluster.kubeconfig_yaml().unwrap(), &user).unwrap();
    let from_user = samestack::cluster::client_for(&Access::UserContext {
        path: Some(user.clone()),
        context: Some(spec.context_name()),
    })
    .await
    .unwrap();
    assert_eq!(Api::<Node>::all(from_user).list(&ListParams::default()).await.unwrap().items.len(), 1);
    kubeconfig::uninstall(&project, &installed.context, &user).unwrap();

    // Work runs: an HTTP server from the local registry, reached through a Service by DNS name.
    let ns = "samestack-it";
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &object(serde_json::json!({"metadata": {"name": ns}})))
        .await
        .unwrap();
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let deployment: Deployment = object(serde_json::json!({
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "web",
                    "image": image,
                    "imagePullPolicy": "Always",
                    "command": ["sh", "-c", "mkdir -p /www && echo hello-from-samestack > /www/index.html && exec httpd -f -p 8080 -h /www"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                }]},
            },
        },
    }));
    Api::<Deployment>::namespaced(client.clone(), ns).create(&PostParams::default(), &deployment).await.unwrap();
    let service: Service = object(serde_json::json!({
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }));
    Api::<Service>::namespaced(client.clone(), ns).create(&PostParams::default(), &service).await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let probe: Pod = object(serde_json::json!({
        "metadata": {"name": "probe", "namespace": ns},
        "spec": {
            "restartPolicy": "OnFailure",
            "containers": [{
                "name": "probe",
                "image": image,
                // busybox-static's wget and nc crash resolving names (static glibc NSS); its
                // nslookup has its own resolver: resolve the Service's DNS name with it, then
                // talk HTTP to the address it returned.
                "command": ["sh", "-c", PROBE_SCRIPT],
            }],
        },
    }));
    pods.create(&PostParams::default(), &probe).await.unwrap();
    let phase = wait_pod_done(&pods, "probe", Duration::from_secs(240)).await;
    let logs = pods.logs("probe", &LogParams::default()).await.unwrap_or_default();
    assert_eq!(phase, "Succeeded", "probe logs: {logs}");
    assert!(logs.contains("hello-from-samestack"), "probe logs: {logs}");

    // After the nodes were stopped (a reboot), ensure starts them and the cluster works again.
    for node in &cluster.nodes {
        docker_ok(&["stop", &node.name]);
    }
    let restart = Instant::now();
    let restarted = provider.ensure(&spec).await.unwrap();
    eprintln!("FIGURE cluster restart after stop: {:.1?}", restart.elapsed());
    assert!(restarted.started() && !restarted.created);
    let client = restarted.client().await.unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "kube-public").get("local-registry-hosting").await.unwrap();

    // Delete: the nodes, their volumes and the network go; the registry is only disconnected.
    let volumes = docker_ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
        &cluster.nodes[0].name,
    ]);
    provider.delete(&spec).await.unwrap();
    assert!(docker(&["inspect", &registry_name]).0, "the registry container is kept");
    docker_ok(&["rm", "-fv", &registry_name]);
    let label = format!("label=dev.samestack.project={project}");
    assert_eq!(docker_ok(&["ps", "-aq", "--filter", &label]), "", "no container left");
    assert_eq!(docker_ok(&["network", "ls", "-q", "--filter", &label]), "", "no network left");
    for volume in volumes.split_whitespace() {
        assert!(!docker(&["volume", "inspect", volume]).0, "volume {volume} left behind");
    }
}

#[tokio::test]
async fn cluster_native_provider_joins_an_agent_and_adds_a_registry_to_the_running_cluster_without_recreating_it() {
    let test =
        "cluster_native_provider_joins_an_agent_and_adds_a_registry_to_the_running_cluster_without_recreating_it";
    let Some(node_image) = cluster_or_skip(test) else { return };
    let project = support::unique_name("cla");
    let _cleanup = support::ProjectCleanup(project.clone());
    let mut spec = ClusterSpec::new(project.clone(), project.clone());
    spec.provider = ProviderChoice::Docker;
    spec.node_image = Some(node_image);
    spec.agents = 1;
    let provider = DockerProvider::connect().await.unwrap();

    let started = Instant::now();
    let cluster = provider.ensure(&spec).await.unwrap();
    eprintln!("FIGURE cluster create (1 server + 1 agent): {:.1?}; steps: {:?}", started.elapsed(), cluster.timings);
    assert_eq!(cluster.nodes.iter().map(|n| n.role.as_str()).collect::<Vec<_>>(), ["server", "agent"]);
    let client = cluster.client().await.unwrap();
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    assert_eq!(nodes.items.len(), 2);
    let server =
        nodes.items.iter().find(|n| n.metadata.name.as_deref() == Some(cluster.nodes[0].name.as_str())).unwrap();
    let taints = server.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    assert!(
        taints.iter().any(|t| t.key == "node-role.kubernetes.io/control-plane"),
        "with agents, workloads stay off the control plane: {taints:?}"
    );
    let server_id = docker_ok(&["inspect", "--format", "{{.Id}}", &cluster.nodes[0].name]);

    // The registry comes later: wired into both nodes, the cluster kept.
    let registry_name = format!("{project}-registry");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &registry_name,
        "--label",
        &format!("dev.samestack.project={project}"),
        "-p",
        "127.0.0.1::5000",
        REGISTRY_IMAGE,
    ]);
    let published = docker_ok(&["port", &registry_name, "5000/tcp"]);
    let host_port: u16 = published.lines().next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    spec.registry = Some(RegistryEndpoint { container_name: registry_name.clone(), host_port, port_in_network: 5000 });
    let wired = provider.ensure(&spec).await.unwrap();
    assert!(!wired.created && !wired.started());
    assert_eq!(docker_ok(&["inspect", "--format", "{{.Id}}", &cluster.nodes[0].name]), server_id, "not recreated");
    for node in &cluster.nodes {
        let hosts = docker_ok(&[
            "exec",
            &node.name,
            "cat",
            &format!("/etc/containerd/certs.d/localhost:{host_port}/hosts.toml"),
        ]);
        assert!(hosts.contains(&format!("http://{registry_name}:5000")), "{}: {hosts}", node.name);
    }
    Api::<ConfigMap>::namespaced(client.clone(), "kube-public").get("local-registry-hosting").await.unwrap();

    provider.delete(&spec).await.unwrap();
    docker_ok(&["rm", "-fv", &registry_name]);
    let label = format!("label=dev.samestack.project={project}");
    assert_eq!(docker_ok(&["ps", "-aq", "--filter", &label]), "", "no container left");
    assert_eq!(docker_ok(&["network", "ls", "-q", "--filter", &label]), "", "no network left");
}

#[tokio::test]
async fn cluster_native_provider_remakes_a_node_an_interrupted_create_left_created_with_privileged_set() {
    let test = "cluster_native_provider_remakes_a_node_an_interrupted_create_left_created_with_privileged_set";
    let Some(node_image) = cluster_or_skip(test) else { return };
    let project = support::unique_name("cli");
    let _cleanup = support::ProjectCleanup(project.clone());
    let mut spec = ClusterSpec::new(project.clone(), project.clone());
    spec.provider = ProviderChoice::Docker;
    spec.node_image = Some(node_image.clone());
    let provider = DockerProvider::connect().await.unwrap();

    // What an `up` interrupted (SIGINT, SIGKILL) ~1.5 s into the cluster step leaves: the node
    // container created with `privileged` and never started. On an engine that refuses
    // privileged containers, starting it fails with "unable to apply caps". The shared engine
    // may carry a runtime that lifts the refusal; the node asks for the engine's own `runc`,
    // which refuses wherever the capability bounding set lacks CAP_SYS_RESOURCE (this CI).
    let subnet = provider.ensure_network(&spec).await.unwrap();
    let address = subnet.and_then(|s| samestack::cluster::docker::address_plan(&s, 0)).map(|p| p.1);
    let name = samestack::cluster::docker::node_name(&project, "server", 0);
    let mut body = samestack::cluster::docker::node_container(
        &spec,
        &node_image,
        &name,
        "server",
        address.as_deref(),
        samestack::cluster::kubeadm::Privileges::Privileged,
    );
    body.host_config.as_mut().unwrap().runtime = Some("runc".into());
    let options = bollard::query_parameters::CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    let left = provider.client().create_container(Some(options), body).await.unwrap().id;
    let probe = docker(&["run", "--rm", "--runtime", "runc", "--privileged", BUSYBOX_IMAGE, "true"]).0;
    eprintln!("{test}: the engine's runc {} privileged containers", if probe { "starts" } else { "refuses" });

    // Refused or not, `ensure` ends with a cluster: a node that never ran holds nothing, and a
    // started one never finished its bootstrap.
    let cluster = provider.ensure(&spec).await.unwrap();
    assert!(cluster.created, "the half-made cluster is made again");
    let now = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.Running}}", &name]);
    assert!(now.ends_with(" true") && !now.starts_with(&left), "the node was made again and runs: {now}");
    let nodes = Api::<Node>::all(cluster.client().await.unwrap()).list(&ListParams::default()).await.unwrap();
    assert_eq!(nodes.items.len(), 1);

    provider.delete(&spec).await.unwrap();
    let label = format!("label=dev.samestack.project={project}");
    assert_eq!(docker_ok(&["ps", "-aq", "--filter", &label]), "", "no container left");
    assert_eq!(docker_ok(&["network", "ls", "-q", "--filter", &label]), "", "no network left");
}
