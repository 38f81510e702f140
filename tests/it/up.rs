//! `samestack up`, `status` and `down` as a user runs them. Cluster tier: `up` brings the
//! guestbook example (API, worker, postgres, migrations) to ready on the offline node image,
//! pulling its images from the local registry through the wired mirror; a second `up` changes
//! nothing, also two of them at once (the second waits for the first) and after a `ci` of the
//! same project ran beside it; a cluster that lost its bootstrap marker is adopted, not
//! recreated (running, and after a restart); a config change touches only its resource and a
//! resource gone from the templates is pruned; the app answers on the host through the ingress
//! controller, also after the containers were stopped (a reboot); another profile on the same
//! cluster converges; Ctrl-C in any step converges on the next `up`; `down` leaves only the
//! registry, `down --purge` nothing. Docker tier: a taken port and a lost engine fail clearly.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::Deployment;

use crate::docker_fixture::{self, POSTGRES, PYTHON_BASE, REGISTRY_IMAGE, TRAEFIK, docker};
use crate::support::{self, Stack, output_text, step_line};

/// Docker, the node image and the example's test images; skips loudly outside CI, fails in CI.
fn cluster_or_skip(test: &str) -> Option<String> {
    support::cluster_or_skip(test, &[PYTHON_BASE, POSTGRES, REGISTRY_IMAGE, TRAEFIK])
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_up_runs_the_example_converges_prunes_and_down_cleans_up() {
    if cluster_or_skip("cluster_up_runs_the_example_converges_prunes_and_down_cleans_up").is_none() {
        return;
    }
    let stack = Stack::new();

    // First `up`: everything is created and ready (readiness includes the API's /healthz,
    // which answers 200 only when it reaches the database, and the completed migrations Job).
    let first = stack.up();
    assert!(step_line(&first, "images").contains("2 built or pushed"), "{first}");
    assert!(step_line(&first, "preload").contains("2 image(s)"), "{first}");
    assert!(step_line(&first, "ingress").contains("installed, ready"), "{first}");
    assert!(step_line(&first, "apply").contains("all ready, 1 Ingress path(s) routed"), "{first}");
    // The database's claim inherits the project's labels from the StatefulSet, but samestack
    // did not apply it: never pruned.
    assert!(step_line(&first, "apply").contains(" 0 pruned"), "{first}");
    let status = stack.samestack(&["status", "--json"]);
    assert!(status.status.success(), "status is not ready:\n{}", output_text(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert_eq!(report["ready"], true, "{report:#}");
    let urls = [
        format!("http://guestbook.localhost:{}/", stack.ingress_port),
        format!("https://guestbook.localhost:{}/", stack.https_port),
    ];
    assert_eq!(report["urls"], serde_json::json!(urls), "{report:#}");
    let workloads = report["resources"]["workloads"].as_array().unwrap();
    for name in ["api", "worker", "database"] {
        assert!(workloads.iter().any(|w| w["name"] == name && w["ready"] == 1), "{name} not ready: {report:#}");
    }

    // The API answers on the host through the ingress controller, by its dev host name, with
    // no port-forward: /healthz is 200 only when the API reaches the database.
    let url = format!("http://guestbook.localhost:{}/", stack.ingress_port);
    assert!(first.contains("ingress/api") && first.contains(&url), "no URL {url} in:\n{first}");
    let (status_line, body) = stack.get_through_ingress("guestbook.localhost", "/healthz");
    assert!(status_line.contains(" 200 "), "GET /healthz through the ingress: {status_line}\n{body}");
    let (status_line, _) = stack.get_through_ingress("elsewhere.localhost", "/healthz");
    assert!(status_line.contains(" 404 "), "a host no Ingress names must not reach the API: {status_line}");
    // HTTPS verifies against the development CA: the Ingress's TLS Secret was issued by `up`.
    assert!(step_line(&first, "render").contains("Ingress TLS from the development CA"), "{first}");
    let (code, reply) = stack.get_https("guestbook.localhost", "/healthz");
    assert_eq!((code, reply.as_str()), (Some(0), "200"), "GET https://guestbook.localhost/healthz");

    // The pods run images the node could only get from the local registry, through the mirror.
    let client = samestack::kube::KubeClient::connect(&stack.kubeconfig(), Some(&format!("samestack-{}", stack.name)))
        .await
        .expect("the user's kubeconfig has the context");
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    let api = deployments.get("api").await.unwrap();
    let image = api.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
    assert!(image.starts_with(&format!("localhost:{}/{}/api@sha256:", stack.registry_port, stack.name)), "{image}");
    let statefulsets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client.raw().clone(), &stack.name);
    let database = statefulsets.get("database").await.unwrap();
    let image = database.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
    assert!(
        image.starts_with(&format!("localhost:{}/samestack-test/postgres@sha256:", stack.registry_port)),
        "{image}"
    );

    // `ci` of the same project while the developer's stack runs: a cluster, registry, ports and
    // kubeconfig of its own, so both are unharmed. ci passes against its own API and leaves
    // nothing; the developer's stack still answers, and the `up`s below find nothing changed.
    let ci_name = support::unique_name("upci");
    let _ci_cleanup = support::ProjectCleanup(ci_name.clone());
    let (base, preload) = (format!("BASE_IMAGE={PYTHON_BASE}"), format!("{POSTGRES},{TRAEFIK}"));
    let check = r#"test "$(curl -sS -o /dev/null -w '%{http_code}' "$SAMESTACK_API_URL/healthz")" = 200"#;
    let ci = stack
        .command(&["ci", "--name", &ci_name, "--build-arg", &base, "--preload", &preload, "--ready-timeout", "420"])
        .args(["--", "sh", "-c", check])
        .stdin(Stdio::null())
        .output()
        .expect("samestack runs");
    let text = output_text(&ci);
    assert!(ci.status.success(), "ci beside the developer's up failed:\n{text}");
    assert_eq!(support::labelled_objects(&ci_name), Vec::<String>::new(), "ci left something:\n{text}");
    let (status_line, body) = stack.get_through_ingress("guestbook.localhost", "/healthz");
    assert!(status_line.contains(" 200 "), "the developer's stack after ci: {status_line}\n{body}");

    // Two more `up`s at once, the second started while the first is under way: it waits for
    // the first with a message instead of racing it, then finds nothing to do either. Nothing
    // to build, nothing changed: the state is intact.
    let args = stack.up_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let spawn = || stack.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("samestack runs");
    let mut running = spawn();
    let mut lines = BufReader::new(running.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("preflight") {
            break;
        }
    }
    let waiting = spawn();
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let running = running.wait_with_output().unwrap();
    let first_text = format!("{seen}{}", rest.join().unwrap());
    assert!(running.status.success(), "the first of two concurrent `up`s failed:\n{first_text}");
    let waiting = waiting.wait_with_output().unwrap();
    let second = output_text(&waiting);
    assert!(waiting.status.success(), "the second of two concurrent `up`s failed:\n{second}");
    assert!(
        second.contains(&format!("waiting for another samestack run on project {}", stack.name)),
        "the second `up` did not wait for the first:\n{second}"
    );
    assert!(step_line(&first_text, "apply").contains("0 created, 0 changed"), "{first_text}");
    assert!(step_line(&second, "images").contains("0 built or pushed, 2 unchanged"), "{second}");
    assert!(step_line(&second, "ingress").contains(") ready on"), "{second}");
    assert!(step_line(&second, "apply").contains("0 created, 0 changed"), "{second}");
    assert!(step_line(&second, "apply").contains("0 pruned"), "{second}");

    // A cluster without the bootstrap marker (made by a samestack that wrote none, or the
    // marker lost) whose nodes are Ready is adopted with its data, not recreated: the same node
    // container, one warning, the marker back, nothing to apply.
    let node = samestack::cluster::docker::node_name(&stack.name, "server", 0);
    let node_id = docker(&["inspect", "-f", "{{.Id}}", &node]);
    let remove_marker = || docker(&["exec", &node, "rm", samestack::cluster::docker::BOOTSTRAPPED_MARKER]);
    let has_marker = || {
        let marker = samestack::cluster::docker::BOOTSTRAPPED_MARKER;
        Command::new("docker").args(["exec", &node, "test", "-f", marker]).status().unwrap().success()
    };
    remove_marker();
    let adopted = stack.up();
    assert_eq!(adopted.matches("adopted it").count(), 1, "no (or more than one) adoption warning:\n{adopted}");
    assert!(step_line(&adopted, "cluster").contains("reused"), "{adopted}");
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &node]), node_id, "the node was recreated");
    assert!(has_marker(), "the adopted cluster was not marked bootstrapped");
    assert!(step_line(&adopted, "apply").contains("0 created, 0 changed"), "{adopted}");

    // One changed setting touches one resource.
    stack.edit("      HEALTH_PORT: \"8081\"\n", "      HEALTH_PORT: \"8081\"\n      GREETING: changed\n");
    let third = stack.up();
    assert!(step_line(&third, "images").contains("0 built or pushed"), "{third}");
    assert!(step_line(&third, "apply").contains("0 created, 1 changed"), "{third}");
    assert!(step_line(&third, "apply").contains("0 pruned"), "{third}");

    // A reboot: every container of the project stops. `up` starts them again, re-wires the
    // registry, and the app answers through the ingress once more. Without the marker too: the
    // nodes Ready since the restart, the cluster is adopted, not recreated.
    remove_marker();
    let label = format!("label=dev.samestack.project={}", stack.name);
    let containers = docker(&["ps", "-q", "--filter", &label]);
    let containers: Vec<&str> = containers.lines().filter(|l| !l.is_empty()).collect();
    assert!(containers.len() >= 2, "expected the node and the registry: {containers:?}");
    docker(&[&["stop", "-t", "5"][..], &containers].concat());
    let rebooted = stack.up();
    assert!(step_line(&rebooted, "registry").contains("started"), "{rebooted}");
    assert!(step_line(&rebooted, "cluster").contains("started"), "{rebooted}");
    assert!(step_line(&rebooted, "apply").contains("all ready, 1 Ingress path(s) routed"), "{rebooted}");
    assert_eq!(rebooted.matches("adopted it").count(), 1, "no adoption after the restart:\n{rebooted}");
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &node]), node_id, "the node was recreated after the restart");
    assert!(has_marker(), "the cluster adopted after the restart was not marked bootstrapped");
    let (status_line, body) = stack.get_through_ingress("guestbook.localhost", "/healthz");
    assert!(status_line.contains(" 200 "), "GET /healthz through the ingress after a reboot: {status_line}\n{body}");
    assert_eq!(stack.get_https("guestbook.localhost", "/healthz"), (Some(0), "200".into()), "HTTPS after a reboot");

    // The Ingress gone from the config is pruned with its TLS Secret (and the API's
    // NetworkPolicy no longer admits the ingress controller: that one change).
    stack.edit("    ingress: { host: guestbook.example.com, path: / }\n", "");
    let fourth = stack.up();
    assert!(step_line(&fourth, "apply").contains("0 created, 1 changed"), "{fourth}");
    assert!(step_line(&fourth, "apply").contains("2 pruned"), "{fourth}");
    // The API server's host port changed with the restart: `up` rewrote the kubeconfig.
    let client = samestack::kube::KubeClient::connect(&stack.kubeconfig(), Some(&format!("samestack-{}", stack.name)))
        .await
        .expect("the user's kubeconfig has the context");
    let ingresses: kube::Api<k8s_openapi::api::networking::v1::Ingress> =
        kube::Api::namespaced(client.raw().clone(), &stack.name);
    assert!(ingresses.get_opt("api").await.unwrap().is_none(), "the Ingress was not pruned");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.raw().clone(), &stack.name);
    assert!(secrets.get_opt("api-tls").await.unwrap().is_none(), "the Ingress's TLS Secret was not pruned");

    // Another profile on the same cluster converges. The migrations Job's pod template differs
    // (LOG_LEVEL) and a Job's template is immutable: it is a new Job, named by its spec, which
    // runs again; the old one is pruned.
    let ci = stack.up_with(&["--profile", "ci"]);
    assert!(step_line(&ci, "apply").contains("all ready"), "{ci}");
    assert!(step_line(&ci, "apply").contains("1 created"), "{ci}");
    assert!(step_line(&ci, "apply").contains(" 1 pruned"), "{ci}");
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    let names: Vec<String> = jobs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter_map(|j| j.metadata.name)
        .collect();
    assert_eq!(names.len(), 1, "the Job of the dev profile was not pruned: {names:?}");

    // `down` keeps only the registry (the image cache); `down --purge` leaves nothing.
    let down = stack.samestack(&["down"]);
    assert!(down.status.success(), "{}", output_text(&down));
    stack.assert_down_kept_only_the_registry_and_purge_removes_it();
    let registry_tags = format!("localhost:{}/", stack.registry_port);
    let tags = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!tags.contains(&registry_tags), "down --purge left tags into the registry:\n{tags}");
}

/// Ctrl-C inside each step in turn (the signal goes out as soon as the previous step's line
/// appears), then an uninterrupted `up` converges and a further one changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_up_interrupted_in_each_step_converges_on_the_next_up() {
    if cluster_or_skip("cluster_up_interrupted_in_each_step_converges_on_the_next_up").is_none() {
        return;
    }
    let stack = Stack::new();
    for after in ["preflight", "registry", "cluster", "images", "preload", "ingress", "render"] {
        let (status, output) = stack.up_interrupted_after(after);
        if status.success() {
            // The run finished before the signal landed (a fast step): nothing to interrupt.
            continue;
        }
        assert_eq!(status.code(), Some(130), "interrupted after `{after}`, exit code:\n{output}");
        assert!(output.contains("interrupted"), "interrupted after `{after}`:\n{output}");
    }
    let converged = stack.up();
    assert!(step_line(&converged, "apply").contains("all ready"), "{converged}");
    let again = stack.up();
    assert!(step_line(&again, "images").contains("0 built or pushed"), "{again}");
    assert!(step_line(&again, "apply").contains("0 created, 0 changed"), "{again}");
    let purge = stack.samestack(&["down", "--purge"]);
    assert!(purge.status.success(), "{}", output_text(&purge));
    assert_eq!(stack.labelled_objects(), Vec::<String>::new());
}

impl Stack {
    /// Runs `up`, sends SIGINT as soon as the line of step `after` appears, and returns the
    /// exit status with everything it printed.
    fn up_interrupted_after(&self, after: &str) -> (std::process::ExitStatus, String) {
        use std::io::{BufRead, BufReader};
        let args = self.up_args();
        let mut command = self.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut child = command.stderr(std::process::Stdio::piped()).spawn().expect("samestack runs");
        let mut output = String::new();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            output.push_str(&line);
            output.push('\n');
            if line.starts_with(after) {
                let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
                assert!(sent.success());
                break;
            }
        }
        for line in lines {
            output.push_str(&line.unwrap());
            output.push('\n');
        }
        (child.wait().unwrap(), output)
    }
}

#[test]
fn docker_up_reports_a_taken_port_before_creating_anything() {
    if docker_fixture::docker_with_images("docker_up_reports_a_taken_port_before_creating_anything").is_none() {
        return;
    }
    let stack = Stack::new();
    let _held =
        std::net::TcpListener::bind(("127.0.0.1", stack.registry_port)).expect("the test holds the registry port");
    let out = stack.up_output();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let wanted = format!(
        "127.0.0.1:{} for the registry (registry.host_port): in use by process {}",
        stack.registry_port,
        std::process::id()
    );
    assert!(text.contains(&wanted), "{text}");
    assert!(text.contains("nothing was created") && text.contains("fix:"), "{text}");
    assert_eq!(stack.labelled_objects(), Vec::<String>::new(), "up created something despite the taken port");
}

/// The engine goes away in the middle of `up`: a proxy in front of the real engine's socket is
/// cut as soon as the registry step is done (the shared engine itself cannot be stopped while
/// other tests use it). The next step fails with the engine-not-running error, exit code 1.
#[tokio::test(flavor = "multi_thread")]
async fn docker_up_with_the_engine_lost_mid_run_fails_clearly() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    if docker_fixture::docker_with_images("docker_up_with_the_engine_lost_mid_run_fails_clearly").is_none() {
        return;
    }
    let stack = Stack::new();
    let engine = std::env::var("DOCKER_HOST").ok().and_then(|h| h.strip_prefix("unix://").map(PathBuf::from));
    let engine = engine.unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    let socket = stack.dir.path().join("engine.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let (cut, cut_seen) = tokio::sync::watch::channel(false);
    let proxy = tokio::spawn(async move {
        let mut stop = cut_seen.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { return };
                    let mut cut_seen = cut_seen.clone();
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        let Ok(mut upstream) = tokio::net::UnixStream::connect(&engine).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = cut_seen.wait_for(|cut| *cut) => {}
                        }
                    });
                }
                // The engine is gone: open connections drop and nothing answers any more.
                _ = stop.wait_for(|cut| *cut) => return,
            }
        }
    });

    let args = stack.up_args();
    let mut child = tokio::process::Command::from(stack.command(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("samestack runs");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut output = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.starts_with("registry") {
            cut.send(true).unwrap();
        }
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait().await.unwrap();
    proxy.await.unwrap();
    assert!(*cut.borrow(), "up never reached the registry step:\n{output}");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("Docker is not running"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
}
