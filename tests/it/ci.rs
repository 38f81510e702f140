//! `samestack ci -- CMD` as a CI job runs it. Cluster tier, two tests that run their `ci`
//! processes side by side (one cluster each; few tests, because every run makes a cluster):
//! a passing command that reads SAMESTACK_API_URL and gets a 200, next to a failing one that
//! leaves artifacts — both green, nothing labelled left; then a command that times out (124),
//! one stopped by SIGTERM (143) and a run stopped by SIGTERM during `up` (143), nothing left.
//! Without a cluster: bad input exits 2 before anything exists.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::docker_fixture::{POSTGRES, PYTHON_BASE, REGISTRY_IMAGE, TRAEFIK};
use crate::support;
use crate::support::{copy_dir, output_text};

/// A copy of the example in a temp dir with an isolated HOME (so the user's kubeconfig and the
/// state directory are temp files), and the name `ci --name` gives its environment.
struct CiProject {
    dir: tempfile::TempDir,
    name: String,
    _cleanup: support::ProjectCleanup,
}

impl CiProject {
    fn new(prefix: &str) -> CiProject {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/guestbook"), dir.path());
        std::fs::create_dir_all(dir.path().join(".secrets")).unwrap();
        std::fs::write(dir.path().join(".secrets/db-password"), "it-only-password").unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let name = support::unique_name(prefix);
        CiProject { dir, _cleanup: support::ProjectCleanup(name.clone()), name }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `samestack ci --name <name> <extra> -- <cmd>` with the offline images.
    fn command(&self, extra: &[&str], cmd: &[&str]) -> Command {
        self.command_named(&self.name, extra, cmd)
    }

    fn command_named(&self, name: &str, extra: &[&str], cmd: &[&str]) -> Command {
        let base = format!("BASE_IMAGE={PYTHON_BASE}");
        let preload = format!("{POSTGRES},{TRAEFIK}");
        let mut command = support::command_in(
            self.dir.path(),
            &["ci", "--name", name, "--build-arg", &base, "--preload", &preload, "--ready-timeout", "420"],
        );
        command
            .args(extra)
            .arg("--")
            .args(cmd)
            .env_remove("SAMESTACK_PRELOAD")
            .env("SAMESTACK_POSTGRES_IMAGE", POSTGRES)
            .env("SAMESTACK_INGRESS_IMAGE", TRAEFIK)
            .stdin(Stdio::null());
        command
    }

    fn spawn(&self, extra: &[&str], cmd: &[&str]) -> Child {
        self.command(extra, cmd).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("samestack runs")
    }

    /// What a teardown must leave empty: Docker objects labelled with the environment's name,
    /// and samestack's files for it (the run's directory, the cluster's kubeconfig, and the
    /// user kubeconfig, which ci never writes).
    fn leftovers(&self) -> Vec<String> {
        let mut found = support::labelled_objects(&self.name);
        let state = self.home().join(".local/state/samestack");
        for path in [state.join("ci").join(&self.name), state.join(&self.name), self.home().join(".kube/config")] {
            if path.exists() {
                found.push(format!("file {}", path.display()));
            }
        }
        found
    }
}

/// Waits for a spawned run and returns its output.
fn finish(child: Child) -> Output {
    child.wait_with_output().expect("samestack ran")
}

fn cluster_or_skip(test: &str) -> Option<String> {
    support::cluster_or_skip(test, &[PYTHON_BASE, POSTGRES, REGISTRY_IMAGE, TRAEFIK])
}

#[test]
fn cluster_ci_runs_two_jobs_side_by_side_one_passing_against_the_api_one_failing_with_artifacts() {
    if cluster_or_skip("cluster_ci_runs_two_jobs_side_by_side_one_passing_against_the_api_one_failing_with_artifacts")
        .is_none()
    {
        return;
    }
    let passing = CiProject::new("cipass");
    let failing = CiProject::new("cifail");
    // The passing job: the API answers through the port-forward, the dotenv file has the same
    // variables, and the kubeconfig is the run's own.
    let check = r#"set -e
        test "$(curl -sS -o /dev/null -w '%{http_code}' "$SAMESTACK_API_URL/healthz")" = 200
        grep -q "^SAMESTACK_API_URL='$SAMESTACK_API_URL'$" "$SAMESTACK_ENV_FILE"
        test -n "$SAMESTACK_REGISTRY" && test -n "$SAMESTACK_NAMESPACE" && test -n "$SAMESTACK_WORKER_URL"
        case "$KUBECONFIG" in "$HOME"/.local/state/samestack/ci/*) ;; *) exit 9;; esac
        echo "api answered 200""#;
    // The passing job keeps its registry's data in a cache directory, as a CI job would.
    let cache = passing.dir.path().join("registry-cache");
    let pass = passing.spawn(&["--json", "--registry-cache", cache.to_str().unwrap()], &["sh", "-c", check]);
    let artifacts = failing.dir.path().join("out");
    let fail =
        failing.spawn(&["--artifacts", artifacts.to_str().unwrap()], &["sh", "-c", "echo failing on purpose; exit 3"]);
    let (pass, fail) = (finish(pass), finish(fail));

    let text = output_text(&pass);
    assert_eq!(pass.status.code(), Some(0), "{text}");
    let stdout = String::from_utf8_lossy(&pass.stdout);
    let (command_output, json) = stdout.split_once('{').expect("a JSON summary on stdout");
    assert!(command_output.contains("api answered 200"), "the command's stdout passes through:\n{text}");
    let summary: serde_json::Value = serde_json::from_str(&format!("{{{json}")).expect("the summary is JSON");
    assert_eq!(summary["outcome"], "passed", "{summary:#}");
    assert_eq!(summary["exit_code"], 0, "{summary:#}");
    assert_eq!(summary["artifacts"], serde_json::Value::Null, "no artifacts when nothing failed");
    let steps: Vec<&str> = summary["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for step in ["preflight", "registry", "cluster", "images", "apply", "forward", "command", "teardown"] {
        assert!(steps.contains(&step), "no {step} in {steps:?}");
    }
    assert!(summary["steps"].as_array().unwrap().iter().all(|s| s["outcome"] == "ok"), "{summary:#}");
    assert_eq!(passing.leftovers(), Vec::<String>::new(), "the passing job left something:\n{text}");
    // Teardown kept the cache, the images in it under the real project's name (the run's name
    // changes, the next run's push finds them: docker_build_registry_cache_dir_...).
    let step = |name: &str| summary["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    assert!(
        step("registry")["detail"].as_str().unwrap().contains(&format!("data in {}", cache.display())),
        "{summary:#}"
    );
    assert!(step("images")["detail"].as_str().unwrap().contains("layer(s) uploaded"), "{summary:#}");
    for service in ["api", "worker"] {
        let repository = cache.join("docker/registry/v2/repositories/guestbook").join(service);
        assert!(repository.is_dir(), "{} not in the kept cache", repository.display());
    }

    let text = output_text(&fail);
    assert_eq!(fail.status.code(), Some(3), "{text}");
    assert!(text.contains(&format!("artifacts in {}", artifacts.display())), "{text}");
    let index = std::fs::read_to_string(artifacts.join("index.txt")).expect("an index");
    assert!(index.contains("exited with 3"), "{index}");
    for file in ["steps.txt", "manifests.yaml", "events.txt", "pods.txt", "nodes.txt"] {
        assert!(index.contains(file) && artifacts.join(file).is_file(), "{file} missing:\n{index}");
    }
    let manifests = std::fs::read_to_string(artifacts.join("manifests.yaml")).unwrap();
    let password_b64 = "aXQtb25seS1wYXNzd29yZA=="; // base64 of it-only-password
    assert!(manifests.contains(samestack::render::REDACTED_ANNOTATION), "no Secret marked redacted:\n{manifests}");
    assert!(!manifests.contains("it-only-password") && !manifests.contains(password_b64), "secrets not redacted");
    // The API's log is among them, under its pod's name.
    let api_log = std::fs::read_dir(artifacts.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("api-"))
        .map(|p| p.join("api.log"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no logs/api-*/api.log:\n{index}"));
    let log = std::fs::read_to_string(&api_log).unwrap();
    assert!(log.contains("guestbook api listening on :8080"), "{}: {log}", api_log.display());
    let steps = std::fs::read_to_string(artifacts.join("steps.txt")).unwrap();
    assert!(steps.contains("apply") && steps.contains("command") && steps.contains("exited with 3"), "{steps}");
    assert_eq!(failing.leftovers(), Vec::<String>::new(), "the failing job left something:\n{text}");
}

#[test]
fn cluster_ci_tears_down_after_a_timeout_and_after_sigterm_during_the_command_and_during_up() {
    if cluster_or_skip("cluster_ci_tears_down_after_a_timeout_and_after_sigterm_during_the_command_and_during_up")
        .is_none()
    {
        return;
    }
    let timed = CiProject::new("citime");
    let termed = CiProject::new("citerm");
    let early = CiProject::new("ciearly");
    let timeout = timed.spawn(&["--timeout", "5"], &["sleep", "600"]);
    let mut during_command = termed.spawn(&[], &["sh", "-c", "echo command started; sleep 600"]);
    let mut during_up = early.spawn(&[], &["true"]);
    // SIGTERM to a run that is still making its cluster, as soon as its registry is up (read
    // in a thread of its own, so the line is seen when it is printed).
    let stderr = during_up.stderr.take().unwrap();
    let pid = during_up.id();
    let watcher = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if !sent && line.starts_with("registry") {
                send_sigterm(pid);
                sent = true;
            }
        }
        (sent, seen)
    });

    // SIGTERM to samestack itself (not to the command) as soon as the command runs.
    let mut stdout = BufReader::new(during_command.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    if first.trim() != "command started" {
        let out = finish(during_command);
        panic!("the command never started: {first}\n{}", output_text(&out));
    }
    send_sigterm(during_command.id());

    let timeout = finish(timeout);
    let text = output_text(&timeout);
    assert_eq!(timeout.status.code(), Some(124), "{text}");
    assert!(text.contains("timed out"), "{text}");
    assert_eq!(timed.leftovers(), Vec::<String>::new(), "left after the timeout:\n{text}");

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let during_command = finish(during_command);
    let text = output_text(&during_command);
    assert_eq!(during_command.status.code(), Some(143), "{text}");
    assert!(text.contains("interrupted by SIGTERM"), "{text}");
    // What the job saw until the signal is kept: artifacts are written before the teardown.
    let index = std::fs::read_to_string(termed.dir.path().join("samestack-artifacts/index.txt"))
        .unwrap_or_else(|e| panic!("no artifacts after SIGTERM during the command ({e}):\n{text}"));
    assert!(index.contains("interrupted by SIGTERM") && index.contains("pods.txt"), "{index}");
    assert_eq!(termed.leftovers(), Vec::<String>::new(), "left after SIGTERM during the command:\n{text}");

    let during_up = finish(during_up);
    let (sent, seen) = watcher.join().unwrap();
    let text = format!("{seen}{}", output_text(&during_up));
    assert!(sent, "the run never reached the cluster step:\n{text}");
    assert_eq!(during_up.status.code(), Some(143), "{text}");
    assert!(text.contains("got SIGTERM"), "{text}");
    assert_eq!(early.leftovers(), Vec::<String>::new(), "left after SIGTERM during up:\n{text}");
}

fn send_sigterm(pid: u32) {
    let sent = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(sent.success());
}

#[test]
fn ci_refuses_bad_input_before_creating_anything() {
    let project = CiProject::new("cibad");
    let run = |extra: &[&str]| project.command(extra, &["true"]).output().unwrap();
    let out = project.command_named("Not_A_Name", &[], &["true"]).output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--name Not_A_Name") && text.contains("fix:"), "{text}");
    let out = run(&["--profile", "nonexistent"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let yaml = project.dir.path().join("samestack.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap().replace("provider: auto", "provider: existing");
    std::fs::write(&yaml, text).unwrap();
    let out = run(&[]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("existing"), "{text}");
    assert_eq!(project.leftovers(), Vec::<String>::new());
}

#[test]
fn ci_help_snapshot() {
    let out = support::samestack()
        .env_remove("SAMESTACK_FILE")
        .env_remove("SAMESTACK_PRELOAD")
        .args(["ci", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    insta::assert_snapshot!("ci_help", format!("$ samestack ci --help\n{}", String::from_utf8(out.stdout).unwrap()));
}

/// samestack itself fails in a step (the node image does not exist): exit 1, artifacts name the
/// failed step and say what could not be collected, and the registry made before it is gone.
#[test]
fn docker_ci_failing_in_a_step_writes_artifacts_and_tears_down() {
    if crate::docker_fixture::docker_with_images("docker_ci_failing_in_a_step_writes_artifacts_and_tears_down")
        .is_none()
    {
        return;
    }
    let project = CiProject::new("cistep");
    let artifacts = project.dir.path().join("artifacts");
    let out = project
        .command(&["--json", "--artifacts", artifacts.to_str().unwrap()], &["true"])
        .env("SAMESTACK_NODE_IMAGE", "samestack-test/no-such-node-image:v0")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("only the JSON summary on stdout");
    assert_eq!(summary["outcome"], "error", "{summary:#}");
    let steps = summary["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["preflight", "registry", "cluster", "artifacts", "teardown"], "{summary:#}");
    assert_eq!(steps[2]["outcome"], "failed", "{summary:#}");
    assert!(steps[2]["detail"].as_str().unwrap().contains("no-such-node-image"), "{summary:#}");
    let index = std::fs::read_to_string(artifacts.join("index.txt")).unwrap();
    assert!(index.contains("no-such-node-image") && index.contains("no cluster to read"), "{index}");
    let log = std::fs::read_to_string(artifacts.join("steps.txt")).unwrap();
    assert!(log.contains("registry") && log.lines().any(|l| l.starts_with("cluster") && l.contains("FAILED")), "{log}");
    assert_eq!(project.leftovers(), Vec::<String>::new(), "{text}");
}
