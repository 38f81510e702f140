//! Docker tier for the native cluster provider's node containers: the privileged → explicit
//! capability fallback, labels and network, without booting Kubernetes (busybox stands in for a
//! node image, so this runs in seconds).

use std::process::Command;

use samestack::cluster::kubeadm::Privileges;
use samestack::cluster::{ClusterSpec, DockerProvider, Provider, RegistryEndpoint, node};

use crate::support;

const BUSYBOX: &str = "samestack-test/busybox:latest";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn docker_node_container_gets_the_privileges_the_engine_allows_and_delete_leaves_nothing() {
    if support::docker_or_skip("docker_node_container_gets_the_privileges_the_engine_allows_and_delete_leaves_nothing")
        .is_none()
    {
        return;
    }
    if docker(&["image", "inspect", "--format", "{{.Id}}", BUSYBOX]).is_empty() {
        if support::in_ci() {
            panic!("{BUSYBOX} is missing; build it with tests/images/build busybox");
        }
        eprintln!("SKIP docker_node_container...: {BUSYBOX} missing (tests/images/build busybox)");
        return;
    }
    let project = support::unique_name("nodes");
    let _cleanup = support::ProjectCleanup(project.clone());
    let spec = ClusterSpec::new(project.clone(), project.clone());
    let provider = DockerProvider::connect().await.unwrap();
    let subnet = provider.ensure_network(&spec).await.unwrap().expect("the network has an address plan");
    assert_eq!(provider.ensure_network(&spec).await.unwrap().as_deref(), Some(subnet.as_str()), "reused as it is");
    // Whatever the engine allows, a node runs. On this CI's engine the test-environment runc
    // shim (.ci/ensure-docker) lets privileged containers start, so a first node is privileged;
    // an image asking for the real runc's behaviour is refused privileges again, and the
    // provider falls back to the explicit set, removing the failed privileged container.
    let plain = support::plain_runc_image(BUSYBOX, &project);
    let allowed = |image: &str| {
        Command::new("docker").args(["run", "--rm", "--privileged", image, "true"]).output().unwrap().status.success()
    };
    let expect = |image: &str| if allowed(image) { Privileges::Privileged } else { Privileges::Explicit };
    let (_, first_address) = samestack::cluster::docker::address_plan(&subnet, 1).unwrap();
    let first = format!("samestack-{project}-server-1");
    let privileges = provider.create_node(&spec, BUSYBOX, &first, "server", Some(&first_address)).await.unwrap();
    assert_eq!(privileges, expect(BUSYBOX), "{BUSYBOX}");
    docker(&["rm", "-fv", &first]);

    let (_, address) = samestack::cluster::docker::address_plan(&subnet, 0).unwrap();
    let name = format!("samestack-{project}-server-0");
    let privileges = provider.create_node(&spec, &plain, &name, "server", Some(&address)).await.unwrap();
    let expected = expect(&plain);
    assert_eq!(privileges, expected, "{plain}");
    if docker(&["info", "--format", "{{.DefaultRuntime}}"]) == "samestack-test-runc" {
        // ensure-docker installs the shim only where the sandbox refuses privileged containers.
        assert_eq!(expected, Privileges::Explicit, "the fallback must run behind the shim's plain escape hatch");
    }
    let status = provider.status(&spec).await.unwrap();
    assert_eq!(status.nodes.len(), 1, "exactly one container: {:?}", status.nodes);
    assert!(status.nodes[0].running, "{:?}", status.nodes);
    assert!(
        status.api_server.as_deref().is_some_and(|s| s.starts_with("https://127.0.0.1:")),
        "{:?}",
        status.api_server
    );
    let caps = docker(&["inspect", "--format", "{{.HostConfig.CapDrop}} {{.HostConfig.CgroupnsMode}}", &name]);
    if expected == Privileges::Explicit {
        assert_eq!(caps, "[SYS_RESOURCE] private");
    }
    let labels = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"dev.samestack.role\"}} {{index .Config.Labels \"dev.samestack.cluster\"}}",
        &name,
    ]);
    assert_eq!(labels, format!("node {project}"));
    let ip = docker(&["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &name]);
    assert_eq!(ip, address, "the node has its fixed address");
    let volumes =
        docker(&["inspect", "--format", "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}", &name]);
    assert!(!volumes.is_empty(), "the node has an anonymous /var volume");

    // Commands run in the node with their output captured; a failure carries the output's tail.
    let engine = provider.client();
    node::write_file(engine, &name, "/etc/samestack/a b.txt", "line 1\n'quoted' $HOME \"x\"\n").await.unwrap();
    let back = node::run(engine, &name, &["cat", "/etc/samestack/a b.txt"]).await.unwrap();
    assert_eq!(back, "line 1\n'quoted' $HOME \"x\"\n", "written byte for byte");
    let err = node::run(engine, &name, &["sh", "-c", "echo first; echo last words >&2; exit 3"]).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exited with 3") && text.contains("last words"), "{text}");

    // Registry wiring on a kind-style node whose containerd already has config_path set.
    node::write_file(
        engine,
        &name,
        "/etc/containerd/config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
    )
    .await
    .unwrap();
    let registry = RegistryEndpoint { container_name: "reg".into(), host_port: 5999, port_in_network: 5000 };
    node::wire_containerd(engine, &name, &registry).await.unwrap();
    let hosts = node::run(engine, &name, &["cat", "/etc/containerd/certs.d/localhost:5999/hosts.toml"]).await.unwrap();
    assert!(hosts.contains("server = \"http://reg:5000\""), "{hosts}");

    provider.delete(&spec).await.unwrap();
    let label = format!("label=dev.samestack.project={project}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &label]), "", "no container left");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]), "", "no network left");
    for volume in volumes.split_whitespace() {
        assert_eq!(
            docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]),
            "",
            "volume {volume} removed"
        );
    }
    // Deleting again is a no-op.
    provider.delete(&spec).await.unwrap();
}

#[tokio::test]
async fn docker_auto_selects_the_native_provider_when_an_engine_answers_and_no_cli_owns_the_cluster() {
    if support::docker_or_skip(
        "docker_auto_selects_the_native_provider_when_an_engine_answers_and_no_cli_owns_the_cluster",
    )
    .is_none()
    {
        return;
    }
    let name = support::unique_name("auto");
    let spec = ClusterSpec::new(name.clone(), name);
    let provider = samestack::cluster::select(&spec).await.unwrap();
    assert_eq!(provider.name(), "docker");
    let status = provider.status(&spec).await.unwrap();
    assert_eq!(status.state, samestack::cluster::ClusterState::Absent);
    assert!(status.nodes.is_empty());
}
