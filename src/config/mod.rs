//! The project file `samestack.yaml`: typed schema (serde + schemars, unknown keys rejected),
//! loading with `file:line:column` errors, and semantic validation after parsing.

pub mod cron;
pub mod paths;
pub mod scaffold;
pub mod typecheck;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorKind};
pub use yaml::{Locations, Pos, Problem, Problems};

/// Default Kubernetes version for created clusters.
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.34.1";
/// Default host port of the local registry.
pub const DEFAULT_REGISTRY_PORT: u16 = 5001;
/// JSON Schema patterns for the names the loader checks ([`is_dns_label`] and friends); a
/// unit test keeps each pattern and its function in agreement, so the schema editors use
/// says exactly what the loader enforces.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1035 label: a DNS-1123 label that starts with a letter (Service names).
pub const DNS_1035_LABEL: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain: dot-separated DNS-1123 labels.
pub const DNS_SUBDOMAIN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A port name: a DNS-1123 label with at least one letter (at most 15 characters).
pub const PORT_NAME: &str = "^([a-z]([-a-z0-9]*[a-z0-9])?|[0-9][-a-z0-9]*[a-z]([-a-z0-9]*[a-z0-9])?)$";

/// The name the database workload and its Service get inside the project namespace.
pub const DATABASE_NAME: &str = "database";

/// Object names samestack uses itself inside the namespace; services may not take them.
pub const RESERVED_NAMES: &[&str] =
    &[DATABASE_NAME, "database-backup", "migrations", "default-deny", "allow-dns", "defaults", "quota"];

/// The project file. Every mapping rejects unknown keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "samestack.yaml", description = "samestack project file")]
pub struct Config {
    /// Project name: a DNS-1123 label (lowercase letters, digits, '-'), also the namespace.
    #[schemars(regex(pattern = DNS_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// Owner tag put on every resource (label `dev.samestack.owner`); defaults to the project name.
    #[serde(default)]
    pub owner: Option<String>,
    /// Cost-center tag put on every resource (label `dev.samestack.cost-center`); defaults to the project name.
    #[serde(default)]
    pub cost_center: Option<String>,
    /// The local cluster.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The local OCI registry images are pushed to.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// The workloads, by name (each a DNS-1035 label: a letter first, then lowercase letters,
    /// digits and '-'; not one of the names samestack uses itself).
    #[schemars(extend("propertyNames" = { "pattern": DNS_1035_LABEL, "maxLength": 63 }), length(min = 1))]
    pub services: BTreeMap<String, ServiceConfig>,
    /// Secrets, by name (DNS-1123 subdomains); values come from an environment variable or a
    /// local file at apply time.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": DNS_SUBDOMAIN, "maxLength": 253 }))]
    pub secrets: BTreeMap<String, SecretConfig>,
    /// An optional relational database (postgres), reachable as host `database`.
    #[serde(default)]
    pub database: Option<DatabaseConfig>,
    /// Schema migrations, run as a Job with a service's image before the workloads start.
    #[serde(default)]
    pub migrations: Option<MigrationsConfig>,
    /// Manifests the project brings besides the built-in templates: Helm charts, kustomize
    /// directories and plain YAML, rendered per profile and applied with the rest (see
    /// docs/reference.md, "Your own manifests").
    #[serde(default)]
    pub manifests: Vec<ManifestSource>,
    /// `samestack dev` settings.
    #[serde(default)]
    pub dev: DevConfig,
    /// The profiles this project uses (built-in: dev, ci, prod; more in ./profiles/NAME.yaml).
    #[serde(default = "default_profiles")]
    #[schemars(inner(regex(pattern = DNS_LABEL)), extend("uniqueItems" = true, "contains" = { "const": "prod" }))]
    pub profiles: Vec<String>,
}

fn default_profiles() -> Vec<String> {
    vec!["dev".into(), "ci".into(), "prod".into()]
}

/// How the local cluster is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Pick what is installed (see the README for the order).
    #[default]
    Auto,
    /// Node containers from a kind-contract node image, created through the Docker API and
    /// bootstrapped with kubeadm (Docker is the only prerequisite).
    Docker,
    /// The `kind` CLI.
    Kind,
    /// The `k3d` CLI.
    K3d,
    /// A kubeconfig context that already exists.
    Existing,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Auto => "auto",
            Provider::Docker => "docker",
            Provider::Kind => "kind",
            Provider::K3d => "k3d",
            Provider::Existing => "existing",
        }
    }
}

/// The local cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// auto | docker | kind | k3d | existing
    #[serde(default)]
    pub provider: Provider,
    /// Cluster name (a DNS-1123 label); defaults to `samestack-<project>`.
    #[serde(default)]
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub name: Option<String>,
    /// kubeconfig context to use (provider `existing` only).
    #[serde(default)]
    pub context: Option<String>,
    /// Control-plane nodes (at least 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub servers: u32,
    /// Worker nodes.
    #[serde(default)]
    pub agents: u32,
    /// Kubernetes version of created clusters.
    #[serde(default = "default_kubernetes_version")]
    pub kubernetes_version: String,
    /// Node image override (offline and air-gapped use).
    #[serde(default)]
    pub node_image: Option<String>,
    /// Host ports mapped to the cluster's ingress (host → container): container port 80 is
    /// the ingress controller's HTTP entrypoint, 443 its HTTPS one.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// The ingress controller samestack installs into clusters it creates.
    #[serde(default)]
    pub ingress: IngressControllerConfig,
}

/// `samestack dev` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// Image of the ephemeral container that receives synced files in pods whose image has no
    /// `sh` or `tar` (it needs both); else env SAMESTACK_SYNC_IMAGE, else a pinned busybox.
    #[serde(default)]
    pub sync_image: Option<String>,
}

/// The ingress controller (Traefik) that serves the project's Ingress resources locally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngressControllerConfig {
    /// Install it (native docker and kind clusters; k3d ships its own Traefik, an existing
    /// cluster keeps whatever it has).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Image override (else env SAMESTACK_INGRESS_IMAGE, else a pinned Traefik tag).
    #[serde(default)]
    pub image: Option<String>,
}

impl Default for IngressControllerConfig {
    fn default() -> Self {
        IngressControllerConfig { enabled: true, image: None }
    }
}

fn one() -> u32 {
    1
}
fn default_kubernetes_version() -> String {
    DEFAULT_KUBERNETES_VERSION.into()
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            provider: Provider::Auto,
            name: None,
            context: None,
            servers: 1,
            agents: 0,
            kubernetes_version: default_kubernetes_version(),
            node_image: None,
            ports: Vec::new(),
            ingress: IngressControllerConfig::default(),
        }
    }
}

/// A host port published by the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// Port on the host (127.0.0.1).
    #[schemars(range(min = 1))]
    pub host: u16,
    /// Port inside the cluster's load balancer / ingress.
    #[schemars(range(min = 1))]
    pub container: u16,
}

/// The local registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Run a local registry (otherwise images are loaded into the nodes directly).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Host port of the registry (`localhost:<port>`).
    #[serde(default = "default_registry_port")]
    #[schemars(range(min = 1))]
    pub host_port: u16,
    /// Registry image override.
    #[serde(default)]
    pub image: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_registry_port() -> u16 {
    DEFAULT_REGISTRY_PORT
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig { enabled: true, host_port: DEFAULT_REGISTRY_PORT, image: None }
    }
}

/// One workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Build the image from a local context (exclusive with `image`).
    #[serde(default)]
    pub build: Option<BuildConfig>,
    /// A prebuilt image with a pinned tag or digest (exclusive with `build`).
    #[serde(default)]
    pub image: Option<String>,
    /// The image repository your own manifests (`manifests:`) name for this service, such as
    /// `ghcr.io/acme/api`, without a tag (only with `build`). Containers running it get the
    /// freshly built image instead. Without it, a repository whose last part is the service
    /// name matches (`image: guestbook/api` for service `api`).
    #[serde(default)]
    pub image_name: Option<String>,
    /// What deploys the service: samestack's built-in templates (`templates`, the default), or
    /// only the project's own manifests (`manifests`): the image is built, pushed and put into
    /// the containers of `manifests:` that name it, and the built-in templates render nothing
    /// for the service (only with `build`).
    #[serde(default)]
    pub deploy: Deploy,
    /// Container ports; the first one is the Service's main port.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Override the image's command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Plain environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables from secrets: ENV_VAR → name of a top-level secret.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Services this one talks to (`database` for the database): drives the NetworkPolicy allow-list.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// HTTP endpoints for the readiness and liveness probes (otherwise TCP probes on the first port).
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Files copied into the running container by `samestack dev` instead of rebuilding.
    #[serde(default)]
    pub sync: Vec<SyncRule>,
    /// Shell command run in the container after a sync.
    #[serde(default)]
    pub on_change: Option<String>,
    /// Expose the service through an Ingress with TLS.
    #[serde(default)]
    pub ingress: Option<IngressConfig>,
}

/// What deploys a service's workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Deploy {
    /// The built-in templates: Deployment, Service, autoscaler, disruption budget,
    /// NetworkPolicy, Ingress.
    #[default]
    Templates,
    /// The project's own manifests (`manifests:`) alone; the built-in templates render no
    /// object for the service.
    Manifests,
}

/// How to build a service image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Build context directory, relative to the project directory.
    pub context: String,
    /// Dockerfile path, relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// Build arguments.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// Multi-stage build target.
    #[serde(default)]
    pub target: Option<String>,
}

fn default_dockerfile() -> String {
    "Dockerfile".into()
}

/// A container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// Port name (DNS-1123 label with at least one letter, at most 15 characters).
    #[serde(default = "default_port_name")]
    #[schemars(regex(pattern = PORT_NAME), length(min = 1, max = 15))]
    pub name: String,
    /// Port number.
    #[schemars(range(min = 1))]
    pub port: u16,
}

fn default_port_name() -> String {
    "http".into()
}

/// HTTP health endpoints: readiness (`path`) and, optionally, liveness (`live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// HTTP path answering 2xx when the service can take traffic, its dependencies included
    /// (the readiness probe).
    pub path: String,
    /// HTTP path answering 2xx while the process itself works, whatever its dependencies do
    /// (the liveness and startup probes). Without it they connect to the port over TCP.
    #[serde(default)]
    pub live: Option<String>,
    /// Port serving it (defaults to the first port).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
}

/// A sync rule: local path (relative to the build context) → path in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRule {
    pub from: String,
    pub to: String,
}

/// Ingress settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    /// Production host name; profiles may move it to another domain (knob `ingress_domain`).
    pub host: String,
    /// Path prefix.
    #[serde(default = "default_ingress_path")]
    pub path: String,
}

fn default_ingress_path() -> String {
    "/".into()
}

/// Where a secret's value comes from: the environment variable wins, else the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretConfig {
    /// Environment variable holding the value.
    #[serde(default)]
    pub env: Option<String>,
    /// File holding the value, relative to the project directory (keep it out of git).
    #[serde(default)]
    pub file: Option<String>,
}

/// Database engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Postgres,
}

/// The project's database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Only postgres for now.
    #[serde(default)]
    pub engine: Engine,
    /// Major version: 15, 16 or 17 have a default image; any other needs `image`.
    #[serde(default = "default_pg_version")]
    pub version: String,
    /// Image override (else env SAMESTACK_POSTGRES_IMAGE, else a pinned postgres tag).
    #[serde(default)]
    pub image: Option<String>,
    /// Database name.
    #[serde(default = "default_db_ident")]
    pub name: String,
    /// Database user.
    #[serde(default = "default_db_ident")]
    pub user: String,
    /// Name of the top-level secret holding the password.
    pub password_secret: String,
    /// Volume size (Kubernetes quantity).
    #[serde(default = "default_storage")]
    pub storage: String,
    /// Scheduled backups (pg_dump into a volume).
    #[serde(default)]
    pub backup: Option<BackupConfig>,
}

fn default_pg_version() -> String {
    "15".into()
}
fn default_db_ident() -> String {
    "app".into()
}
fn default_storage() -> String {
    "1Gi".into()
}

/// Backup schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Cron schedule: 5 fields, minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or
    /// JAN-DEC) day-of-week (0-6 or SUN-SAT), or a descriptor such as `@daily`.
    pub schedule: String,
    /// Backup volume size.
    #[serde(default = "default_storage")]
    pub storage: String,
}

/// Migrations Job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationsConfig {
    /// The service whose image, env and secrets the Job uses.
    pub service: String,
    /// The command to run.
    pub command: Vec<String>,
}

/// One source of manifests: exactly one of `helm`, `kustomize` or `yaml`. What it renders
/// for prod is the base; another profile may add to it only through `profiles.NAME`, and the
/// differences that makes are what `samestack parity NAME prod` compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestSource {
    /// A local Helm chart, rendered with `helm template`.
    #[serde(default)]
    pub helm: Option<HelmSource>,
    /// A kustomize directory, rendered with `kustomize build`.
    #[serde(default)]
    pub kustomize: Option<KustomizeSource>,
    /// A YAML file, or a directory of `*.yaml`/`*.yml` files (not recursive).
    #[serde(default)]
    pub yaml: Option<YamlSource>,
    /// Per-profile additions, by profile name (not `prod`: prod is the base): Helm values files
    /// layered after the base ones, a kustomize overlay built instead of the base, and the
    /// differences from prod this source's objects may have.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": DNS_LABEL, "not": { "const": "prod" } }))]
    pub profiles: BTreeMap<String, SourceProfile>,
    /// When the source is applied: after the built-in templates' waves (default), or in the
    /// same waves as them.
    #[serde(default)]
    pub order: SourceOrder,
    /// Seconds `helm template` or `kustomize build` may run before it is stopped (default
    /// 300; not for `yaml`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub timeout: Option<u64>,
}

/// How long a manifest source's tool may run when its `timeout` does not say.
pub const DEFAULT_TOOL_TIMEOUT: u64 = 300;

/// When a manifest source is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceOrder {
    /// In waves of its own, after every wave of the built-in templates (their database,
    /// migrations and workloads are ready first).
    #[default]
    AfterTemplates,
    /// Mixed into the built-in templates' waves, by kind.
    WithTemplates,
}

/// A local Helm chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmSource {
    /// The chart directory (with `Chart.yaml`), relative to the project directory.
    pub chart: String,
    /// Values files for every profile, in order (later ones win), relative to the project.
    #[serde(default)]
    pub values: Vec<String>,
    /// The release name (a DNS-1123 label); defaults to the chart directory's name.
    #[serde(default)]
    #[schemars(regex(pattern = DNS_LABEL), length(max = 53))]
    pub release: Option<String>,
}

/// A kustomize directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KustomizeSource {
    /// The directory with the `kustomization.yaml` prod builds, relative to the project.
    pub path: String,
}

/// Plain YAML manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct YamlSource {
    /// A file, or a directory whose `*.yaml` and `*.yml` files are read in name order.
    pub path: String,
}

/// What one profile adds to a manifest source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceProfile {
    /// Helm only: values files layered after the source's `values`.
    #[serde(default)]
    pub values: Vec<String>,
    /// kustomize only: the overlay directory built instead of `path` (it names the base).
    #[serde(default)]
    pub overlay: Option<String>,
    /// Differences from prod this source's objects may have under this profile:
    /// `Kind:field.path` patterns, as in a profile's `allowed_drift`, for this source only.
    #[serde(default)]
    pub allowed_drift: Vec<String>,
}

impl ManifestSource {
    /// The kind of source, for messages: `helm`, `kustomize` or `yaml`.
    pub fn kind(&self) -> &'static str {
        match (&self.helm, &self.kustomize) {
            (Some(_), _) => "helm",
            (None, Some(_)) => "kustomize",
            _ => "yaml",
        }
    }

    /// The source's name on its objects (annotation `dev.samestack/source`) and in messages:
    /// `helm/RELEASE`, `kustomize/PATH`, `yaml/PATH`.
    pub fn id(&self) -> String {
        match (&self.helm, &self.kustomize, &self.yaml) {
            (Some(h), _, _) => format!("helm/{}", h.release_name()),
            (None, Some(k), _) => format!("kustomize/{}", k.path.trim_start_matches("./").trim_end_matches('/')),
            (None, None, Some(y)) => format!("yaml/{}", y.path.trim_start_matches("./").trim_end_matches('/')),
            (None, None, None) => "empty".into(),
        }
    }
}

impl HelmSource {
    /// `release`, or the chart directory's name.
    pub fn release_name(&self) -> String {
        self.release.clone().unwrap_or_else(|| {
            let last = Path::new(self.chart.trim_end_matches('/'))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            suggest_label(&last)
        })
    }
}

/// A loaded, validated project: the config, where it lives, and where each key sits.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project file as given.
    pub file: PathBuf,
    /// The directory relative paths resolve against.
    pub dir: PathBuf,
    pub config: Config,
    pub locations: Locations,
}

impl Project {
    /// `rel` resolved against the project directory (kept relative when that is `.`).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        if self.dir == Path::new(".") { rel.as_ref().to_path_buf() } else { self.dir.join(rel) }
    }
}

/// A problem with the project file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file does not exist.
    #[error("{path}: no project file here\n  fix: run `samestack init` to write one, or pass -f PATH")]
    NotFound { path: String },
    /// The file exists but cannot be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Syntax, type, or semantic problems, each with its location.
    #[error("{0}")]
    Invalid(Problems),
    /// A secret value could not be found at render/apply time.
    #[error("{0}")]
    Secret(Problem),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Read { .. } => ErrorKind::Environment,
            _ => ErrorKind::User,
        }
    }
}
crate::classify!(Error);

/// The postgres versions samestack has a pinned default image for.
pub const POSTGRES_IMAGES: &[(&str, &str)] =
    &[("15", "postgres:15.8"), ("16", "postgres:16.4"), ("17", "postgres:17.0")];

/// Default postgres image for a major version when neither the config nor
/// `SAMESTACK_POSTGRES_IMAGE` names one; `None` for a version samestack does not know (the
/// loader then requires `database.image`, rather than guessing a tag that may not exist).
pub fn default_postgres_image(version: &str) -> Option<&'static str> {
    POSTGRES_IMAGES.iter().find(|(v, _)| *v == version).map(|(_, image)| *image)
}

/// Loads and validates the project file at `path`: the file itself, every path it names
/// (inside the project directory, symlinks included), and every profile it lists (so a broken
/// profile fails every command, not only the one that uses it).
pub fn load(path: &Path) -> Result<Project, Error> {
    let shown = path.display().to_string();
    let bytes = yaml::read(path)
        .map_err(|source| Error::Read { path: shown.clone(), source })?
        .ok_or_else(|| Error::NotFound { path: shown.clone() })?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let (config, locations) = parse_str(&shown, &bytes)?;
    let project = Project { file: path.to_path_buf(), dir, config, locations };
    let mut problems = check_paths(&project);
    problems.extend(check_manifest_files(&project));
    problems.sort_by_key(|pr| (pr.at.line, pr.at.column));
    problems.extend(crate::profile::check_listed(&project));
    if !problems.is_empty() {
        return Err(Error::Invalid(Problems(problems)));
    }
    Ok(project)
}

/// What a path in the project file is, for messages and fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    BuildContext,
    Dockerfile,
    SecretFile,
    SyncSource,
    /// A Helm chart, values file, kustomize directory or YAML path under `manifests:`.
    ManifestPath,
}

impl PathUse {
    fn noun(self) -> &'static str {
        match self {
            PathUse::BuildContext => "build context",
            PathUse::Dockerfile => "Dockerfile",
            PathUse::SecretFile => "secret file",
            PathUse::SyncSource => "sync source",
            PathUse::ManifestPath => "manifest path",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            PathUse::SecretFile => {
                "keep the file inside the project (e.g. `.secrets/NAME`, git-ignored), or give a value from elsewhere through the secret's environment variable (`env: VAR`)"
            }
            _ => {
                "move it inside the project directory and write a path relative to it (without leading `/` or `..` out of the project)"
            }
        }
    }
}

impl Project {
    /// Resolves `rel` (relative to the project directory) for the key at `key_path`, refusing
    /// anything outside the project (see [`paths::resolve_inside`]). Every path a project
    /// file names goes through here, and so should future ones (manifest sources).
    pub fn resolve_path(&self, key_path: &str, what: PathUse, rel: &str) -> Result<PathBuf, Problem> {
        paths::resolve_inside(&self.dir, rel).map_err(|why| {
            self.locations.problem(key_path, paths::describe(what.noun(), rel, "", &self.dir, &why), what.fix())
        })
    }
}

/// Every path the project file names, checked against the project directory.
pub fn check_paths(project: &Project) -> Vec<Problem> {
    let mut out = Vec::new();
    // `rel` is resolved against the project directory; `shown` is how the file writes it.
    let mut check = |key: String, what: PathUse, rel: String, (shown, note): (String, String)| {
        if let Err(why) = paths::resolve_inside(&project.dir, &rel) {
            let message = paths::describe(what.noun(), &shown, &note, &project.dir, &why);
            out.push(project.locations.problem(&key, message, what.fix()));
        }
    };
    for (name, s) in &project.config.services {
        let Some(b) = &s.build else { continue };
        let ctx = &b.context;
        check(
            format!("services.{name}.build.context"),
            PathUse::BuildContext,
            ctx.clone(),
            (ctx.clone(), String::new()),
        );
        if Path::new(ctx).is_absolute() {
            continue;
        }
        let in_context = |rel: &str| {
            if Path::new(rel).is_absolute() {
                (rel.to_owned(), (rel.to_owned(), String::new()))
            } else {
                let joined = Path::new(ctx).join(rel).to_string_lossy().into_owned();
                (joined, (rel.to_owned(), format!(" (in build context `{}`)", yaml::clip(ctx))))
            }
        };
        let (rel, shown) = in_context(&b.dockerfile);
        check(format!("services.{name}.build.dockerfile"), PathUse::Dockerfile, rel, shown);
        for (i, r) in s.sync.iter().enumerate() {
            let (rel, shown) = in_context(&r.from);
            check(format!("services.{name}.sync[{i}].from"), PathUse::SyncSource, rel, shown);
        }
    }
    for (name, s) in &project.config.secrets {
        if let Some(f) = &s.file {
            check(format!("secrets.{name}.file"), PathUse::SecretFile, f.clone(), (f.clone(), String::new()));
        }
    }
    for (key, rel) in manifest_paths(&project.config) {
        check(key, PathUse::ManifestPath, rel.clone(), (rel, String::new()));
    }
    out.sort_by_key(|pr| (pr.at.line, pr.at.column));
    out.dedup();
    out
}

/// Every path `manifests:` names, with its key path: charts, values files, kustomize
/// directories and overlays, YAML files and directories.
pub fn manifest_paths(c: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, m) in c.manifests.iter().enumerate() {
        let at = format!("manifests[{i}]");
        if let Some(h) = &m.helm {
            out.push((format!("{at}.helm.chart"), h.chart.clone()));
            for (j, v) in h.values.iter().enumerate() {
                out.push((format!("{at}.helm.values[{j}]"), v.clone()));
            }
        }
        if let Some(k) = &m.kustomize {
            out.push((format!("{at}.kustomize.path"), k.path.clone()));
        }
        if let Some(y) = &m.yaml {
            out.push((format!("{at}.yaml.path"), y.path.clone()));
        }
        for (name, p) in &m.profiles {
            for (j, v) in p.values.iter().enumerate() {
                out.push((format!("{at}.profiles.{name}.values[{j}]"), v.clone()));
            }
            if let Some(o) = &p.overlay {
                out.push((format!("{at}.profiles.{name}.overlay"), o.clone()));
            }
        }
    }
    out
}

/// Checks that what `manifests:` names exists and is what it should be (a chart directory
/// with Chart.yaml, a kustomization directory, a values file...). Run after the containment
/// check, on the paths that passed it.
pub fn check_manifest_files(project: &Project) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut want = |key: String, rel: &str, what: &str, marker: Option<&[&str]>, fix: &str| {
        let Ok(path) = paths::resolve_inside(&project.dir, rel) else { return };
        let shown = project.path(rel).display().to_string();
        let problem = match marker {
            _ if !path.exists() => Some(format!("{what} {shown} does not exist")),
            Some(_) if !path.is_dir() => Some(format!("{what} {shown} is not a directory")),
            Some(names) if !names.iter().any(|n| path.join(n).is_file()) => {
                Some(format!("{what} {shown} has no {}", names.join(" or ")))
            }
            None if !path.is_file() => Some(format!("{what} {shown} is not a file")),
            _ => None,
        };
        if let Some(message) = problem {
            out.push(project.locations.problem(&key, message, fix.to_string()));
        }
    };
    const KUSTOMIZATION: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];
    let mut missing_yaml = Vec::new();
    for (i, m) in project.config.manifests.iter().enumerate() {
        let at = format!("manifests[{i}]");
        if let Some(h) = &m.helm {
            want(
                format!("{at}.helm.chart"),
                &h.chart,
                "Helm chart",
                Some(&["Chart.yaml"]),
                "name a chart directory (it holds Chart.yaml), relative to the project directory",
            );
            for (j, v) in h.values.iter().enumerate() {
                want(
                    format!("{at}.helm.values[{j}]"),
                    v,
                    "values file",
                    None,
                    "name an existing values file, relative to the project directory",
                );
            }
        }
        if let Some(k) = &m.kustomize {
            want(
                format!("{at}.kustomize.path"),
                &k.path,
                "kustomize directory",
                Some(KUSTOMIZATION),
                "name a directory holding kustomization.yaml, relative to the project directory",
            );
        }
        if let Some(y) = &m.yaml
            && paths::resolve_inside(&project.dir, &y.path).is_ok_and(|p| !p.exists())
        {
            missing_yaml.push(project.locations.problem(
                &format!("{at}.yaml.path"),
                format!("YAML path {} does not exist", project.path(&y.path).display()),
                "name a YAML file or a directory of them, relative to the project directory",
            ));
        }
        for (name, p) in &m.profiles {
            for (j, v) in p.values.iter().enumerate() {
                want(
                    format!("{at}.profiles.{name}.values[{j}]"),
                    v,
                    "values file",
                    None,
                    "name an existing values file, relative to the project directory",
                );
            }
            if let Some(o) = &p.overlay {
                want(
                    format!("{at}.profiles.{name}.overlay"),
                    o,
                    "kustomize overlay",
                    Some(KUSTOMIZATION),
                    "name an overlay directory holding kustomization.yaml, relative to the project directory",
                );
            }
        }
    }
    out.extend(missing_yaml);
    out
}

/// Parses and validates project-file bytes (pure; `shown` is the path used in messages).
pub fn parse_str(shown: &str, bytes: &[u8]) -> Result<(Config, Locations), Error> {
    let one = |p: Problem| Error::Invalid(Problems(vec![p]));
    let text = yaml::check_text(shown, bytes, "project file").map_err(one)?;
    let config: Config = yaml::parse_all(shown, &text).map_err(|p| Error::Invalid(Problems(p)))?;
    let locations = Locations::index(shown, &text);
    let problems = validate(&config, &locations);
    if !problems.is_empty() {
        return Err(Error::Invalid(Problems(problems)));
    }
    Ok((config, locations))
}

/// True for a DNS-1123 label: 1-63 of [a-z0-9-], alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// True for a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The name sanitiser: `s` made into a DNS-1123 label (lowercase, other characters become
/// `-`, at most 63), `my-app` when nothing is left. Suggested in errors, and `init`'s default.
pub fn suggest_label(s: &str) -> String {
    let mut out: String = s.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-');
    if out.is_empty() {
        "my-app".into()
    } else {
        out.chars().take(63).collect::<String>().trim_end_matches('-').to_owned()
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// An image reference is pinned when it has a digest (`@sha256:` and 64 hex digits), or a tag
/// (after the last `/`) that is present and not `latest`.
pub fn image_is_pinned(image: &str) -> bool {
    if let Some((_, digest)) = image.split_once('@') {
        return digest
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()));
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').is_some_and(|(_, tag)| !tag.is_empty() && tag != "latest")
}

/// The checks of a service with `deploy: manifests`: it needs `build` and a source to run
/// it, and keys that only the built-in templates read would be ignored, so they are refused.
fn check_deployed_by_manifests(c: &Config, name: &str, s: &ServiceConfig, p: &mut impl FnMut(&str, String, String)) {
    let path = format!("services.{name}");
    if s.build.is_none() {
        p(
            &format!("{path}.deploy"),
            format!(
                "service `{name}` has `deploy: manifests` but no `build`: samestack puts only the images it builds into your manifests"
            ),
            "build the service from a local context (`build: { context: ./DIR }`), or leave it out of `services:` (your manifests run a prebuilt image as they name it)".into(),
        );
    }
    if c.manifests.is_empty() {
        p(
            &format!("{path}.deploy"),
            format!(
                "service `{name}` has `deploy: manifests`, but the project has no `manifests:` sources to deploy it"
            ),
            "add the source that runs its image under `manifests:`, or remove `deploy: manifests`".into(),
        );
    }
    let migrations = c.migrations.as_ref().is_some_and(|m| m.service == name);
    let unused = [
        ("health", s.health.is_some(), "your manifests' probes"),
        ("ingress", s.ingress.is_some(), "your manifests' Ingress"),
        ("command", s.command.is_some(), "your manifests' container command"),
        ("env", !s.env.is_empty() && !migrations, "your manifests' container env"),
        ("secrets", !s.secrets.is_empty() && !migrations, "your manifests' container env"),
    ];
    for (key, set, theirs) in unused {
        if set {
            p(
                &format!("{path}.{key}"),
                format!(
                    "`{key}` has no effect on service `{name}`: it has `deploy: manifests`, so the built-in templates render nothing for it{}",
                    if matches!(key, "env" | "secrets") {
                        " (only the migrations Job of its image would use it)"
                    } else {
                        ""
                    }
                ),
                format!("remove `{key}` ({theirs} apply), or remove `deploy: manifests`"),
            );
        }
    }
}

/// Semantic checks that types cannot express. Returns every problem found, in file order.
pub fn validate(c: &Config, loc: &Locations) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut p = |path: &str, msg: String, fix: String| out.push(loc.problem(path, msg, fix));

    if !is_dns_label(&c.name) {
        p(
            "name",
            format!(
                "`{}` is not a valid Kubernetes name: expected a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
                c.name
            ),
            format!("use e.g. `name: {}`", suggest_label(&c.name)),
        );
    }
    for (key, val) in [("owner", &c.owner), ("cost_center", &c.cost_center)] {
        if let Some(v) = val
            && (v.is_empty() || v.len() > 63 || !v.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)))
        {
            p(
                key,
                format!("`{v}` is not a valid label value: expected at most 63 of letters, digits, '-', '_', '.'"),
                format!("use e.g. `{key}: {}`", suggest_label(v)),
            );
        }
    }

    // cluster
    let cl = &c.cluster;
    if cl.context.is_some() && cl.provider != Provider::Existing {
        p(
            "cluster.context",
            format!("`context` only applies to provider `existing`, but provider is `{}`", cl.provider.as_str()),
            "remove `context`, or set `provider: existing`".into(),
        );
    }
    if cl.provider == Provider::Existing && cl.context.is_none() {
        p(
            "cluster.provider",
            "provider `existing` needs the kubeconfig context to use".into(),
            "add `context: <name>` (see `kubectl config get-contexts`)".into(),
        );
    }
    if let Some(n) = &cl.name
        && !is_dns_label(n)
    {
        p(
            "cluster.name",
            format!("`{n}` is not a valid cluster name: expected a DNS-1123 label"),
            format!("use e.g. `name: {}`", suggest_label(n)),
        );
    }
    let kv = cl.kubernetes_version.strip_prefix('v').unwrap_or("");
    let parts: Vec<&str> = kv.split('.').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|x| x.is_empty() || !x.chars().all(|ch| ch.is_ascii_digit()))
    {
        p(
            "cluster.kubernetes_version",
            format!("`{}` is not a Kubernetes version: expected vMAJOR.MINOR.PATCH", cl.kubernetes_version),
            format!("write e.g. `kubernetes_version: {DEFAULT_KUBERNETES_VERSION}`"),
        );
    }
    if cl.servers == 0 {
        p("cluster.servers", "found 0 servers, expected at least 1".into(), "set `servers: 1`".into());
    }
    let mut host_ports: BTreeMap<u16, String> = BTreeMap::new();
    if c.registry.enabled {
        host_ports.insert(c.registry.host_port, "registry.host_port".into());
    }
    for (i, m) in cl.ports.iter().enumerate() {
        let path = format!("cluster.ports[{i}].host");
        if m.host == 0 || m.container == 0 {
            p(
                &format!("cluster.ports[{i}]"),
                "port 0 is not a usable port".into(),
                "use a port between 1 and 65535".into(),
            );
        }
        if let Some(prev) = host_ports.get(&m.host) {
            let prev_at = loc.pos(prev);
            p(
                &path,
                format!("host port {} is used twice (also by `{prev}` at {prev_at})", m.host),
                "give each host port mapping and the registry a distinct host port".into(),
            );
        } else {
            host_ports.insert(m.host, path);
        }
    }
    if c.registry.host_port == 0 {
        p(
            "registry.host_port",
            "port 0 is not a usable port".into(),
            "use a port between 1 and 65535, e.g. 5001".into(),
        );
    }

    // secrets
    for (name, s) in &c.secrets {
        let path = format!("secrets.{name}");
        if !is_dns_subdomain(name) {
            p(
                &path,
                format!(
                    "secret name `{name}` is not a valid Kubernetes name: expected lowercase letters, digits, '-' and '.'"
                ),
                format!("rename it, e.g. `{}`", suggest_label(name)),
            );
        }
        if s.env.is_none() && s.file.is_none() {
            p(
                &path,
                format!("secret `{name}` has no source: expected `env`, `file`, or both"),
                format!("add e.g. `file: .secrets/{name}` (and keep .secrets/ out of git)"),
            );
        }
        if let Some(e) = &s.env
            && !is_env_name(e)
        {
            p(
                &format!("{path}.env"),
                format!("`{e}` is not a valid environment variable name"),
                "use letters, digits and '_'".into(),
            );
        }
    }

    // database
    let db = c.database.as_ref();
    if let Some(db) = db {
        if !c.secrets.contains_key(&db.password_secret) {
            p(
                "database.password_secret",
                format!("secret `{}` is not declared under `secrets`", db.password_secret),
                format!(
                    "declare it: `secrets: {{ {}: {{ env: DB_PASSWORD, file: .secrets/{} }} }}`",
                    db.password_secret, db.password_secret
                ),
            );
        }
        if !db.version.chars().all(|ch| ch.is_ascii_digit() || ch == '.') || db.version.is_empty() {
            p(
                "database.version",
                format!("`{}` is not a postgres version: expected e.g. \"15\"", db.version),
                "write the major version, e.g. `version: \"15\"`".into(),
            );
        } else if db.image.is_none() && default_postgres_image(&db.version).is_none() {
            let known: Vec<&str> = POSTGRES_IMAGES.iter().map(|(v, _)| *v).collect();
            p(
                "database.version",
                format!(
                    "samestack has no default image for postgres version `{}` (it knows {})",
                    db.version,
                    known.join(", ")
                ),
                format!(
                    "use one of those versions, or name the image: `image: postgres:{}.<minor>`",
                    db.version.split('.').next().unwrap_or(&db.version)
                ),
            );
        }
        if !is_quantity(&db.storage) {
            p(
                "database.storage",
                format!("`{}` is not a Kubernetes quantity", db.storage),
                "write e.g. `storage: 1Gi`".into(),
            );
        }
        if let Some(img) = &db.image
            && !image_is_pinned(img)
        {
            p(
                "database.image",
                format!("image `{img}` is not pinned (no tag, or `latest`)"),
                format!("pin a version, e.g. `{}:15.8`", img.split(':').next().unwrap_or(img)),
            );
        }
        if let Some(b) = &db.backup {
            if let Err(why) = cron::check(&b.schedule) {
                p(
                    "database.backup.schedule",
                    format!("`{}` is not a cron schedule: {why}", b.schedule),
                    "write 5 fields, minute (0-59) hour (0-23) day-of-month (1-31) month (1-12) day-of-week (0-6), e.g. `schedule: \"0 3 * * *\"`".into(),
                );
            }
            if !is_quantity(&b.storage) {
                p(
                    "database.backup.storage",
                    format!("`{}` is not a Kubernetes quantity", b.storage),
                    "write e.g. `storage: 1Gi`".into(),
                );
            }
        }
        for (k, v) in [("name", &db.name), ("user", &db.user)] {
            if v.is_empty() || !v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                p(
                    &format!("database.{k}"),
                    format!("`{v}` is not a valid postgres identifier: expected letters, digits and '_'"),
                    format!("use e.g. `{k}: app`"),
                );
            }
        }
    }

    // services
    if c.services.is_empty() {
        p(
            "services",
            "no services: expected at least one".into(),
            "add a service, e.g. `services: { web: { image: nginx:1.27.2, ports: [{ port: 80 }] } }`".into(),
        );
    }
    for (name, s) in &c.services {
        let path = format!("services.{name}");
        if !is_dns_label(name) {
            p(
                &path,
                format!(
                    "service name `{name}` is not a valid Kubernetes name: expected a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)"
                ),
                format!("rename it, e.g. `{}`", suggest_label(name)),
            );
        }
        if is_dns_label(name) && !name.starts_with(|ch: char| ch.is_ascii_lowercase()) {
            p(
                &path,
                format!(
                    "service name `{name}` must start with a letter (it becomes a Kubernetes Service name, a DNS-1035 label)"
                ),
                format!("rename it, e.g. `svc-{name}`"),
            );
        }
        if RESERVED_NAMES.contains(&name.as_str()) {
            p(
                &path,
                format!(
                    "service name `{name}` is reserved (samestack names its own objects {})",
                    RESERVED_NAMES.join(", ")
                ),
                "rename the service".into(),
            );
        }
        match (&s.build, &s.image) {
            (None, None) => p(
                &path,
                format!("service `{name}` has neither `image` nor `build`: expected exactly one"),
                "add `build: { context: ./DIR }` to build from source, or `image: REPO:TAG` for a prebuilt image"
                    .into(),
            ),
            (Some(_), Some(_)) => p(
                &format!("{path}.image"),
                format!("service `{name}` has both `image` and `build`: expected exactly one"),
                "remove one of them".into(),
            ),
            (None, Some(img)) if !image_is_pinned(img) => p(
                &format!("{path}.image"),
                format!("image `{img}` is not pinned (no tag, or `latest`); production parity needs a fixed version"),
                format!(
                    "pin a version, e.g. `{}:1.2.3` or a digest",
                    img.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(r, _)| r).unwrap_or(img)
                ),
            ),
            _ => {}
        }
        if let Some(n) = &s.image_name {
            if s.build.is_none() {
                p(
                    &format!("{path}.image_name"),
                    format!(
                        "service `{name}` has `image_name` but no `build`: only built images replace the ones your manifests name"
                    ),
                    "remove `image_name`, or build the service from a local context".into(),
                );
            }
            let last = n.rsplit('/').next().unwrap_or(n);
            if n.is_empty() || n.contains('@') || last.contains(':') || n.chars().any(char::is_whitespace) {
                p(
                    &format!("{path}.image_name"),
                    format!(
                        "`{n}` is not an image repository: expected a name without tag or digest, e.g. `ghcr.io/acme/{name}`"
                    ),
                    "remove the tag or digest".into(),
                );
            }
        }
        if s.deploy == Deploy::Manifests {
            check_deployed_by_manifests(c, name, s, &mut p);
        }
        if let Some(b) = &s.build {
            if b.context.is_empty() {
                p(
                    &format!("{path}.build.context"),
                    "empty build context".into(),
                    "write the directory, e.g. `context: ./api`".into(),
                );
            }
            if Path::new(&b.context).is_absolute() {
                p(
                    &format!("{path}.build.context"),
                    format!(
                        "build context `{}` is absolute; expected a path relative to the project directory",
                        b.context
                    ),
                    "use a relative path, e.g. `./api`".into(),
                );
            }
        }
        let mut seen_ports = BTreeSet::new();
        let mut seen_names = BTreeSet::new();
        for (i, port) in s.ports.iter().enumerate() {
            let pp = format!("{path}.ports[{i}]");
            if port.port == 0 {
                p(&pp, "port 0 is not a usable port".into(), "use a port between 1 and 65535".into());
            }
            if !seen_ports.insert(port.port) {
                p(
                    &pp,
                    format!("port {} is listed twice for service `{name}`", port.port),
                    "remove the duplicate".into(),
                );
            }
            if !is_dns_label(&port.name) || port.name.len() > 15 || !port.name.chars().any(|ch| ch.is_ascii_lowercase())
            {
                p(
                    &format!("{pp}.name"),
                    format!(
                        "port name `{}` is not valid: expected at most 15 lowercase letters, digits and '-'",
                        port.name
                    ),
                    "use e.g. `name: http`".into(),
                );
            } else if !seen_names.insert(port.name.clone()) {
                p(
                    &format!("{pp}.name"),
                    format!("port name `{}` is used twice for service `{name}`", port.name),
                    "give each port its own name, e.g. http, metrics".into(),
                );
            }
        }
        match &s.health {
            Some(h) => {
                if !h.path.starts_with('/') {
                    p(
                        &format!("{path}.health.path"),
                        format!("health path `{}` must start with '/'", h.path),
                        format!("write `path: /{}`", h.path),
                    );
                }
                if let Some(live) = h.live.as_ref().filter(|l| !l.starts_with('/')) {
                    p(
                        &format!("{path}.health.live"),
                        format!("health path `{live}` must start with '/'"),
                        format!("write `live: /{live}`"),
                    );
                }
                if h.port.is_none() && s.ports.is_empty() {
                    p(
                        &format!("{path}.health"),
                        format!("service `{name}` has a health path but no port to probe"),
                        "add `port:` to `health`, or declare `ports`".into(),
                    );
                }
            }
            // The probes of a service the manifests deploy are theirs.
            None if s.ports.is_empty() && s.deploy == Deploy::Templates => p(
                &path,
                format!(
                    "service `{name}` has no health check and no port: production parity needs readiness and liveness probes"
                ),
                "add `health: { path: /healthz, port: 8080 }` or `ports: [{ port: 8080 }]`".into(),
            ),
            None => {}
        }
        for k in s.env.keys() {
            if !is_env_name(k) {
                p(
                    &format!("{path}.env.{k}"),
                    format!("`{k}` is not a valid environment variable name"),
                    "use letters, digits and '_'".into(),
                );
            }
        }
        for (k, secret) in &s.secrets {
            if !is_env_name(k) {
                p(
                    &format!("{path}.secrets.{k}"),
                    format!("`{k}` is not a valid environment variable name"),
                    "use letters, digits and '_'".into(),
                );
            }
            if s.env.contains_key(k) {
                p(
                    &format!("{path}.secrets.{k}"),
                    format!("`{k}` is set both in `env` and in `secrets`"),
                    "keep one of them".into(),
                );
            }
            if !c.secrets.contains_key(secret) {
                let known: Vec<_> = c.secrets.keys().map(String::as_str).collect();
                p(
                    &format!("{path}.secrets.{k}"),
                    format!(
                        "secret `{secret}` is not declared under `secrets` (declared: {})",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                    format!("declare it: `secrets: {{ {secret}: {{ file: .secrets/{secret} }} }}`, or fix the name"),
                );
            }
        }
        for (i, dep) in s.depends_on.iter().enumerate() {
            let dp = format!("{path}.depends_on[{i}]");
            if dep == name {
                p(&dp, format!("service `{name}` depends on itself"), "remove it from its own depends_on".into());
            } else if dep == DATABASE_NAME {
                if db.is_none() {
                    p(
                        &dp,
                        "`database` is listed but the project has no `database` section".into(),
                        "add a `database:` section, or remove the dependency".into(),
                    );
                }
            } else if !c.services.contains_key(dep) {
                let mut known: Vec<_> = c.services.keys().map(String::as_str).filter(|k| k != name).collect();
                if db.is_some() {
                    known.push(DATABASE_NAME);
                }
                p(
                    &dp,
                    format!(
                        "depends_on names unknown service `{dep}` (known: {})",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                    "fix the name, or declare that service".into(),
                );
            } else if c.services[dep].ports.is_empty() {
                p(
                    &dp,
                    format!("service `{dep}` has no ports, so nothing can connect to it"),
                    format!("declare `ports` on `{dep}`, or remove the dependency"),
                );
            }
        }
        for (i, r) in s.sync.iter().enumerate() {
            if !r.to.starts_with('/') {
                p(
                    &format!("{path}.sync[{i}].to"),
                    format!("sync target `{}` must be an absolute path in the container", r.to),
                    format!("write e.g. `to: /app/{}`", r.to.trim_start_matches("./")),
                );
            }
            if Path::new(&r.from).is_absolute() || r.from.split('/').any(|seg| seg == "..") {
                p(
                    &format!("{path}.sync[{i}].from"),
                    format!("sync source `{}` must be relative to the build context, without '..'", r.from),
                    "write e.g. `from: src/`".into(),
                );
            }
            if s.build.is_none() {
                p(
                    &format!("{path}.sync[{i}]"),
                    format!("service `{name}` has sync rules but no `build`: there is no local source to sync"),
                    "remove `sync`, or build the service from a local context".into(),
                );
            }
        }
        if s.on_change.is_some() && s.sync.is_empty() {
            p(
                &format!("{path}.on_change"),
                "`on_change` runs after a sync, but the service has no `sync` rules".into(),
                "add `sync` rules, or remove `on_change`".into(),
            );
        }
        if let Some(ing) = &s.ingress {
            if !is_dns_subdomain(&ing.host) || !ing.host.contains('.') {
                p(
                    &format!("{path}.ingress.host"),
                    format!("`{}` is not a valid host name: expected a DNS name like api.example.com", ing.host),
                    "write e.g. `host: api.example.com`".into(),
                );
            }
            if !ing.path.starts_with('/') {
                p(
                    &format!("{path}.ingress.path"),
                    format!("ingress path `{}` must start with '/'", ing.path),
                    "write e.g. `path: /`".into(),
                );
            }
            if s.ports.is_empty() {
                p(
                    &format!("{path}.ingress"),
                    format!("service `{name}` has an ingress but no ports"),
                    "declare `ports`".into(),
                );
            }
        }
    }

    // migrations
    if let Some(m) = &c.migrations {
        if !c.services.contains_key(&m.service) {
            let known: Vec<_> = c.services.keys().map(String::as_str).collect();
            p(
                "migrations.service",
                format!("migrations use unknown service `{}` (known: {})", m.service, known.join(", ")),
                "name the service whose image contains the migrations".into(),
            );
        }
        if m.command.is_empty() {
            p(
                "migrations.command",
                "empty migrations command".into(),
                "write e.g. `command: [python3, /app/migrate.py]`".into(),
            );
        }
    }

    // manifests
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for (i, m) in c.manifests.iter().enumerate() {
        let at = format!("manifests[{i}]");
        let kinds = [m.helm.is_some(), m.kustomize.is_some(), m.yaml.is_some()].iter().filter(|x| **x).count();
        if kinds != 1 {
            p(
                &at,
                format!("manifest source {i} has {kinds} of `helm`, `kustomize` and `yaml`: expected exactly one"),
                "write one source per list entry, e.g. `- helm: { chart: deploy/chart }`".into(),
            );
            continue;
        }
        if let Some(h) = &m.helm {
            let release = h.release_name();
            if !is_dns_label(&release) || release.len() > 53 {
                p(
                    &format!("{at}.helm{}", if h.release.is_some() { ".release" } else { ".chart" }),
                    format!(
                        "`{release}` is not a valid Helm release name: expected a DNS-1123 label of at most 53 characters"
                    ),
                    format!("set e.g. `release: {}`", suggest_label(&release)),
                );
            }
        }
        match (m.timeout, m.yaml.is_some()) {
            (Some(_), true) => p(
                &format!("{at}.timeout"),
                "`timeout` limits `helm template` or `kustomize build`; a `yaml` source runs no tool".into(),
                "remove `timeout`".into(),
            ),
            (Some(0), false) => p(
                &format!("{at}.timeout"),
                "a timeout of 0 seconds stops the tool at once".into(),
                format!("give the seconds the tool may take, e.g. `timeout: {DEFAULT_TOOL_TIMEOUT}`"),
            ),
            _ => {}
        }
        if let Some(prev) = ids.insert(m.id(), i) {
            p(
                &at,
                format!("manifest source `{}` is listed twice (also manifests[{prev}])", m.id()),
                "remove the duplicate, or give the second Helm release another `release` name".into(),
            );
        }
        for (name, sp) in &m.profiles {
            let pp = format!("{at}.profiles.{name}");
            if name == "prod" {
                p(
                    &pp,
                    "a manifest source has no `prod` additions: what it renders for prod is its base".into(),
                    "move prod's values into the source's own `values` (or its kustomize `path`), and give other profiles their differences".into(),
                );
            } else if !c.profiles.contains(name) {
                p(
                    &pp,
                    format!("profile `{name}` is not in the project's `profiles` list ({})", c.profiles.join(", ")),
                    format!("add `{name}` to `profiles`, or fix the name"),
                );
            }
            if !sp.values.is_empty() && m.helm.is_none() {
                p(
                    &format!("{pp}.values"),
                    format!("`values` applies to Helm sources only, but this is a {} source", m.kind()),
                    "remove `values`".into(),
                );
            }
            if sp.overlay.is_some() && m.kustomize.is_none() {
                p(
                    &format!("{pp}.overlay"),
                    format!("`overlay` applies to kustomize sources only, but this is a {} source", m.kind()),
                    "remove `overlay`".into(),
                );
            }
            for (j, entry) in sp.allowed_drift.iter().enumerate() {
                if let Err(why) = crate::drift::Pattern::check(entry) {
                    p(
                        &format!("{pp}.allowed_drift[{j}]"),
                        format!("malformed pattern `{entry}` in allowed_drift: {why}"),
                        "write a `Kind:field.path` pattern such as `Deployment:spec.replicas`".into(),
                    );
                }
            }
        }
    }

    // profiles
    let mut seen = BTreeSet::new();
    for (i, prof) in c.profiles.iter().enumerate() {
        if !is_dns_label(prof) {
            p(
                &format!("profiles[{i}]"),
                format!("profile name `{prof}` is not valid: expected lowercase letters, digits and '-'"),
                format!("use e.g. `{}`", suggest_label(prof)),
            );
        }
        if !seen.insert(prof) {
            p(&format!("profiles[{i}]"), format!("profile `{prof}` is listed twice"), "remove the duplicate".into());
        }
    }
    if !c.profiles.iter().any(|x| x == "prod") {
        p(
            "profiles",
            "the profile list lacks `prod`: every project is compared against prod".into(),
            "add `prod` to `profiles`".into(),
        );
    }

    out.sort_by_key(|pr| (pr.at.line, pr.at.column));
    out
}

/// A Kubernetes quantity such as `1Gi`, `500M`, `2`.
pub fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|ch: char| ch.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|ch| ch.is_ascii_digit() || ch == '.')
        && ["", "Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P", "m"].contains(&suffix)
}

/// The JSON Schema of samestack.yaml, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Config);
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}

/// The JSON Schema of a profile file (`profiles/NAME.yaml`), pretty-printed.
pub fn profile_json_schema() -> String {
    let schema = schemars::schema_for!(crate::profile::ProfileFile);
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}

/// Resolves secret values: the environment variable wins, else the file (relative to the
/// project directory). `env` is injected so tests do not depend on the process environment.
pub fn resolve_secrets(
    project: &Project,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for (name, s) in &project.config.secrets {
        if let Some(var) = &s.env
            && let Some(v) = env(var)
        {
            // Set but empty is almost always a CI secret that did not reach the job: refuse
            // rather than deploy an empty password, and refuse rather than fall back to the
            // file, so one machine's environment never silently means another value.
            if v.is_empty() {
                let or_file = s
                    .file
                    .as_deref()
                    .map(|f| format!(", or unset {var} to use the file {}", yaml::clip(f)))
                    .unwrap_or_default();
                return Err(Error::Secret(project.locations.problem(
                    &format!("secrets.{name}.env"),
                    format!("secret `{name}`: environment variable ${var} is set but empty"),
                    format!("export {var}=<value>{or_file}"),
                )));
            }
            out.insert(name.clone(), v);
            continue;
        }
        let from_env = s.env.as_deref().map(|v| format!(" and ${v} is not set")).unwrap_or_default();
        let Some(file) = &s.file else {
            return Err(Error::Secret(project.locations.problem(
                &format!("secrets.{name}"),
                format!("secret `{name}` has no value: {}", from_env.trim_start_matches(" and ")),
                format!("export {}=...", s.env.as_deref().unwrap_or("VAR")),
            )));
        };
        // Checked again at read time: the file is read through its resolved path only.
        let resolved =
            project.resolve_path(&format!("secrets.{name}.file"), PathUse::SecretFile, file).map_err(Error::Secret)?;
        let full = project.path(file);
        match std::fs::read(&resolved) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    Error::Secret(project.locations.problem(
                        &format!("secrets.{name}.file"),
                        format!("secret file {} is not UTF-8 text", full.display()),
                        "store the secret as text".to_string(),
                    ))
                })?;
                let value =
                    text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned();
                if value.is_empty() {
                    return Err(Error::Secret(project.locations.problem(
                        &format!("secrets.{name}.file"),
                        format!("secret file {} is empty", full.display()),
                        format!("write the value into {}", full.display()),
                    )));
                }
                out.insert(name.clone(), value);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Secret(project.locations.problem(
                    &format!("secrets.{name}.file"),
                    format!("secret `{name}`: file {} does not exist{from_env}", full.display()),
                    format!(
                        "create it (it stays out of git): mkdir -p {dir} && head -c 24 /dev/urandom | base64 > {f}{or}",
                        dir = full.parent().map(|d| d.display().to_string()).filter(|d| !d.is_empty()).unwrap_or_else(|| ".".into()),
                        f = full.display(),
                        or = s.env.as_deref().map(|v| format!(", or export {v}=...")).unwrap_or_default()
                    ),
                )));
            }
            Err(e) => {
                return Err(Error::Secret(project.locations.problem(
                    &format!("secrets.{name}.file"),
                    format!("cannot read secret file {}: {e}", full.display()),
                    "check the file's permissions".to_string(),
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n";

    fn problems(text: &str) -> String {
        match parse_str("samestack.yaml", text.as_bytes()) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_service_the_manifests_deploy_needs_build_a_source_and_no_template_only_keys() {
        let ok = "name: shop\nservices:\n  api:\n    build: { context: api }\n    deploy: manifests\n    ports: [{ port: 80 }]\n    env: { A: b }\nmigrations: { service: api, command: [m] }\nmanifests:\n  - helm: { chart: chart }\n";
        let (c, _) = parse_str("samestack.yaml", ok.as_bytes()).unwrap();
        assert_eq!(c.services["api"].deploy, Deploy::Manifests);
        let (c, _) = parse_str("samestack.yaml", MINIMAL.as_bytes()).unwrap();
        assert_eq!(c.services["web"].deploy, Deploy::Templates, "the default");

        let msg = problems(
            "name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    deploy: manifests\n    health: { path: /h, port: 80 }\n    ingress: { host: web.example.com }\n    env: { A: b }\n",
        );
        assert!(
            msg.contains("samestack.yaml:5:5: service `web` has `deploy: manifests` but no `build`"),
            "located at the key: {msg}"
        );
        assert!(
            msg.contains(
                "samestack.yaml:5:5: service `web` has `deploy: manifests`, but the project has no `manifests:` sources"
            ),
            "{msg}"
        );
        assert!(msg.contains("samestack.yaml:6:5: `health` has no effect on service `web`"), "{msg}");
        assert!(msg.contains("samestack.yaml:7:5: `ingress` has no effect"), "{msg}");
        assert!(msg.contains("samestack.yaml:8:5: `env` has no effect on service `web`: it has `deploy: manifests`, so the built-in templates render nothing for it (only the migrations Job"), "{msg}");
        assert!(
            msg.contains("fix: remove `ingress` (your manifests' Ingress apply), or remove `deploy: manifests`"),
            "{msg}"
        );
        assert!(!msg.contains("no health check and no port"), "the probes are the manifests': {msg}");
        let msg = problems("name: shop\nservices:\n  web:\n    build: { context: w }\n    deploy: chart\n");
        assert!(msg.contains("samestack.yaml:5:") && msg.contains("manifests") && msg.contains("templates"), "{msg}");
    }

    #[test]
    fn a_sources_timeout_is_for_its_tool_and_not_zero() {
        let base = "name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\nmanifests:\n";
        let (c, _) =
            parse_str("samestack.yaml", format!("{base}  - helm: {{ chart: c }}\n    timeout: 30\n").as_bytes())
                .unwrap();
        assert_eq!(c.manifests[0].timeout, Some(30));
        let msg = problems(&format!(
            "{base}  - yaml: {{ path: y }}\n    timeout: 30\n  - kustomize: {{ path: k }}\n    timeout: 0\n"
        ));
        assert!(msg.contains("samestack.yaml:8:5: `timeout` limits `helm template` or `kustomize build`; a `yaml` source runs no tool"), "{msg}");
        assert!(msg.contains("samestack.yaml:10:5: a timeout of 0 seconds"), "{msg}");
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let (c, _) = parse_str("samestack.yaml", MINIMAL.as_bytes()).unwrap();
        assert_eq!(c.cluster.provider, Provider::Auto);
        assert_eq!(c.registry.host_port, DEFAULT_REGISTRY_PORT);
        assert_eq!(c.profiles, ["dev", "ci", "prod"]);
        assert_eq!(c.services["web"].ports[0].name, "http");
    }

    #[test]
    fn unknown_key_has_location_and_expected_keys() {
        let msg = problems("name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    portz: []\n");
        assert!(msg.starts_with("samestack.yaml:5:5: unknown key `portz`"), "{msg}");
        assert!(msg.contains("ports"), "{msg}");
    }

    #[test]
    fn wrong_type_says_found_and_expected() {
        let msg = problems(
            "name: shop\nregistry:\n  host_port: lots\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n",
        );
        assert!(msg.starts_with("samestack.yaml:3:"), "{msg}");
        assert!(msg.contains("lots") && msg.contains("integer"), "{msg}");
    }

    #[test]
    fn semantic_errors_are_located() {
        let msg = problems("name: Shop_1\nservices:\n  web:\n    ports: [{ port: 80 }]\n    depends_on: [cache]\n");
        assert!(msg.contains("samestack.yaml:1:1: `Shop_1` is not a valid Kubernetes name"), "{msg}");
        assert!(msg.contains("samestack.yaml:3:3: service `web` has neither `image` nor `build`"), "{msg}");
        assert!(msg.contains("samestack.yaml:5:18: depends_on names unknown service `cache`"), "{msg}");
    }

    #[test]
    fn kubernetes_version_format() {
        let msg = problems(
            "name: shop\ncluster:\n  kubernetes_version: 1.34\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n",
        );
        assert!(msg.starts_with("samestack.yaml:3:3: `1.34` is not a Kubernetes version"), "{msg}");
    }

    #[test]
    fn colliding_host_ports() {
        let msg = problems(
            "name: shop\ncluster:\n  ports:\n    - { host: 8080, container: 80 }\n    - { host: 8080, container: 443 }\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\n",
        );
        assert!(msg.contains("samestack.yaml:5:9: host port 8080 is used twice (also by `cluster.ports[0].host` at samestack.yaml:4:9)"), "{msg}");
    }

    #[test]
    fn secrets_env_wins_over_file_and_missing_file_is_located() {
        let text = "name: shop\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\nsecrets:\n  pw:\n    env: SHOP_PW\n    file: does/not/exist\n";
        let dir = tempfile::tempdir().unwrap();
        let (config, locations) = parse_str("samestack.yaml", text.as_bytes()).unwrap();
        let project = Project { file: "samestack.yaml".into(), dir: dir.path().into(), config, locations };
        let got = resolve_secrets(&project, &|k| (k == "SHOP_PW").then(|| "from-env".to_owned())).unwrap();
        assert_eq!(got["pw"], "from-env");
        let err = resolve_secrets(&project, &|_| None).unwrap_err().to_string();
        let expected = format!(
            "samestack.yaml:9:5: secret `pw`: file {}/does/not/exist does not exist and $SHOP_PW is not set",
            dir.path().display()
        );
        assert!(err.starts_with(&expected), "{err}");
    }

    fn project_in(dir: &Path, text: &str) -> Project {
        let (config, locations) = parse_str("samestack.yaml", text.as_bytes()).unwrap();
        Project { file: dir.join("samestack.yaml"), dir: dir.into(), config, locations }
    }

    #[test]
    fn a_secret_env_var_set_but_empty_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
        let text = format!("{MINIMAL}secrets:\n  pw:\n    env: SHOP_PW\n    file: pw\n");
        let project = project_in(dir.path(), &text);
        let err = resolve_secrets(&project, &|k| (k == "SHOP_PW").then(String::new)).unwrap_err().to_string();
        assert!(
            err.starts_with("samestack.yaml:8:5: secret `pw`: environment variable $SHOP_PW is set but empty"),
            "{err}"
        );
        assert!(err.contains("fix: export SHOP_PW=<value>, or unset SHOP_PW to use the file pw"), "{err}");
        assert_eq!(resolve_secrets(&project, &|_| None).unwrap()["pw"], "from-file", "unset: the file");
    }

    #[test]
    fn secret_files_outside_the_project_are_refused_even_through_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "root:x:0:0\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("innocent")).unwrap();
        let abs = outside.path().join("passwd").display().to_string();
        for (file, says) in [
            (abs.as_str(), "is an absolute path"),
            ("../../../../../../../../etc/passwd", "resolves to /etc/passwd, outside the project directory"),
            ("innocent", "(symlinks are followed)"),
        ] {
            let text = format!("{MINIMAL}secrets:\n  pw:\n    file: \"{file}\"\n");
            let project = project_in(dir.path(), &text);
            let problems = check_paths(&project);
            assert_eq!(problems.len(), 1, "{file}: {problems:?}");
            let msg = problems[0].to_string();
            assert!(msg.starts_with("samestack.yaml:8:5: secret file `"), "{msg}");
            assert!(msg.contains(says) && msg.contains("environment variable"), "{file}: {msg}");
            let err = resolve_secrets(&project, &|_| None).unwrap_err().to_string();
            assert!(err.contains(says), "read time too: {err}");
        }
    }

    #[test]
    fn build_paths_and_sync_sources_must_stay_inside() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("api")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("api/elsewhere")).unwrap();
        let text = "name: shop\nservices:\n  api:\n    build: { context: ../.., dockerfile: ../../../Dockerfile }\n    ports: [{ port: 80 }]\n  web:\n    build: { context: api, dockerfile: elsewhere/Dockerfile }\n    ports: [{ port: 80 }]\n    sync: [{ from: elsewhere, to: /app }]\n";
        let problems: Vec<String> = check_paths(&project_in(dir.path(), text)).iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("samestack.yaml:4:14: build context `../..` resolves to"), "{problems:#?}");
        assert!(
            problems[1].starts_with("samestack.yaml:4:30: Dockerfile `../../../Dockerfile` (in build context `../..`) resolves to /Dockerfile"),
            "{problems:#?}"
        );
        assert!(
            problems[2].starts_with(
                "samestack.yaml:7:28: Dockerfile `elsewhere/Dockerfile` (in build context `api`) resolves to"
            ),
            "{problems:#?}"
        );
        assert!(
            problems[3].starts_with("samestack.yaml:9:14: sync source `elsewhere` (in build context `api`)"),
            "{problems:#?}"
        );
    }

    #[test]
    fn cron_fields_are_checked_by_range() {
        let text = format!(
            "{MINIMAL}secrets: {{ pw: {{ env: PW }} }}\ndatabase:\n  password_secret: pw\n  backup: {{ schedule: \"61 3 * * *\" }}\n"
        );
        let msg = problems(&text);
        assert!(
            msg.starts_with(
                "samestack.yaml:9:13: `61 3 * * *` is not a cron schedule: minute field `61`: 61 is out of range 0-59"
            ),
            "{msg}"
        );
    }

    #[test]
    fn a_postgres_version_without_a_default_image_needs_one() {
        let db = |extra: &str| {
            format!("{MINIMAL}secrets: {{ pw: {{ env: PW }} }}\ndatabase:\n  password_secret: pw\n{extra}")
        };
        let msg = problems(&db("  version: \"14\"\n"));
        assert!(
            msg.starts_with(
                "samestack.yaml:9:3: samestack has no default image for postgres version `14` (it knows 15, 16, 17)"
            ),
            "{msg}"
        );
        assert!(msg.contains("image: postgres:14.<minor>"), "{msg}");
        parse_str("samestack.yaml", db("  version: \"14\"\n  image: postgres:14.13\n").as_bytes()).unwrap();
        parse_str("samestack.yaml", db("  version: \"17\"\n").as_bytes()).unwrap();
    }

    #[test]
    fn yaml_tags_are_refused_with_their_location() {
        let msg =
            problems(&format!("{MINIMAL}secrets:\n  pw: {{ env: !secret PW }}\nowner: !!python/name:os.system x\n"));
        assert!(msg.contains("samestack.yaml:7:14: YAML tag `!secret` is not allowed"), "{msg}");
        assert!(msg.contains("samestack.yaml:8:8: YAML tag `!!python/name:os.system` is not allowed"), "{msg}");
    }

    #[test]
    fn a_nul_byte_is_located() {
        let msg = problems("name: shop\nservices:\n  web:\n    image: ngi\0nx:1\n");
        assert!(msg.starts_with("samestack.yaml:4:15: the file contains binary data"), "{msg}");
    }

    #[test]
    fn a_huge_value_gives_a_short_message() {
        let msg = problems(&format!("name: {}\n{}", "A".repeat(900_000), &MINIMAL[11..]));
        assert!(msg.len() < 1000, "{} bytes: {}", msg.len(), &msg[..200]);
        assert!(msg.contains("900000 bytes in all"), "{msg}");
    }

    #[test]
    fn image_pinning() {
        assert!(image_is_pinned("nginx:1.27"));
        assert!(image_is_pinned("localhost:5001/a/b:abc"));
        assert!(!image_is_pinned("x@sha256:00"), "a digest has 64 hex digits");
        assert!(!image_is_pinned("nginx"));
        assert!(!image_is_pinned("localhost:5001/nginx"));
        assert!(!image_is_pinned("nginx:latest"));
    }

    #[test]
    fn schema_patterns_say_what_the_loader_enforces() {
        let re = |p: &str| regex::Regex::new(p).unwrap();
        let (label, dns1035, sub, port) = (re(DNS_LABEL), re(DNS_1035_LABEL), re(DNS_SUBDOMAIN), re(PORT_NAME));
        let samples = [
            "a",
            "api",
            "api-2",
            "2api",
            "9",
            "99",
            "-a",
            "a-",
            "a--b",
            "Api",
            "a_b",
            "a.b",
            "a..b",
            ".a",
            "a.",
            "x1-y2.z3",
            "1a",
            "1-a",
            "1-",
            "a1",
            "http",
            "metrics-port",
            "é",
        ];
        for s in samples {
            assert_eq!(label.is_match(s), is_dns_label(s), "DNS_LABEL {s}");
            assert_eq!(
                dns1035.is_match(s),
                is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase()),
                "1035 {s}"
            );
            assert_eq!(sub.is_match(s), is_dns_subdomain(s), "DNS_SUBDOMAIN {s}");
            let loader_port = is_dns_label(s) && s.chars().any(|c| c.is_ascii_lowercase());
            assert_eq!(port.is_match(s), loader_port, "PORT_NAME {s}");
        }
        let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
        let defs = &schema["$defs"];
        assert_eq!(schema["properties"]["name"]["pattern"], DNS_LABEL);
        assert_eq!(schema["properties"]["services"]["propertyNames"]["pattern"], DNS_1035_LABEL);
        assert_eq!(defs["ClusterConfig"]["properties"]["servers"]["minimum"], 1);
        assert_eq!(defs["PortMapping"]["properties"]["host"]["minimum"], 1);
        assert_eq!(defs["ServicePort"]["properties"]["port"]["minimum"], 1);
        assert_eq!(defs["ServicePort"]["properties"]["name"]["pattern"], PORT_NAME);
        let profile: serde_json::Value = serde_json::from_str(&profile_json_schema()).unwrap();
        assert_eq!(profile["additionalProperties"], false);
        assert_eq!(profile["properties"]["replicas"]["minimum"], 1);
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_label("api-2"));
        assert!(!is_dns_label("Api"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert_eq!(suggest_label("My_App"), "my-app");
    }

    #[test]
    fn quantities() {
        assert!(is_quantity("1Gi") && is_quantity("500m") && is_quantity("2"));
        assert!(!is_quantity("1GB") && !is_quantity("Gi"));
    }
}
