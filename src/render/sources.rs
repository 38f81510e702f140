//! The project's own manifests (`manifests:` in samestack.yaml): Helm charts rendered with
//! `helm template`, kustomize directories with `kustomize build` (or `kubectl kustomize`), and
//! plain YAML read as it is. Each object they produce is adopted into the rendered set the way
//! the built-in templates' objects are: ownership and cost labels added, the project namespace
//! filled in where none is named, checked like every other object, and containers that run the
//! image of a service samestack builds pointed at the freshly built image (as Skaffold rewrites
//! images). The tools run with the paths resolved inside the project; nothing is applied here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{RenderOptions, Resource, default_image, document_lines};
use crate::config::{self, ManifestSource, Project, SourceOrder};
use crate::error::{Classify, ErrorKind};
use crate::labels;
use crate::profile::ProfileSettings;

/// The annotation naming the source an object came from (`helm/api`, `kustomize/deploy/base`).
pub const SOURCE_ANNOTATION: &str = "dev.samestack/source";
/// The annotation that puts an object in the stage after the built-in templates' waves (see
/// [`crate::kube::wave`]); its value is [`STAGE_SOURCES`].
pub use crate::kube::wave::STAGE_ANNOTATION;
/// The value of [`STAGE_ANNOTATION`] for a source applied after the templates.
pub const STAGE_SOURCES: &str = "sources";
/// The annotation on a workload whose containers run a service's built image: the service.
/// `dev` picks the objects of a service by it as well as by the `app.kubernetes.io/name` label
/// (which is not added: the built-in Service, PodDisruptionBudget and NetworkPolicy of the
/// service select pods by it).
pub const SERVICE_ANNOTATION: &str = "dev.samestack/service";
/// The label on the pod template of such a workload: the service whose built image it runs.
/// `dev` finds the pods by it; the built-in NetworkPolicies select by it the pods of a service
/// with `deploy: manifests` (no selector of the user's is touched).
pub const SERVICE_LABEL: &str = "dev.samestack/service";
/// The annotation on that pod template naming its container that runs the built image, which
/// `dev` syncs into and streams the logs of.
pub const CONTAINER_ANNOTATION: &str = "dev.samestack/container";

/// A problem with a manifest source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tool a source needs is not on PATH.
    #[error(
        "{at}: manifest source `{source_id}` needs `{tool}`, which is not on PATH\n  fix: install {tool} ({install}), or remove the source"
    )]
    ToolMissing { tool: &'static str, source_id: String, at: String, install: &'static str },
    /// The tool could not be started.
    #[error("cannot run {command}")]
    ToolRun {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The tool ran longer than the source's `timeout` and was stopped.
    #[error(
        "{at}: `{command}` for manifest source `{source_id}` did not finish within {seconds} s and was stopped\n  fix: run it yourself to see what it waits for (a remote base or chart repository it fetches, a prompt), or raise `manifests[{index}].timeout` (seconds, default {default})",
        default = config::DEFAULT_TOOL_TIMEOUT
    )]
    ToolTimeout { source_id: String, at: String, command: String, seconds: u64, index: usize },
    /// The tool refused the chart or kustomization: its own message names the file and line.
    #[error("{at}: `{command}` failed for manifest source `{source_id}`:\n{output}\n  fix: {fix}")]
    ToolFailed { source_id: String, at: String, command: String, output: String, fix: &'static str },
    /// A YAML file of the source (or a tool's output) is not YAML.
    #[error("{file}:{line}:{column}: {message} (manifest source `{source_id}`)\n  fix: {fix}")]
    Yaml { source_id: String, file: String, line: u64, column: u64, message: String, fix: &'static str },
    /// An object the source produced fails a check.
    #[error("{object} (from manifest source `{source_id}`, {origin}): {message}\n  fix: {fix}")]
    Invalid { source_id: String, origin: String, object: String, message: String, fix: String },
    /// A YAML file of the source leaves the project (a symlink).
    #[error("{message}\n  fix: keep the source's files inside the project directory")]
    Outside { message: String },
    /// A service with `deploy: manifests` whose image no container of the sources runs.
    #[error(
        "{at}: service `{service}` has `deploy: manifests`, but no container of the manifest sources runs its image under profile `{profile}` (images they name: {seen})\n  fix: set `services.{service}.image_name` to the repository your manifests name (e.g. `ghcr.io/acme/{service}`), or remove `deploy: manifests`"
    )]
    NotDeployed { service: String, at: String, profile: String, seen: String },
    /// A YAML file or directory of the source cannot be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::ToolMissing { .. } | Error::ToolRun { .. } | Error::ToolTimeout { .. } | Error::Read { .. } => {
                ErrorKind::Environment
            }
            _ => ErrorKind::User,
        }
    }
}
crate::classify!(Error);

/// A CLI a manifest source runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    Helm,
    Kustomize,
}

impl Tool {
    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Helm => "helm",
            Tool::Kustomize => "kustomize",
        }
    }

    /// How to get it (no download site is named: package managers and Go modules).
    pub fn install(self) -> &'static str {
        match self {
            Tool::Helm => "Helm 3: a package manager, or `go install helm.sh/helm/v3/cmd/helm@v3.19.5`",
            Tool::Kustomize => {
                "kustomize v5: a package manager, or `go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1`; `kubectl kustomize` is used when kustomize is missing"
            }
        }
    }
}

/// The tools the project's sources need, once each, in order.
pub fn required_tools(c: &config::Config) -> Vec<Tool> {
    let set: BTreeSet<Tool> = c
        .manifests
        .iter()
        .filter_map(|m| match m.kind() {
            "helm" => Some(Tool::Helm),
            "kustomize" => Some(Tool::Kustomize),
            _ => None,
        })
        .collect();
    set.into_iter().collect()
}

/// The command that runs `tool`: the binary found on PATH (for kustomize, `kubectl kustomize`
/// when only kubectl is there); `None` when neither is found.
pub fn locate(tool: Tool) -> Option<(PathBuf, Vec<String>)> {
    if let Ok(path) = which::which(tool.name()) {
        let lead = if tool == Tool::Kustomize { vec!["build".to_string()] } else { vec!["template".to_string()] };
        return Some((path, lead));
    }
    if tool == Tool::Kustomize {
        return which::which("kubectl").ok().map(|p| (p, vec!["kustomize".to_string()]));
    }
    None
}

/// One object a source produced, and where it came from (for messages).
type Produced = (Value, String);

/// Renders every source for `profile` and adopts its objects (see the module doc). Fails on
/// the first source whose tool is missing, before running any.
pub fn render_all(
    project: &Project,
    profile: &ProfileSettings,
    opts: &RenderOptions,
) -> Result<Vec<(Resource, String)>, Error> {
    let sources = &project.config.manifests;
    let mut tools = BTreeMap::new();
    for (i, m) in sources.iter().enumerate() {
        let tool = match m.kind() {
            "helm" => Tool::Helm,
            "kustomize" => Tool::Kustomize,
            _ => continue,
        };
        if let std::collections::btree_map::Entry::Vacant(e) = tools.entry(tool) {
            let found = locate(tool).ok_or_else(|| Error::ToolMissing {
                tool: tool.name(),
                source_id: m.id(),
                at: project.locations.pos(&format!("manifests[{i}]")).to_string(),
                install: tool.install(),
            })?;
            e.insert(found);
        }
    }
    let mut out = Vec::new();
    let mut raw_all = Vec::new();
    for (i, m) in sources.iter().enumerate() {
        let docs = match m.kind() {
            "helm" => run_helm(project, profile, i, m, &tools[&Tool::Helm])?,
            "kustomize" => run_kustomize(project, profile, i, m, &tools[&Tool::Kustomize])?,
            _ => read_yaml(project, m)?,
        };
        raw_all.push((i, expand_lists(docs)));
    }
    let cluster_kinds = cluster_scoped_kinds(raw_all.iter().flat_map(|(_, d)| d.iter().map(|(v, _)| v)));
    let mut deployed = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, docs) in raw_all {
        for (mut value, origin) in docs {
            seen.extend(pod_templates(&mut value).into_iter().flat_map(|t| images(t).into_iter().map(|(_, _, i)| i)));
            let (resource, origin, services) = adopt(project, &sources[i], value, origin, opts, &cluster_kinds)?;
            deployed.extend(services);
            out.push((resource, origin));
        }
    }
    check_deployed(project, profile, &deployed, &seen)?;
    Ok(out)
}

/// Every service with `deploy: manifests` runs in some container of the sources.
fn check_deployed(
    project: &Project,
    profile: &ProfileSettings,
    deployed: &BTreeSet<String>,
    seen: &BTreeSet<String>,
) -> Result<(), Error> {
    let wanted = project.config.services.iter().filter(|(_, s)| s.deploy == config::Deploy::Manifests);
    match wanted.map(|(n, _)| n).find(|n| !deployed.contains(*n)) {
        None => Ok(()),
        Some(service) => Err(Error::NotDeployed {
            service: service.clone(),
            at: project.locations.pos(&format!("services.{service}.deploy")).to_string(),
            profile: profile.name.clone(),
            seen: if seen.is_empty() {
                "none".into()
            } else {
                seen.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
            },
        }),
    }
}

/// `(list, index, image)` of every container and init container of a pod template.
fn images(template: &Value) -> Vec<(&'static str, usize, String)> {
    let mut out = Vec::new();
    for key in ["containers", "initContainers"] {
        let list = template.pointer(&format!("/spec/{key}")).and_then(Value::as_array).into_iter().flatten();
        for (i, container) in list.enumerate() {
            if let Some(image) = container.get("image").and_then(Value::as_str) {
                out.push((key, i, image.to_owned()));
            }
        }
    }
    out
}

fn resolve(project: &Project, rel: &str) -> Result<PathBuf, Error> {
    config::paths::resolve_inside(&project.dir, rel).map_err(|why| Error::Outside {
        message: config::paths::describe("manifest path", rel, "", &project.dir, &why),
    })
}

fn run_helm(
    project: &Project,
    profile: &ProfileSettings,
    i: usize,
    m: &ManifestSource,
    (bin, lead): &(PathBuf, Vec<String>),
) -> Result<Vec<Produced>, Error> {
    let h = m.helm.as_ref().expect("a helm source");
    let extra = m.profiles.get(&profile.name).map(|p| p.values.as_slice()).unwrap_or_default();
    let mut args: Vec<String> = lead.clone();
    args.push(h.release_name());
    args.push(resolve(project, &h.chart)?.display().to_string());
    // The chart sees the project namespace and the cluster's Kubernetes version in every
    // profile, so `.Release.Namespace` and `.Capabilities` never differ between dev and prod.
    args.extend(["--namespace".into(), project.config.name.clone()]);
    args.extend(["--kube-version".into(), project.config.cluster.kubernetes_version.clone()]);
    for v in h.values.iter().chain(extra) {
        args.extend(["--values".into(), resolve(project, v)?.display().to_string()]);
    }
    let shown = format!("helm template {} {}", h.release_name(), h.chart);
    let text = run_tool(
        project,
        (i, m),
        bin,
        &args,
        shown,
        "fix the chart template or values at the file and line helm names (`helm template` shows the same error)",
    )?;
    parse_output(m, &text, "helm template")
}

fn run_kustomize(
    project: &Project,
    profile: &ProfileSettings,
    i: usize,
    m: &ManifestSource,
    (bin, lead): &(PathBuf, Vec<String>),
) -> Result<Vec<Produced>, Error> {
    let k = m.kustomize.as_ref().expect("a kustomize source");
    let dir = m.profiles.get(&profile.name).and_then(|p| p.overlay.as_deref()).unwrap_or(&k.path);
    let root = resolve(project, dir)?;
    super::kustomize::check_roots(&project.dir, &root)
        .map_err(|message| Error::Outside { message: format!("{message} (manifest source `{}`)", m.id()) })?;
    let mut args = lead.clone();
    // kustomize's default, said explicitly: the files a kustomization names stay in its directory.
    args.extend(["--load-restrictor".into(), "LoadRestrictionsRootOnly".into()]);
    args.push(root.display().to_string());
    let shown = format!("{} {dir}", lead.iter().fold(tool_name(bin), |a, b| a + " " + b));
    let text = run_tool(
        project,
        (i, m),
        bin,
        &args,
        shown,
        "fix the kustomization or the file kustomize names (`kustomize build DIR` shows the same error)",
    )?;
    parse_output(m, &text, "kustomize build")
}

fn tool_name(bin: &Path) -> String {
    bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Runs a tool in the project directory; its stdout on success, its stderr in the error.
/// `command` is how messages show the command (paths as the project file writes them).
fn run_tool(
    project: &Project,
    (i, m): (usize, &ManifestSource),
    bin: &Path,
    args: &[String],
    command: String,
    fix: &'static str,
) -> Result<String, Error> {
    let dir = project.dir.canonicalize().unwrap_or_else(|_| project.dir.clone());
    let seconds = m.timeout.unwrap_or(config::DEFAULT_TOOL_TIMEOUT);
    let out = run_for(Command::new(bin).args(args).current_dir(dir), Duration::from_secs(seconds))
        .map_err(|source| Error::ToolRun { command: command.clone(), source })?;
    let Some(out) = out else {
        return Err(Error::ToolTimeout {
            source_id: m.id(),
            at: project.locations.pos(&format!("manifests[{i}]")).to_string(),
            command,
            seconds,
            index: i,
        });
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        let output = tail.iter().map(|l| format!("  {}", config::yaml::clip(l))).collect::<Vec<_>>().join("\n");
        return Err(Error::ToolFailed {
            source_id: m.id(),
            at: project.locations.pos(&format!("manifests[{i}]")).to_string(),
            command,
            output,
            fix,
        });
    }
    String::from_utf8(out.stdout).map_err(|_| Error::ToolFailed {
        source_id: m.id(),
        at: project.locations.pos(&format!("manifests[{i}]")).to_string(),
        command,
        output: "  the output is not UTF-8 text".into(),
        fix,
    })
}

/// Runs `command` to its end and collects its output, or stops it after `limit`: `None` then.
/// It runs in a process group of its own, and the whole group is killed, so nothing it started
/// keeps the output pipes open (or runs on).
fn run_for(command: &mut Command, limit: Duration) -> std::io::Result<Option<Output>> {
    use std::os::unix::process::CommandExt as _;
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn()?;
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    let timed_out = finished.recv_timeout(limit).is_err();
    if timed_out && let Some(group) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let out = waiter.join().unwrap_or_else(|_| Err(std::io::Error::other("the tool's waiter panicked")))?;
    Ok((!timed_out).then_some(out))
}

/// Splits a tool's output into objects; each origin names the template helm says it came from.
fn parse_output(m: &ManifestSource, text: &str, shown: &str) -> Result<Vec<Produced>, Error> {
    let docs = parse_docs(m, text, shown)?;
    let lines = document_lines(text);
    let all: Vec<&str> = text.lines().collect();
    let origins: Vec<String> = (0..docs.len())
        .map(|d| {
            let start = lines.get(d).copied().unwrap_or(0);
            let from = all[..start.saturating_sub(1).min(all.len())]
                .iter()
                .rev()
                .take_while(|l| !l.starts_with("---"))
                .find_map(|l| l.strip_prefix("# Source: "));
            match from {
                Some(t) => format!("template {}", t.trim()),
                None => format!("document {} of `{shown}`", d + 1),
            }
        })
        .collect();
    Ok(docs.into_iter().zip(origins).filter(|(v, _)| !v.is_null()).collect())
}

fn parse_docs(m: &ManifestSource, text: &str, file: &str) -> Result<Vec<Value>, Error> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        Error::Yaml {
            source_id: m.id(),
            file: file.to_owned(),
            line,
            column,
            message: format!("not valid YAML: {}", e.to_string().lines().next().unwrap_or("")),
            fix: "fix the YAML syntax at that line (indentation, quoting, a missing `:`)",
        }
    })
}

/// The objects of a plain YAML source: the file, or the `*.yaml`/`*.yml` files of the
/// directory in name order, each file's documents in order.
fn read_yaml(project: &Project, m: &ManifestSource) -> Result<Vec<Produced>, Error> {
    let y = m.yaml.as_ref().expect("a yaml source");
    let root = resolve(project, &y.path)?;
    let files: Vec<PathBuf> = if root.is_dir() {
        let entries = std::fs::read_dir(&root).map_err(|source| Error::Read { path: y.path.clone(), source })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![root.clone()]
    };
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(project.dir.canonicalize().unwrap_or_default()).unwrap_or(&file).to_path_buf();
        let shown = project.path(&rel).display().to_string();
        // A symlink in the directory is followed only when it stays inside the project.
        let resolved = resolve(project, &rel.to_string_lossy())?;
        let text = std::fs::read_to_string(&resolved).map_err(|source| Error::Read { path: shown.clone(), source })?;
        let docs = parse_docs(m, &text, &shown)?;
        let lines = document_lines(&text);
        for (d, v) in docs.into_iter().enumerate() {
            if v.is_null() {
                continue;
            }
            let origin = match lines.get(d) {
                Some(line) => format!("{shown}:{line}"),
                None => shown.clone(),
            };
            out.push((v, origin));
        }
    }
    Ok(out)
}

/// The objects of `docs` with every list (`kind: List`, or any `*List` with `items`, as
/// `kubectl get -o yaml` writes them) replaced by its items, in order, nested lists too; an
/// item's origin says where in the list it is (pure).
fn expand_lists(docs: Vec<Produced>) -> Vec<Produced> {
    let mut out = Vec::new();
    for (value, origin) in docs {
        let is_list = value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"));
        match value {
            Value::Object(mut map) if is_list && map.get("items").is_some_and(Value::is_array) => {
                let Some(Value::Array(items)) = map.remove("items") else { unreachable!("checked above") };
                let items = items.into_iter().enumerate().map(|(j, item)| (item, format!("{origin}, items[{j}]")));
                out.extend(expand_lists(items.filter(|(v, _)| !v.is_null()).collect()));
            }
            value => out.push((value, origin)),
        }
    }
    out
}

/// Kinds that are cluster-scoped: the known ones, and those of CRDs with `scope: Cluster`.
fn cluster_scoped_kinds<'a>(objects: impl Iterator<Item = &'a Value>) -> BTreeSet<String> {
    let mut kinds: BTreeSet<String> = super::CLUSTER_SCOPED.iter().map(|k| k.to_string()).collect();
    for o in objects {
        if o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && o.pointer("/spec/scope").and_then(Value::as_str) == Some("Cluster")
            && let Some(k) = o.pointer("/spec/names/kind").and_then(Value::as_str)
        {
            kinds.insert(k.to_owned());
        }
    }
    kinds
}

/// The repository of an image reference: without tag and digest.
fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(colon) if !no_digest[colon..].contains('/') => &no_digest[..colon],
        _ => no_digest,
    }
}

/// The repository without its registry host (`ghcr.io/acme/api` → `acme/api`).
fn without_registry(repo: &str) -> &str {
    match repo.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => rest,
        _ => repo,
    }
}

/// The built service whose image `image` names: by `image_name` (with or without its registry
/// host), else by the repository's last part equal to the service name (pure).
pub fn service_for_image<'a>(c: &'a config::Config, image: &str) -> Option<&'a str> {
    let repo = repository(image);
    let built = c.services.iter().filter(|(_, s)| s.build.is_some());
    let mut simple = None;
    for (name, s) in built {
        match &s.image_name {
            Some(n) if n == repo || without_registry(n) == without_registry(repo) => return Some(name),
            Some(_) => {}
            None if repo.rsplit('/').next() == Some(name.as_str()) => simple = simple.or(Some(name.as_str())),
            None => {}
        }
    }
    simple
}

fn labels_mut(meta: &mut Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
    match meta.remove(key) {
        Some(Value::Object(m)) => Some(m),
        None | Some(Value::Null) => Some(Map::new()),
        Some(other) => {
            meta.insert(key.to_owned(), other);
            None
        }
    }
}

/// The pod templates of a workload object, mutable.
fn pod_templates(v: &mut Value) -> Vec<&mut Value> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
    let pointer = match kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => "/spec/template",
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => return Vec::new(),
    };
    v.pointer_mut(pointer).filter(|t| t.is_object()).into_iter().collect()
}

/// Adopts one object of source `m` into the project (pure): checks, namespace, labels, images.
/// Also returns the services whose built image its containers now run.
fn adopt(
    project: &Project,
    m: &ManifestSource,
    mut value: Value,
    origin: String,
    opts: &RenderOptions,
    cluster_kinds: &BTreeSet<String>,
) -> Result<(Resource, String, BTreeSet<String>), Error> {
    let c = &project.config;
    let ns = &c.name;
    let source_id = m.id();
    let describe = |v: &Value| {
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("?");
        let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
        format!("{kind} {name}")
    };
    let invalid = |v: &Value, message: String, fix: &str| Error::Invalid {
        source_id: source_id.clone(),
        origin: origin.clone(),
        object: describe(v),
        message,
        fix: fix.to_owned(),
    };
    if !value.is_object() {
        return Err(invalid(
            &value,
            "a document is not a mapping".into(),
            "each YAML document must be one Kubernetes object",
        ));
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
    if kind.is_empty() || value.get("apiVersion").and_then(Value::as_str).unwrap_or("").is_empty() {
        return Err(invalid(
            &value,
            "missing `apiVersion` or `kind`".into(),
            "every object needs apiVersion, kind and metadata.name",
        ));
    }
    let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    if !config::is_dns_subdomain(&name) {
        return Err(invalid(
            &value,
            format!("name `{name}` is not a valid Kubernetes name (DNS-1123)"),
            "set metadata.name to lowercase letters, digits, '-' and '.'",
        ));
    }
    let cluster_scoped = cluster_kinds.contains(&kind);
    let owner = c.owner.clone().unwrap_or_else(|| c.name.clone());
    let cost = c.cost_center.clone().unwrap_or_else(|| c.name.clone());
    {
        let meta = value["metadata"].as_object_mut().expect("metadata is a mapping: it has a name");
        match (cluster_scoped, meta.get("namespace").and_then(Value::as_str)) {
            (false, None) => {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            (false, Some(n)) if n == ns => {}
            (false, Some(n)) => {
                let n = n.to_owned();
                return Err(invalid(
                    &value,
                    format!("namespace is `{n}`, expected `{ns}` (the project namespace) or none"),
                    "leave metadata.namespace out (samestack sets the project namespace), or set it to the project's name",
                ));
            }
            (true, Some(_)) => {
                return Err(invalid(
                    &value,
                    "a cluster-scoped object has a namespace".into(),
                    "remove metadata.namespace",
                ));
            }
            (true, None) => {}
        }
        let mut l = labels_mut(meta, "labels").unwrap_or_default();
        l.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
        l.insert(labels::PROJECT.into(), ns.clone().into());
        l.entry(labels::PART_OF).or_insert_with(|| ns.clone().into());
        l.insert(labels::OWNER.into(), owner.clone().into());
        l.insert(labels::COST_CENTER.into(), cost.clone().into());
        meta.insert("labels".into(), Value::Object(l));
        let mut a = labels_mut(meta, "annotations").unwrap_or_default();
        a.insert(SOURCE_ANNOTATION.into(), source_id.clone().into());
        if m.order == SourceOrder::AfterTemplates {
            a.insert(STAGE_ANNOTATION.into(), STAGE_SOURCES.into());
        }
        meta.insert("annotations".into(), Value::Object(a));
    }
    // Images of built services → the built image; the workload is then that service's.
    let mut services = BTreeSet::new();
    for template in pod_templates(&mut value) {
        // The first container (app containers before init containers) running a built image
        // names the pods' service and the container `dev` works with.
        let mut runs: Option<(String, String)> = None;
        for (key, i, image) in images(template) {
            let Some(svc) = service_for_image(c, &image) else { continue };
            let to = opts.images.get(svc).cloned().unwrap_or_else(|| default_image(project, svc));
            let container = &mut template["spec"][key][i];
            container["image"] = Value::String(to);
            let name = container.get("name").and_then(Value::as_str).unwrap_or(svc).to_owned();
            runs.get_or_insert((svc.to_owned(), name));
            services.insert(svc.to_owned());
        }
        let Some(meta) =
            template.as_object_mut().map(|t| t.entry("metadata").or_insert_with(|| Value::Object(Map::new())))
        else {
            continue;
        };
        let Some(meta) = meta.as_object_mut() else { continue };
        let mut l = labels_mut(meta, "labels").unwrap_or_default();
        l.insert(labels::PROJECT.into(), ns.clone().into());
        l.insert(labels::OWNER.into(), owner.clone().into());
        l.insert(labels::COST_CENTER.into(), cost.clone().into());
        // Not the service's `app.kubernetes.io/name`: the built-in Service, PodDisruptionBudget
        // and NetworkPolicy of the service select by it, and would take these pods in; and the
        // chart may select its pods by its own value of it.
        if let Some((svc, _)) = &runs {
            l.insert(SERVICE_LABEL.into(), svc.clone().into());
        }
        meta.insert("labels".into(), Value::Object(l));
        if let Some((_, container)) = runs {
            let mut a = labels_mut(meta, "annotations").unwrap_or_default();
            a.insert(CONTAINER_ANNOTATION.into(), container.into());
            meta.insert("annotations".into(), Value::Object(a));
        }
    }
    if let Some(svc) = services.iter().next() {
        let meta = value["metadata"].as_object_mut().expect("metadata is a mapping");
        if let Some(Value::Object(a)) = meta.get_mut("annotations") {
            a.insert(SERVICE_ANNOTATION.into(), svc.clone().into());
        }
    }
    Ok((Resource { value }, format!("manifest source `{source_id}`, {origin}"), services))
}

/// Marks as allowed the drift a manifest source declares for its own objects: a difference in
/// an object of source S is allowed when `profiles.A.allowed_drift` or `profiles.B.allowed_drift`
/// of S has a pattern matching it. Differences in other objects are left as they are.
pub fn allow_declared_drift(
    report: &mut super::parity::ParityReport,
    a: &super::RenderedSet,
    b: &super::RenderedSet,
    c: &config::Config,
) {
    let source_of = |d: &super::parity::Difference| -> Option<String> {
        a.resources.iter().chain(&b.resources).find_map(|r| {
            (r.kind() == d.kind && r.name() == d.name && r.namespace() == d.namespace.as_deref())
                .then(|| r.value.pointer("/metadata/annotations").and_then(|x| x.get(SOURCE_ANNOTATION)))
                .flatten()
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    };
    for d in report.differences.iter_mut().filter(|d| d.allowed_by.is_none()) {
        let Some(id) = source_of(d) else { continue };
        let Some((i, m)) = c.manifests.iter().enumerate().find(|(_, m)| m.id() == id) else { continue };
        for profile in [&report.a, &report.b] {
            let Some(sp) = m.profiles.get(profile.as_str()) else { continue };
            let hit = sp
                .allowed_drift
                .iter()
                .find(|e| super::parity::Pattern::parse(e).is_some_and(|p| p.matches(&d.kind, &d.segs)));
            if let Some(entry) = hit {
                d.allowed_by = Some(format!("manifests[{i}].profiles.{profile}.allowed_drift: {entry}"));
                break;
            }
        }
    }
    report.allowed = report.differences.iter().filter(|d| d.allowed_by.is_some()).count();
    report.drift = report.differences.len() - report.allowed;
}

/// Where the Helm values of two profiles differ, per Helm source: `(source id, values path,
/// value under A, value under B)`, the paths dotted (`image.tag`, `env[0]`). The values are
/// merged as Helm merges `--values` files (maps deeply, everything else replaced; the chart's
/// own values.yaml is the same on both sides and left out). Read errors count as no
/// difference: rendering has already reported them.
pub fn values_differences(project: &Project, a: &str, b: &str) -> Vec<(String, String, Option<Value>, Option<Value>)> {
    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(i), Value::Object(f)) => {
                for (k, v) in f {
                    match i.get_mut(&k) {
                        Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                        _ => {
                            i.insert(k, v);
                        }
                    }
                }
            }
            (slot, f) => *slot = f,
        }
    }
    fn leaves(path: String, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    leaves(if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, child, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, child) in items.iter().enumerate() {
                    leaves(format!("{path}[{i}]"), child, out);
                }
            }
            other => {
                out.insert(path, other.clone());
            }
        }
    }
    let mut out = Vec::new();
    for m in &project.config.manifests {
        let Some(h) = &m.helm else { continue };
        let merged = |profile: &str| -> BTreeMap<String, Value> {
            let extra = m.profiles.get(profile).map(|p| p.values.as_slice()).unwrap_or_default();
            let mut all = Value::Object(Map::new());
            for file in h.values.iter().chain(extra) {
                let text = resolve(project, file).ok().and_then(|p| std::fs::read_to_string(p).ok());
                if let Some(v) = text.and_then(|t| serde_saphyr::from_str::<Value>(&t).ok()).filter(Value::is_object) {
                    merge(&mut all, v);
                }
            }
            let mut flat = BTreeMap::new();
            leaves(String::new(), &all, &mut flat);
            flat
        };
        let (va, vb) = (merged(a), merged(b));
        let keys: BTreeSet<&String> = va.keys().chain(vb.keys()).collect();
        for k in keys {
            if va.get(k) != vb.get(k) {
                out.push((m.id(), k.clone(), va.get(k).cloned(), vb.get(k).cloned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(extra: &str) -> Project {
        let text = format!(
            "name: shop\nowner: team\nservices:\n  api:\n    build: {{ context: api }}\n    ports: [{{ port: 80 }}]\n{extra}"
        );
        let (config, locations) = config::parse_str("samestack.yaml", text.as_bytes()).unwrap();
        Project { file: "samestack.yaml".into(), dir: ".".into(), config, locations }
    }

    fn adopted(p: &Project, v: Value, kinds: &BTreeSet<String>) -> Result<Value, Error> {
        let m = ManifestSource {
            helm: None,
            kustomize: None,
            yaml: Some(config::YamlSource { path: "deploy".into() }),
            profiles: BTreeMap::new(),
            order: SourceOrder::AfterTemplates,
            timeout: None,
        };
        adopt(p, &m, v, "deploy/x.yaml:1".into(), &RenderOptions::default(), kinds).map(|(r, _, _)| r.value)
    }

    #[test]
    fn adoption_sets_namespace_labels_and_images_and_leaves_selectors_alone() {
        let p = project("");
        let kinds = cluster_scoped_kinds(std::iter::empty());
        let deployment = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "acme/api:1.0"}, {"name": "side", "image": "envoy:1.30"}]}}}
        });
        let v = adopted(&p, deployment, &kinds).unwrap();
        assert_eq!(v["metadata"]["namespace"], "shop");
        assert_eq!(v["metadata"]["labels"]["app.kubernetes.io/managed-by"], "samestack");
        assert_eq!(v["metadata"]["labels"]["dev.samestack.owner"], "team");
        assert_eq!(v["metadata"]["annotations"][SOURCE_ANNOTATION], "yaml/deploy");
        assert_eq!(v["metadata"]["annotations"][STAGE_ANNOTATION], STAGE_SOURCES);
        assert_eq!(v["metadata"]["annotations"][SERVICE_ANNOTATION], "api");
        assert_eq!(v["spec"]["selector"], serde_json::json!({"matchLabels": {"app": "web"}}), "selector untouched");
        let pod = &v["spec"]["template"];
        assert_eq!(pod["spec"]["containers"][0]["image"], "localhost:5001/shop/api:unbuilt");
        assert_eq!(pod["spec"]["containers"][1]["image"], "envoy:1.30", "not a built service");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert!(pod["metadata"]["labels"].get("app.kubernetes.io/name").is_none(), "the built-in selectors stay out");
        assert_eq!(pod["metadata"]["labels"][SERVICE_LABEL], "api", "dev and the built-in policies find the pods");
        assert_eq!(pod["metadata"]["annotations"][CONTAINER_ANNOTATION], "c", "the container running the image");
    }

    #[test]
    fn cluster_scoped_objects_keep_no_namespace_and_other_namespaces_are_refused() {
        let p = project("");
        let crd = serde_json::json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"scope": "Cluster", "names": {"kind": "Widget"}}});
        let kinds = cluster_scoped_kinds(std::iter::once(&crd));
        let widget = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        assert!(adopted(&p, widget, &kinds).unwrap()["metadata"].get("namespace").is_none());
        assert!(adopted(&p, crd, &kinds).unwrap()["metadata"].get("namespace").is_none());
        let elsewhere = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system"}});
        let err = adopted(&p, elsewhere, &kinds).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "ConfigMap c (from manifest source `yaml/deploy`, deploy/x.yaml:1): namespace is `kube-system`"
            ),
            "{err}"
        );
        let nameless = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        assert!(adopted(&p, nameless, &kinds).unwrap_err().to_string().contains("is not a valid Kubernetes name"));
    }

    #[test]
    fn lists_are_expanded_into_their_items_nested_ones_too() {
        let cm = |n: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
        let docs = vec![
            (cm("a"), "x.yaml:1".to_string()),
            (
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
                    cm("b"),
                    {"apiVersion": "v1", "kind": "ConfigMapList", "items": [cm("c")]},
                    null,
                ]}),
                "x.yaml:5".to_string(),
            ),
            (serde_json::json!({"apiVersion": "v1", "kind": "List", "items": []}), "x.yaml:20".to_string()),
            (serde_json::json!({"apiVersion": "example.com/v1", "kind": "WidgetList", "spec": {}}), "y:1".into()),
        ];
        let got: Vec<(String, String)> = expand_lists(docs)
            .into_iter()
            .map(|(v, o)| (v["metadata"]["name"].as_str().unwrap_or(v["kind"].as_str().unwrap()).to_owned(), o))
            .collect();
        let want = [
            ("a", "x.yaml:1"),
            ("b", "x.yaml:5, items[0]"),
            ("c", "x.yaml:5, items[1], items[0]"),
            ("WidgetList", "y:1"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_owned(), b.to_owned())),
            "a kind named *List without items is an object"
        );
    }

    #[test]
    fn helm_values_differences_are_listed_by_values_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("chart")).unwrap();
        std::fs::write(dir.path().join("prod.yaml"), "image: { repository: a, tag: \"1\" }\nreplicas: 2\nlist: [x]\n")
            .unwrap();
        std::fs::write(dir.path().join("dev.yaml"), "image: { tag: \"2\" }\nlist: [w, z]\n").unwrap();
        let mut p = project(
            "manifests:\n  - helm: { chart: chart, values: [prod.yaml] }\n    profiles: { dev: { values: [dev.yaml] } }\n",
        );
        p.dir = dir.path().into();
        let got: Vec<String> = values_differences(&p, "dev", "prod")
            .into_iter()
            .map(|(id, path, a, b)| format!("{id} {path}: {a:?} -> {b:?}"))
            .collect();
        assert_eq!(
            got,
            [
                "helm/chart image.tag: Some(String(\"2\")) -> Some(String(\"1\"))",
                "helm/chart list[0]: Some(String(\"w\")) -> Some(String(\"x\"))",
                "helm/chart list[1]: Some(String(\"z\")) -> None",
            ],
            "image.repository is kept by the deep merge, replicas the same"
        );
        assert!(values_differences(&p, "prod", "prod").is_empty());
    }

    #[test]
    fn the_tools_a_project_needs() {
        let p = project(
            "manifests:\n  - yaml: { path: a }\n  - kustomize: { path: b }\n  - helm: { chart: c }\n  - helm: { chart: d }\n",
        );
        assert_eq!(required_tools(&p.config), [Tool::Helm, Tool::Kustomize]);
        assert!(required_tools(&project("").config).is_empty());
    }

    #[test]
    fn repositories_and_registry_hosts() {
        assert_eq!(repository("ghcr.io/acme/api:1.2"), "ghcr.io/acme/api");
        assert_eq!(repository("localhost:5001/api"), "localhost:5001/api");
        assert_eq!(repository("api@sha256:00"), "api");
        assert_eq!(repository("localhost:5001/g/api:t@sha256:00"), "localhost:5001/g/api");
        assert_eq!(without_registry("ghcr.io/acme/api"), "acme/api");
        assert_eq!(without_registry("localhost:5001/api"), "api");
        assert_eq!(without_registry("acme/api"), "acme/api");
    }

    #[test]
    fn images_map_to_built_services_by_image_name_or_last_part() {
        let text = "name: shop\nservices:\n  api:\n    build: { context: api }\n    ports: [{ port: 80 }]\n  web:\n    build: { context: web }\n    image_name: ghcr.io/acme/frontend\n    ports: [{ port: 80 }]\n  db:\n    image: postgres:15.8\n    ports: [{ port: 5432 }]\n";
        let (c, _) = config::parse_str("samestack.yaml", text.as_bytes()).unwrap();
        assert_eq!(service_for_image(&c, "guestbook/api:1.0"), Some("api"));
        assert_eq!(service_for_image(&c, "ghcr.io/acme/api:1.2"), Some("api"));
        assert_eq!(service_for_image(&c, "api"), Some("api"));
        assert_eq!(service_for_image(&c, "ghcr.io/acme/frontend:3"), Some("web"));
        assert_eq!(service_for_image(&c, "acme/frontend@sha256:00"), Some("web"), "without the registry host");
        assert_eq!(service_for_image(&c, "acme/web:1"), None, "image_name set: no simple match");
        assert_eq!(service_for_image(&c, "postgres:15.8"), None);
        assert_eq!(service_for_image(&c, "db:1"), None, "only built services are replaced");
        assert_eq!(service_for_image(&c, "acme/api-gateway:1"), None);
    }
}
