//! Docker tier: the example app, built by samestack from the test base, runs as production runs
//! it (non-root, read-only root filesystem, only /tmp writable) against the test postgres image.

use std::collections::BTreeMap;
use std::time::Duration;

use samestack::build::{self, BuildOptions, BuildSpec};
use samestack::docker;

use crate::docker_fixture::{self as fx, Cleanup};
use crate::support;

fn published_port(container: &str, port: u16) -> u16 {
    let mapping = fx::docker(&["port", container, &format!("{port}/tcp")]);
    mapping.lines().next().and_then(|l| l.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_example_app_runs_read_only_against_the_test_postgres() {
    let Some(()) = fx::docker_with_images("docker_example_app_runs_read_only_against_the_test_postgres") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let name = support::unique_name("ss-it-app");
    let (_api_dir, api_ctx) = fx::example_copy("api");
    let (_worker_dir, worker_ctx) = fx::example_copy("worker");
    let args = BTreeMap::from([("BASE_IMAGE".to_string(), fx::PYTHON_BASE.to_string())]);
    let specs = [("api", api_ctx), ("worker", worker_ctx)].map(|(service, context)| BuildSpec {
        service: service.into(),
        context,
        dockerfile: None,
        build_args: args.clone(),
        repository: format!("samestack-it/{name}-{service}"),
    });
    let built = build::build_all(&client, &specs, &BuildOptions::default()).await.unwrap();
    for o in &built {
        cleanup.image(&o.reference);
    }
    let (api_image, worker_image) = (&built[0].reference, &built[1].reference);

    let net = name.clone();
    cleanup.network(&net);
    fx::docker(&["network", "create", &net]);
    let db = format!("{name}-db");
    cleanup.container(&db);
    // Postgres as the cluster runs it: uid 999, read-only root, writable socket dir and /tmp.
    fx::docker(&[
        "run",
        "-d",
        "--name",
        &db,
        "--network",
        &net,
        "--network-alias",
        "db",
        "--read-only",
        "--user",
        "999:999",
        "--tmpfs",
        "/var/run/postgresql:uid=999,gid=999",
        "--tmpfs",
        "/tmp",
        "-e",
        "POSTGRES_PASSWORD=it-secret",
        "-e",
        "POSTGRES_USER=guestbook",
        "-e",
        "POSTGRES_DB=guestbook",
        fx::POSTGRES,
    ]);
    let env = [
        "-e",
        "DATABASE_HOST=db",
        "-e",
        "DATABASE_NAME=guestbook",
        "-e",
        "DATABASE_USER=guestbook",
        "-e",
        "DATABASE_PASSWORD=it-secret",
    ];
    let app = |extra: &[&str], image: &str, cmd: &[&str]| {
        let mut args = vec![
            "run",
            "--network",
            net.as_str(),
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ];
        args.extend_from_slice(&env);
        args.extend_from_slice(extra);
        args.push(image);
        args.extend_from_slice(cmd);
        fx::docker(&args)
    };

    // The migration Job: waits for the database, creates the schema, is idempotent.
    let migrated = app(&["--rm"], api_image, &["python3", "/app/migrate.py", "60"]);
    assert!(migrated.contains("applied migration 1"), "{migrated}");
    let again = app(&["--rm"], api_image, &["python3", "/app/migrate.py", "60"]);
    assert!(!again.contains("applied migration"), "second run applies nothing: {again}");

    let (api, worker) = (format!("{name}-api"), format!("{name}-worker"));
    cleanup.container(&api).container(&worker);
    app(&["-d", "--name", &api, "-p", "127.0.0.1::8080"], api_image, &[]);
    app(&["-d", "--name", &worker, "-p", "127.0.0.1::8081"], worker_image, &[]);
    assert_eq!(fx::docker(&["exec", &api, "id", "-u"]), "10001", "runs as the image's non-root user");
    let (api_port, worker_port) = (published_port(&api, 8080), published_port(&worker, 8081));

    fx::wait_for("api /healthz 200", Duration::from_secs(60), || {
        fx::http(api_port, "GET", "/healthz", None).ok().filter(|(s, _)| *s == 200)
    });
    fx::wait_for("worker /healthz 200", Duration::from_secs(60), || {
        fx::http(worker_port, "GET", "/healthz", None).ok().filter(|(s, _)| *s == 200)
    });
    let (status, body) =
        fx::http(api_port, "POST", "/messages", Some(r#"{"author":"it","body":"hello from the test"}"#)).unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, _) = fx::http(api_port, "POST", "/messages", Some(r#"{"nobody":1}"#)).unwrap();
    assert_eq!(status, 400, "bad input is a 400, not a crash");
    // The worker marks it processed.
    let listed = fx::wait_for("the worker to process the message", Duration::from_secs(30), || {
        let (status, body) = fx::http(api_port, "GET", "/messages", None).ok()?;
        (status == 200 && body.contains(r#""processed": true"#)).then_some(body)
    });
    assert!(listed.contains("hello from the test"), "{listed}");
    // The dev reload (`on_change`) works on the read-only root too: the server loads its code
    // again in its own process (nothing written but /tmp) and has when reload.sh returns.
    fx::docker(&["exec", &api, "sh", "/app/reload.sh"]);
    assert!(fx::docker(&["logs", &api]).contains("reloaded the code"), "{}", fx::docker(&["logs", &api]));
    let (status, body) = fx::http(api_port, "GET", "/", None).unwrap();
    assert!(status == 200 && body.contains("hello from the guestbook api"), "after the reload: {status} {body}");

    // Health follows the database.
    fx::docker(&["stop", "-t", "5", &db]);
    fx::wait_for("api /healthz 503 without a database", Duration::from_secs(30), || {
        fx::http(api_port, "GET", "/healthz", None).ok().filter(|(s, _)| *s == 503)
    });
    fx::wait_for("worker /healthz 503 without a database", Duration::from_secs(60), || {
        fx::http(worker_port, "GET", "/healthz", None).ok().filter(|(s, _)| *s == 503)
    });
    // Liveness is the process alone: a database outage must not get the pods restarted.
    for (what, port) in [("api", api_port), ("worker", worker_port)] {
        let (status, body) = fx::http(port, "GET", "/livez", None).unwrap();
        assert_eq!(status, 200, "{what} /livez without a database: {body}");
    }
}
