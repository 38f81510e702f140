//! `manifests:`, the project's own Helm chart, kustomize directory and plain YAML, rendered
//! by the real `helm` and `kustomize` (CI builds them, .ci/ensure-go-tools): snapshots of what
//! each source gives per profile, images pointed at the built services, labels and namespace
//! added, a broken chart / kustomization / YAML file failing with the tool's file and line
//! before anything is created, a missing tool naming itself, parity drift inside the chart's
//! values. The cluster tier (`cluster_manifests_*`) applies all three to a real cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{self, copy_dir, output_text, replace_once};

/// The three sources of tests/fixtures/manifests, as the fixtures' README describes them.
pub const SOURCES: &str = "
manifests:
  - helm:
      chart: deploy/chart
      release: chart
      values: [deploy/values/prod.yaml]
    profiles:
      dev:
        values: [deploy/values/dev.yaml]
        allowed_drift: [\"Deployment:spec.template.spec.containers.*.securityContext.readOnlyRootFilesystem\"]
  - kustomize:
      path: deploy/kustomize/base
    profiles:
      dev:
        overlay: deploy/kustomize/overlays/dev
        allowed_drift: [\"Deployment:spec.template.spec.containers.*.env.*.value\"]
  - yaml:
      path: deploy/yaml
";

/// An Ingress (no class: the ingress controller samestack installs) to a Service that does not
/// exist. (A Service without ready endpoints stops `up` before: its wave is not ready.)
const UNROUTED: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: unrouted }
spec:
  rules:
    - host: unrouted.localhost
      http:
        paths:
          - path: /nobody
            pathType: Prefix
            backend: { service: { name: nobody, port: { number: 80 } } }
";

/// `services.worker` of the example, with the repository the kustomize base names.
pub const WORKER: &str = "  worker:\n    build:\n      context: ./worker\n";
pub const WORKER_MAPPED: &str =
    "  worker:\n    build:\n      context: ./worker\n    image_name: ghcr.io/acme/guestbook-worker\n";

/// Edits of the example: the chart alone deploys `api` (`deploy: manifests`), without the keys
/// only the built-in templates read.
pub const API_BY_CHART: &[(&str, &str)] = &[
    ("  api:\n    build:\n      context: ./api\n", "  api:\n    build:\n      context: ./api\n    deploy: manifests\n"),
    ("    health: { path: /healthz, live: /livez, port: 8080 }\n", ""),
    ("    ingress: { host: guestbook.example.com, path: / }\n", ""),
];

/// True when helm and kustomize are on PATH; outside CI their absence skips loudly, in CI it
/// fails (.ci/run puts them there).
pub fn tools_or_skip(test: &str) -> bool {
    let missing: Vec<&str> = ["helm", "kustomize"].into_iter().filter(|t| which::which(t).is_err()).collect();
    if missing.is_empty() {
        return true;
    }
    if support::in_ci() {
        panic!(
            "{test}: {} not on PATH, and CI=true requires these tests to run (.ci/ensure-go-tools builds them)",
            missing.join(" and ")
        );
    }
    eprintln!("SKIP {test}: {} not on PATH (PATH=\"$(.ci/ensure-go-tools | tail -n 1):$PATH\")", missing.join(" and "));
    false
}

/// Copies the fixtures into `dir/deploy`.
pub fn copy_fixtures(dir: &Path) {
    copy_dir(&fixtures_dir(), &dir.join("deploy"));
}

/// The example with the fixtures' sources, in a temp dir.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/guestbook"), dir.path());
    copy_fixtures(dir.path());
    let file = dir.path().join("samestack.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, replace_once(&yaml, WORKER, WORKER_MAPPED) + SOURCES).unwrap();
    dir
}

fn samestack_in(dir: &Path, args: &[&str]) -> Output {
    run(samestack_command(dir), args)
}

fn samestack_command(dir: &Path) -> Command {
    let mut c = support::samestack();
    c.current_dir(dir)
        .env("HOME", dir)
        .env("GUESTBOOK_DB_PASSWORD", "a-test-password")
        .env_remove("SAMESTACK_POSTGRES_IMAGE")
        .env_remove("SAMESTACK_FILE")
        .env_remove("KUBECONFIG");
    c
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().expect("samestack runs")
}

/// The documents of a render that came from a manifest source.
fn source_documents(yaml: &str) -> String {
    yaml.split("---\n").filter(|d| d.contains("dev.samestack/source:")).map(|d| format!("---\n{d}")).collect()
}

fn render(dir: &Path, profile: &str) -> String {
    let out = samestack_in(dir, &["render", "--profile", profile]);
    assert!(out.status.success(), "render --profile {profile}:\n{}", output_text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn snapshot_manifest_sources_per_profile() {
    if !tools_or_skip("snapshot_manifest_sources_per_profile") {
        return;
    }
    let dir = project();
    for profile in ["dev", "ci", "prod"] {
        insta::assert_snapshot!(format!("manifest_sources_{profile}"), source_documents(&render(dir.path(), profile)));
    }
}

#[test]
fn sources_get_built_images_labels_and_the_namespace() {
    if !tools_or_skip("sources_get_built_images_labels_and_the_namespace") {
        return;
    }
    let dir = project();
    let out = samestack_in(
        dir.path(),
        &[
            "render",
            "--profile",
            "prod",
            "--image",
            "api=localhost:5001/guestbook/api@sha256:abababababababababababababababababababababababababababababababab",
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    let chart = find("Deployment", "chart");
    assert_eq!(
        chart["spec"]["template"]["spec"]["containers"][0]["image"],
        "localhost:5001/guestbook/api@sha256:abababababababababababababababababababababababababababababababab"
    );
    assert_eq!(chart["metadata"]["annotations"]["dev.samestack/service"], "api");
    // The chart's own name label stays; `dev` picks the workload by its annotation.
    assert_eq!(chart["metadata"]["labels"]["app.kubernetes.io/name"], "guestbook-api");
    let worker = find("Deployment", "kz-worker");
    assert_eq!(
        worker["spec"]["template"]["spec"]["containers"][0]["image"], "localhost:5001/guestbook/worker:unbuilt",
        "mapped by services.worker.image_name; unbuilt without --image"
    );
    assert!(
        worker["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name").is_none(),
        "not the service's label: the built-in worker Service, PDB and NetworkPolicy would select these pods"
    );
    assert_eq!(worker["metadata"]["annotations"]["dev.samestack/service"], "worker");
    for (kind, name) in [
        ("ConfigMap", "chart-settings"),
        ("Service", "kz-worker"),
        ("ConfigMap", "plain-notes"),
        ("Service", "plain-api"),
    ] {
        let o = find(kind, name);
        assert_eq!(o["metadata"]["namespace"], "guestbook", "{kind} {name}: namespace defaulted");
        let labels = &o["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "samestack", "{kind} {name}");
        assert_eq!(labels["dev.samestack.project"], "guestbook", "{kind} {name}");
        assert_eq!(labels["dev.samestack.owner"], "platform-team", "{kind} {name}");
        assert_eq!(labels["dev.samestack.cost-center"], "examples", "{kind} {name}");
    }
    assert_eq!(
        find("Service", "chart")["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "samestack",
        "Helm's own managed-by is replaced"
    );
}

/// The documents of a YAML stream, parsed.
fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple(yaml).unwrap()
}

/// With `deploy: manifests`, the chart alone deploys `api`: the built-in templates render no
/// object for it, the chart's Deployment runs the built image and its pods carry the service
/// label; the built-in objects that name `api` (the database's and a dependant's
/// NetworkPolicy, the migrations Job) select those pods or use that image.
#[test]
fn a_service_deployed_by_its_chart_alone_gets_no_built_in_objects() {
    if !tools_or_skip("a_service_deployed_by_its_chart_alone_gets_no_built_in_objects") {
        return;
    }
    let dir = project();
    let file = dir.path().join("samestack.yaml");
    let mut yaml = std::fs::read_to_string(&file).unwrap();
    for (from, to) in API_BY_CHART {
        yaml = replace_once(&yaml, from, to);
    }
    // The worker depends on the chart's API too.
    yaml = replace_once(
        &yaml,
        "    secrets:\n      DATABASE_PASSWORD: db-password\n    depends_on: [database]\n    health: { path: /healthz, live: /livez, port: 8081 }",
        "    secrets:\n      DATABASE_PASSWORD: db-password\n    depends_on: [database, api]\n    health: { path: /healthz, live: /livez, port: 8081 }",
    );
    std::fs::write(&file, &yaml).unwrap();
    let built = "localhost:5001/guestbook/api@sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
    let out = samestack_in(dir.path(), &["render", "--profile", "prod", "--image", &format!("api={built}")]);
    assert!(out.status.success(), "{}", output_text(&out));
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let builtin_api: Vec<String> = docs
        .iter()
        .filter(|d| d["metadata"]["name"] == "api" || d["metadata"]["labels"]["app.kubernetes.io/name"] == "api")
        .map(|d| format!("{} {}", d["kind"], d["metadata"]["name"]))
        .collect();
    assert!(builtin_api.is_empty(), "built-in objects of api: {builtin_api:?}");
    assert!(docs.iter().any(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "worker"), "the worker stays");
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    let pod = &find("Deployment", "chart")["spec"]["template"];
    assert_eq!(pod["spec"]["containers"][0]["image"], built);
    assert_eq!(pod["metadata"]["labels"]["dev.samestack/service"], "api");
    assert_eq!(pod["metadata"]["annotations"]["dev.samestack/container"], "api");
    assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/name"], "guestbook-api", "the chart's own labels stay");
    assert_eq!(
        find("Job", "migrations-")["spec"]["template"]["spec"]["containers"][0]["image"],
        built,
        "the migrations Job runs the built image"
    );
    let api_pods = serde_json::json!({ "dev.samestack/service": "api", "dev.samestack.project": "guestbook" });
    let db_from: Vec<&serde_json::Value> = find("NetworkPolicy", "database")["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| &rule["from"][0]["podSelector"]["matchLabels"])
        .collect();
    assert!(db_from.contains(&&api_pods), "the database admits the chart's API pods: {db_from:?}");
    let worker_to = &find("NetworkPolicy", "worker")["spec"]["egress"];
    let to_api = worker_to.as_array().unwrap().iter().find(|r| r["to"][0]["podSelector"]["matchLabels"] == api_pods);
    assert_eq!(
        to_api.map(|r| r["ports"].clone()),
        Some(serde_json::json!([{ "protocol": "TCP", "port": 8080 }])),
        "the worker reaches the chart's API pods on api's port: {worker_to}"
    );

    // No container of the sources runs api's image: refused, located at the key, with the fix.
    let values = dir.path().join("deploy/chart/values.yaml");
    std::fs::write(&values, std::fs::read_to_string(&values).unwrap().replace("guestbook/api", "acme/backend"))
        .unwrap();
    let line = yaml.lines().position(|l| l == "    deploy: manifests").unwrap() + 1;
    assert_refused(
        dir.path(),
        &[
            &format!(
                "samestack.yaml:{line}:5: service `api` has `deploy: manifests`, but no container of the manifest sources runs its image under profile `dev`"
            ),
            "`acme/backend:1.0.0`",
            "fix: set `services.api.image_name` to the repository your manifests name",
        ],
    );
}

/// A broken source fails `render` and `up` with exit 2 and the tool's file and line, before
/// any step of `up` runs (no Docker call, nothing created).
fn assert_refused(dir: &Path, says: &[&str]) {
    for args in [&["render", "--profile", "dev"][..], &["up", "--profile", "dev"][..]] {
        let out = samestack_in(dir, args);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{text}");
        for s in says {
            assert!(text.contains(s), "{args:?}: no `{s}` in:\n{text}");
        }
        assert!(!text.contains("preflight"), "{args:?}: a step ran:\n{text}");
    }
}

#[test]
fn a_helm_template_error_is_exit_2_with_the_template_line() {
    if !tools_or_skip("a_helm_template_error_is_exit_2_with_the_template_line") {
        return;
    }
    let dir = project();
    let cm = dir.path().join("deploy/chart/templates/configmap.yaml");
    let text = std::fs::read_to_string(&cm).unwrap();
    std::fs::write(&cm, text.replace("{{ .Values.greeting | quote }}", "{{ .Values.greeting | nosuchfunction }}"))
        .unwrap();
    assert_refused(
        dir.path(),
        &[
            "samestack.yaml:",
            "`helm template chart",
            "guestbook-api/templates/configmap.yaml:8",
            "nosuchfunction",
            "fix:",
        ],
    );
}

#[test]
fn a_kustomize_error_is_exit_2_naming_the_file() {
    if !tools_or_skip("a_kustomize_error_is_exit_2_naming_the_file") {
        return;
    }
    let dir = project();
    std::fs::remove_file(dir.path().join("deploy/kustomize/overlays/dev/poll-slower.yaml")).unwrap();
    assert_refused(dir.path(), &["`kustomize build", "poll-slower.yaml", "kustomize/deploy/kustomize/base"]);
}

#[test]
fn a_yaml_syntax_error_is_exit_2_with_file_line_and_column() {
    let dir = project();
    std::fs::write(
        dir.path().join("deploy/yaml/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   data: [\n",
    )
    .unwrap();
    if !tools_or_skip("a_yaml_syntax_error_is_exit_2_with_file_line_and_column") {
        return;
    }
    assert_refused(dir.path(), &["deploy/yaml/broken.yaml:5:", "not valid YAML", "yaml/deploy/yaml"]);
}

#[test]
fn an_object_in_another_namespace_is_refused() {
    if !tools_or_skip("an_object_in_another_namespace_is_refused") {
        return;
    }
    let dir = project();
    std::fs::write(
        dir.path().join("deploy/yaml/elsewhere.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\n",
    )
    .unwrap();
    assert_refused(dir.path(), &["ConfigMap x", "deploy/yaml/elsewhere.yaml:1", "namespace is `kube-system`"]);
}

/// kustomize keeps a kustomization's files in its directory, but not the bases it names: a
/// base outside the project is refused before kustomize runs, with where it is named.
#[test]
fn a_kustomize_base_outside_the_project_is_refused() {
    if !tools_or_skip("a_kustomize_base_outside_the_project_is_refused") {
        return;
    }
    let dir = project();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("kustomization.yaml"), "resources: []\n").unwrap();
    let base = dir.path().join("deploy/kustomize/base/kustomization.yaml");
    let text = std::fs::read_to_string(&base).unwrap();
    let entry = format!(
        "../../../{}",
        "../".repeat(dir.path().components().count()) + &outside.path().display().to_string()[1..]
    );
    std::fs::write(&base, replace_once(&text, "  - pdb.yaml\n", &format!("  - pdb.yaml\n  - {entry}\n"))).unwrap();
    assert_refused(
        dir.path(),
        &[
            &format!(
                "`resources` entry `{entry}` of deploy/kustomize/base/kustomization.yaml resolves to {}",
                outside.path().canonicalize().unwrap().display()
            ),
            "outside the project directory",
            "(manifest source `kustomize/deploy/kustomize/base`)",
            "fix: keep the source's files inside the project directory",
        ],
    );
}

#[test]
fn a_missing_tool_is_exit_1_naming_it_before_anything_runs() {
    let dir = project();
    let empty = tempfile::tempdir().unwrap();
    for args in [&["render"][..], &["up"][..]] {
        let mut c = samestack_command(dir.path());
        c.env("PATH", empty.path());
        let out = run(c, args);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{text}");
        assert!(text.contains("needs `helm`, which is not on PATH"), "{text}");
        assert!(text.contains("fix: install helm (Helm 3"), "{text}");
        assert!(text.contains("samestack.yaml:"), "located: {text}");
        assert!(!text.contains("preflight"), "{args:?}: a step ran:\n{text}");
    }
}

/// A tool that hangs is stopped at the source's `timeout` (here 1 s): exit 1 naming the
/// command and the timeout, nothing started, and the tool's process gone.
#[test]
fn a_hung_tool_is_stopped_at_the_sources_timeout() {
    if !tools_or_skip("a_hung_tool_is_stopped_at_the_sources_timeout") {
        return;
    }
    let dir = project();
    let file = dir.path().join("samestack.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let values = "      values: [deploy/values/prod.yaml]\n";
    std::fs::write(&file, replace_once(&yaml, values, &format!("{values}    timeout: 1\n"))).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let pid_file = bin.path().join("helm.pid");
    let helm = bin.path().join("helm");
    std::fs::write(&helm, format!("#!/bin/sh\necho $$ > {}\nexec sleep 600\n", pid_file.display())).unwrap();
    std::fs::set_permissions(&helm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    for args in [&["render"][..], &["up"][..]] {
        let mut child = samestack_command(dir.path())
            .env("PATH", &path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?}: samestack still waits for the hung helm after 120 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{text}");
        assert!(
            text.contains("`helm template chart deploy/chart` for manifest source `helm/chart` did not finish within 1 s and was stopped"),
            "{args:?}: {text}"
        );
        assert!(text.contains("samestack.yaml:") && text.contains("raise `manifests[0].timeout`"), "{text}");
        assert!(!text.contains("preflight"), "{args:?}: a step ran:\n{text}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let alive = std::process::Command::new("kill")
            .args(["-0", pid.trim()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success(), "{args:?}: the hung helm (pid {}) still runs", pid.trim());
    }
}

#[test]
fn parity_drift_in_the_charts_values_is_exit_1_with_the_field_path() {
    if !tools_or_skip("parity_drift_in_the_charts_values_is_exit_1_with_the_field_path") {
        return;
    }
    let dir = project();
    let out = samestack_in(dir.path(), &["parity", "dev", "prod"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "ConfigMap guestbook/chart-settings\n  DRIFT   data.GREETING: hello from a laptop -> hello from production"
        ),
        "{text}"
    );
    assert!(text.contains("1 undeclared drift"), "only the values' difference: {text}");
    assert!(
        text.contains("Helm values that differ between dev and prod:\n  helm/chart greeting: hello from a laptop -> hello from production\n"),
        "the values path behind it: {text}"
    );
    let out = samestack_in(dir.path(), &["parity", "dev", "prod", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["helm_values"],
        serde_json::json!([
            { "source": "helm/chart", "path": "greeting", "a": "hello from a laptop", "b": "hello from production" },
            // dev's values make the root filesystem writable for sync; prod leaves the chart's default.
            { "source": "helm/chart", "path": "readOnlyRootFilesystem", "a": false, "b": null },
        ]),
    );
    // The kustomize overlay's difference is declared by its source.
    assert!(
        text.contains("env[POLL_INTERVAL_SECONDS].value: 5 -> 1  [manifests[1].profiles.dev.allowed_drift: Deployment:spec.template.spec.containers.*.env.*.value]"),
        "{text}"
    );
    // Declared where the values file is added, the difference is allowed.
    let file = dir.path().join("samestack.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        replace_once(
            &yaml,
            "allowed_drift: [\"Deployment:spec.template.spec.containers.*.securityContext",
            "allowed_drift: [\"ConfigMap:data.GREETING\", \"Deployment:spec.template.spec.containers.*.securityContext",
        ),
    )
    .unwrap();
    let out = samestack_in(dir.path(), &["parity", "dev", "prod"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
fn manifest_sources_are_checked_with_locations() {
    let dir = project();
    let file = dir.path().join("samestack.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let refused = |yaml: String| {
        std::fs::write(&file, yaml).unwrap();
        let out = samestack_in(dir.path(), &["render"]);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        text
    };
    let text = refused(replace_once(
        &original,
        "      dev:\n        values: [deploy/values/dev.yaml]\n",
        "      prod:\n        values: [deploy/values/dev.yaml]\n",
    ));
    assert!(text.contains(": a manifest source has no `prod` additions"), "{text}");
    let text = refused(replace_once(
        &original,
        "      path: deploy/yaml\n",
        "      path: deploy/yaml\n    helm: { chart: deploy/chart }\n",
    ));
    assert!(text.contains("manifest source 2 has 2 of `helm`, `kustomize` and `yaml`: expected exactly one"), "{text}");
    let yaml = replace_once(&original, "chart: deploy/chart", "chart: ../../etc");
    let text = refused(replace_once(&yaml, "path: deploy/yaml", "path: deploy/nothing-here"));
    let re = regex::Regex::new(r"samestack\.yaml:\d+:\d+: manifest path `\.\./\.\./etc` resolves to /etc").unwrap();
    assert!(re.is_match(&text), "file:line:column: {text}");
    assert!(text.contains("deploy/nothing-here does not exist"), "{text}");
}

/// tests/fixtures/manifests.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests")
}

/// Cluster tier, one cluster for every step: `up` of the example with a Helm chart, a
/// kustomize directory and a YAML directory brings all of them to ready, running the built
/// images, the chart alone deploying `api` (`deploy: manifests`: no built-in api object); a
/// changed values file changes exactly the object it feeds; a removed source is pruned, and
/// only its objects; `dev` forwards to the chart's API pod, streams its logs and syncs an
/// edit into it.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_manifests_up_applies_helm_kustomize_and_yaml_changes_and_prunes_only_theirs() {
    use crate::docker_fixture::{POSTGRES, PYTHON_BASE, REGISTRY_IMAGE, TRAEFIK};
    use crate::support::step_line;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};

    let test = "cluster_manifests_up_applies_helm_kustomize_and_yaml_changes_and_prunes_only_theirs";
    if support::cluster_or_skip(test, &[PYTHON_BASE, POSTGRES, REGISTRY_IMAGE, TRAEFIK]).is_none()
        || !tools_or_skip(test)
    {
        return;
    }
    let edits: Vec<(&str, &str)> =
        std::iter::once((WORKER, WORKER_MAPPED)).chain(API_BY_CHART.iter().copied()).collect();
    let stack = support::Stack::with_edits("mfit", &edits);
    copy_fixtures(stack.dir.path());
    let file = stack.dir.path().join("samestack.yaml");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + SOURCES).unwrap();

    let first = stack.up();
    assert!(step_line(&first, "apply").contains("all ready"), "{first}");
    let client = samestack::kube::KubeClient::connect(&stack.kubeconfig(), Some(&format!("samestack-{}", stack.name)))
        .await
        .expect("the user's kubeconfig has the context");
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    for (name, service) in [("chart", "api"), ("kz-worker", "worker")] {
        let d = deployments.get(name).await.unwrap_or_else(|e| panic!("Deployment {name}: {e}"));
        let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        assert_eq!(ready, 1, "Deployment {name} is not ready: {:?}", d.status);
        let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
        let built = format!("localhost:{}/{}/{service}@sha256:", stack.registry_port, stack.name);
        assert!(image.starts_with(&built), "{name} runs {image}, not the built {built}...");
    }
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    let services: kube::Api<Service> = kube::Api::namespaced(client.raw().clone(), &stack.name);
    let greeting = |cm: ConfigMap| cm.data.unwrap_or_default().get("GREETING").cloned().unwrap_or_default();
    assert_eq!(greeting(configmaps.get("chart-settings").await.unwrap()), "hello from a laptop", "dev's values file");
    for name in ["chart", "kz-worker", "plain-api"] {
        assert!(services.get_opt(name).await.unwrap().is_some(), "Service {name} missing");
    }
    assert!(deployments.get_opt("api").await.unwrap().is_none(), "a built-in Deployment of api");
    assert!(services.get_opt("api").await.unwrap().is_none(), "a built-in Service of api");
    assert!(configmaps.get_opt("plain-notes").await.unwrap().is_some(), "the YAML source's ConfigMap is missing");

    // A values file changes: exactly the ConfigMap it feeds.
    let values = stack.dir.path().join("deploy/values/dev.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    std::fs::write(&values, replace_once(&text, "greeting: hello from a laptop", "greeting: hello again")).unwrap();
    let second = stack.up();
    assert!(step_line(&second, "apply").contains("0 created, 1 changed"), "{second}");
    assert!(step_line(&second, "apply").contains(" 0 pruned"), "{second}");
    assert_eq!(greeting(configmaps.get("chart-settings").await.unwrap()), "hello again");

    // An Ingress path to a missing Service never gets a route: `up` fails after --ready-timeout
    // naming the path, instead of saying "all ready".
    std::fs::write(stack.dir.path().join("deploy/yaml/unrouted.yaml"), UNROUTED).unwrap();
    let text = stack.up_failing_within(15);
    let route = format!("Ingress {}/unrouted (unrouted.localhost/nobody)", stack.name);
    assert!(text.contains("serves no route for these Ingress paths after 15 s") && text.contains(&route), "{text}");

    // The YAML source goes: its ConfigMap, Service and Ingress are pruned, nothing else.
    stack.edit("  - yaml:\n      path: deploy/yaml\n", "");
    let third = stack.up();
    assert!(step_line(&third, "apply").contains("0 created, 0 changed"), "{third}");
    assert!(step_line(&third, "apply").contains(" 3 pruned"), "{third}");
    assert!(configmaps.get_opt("plain-notes").await.unwrap().is_none(), "plain-notes was not pruned");
    assert!(services.get_opt("plain-api").await.unwrap().is_none(), "plain-api was not pruned");
    for name in ["chart", "kz-worker", "worker"] {
        assert!(
            deployments.get_opt(name).await.unwrap().is_some(),
            "Deployment {name} was pruned with the YAML source"
        );
    }

    // `dev` finds the chart's API pod, the only pod of `api`: a port-forward to it, its logs,
    // and an edit under the sync rules copied into it, served after `on_change` (same pod).
    let mut dev = crate::dev::Dev::spawn(&stack, &["--json"]);
    let forward = dev.wait_for("api's port-forward", crate::dev::START_TIMEOUT, |l| l["forward"]["service"] == "api");
    let local = forward["forward"]["local"].as_u64().unwrap() as u16;
    dev.wait_for("watching", crate::dev::START_TIMEOUT, |l| l.get("watching").is_some());
    // The pod reads the greeting once, at its start: any greeting is its answer.
    crate::dev::wait_served(local, "/", "\"greeting\"", std::time::Duration::from_secs(60));
    let pod_uids = || async {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.raw().clone(), &stack.name);
        let list = pods.list(&kube::api::ListParams::default().labels("app.kubernetes.io/instance=chart")).await;
        list.unwrap().items.into_iter().filter_map(|p| p.metadata.uid).collect::<Vec<_>>()
    };
    let before = pod_uids().await;
    let app = stack.dir.path().join("api/app.py");
    let source = std::fs::read_to_string(&app).unwrap();
    std::fs::write(
        &app,
        replace_once(&source, r#"{"greeting": GREETING}"#, r#"{"greeting": "synced into the chart"}"#),
    )
    .unwrap();
    let reload = dev.reload("api");
    assert_eq!(
        (reload["kind"].as_str(), reload["ok"].as_bool(), reload["pods"].as_u64()),
        (Some("sync"), Some(true), Some(1)),
        "{reload}\n{}",
        dev.stderr()
    );
    crate::dev::wait_served(local, "/", "synced into the chart", std::time::Duration::from_secs(30));
    assert_eq!(pod_uids().await, before, "the sync replaced the chart's pod");
    let logged =
        |text: &str| text.lines().any(|l| l.starts_with("api/chart-") && l.contains("signal 1: reloaded the code"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !logged(&dev.stderr()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(logged(&dev.stderr()), "the chart's pod logs are not streamed:\n{}", dev.stderr());
    assert!(dev.interrupt().success(), "{}", dev.stderr());

    let down = stack.samestack(&["down", "--purge"]);
    assert!(down.status.success(), "{}", output_text(&down));
}

/// The production-parity lint covers the sources' objects: a deliberately weak chart gets its
/// findings as warnings under `render --profile prod`, and as errors (exit 1) with `--strict`;
/// the fixtures' own chart and kustomize base get none.
#[test]
fn the_lint_reports_on_a_weak_chart_warnings_by_default_errors_with_strict() {
    if !tools_or_skip("the_lint_reports_on_a_weak_chart_warnings_by_default_errors_with_strict") {
        return;
    }
    let dir = project();
    let out = samestack_in(dir.path(), &["render", "--profile", "prod"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    for name in ["chart", "kz-worker"] {
        assert!(!err.contains(&format!("Deployment guestbook/{name}\n")), "the fixture {name} has findings: {err}");
    }
    let file = dir.path().join("samestack.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, yaml + "  - helm: { chart: deploy/weak-chart, release: weak }\n").unwrap();
    let out = samestack_in(dir.path(), &["render", "--profile", "prod"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "warnings leave the exit status alone: {err}");
    assert!(err.contains("Deployment guestbook/weak\n"), "{err}");
    for check in ["probes", "resources", "read_only_root", "pinned_image", "disruption_budget"] {
        assert!(err.contains(&format!("warning[{check}]")), "no {check} warning: {err}");
    }
    let out = samestack_in(dir.path(), &["render", "--profile", "prod", "--strict"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error[pinned_image]") && out.stdout.is_empty(), "{err}");
}
