//! Signals: SIGINT and SIGTERM stop a command with 128 + the signal, saying it was
//! interrupted. No Docker needed: the "engine" is a unix socket that accepts and never answers,
//! so `up` is certainly waiting on it when the signal goes out. (The cluster tier interrupts
//! a real `up` in every step: `up::cluster_up_interrupted_in_each_step_converges_on_the_next_up`.)

use std::os::unix::net::UnixListener;
use std::process::Command;

use crate::support::samestack;

/// Starts `up` against a silent engine, sends `signal` once it has connected, and returns the
/// exit code and stderr.
fn up_stopped_by(signal: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("samestack.yaml"),
        "name: signals\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n",
    )
    .unwrap();
    let socket = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let child = samestack()
        .current_dir(dir.path())
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("HOME", dir.path())
        .env_remove("SAMESTACK_FILE")
        .args(["up"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The condition to wait for: `up` has reached the engine (it connects in preflight).
    let (_connection, _) = listener.accept().unwrap();
    let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn sigterm_stops_up_with_143_and_sigint_with_130() {
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        let (status, stderr) = up_stopped_by(signal);
        assert_eq!(status, Some(code), "{signal}:\n{stderr}");
        assert!(stderr.contains("interrupted"), "{signal}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{signal}:\n{stderr}");
    }
}
