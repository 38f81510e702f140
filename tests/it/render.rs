//! `samestack render`: snapshots of the example's manifests per built-in profile, determinism,
//! redaction, output directories, overrides.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::samestack;

pub const PASSWORD: &str = "snapshot-password";

pub fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/guestbook/samestack.yaml")
}

/// `samestack -f <example> ...` with a known secret and no stray environment.
pub fn on_example() -> Command {
    let mut c = samestack();
    c.env("GUESTBOOK_DB_PASSWORD", PASSWORD)
        .env_remove("SAMESTACK_POSTGRES_IMAGE")
        .env_remove("SAMESTACK_FILE")
        .arg("-f")
        .arg(example());
    c
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "exit {:?}\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn render_example(profile: &str) -> String {
    ok(on_example().args(["render", "--profile", profile]).output().unwrap())
}

#[test]
fn snapshot_dev() {
    insta::assert_snapshot!("guestbook_dev", render_example("dev"));
}

#[test]
fn snapshot_ci() {
    insta::assert_snapshot!("guestbook_ci", render_example("ci"));
}

#[test]
fn snapshot_prod() {
    insta::assert_snapshot!("guestbook_prod", render_example("prod"));
}

#[test]
fn help_snapshots() {
    let top = ok(samestack().env_remove("SAMESTACK_FILE").arg("--help").output().unwrap());
    let render = ok(samestack().env_remove("SAMESTACK_FILE").args(["render", "--help"]).output().unwrap());
    let init = ok(samestack().env_remove("SAMESTACK_FILE").args(["init", "--help"]).output().unwrap());
    insta::assert_snapshot!(
        "help",
        format!("$ samestack --help\n{top}\n$ samestack render --help\n{render}\n$ samestack init --help\n{init}")
    );
}

#[test]
fn render_is_deterministic() {
    assert_eq!(render_example("prod"), render_example("prod"));
}

#[test]
fn every_document_has_the_ownership_labels() {
    let text = render_example("prod");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    assert!(docs.len() > 20, "{} documents", docs.len());
    for d in &docs {
        let labels = &d["metadata"]["labels"];
        for key in [
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/part-of",
            "dev.samestack.project",
            "app.kubernetes.io/name",
            "dev.samestack.owner",
            "dev.samestack.cost-center",
        ] {
            assert!(labels[key].is_string(), "{key} missing on {} {}", d["kind"], d["metadata"]["name"]);
        }
    }
}

#[test]
fn secrets_are_redacted_unless_revealed() {
    let redacted = render_example("prod");
    assert!(!redacted.contains(PASSWORD) && !redacted.contains("c25hcHNob3QtcGFzc3dvcmQ="));
    // A redacted Secret is still a valid object: no data rather than a placeholder that is not
    // base64 (or one that would overwrite the real value), and marked as redacted.
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&redacted).unwrap();
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    assert_eq!(secret.get("data"), None, "{secret:#}");
    assert_eq!(secret["metadata"]["annotations"]["dev.samestack/redacted"], "value", "{secret:#}");
    let revealed = ok(on_example().args(["render", "--profile", "prod", "--reveal"]).output().unwrap());
    assert!(revealed.contains("c25hcHNob3QtcGFzc3dvcmQ="), "base64 of the password");
    assert!(!revealed.contains("dev.samestack/redacted"));
}

fn documents(profile: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple(&render_example(profile)).unwrap()
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn autoscaled_deployments_leave_the_replica_count_to_their_autoscaler() {
    for profile in ["dev", "ci", "prod"] {
        let docs = documents(profile);
        for hpa in docs.iter().filter(|d| d["kind"] == "HorizontalPodAutoscaler") {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            let deployment = find(&docs, "Deployment", target);
            assert_eq!(deployment["spec"].get("replicas"), None, "{profile}: Deployment {target} sets replicas");
        }
    }
}

#[test]
fn liveness_checks_the_process_and_readiness_the_dependencies() {
    let docs = documents("prod");
    for (name, port) in [("api", 8080), ("worker", 8081)] {
        let c = &find(&docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["readinessProbe"]["httpGet"], serde_json::json!({"path": "/healthz", "port": port}), "{name}");
        for probe in ["livenessProbe", "startupProbe"] {
            assert_eq!(c[probe]["httpGet"], serde_json::json!({"path": "/livez", "port": port}), "{name} {probe}");
        }
        assert!(c["livenessProbe"].get("initialDelaySeconds").is_none(), "the startup probe guards slow starts");
    }
    let db = &find(&docs, "StatefulSet", "database")["spec"]["template"]["spec"]["containers"][0];
    assert!(db["startupProbe"]["exec"].is_object(), "{db:#}");
}

#[test]
fn a_service_without_a_liveness_path_gets_tcp_liveness() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n    health: { path: /ready }\n";
    project_with(dir.path(), yaml, &[]);
    let out = ok(samestack()
        .current_dir(dir.path())
        .env_remove("SAMESTACK_FILE")
        .args(["render", "--profile", "prod"])
        .output()
        .unwrap());
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    let c = &find(&docs, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["livenessProbe"]["tcpSocket"], serde_json::json!({"port": 80}), "never the readiness path");
    assert_eq!(c["startupProbe"]["tcpSocket"], serde_json::json!({"port": 80}));
}

#[test]
fn replicas_spread_over_nodes_and_zones_without_blocking_one_node_clusters() {
    let docs = documents("prod");
    for name in ["api", "worker"] {
        let spec = &find(&docs, "Deployment", name)["spec"]["template"]["spec"];
        let constraints = spec["topologySpreadConstraints"].as_array().unwrap();
        let keys: Vec<&str> = constraints.iter().map(|c| c["topologyKey"].as_str().unwrap()).collect();
        assert_eq!(keys, ["kubernetes.io/hostname", "topology.kubernetes.io/zone"], "{name}");
        for c in constraints {
            assert_eq!(c["whenUnsatisfiable"], "ScheduleAnyway", "{name}: preferred, never a hard rule");
            assert_eq!(
                c["labelSelector"]["matchLabels"],
                find(&docs, "Deployment", name)["spec"]["selector"]["matchLabels"]
            );
        }
    }
}

#[test]
fn every_container_has_ephemeral_storage_requests_and_limits_and_backups_do_not_pile_up() {
    let docs = documents("prod");
    let mut containers = 0;
    for d in &docs {
        let spec = match d["kind"].as_str().unwrap() {
            "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            "Deployment" | "StatefulSet" | "Job" => &d["spec"]["template"]["spec"],
            _ => continue,
        };
        for c in spec["containers"].as_array().unwrap() {
            containers += 1;
            for side in ["requests", "limits"] {
                assert!(c["resources"][side]["ephemeral-storage"].is_string(), "{} {}: {side}", d["kind"], c["name"]);
            }
        }
    }
    assert_eq!(containers, 5, "api, worker, database, migrations, backup");
    let backup = &find(&docs, "CronJob", "database-backup")["spec"];
    assert_eq!(backup["concurrencyPolicy"], "Forbid");
    assert_eq!(backup["startingDeadlineSeconds"], 3600);
    assert_eq!(
        (backup["successfulJobsHistoryLimit"].as_u64(), backup["failedJobsHistoryLimit"].as_u64()),
        (Some(3), Some(3))
    );
}

#[test]
fn the_migrations_job_name_follows_its_pod_template_across_profiles() {
    let name = |profile: &str| {
        let docs = documents(profile);
        let jobs: Vec<&serde_json::Value> = docs.iter().filter(|d| d["kind"] == "Job").collect();
        assert_eq!(jobs.len(), 1);
        jobs[0]["metadata"]["name"].as_str().unwrap().to_owned()
    };
    // dev and prod differ in LOG_LEVEL and size, ci and prod only in size: each a new Job, since
    // a Job's pod template cannot be changed in place (`up --profile ci` after dev).
    let (dev, ci, prod) = (name("dev"), name("ci"), name("prod"));
    assert!(dev != ci && ci != prod && dev != prod, "{dev} {ci} {prod}");
    assert_eq!(name("prod"), prod, "deterministic");
}

#[test]
fn prod_render_refuses_replicas_under_an_autoscaler() {
    let dir = tempfile::tempdir().unwrap();
    let svc = include_str!("../../templates/service.yaml").replace(
        "spec:\n  revisionHistoryLimit: 5",
        "spec:\n  replicas: {{ profile.replicas }}\n  revisionHistoryLimit: 5",
    );
    assert!(svc.contains("replicas: {{ profile.replicas }}"));
    project_with(dir.path(), SMALL, &[("service.yaml", &svc)]);
    let run = |profile: &str| {
        samestack()
            .current_dir(dir.path())
            .env_remove("SAMESTACK_FILE")
            .args(["render", "--profile", profile])
            .output()
            .unwrap()
    };
    let out = run("prod");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Deployment shop/web (from service.yaml (templates/service.yaml) for service `web`"), "{err}");
    assert!(err.contains("sets spec.replicas although a HorizontalPodAutoscaler scales it"), "{err}");
    assert!(err.contains("fix: remove `replicas`"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(run("dev").status.success(), "only prod enforces production parity");
}

#[test]
fn image_flag_and_postgres_override() {
    let out = ok(on_example()
        .args(["render", "--profile", "prod", "--image", "api=localhost:5001/guestbook/api:abc123"])
        .env("SAMESTACK_POSTGRES_IMAGE", "localhost:5001/postgres:15.8-local")
        .output()
        .unwrap());
    assert!(out.contains("image: localhost:5001/guestbook/api:abc123"));
    assert!(out.contains("image: localhost:5001/guestbook/worker:unbuilt"));
    assert!(out.contains("image: localhost:5001/postgres:15.8-local"));
    assert!(!out.contains(":latest"));
}

#[test]
fn output_directory_gets_one_file_per_resource() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("manifests");
    let stdout = ok(on_example().args(["render", "--profile", "prod", "-o"]).arg(&target).output().unwrap());
    assert!(stdout.is_empty());
    let mut files: Vec<String> =
        std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    let docs = render_example("prod").matches("\n---\n").count() + 1;
    assert_eq!(files.len(), docs);
    assert_eq!(files[0], "001-namespace-guestbook.yaml");
    // A second render replaces the previous one.
    ok(on_example().args(["render", "--profile", "dev", "-o"]).arg(&target).output().unwrap());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), docs);
}

#[test]
fn revealed_secrets_are_written_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("manifests");
    ok(on_example().args(["render", "--profile", "prod", "--reveal", "-o"]).arg(&target).output().unwrap());
    assert_eq!(mode(&target), 0o700, "a directory with revealed secrets is the owner's only");
    let mut secrets = 0;
    for e in std::fs::read_dir(&target).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("-secret-") {
            secrets += 1;
            assert_eq!(mode(&path), 0o600, "{name}");
        } else {
            assert_eq!(mode(&path) & 0o077 & !0o044, 0, "{name}: never group/world writable");
        }
    }
    assert!(secrets > 0, "the example has a secret");
    ok(on_example().args(["render", "--profile", "prod", "-o"]).arg(&target).output().unwrap());
    assert_eq!(mode(&target), 0o755, "without --reveal nothing private is in it");
}

fn project_with(dir: &Path, yaml: &str, templates: &[(&str, &str)]) {
    std::fs::write(dir.join("samestack.yaml"), yaml).unwrap();
    if !templates.is_empty() {
        std::fs::create_dir_all(dir.join("templates")).unwrap();
    }
    for (name, text) in templates {
        std::fs::write(dir.join("templates").join(name), text).unwrap();
    }
}

const SMALL: &str = "name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n";

#[test]
fn project_template_overrides_builtin_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ project.namespace | tojson }}\n  labels: {{ labels | tojson }}\n  annotations: { team: overridden }\n";
    project_with(dir.path(), SMALL, &[("namespace.yaml", ns)]);
    let out = ok(samestack()
        .current_dir(dir.path())
        .env_remove("SAMESTACK_FILE")
        .args(["render", "--profile", "prod"])
        .output()
        .unwrap());
    assert!(out.contains("team: overridden"));
    assert!(!out.contains("name: default-deny"), "the whole built-in namespace.yaml is replaced");
    assert!(out.contains("kind: Deployment"));
}

#[test]
fn prod_render_enforces_production_parity() {
    let dir = tempfile::tempdir().unwrap();
    let svc = include_str!("../../templates/service.yaml")
        .replace("readOnlyRootFilesystem: {{ service.read_only_root | tojson }}", "readOnlyRootFilesystem: false");
    project_with(dir.path(), SMALL, &[("service.yaml", &svc)]);
    let out = samestack()
        .current_dir(dir.path())
        .env_remove("SAMESTACK_FILE")
        .args(["render", "--profile", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Deployment shop/web (from service.yaml (templates/service.yaml) for service `web`, rendered line "
        ),
        "{err}"
    );
    assert!(err.contains("`apiVersion: apps/v1`): container `web`: readOnlyRootFilesystem is not true"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_template_of_a_cluster_scoped_kind_has_no_namespace() {
    let class = |namespace: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: shop-edge\n{namespace}  labels: {{{{ labels | tojson }}}}\nspec:\n  controller: example.com/edge\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    project_with(dir.path(), SMALL, &[("class.yaml", &class(""))]);
    let render = || samestack().current_dir(dir.path()).env_remove("SAMESTACK_FILE").args(["render"]).output().unwrap();
    let out = ok(render());
    assert!(out.contains("kind: IngressClass"), "{out}");
    std::fs::write(dir.path().join("templates/class.yaml"), class("  namespace: shop\n")).unwrap();
    let out = render();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IngressClass shop/shop-edge") && err.contains("a cluster-scoped object has a namespace"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn duplicate_resources_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  namespace: {{ project.namespace | tojson }}\n  labels: {{ labels | tojson }}\n";
    project_with(dir.path(), SMALL, &[("extra.yaml", extra)]);
    let out = samestack().current_dir(dir.path()).env_remove("SAMESTACK_FILE").args(["render"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ServiceAccount shop/web"));
}
