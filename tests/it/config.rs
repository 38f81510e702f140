//! The project file as a user meets it: the JSON Schema, and the example loading cleanly.

use crate::render::on_example;
use crate::support::samestack;

#[test]
fn schema_is_json_schema_of_the_project_file() {
    let out = samestack().arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "samestack.yaml");
    assert_eq!(v["additionalProperties"], false, "unknown keys are rejected by editors too");
    for key in ["name", "cluster", "registry", "services", "secrets", "database", "migrations", "manifests", "profiles"]
    {
        assert!(v["properties"][key].is_object(), "{key} missing from schema");
    }
    let defs = &v["$defs"];
    for (def, key) in [
        ("ManifestSource", "helm"),
        ("ManifestSource", "kustomize"),
        ("ManifestSource", "yaml"),
        ("HelmSource", "values"),
        ("SourceProfile", "overlay"),
        ("ServiceConfig", "image_name"),
        ("ServiceConfig", "deploy"),
    ] {
        assert!(defs[def]["properties"][key].is_object(), "{def}.{key} missing from schema");
    }
    assert_eq!(defs["ManifestSource"]["additionalProperties"], false);
    let text = String::from_utf8(out.stdout).unwrap();
    for provider in ["auto", "docker", "kind", "k3d", "existing"] {
        assert!(text.contains(&format!("\"{provider}\"")), "{provider}");
    }
}

#[test]
fn schema_of_a_profile_file() {
    let out = samestack().args(["schema", "profile"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "samestack profile");
    assert_eq!(v["additionalProperties"], false);
    for key in ["replicas", "size", "autoscaling", "hot_reload", "ingress_domain", "log_level", "allowed_drift"] {
        assert!(v["properties"][key].is_object(), "{key} missing from the profile schema");
    }
}

#[test]
fn example_renders_for_every_profile() {
    for p in ["dev", "ci", "prod"] {
        let out = on_example().args(["render", "--profile", p]).output().unwrap();
        assert!(out.status.success(), "{p}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
