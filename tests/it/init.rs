//! `samestack init`: writes a valid project, a profile and ignore rules; never overwrites.

use std::path::Path;

use crate::support::samestack;

fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    samestack().current_dir(dir).env_remove("SAMESTACK_FILE").env("CI", "true").arg("init").args(args).output().unwrap()
}

/// A temp project directory with a Dockerfile, as `init` requires for a built service.
fn project_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    dir
}

#[test]
fn init_yes_writes_a_project_that_renders() {
    let dir = project_dir();
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
    let dir = project_dir();
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

/// Runs `init --yes ARGS` and asserts a user error naming `flag` that wrote nothing.
fn refused(args: &[&str], says: &[&str]) {
    let dir = project_dir();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let out = init(dir.path(), &[&["--yes", "--name", "shop"][..], args].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains("fix: "), "{err}");
    assert!(!err.contains("samestack bug") && !err.contains("does not validate"), "{args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: expected {s:?} in {err}");
    }
    assert!(!dir.path().join("samestack.yaml").exists() && !dir.path().join("profiles").exists(), "{args:?}");
}

#[test]
fn init_refuses_each_bad_flag_by_name() {
    refused(&["--port", "0"], &["error: --port `0` is not a usable port"]);
    refused(&["--service", "database"], &["--service `database` is a name samestack uses itself"]);
    refused(&["--service", "9lives"], &["--service `9lives` is not a valid service name"]);
    refused(&["--build-context", "/abs"], &["--build-context `/abs` is an absolute path"]);
    refused(&["--build-context", "../.."], &["--build-context `../..` resolves to", "outside the project directory"]);
    refused(&["--build-context", "missing"], &["--build-context `missing` is not a directory"]);
    refused(&["--build-context", "empty"], &["--build-context `empty` holds no Dockerfile"]);
    refused(&["--image", "nginx"], &["--image `nginx` is not pinned"]);
    refused(&["--provider", "existing"], &["--kube-context", "is needed with --provider existing"]);
    refused(&["--kube-context", "x"], &["--kube-context `x` only applies to --provider existing"]);
}

#[test]
fn init_for_an_existing_cluster_writes_its_context() {
    let dir = project_dir();
    let out = init(dir.path(), &["--yes", "--name", "shop", "--provider", "existing", "--kube-context", "kind-dev"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = std::fs::read_to_string(dir.path().join("samestack.yaml")).unwrap();
    assert!(yaml.contains("provider: existing\n  context: kind-dev\n"), "{yaml}");
}
