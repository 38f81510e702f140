//! Every class of bad input: a clear message with its location, exit code 2, no panic,
//! nothing printed on stdout and nothing written.

use std::path::Path;
use std::process::Output;

use crate::support::samestack;

const GOOD_SERVICE: &str = "services:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n";

/// Runs `samestack render -o <dir>/out [extra]` on `bytes` written as the project file.
fn render_bytes(dir: &Path, bytes: &[u8], extra: &[&str]) -> Output {
    std::fs::write(dir.join("samestack.yaml"), bytes).unwrap();
    samestack()
        .current_dir(dir)
        .env_remove("SAMESTACK_FILE")
        .env_remove("SAMESTACK_POSTGRES_IMAGE")
        .args(["render", "-o", "out"])
        .args(extra)
        .output()
        .unwrap()
}

/// Asserts the failure contract and that stderr holds each expected fragment.
fn assert_user_error(dir: &Path, out: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "stdout must be empty, got:\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("fix: "), "every user error says how to fix it:\n{stderr}");
    for e in expected {
        assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
    }
    assert!(!dir.join("out").exists(), "nothing may be written on error");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".samestack-render"))
        .collect();
    assert!(leftovers.is_empty(), "temporary output left behind");
}

fn case(yaml: &str, extra: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = render_bytes(dir.path(), yaml.as_bytes(), extra);
    assert_user_error(dir.path(), &out, expected);
}

#[test]
fn tabs_in_indentation() {
    case("name: x\nservices:\n\tweb:\n\t\timage: nginx:1.27.2\n", &[], &["samestack.yaml:3:", "tab"]);
}

#[test]
fn unclosed_bracket() {
    case(
        "name: x\nservices: {web: {image: \"a:1\", ports: [{port: 80}]\n",
        &[],
        &["samestack.yaml:2:", "unclosed", "bracket"],
    );
}

#[test]
fn empty_file() {
    case("", &[], &["samestack.yaml: the file is empty", "samestack init"]);
    case("# only a comment\n---\n", &[], &["the file is empty"]);
}

#[test]
fn binary_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = render_bytes(dir.path(), b"\x7fELF\x02\x01\x01\x00\x00\x00name", &[]);
    assert_user_error(dir.path(), &out, &["samestack.yaml", "binary"]);
    let out = render_bytes(dir.path(), &[0xff, 0xfe, b'n', b'a'], &[]);
    assert_user_error(dir.path(), &out, &["samestack.yaml:1:1", "not valid UTF-8"]);
}

#[test]
fn unknown_key() {
    case(
        "name: x\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n    helth: { path: / }\n",
        &[],
        &["samestack.yaml:6:5: unknown key `helth`", "expected one of", "health"],
    );
}

#[test]
fn wrong_type() {
    case(
        "name: x\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: eighty }]\n",
        &[],
        &["samestack.yaml:5:", "found `eighty`", "expected a non-negative integer"],
    );
    case(
        "name: x\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: 80\n",
        &[],
        &["samestack.yaml:5:12: wrong type: found `80`, expected a list"],
    );
}

#[test]
fn duplicate_key() {
    case(&format!("name: x\nname: y\n{GOOD_SERVICE}"), &[], &["samestack.yaml:2:1: duplicate key `name`"]);
}

#[test]
fn duplicate_service_names() {
    case(
        "name: x\nservices:\n  web:\n    image: a:1\n    ports: [{ port: 80 }]\n  web:\n    image: b:1\n",
        &[],
        &["samestack.yaml:6:3: duplicate key `web`"],
    );
}

#[test]
fn exponential_aliases_billion_laughs() {
    let mut yaml = String::from(
        "name: x\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n    command: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        yaml.push_str(&format!("  s{i}: {{ image: \"a:1\", ports: [{{ port: 80 }}], command: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}] }}\n"));
    }
    case(&yaml, &[], &["samestack.yaml:"]);
}

#[test]
fn alias_fan_out_hits_the_budget() {
    let refs = vec!["*i"; 300].join(", ");
    case(
        &format!(
            "name: x\nservices:\n  web:\n    image: &i nginx:1.27.2\n    ports: [{{ port: 80 }}]\n    command: [{refs}]\n"
        ),
        &[],
        &["samestack.yaml:6:", "aliases expand too much"],
    );
}

#[test]
fn recursive_alias() {
    case("name: x\nservices: &s\n  web: *s\n", &[], &["samestack.yaml:3:", "alias"]);
}

#[test]
fn unknown_provider() {
    case(
        &format!("name: x\ncluster:\n  provider: minikube\n{GOOD_SERVICE}"),
        &[],
        &["samestack.yaml:3:13: unknown value `minikube`", "auto, docker, kind, k3d, existing"],
    );
}

#[test]
fn unknown_profile() {
    case(
        &format!("name: x\n{GOOD_SERVICE}profiles: [dev, prod]\n"),
        &["--profile", "staging"],
        &["unknown profile `staging`", "dev, prod", "samestack.yaml:6:1"],
    );
}

#[test]
fn listed_profile_without_definition() {
    case(
        &format!("name: x\n{GOOD_SERVICE}profiles: [dev, staging, prod]\n"),
        &["--profile", "staging"],
        &["samestack.yaml:6:17: profile `staging` is listed but has no definition", "profiles/staging.yaml"],
    );
}

#[test]
fn unknown_profile_knob() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(dir.path().join("profiles/dev.yaml"), "replicas: 1\ngpus: 2\nallowed_drift: [replicas]\n").unwrap();
    let out = render_bytes(dir.path(), format!("name: x\n{GOOD_SERVICE}").as_bytes(), &["--profile", "dev"]);
    assert_user_error(dir.path(), &out, &["profiles/dev.yaml:2:1: unknown key `gpus`"]);
}

#[test]
fn template_with_undefined_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {{ project.namespace }}\n  labels: {{ labels | tojson }}\ndata:\n  colour: {{ project.colour }}\n",
    )
    .unwrap();
    let out = render_bytes(dir.path(), format!("name: x\n{GOOD_SERVICE}").as_bytes(), &[]);
    assert_user_error(
        dir.path(),
        &out,
        &["template extra.yaml:8", "templates/extra.yaml", "project.colour", "undefined"],
    );
}

#[test]
fn template_syntax_error_and_invalid_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/service.yaml"),
        "kind: x\n{% for p in service.ports %}\nname: {{ p.name }}\n",
    )
    .unwrap();
    let out = render_bytes(dir.path(), format!("name: x\n{GOOD_SERVICE}").as_bytes(), &[]);
    assert_user_error(dir.path(), &out, &["template service.yaml:", "templates/service.yaml", "syntax"]);
    std::fs::write(dir.path().join("templates/service.yaml"), "kind: [unclosed\n").unwrap();
    let out = render_bytes(dir.path(), format!("name: x\n{GOOD_SERVICE}").as_bytes(), &[]);
    assert_user_error(
        dir.path(),
        &out,
        &["template service.yaml", "produced invalid YAML for service `web`", "rendered line 1"],
    );
}

#[test]
fn service_with_neither_image_nor_build() {
    case(
        "name: x\nservices:\n  web:\n    ports: [{ port: 80 }]\n",
        &[],
        &["samestack.yaml:3:3: service `web` has neither `image` nor `build`"],
    );
}

#[test]
fn colliding_host_ports() {
    case(
        &format!(
            "name: x\nregistry:\n  host_port: 8080\ncluster:\n  ports:\n    - {{ host: 8080, container: 80 }}\n{GOOD_SERVICE}"
        ),
        &[],
        &["samestack.yaml:6:9: host port 8080 is used twice", "registry.host_port", "samestack.yaml:3:"],
    );
}

#[test]
fn missing_secret_file() {
    case(
        &format!("name: x\n{GOOD_SERVICE}    secrets: {{ PASSWORD: pw }}\nsecrets:\n  pw: {{ file: .secrets/pw }}\n"),
        &[],
        &["samestack.yaml:8:9: secret `pw`: file .secrets/pw does not exist", "mkdir -p .secrets"],
    );
}

#[test]
fn invalid_kubernetes_names() {
    case(
        &format!("name: My_Project\n{GOOD_SERVICE}"),
        &[],
        &["samestack.yaml:1:1: `My_Project` is not a valid Kubernetes name", "my-project"],
    );
    case(
        "name: x\nservices:\n  Web.Server:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n",
        &[],
        &["samestack.yaml:3:3: service name `Web.Server` is not a valid Kubernetes name"],
    );
}

#[test]
fn depends_on_unknown_service() {
    case(
        &format!("name: x\n{GOOD_SERVICE}    depends_on: [cache]\n"),
        &[],
        &["samestack.yaml:6:18: depends_on names unknown service `cache`"],
    );
}

#[test]
fn several_problems_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let out = render_bytes(
        dir.path(),
        b"name: x\nservices:\n  a:\n    ports: [{ port: 80 }]\n  b:\n    image: nginx\n    ports: [{ port: 80 }]\n",
        &[],
    );
    assert_user_error(dir.path(), &out, &["samestack.yaml:3:3", "samestack.yaml:6:5"]);
}

#[test]
fn missing_project_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = samestack()
        .current_dir(dir.path())
        .env_remove("SAMESTACK_FILE")
        .args(["render", "-o", "out"])
        .output()
        .unwrap();
    assert_user_error(dir.path(), &out, &["samestack.yaml: no project file here", "samestack init"]);
}

#[test]
fn bad_image_flag() {
    case(&format!("name: x\n{GOOD_SERVICE}"), &["--image", "web=nginx"], &["--image web=nginx", "not pinned"]);
    case(&format!("name: x\n{GOOD_SERVICE}"), &["--image", "db=postgres:15.8"], &["unknown service `db`"]);
}

#[test]
fn output_directory_with_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/notes.txt"), "mine").unwrap();
    let out = render_bytes(dir.path(), format!("name: x\n{GOOD_SERVICE}").as_bytes(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(dir.path().join("out/notes.txt")).unwrap(), "mine");
}

/// Writes `files` (relative path → content) into a fresh project directory.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn render_in(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = samestack();
    cmd.current_dir(dir)
        .env_remove("SAMESTACK_FILE")
        .env_remove("SAMESTACK_POSTGRES_IMAGE")
        .args(["render", "-o", "out"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(extra).output().unwrap()
}

#[test]
fn secret_file_outside_the_project_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("stolen"), "top secret\n").unwrap();
    let abs = outside.path().join("stolen").display().to_string();
    for file in ["../../../../../../../../../../etc/passwd", abs.as_str(), "link"] {
        let yaml =
            format!("name: x\n{GOOD_SERVICE}    secrets: {{ PASSWORD: pw }}\nsecrets:\n  pw: {{ file: \"{file}\" }}\n");
        let dir = project(&[("samestack.yaml", &yaml)]);
        std::os::unix::fs::symlink(outside.path().join("stolen"), dir.path().join("link")).unwrap();
        let out = render_in(dir.path(), &["--reveal"], &[]);
        assert_user_error(
            dir.path(),
            &out,
            &["samestack.yaml:8:9: secret file `", "environment variable (`env: VAR`)"],
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("top secret"));
    }
    let dir =
        project(&[("samestack.yaml", &format!("name: x\n{GOOD_SERVICE}secrets:\n  pw: {{ file: \"{abs}\" }}\n"))]);
    assert_user_error(dir.path(), &render_in(dir.path(), &[], &[]), &["samestack.yaml:7:9", "is an absolute path"]);
}

#[test]
fn build_context_dockerfile_and_sync_outside_the_project_are_refused() {
    let yaml = "name: x\nservices:\n  web:\n    build: { context: ., dockerfile: ../Dockerfile }\n    ports: [{ port: 80 }]\n    sync: [{ from: up, to: /app }]\n";
    let dir = project(&[("samestack.yaml", yaml)]);
    std::os::unix::fs::symlink("..", dir.path().join("up")).unwrap();
    assert_user_error(
        dir.path(),
        &render_in(dir.path(), &[], &[]),
        &[
            "samestack.yaml:4:26: Dockerfile `../Dockerfile` (in build context `.`) resolves to",
            "samestack.yaml:6:14: sync source `up`",
        ],
    );
}

#[test]
fn template_symlinked_out_of_the_project_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("t.yaml"), "kind: ConfigMap\n").unwrap();
    let dir = project(&[("samestack.yaml", &format!("name: x\n{GOOD_SERVICE}"))]);
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("t.yaml"), dir.path().join("templates/extra.yaml")).unwrap();
    assert_user_error(dir.path(), &render_in(dir.path(), &[], &[]), &["template `templates/extra.yaml` resolves to"]);
}

#[test]
fn secret_env_var_set_but_empty() {
    let yaml = format!(
        "name: x\n{GOOD_SERVICE}    secrets: {{ PASSWORD: pw }}\nsecrets:\n  pw: {{ env: X_TEST_PW, file: pw.txt }}\n"
    );
    let dir = project(&[("samestack.yaml", &yaml), ("pw.txt", "from-file\n")]);
    assert_user_error(
        dir.path(),
        &render_in(dir.path(), &["--reveal"], &[("X_TEST_PW", "")]),
        &[
            "samestack.yaml:8:9: secret `pw`: environment variable $X_TEST_PW is set but empty",
            "unset X_TEST_PW to use the file pw.txt",
        ],
    );
}

#[test]
fn a_megabyte_value_gives_a_short_message() {
    let dir = tempfile::tempdir().unwrap();
    let big = "A".repeat(1_000_000);
    let out = render_bytes(dir.path(), format!("name: {big}\n{GOOD_SERVICE}").as_bytes(), &[]);
    assert!(out.stderr.len() < 2048, "{} bytes of stderr", out.stderr.len());
    assert_user_error(dir.path(), &out, &["samestack.yaml:1:1", "(1000000 bytes in all)"]);
    let out = render_bytes(
        dir.path(),
        format!("name: x\n{GOOD_SERVICE}").as_bytes(),
        &["--image", &format!("web={}", &big[..100_000])],
    );
    assert!(out.stderr.len() < 2048, "{} bytes of stderr", out.stderr.len());
    assert_user_error(dir.path(), &out, &["--image web=AAAA", "bytes in all"]);
}

#[test]
fn cron_schedule_out_of_range() {
    case(
        &format!(
            "name: x\n{GOOD_SERVICE}secrets: {{ pw: {{ env: PW }} }}\ndatabase:\n  password_secret: pw\n  backup:\n    schedule: \"61 3 * * *\"\n"
        ),
        &[],
        &["samestack.yaml:10:5: `61 3 * * *` is not a cron schedule: minute field `61`: 61 is out of range 0-59"],
    );
}

#[test]
fn postgres_version_without_a_default_image() {
    case(
        &format!(
            "name: x\n{GOOD_SERVICE}secrets: {{ pw: {{ env: PW }} }}\ndatabase:\n  password_secret: pw\n  version: \"13\"\n"
        ),
        &[],
        &["samestack.yaml:9:3: samestack has no default image for postgres version `13`", "image: postgres:13."],
    );
}

#[test]
fn every_listed_profile_is_checked_on_every_load() {
    let yaml = format!("name: x\n{GOOD_SERVICE}profiles: [dev, staging, qa, prod]\n");
    let dir = project(&[
        ("samestack.yaml", &yaml),
        ("profiles/staging.yaml", "replicas: 1\ngpus: 2\n"),
        ("profiles/dev.yaml", "allowed_drift: [replicas, \"Deployment:spec..replicas\"]\n"),
    ]);
    let out = render_in(dir.path(), &["--profile", "prod"], &[]);
    assert_user_error(
        dir.path(),
        &out,
        &[
            "samestack.yaml:6:26: profile `qa` is listed but has no definition",
            "profiles/staging.yaml:2:1: unknown key `gpus`",
            "profiles/dev.yaml:1:27: malformed pattern `Deployment:spec..replicas` in allowed_drift: empty segment",
        ],
    );
    for cmd in [&["parity", "prod", "prod"][..], &["status"], &["down"]] {
        let out = samestack().current_dir(dir.path()).env_remove("SAMESTACK_FILE").args(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key `gpus`"), "{cmd:?}");
    }
}

#[test]
fn undefined_through_tojson_is_an_error() {
    let dir = project(&[
        ("samestack.yaml", &format!("name: x\n{GOOD_SERVICE}")),
        (
            "templates/extra.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {{ project.namespace | tojson }}\n  labels: {{ labels | tojson }}\ndata:\n  colour: {{ project.colour | tojson }}\n",
        ),
    ]);
    assert_user_error(dir.path(), &render_in(dir.path(), &[], &[]), &["template extra.yaml:8", "undefined"]);
}

#[test]
fn yaml_tags_are_refused() {
    case(
        &format!("name: !!python/name:os.system x\n{GOOD_SERVICE}"),
        &[],
        &["samestack.yaml:1:7: YAML tag `!!python/name:os.system` is not allowed"],
    );
    case(
        &format!("name: x\n{GOOD_SERVICE}    env: {{ A: !secret x }}\n"),
        &[],
        &["samestack.yaml:6:15: YAML tag `!secret` is not allowed"],
    );
    let dir = project(&[
        ("samestack.yaml", &format!("name: x\n{GOOD_SERVICE}")),
        ("profiles/dev.yaml", "replicas: !int 1\n"),
    ]);
    assert_user_error(dir.path(), &render_in(dir.path(), &[], &[]), &["profiles/dev.yaml:1:11: YAML tag `!int`"]);
}

#[test]
fn nul_byte_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let out = render_bytes(dir.path(), b"name: x\nservices:\n  web:\n    image: ng\0inx:1\n", &[]);
    assert_user_error(dir.path(), &out, &["samestack.yaml:4:14: the file contains binary data (NUL bytes)"]);
}

#[test]
fn template_output_that_is_not_an_object_is_located() {
    let good = format!("name: x\n{GOOD_SERVICE}");
    let dir =
        project(&[("samestack.yaml", &good), ("templates/extra.yaml", "---\n# a list, not an object\n- a\n- b\n")]);
    assert_user_error(
        dir.path(),
        &render_in(dir.path(), &[], &[]),
        &["extra.yaml (templates/extra.yaml), rendered line 3: `- a`", "not a mapping"],
    );
    let dir = project(&[
        ("samestack.yaml", &good),
        (
            "templates/extra.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a, namespace: x, labels: {{ labels | tojson }} }\n---\napiVersion: v1\nmetadata: { name: b }\n",
        ),
    ]);
    assert_user_error(
        dir.path(),
        &render_in(dir.path(), &[], &[]),
        &["extra.yaml (templates/extra.yaml), rendered line 5: `apiVersion: v1`", "missing `apiVersion` or `kind`"],
    );
}

#[test]
fn every_type_error_of_a_file_in_one_run() {
    case(
        "name: x\ncluster:\n  provider: minikube\n  servers: many\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: eighty }]\n    helth: { path: / }\n",
        &[],
        &[
            "samestack.yaml:3:13: unknown value `minikube`",
            "samestack.yaml:4:12: wrong type: found `many`, expected a non-negative integer",
            "samestack.yaml:8:21: wrong type: found `eighty`",
            "samestack.yaml:9:5: unknown key `helth`",
        ],
    );
    let dir = project(&[
        ("samestack.yaml", &format!("name: x\n{GOOD_SERVICE}")),
        ("profiles/dev.yaml", "replicas: lots\nsize: huge\ngpus: 1\n"),
    ]);
    assert_user_error(
        dir.path(),
        &render_in(dir.path(), &[], &[]),
        &[
            "profiles/dev.yaml:1:11: wrong type",
            "profiles/dev.yaml:2:7: unknown value `huge`",
            "profiles/dev.yaml:3:1: unknown key `gpus`",
        ],
    );
}
