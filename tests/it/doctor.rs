//! `samestack doctor`: against the real engine (docker tier), a dead Docker socket, a taken port.

use std::net::TcpListener;

use serde_json::Value;

use crate::support::{docker_or_skip, samestack};

fn doctor_json(dir: &std::path::Path, envs: &[(&str, &str)]) -> (i32, Value) {
    let mut cmd = samestack();
    cmd.current_dir(dir).args(["doctor", "--json"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("samestack runs");
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().expect("exit code"), json)
}

fn checks<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["id"] == id).collect()
}

#[test]
fn doctor_docker_reports_the_real_engine() {
    if docker_or_skip("doctor_docker_reports_the_real_engine").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = doctor_json(dir.path(), &[]);
    let docker = &report["facts"]["docker"];
    assert_eq!(docker["state"], "reachable", "{report:#}");
    assert!(docker["api_version"].as_str().unwrap().starts_with("1."), "{docker}");
    assert!(!docker["server_version"].as_str().unwrap().is_empty());
    assert!(docker["memory_bytes"].as_i64().unwrap() > 0);
    assert!(docker["cpus"].as_i64().unwrap() >= 1);
    assert_eq!(checks(&report, "docker")[0]["severity"], "ok");
    for id in ["docker-resources", "kind", "k3d", "kubectl", "inotify", "cgroup", "disk"] {
        assert!(!checks(&report, id).is_empty(), "check {id} missing: {report:#}");
    }
    assert_eq!(code == 1, report["blocks_up"].as_bool().unwrap(), "exit code follows blocks_up");
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["fix"].is_string(), c["severity"] != "ok", "every problem has a fix: {c}");
    }
}

#[test]
fn doctor_with_a_dead_engine_socket_is_blocked_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/nothing-here.sock", dir.path().display());
    let (code, report) = doctor_json(dir.path(), &[("DOCKER_HOST", &socket)]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["blocks_up"], true);
    let docker = checks(&report, "docker")[0];
    assert_eq!(docker["severity"], "blocker");
    assert!(docker["detail"].as_str().unwrap().contains(&socket), "{docker}");
    assert!(docker["fix"].as_str().unwrap().contains("DOCKER_HOST"), "{docker}");
}

#[test]
fn doctor_names_the_process_holding_a_configured_port() {
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("samestack.yaml"), format!("name: doctor-test\nregistry:\n  host_port: {port}\nservices:\n  web:\n    image: nginx:1.27\n    ports: [{{ port: 80 }}]\n"))
        .unwrap();
    let (code, report) = doctor_json(dir.path(), &[]);
    let port_check = checks(&report, "ports")[0];
    assert_eq!(port_check["severity"], "blocker", "{report:#}");
    let pid = std::process::id();
    assert!(port_check["detail"].as_str().unwrap().contains(&format!("(pid {pid})")), "{port_check}");
    assert!(port_check["fix"].as_str().unwrap().contains("registry.host_port"));
    assert_eq!(code, 1);
    drop(held);
}

#[test]
fn doctor_human_output_lists_checks_plainly_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/dead.sock", dir.path().display());
    let out = samestack().current_dir(dir.path()).env("DOCKER_HOST", &socket).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().unwrap().starts_with("blocker docker "), "{text}");
    assert!(text.contains("fix: start the Docker engine at"), "{text}");
    assert!(text.contains("`samestack up` cannot succeed"), "{text}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn doctor_blocks_on_a_broken_project_file_and_missing_build_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/dead.sock", dir.path().display());
    std::fs::write(dir.path().join("samestack.yaml"), "name: x\nservices:\n  web:\n    portz: []\n").unwrap();
    let (code, report) = doctor_json(dir.path(), &[("DOCKER_HOST", &socket)]);
    assert_eq!(code, 1);
    let project = checks(&report, "project");
    assert_eq!(project.len(), 1, "{report:#}");
    assert_eq!(project[0]["severity"], "blocker", "{report:#}");
    assert!(project[0]["detail"].as_str().unwrap().contains("samestack.yaml:4:5: unknown key `portz`"), "{report:#}");

    std::fs::write(
        dir.path().join("samestack.yaml"),
        "name: x\nservices:\n  web:\n    build: { context: ./web }\n    ports: [{ port: 80 }]\n  api:\n    build: { context: . }\n    ports: [{ port: 80 }]\n",
    )
    .unwrap();
    let (_, report) = doctor_json(dir.path(), &[("DOCKER_HOST", &socket)]);
    let builds = checks(&report, "builds");
    assert_eq!(builds[0]["severity"], "blocker", "{report:#}");
    let detail = builds[0]["detail"].as_str().unwrap();
    assert!(detail.contains("service `web`: build context ./web does not exist"), "{detail}");
    assert!(detail.contains("service `api`: Dockerfile ./Dockerfile does not exist"), "{detail}");
    let mut ids: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "one id per check: {report:#}");
}
