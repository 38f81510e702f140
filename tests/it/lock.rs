//! One samestack run per project at a time, across processes: while a lock holder (here the
//! test process, as a first `up` would) holds the project's lock, a second run says whom it
//! waits for and does nothing until the lock is released. No Docker needed: the wait comes
//! before the first Docker call.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support;

#[test]
fn a_second_run_of_a_project_waits_for_the_lock_holder_and_then_proceeds() {
    let dir = tempfile::tempdir().unwrap();
    let name = support::unique_name("locktest");
    std::fs::write(
        dir.path().join("samestack.yaml"),
        format!("name: {name}\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{{ port: 80 }}]\n"),
    )
    .unwrap();
    let state = dir.path().join("state");
    let path = samestack::lock::path_for(&state.join("samestack"), &name);
    let held = samestack::lock::try_acquire(&path, "up").unwrap().expect("the lock is free");

    let mut second = support::samestack()
        .arg("down")
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", &state)
        .env("HOME", dir.path())
        .env_remove("SAMESTACK_FILE")
        .env_remove("KUBECONFIG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(second.stderr.take().unwrap()).lines();
    let first = lines.next().expect("the second run says something").unwrap();
    assert!(first.contains(&format!("waiting for another samestack run on project {name}")), "{first}");
    assert!(first.contains(&format!("pid {}, samestack up", std::process::id())), "{first}");
    assert!(second.try_wait().unwrap().is_none(), "the second run went on while the lock was held");

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second run did not proceed after the lock was released");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    // It got past the lock: whatever `down` then found (exit 0 with Docker, 1 without), it
    // never waited again.
    assert!(!rest.iter().any(|l| l.contains("waiting for another")), "{rest:?}");
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}: {rest:?}");
}
