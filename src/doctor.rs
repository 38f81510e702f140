//! `samestack doctor`: what this machine needs for `up` — Docker (reachable, memory, CPUs),
//! provider CLIs, the configured host ports (and who holds them), inotify limits, cgroup
//! version, free disk, whether privileged containers are allowed. Facts are gathered by the I/O
//! shell [`gather`]; [`evaluate`] turns them into checks, each with a severity and a fix.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    /// `up` works, but something will hurt (slow, limits, a future Kubernetes version).
    Warn,
    /// `up` cannot succeed until this is fixed.
    Blocker,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier for scripts: "docker", "ports", "inotify"...
    pub id: &'static str,
    pub severity: Severity,
    /// What was found.
    pub detail: String,
    /// How to fix it; present for every warning and blocker.
    pub fix: Option<String>,
}

/// All checks, plus the raw facts (for --json).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub blocks_up: bool,
    pub facts: Facts,
}

impl Report {
    pub fn new(facts: Facts) -> Self {
        let checks = evaluate(&facts);
        let blocks_up = checks.iter().any(|c| c.severity == Severity::Blocker);
        Self { checks, blocks_up, facts }
    }
}

/// What the Docker engine said about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerFacts {
    pub host: String,
    pub server_version: String,
    pub api_version: String,
    pub memory_bytes: i64,
    pub cpus: i64,
    pub root_dir: Option<String>,
    /// The engine runs on this machine (a unix socket): its disk and limits are ours.
    pub local: bool,
}

/// Whether Docker answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum DockerProbe {
    Reachable(DockerFacts),
    Unreachable { host: String, error: String },
}

/// A CLI samestack can drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolFact {
    pub name: String,
    pub path: Option<PathBuf>,
    pub version: Option<String>,
}

/// Who listens on a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Holder {
    /// A Docker container publishes it; `ours` when samestack created it (label-owned).
    Container {
        name: String,
        ours: bool,
    },
    Process {
        pid: u32,
        command: String,
    },
    Unknown,
}

/// A host port the project file asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortFact {
    pub port: u16,
    /// "registry.host_port", "cluster.ports[0]".
    pub purpose: String,
    /// None when the port is free.
    pub holder: Option<Holder>,
}

/// A filesystem and its free space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskFact {
    /// "Docker root" or "project".
    pub what: String,
    pub path: PathBuf,
    pub free_bytes: u64,
}

/// A service built from a local context: does what `up` will read exist?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildFact {
    pub service: String,
    pub context: PathBuf,
    pub context_exists: bool,
    pub dockerfile: PathBuf,
    pub dockerfile_exists: bool,
}

/// Everything [`evaluate`] looks at.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    pub docker: Option<DockerProbe>,
    pub tools: Vec<ToolFact>,
    /// The provider named in samestack.yaml, if any.
    pub provider: Option<String>,
    pub ports: Vec<PortFact>,
    /// The project file exists but does not load (the loader's message, with locations).
    pub project_file_error: Option<String>,
    /// The project file that loaded, if one did.
    pub project_file: Option<PathBuf>,
    /// Each built service's context and Dockerfile, and whether they exist.
    pub builds: Vec<BuildFact>,
    /// The CLIs the project's `manifests:` sources run (helm, kustomize), probed only when
    /// the project has such a source.
    pub manifest_tools: Vec<ToolFact>,
    pub inotify_max_user_watches: Option<u64>,
    pub inotify_max_user_instances: Option<u64>,
    /// Directories `samestack dev` would watch for this project (one inotify watch each).
    pub dev_watches: Option<u64>,
    /// inotify watches this user's processes hold now (from /proc/*/fdinfo), when readable.
    pub watches_in_use: Option<u64>,
    /// 1 or 2; None when /sys/fs/cgroup is not readable.
    pub cgroup_version: Option<u8>,
    pub disks: Vec<DiskFact>,
    /// Capabilities missing from this process's bounding set (names), when readable: a
    /// privileged container cannot get them either.
    pub missing_capabilities: Option<Vec<String>>,
}

/// Recommended inotify limits (what kind documents for many pods and file watchers).
pub const RECOMMENDED_WATCHES: u64 = crate::sync::watch::RECOMMENDED_WATCHES;
pub const RECOMMENDED_INSTANCES: u64 = crate::sync::watch::RECOMMENDED_INSTANCES;
const GIB: u64 = 1024 * 1024 * 1024;

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

fn check(id: &'static str, severity: Severity, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check { id, severity, detail: detail.into(), fix }
}

/// Turns facts into checks (pure).
pub fn evaluate(facts: &Facts) -> Vec<Check> {
    let mut checks = Vec::new();
    match &facts.docker {
        Some(DockerProbe::Reachable(d)) => {
            checks.push(check(
                "docker",
                Severity::Ok,
                format!("Docker {} (API {}) at {}", d.server_version, d.api_version, d.host),
                None,
            ));
            let memory = d.memory_bytes.max(0) as u64;
            let detail = format!("{} memory, {} CPUs for containers", gib(memory), d.cpus);
            let (severity, fix) = if memory < 2 * GIB {
                (
                    Severity::Blocker,
                    Some("give Docker at least 4 GiB of memory (Docker Desktop: Settings > Resources)".into()),
                )
            } else if memory < 4 * GIB || d.cpus < 2 {
                (
                    Severity::Warn,
                    Some("give Docker at least 4 GiB of memory and 2 CPUs for a cluster plus the app".into()),
                )
            } else {
                (Severity::Ok, None)
            };
            checks.push(check("docker-resources", severity, detail, fix));
        }
        Some(DockerProbe::Unreachable { host, error }) => {
            let fix = if error.to_lowercase().contains("permission denied") {
                "add your user to the docker group (`sudo usermod -aG docker $USER`, then log in again)".to_string()
            } else if std::env::var_os("DOCKER_HOST").is_some() || !host.starts_with("unix:///var/run/docker.sock") {
                format!("start the Docker engine at {host}, or unset/fix DOCKER_HOST to point at a running engine")
            } else {
                "start Docker (`sudo systemctl start docker`, or open Docker Desktop)".to_string()
            };
            checks.push(check(
                "docker",
                Severity::Blocker,
                format!("Docker is not reachable at {host}: {error}"),
                Some(fix),
            ));
        }
        None => {}
    }

    for tool in &facts.tools {
        let wanted = facts.provider.as_deref() == Some(tool.name.as_str());
        let id = match tool.name.as_str() {
            "kind" => "kind",
            "k3d" => "k3d",
            _ => "kubectl",
        };
        match (&tool.path, wanted) {
            (Some(path), _) => checks.push(check(
                id,
                Severity::Ok,
                format!("{} ({})", tool.version.as_deref().unwrap_or("version unknown"), path.display()),
                None,
            )),
            (None, true) => checks.push(check(
                id,
                Severity::Blocker,
                format!("samestack.yaml asks for provider `{}`, but `{}` is not on PATH", tool.name, tool.name),
                Some(format!(
                    "install {} and put it on PATH, or set `cluster.provider: docker` (needs only Docker)",
                    tool.name
                )),
            )),
            (None, false) => {
                let why = if tool.name == "kubectl" {
                    "optional: samestack talks to the Kubernetes API itself"
                } else {
                    "optional: the docker provider needs only Docker"
                };
                checks.push(check(id, Severity::Ok, format!("not installed ({why})"), None));
            }
        }
    }

    for tool in &facts.manifest_tools {
        let (id, install) = match tool.name.as_str() {
            "helm" => ("helm", crate::render::sources::Tool::Helm.install()),
            _ => ("kustomize", crate::render::sources::Tool::Kustomize.install()),
        };
        match &tool.path {
            Some(path) => checks.push(check(
                id,
                Severity::Ok,
                format!(
                    "{} ({}), for the project's manifests",
                    tool.version.as_deref().unwrap_or("version unknown"),
                    path.display()
                ),
                None,
            )),
            None => checks.push(check(
                id,
                Severity::Blocker,
                format!("samestack.yaml's `manifests:` need `{}`, which is not on PATH", tool.name),
                Some(format!("install {} ({install})", tool.name)),
            )),
        }
    }

    match (&facts.project_file_error, &facts.project_file) {
        (Some(error), _) => checks.push(check(
            "project",
            Severity::Blocker,
            format!("the project file does not load: {error}"),
            Some("fix what the message names (file:line:column), then run doctor again".into()),
        )),
        (None, Some(file)) => checks.push(check("project", Severity::Ok, format!("{} loads", file.display()), None)),
        (None, None) => {
            checks.push(check("project", Severity::Ok, "no samestack.yaml here (`samestack init` writes one)", None))
        }
    }
    let missing: Vec<String> = facts
        .builds
        .iter()
        .flat_map(|b| {
            let context = (!b.context_exists)
                .then(|| format!("service `{}`: build context {} does not exist", b.service, b.context.display()));
            let dockerfile = (b.context_exists && !b.dockerfile_exists)
                .then(|| format!("service `{}`: Dockerfile {} does not exist", b.service, b.dockerfile.display()));
            context.into_iter().chain(dockerfile)
        })
        .collect();
    if !missing.is_empty() {
        checks.push(check(
            "builds",
            Severity::Blocker,
            missing.join("; "),
            Some("create them, or fix `build.context` / `build.dockerfile` in samestack.yaml (or use `image:`)".into()),
        ));
    } else if !facts.builds.is_empty() {
        let names: Vec<&str> = facts.builds.iter().map(|b| b.service.as_str()).collect();
        checks.push(check(
            "builds",
            Severity::Ok,
            format!("build contexts and Dockerfiles exist ({})", names.join(", ")),
            None,
        ));
    }

    if facts.project_file_error.is_some() {
        checks.push(check("ports", Severity::Ok, "not checked: the project file does not load", None));
    } else if facts.ports.is_empty() {
        checks.push(check(
            "ports",
            Severity::Ok,
            "no host ports to check (no samestack.yaml here, or none configured)",
            None,
        ));
    }
    for port in &facts.ports {
        let (severity, detail, fix) = match &port.holder {
            None => (Severity::Ok, format!("port {} ({}) is free", port.port, port.purpose), None),
            Some(Holder::Container { name, ours: true }) => (
                Severity::Ok,
                format!("port {} ({}) is held by samestack's own container {name}", port.port, port.purpose),
                None,
            ),
            Some(holder) => {
                let who = match holder {
                    Holder::Container { name, .. } => format!("container {name}"),
                    Holder::Process { pid, command } => format!("process {command} (pid {pid})"),
                    Holder::Unknown => "another program".to_string(),
                };
                let stop = match holder {
                    Holder::Container { name, .. } => format!("stop it (`docker stop {name}`)"),
                    Holder::Process { pid, .. } => format!("stop it (pid {pid})"),
                    Holder::Unknown => "stop it (`ss -ltnp` shows it)".to_string(),
                };
                (
                    Severity::Blocker,
                    format!("port {} ({}) is taken by {who}", port.port, port.purpose),
                    Some(format!("{stop}, or change `{}` in samestack.yaml", port.purpose)),
                )
            }
        };
        checks.push(check("ports", severity, detail, fix));
    }

    let limits = [
        ("max_user_watches", facts.inotify_max_user_watches, RECOMMENDED_WATCHES),
        ("max_user_instances", facts.inotify_max_user_instances, RECOMMENDED_INSTANCES),
    ];
    let low: Vec<_> = limits.iter().filter(|(_, v, rec)| v.is_some_and(|v| v < *rec)).collect();
    let shown: Vec<String> = limits
        .iter()
        .map(|(n, v, _)| format!("{n} {}", v.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into())))
        .collect();
    let dev_need = match (facts.inotify_max_user_watches, facts.dev_watches) {
        (Some(limit), Some(need)) => {
            let used = facts.watches_in_use.unwrap_or(0);
            // Warn with room to spare: a branch switch adds directories while dev runs.
            (used + need + need / 4 > limit).then_some((limit, used, need))
        }
        _ => None,
    };
    if let Some((limit, used, need)) = dev_need {
        let suggested = crate::sync::watch::suggested_watches(limit.max(used + need), need);
        checks.push(check(
            "inotify",
            Severity::Warn,
            format!(
                "`samestack dev` would watch {need} directories of this project; {used} of max_user_watches {limit} are in use: it would hit the limit"
            ),
            Some(format!(
                "`sudo sysctl fs.inotify.max_user_watches={suggested}`, and persist it in /etc/sysctl.d/99-samestack.conf"
            )),
        ));
    } else if low.is_empty() {
        let dev = facts.dev_watches.map(|n| format!("; dev watches {n} directories")).unwrap_or_default();
        checks.push(check("inotify", Severity::Ok, format!("{}{dev}", shown.join(", ")), None));
    } else {
        let set: Vec<String> = low.iter().map(|(n, _, rec)| format!("fs.inotify.{n}={rec}")).collect();
        checks.push(check(
            "inotify",
            Severity::Warn,
            format!(
                "{} (below the recommended {}): file watching and many pods may fail with \"too many open files\"",
                shown.join(", "),
                low.iter().map(|(n, _, r)| format!("{n} {r}")).collect::<Vec<_>>().join(", ")
            ),
            Some(format!("`sudo sysctl {}`, and persist it in /etc/sysctl.d/99-samestack.conf", set.join(" "))),
        ));
    }

    match facts.cgroup_version {
        Some(2) => checks.push(check("cgroup", Severity::Ok, "cgroup v2", None)),
        Some(1) => checks.push(check(
            "cgroup",
            Severity::Warn,
            "cgroup v1: Kubernetes 1.35+ kubelets refuse it unless told otherwise (samestack's nodes do)",
            Some("move to cgroup v2 when you can (boot with `systemd.unified_cgroup_hierarchy=1`)".into()),
        )),
        _ => checks.push(check(
            "cgroup",
            Severity::Warn,
            "cgroup version unknown (/sys/fs/cgroup not readable)",
            Some("check that /sys/fs/cgroup is mounted".into()),
        )),
    }

    for disk in &facts.disks {
        let detail = format!("{} free on {} ({})", gib(disk.free_bytes), disk.path.display(), disk.what);
        let fix = Some(format!(
            "free space on {} (`docker system df` shows what Docker uses; `docker image prune` removes unused images)",
            disk.path.display()
        ));
        let (severity, fix) = if disk.free_bytes < 2 * GIB {
            (Severity::Blocker, fix)
        } else if disk.free_bytes < 10 * GIB {
            (Severity::Warn, fix)
        } else {
            (Severity::Ok, None)
        };
        checks.push(check("disk", severity, detail, fix));
    }

    if let Some(missing) = &facts.missing_capabilities {
        if missing.is_empty() {
            checks.push(check("privileged", Severity::Ok, "privileged containers allowed", None));
        } else {
            let refuses = matches!(facts.provider.as_deref(), Some("kind" | "k3d"));
            checks.push(check(
                "privileged",
                if refuses { Severity::Warn } else { Severity::Ok },
                format!(
                    "privileged containers will be refused here ({} missing from the capability bounding set); the docker provider retries with an explicit capability set",
                    missing.join(", ")
                ),
                refuses.then(|| "kind and k3d always ask for privileged nodes: use `cluster.provider: docker`".to_string()),
            ));
        }
    }
    merge_by_id(checks)
}

/// The registry's host port when samestack.yaml names none (the config loader's default).
pub const DEFAULT_REGISTRY_PORT: u16 = 5001;

/// What doctor reads from a project file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPorts {
    /// Host ports and the setting that names each ("registry.host_port").
    pub ports: Vec<(u16, String)>,
    /// `cluster.provider`.
    pub provider: Option<String>,
    /// `name`.
    pub project: Option<String>,
}

/// Host ports named in a project file, read leniently from its YAML: `registry.host_port`
/// (default [`DEFAULT_REGISTRY_PORT`] unless `registry.enabled: false`) and `cluster.ports`
/// (maps `{host, container}`; numbers and "HOST:CONTAINER" strings are tolerated).
/// Also returns `cluster.provider`. The typed config loader will replace this.
pub fn ports_of(config: &crate::config::Config) -> ProjectPorts {
    let registry = config.registry.enabled.then(|| (config.registry.host_port, "registry.host_port".to_string()));
    let cluster = config.cluster.ports.iter().enumerate().map(|(i, p)| (p.host, format!("cluster.ports[{i}]")));
    ProjectPorts {
        ports: registry.into_iter().chain(cluster).collect(),
        provider: Some(config.cluster.provider.as_str().to_string()),
        project: Some(config.name.clone()),
    }
}

/// Each built service's context and Dockerfile on disk, as `up` will read them.
pub fn builds_of(project: &crate::config::Project) -> Vec<BuildFact> {
    project
        .config
        .services
        .iter()
        .filter_map(|(service, s)| {
            let b = s.build.as_ref()?;
            let context = project.path(&b.context);
            let dockerfile = context.join(&b.dockerfile);
            Some(BuildFact {
                service: service.clone(),
                context_exists: context.is_dir(),
                dockerfile_exists: dockerfile.is_file(),
                context,
                dockerfile,
            })
        })
        .collect()
}

/// Merges checks that share an id into one (the worst severity, every detail and fix), so a
/// script reading `--json` finds each id once.
fn merge_by_id(checks: Vec<Check>) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    for c in checks {
        match out.iter_mut().find(|o| o.id == c.id) {
            None => out.push(c),
            Some(o) => {
                o.severity = o.severity.max(c.severity);
                o.detail = format!("{}; {}", o.detail, c.detail);
                o.fix = match (o.fix.take(), c.fix) {
                    (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    out
}

/// Capability names (index = number), for the ones a privileged container gets.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Capabilities missing from a `CapBnd:` mask, given the kernel's last capability number.
pub fn missing_capabilities(status: &str, cap_last_cap: u32) -> Option<Vec<String>> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?.trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(
        (0..=cap_last_cap.min(63))
            .filter(|bit| mask & (1u64 << bit) == 0)
            .map(|bit| {
                CAPABILITIES.get(bit as usize).map(|n| format!("CAP_{n}")).unwrap_or_else(|| format!("cap {bit}"))
            })
            .collect(),
    )
}

// ---- I/O ----------------------------------------------------------------------------------

/// inotify watches held by the processes this user can inspect: one `inotify wd:` line per
/// watch in each inotify descriptor's /proc/PID/fdinfo entry.
fn watches_in_use() -> Option<u64> {
    let mut total = 0;
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let is_inotify = std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify");
            if !is_inotify {
                continue;
            }
            let info = process.path().join("fdinfo").join(fd.file_name());
            if let Ok(text) = std::fs::read_to_string(info) {
                total += text.lines().filter(|l| l.starts_with("inotify wd:")).count() as u64;
            }
        }
    }
    Some(total)
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A container publishing a host port: its name and labels.
type Publisher = (String, HashMap<String, String>);

/// Whether a container publishing a port is samestack's own for `project`: the shared registry
/// (role `registry`), or anything labelled with this project. Another project's cluster is not.
pub fn owned_by_samestack(labels: &HashMap<String, String>, project: Option<&str>) -> bool {
    labels.get(crate::labels::ROLE).map(String::as_str) == Some("registry")
        || project.is_some_and(|p| labels.get(crate::kube::PROJECT_LABEL).map(String::as_str) == Some(p))
}

async fn probe_docker() -> (DockerProbe, HashMap<u16, Publisher>) {
    use bollard::query_parameters::ListContainersOptionsBuilder;

    let host = crate::docker::host();
    let unreachable = |error: String| (DockerProbe::Unreachable { host: host.clone(), error }, HashMap::new());
    let attempt = async {
        let docker = crate::docker::connect().await.map_err(|e| e.to_string())?;
        let version = docker.version().await.map_err(|e| e.to_string())?;
        let info = docker.info().await.map_err(|e| e.to_string())?;
        let containers = docker
            .list_containers(Some(ListContainersOptionsBuilder::new().build()))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((version, info, containers))
    };
    let (version, info, containers) = match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Err(_) => return unreachable("no answer within 10 s".into()),
        Ok(Err(e)) => return unreachable(e),
        Ok(Ok(v)) => v,
    };
    let mut holders = HashMap::new();
    for c in containers {
        let name =
            c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default();
        let labels = c.labels.clone().unwrap_or_default();
        for p in c.ports.iter().flatten() {
            if let Some(public) = p.public_port {
                holders.insert(public, (name.clone(), labels.clone()));
            }
        }
    }
    let facts = DockerFacts {
        local: host.starts_with("unix://"),
        host: host.clone(),
        server_version: version.version.unwrap_or_default(),
        api_version: version.api_version.unwrap_or_default(),
        memory_bytes: info.mem_total.unwrap_or(0),
        cpus: info.ncpu.unwrap_or(0),
        root_dir: info.docker_root_dir,
    };
    (DockerProbe::Reachable(facts), holders)
}

async fn probe_tool(name: &str, args: &[&str]) -> ToolFact {
    let Ok(path) = which::which(name) else {
        return ToolFact { name: name.into(), path: None, version: None };
    };
    let run = tokio::process::Command::new(&path).args(args).kill_on_drop(true).output();
    let version = match tokio::time::timeout(Duration::from_secs(5), run).await {
        Ok(Ok(out)) => {
            String::from_utf8_lossy(&out.stdout).lines().next().map(|l| l.trim().to_string()).filter(|l| !l.is_empty())
        }
        _ => None,
    };
    ToolFact { name: name.into(), path: Some(path), version }
}

/// The process holding a listening port (see [`crate::ports::process_listening_on`]).
fn process_holding(port: u16) -> Option<Holder> {
    let (pid, command) = crate::ports::process_listening_on(port)?;
    Some(Holder::Process { pid, command })
}

fn free_space(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Gathers every fact. `project_file` is the samestack.yaml path (it may not exist).
pub async fn gather(project_file: &Path) -> Facts {
    let ((docker, holders), kind, k3d, kubectl) = tokio::join!(
        probe_docker(),
        probe_tool("kind", &["version"]),
        probe_tool("k3d", &["version"]),
        probe_tool("kubectl", &["version", "--client"]),
    );
    let mut facts = Facts { tools: vec![kind, k3d, kubectl], ..Default::default() };

    match crate::config::load(project_file) {
        Ok(loaded) => {
            facts.project_file = Some(project_file.to_path_buf());
            facts.builds = builds_of(&loaded);
            for tool in crate::render::sources::required_tools(&loaded.config) {
                let args: &[&str] = match tool {
                    crate::render::sources::Tool::Helm => &["version", "--short"],
                    crate::render::sources::Tool::Kustomize => &["version"],
                };
                let mut fact = probe_tool(tool.name(), args).await;
                if fact.path.is_none() && tool == crate::render::sources::Tool::Kustomize {
                    // `kubectl kustomize` stands in (see render::sources::locate).
                    if let Some((path, _)) = crate::render::sources::locate(tool) {
                        fact =
                            ToolFact { name: fact.name, path: Some(path), version: Some("kubectl kustomize".into()) };
                    }
                }
                facts.manifest_tools.push(fact);
            }
            let ProjectPorts { ports, provider, project } = ports_of(&loaded.config);
            {
                facts.provider = provider;
                let ports_clone = ports.clone();
                let holders_clone = holders.clone();
                facts.ports = tokio::task::spawn_blocking(move || {
                    ports_clone
                        .into_iter()
                        .map(|(port, purpose)| {
                            let holder = holders_clone
                                .get(&port)
                                .map(|(name, labels)| Holder::Container {
                                    name: name.clone(),
                                    ours: owned_by_samestack(labels, project.as_deref()),
                                })
                                .or_else(|| {
                                    crate::ports::is_taken(port)
                                        .then(|| process_holding(port).unwrap_or(Holder::Unknown))
                                });
                            PortFact { port, purpose, holder }
                        })
                        .collect()
                })
                .await
                .unwrap_or_default();
            }
        }
        Err(crate::config::Error::NotFound { .. }) => {}
        Err(e) => facts.project_file_error = Some(e.to_string()),
    }

    facts.inotify_max_user_watches = read_u64("/proc/sys/fs/inotify/max_user_watches");
    facts.inotify_max_user_instances = read_u64("/proc/sys/fs/inotify/max_user_instances");
    if let Ok(project) = crate::config::load(project_file) {
        facts.dev_watches = tokio::task::spawn_blocking(move || {
            let rules = crate::sync::watch::rules_for(&project).ok()?;
            crate::sync::watch::watched_dirs(&rules).ok().map(|d| d.len() as u64)
        })
        .await
        .ok()
        .flatten();
        facts.watches_in_use = tokio::task::spawn_blocking(watches_in_use).await.ok().flatten();
    }
    facts.cgroup_version = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Some(2)
    } else if Path::new("/sys/fs/cgroup").is_dir() {
        Some(1)
    } else {
        None
    };

    let project_dir = project_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let project_dir = std::fs::canonicalize(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
    if let Some(DockerProbe::Reachable(d)) = Some(&docker)
        && let (true, Some(root)) = (d.local, &d.root_dir)
        && let Some(free) = free_space(Path::new(root))
    {
        facts.disks.push(DiskFact { what: "Docker root".into(), path: root.into(), free_bytes: free });
    }
    if let Some(free) = free_space(&project_dir) {
        facts.disks.push(DiskFact { what: "project".into(), path: project_dir, free_bytes: free });
    }

    if let (Ok(status), Some(last)) =
        (std::fs::read_to_string("/proc/self/status"), read_u64("/proc/sys/kernel/cap_last_cap"))
    {
        facts.missing_capabilities = missing_capabilities(&status, last as u32);
    }
    facts.docker = Some(docker);
    facts
}

/// The human report: one aligned line per check, fixes indented below. `symbols` uses ✓ ! ✗
/// (for a terminal); otherwise plain words.
pub fn render_human(report: &Report, symbols: bool) -> String {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in &report.checks {
        let mark = match (c.severity, symbols) {
            (Severity::Ok, true) => "✓",
            (Severity::Warn, true) => "!",
            (Severity::Blocker, true) => "✗",
            (Severity::Ok, false) => "ok     ",
            (Severity::Warn, false) => "warn   ",
            (Severity::Blocker, false) => "blocker",
        };
        let _ = writeln!(out, "{mark} {:width$}  {}", c.id, c.detail);
        if let Some(fix) = &c.fix {
            let pad = if symbols { 1 } else { 7 };
            let _ = writeln!(out, "{:pad$} {:width$}  fix: {fix}", "", "");
        }
    }
    let blockers = report.checks.iter().filter(|c| c.severity == Severity::Blocker).count();
    let warnings = report.checks.iter().filter(|c| c.severity == Severity::Warn).count();
    let _ = if blockers > 0 {
        writeln!(
            out,
            "\n{blockers} blocker(s), {warnings} warning(s): `samestack up` cannot succeed until the blockers are fixed"
        )
    } else {
        writeln!(out, "\n{warnings} warning(s), nothing blocks `samestack up`")
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            docker: Some(DockerProbe::Reachable(DockerFacts {
                host: "unix:///var/run/docker.sock".into(),
                server_version: "20.10.24".into(),
                api_version: "1.41".into(),
                memory_bytes: 24 * GIB as i64,
                cpus: 2,
                root_dir: Some("/var/lib/docker".into()),
                local: true,
            })),
            tools: vec![
                ToolFact { name: "kind".into(), path: None, version: None },
                ToolFact {
                    name: "kubectl".into(),
                    path: Some("/usr/bin/kubectl".into()),
                    version: Some("Client Version: v1.34.4".into()),
                },
            ],
            provider: None,
            ports: vec![PortFact { port: 5001, purpose: "registry.host_port".into(), holder: None }],
            project_file_error: None,
            project_file: None,
            builds: vec![],
            manifest_tools: vec![],
            inotify_max_user_watches: Some(1_048_576),
            inotify_max_user_instances: Some(1024),
            dev_watches: Some(40),
            watches_in_use: Some(1000),
            cgroup_version: Some(2),
            disks: vec![DiskFact { what: "project".into(), path: "/work".into(), free_bytes: 50 * GIB }],
            missing_capabilities: Some(vec![]),
        }
    }

    fn find<'a>(checks: &'a [Check], id: &str) -> Vec<&'a Check> {
        checks.iter().filter(|c| c.id == id).collect()
    }

    #[test]
    fn a_healthy_machine_has_no_problems() {
        let checks = evaluate(&healthy());
        assert!(checks.iter().all(|c| c.severity == Severity::Ok), "{checks:#?}");
        assert!(checks.iter().all(|c| c.fix.is_none()));
        assert!(find(&checks, "kind")[0].detail.contains("optional"));
        assert!(!Report::new(healthy()).blocks_up);
    }

    #[test]
    fn the_tools_the_projects_manifests_need_are_listed_and_a_missing_one_blocks() {
        let mut facts = healthy();
        assert!(find(&evaluate(&facts), "helm").is_empty(), "not listed without a source that needs it");
        facts.manifest_tools = vec![
            ToolFact { name: "helm".into(), path: Some("/usr/bin/helm".into()), version: Some("v3.19.5".into()) },
            ToolFact { name: "kustomize".into(), path: None, version: None },
        ];
        let checks = evaluate(&facts);
        let helm = find(&checks, "helm")[0];
        assert!(helm.severity == Severity::Ok && helm.detail.contains("v3.19.5 (/usr/bin/helm)"), "{helm:?}");
        let kustomize = find(&checks, "kustomize")[0];
        assert_eq!(kustomize.severity, Severity::Blocker);
        assert!(kustomize.detail.contains("need `kustomize`, which is not on PATH"), "{kustomize:?}");
        assert!(kustomize.fix.as_ref().unwrap().contains("sigs.k8s.io/kustomize/kustomize/v5"), "{kustomize:?}");
        assert!(Report::new(facts).blocks_up);
    }

    #[test]
    fn inotify_warns_before_dev_would_reach_the_watch_limit() {
        let mut facts = healthy();
        facts.dev_watches = Some(200_000);
        facts.watches_in_use = Some(900_000);
        let inotify = find(&evaluate(&facts), "inotify")[0].clone();
        assert_eq!(inotify.severity, Severity::Warn);
        assert!(inotify.detail.contains("would watch 200000 directories"), "{}", inotify.detail);
        assert!(inotify.fix.unwrap().contains("fs.inotify.max_user_watches=2097152"));
        // Within the limit, the count is shown.
        let ok = find(&evaluate(&healthy()), "inotify")[0].clone();
        assert!(ok.severity == Severity::Ok && ok.detail.contains("dev watches 40 directories"), "{ok:?}");
    }

    #[test]
    fn every_problem_has_a_fix() {
        let mut facts = healthy();
        facts.docker = Some(DockerProbe::Unreachable {
            host: "unix:///tmp/dead.sock".into(),
            error: "No such file or directory".into(),
        });
        facts.provider = Some("kind".into());
        facts.ports[0].holder = Some(Holder::Process { pid: 42, command: "nginx".into() });
        facts.inotify_max_user_watches = Some(8192);
        facts.cgroup_version = Some(1);
        facts.disks[0].free_bytes = GIB;
        facts.missing_capabilities = Some(vec!["CAP_SYS_RESOURCE".into()]);
        let checks = evaluate(&facts);
        for c in &checks {
            assert_eq!(c.fix.is_some(), c.severity != Severity::Ok, "{c:#?}");
        }
        let docker = find(&checks, "docker")[0];
        assert_eq!(docker.severity, Severity::Blocker);
        assert!(docker.fix.as_ref().unwrap().contains("DOCKER_HOST"), "{docker:?}");
        assert_eq!(find(&checks, "kind")[0].severity, Severity::Blocker, "the configured provider is missing");
        let port = find(&checks, "ports")[0];
        assert_eq!(port.detail, "port 5001 (registry.host_port) is taken by process nginx (pid 42)");
        assert!(port.fix.as_ref().unwrap().contains("registry.host_port"));
        let inotify = find(&checks, "inotify")[0];
        assert_eq!(inotify.severity, Severity::Warn);
        assert!(inotify.fix.as_ref().unwrap().contains("fs.inotify.max_user_watches=524288"));
        assert!(!inotify.fix.as_ref().unwrap().contains("max_user_instances"), "only the low limit");
        assert_eq!(find(&checks, "cgroup")[0].severity, Severity::Warn);
        assert_eq!(find(&checks, "disk")[0].severity, Severity::Blocker);
        assert_eq!(find(&checks, "privileged")[0].severity, Severity::Warn, "kind needs privileged nodes");
        assert!(Report::new(facts).blocks_up);
    }

    #[test]
    fn a_broken_project_file_and_missing_build_inputs_block_up() {
        let mut facts = healthy();
        facts.project_file_error = Some("samestack.yaml:3:5: unknown key `portz`".into());
        let checks = evaluate(&facts);
        let project = find(&checks, "project")[0];
        assert_eq!(project.severity, Severity::Blocker);
        assert!(project.detail.contains("samestack.yaml:3:5"), "{project:?}");
        assert!(Report::new(facts).blocks_up);

        let mut facts = healthy();
        facts.project_file = Some("samestack.yaml".into());
        facts.builds = vec![
            BuildFact {
                service: "api".into(),
                context: "api".into(),
                context_exists: false,
                dockerfile: "api/Dockerfile".into(),
                dockerfile_exists: false,
            },
            BuildFact {
                service: "web".into(),
                context: ".".into(),
                context_exists: true,
                dockerfile: "./Dockerfile".into(),
                dockerfile_exists: false,
            },
        ];
        let checks = evaluate(&facts);
        let builds = find(&checks, "builds");
        assert_eq!(builds.len(), 1);
        assert_eq!(builds[0].severity, Severity::Blocker);
        assert_eq!(
            builds[0].detail,
            "service `api`: build context api does not exist; service `web`: Dockerfile ./Dockerfile does not exist"
        );
        assert!(Report::new(facts).blocks_up);
    }

    #[test]
    fn each_check_id_appears_once() {
        let mut facts = healthy();
        facts.ports = vec![
            PortFact { port: 5001, purpose: "registry.host_port".into(), holder: None },
            PortFact {
                port: 8080,
                purpose: "cluster.ports[0]".into(),
                holder: Some(Holder::Process { pid: 7, command: "nginx".into() }),
            },
            PortFact { port: 8443, purpose: "cluster.ports[1]".into(), holder: None },
        ];
        facts.disks.push(DiskFact { what: "Docker root".into(), path: "/var/lib/docker".into(), free_bytes: GIB });
        let checks = evaluate(&facts);
        let mut ids: Vec<&str> = checks.iter().map(|c| c.id).collect();
        let all = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all, "{checks:#?}");
        let ports = find(&checks, "ports")[0];
        assert_eq!(ports.severity, Severity::Blocker);
        assert!(ports.detail.contains("port 5001") && ports.detail.contains("8080") && ports.detail.contains("8443"));
        assert_eq!(find(&checks, "disk")[0].severity, Severity::Blocker);
    }

    #[test]
    fn resources_and_own_ports() {
        let mut facts = healthy();
        if let Some(DockerProbe::Reachable(d)) = &mut facts.docker {
            d.memory_bytes = 3 * GIB as i64;
        }
        facts.ports[0].holder = Some(Holder::Container { name: "samestack-registry".into(), ours: true });
        let checks = evaluate(&facts);
        assert_eq!(find(&checks, "docker-resources")[0].severity, Severity::Warn);
        assert_eq!(find(&checks, "ports")[0].severity, Severity::Ok);
        assert!(find(&checks, "ports")[0].detail.contains("samestack's own container"));
        facts.ports[0].holder = Some(Holder::Container { name: "web".into(), ours: false });
        assert!(evaluate(&facts).iter().any(|c| c.fix.as_deref().is_some_and(|f| f.contains("docker stop web"))));
    }

    #[test]
    fn reads_ports_from_the_project_file() {
        let yaml = "name: shop\ncluster:\n  provider: k3d\n  ports:\n    - {host: 8080, container: 80}\n    - {host: 8443, container: 443}\nregistry:\n  host_port: 5002\nservices:\n  web:\n    image: nginx:1.27\n    ports: [{port: 80}]\n";
        let config = |yaml: &str| crate::config::parse_str("samestack.yaml", yaml.as_bytes()).unwrap().0;
        let ProjectPorts { ports, provider, project } = ports_of(&config(yaml));
        assert_eq!(project.as_deref(), Some("shop"));
        assert_eq!(provider.as_deref(), Some("k3d"));
        let numbers: Vec<u16> = ports.iter().map(|(p, _)| *p).collect();
        assert_eq!(numbers, [5002, 8080, 8443]);
        assert_eq!(ports[1].1, "cluster.ports[0]");
        let minimal = "name: x\nservices:\n  web:\n    image: nginx:1.27\n    ports: [{port: 80}]\n";
        assert_eq!(
            ports_of(&config(minimal)).ports,
            [(5001, "registry.host_port".to_string())],
            "the registry is on by default"
        );
        let off = minimal.replace("name: x\n", "name: x\nregistry: {enabled: false}\n");
        assert!(ports_of(&config(&off)).ports.is_empty());
    }

    #[test]
    fn the_shared_registry_and_this_projects_containers_are_ours() {
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(owned_by_samestack(&labels(&[("dev.samestack.role", "registry")]), Some("shop")));
        assert!(owned_by_samestack(&labels(&[("dev.samestack.project", "shop")]), Some("shop")));
        assert!(!owned_by_samestack(&labels(&[("dev.samestack.project", "blog")]), Some("shop")), "another project");
        assert!(!owned_by_samestack(&labels(&[]), None));
    }

    #[test]
    fn names_missing_capabilities() {
        let status = "Name:\tx\nCapBnd:\t000001fffeffffff\n";
        assert_eq!(missing_capabilities(status, 40).unwrap(), ["CAP_SYS_RESOURCE"]);
        assert_eq!(missing_capabilities("CapBnd:\t000001ffffffffff\n", 40).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn human_output_is_aligned_with_fixes() {
        let mut facts = healthy();
        facts.inotify_max_user_instances = Some(128);
        let text = render_human(&Report::new(facts), false);
        assert!(text.contains("ok      docker            Docker 20.10.24"), "{text}");
        assert!(text.contains("warn    inotify  "), "{text}");
        assert!(text.contains("fix: `sudo sysctl fs.inotify.max_user_instances=512`"), "{text}");
        assert!(text.ends_with("1 warning(s), nothing blocks `samestack up`\n"), "{text}");
        assert!(render_human(&Report::new(healthy()), true).starts_with("✓ docker"));
    }
}
