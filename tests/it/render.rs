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
    assert!(redacted.contains("<redacted>"));
    let revealed = ok(on_example().args(["render", "--profile", "prod", "--reveal"]).output().unwrap());
    assert!(revealed.contains("c25hcHNob3QtcGFzc3dvcmQ="), "base64 of the password");
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
fn duplicate_resources_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  namespace: {{ project.namespace | tojson }}\n  labels: {{ labels | tojson }}\n";
    project_with(dir.path(), SMALL, &[("extra.yaml", extra)]);
    let out = samestack().current_dir(dir.path()).env_remove("SAMESTACK_FILE").args(["render"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ServiceAccount shop/web"));
}
