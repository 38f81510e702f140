//! `samestack parity`: the example has no undeclared drift; a profile that drifts fails.

use crate::render::on_example;
use crate::support::samestack;

#[test]
fn example_profiles_match_prod() {
    // staging is the example's own profile (examples/guestbook/profiles/staging.yaml).
    for profile in ["dev", "ci", "staging"] {
        let out = on_example().args(["parity", profile, "prod"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(&format!("no undeclared drift between {profile} and prod")), "{text}");
        assert!(!text.contains("DRIFT"));
    }
}

#[test]
fn prod_against_itself_is_empty() {
    let out = on_example().args(["parity", "prod", "prod", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["differences"].as_array().unwrap().len(), 0);
}

#[test]
fn json_report_lists_allowed_differences() {
    let out = on_example().args(["parity", "dev", "prod", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drift"], 0);
    let diffs = v["differences"].as_array().unwrap();
    let allowed = |kind: &str, name: &str, path: &str, by: &str| {
        diffs.iter().any(|d| d["kind"] == kind && d["name"] == name && d["path"] == path && d["allowed_by"] == by)
    };
    assert!(allowed("HorizontalPodAutoscaler", "api", "spec.minReplicas", "autoscaling"), "{v:#}");
    // The migrations Job has another name per profile (a hash of its spec): parity matches it
    // by its stem and compares its fields.
    assert!(allowed(
        "Job",
        "migrations",
        "spec.template.spec.containers[migrations].env[LOG_LEVEL].value",
        "log_level"
    ));
    assert!(!diffs.iter().any(|d| d["kind"] == "Job" && d["path"] == ""), "no Job only on one side: {v:#}");
    assert!(!diffs.iter().any(|d| d["kind"] == "Deployment" && d["path"] == "spec.replicas"), "the HPA owns it");
}

/// A project profile whose template conditional changes something it did not declare.
#[test]
fn undeclared_drift_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("samestack.yaml"),
        "name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\nprofiles: [sloppy, prod]\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/sloppy.yaml"),
        "autoscaling: { min: 1, max: 6 }\nallowed_drift: [autoscaling]\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    let svc = include_str!("../../templates/service.yaml").replace(
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: {% if profile.name == \"sloppy\" %}1{% else %}30{% endif %}",
    );
    std::fs::write(dir.path().join("templates/service.yaml"), svc).unwrap();
    let out = samestack()
        .current_dir(dir.path())
        .env_remove("SAMESTACK_FILE")
        .args(["parity", "sloppy", "prod"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("DRIFT   spec.template.spec.terminationGracePeriodSeconds: 1 -> 30"), "{text}");
    assert!(text.contains("allowed spec.minReplicas: 1 -> 2  [autoscaling]"), "{text}");
    assert!(text.contains("1 undeclared difference(s)"), "{text}");
}
