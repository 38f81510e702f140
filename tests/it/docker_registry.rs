//! Docker tier: the local registry container (create, reuse, restart, remove, port conflicts)
//! and the engine-unreachable error.

use samestack::docker;
use samestack::error::{Classify, ErrorKind};
use samestack::registry::{self, Action};

use crate::docker_fixture::{self as fx, Cleanup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_registry_create_reuse_restart_and_remove() {
    let Some(()) = fx::docker_with_images("docker_registry_create_reuse_restart_and_remove") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let spec = fx::registry_spec(&mut cleanup, "ss-it-reg");

    let first = registry::ensure(&client, &spec).await.unwrap();
    assert_eq!(first.action, Action::Created);
    assert_eq!(first.host_address(), format!("localhost:{}", spec.host_port));
    let (status, _) = fx::http(spec.host_port, "GET", "/v2/", None).unwrap();
    assert_eq!(status, 200, "registry answers /v2/ once ensure returns");

    // Owned, published on loopback only, restarts unless stopped, data in the named volume.
    let inspect = |format: &str| fx::docker(&["inspect", "--format", format, &spec.name]);
    assert_eq!(inspect("{{index .Config.Labels \"dev.samestack.role\"}}"), "registry");
    assert_eq!(inspect("{{index .Config.Labels \"dev.samestack.project\"}}"), "samestack-it");
    assert_eq!(inspect("{{.HostConfig.RestartPolicy.Name}}"), "unless-stopped");
    assert_eq!(inspect("{{(index (index .HostConfig.PortBindings \"5000/tcp\") 0).HostIp}}"), "127.0.0.1");
    assert!(
        inspect("{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}")
            .contains(&format!("{}:/var/lib/registry", spec.volume()))
    );

    let again = registry::ensure(&client, &spec).await.unwrap();
    assert_eq!(again.action, Action::Reused, "second call changes nothing");
    assert_eq!(again.container_id, first.container_id);

    fx::docker(&["stop", "-t", "1", &spec.name]);
    let restarted = registry::ensure(&client, &spec).await.unwrap();
    assert_eq!(restarted.action, Action::Started);
    assert_eq!(restarted.container_id, first.container_id, "a stopped registry is started, not recreated");

    // A changed image that cannot be had fails before the running registry is touched.
    let mut unavailable = spec.clone();
    unavailable.image = Some("samestack-test/no-such-registry:never".into());
    if unavailable.resolved_image() != spec.resolved_image() {
        registry::ensure(&client, &unavailable).await.expect_err("the image does not exist");
        assert_eq!(
            inspect("{{.Id}} {{.State.Running}}"),
            format!("{} true", first.container_id),
            "the registry was replaced or stopped"
        );
    }

    registry::remove(&client, &spec.name, false).await.unwrap();
    assert!(
        fx::docker(&["volume", "ls", "-q", "--filter", &format!("name={}", spec.volume())]).contains(&spec.volume()),
        "data survives remove without purge"
    );
    registry::remove(&client, &spec.name, true).await.unwrap();
    assert!(!fx::docker(&["volume", "ls", "-q"]).lines().any(|v| v == spec.volume()), "purge removes the data volume");
    registry::remove(&client, &spec.name, true).await.expect("removing twice is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_registry_port_taken_by_a_process_names_it() {
    let Some(()) = fx::docker_with_images("docker_registry_port_taken_by_a_process_names_it") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut spec = fx::registry_spec(&mut cleanup, "ss-it-regport");
    spec.host_port = listener.local_addr().unwrap().port();

    let err = registry::ensure(&client, &spec).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, registry::Error::PortTaken { .. }), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{}", spec.host_port)), "{msg}");
    assert!(msg.contains(&format!("process {}", std::process::id())), "names the holding process: {msg}");
    assert_eq!(err.kind(), ErrorKind::Environment);
    let left = fx::docker(&["ps", "-aq", "--filter", &format!("name=^{}$", spec.name)]);
    assert!(left.is_empty(), "no half-made container is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_registry_port_taken_by_a_container_names_it() {
    let Some(()) = fx::docker_with_images("docker_registry_port_taken_by_a_container_names_it") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let holder = fx::start_registry(&client, &mut cleanup, "ss-it-regholder").await;
    let mut spec = fx::registry_spec(&mut cleanup, "ss-it-regclash");
    spec.host_port = holder.host_port;

    let msg = registry::ensure(&client, &spec).await.unwrap_err().to_string();
    assert!(msg.contains(&format!("container `{}`", holder.name)), "names the holding container: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_registry_refuses_a_foreign_container_with_its_name() {
    let Some(()) = fx::docker_with_images("docker_registry_refuses_a_foreign_container_with_its_name") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let spec = fx::registry_spec(&mut cleanup, "ss-it-regforeign");
    fx::docker(&["create", "--name", &spec.name, fx::BUSYBOX, "true"]);

    let err = registry::ensure(&client, &spec).await.unwrap_err();
    assert!(matches!(err, registry::Error::NameTaken { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::User);
    let err = registry::remove(&client, &spec.name, true).await.unwrap_err();
    assert!(matches!(err, registry::Error::NameTaken { .. }), "remove leaves foreign containers alone: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_unreachable_daemon_is_an_environment_error() {
    // A socket file nobody listens on (a daemon that died) and a path with no socket at all.
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    for host in [format!("unix://{}", dead.display()), format!("unix://{}/missing.sock", dir.path().display())] {
        let err = docker::connect_to(&host).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("Docker is not running: "), "{msg}");
        assert!(msg.contains("sudo systemctl start docker"), "{msg}");
        assert!(msg.contains(&host), "names the address tried: {msg}");
        assert_eq!(err.kind(), ErrorKind::Environment);
        let any: anyhow::Error = err.into();
        assert_eq!(samestack::error::kind_of(&any).exit_code(), 1);
    }
}
