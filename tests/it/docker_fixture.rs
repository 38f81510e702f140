//! Plumbing for docker-tier tests: a cleanup guard that removes what a test created (even when
//! it panics), free ports, a private registry, copies of the example services, tiny HTTP calls.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use samestack::registry::{self, Registry, RegistrySpec};

use crate::support;

/// The locally built images the tests use (tests/images/build).
pub const PYTHON_BASE: &str = "samestack-test/python:latest";
pub const BUSYBOX: &str = "samestack-test/busybox:latest";
pub const REGISTRY_IMAGE: &str = "samestack-test/registry:latest";
pub const POSTGRES: &str = "samestack-test/postgres:latest";
/// The ingress controller, built from its Go module (tests/images/traefik).
pub const TRAEFIK: &str = "samestack-test/traefik:latest";

/// Docker objects a test created; removed on drop, whatever happened.
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
    networks: Vec<String>,
}

impl Cleanup {
    pub fn container(&mut self, name: &str) -> &mut Self {
        self.containers.push(name.to_string());
        self
    }
    pub fn volume(&mut self, name: &str) -> &mut Self {
        self.volumes.push(name.to_string());
        self
    }
    pub fn image(&mut self, reference: &str) -> &mut Self {
        self.images.push(reference.to_string());
        self
    }
    pub fn network(&mut self, name: &str) -> &mut Self {
        self.networks.push(name.to_string());
        self
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("docker").args(args).output();
        };
        for c in &self.containers {
            // -v: anonymous volumes of the container go too.
            quiet(&["rm", "-f", "-v", c]);
        }
        for n in &self.networks {
            quiet(&["network", "rm", n]);
        }
        for v in &self.volumes {
            quiet(&["volume", "rm", "-f", v]);
        }
        for i in &self.images {
            quiet(&["image", "rm", "-f", i]);
        }
    }
}

/// Skips (or fails in CI) without Docker, and also without the locally built test images.
pub fn docker_with_images(test: &str) -> Option<()> {
    support::docker_or_skip(test)?;
    for image in [PYTHON_BASE, BUSYBOX, REGISTRY_IMAGE, POSTGRES, TRAEFIK] {
        let present = Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !present {
            if support::in_ci() {
                panic!("{test}: test image {image} is missing; run tests/images/build (as root) first");
            }
            eprintln!("SKIP {test}: test image {image} is missing (build them with `sudo tests/images/build`)");
            return None;
        }
    }
    Some(())
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A registry spec with a unique name and a free port, registered for cleanup.
pub fn registry_spec(cleanup: &mut Cleanup, prefix: &str) -> RegistrySpec {
    let name = support::unique_name(prefix);
    cleanup.container(&name).volume(&registry::volume_name(&name));
    RegistrySpec {
        name,
        host_port: free_port(),
        image: Some(REGISTRY_IMAGE.to_string()),
        project: "samestack-it".to_string(),
        cache: None,
    }
}

/// A running private registry for one test.
pub async fn start_registry(client: &samestack::docker::Client, cleanup: &mut Cleanup, prefix: &str) -> Registry {
    let spec = registry_spec(cleanup, prefix);
    registry::ensure(client, &spec).await.expect("registry starts")
}

/// A copy of `examples/guestbook/<service>` in a fresh temp dir (tests edit their copy).
pub fn example_copy(service: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/guestbook").join(service);
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join(service);
    copy_dir(&src, &dst);
    (dir, dst)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &to);
            }
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Runs `docker <args>`, panicking with its stderr on failure; returns trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI runs");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A minimal HTTP/1.1 request to 127.0.0.1:port; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Polls `check` until it returns Some or `timeout` passes (then panics with `what`).
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
