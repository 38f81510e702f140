//! Shared test plumbing: the samestack binary, tier gating (docker, cluster), unique names, and
//! [`Stack`], a copy of the example project that `up`, `status` and `down` run on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::docker_fixture::{POSTGRES, PYTHON_BASE, REGISTRY_IMAGE, TRAEFIK, docker, free_port};

/// The built `samestack` binary.
pub fn samestack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_samestack"))
}

/// samestack run in the project `dir` by a user of its own: `HOME` is `dir/home`, the test's
/// `KUBECONFIG` and `XDG_STATE_HOME` are not passed on, and the node and registry images are the
/// locally built ones.
pub fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = samestack();
    command
        .args(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .env_remove("KUBECONFIG")
        .env_remove("XDG_STATE_HOME")
        .env("SAMESTACK_NODE_IMAGE", node_image())
        .env("SAMESTACK_REGISTRY_IMAGE", REGISTRY_IMAGE);
    command
}

/// True under CI (`CI` set to anything but "false"/"0"): there, a missing tier prerequisite is a failure.
pub fn in_ci() -> bool {
    samestack::ui::is_ci(std::env::var("CI").ok().as_deref())
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

/// One test project: a copy of the example with a unique name and free ports, an isolated HOME
/// (so the user's kubeconfig is a temp file), and a guard that removes every labelled object.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub registry_port: u16,
    /// Host port mapped onto the node's 80: the ingress controller's HTTP entrypoint.
    pub ingress_port: u16,
    /// Host port mapped onto the node's 443.
    pub https_port: u16,
    _cleanup: ProjectCleanup,
}

impl Stack {
    pub fn new() -> Stack {
        Stack::with_edits("upit", &[])
    }

    /// A copy of the example named `<prefix>-<unique>`, with `edits` (each `from` exactly once
    /// in the example's samestack.yaml) applied, e.g. another provider or more nodes.
    pub fn with_edits(prefix: &str, edits: &[(&str, &str)]) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/guestbook");
        copy_dir(&example, dir.path());
        let name = unique_name(prefix);
        let registry_port = free_port();
        let yaml = std::fs::read_to_string(dir.path().join("samestack.yaml")).unwrap();
        let yaml = replace_once(&yaml, "\nname: guestbook\n", &format!("\nname: {name}\n"));
        let yaml = replace_once(&yaml, "host_port: 5001", &format!("host_port: {registry_port}"));
        let ingress_port = free_port();
        let yaml =
            replace_once(&yaml, "{ host: 8080, container: 80 }", &format!("{{ host: {ingress_port}, container: 80 }}"));
        let https_port = free_port();
        let yaml =
            replace_once(&yaml, "{ host: 8443, container: 443 }", &format!("{{ host: {https_port}, container: 443 }}"));
        let yaml = edits.iter().fold(yaml, |yaml, (from, to)| replace_once(&yaml, from, to));
        std::fs::write(dir.path().join("samestack.yaml"), yaml).unwrap();
        std::fs::create_dir_all(dir.path().join(".secrets")).unwrap();
        std::fs::write(dir.path().join(".secrets/db-password"), "it-only-password").unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Stack { dir, _cleanup: ProjectCleanup(name.clone()), name, registry_port, ingress_port, https_port }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = command_in(self.dir.path(), args);
        command.env("SAMESTACK_POSTGRES_IMAGE", POSTGRES).env("SAMESTACK_INGRESS_IMAGE", TRAEFIK);
        command
    }

    pub fn samestack(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("samestack runs")
    }

    pub fn up_output(&self) -> Output {
        let args = self.up_args();
        self.samestack(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Postgres and the ingress controller are not built by the project: offline, they are
    /// preloaded from the local engine.
    pub fn up_args(&self) -> Vec<String> {
        let base = format!("BASE_IMAGE={PYTHON_BASE}");
        let preload = format!("{POSTGRES},{TRAEFIK}");
        ["up", "--build-arg", &base, "--preload", &preload, "--ready-timeout", "420"].map(String::from).to_vec()
    }

    /// `GET path` through the ingress controller on the host port, with the Ingress's host
    /// name; the status line and the body.
    pub fn get_through_ingress(&self, host: &str, path: &str) -> (String, String) {
        use std::io::{Read, Write};
        let mut conn =
            std::net::TcpStream::connect(("127.0.0.1", self.ingress_port)).expect("the ingress port answers");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).expect("a response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (head.lines().next().unwrap_or_default().to_string(), body.to_string())
    }

    /// `GET path` over HTTPS through the ingress controller, by curl, trusting only the
    /// development CA in this stack's HOME; curl's exit code and the HTTP status.
    pub fn get_https(&self, host: &str, path: &str) -> (Option<i32>, String) {
        let ca = self.dir.path().join("home/.local/state/samestack/ca/ca.crt");
        let port = self.https_port;
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), &format!("https://{host}:{port}{path}")])
            .output()
            .expect("curl runs (CI installs it)");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    /// `up` with the offline images; panics with the output unless it succeeds.
    pub fn up(&self) -> String {
        self.up_with(&[])
    }

    /// `up` with the offline images and `extra` arguments; panics unless it succeeds.
    pub fn up_with(&self, extra: &[&str]) -> String {
        let mut args = self.up_args();
        args.extend(extra.iter().map(|a| a.to_string()));
        let out = self.samestack(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let text = output_text(&out);
        assert!(out.status.success(), "samestack up failed:\n{text}");
        text
    }

    /// `up` with the offline images and `--ready-timeout <secs>`; panics unless it fails, and
    /// returns its output.
    pub fn up_failing_within(&self, secs: u64) -> String {
        let mut args = self.up_args();
        let timeout = args.iter().position(|a| a == "--ready-timeout").unwrap() + 1;
        args[timeout] = secs.to_string();
        let out = self.samestack(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let text = output_text(&out);
        assert!(!out.status.success(), "samestack up --ready-timeout {secs} succeeded:\n{text}");
        text
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("home/.kube/config")
    }

    pub fn edit(&self, from: &str, to: &str) {
        let path = self.dir.path().join("samestack.yaml");
        let yaml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, replace_once(&yaml, from, to)).unwrap();
    }

    /// After a `down`: only the registry (the image cache: its container, its volume and the
    /// images built into it) is left and the kubeconfig no longer names the project; then
    /// `down --purge` leaves nothing labelled.
    pub fn assert_down_kept_only_the_registry_and_purge_removes_it(&self) {
        let registry_name = samestack::settings::registry_container_name(&self.name);
        let mut left = self.labelled_objects();
        left.sort();
        let built = |service: &str| format!("image localhost:{}/{}/{service}", self.registry_port, self.name);
        assert_eq!(
            left,
            [
                format!("container {registry_name}"),
                built("api"),
                built("worker"),
                format!("volume {}", samestack::registry::volume_name(&registry_name))
            ]
        );
        let kubeconfig = std::fs::read_to_string(self.kubeconfig()).unwrap();
        assert!(!kubeconfig.contains(&self.name), "down left the context in the kubeconfig:\n{kubeconfig}");
        let purge = self.samestack(&["down", "--purge"]);
        assert!(purge.status.success(), "{}", output_text(&purge));
        assert_eq!(self.labelled_objects(), Vec::<String>::new());
    }

    /// Containers, networks and volumes labelled with this project, as `kind name` lines.
    pub fn labelled_objects(&self) -> Vec<String> {
        labelled_objects(&self.name)
    }
}

/// Containers, networks, volumes and images labelled with `project`, as `kind name` lines.
pub fn labelled_objects(project: &str) -> Vec<String> {
    let label = format!("label=dev.samestack.project={project}");
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &label]),
        ("network", vec!["network", "ls", "--format", "{{.Name}}", "--filter", &label]),
        ("volume", vec!["volume", "ls", "--format", "{{.Name}}", "--filter", &label]),
        ("image", vec!["images", "--format", "{{.Repository}}", "--filter", &label]),
    ] {
        found.extend(docker(&args).lines().filter(|l| !l.is_empty()).map(|l| format!("{kind} {l}")));
    }
    found
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "expected exactly one `{from}` in the example's samestack.yaml");
    text.replacen(from, to, 1)
}

pub fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The line of `up`'s output for a step.
pub fn step_line<'a>(output: &'a str, step: &str) -> &'a str {
    output.lines().find(|l| l.starts_with(step)).unwrap_or_else(|| panic!("no `{step}` line in:\n{output}"))
}

/// `image` with `SAMESTACK_TEST_RUNC=plain` in its environment, tagged
/// `samestack-test/plain-runc:<project>` and labelled with the project (so the project's cleanup
/// removes the tag). On an engine with the test-environment runc shim (`.ci/ensure-docker`),
/// containers of this image get the real runc's behaviour: where the sandbox refuses privileged
/// containers (these CI machines), they are refused again, so the native provider's fallback to
/// an explicit capability set runs for real. Only a metadata layer: built in a second.
pub fn plain_runc_image(image: &str, project: &str) -> String {
    let tag = format!("samestack-test/plain-runc:{project}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {image}\nENV SAMESTACK_TEST_RUNC=plain\n")).unwrap();
    let label = format!("dev.samestack.project={project}");
    let context = dir.path().display().to_string();
    docker(&["build", "-q", "--label", &label, "-t", &tag, &context]);
    tag
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
