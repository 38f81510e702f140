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
