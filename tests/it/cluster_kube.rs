//! Cluster tier for `samestack::kube`: apply in waves, re-apply without changes, change one
//! object, prune, readiness failures with their diagnosis, status queries; the example's prod
//! render passes the API server's validation as it is.
//!
//! The tests need a Kubernetes API server, found in this order:
//! 1. `SAMESTACK_TEST_KUBECONFIG` (optionally `SAMESTACK_TEST_CONTEXT`): a real cluster, e.g.
//!    one made by the providers or the node image's smoke test;
//! 2. an API-only cluster started here from `kube-apiserver` and `etcd` binaries
//!    (`SAMESTACK_TEST_K8S_BIN`, else `$SAMESTACK_CACHE/*/bin` (default /var/cache/samestack,
//!    where the node image build puts them), else PATH). It has no
//!    controllers or nodes: workloads never roll out, so readiness failures are staged by
//!    writing pod and Job status through the API, as a kubelet or the Job controller would.
//!
//! Outside CI a missing server skips loudly; with CI=true it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use samestack::error::{Classify, ErrorKind};
use samestack::kube::{ApplyOptions, Change, KubeClient, Phase, apply_waves, project_status};
use serde_json::{Value, json};

use crate::support::{in_ci, unique_name};

/// Where the test API server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// A real cluster with controllers and nodes.
    Full,
    /// kube-apiserver + etcd only.
    ApiOnly,
}

struct Cluster {
    kubeconfig: PathBuf,
    context: Option<String>,
    flavor: Flavor,
}

fn skip_or_fail(test: &str, why: &str) -> Option<&'static Cluster> {
    if in_ci() {
        panic!("{test}: {why}, and CI=true requires the cluster tier to run");
    }
    eprintln!(
        "SKIP {test}: {why} (set SAMESTACK_TEST_KUBECONFIG, or provide kube-apiserver and etcd via SAMESTACK_TEST_K8S_BIN)"
    );
    None
}

/// Gate for cluster-tier tests: a cluster shared by all tests of this binary, or a loud skip.
fn cluster_or_skip(test: &str) -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    // Started on its own thread: tests run inside a tokio runtime, and startup blocks on one.
    match CLUSTER.get_or_init(|| std::thread::spawn(start_cluster).join().expect("cluster startup panicked")) {
        Ok(c) => Some(c),
        Err(why) => skip_or_fail(test, why),
    }
}

fn find_binary(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SAMESTACK_TEST_K8S_BIN") {
        let p = Path::new(&dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    // The node image build (tests/cluster/build-images) keeps its binaries under this cache.
    let cache = std::env::var_os("SAMESTACK_CACHE").map(PathBuf::from).unwrap_or_else(|| "/var/cache/samestack".into());
    if let Ok(entries) = std::fs::read_dir(&cache) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for dir in dirs.iter().rev() {
            for candidate in [dir.join("bin").join(name), dir.join(name)] {
                if candidate.is_file() {
                    return Some(candidate);
                }
            }
        }
    }
    which::which(name).ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_cluster() -> Result<Cluster, String> {
    if let Some(path) = std::env::var_os("SAMESTACK_TEST_KUBECONFIG") {
        return Ok(Cluster {
            kubeconfig: path.into(),
            context: std::env::var("SAMESTACK_TEST_CONTEXT").ok(),
            flavor: Flavor::Full,
        });
    }
    let apiserver = find_binary("kube-apiserver").ok_or("no kube-apiserver binary found")?;
    let etcd = find_binary("etcd").ok_or("no etcd binary found")?;
    // Kept for the life of the test process; the watchdog below removes the processes.
    let dir = tempfile::Builder::new().prefix("samestack-apiserver-").tempdir().map_err(|e| e.to_string())?.keep();
    let token = "samestack-test-token";
    std::fs::write(dir.join("tokens.csv"), format!("{token},admin,admin,\"system:masters\"\n"))
        .map_err(|e| e.to_string())?;
    let key = dir.join("sa.key");
    let status = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("openssl: {e}"))?;
    if !status.success() {
        return Err("openssl genrsa failed".into());
    }
    let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
    let d = dir.display();
    let script = format!(
        r#"{etcd} --data-dir {d}/etcd --listen-client-urls http://127.0.0.1:{etcd_port} --advertise-client-urls http://127.0.0.1:{etcd_port} \
              --listen-peer-urls http://127.0.0.1:{peer_port} --initial-advertise-peer-urls http://127.0.0.1:{peer_port} \
              --initial-cluster default=http://127.0.0.1:{peer_port} --unsafe-no-fsync >{d}/etcd.log 2>&1 &
e=$!
{apiserver} --etcd-servers http://127.0.0.1:{etcd_port} --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port {api_port} --cert-dir {d}/certs --token-auth-file {d}/tokens.csv --authorization-mode AlwaysAllow \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file {key} \
    --service-account-signing-key-file {key} --service-cluster-ip-range 10.96.0.0/16 \
    --disable-admission-plugins ServiceAccount >{d}/apiserver.log 2>&1 &
a=$!
while kill -0 {parent} 2>/dev/null; do sleep 1; done
kill $a $e; wait; rm -rf {d}"#,
        etcd = etcd.display(),
        apiserver = apiserver.display(),
        key = key.display(),
        parent = std::process::id(),
    );
    let _watchdog: Child =
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: https://127.0.0.1:{api_port}\n    insecure-skip-tls-verify: true\n\
users:\n- name: t\n  user:\n    token: {token}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: t\ncurrent-context: t\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    // Ready when the bootstrap controllers made the default namespace.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ready = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(client) = KubeClient::connect(&kubeconfig, None).await {
                let api: Api<Namespace> = Api::all(client.raw().clone());
                if matches!(api.get_opt("default").await, Ok(Some(_))) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    });
    if !ready {
        let log = std::fs::read_to_string(dir.join("apiserver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        return Err(format!(
            "the API-only cluster did not come up within 120 s; apiserver log tail:\n{}",
            tail.join("\n")
        ));
    }
    Ok(Cluster { kubeconfig, context: None, flavor: Flavor::ApiOnly })
}

/// A one-node cluster made by the native provider from the offline node image, with the
/// directory holding its kubeconfig.
async fn node_cluster(project: &str, node_image: &str) -> (Cluster, tempfile::TempDir) {
    use samestack::cluster::{ClusterSpec, DockerProvider, Provider, ProviderChoice};
    let mut spec = ClusterSpec::new(project, project);
    spec.provider = ProviderChoice::Docker;
    spec.node_image = Some(node_image.to_string());
    let made = DockerProvider::connect().await.unwrap().ensure(&spec).await.expect("a node cluster starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, made.kubeconfig_yaml().expect("the native provider owns a kubeconfig")).unwrap();
    (Cluster { kubeconfig, context: Some(spec.context_name()), flavor: Flavor::Full }, dir)
}

async fn connect(cluster: &Cluster) -> KubeClient {
    KubeClient::connect(&cluster.kubeconfig, cluster.context.as_deref()).await.expect("connect")
}

fn labels(project: &str) -> Value {
    json!({"dev.samestack.project": project, "app.kubernetes.io/managed-by": "samestack"})
}

fn crd(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    })
}

fn manifests(ns: &str, group: &str, greeting: &str, with_secret: bool) -> Vec<Value> {
    let mut set = vec![
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1", "namespace": ns}, "spec": {"size": 3}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external", "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns}, "data": {"greeting": greeting}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        crd(group),
        // An empty list the API server stores as absent: must not count as a change on re-apply.
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-egress", "namespace": ns},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": []}}),
    ];
    if with_secret {
        set.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns}, "type": "Opaque", "stringData": {"password": "s3cr3t"}}));
    }
    set
}

async fn cleanup(client: &KubeClient, ns: &str, crd_name: Option<&str>) {
    let _ = Api::<Namespace>::all(client.raw().clone()).delete(ns, &DeleteParams::background()).await;
    if let Some(name) = crd_name {
        let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(client.raw().clone());
        let _ = api.delete(name, &DeleteParams::background()).await;
    }
}

#[tokio::test]
async fn cluster_kube_applies_in_waves_reapplies_unchanged_and_prunes() {
    let Some(cluster) = cluster_or_skip("cluster_kube_applies_in_waves_reapplies_unchanged_and_prunes") else { return };
    let client = connect(cluster).await;
    let project = unique_name("apply");
    let ns = project.clone();
    let group = format!("{}.samestack.test", unique_name("g"));
    let options = ApplyOptions { wave_timeout: Duration::from_secs(60), ..Default::default() };

    // First apply: everything created, in waves; the Widget needs its CRD established first.
    let first =
        apply_waves(&client, &project, &manifests(&ns, &group, "hello", true), &options).await.expect("first apply");
    eprintln!("first apply: {}", first.summary());
    let phases: Vec<Phase> = first.waves.iter().map(|w| w.phase).collect();
    assert_eq!(phases, [Phase::Foundation, Phase::Config, Phase::Workloads, Phase::Other]);
    assert_eq!(first.count(Change::Created), 7, "{}", first.summary());
    let cm: ConfigMap = Api::namespaced(client.raw().clone(), &ns).get("settings").await.unwrap();
    assert_eq!(cm.metadata.labels.as_ref().unwrap()["dev.samestack.project"], project, "ownership labels stamped");
    assert!(
        cm.metadata.managed_fields.as_ref().unwrap().iter().any(|m| m.manager.as_deref() == Some("samestack")),
        "applied by field manager samestack"
    );

    // Same manifests again: nothing changes.
    let started = Instant::now();
    let second =
        apply_waves(&client, &project, &manifests(&ns, &group, "hello", true), &options).await.expect("second apply");
    eprintln!("second apply (nothing changed) took {} ms", started.elapsed().as_millis());
    assert!(second.nothing_changed(), "{}", second.summary());
    assert_eq!(second.count(Change::Unchanged), 7);

    // One value changed: exactly that object changes.
    let third =
        apply_waves(&client, &project, &manifests(&ns, &group, "bonjour", true), &options).await.expect("third apply");
    assert_eq!((third.count(Change::Changed), third.count(Change::Unchanged)), (1, 6), "{}", third.summary());
    let changed: Vec<_> = third.waves.iter().flat_map(|w| &w.objects).filter(|o| o.change == Change::Changed).collect();
    assert_eq!(changed[0].key.name, "settings");

    // Objects around the project: one owned by a controller, one of another project, one left
    // by an earlier apply, one labelled by hand.
    let cms: Api<ConfigMap> = Api::namespaced(client.raw().clone(), &ns);
    let uid = cm.metadata.uid.clone().unwrap();
    let extra = |name: &str, project: &str, owned: bool| {
        let mut m =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels(project)}});
        if owned {
            m["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "settings", "uid": uid}]);
        }
        serde_json::from_value::<ConfigMap>(m).unwrap()
    };
    cms.create(&PostParams::default(), &extra("made-by-a-controller", &project, true)).await.unwrap();
    cms.create(&PostParams::default(), &extra("other-project", "someone-else", false)).await.unwrap();
    // Left by an earlier apply (samestack's field manager) that no longer produces it.
    cms.patch("stray", &PatchParams::apply("samestack"), &Patch::Apply(&extra("stray", &project, false)))
        .await
        .unwrap();
    // Labelled like the project's objects but made by hand: samestack never applied it.
    cms.create(&PostParams::default(), &extra("made-by-hand", &project, false)).await.unwrap();

    // The Secret leaves the templates: it and the stray object are pruned, nothing else.
    let fourth =
        apply_waves(&client, &project, &manifests(&ns, &group, "bonjour", false), &options).await.expect("prune apply");
    let mut pruned: Vec<String> = fourth.pruned.iter().map(|p| p.key.to_string()).collect();
    pruned.sort();
    assert_eq!(pruned, [format!("ConfigMap {ns}/stray"), format!("Secret {ns}/db")]);
    assert!(Api::<Secret>::namespaced(client.raw().clone(), &ns).get_opt("db").await.unwrap().is_none());
    assert!(cms.get_opt("made-by-a-controller").await.unwrap().is_some(), "owned objects are left to their owner");
    assert!(cms.get_opt("other-project").await.unwrap().is_some(), "other projects are not touched");
    assert!(cms.get_opt("made-by-hand").await.unwrap().is_some(), "only what samestack applied is pruned");
    assert!(cms.get_opt("settings").await.unwrap().is_some());

    // And after pruning, a further apply is quiet again.
    let fifth =
        apply_waves(&client, &project, &manifests(&ns, &group, "bonjour", false), &options).await.expect("quiet apply");
    assert!(fifth.nothing_changed(), "{}", fifth.summary());
    cleanup(&client, &ns, Some(&format!("widgets.{group}"))).await;
}

#[tokio::test]
async fn cluster_kube_unknown_kind_is_a_user_error_before_anything_is_applied() {
    let Some(cluster) = cluster_or_skip("cluster_kube_unknown_kind_is_a_user_error_before_anything_is_applied") else {
        return;
    };
    let client = connect(cluster).await;
    let ns = unique_name("unknown");
    let set = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "example.invalid/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": ns}}),
    ];
    let err = apply_waves(&client, &ns, &set, &ApplyOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(err.to_string().contains("Gadget g: the cluster does not serve example.invalid/v1/Gadget"), "{err}");
    let namespaces: Api<Namespace> = Api::all(client.raw().clone());
    assert!(namespaces.get_opt(&ns).await.unwrap().is_none(), "nothing applied");
}

#[tokio::test]
async fn cluster_kube_a_manifest_the_server_rejects_is_reported_once_and_not_as_a_user_error() {
    let Some(cluster) =
        cluster_or_skip("cluster_kube_a_manifest_the_server_rejects_is_reported_once_and_not_as_a_user_error")
    else {
        return;
    };
    let client = connect(cluster).await;
    let ns = unique_name("invalid");
    let set = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": ns}, "spec": {"ports": [{"port": 70000}]}}),
    ];
    let err = apply_waves(&client, &ns, &set, &ApplyOptions::default()).await.unwrap_err();
    // Bad input never gets this far (it fails rendering, exit 2): what the server refuses is
    // what samestack made of valid input.
    assert_eq!(err.kind(), ErrorKind::Environment, "{err}");
    assert!(err.to_string().contains(&format!("Service {ns}/bad: rejected by the API server (HTTP 422)")), "{err}");
    assert!(std::error::Error::source(&err).is_none(), "the server's answer is in the message, once");
    cleanup(&client, &ns, None).await;
}

fn deployment(ns: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "localhost:5999/samestack-test/missing:1"}]}}}})
}

#[tokio::test]
async fn cluster_kube_autoscaled_replicas_are_not_reset_by_a_reapply() {
    let Some(cluster) = cluster_or_skip("cluster_kube_autoscaled_replicas_are_not_reset_by_a_reapply") else { return };
    let client = connect(cluster).await;
    let ns = unique_name("hpa");
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 4}});
    // As the built-in templates render it: no replica count under an autoscaler.
    let mut unscaled = deployment(&ns);
    unscaled["spec"].as_object_mut().unwrap().remove("replicas");
    let with_hpa = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), unscaled, hpa];
    // No waiting: the API-only server has no controllers to roll the Deployment out.
    let options = ApplyOptions { wait: false, ..Default::default() };
    apply_waves(&client, &ns, &with_hpa, &options).await.expect("first apply");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.raw().clone(), &ns);
    let replicas = || async { deployments.get("web").await.unwrap().spec.unwrap().replicas };
    assert_eq!(replicas().await, Some(2), "a new autoscaled workload starts at the autoscaler's minReplicas");

    // The autoscaler scales it up through the scale subresource, as the HPA controller does.
    deployments
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    let again = apply_waves(&client, &ns, &with_hpa, &options).await.expect("second apply");
    assert!(again.nothing_changed(), "{}", again.summary());
    assert_eq!(replicas().await, Some(3), "the autoscaler's count stays");

    // Without an autoscaler the templates own the count again.
    let without = vec![with_hpa[0].clone(), deployment(&ns)];
    let last = apply_waves(&client, &ns, &without, &options).await.expect("apply without the HPA");
    assert_eq!(last.pruned.len(), 1, "{}", last.summary());
    assert_eq!(replicas().await, Some(1));
    cleanup(&client, &ns, None).await;
}

/// Plays the kubelet for an API-only cluster: a crash-looping pod of the Deployment and a
/// failing readiness probe event, once the Deployment exists.
async fn stage_crash_loop(client: &KubeClient, ns: &str) {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.raw().clone(), ns);
    while !matches!(deployments.get_opt("web").await, Ok(Some(_))) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.raw().clone(), ns);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-5f7c-x2", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "localhost:5999/samestack-test/missing:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "web", "image": "localhost:5999/samestack-test/missing:1", "imageID": "", "ready": false, "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}});
    pods.patch_status("web-5f7c-x2", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.raw().clone(), ns);
    let event = serde_json::from_value(json!({"metadata": {"name": "web-5f7c-x2.probe"},
        "involvedObject": {"kind": "Pod", "name": "web-5f7c-x2", "namespace": ns},
        "type": "Warning", "reason": "Unhealthy", "count": 7,
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
        "lastTimestamp": "2026-01-01T00:00:00Z", "firstTimestamp": "2026-01-01T00:00:00Z"}))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
}

#[tokio::test]
async fn cluster_kube_unready_deployment_times_out_with_a_diagnosis() {
    let Some(cluster) = cluster_or_skip("cluster_kube_unready_deployment_times_out_with_a_diagnosis") else { return };
    let client = connect(cluster).await;
    let ns = unique_name("unready");
    let set = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), deployment(&ns)];
    let options = ApplyOptions {
        wave_timeout: Duration::from_secs(if cluster.flavor == Flavor::Full { 40 } else { 6 }),
        ..Default::default()
    };
    let apply = apply_waves(&client, &ns, &set, &options);
    let err = if cluster.flavor == Flavor::ApiOnly {
        let (result, ()) = tokio::join!(apply, stage_crash_loop(&client, &ns));
        result.unwrap_err()
    } else {
        apply.await.unwrap_err()
    };
    let text = err.to_string();
    eprintln!("diagnosis shown to the user:\n{text}");
    assert_eq!(err.kind(), ErrorKind::Environment);
    assert!(text.starts_with("wave \"workloads\" was not ready after"), "{text}");
    assert!(text.contains(&format!("Deployment {ns}/web: ")), "{text}");
    if cluster.flavor == Flavor::ApiOnly {
        assert!(
            text.contains(
                "pod web-5f7c-x2 container web: CrashLoopBackOff, last exit code 3 (Error), restarted 4 times"
            ),
            "{text}"
        );
        assert!(text.contains("event Unhealthy on pod/web-5f7c-x2 (x7): Readiness probe failed: HTTP probe failed with statuscode: 503"), "{text}");
        assert!(text.contains("pod web-5f7c-x2 previous instance web"), "previous logs asked for: {text}");
    } else {
        assert!(text.contains("ErrImagePull") || text.contains("ImagePullBackOff"), "{text}");
    }
    cleanup(&client, &ns, None).await;
}

#[tokio::test]
async fn cluster_kube_failed_job_fails_its_wave_at_once() {
    let Some(cluster) = cluster_or_skip("cluster_kube_failed_job_fails_its_wave_at_once") else { return };
    if cluster.flavor == Flavor::Full {
        eprintln!("SKIP cluster_kube_failed_job_fails_its_wave_at_once: stages Job status, API-only clusters only");
        return;
    }
    let client = connect(cluster).await;
    let ns = unique_name("job");
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": ns},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "localhost:5999/samestack-test/migrate:1"}]}}}});
    let set = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), job, deployment(&ns)];
    let options = ApplyOptions { wave_timeout: Duration::from_secs(60), ..Default::default() };
    let fail_job = async {
        let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.raw().clone(), &ns);
        while !matches!(jobs.get_opt("migrate").await, Ok(Some(_))) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let now = "2026-01-01T00:00:00Z";
        let status = json!({"status": {"startTime": now, "failed": 1, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now, "lastProbeTime": now},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now, "lastProbeTime": now}]}});
        jobs.patch_status("migrate", &PatchParams::default(), &Patch::Merge(&status)).await.expect("stage job failure");
    };
    let started = Instant::now();
    let (result, ()) = tokio::join!(apply_waves(&client, &ns, &set, &options), fail_job);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(started.elapsed() < Duration::from_secs(50), "a failed Job ends the wait before the timeout");
    assert!(text.starts_with("wave \"jobs\" failed:"), "{text}");
    assert!(text.contains(&format!("Job {ns}/migrate: job failed: BackoffLimitExceeded")), "{text}");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.raw().clone(), &ns);
    assert!(deployments.get_opt("web").await.unwrap().is_none(), "workloads wait for the jobs wave");
    cleanup(&client, &ns, None).await;
}

#[tokio::test]
async fn cluster_kube_status_lists_workloads_and_service_ports() {
    let Some(cluster) = cluster_or_skip("cluster_kube_status_lists_workloads_and_service_ports") else { return };
    let client = connect(cluster).await;
    let project = unique_name("status");
    let ns = project.clone();
    let set = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        deployment(&ns),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": ns},
            "spec": {"rules": [{"host": "web.localhost", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
    ];
    let options = ApplyOptions { wait: false, ..Default::default() };
    apply_waves(&client, &project, &set, &options).await.expect("apply");
    let status = project_status(&client, &project).await.expect("status");
    assert_eq!(status.workloads.len(), 1, "{status:#?}");
    let web = &status.workloads[0];
    assert_eq!((web.kind.as_str(), web.name.as_str(), web.desired, web.ready), ("Deployment", "web", 1, 0));
    assert!(!status.all_ready());
    assert_eq!(status.services.len(), 1);
    assert_eq!(status.services[0].ports[0].port, 80);
    assert_eq!(status.ingresses[0].hosts, ["web.localhost"]);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["services"][0]["ports"][0]["target_port"], "http");
    cleanup(&client, &ns, None).await;
}

/// An image the real cluster's nodes already hold (`SAMESTACK_TEST_IMAGE`, a busybox), for
/// tests that need containers to run.
fn runnable_image(test: &str, cluster: &Cluster) -> Option<String> {
    if cluster.flavor == Flavor::ApiOnly {
        eprintln!("SKIP {test}: needs nodes; the API-only cluster has none");
        return None;
    }
    match std::env::var("SAMESTACK_TEST_IMAGE") {
        Ok(image) => Some(image),
        Err(_) if in_ci() => panic!("{test}: SAMESTACK_TEST_IMAGE (a busybox image on the nodes) must be set in CI"),
        Err(_) => {
            eprintln!("SKIP {test}: set SAMESTACK_TEST_IMAGE to a busybox image the nodes hold");
            None
        }
    }
}

#[tokio::test]
async fn cluster_kube_workloads_become_ready_and_a_failing_job_shows_its_logs() {
    let test = "cluster_kube_workloads_become_ready_and_a_failing_job_shows_its_logs";
    let Some(shared) = cluster_or_skip(test) else { return };
    // Containers must run: on the API-only cluster, make a real one from the node image.
    let own_cluster;
    let _cleanup;
    let (cluster, image) = match shared.flavor {
        Flavor::Full => {
            let Some(image) = runnable_image(test, shared) else { return };
            (shared, image)
        }
        Flavor::ApiOnly => {
            let Some(node_image) = crate::support::cluster_or_skip(test, &[]) else { return };
            let project = unique_name("kube-nodes");
            _cleanup = crate::support::ProjectCleanup(project.clone());
            own_cluster = node_cluster(&project, &node_image).await;
            // tests/cluster/build-images preloads this busybox into the node image, tagged alike.
            (&own_cluster.0, node_image.replace("/node:", "/cluster-busybox:"))
        }
    };
    let client = connect(cluster).await;
    let ns = unique_name("ready");
    let container = |name: &str, command: &str| json!({"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command]});
    let mut web =
        container("httpd", "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www");
    web["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1});
    let set = |job_command: &str| {
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": ns},
                "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [container("migrate", job_command)]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [web.clone()]}}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ]
    };
    let options = ApplyOptions { wave_timeout: Duration::from_secs(180), ..Default::default() };
    let started = Instant::now();
    let report = apply_waves(&client, &ns, &set("echo migrated"), &options).await.expect("becomes ready");
    eprintln!("cold apply to ready: {} ms ({})", started.elapsed().as_millis(), report.summary());
    let status = project_status(&client, &ns).await.unwrap();
    assert!(status.all_ready(), "{status:#?}");
    let web_status = status.workloads.iter().find(|w| w.name == "web").unwrap();
    assert_eq!((web_status.desired, web_status.ready), (2, 2));

    let started = Instant::now();
    let again = apply_waves(&client, &ns, &set("echo migrated"), &options).await.expect("re-apply");
    eprintln!("warm re-apply: {} ms ({})", started.elapsed().as_millis(), again.summary());
    assert!(again.nothing_changed(), "{}", again.summary());

    // A Job's template cannot change in place; a new Job name stands for a new migration.
    cleanup(&client, &ns, None).await;
    let namespaces: Api<Namespace> = Api::all(client.raw().clone());
    while namespaces.get_opt(&ns).await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let err = apply_waves(&client, &ns, &set("echo 'relation users already exists' >&2; exit 3"), &options)
        .await
        .expect_err("a failing migration fails the jobs wave");
    let text = err.to_string();
    eprintln!("diagnosis shown to the user:\n{text}");
    assert!(text.starts_with("wave \"jobs\" failed:"), "{text}");
    assert!(text.contains("exited with code 3"), "{text}");
    assert!(text.contains("| relation users already exists"), "{text}");
    cleanup(&client, &ns, None).await;
}

/// What `render --profile prod` hands to production is valid for the API server as it is:
/// every object of the example's prod render, secrets redacted, passes a server-side dry-run
/// apply with strict field validation (unknown or duplicate fields fail) in a fresh namespace.
#[tokio::test]
async fn cluster_kube_prod_render_passes_a_server_side_dry_run() {
    let Some(cluster) = cluster_or_skip("cluster_kube_prod_render_passes_a_server_side_dry_run") else { return };
    let client = connect(cluster).await;
    let out = crate::render::on_example().args(["render", "--profile", "prod"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert!(docs.iter().any(|d| d["kind"] == "Secret" && d.get("data").is_none()), "the Secret is redacted");
    // The objects go into a namespace of this test's own; the Namespace itself is created for
    // real, since nothing in a namespace that does not exist can even be dry-run.
    let ns = unique_name("prodrender");
    for d in &mut docs {
        if d["kind"] == "Namespace" {
            d["metadata"]["name"] = json!(ns);
        } else {
            d["metadata"]["namespace"] = json!(ns);
        }
    }
    let namespace = docs.iter().position(|d| d["kind"] == "Namespace").expect("a Namespace");
    let namespace = docs.remove(namespace);
    let namespaces: Api<Namespace> = Api::all(client.raw().clone());
    namespaces
        .patch(&ns, &PatchParams::apply("samestack-test"), &Patch::Apply(&namespace))
        .await
        .expect("the rendered Namespace applies");
    let params = PatchParams {
        dry_run: true,
        force: true,
        field_manager: Some("samestack-test".into()),
        field_validation: Some(kube::api::ValidationDirective::Strict),
    };
    let mut rejected = Vec::new();
    for d in &docs {
        let (group, version) = match d["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", d["apiVersion"].as_str().unwrap()),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, d["kind"].as_str().unwrap());
        let (resource, _) =
            kube::discovery::pinned_kind(client.raw(), &gvk).await.expect("the API server serves the kind");
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.raw().clone(), &ns, &resource);
        let name = d["metadata"]["name"].as_str().unwrap();
        if let Err(e) = api.patch(name, &params, &Patch::Apply(d)).await {
            rejected.push(format!("{} {name}: {e}", d["kind"]));
        }
    }
    cleanup(&client, &ns, None).await;
    assert!(rejected.is_empty(), "the API server rejects the prod render:\n{}", rejected.join("\n"));
    assert!(docs.len() > 20, "{} objects", docs.len());
}
