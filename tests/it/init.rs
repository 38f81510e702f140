//! `samestack init`: writes a valid project, a profile and ignore rules; never overwrites.

use std::path::Path;

use crate::support::samestack;

fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    samestack().current_dir(dir).env_remove("SAMESTACK_FILE").env("CI", "true").arg("init").args(args).output().unwrap()
}

#[test]
fn init_yes_writes_a_project_that_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), &["--yes", "--name", "shop", "--service", "api", "--port", "9000", "--database"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = std::fs::read_to_string(dir.path().join("samestack.yaml")).unwrap();
    assert!(yaml.contains("name: shop") && yaml.contains("port: 9000"), "{yaml}");
    assert!(dir.path().join("profiles/dev.yaml").exists());
    assert!(std::fs::read_to_string(dir.path().join(".gitignore")).unwrap().contains(".secrets/"));
    assert!(std::fs::read_to_string(dir.path().join(".secrets/db-password")).unwrap().trim().len() >= 16);
    let r = samestack()
        .current_dir(dir.path())
        .env_remove("SAMESTACK_FILE")
        .env_remove("SHOP_DB_PASSWORD")
        .args(["render", "--profile", "prod"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let p = samestack()
        .current_dir(dir.path())
        .env_remove("SAMESTACK_FILE")
        .args(["parity", "dev", "prod"])
        .output()
        .unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stdout));
}

#[test]
fn init_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("samestack.yaml"), "mine\n").unwrap();
    let out = init(dir.path(), &["--yes", "--name", "shop"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("samestack.yaml already exist") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("samestack.yaml")).unwrap(), "mine\n");
    assert!(!dir.path().join("profiles").exists());
    let out = init(dir.path(), &["--yes", "--name", "shop", "--force", "--image", "nginx:1.27.2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(dir.path().join("samestack.yaml")).unwrap().contains("image: nginx:1.27.2"));
}

#[test]
fn init_keeps_existing_gitignore_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".gitignore"), "target/").unwrap();
    assert!(init(dir.path(), &["--yes", "--name", "shop"]).status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
        "target/\n# samestack: local secret values, never committed\n.secrets/\n"
    );
}

#[test]
fn init_without_terminal_needs_yes() {
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(!dir.path().join("samestack.yaml").exists());
}

#[test]
fn init_rejects_bad_answers() {
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), &["--yes", "--name", "My_Shop"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid Kubernetes name"));
    assert!(!dir.path().join("samestack.yaml").exists());
}
