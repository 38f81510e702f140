//! Docker tier: building the example services through the API, digest tags and skips,
//! `.dockerignore`, push and pull back by digest, and each build failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use samestack::build::{self, BuildAction, BuildOptions, BuildOutcome, BuildSpec};
use samestack::docker;
use samestack::error::{Classify, ErrorKind};

use crate::docker_fixture::{self as fx, Cleanup};
use crate::support;

fn spec(service: &str, context: &Path, repository: String) -> BuildSpec {
    BuildSpec {
        service: service.to_string(),
        context: context.to_path_buf(),
        dockerfile: None,
        build_args: BTreeMap::from([("BASE_IMAGE".to_string(), fx::PYTHON_BASE.to_string())]),
        repository,
    }
}

/// Registers every image a build produced for removal.
fn track(cleanup: &mut Cleanup, outcomes: &[BuildOutcome]) {
    for o in outcomes {
        cleanup.image(&o.reference);
    }
}

fn by_service<'a>(outcomes: &'a [BuildOutcome], service: &str) -> &'a BuildOutcome {
    outcomes.iter().find(|o| o.service == service).unwrap()
}

struct App {
    _dirs: Vec<tempfile::TempDir>,
    api: PathBuf,
    specs: Vec<BuildSpec>,
}

/// Copies of both example services, repositories unique to this test, in `registry_port`'s registry.
fn example_app(registry_port: u16) -> App {
    let (api_dir, api) = fx::example_copy("api");
    let (worker_dir, worker) = fx::example_copy("worker");
    let prefix = support::unique_name("ss-it-gb");
    let specs = vec![
        spec("api", &api, format!("localhost:{registry_port}/{prefix}-api")),
        spec("worker", &worker, format!("localhost:{registry_port}/{prefix}-worker")),
    ];
    App { _dirs: vec![api_dir, worker_dir], api, specs }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_example_services_push_skip_and_pull_by_digest() {
    let Some(()) = fx::docker_with_images("docker_build_example_services_push_skip_and_pull_by_digest") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let registry = fx::start_registry(&client, &mut cleanup, "ss-it-buildreg").await;
    let app = example_app(registry.host_port);
    let options = BuildOptions { registry_port: Some(registry.host_port), ..Default::default() };

    let first = build::build_all(&client, &app.specs, &options).await.unwrap();
    track(&mut cleanup, &first);
    assert_eq!(
        first.iter().map(|o| o.service.as_str()).collect::<Vec<_>>(),
        ["api", "worker"],
        "results in spec order"
    );
    for o in &first {
        assert_eq!(o.action, BuildAction::Built, "{}", o.service);
        assert_eq!(o.tag, o.input_digest[..12], "tag is the input digest");
        assert!(o.reference.ends_with(&format!(":{}", o.tag)));
        let digest = o.registry_digest.as_deref().expect("pushed digest");
        assert!(digest.starts_with("sha256:"), "{digest}");
        // Non-root numeric user, as the restricted pod security profile requires.
        assert_eq!(fx::docker(&["image", "inspect", "--format", "{{.Config.User}}", &o.reference]), "10001:10001");
        let in_registry = samestack::registry::manifest_digest(
            registry.host_port,
            o.reference.split_once('/').unwrap().1.rsplit_once(':').unwrap().0,
            &o.tag,
        )
        .await
        .unwrap();
        assert_eq!(in_registry.as_deref(), Some(digest), "the registry serves what was pushed");
    }

    let second = build::build_all(&client, &app.specs, &options).await.unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(b.action, BuildAction::Skipped, "{} unchanged", b.service);
        assert_eq!(b.reference, a.reference);
        assert_eq!(b.registry_digest, a.registry_digest);
    }

    // Pull back by digest after dropping the local tag: the registry really holds the image.
    let api = by_service(&first, "api");
    let pinned = api.pinned_reference();
    assert!(pinned.contains("@sha256:"), "{pinned}");
    fx::docker(&["image", "rm", &api.reference]);
    cleanup.image(&pinned);
    fx::docker(&["pull", "-q", &pinned]);
    let repo_digests = fx::docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &pinned]);
    assert!(repo_digests.contains(api.registry_digest.as_deref().unwrap()), "{repo_digests}");

    // Local image gone, registry still has it: nothing is built, the nodes pull from the registry.
    let third = build::build_all(&client, &app.specs[..1], &options).await.unwrap();
    assert_eq!(third[0].reference, api.reference);
    assert_eq!(third[0].action, BuildAction::Skipped);
    assert_eq!(third[0].registry_digest, api.registry_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_registry_cache_dir_outlives_the_registry_and_the_next_one_finds_the_images() {
    let test = "docker_build_registry_cache_dir_outlives_the_registry_and_the_next_one_finds_the_images";
    let Some(()) = fx::docker_with_images(test) else {
        return;
    };
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let tmp = tempfile::tempdir().unwrap();
    let cache = samestack::registry::check_cache_dir(&tmp.path().join("registry")).unwrap();
    let (uid, gid) = (tmp.path().metadata().unwrap().uid(), tmp.path().metadata().unwrap().gid());
    let (_api_dir, api) = fx::example_copy("api");
    // The same registry path in both registries, on different ports: what two `ci` runs do.
    let path = support::unique_name("ss-it-cache");
    let run = |cleanup: &mut Cleanup| {
        let mut registry = fx::registry_spec(cleanup, "ss-it-cachereg");
        registry.cache = Some(cache.clone());
        let build = spec("api", &api, format!("localhost:{}/{path}/api", registry.host_port));
        (registry, build)
    };

    let (first_registry, first_spec) = run(&mut cleanup);
    samestack::registry::ensure(&client, &first_registry).await.unwrap();
    let inspect = |name: &str, format: &str| fx::docker(&["inspect", "--format", format, name]);
    assert!(
        inspect(&first_registry.name, "{{range .Mounts}}{{.Type}}:{{.Source}}:{{.Destination}} {{end}}")
            .contains(&format!("bind:{}:/var/lib/registry", cache.display())),
        "the cache directory is the registry's data"
    );
    assert_eq!(inspect(&first_registry.name, "{{.Config.User}}"), format!("{uid}:{gid}"), "runs as the invoking user");
    assert_eq!(cache.metadata().unwrap().permissions().mode() & 0o777, 0o700, "created private");
    let options = BuildOptions { registry_port: Some(first_registry.host_port), ..Default::default() };
    let first = build::build_all(&client, std::slice::from_ref(&first_spec), &options).await.unwrap();
    track(&mut cleanup, &first);
    assert_eq!(first[0].action, BuildAction::Built);
    assert!(first[0].layers_uploaded > 0, "an empty cache gets every layer: {:?}", first[0]);

    // Teardown (`ci`'s, `down --purge`) removes the registry and its volume: the cache stays,
    // every file in it the invoking user's.
    samestack::registry::remove(&client, &first_registry.name, true).await.unwrap();
    fx::docker(&["image", "rm", &first[0].reference]);
    let repository = cache.join("docker/registry/v2/repositories").join(&path).join("api");
    assert!(repository.is_dir(), "the pushed repository is in the cache: {}", repository.display());
    let foreign: Vec<String> = walk(&cache)
        .into_iter()
        .filter(|p| p.symlink_metadata().unwrap().uid() != uid)
        .map(|p| p.display().to_string())
        .collect();
    assert!(foreign.is_empty(), "files in the cache not owned by uid {uid}: {foreign:?}");

    // The next run: a new registry on another port, the same cache, no local image: nothing is
    // built or pushed, and the registry serves the same manifest.
    let (second_registry, second_spec) = run(&mut cleanup);
    samestack::registry::ensure(&client, &second_registry).await.unwrap();
    let options = BuildOptions { registry_port: Some(second_registry.host_port), ..Default::default() };
    let second = build::build_all(&client, std::slice::from_ref(&second_spec), &options).await.unwrap();
    track(&mut cleanup, &second);
    assert_eq!(second[0].action, BuildAction::Skipped, "found in the cache: {:?}", second[0]);
    assert_eq!(second[0].layers_uploaded, 0);
    assert_eq!(second[0].registry_digest, first[0].registry_digest);
    assert_eq!(second[0].tag, first[0].tag);
    samestack::registry::remove(&client, &second_registry.name, true).await.unwrap();
}

/// Every path under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if dir.is_dir() && !dir.is_symlink() {
        for entry in std::fs::read_dir(dir).unwrap() {
            out.extend(walk(&entry.unwrap().path()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_one_changed_file_rebuilds_only_that_service_and_ignored_files_rebuild_nothing() {
    let Some(()) = fx::docker_with_images(
        "docker_build_one_changed_file_rebuilds_only_that_service_and_ignored_files_rebuild_nothing",
    ) else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let registry = fx::start_registry(&client, &mut cleanup, "ss-it-rebuildreg").await;
    let app = example_app(registry.host_port);
    let options = BuildOptions { registry_port: Some(registry.host_port), ..Default::default() };
    let first = build::build_all(&client, &app.specs, &options).await.unwrap();
    track(&mut cleanup, &first);

    // Files .dockerignore excludes: README.md, tests/, __pycache__, .env.
    std::fs::write(app.api.join("README.md"), "edited\n").unwrap();
    std::fs::create_dir_all(app.api.join("tests")).unwrap();
    std::fs::write(app.api.join("tests/test_new.py"), "def test(): pass\n").unwrap();
    std::fs::write(app.api.join(".env"), "DATABASE_PASSWORD=local\n").unwrap();
    let ignored = build::build_all(&client, &app.specs, &options).await.unwrap();
    assert!(ignored.iter().all(|o| o.action == BuildAction::Skipped), "ignored changes rebuild nothing: {ignored:?}");

    let mut app_py = std::fs::read_to_string(app.api.join("app.py")).unwrap();
    app_py.push_str("\n# a change\n");
    std::fs::write(app.api.join("app.py"), app_py).unwrap();
    let changed = build::build_all(&client, &app.specs, &options).await.unwrap();
    track(&mut cleanup, &changed);
    let (api, worker) = (by_service(&changed, "api"), by_service(&changed, "worker"));
    assert_eq!(api.action, BuildAction::Built);
    assert_ne!(api.reference, by_service(&first, "api").reference, "a new tag for new content");
    assert_eq!(worker.action, BuildAction::Skipped, "the other service is untouched");
    assert_eq!(worker.reference, by_service(&first, "worker").reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_context_sent_to_the_engine_honours_dockerignore() {
    let Some(()) = fx::docker_with_images("docker_build_context_sent_to_the_engine_honours_dockerignore") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "Dockerfile",
            format!(
                "FROM {}\nCOPY . /ctx\nRUN test -f /ctx/keep.txt && test -f /ctx/docs/keep.md && test ! -e /ctx/secret.env && test ! -e /ctx/docs/drop.md && test ! -e /ctx/cache\n",
                fx::BUSYBOX
            ),
        ),
        (".dockerignore", "secret.env\ndocs\n!docs/keep.md\n**/cache\nDockerfile\n".to_string()),
        ("keep.txt", "k".to_string()),
        ("secret.env", "s".to_string()),
        ("docs/keep.md", "k".to_string()),
        ("docs/drop.md", "d".to_string()),
        ("cache/blob", "c".to_string()),
    ];
    for (path, content) in &files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let spec = BuildSpec {
        service: "ignore".into(),
        context: dir.path().to_path_buf(),
        dockerfile: None,
        build_args: BTreeMap::new(),
        repository: format!("samestack-it/{}", support::unique_name("ignore")),
    };
    let outcome = build::build_all(&client, &[spec], &BuildOptions::default()).await;
    if let Ok(o) = &outcome {
        track(&mut cleanup, o);
    }
    let outcome = outcome.expect("the RUN step's checks pass only if the ignored files never reached the engine");
    assert_eq!(outcome[0].action, BuildAction::Built);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_failing_step_shows_the_step_and_its_output() {
    let Some(()) = fx::docker_with_images("docker_build_failing_step_shows_the_step_and_its_output") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let _cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        // The failing step comes right after FROM, so no intermediate image is left as cache.
        format!("FROM {}\nRUN echo about-to-fail-{} && exit 3\n", fx::BUSYBOX, std::process::id()),
    )
    .unwrap();
    let spec = BuildSpec {
        service: "broken".into(),
        context: dir.path().to_path_buf(),
        dockerfile: None,
        build_args: BTreeMap::new(),
        repository: format!("samestack-it/{}", support::unique_name("broken")),
    };
    let err = build::build_all(&client, std::slice::from_ref(&spec), &BuildOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, build::Error::StepFailed { .. }), "{msg}");
    assert!(msg.contains("service `broken`"), "{msg}");
    assert!(msg.contains("Step 2/") && msg.contains(" : RUN echo about-to-fail"), "shows the failing step: {msg}");
    assert!(msg.contains(&format!("about-to-fail-{}", std::process::id())), "shows the step's output: {msg}");
    assert!(msg.contains("non-zero code: 3"), "{msg}");
    assert_eq!(err.kind(), ErrorKind::User);
    let tagged = fx::docker(&["images", "-q", &spec.repository]);
    assert!(tagged.is_empty(), "a failed build tags nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_missing_context_and_dockerfile_are_user_errors() {
    let Some(()) = support::docker_or_skip("docker_build_missing_context_and_dockerfile_are_user_errors") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("services/payments");
    let spec = BuildSpec {
        service: "payments".into(),
        context: missing.clone(),
        dockerfile: None,
        build_args: BTreeMap::new(),
        repository: "samestack-it/payments".into(),
    };
    let err = build::build_all(&client, std::slice::from_ref(&spec), &BuildOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, build::Error::ContextMissing { .. }), "{msg}");
    assert!(msg.contains("service `payments`") && msg.contains(&missing.display().to_string()), "{msg}");
    assert_eq!(err.kind(), ErrorKind::User);
    let any: anyhow::Error = err.into();
    assert_eq!(samestack::error::kind_of(&any).exit_code(), 2);

    std::fs::create_dir_all(&missing).unwrap();
    let err = build::build_all(&client, &[spec], &BuildOptions::default()).await.unwrap_err();
    assert!(matches!(err, build::Error::DockerfileMissing { .. }), "{err}");
    assert!(err.to_string().contains("Dockerfile"), "{err}");
}

/// A fake engine on a unix socket that answers the version handshake and image lookups, then
/// drops the connection in the middle of the build's output: a daemon dying mid-build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_daemon_stopping_mid_build_is_an_environment_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let reply = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                let response = if head.contains("/version") {
                    reply("200 OK", r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#)
                } else if head.contains("/build") {
                    // Start streaming the build, then die without finishing the chunked body.
                    let chunk = r#"{"stream":"Step 1/2 : FROM base\n"}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
                        chunk.len()
                    )
                } else {
                    reply("404 Not Found", r#"{"message":"No such image"}"#)
                };
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.flush().await;
                // Connection dropped here (mid-stream for /build).
            });
        }
    });
    let client = docker::connect_to(&format!("unix://{}", socket.display())).await.expect("the fake engine negotiates");
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("Dockerfile"), "FROM base\nRUN true\n").unwrap();
    let spec = BuildSpec {
        service: "api".into(),
        context: dir2.path().to_path_buf(),
        dockerfile: None,
        build_args: BTreeMap::new(),
        repository: "samestack-it/api".into(),
    };
    let err = build::build_all(&client, &[spec], &BuildOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, build::Error::DaemonLost { .. }), "{msg}");
    assert!(msg.contains("Docker stopped answering while building service `api`"), "{msg}");
    assert_eq!(err.kind(), ErrorKind::Environment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_rebuilds_when_the_base_image_moves() {
    let Some(()) = fx::docker_with_images("docker_build_rebuilds_when_the_base_image_moves") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let base = format!("samestack-it/{}:base", support::unique_name("movingbase"));
    cleanup.image(&base);
    fx::docker(&["tag", fx::BUSYBOX, &base]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "ARG BASE=none\nFROM ${BASE}\nCOPY a.txt /a.txt\n").unwrap();
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    let spec = BuildSpec {
        service: "app".into(),
        context: dir.path().to_path_buf(),
        dockerfile: None,
        build_args: BTreeMap::from([("BASE".to_string(), base.clone())]),
        repository: format!("samestack-it/{}", support::unique_name("onbase")),
    };
    let specs = std::slice::from_ref(&spec);
    let first = build::build_all(&client, specs, &BuildOptions::default()).await.unwrap();
    track(&mut cleanup, &first);
    assert_eq!(
        build::build_all(&client, specs, &BuildOptions::default()).await.unwrap()[0].action,
        BuildAction::Skipped
    );

    // Same context, same base tag, different base image: a new tag, built on the new base.
    fx::docker(&["tag", fx::REGISTRY_IMAGE, &base]);
    let moved = build::build_all(&client, specs, &BuildOptions::default()).await.unwrap();
    track(&mut cleanup, &moved);
    assert_eq!(moved[0].action, BuildAction::Built);
    assert_ne!(moved[0].tag, first[0].tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_build_keeps_only_the_newest_local_tags() {
    let Some(()) = fx::docker_with_images("docker_build_keeps_only_the_newest_local_tags") else {
        return;
    };
    let client = docker::connect().await.unwrap();
    let mut cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {}\nCOPY v.txt /v.txt\n", fx::BUSYBOX)).unwrap();
    let repository = format!("samestack-it/{}", support::unique_name("prune"));
    let spec = BuildSpec {
        service: "app".into(),
        context: dir.path().to_path_buf(),
        dockerfile: None,
        build_args: BTreeMap::new(),
        repository: repository.clone(),
    };
    let options = BuildOptions { keep_images: 2, ..Default::default() };
    let mut references = Vec::new();
    for version in 1..=3 {
        std::fs::write(dir.path().join("v.txt"), version.to_string()).unwrap();
        let built = build::build_all(&client, std::slice::from_ref(&spec), &options).await.unwrap();
        track(&mut cleanup, &built);
        references.push(built[0].reference.clone());
    }
    let mut left: Vec<String> = fx::docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &repository])
        .lines()
        .map(String::from)
        .collect();
    left.sort();
    let mut expected = references[1..].to_vec();
    expected.sort();
    assert_eq!(left, expected, "the oldest tag was removed, the two newest stay");
}
