//! Shared test plumbing: the samestack binary, tier gating (docker, cluster), unique names.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The built `samestack` binary.
pub fn samestack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_samestack"))
}

/// True under CI (`CI` set to anything but "false"/"0"): there, a missing tier prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v != "false" && v != "0" && !v.is_empty()).unwrap_or(false)
}

/// Gate for docker-tier tests. Returns `Some(())` when a Docker engine answers. Outside CI a
/// missing engine skips the test with a loud line on stderr; in CI it fails the test.
pub fn docker_or_skip(test: &str) -> Option<()> {
    let answers = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if answers {
        return Some(());
    }
    if in_ci() {
        panic!(
            "{test}: no Docker engine answers, and CI=true requires the docker tier to run (start one with .ci/ensure-docker)"
        );
    }
    eprintln!("SKIP {test}: no Docker engine answers (run .ci/ensure-docker as root to enable the docker tier)");
    None
}

/// A name unique to this test process and call, safe for Docker objects and Kubernetes names.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The node image the cluster tier uses: `SAMESTACK_NODE_IMAGE` (as `.ci/run` sets it from
/// tests/cluster/build-images), else the tag that script builds.
pub fn node_image() -> String {
    std::env::var("SAMESTACK_NODE_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "samestack-test/node:v1.34.4".into())
}

/// Gate for cluster-tier tests: Docker plus locally built `images` (the node image is always
/// wanted). Outside CI a missing piece skips loudly; in CI it fails. Returns the node image.
pub fn cluster_or_skip(test: &str, images: &[&str]) -> Option<String> {
    docker_or_skip(test)?;
    let node_image = node_image();
    let missing: Vec<&str> = std::iter::once(node_image.as_str())
        .chain(images.iter().copied())
        .filter(|image| {
            !Command::new("docker")
                .args(["image", "inspect", image])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Some(node_image);
    }
    let how = "build them with tests/cluster/build-images (node) and tests/images/build (the others)";
    if in_ci() {
        panic!("{test}: images missing: {missing:?}; CI=true requires the cluster tier to run; {how}");
    }
    eprintln!("SKIP {test}: images missing: {missing:?} ({how})");
    None
}

/// Removes every container, network and volume labelled `dev.samestack.project=<project>` when
/// dropped, whatever happened in the test (`SAMESTACK_TEST_KEEP` keeps them for debugging).
/// A node whose pod cgroups were left frozen cannot be killed ("did not receive an exit event"):
/// its cgroups are thawed and the removal tried again, until nothing labelled is left.
pub struct ProjectCleanup(pub String);

impl Drop for ProjectCleanup {
    fn drop(&mut self) {
        if std::env::var_os("SAMESTACK_TEST_KEEP").is_some() {
            eprintln!("SAMESTACK_TEST_KEEP set: leaving Docker objects labelled dev.samestack.project={}", self.0);
            return;
        }
        let left = remove_labelled(&self.0);
        if !left.is_empty() {
            eprintln!("ProjectCleanup({}): could not remove {left:?}", self.0);
        }
    }
}

/// Removes what carries the project's label, thawing frozen cgroups of containers that will
/// not die; returns what is still there after a few attempts.
pub fn remove_labelled(project: &str) -> Vec<String> {
    let label = format!("label=dev.samestack.project={project}");
    let run = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let ids = |args: &[&str]| run(args).lines().filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>();
    let mut left = Vec::new();
    for _ in 0..3 {
        for id in ids(&["ps", "-aq", "--no-trunc", "--filter", &label]) {
            samestack::docker::thaw_cgroups(&samestack::docker::container_cgroup_dirs(
                std::path::Path::new(samestack::docker::CGROUP_ROOT),
                &id,
            ));
            run(&["rm", "-fv", &id]);
        }
        for id in ids(&["network", "ls", "-q", "--filter", &label]) {
            run(&["network", "rm", &id]);
        }
        for id in ids(&["volume", "ls", "-q", "--filter", &label]) {
            run(&["volume", "rm", "-f", &id]);
        }
        for id in ids(&["images", "-q", "--filter", &label]) {
            run(&["rmi", "-f", &id]);
        }
        left = [
            ids(&["ps", "-aq", "--filter", &label]).into_iter().map(|i| format!("container {i}")).collect::<Vec<_>>(),
            ids(&["network", "ls", "-q", "--filter", &label]).into_iter().map(|i| format!("network {i}")).collect(),
            ids(&["volume", "ls", "-q", "--filter", &label]).into_iter().map(|i| format!("volume {i}")).collect(),
        ]
        .concat();
        if left.is_empty() {
            break;
        }
    }
    left
}
