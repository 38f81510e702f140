//! Docker tier: the locally built test images keep the upstream images' contracts.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::docker_fixture::{self as fx, Cleanup};
use crate::support;

#[test]
fn docker_test_postgres_keeps_the_upstream_contract() {
    let Some(()) = fx::docker_with_images("docker_test_postgres_keeps_the_upstream_contract") else {
        return;
    };
    let mut cleanup = Cleanup::default();

    // Without a password it refuses to initialise, and says which variable to set.
    let out = Command::new("docker").args(["run", "--rm", fx::POSTGRES]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("POSTGRES_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // As Kubernetes runs it: uid 999, read-only root, root-owned world-writable volumes
    // (emptyDir), PGDATA in a subdirectory of the data volume.
    let (data, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [data.path(), run.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let name = support::unique_name("ss-it-pg");
    cleanup.container(&name);
    let data_mount = format!("{}:/var/lib/postgresql/data", data.path().display());
    let run_mount = format!("{}:/var/run/postgresql", run.path().display());
    fx::docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--user",
        "999:999",
        "--tmpfs",
        "/tmp",
        "-v",
        &data_mount,
        "-v",
        &run_mount,
        "-e",
        "PGDATA=/var/lib/postgresql/data/pgdata",
        "-e",
        "POSTGRES_PASSWORD=pw",
        "-e",
        "POSTGRES_USER=shop",
        "-e",
        "POSTGRES_DB=orders",
        fx::POSTGRES,
    ]);
    let ready = || {
        Command::new("docker")
            .args(["exec", &name, "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-d", "orders"])
            .output()
            .unwrap()
            .status
            .success()
    };
    fx::wait_for("postgres to accept connections", Duration::from_secs(60), || ready().then_some(()));
    let query = |sql: &str| {
        fx::docker(&[
            "exec",
            "-e",
            "PGPASSWORD=pw",
            &name,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "shop",
            "-d",
            "orders",
            "-tAc",
            sql,
        ])
    };
    assert_eq!(query("select current_user"), "shop");
    query("create table t (v int); insert into t values (7)");
    assert!(data.path().join("pgdata/PG_VERSION").exists(), "initdb wrote into PGDATA on the volume");

    // A restart reuses the data instead of initialising again.
    fx::docker(&["restart", "-t", "10", &name]);
    fx::wait_for("postgres to come back", Duration::from_secs(60), || ready().then_some(()));
    assert_eq!(query("select v from t"), "7");
    let out = Command::new("docker").args(["run", "--rm", "--entrypoint", "id", fx::POSTGRES, "-u"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "999", "runs as uid 999 by default");
}
