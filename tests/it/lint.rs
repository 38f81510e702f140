//! The production-parity lint of `render --profile prod` and of `parity`'s prod side: none on
//! the example's built-in templates, the expected findings on a deliberately weak plain-YAML
//! fixture (tests/fixtures/lint-weak), `--strict`, `--lint-json`, waivers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::render::on_example;
use crate::support::{copy_dir, samestack};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint-weak")
}

/// `samestack` in a private copy of the weak fixture (tests may add profile files to it).
fn weak() -> (tempfile::TempDir, impl Fn() -> Command) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let path = dir.path().to_path_buf();
    (dir, move || {
        let mut c = samestack();
        c.current_dir(&path).env_remove("SAMESTACK_FILE");
        c
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stderr).unwrap_or_else(|e| panic!("{e}: {}", stderr(out)))
}

#[test]
fn the_examples_built_in_templates_have_no_finding_under_prod() {
    let out = on_example().args(["render", "--profile", "prod", "--strict", "--lint-json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_report(&out);
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    assert_eq!((report["open"].as_u64(), report["level"].as_str()), (Some(0), Some("error")));
    // And the text form says nothing at all.
    let out = on_example().args(["render", "--profile", "prod"]).output().unwrap();
    assert!(out.status.success() && stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_weak_fixture_gets_every_finding_as_warnings_with_the_fix() {
    let (_dir, cmd) = weak();
    let out = cmd().args(["render", "--profile", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "warnings leave the exit status alone: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: node-agent"), "the manifests are still printed");
    insta::assert_snapshot!("weak_prod_findings", stderr(&out));
    // Only prod is linted.
    let out = cmd().args(["render", "--profile", "dev"]).output().unwrap();
    assert!(out.status.success() && stderr(&out).is_empty(), "{}", stderr(&out));
    // --quiet leaves warnings out.
    let out = cmd().args(["-q", "render", "--profile", "prod"]).output().unwrap();
    assert!(out.status.success() && stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn strict_turns_findings_into_exit_1_and_writes_nothing() {
    let (dir, cmd) = weak();
    let out = cmd().args(["-q", "render", "--profile", "prod", "--strict"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no manifests under a failed --strict");
    let err = stderr(&out);
    assert!(
        err.contains("  error[disruption_budget]: no PodDisruptionBudget selects the pods of Deployment legacy"),
        "{err}"
    );
    assert!(err.contains("--strict: these findings fail the command"), "{err}");
    let target = dir.path().join("out");
    let out = cmd().args(["render", "--profile", "prod", "--strict", "-o"]).arg(&target).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!target.exists(), "no output directory under a failed --strict");
}

#[test]
fn lint_json_lists_each_finding_with_its_object_container_path_and_fix() {
    let (_dir, cmd) = weak();
    let out = cmd().args(["render", "--profile", "prod", "--lint-json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_report(&out);
    assert_eq!(report["profile"], "prod");
    assert_eq!(report["level"], "warning");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(report["open"].as_u64(), Some(findings.len() as u64));
    assert_eq!(report["waived"].as_u64(), Some(0));
    let image = findings
        .iter()
        .find(|f| f["check"] == "pinned_image" && f["name"] == "debug")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(
        image,
        &serde_json::json!({
            "check": "pinned_image",
            "kind": "Pod",
            "namespace": "weak",
            "name": "debug",
            "container": "shell",
            "path": "spec.containers[shell].image",
            "message": "container `shell`: image `busybox:latest` is not pinned (no tag, `latest`, or a malformed digest)",
            "fix": "image: busybox:1.2.3  # a fixed version, or @sha256:<digest>",
            "waived": null
        })
    );
    let mut checks: Vec<&str> = findings.iter().map(|f| f["check"].as_str().unwrap()).collect();
    checks.sort();
    checks.dedup();
    assert_eq!(
        checks,
        [
            "capabilities",
            "disruption_budget",
            "pinned_image",
            "privilege_escalation",
            "probes",
            "read_only_root",
            "resources",
            "run_as_non_root",
            "seccomp"
        ]
    );
}

#[test]
fn a_project_without_default_deny_gets_network_policy_findings() {
    let (dir, cmd) = weak();
    // A project's namespace.yaml replaces the built-in one, and with it the default-deny policy.
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ project.namespace | tojson }}\n  labels: {{ labels | tojson }}\n";
    std::fs::write(dir.path().join("templates/namespace.yaml"), ns).unwrap();
    let out = cmd().args(["render", "--profile", "prod", "--lint-json"]).output().unwrap();
    let report = json_report(&out);
    let mut uncovered: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "network_policy")
        .map(|f| format!("{}/{}", f["kind"].as_str().unwrap(), f["name"].as_str().unwrap()))
        .collect();
    uncovered.sort();
    // web has its own policy (built-in service.yaml); the fixture's objects have none.
    assert_eq!(uncovered, ["DaemonSet/node-agent", "Deployment/legacy", "Pod/debug"], "{report:#}");
}

#[test]
fn parity_lints_its_prod_side_and_strict_fails_it() {
    let (_dir, cmd) = weak();
    let out = cmd().args(["parity", "dev", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("result: no undeclared drift"));
    assert!(stderr(&out).contains("warning[probes]: container `agent` has no readinessProbe"), "{}", stderr(&out));
    let out = cmd().args(["parity", "dev", "prod", "--strict"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error[probes]"), "{}", stderr(&out));
    let out = cmd().args(["parity", "dev", "prod", "--json"]).output().unwrap();
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json_report(&out)["level"], "warning");
    // Two profiles that are not prod: nothing to lint.
    let out = cmd().args(["parity", "dev", "ci", "--strict"]).output().unwrap();
    assert!(!stderr(&out).contains("lint"), "{}", stderr(&out));
}

#[test]
fn prod_profile_waivers_waive_one_check_per_object_with_a_reason() {
    let (dir, cmd) = weak();
    std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
    let prod = dir.path().join("profiles/prod.yaml");
    std::fs::write(
        &prod,
        "lint_waivers:\n  - { check: probes, object: DaemonSet/node-agent, reason: the node's own health checks watch it }\n  - { check: disruption_budget, object: Deployment/legacy, container: null, reason: batch backend }\n",
    )
    .unwrap();
    let out = cmd().args(["render", "--profile", "prod", "--lint-json"]).output().unwrap();
    let report = json_report(&out);
    assert_eq!(report["waived"].as_u64(), Some(3), "{report:#}");
    let out = cmd().args(["render", "--profile", "prod"]).output().unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("waived[probes] DaemonSet/node-agent container `agent`: the node's own health checks watch it"),
        "{err}"
    );
    assert!(!err.contains("warning[probes]: container `agent`"), "{err}");

    // A malformed waiver is bad input, located.
    std::fs::write(&prod, "lint_waivers:\n  - { check: probes, object: node-agent, reason: x }\n").unwrap();
    let out = cmd().args(["render", "--profile", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("profiles/prod.yaml:2:5: object `node-agent` is not of the form `Kind/name`"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&prod, "lint_waivers:\n  - { check: probe, object: Pod/debug, reason: x }\n").unwrap();
    let out = cmd().args(["render", "--profile", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("profiles/prod.yaml:2"), "{}", stderr(&out));

    // Waivers belong to prod, the profile the lint checks.
    std::fs::remove_file(&prod).unwrap();
    std::fs::write(
        dir.path().join("profiles/dev.yaml"),
        "lint_waivers:\n  - { check: probes, object: Pod/debug, reason: x }\n",
    )
    .unwrap();
    let out = cmd().args(["render", "--profile", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("profile `dev` has lint_waivers, but the lint checks only the prod render"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn parity_help_snapshot() {
    let out = samestack().env_remove("SAMESTACK_FILE").args(["parity", "--help"]).output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!("parity_help", String::from_utf8(out.stdout).unwrap());
}
