//! Resolved settings for the commands that touch a cluster (`up`, `dev`, `ci`, `down`,
//! `status`): the project file, the command-line flags and the environment mapped onto the
//! specs the domain modules take. Pure: no I/O (the environment comes in as an [`Env`]), so
//! the mapping is unit-tested without Docker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::build::BuildSpec;
use crate::cluster::{ClusterSpec, PortMapping, ProviderChoice, RegistryEndpoint};
use crate::config::{self, Project};
use crate::ingress::IngressSpec;
use crate::profile::{self, ProfileSettings};
use crate::registry::RegistrySpec;

/// The process environment, read once when a command starts and passed down, so what a
/// setting depends on is visible in its signature and tests give their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// Under CI? See [`crate::ui::is_ci`].
    pub fn ci(&self) -> bool {
        crate::ui::is_ci(self.raw("CI"))
    }

    /// This process's environment (variables that are not UTF-8 are left out).
    pub fn from_process() -> Env {
        Env(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect())
    }

    /// A variable's value as set (possibly empty).
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A variable's value as set, owned (for lookups such as secret values).
    pub fn var(&self, key: &str) -> Option<String> {
        self.raw(key).map(String::from)
    }

    /// A variable's value, trimmed; unset and empty are the same: not given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).map(str::trim).filter(|v| !v.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Env(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// What the command line said for `up` (or what `ci`/`dev` decide in its place); `None` =
/// not given, so the environment, the project file or the default decide (see the precedence
/// table in docs/reference.md). Fields are added over time: build it with
/// `..Overrides::default()`. Host ports of 0 mean "any free port": call
/// [`Overrides::pick_free_ports`] before resolving.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The profile to deploy (`dev` when not given).
    pub profile: Option<String>,
    /// `--build-arg KEY=VALUE`: added to every service's build arguments, over the file's.
    pub build_args: BTreeMap<String, String>,
    /// `--preload` images (empty entries are dropped).
    pub preload: Option<Vec<String>>,
    /// `--build-timeout`: all image builds and pushes together.
    pub build_timeout: Option<Duration>,
    /// `--ready-timeout`: each apply wave.
    pub ready_timeout: Option<Duration>,
    /// Builds running at once (over `SAMESTACK_BUILD_PARALLELISM`).
    pub build_parallelism: Option<usize>,
    /// `--kubeconfig`: the file the cluster's context is merged into (over `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// The project name (over `name:`): labels, namespace, and the default cluster and
    /// registry names follow it. `ci` gives each run its own.
    pub project_name: Option<String>,
    /// The cluster name (over `cluster.name`).
    pub cluster_name: Option<String>,
    /// The registry's host port (over `registry.host_port`); 0 = any free port.
    pub registry_host_port: Option<u16>,
    /// Host port per cluster container port (over that entry of `cluster.ports`); 0 = any free port.
    pub host_ports: BTreeMap<u16, u16>,
    /// Node image (over `SAMESTACK_NODE_IMAGE` over `cluster.node_image`).
    pub node_image: Option<String>,
    /// Registry image (over `SAMESTACK_REGISTRY_IMAGE` over `registry.image`).
    pub registry_image: Option<String>,
    /// Ingress controller image (over `SAMESTACK_INGRESS_IMAGE` over `cluster.ingress.image`).
    pub ingress_image: Option<String>,
    /// Postgres image (over `SAMESTACK_POSTGRES_IMAGE` over `database.image`).
    pub postgres_image: Option<String>,
    /// `--registry-cache DIR` (or `SAMESTACK_REGISTRY_CACHE`): the registry keeps its data in
    /// this host directory instead of a volume, checked by [`crate::registry::check_cache_dir`].
    pub registry_cache: Option<PathBuf>,
    /// The project part of built images' registry paths (over the project name). `ci` keeps
    /// the real project's name there while everything else takes the run's name: a registry
    /// cache shared by CI jobs then holds one repository per service, whose layers the next
    /// job's push finds instead of uploading again.
    pub image_project: Option<String>,
    /// `dev --sync-image`: the sync container's image (over `SAMESTACK_SYNC_IMAGE` over
    /// `dev.sync_image`).
    pub sync_image: Option<String>,
}

impl Overrides {
    /// Replaces every host port of 0 by a port the OS says is free on 127.0.0.1 now.
    pub fn pick_free_ports(&mut self) -> std::io::Result<()> {
        if self.registry_host_port == Some(0) {
            self.registry_host_port = Some(crate::ports::free_port()?);
        }
        for port in self.host_ports.values_mut().filter(|p| **p == 0) {
            *port = crate::ports::free_port()?;
        }
        Ok(())
    }

    /// Pure: makes `project` and these overrides those of a `ci` run named `name`: the project, cluster,
    /// registry and namespace names follow the run (an explicit `cluster.name` too), every host
    /// port becomes 0 — any free one, picked by [`Overrides::pick_free_ports`] as for `up` — and
    /// built images keep the real project's registry path, so a `--registry-cache` shared by runs
    /// holds one repository per service. Owner and cost-center labels keep the real project's name.
    pub fn isolate(&mut self, project: &mut Project, name: &str) {
        let cfg = &mut project.config;
        let real = cfg.name.clone();
        cfg.owner.get_or_insert_with(|| real.clone());
        cfg.cost_center.get_or_insert_with(|| real.clone());
        self.project_name = Some(name.to_string());
        if cfg.cluster.name.is_some() {
            self.cluster_name = Some(name.to_string());
        }
        if cfg.registry.enabled {
            self.registry_host_port = Some(0);
        }
        self.host_ports = cfg.cluster.ports.iter().map(|m| (m.container, 0)).collect();
        self.image_project = Some(real);
    }
}

/// Environment variable overriding the node image.
pub const NODE_IMAGE_ENV: &str = crate::cluster::NODE_IMAGE_ENV;
/// Environment variable overriding the registry image.
pub const REGISTRY_IMAGE_ENV: &str = crate::registry::IMAGE_ENV;
/// Environment variable overriding the ingress controller image.
pub const INGRESS_IMAGE_ENV: &str = crate::ingress::IMAGE_ENV;
/// Environment variable overriding the postgres image.
pub const POSTGRES_IMAGE_ENV: &str = "SAMESTACK_POSTGRES_IMAGE";
/// Environment variable overriding the sync container's image.
pub const SYNC_IMAGE_ENV: &str = crate::sync::ephemeral::IMAGE_ENV;
/// Environment variable setting how many builds run at once.
pub const BUILD_PARALLELISM_ENV: &str = "SAMESTACK_BUILD_PARALLELISM";

/// The one precedence rule: the flag, else the environment, else the project file; blank
/// values count as not given. `None`: the default applies.
pub fn pick(flag: Option<&str>, env: Option<&str>, file: Option<&str>) -> Option<String> {
    [flag, env, file].into_iter().flatten().map(str::trim).find(|v| !v.is_empty()).map(String::from)
}

/// Everything `up`, `dev` and `ci` need resolved before the pipeline runs
/// ([`crate::pipeline::converge`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The project file, with the overrides that won written into it (name, ports, images),
    /// so everything derived from it (labels, image names, templates) agrees.
    pub project: Project,
    /// The resolved profile.
    pub profile: ProfileSettings,
    /// Names, cluster, registry, ingress, builds, kubeconfig.
    pub stack: StackSettings,
    /// Images copied from the local engine into the registry and run from there.
    pub preload: Vec<String>,
    /// All image builds and pushes together.
    pub build_timeout: Duration,
    /// Each apply wave, and the ingress controller.
    pub ready_timeout: Duration,
    /// Builds running at once (at least 1).
    pub build_parallelism: usize,
    /// The postgres image, when overridden (else `database.version` decides).
    pub postgres_image: Option<String>,
    /// The image of `dev`'s sync container, for pods whose image has no `sh` or `tar`.
    pub sync_image: String,
    /// The environment secrets are read from.
    pub env: Env,
}

/// Default of `--build-timeout`.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
/// Default of `--ready-timeout`.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(300);
/// Builds running at once unless told otherwise: two overlap the scan of one with the build of
/// another without starving a 2-core machine.
pub const DEFAULT_BUILD_PARALLELISM: usize = 2;

/// Resolves the settings of `up`/`dev`/`ci`: flag ([`Overrides`]) > environment > project file
/// > default. Fails on overrides that cannot work with this project, before anything is created.
pub fn resolve_up(mut project: Project, overrides: &Overrides, env: &Env) -> Result<Settings, ResolveError> {
    let stack = resolve_stack(&mut project, overrides, env)?;
    let profile = profile::resolve(&project, overrides.profile.as_deref().unwrap_or("dev"))?;
    // `--preload a,,b` and an empty SAMESTACK_PRELOAD name nothing: drop the empty entries.
    let preload: Vec<String> =
        overrides.preload.iter().flatten().map(|i| i.trim()).filter(|i| !i.is_empty()).map(String::from).collect();
    if !preload.is_empty() && stack.registry.is_none() {
        return Err(FlagError {
            flag: "--preload".into(),
            problem: "preloading goes through the local registry, and samestack.yaml disables it".into(),
            fix: "set `registry: { enabled: true }`, or drop --preload".into(),
        }
        .into());
    }
    if overrides.registry_cache.is_some() && stack.registry.is_none() {
        return Err(FlagError {
            flag: "--registry-cache".into(),
            problem: "it keeps the local registry's data, and samestack.yaml disables the registry".into(),
            fix: "set `registry: { enabled: true }`, or drop --registry-cache (and SAMESTACK_REGISTRY_CACHE)".into(),
        }
        .into());
    }
    let parallelism = match (overrides.build_parallelism, env.get(BUILD_PARALLELISM_ENV)) {
        (Some(n), _) => n,
        (None, Some(text)) => text.parse().map_err(|_| FlagError {
            flag: BUILD_PARALLELISM_ENV.into(),
            problem: format!("`{text}` is not a number of builds"),
            fix: format!("set {BUILD_PARALLELISM_ENV} to a whole number such as 2, or unset it"),
        })?,
        (None, None) => DEFAULT_BUILD_PARALLELISM,
    };
    Ok(Settings {
        profile,
        stack,
        preload,
        build_timeout: overrides.build_timeout.unwrap_or(DEFAULT_BUILD_TIMEOUT),
        ready_timeout: overrides.ready_timeout.unwrap_or(DEFAULT_READY_TIMEOUT),
        build_parallelism: parallelism.max(1),
        postgres_image: postgres_image(&project, overrides.postgres_image.as_deref(), env),
        sync_image: pick(
            overrides.sync_image.as_deref(),
            env.get(SYNC_IMAGE_ENV),
            project.config.dev.sync_image.as_deref(),
        )
        .unwrap_or_else(|| crate::sync::ephemeral::DEFAULT_IMAGE.to_string()),
        env: env.clone(),
        project,
    })
}

/// The postgres image by the one rule (for `render` and `parity` too): flag, environment, file.
pub fn postgres_image(project: &Project, flag: Option<&str>, env: &Env) -> Option<String> {
    let file = project.config.database.as_ref().and_then(|d| d.image.as_deref());
    pick(flag, env.get(POSTGRES_IMAGE_ENV), file)
}

/// Writes the overrides that win into `project` (so the file's derived values follow them) and
/// maps it onto the specs: what `down` and `status` resolve too.
pub fn resolve_stack(project: &mut Project, overrides: &Overrides, env: &Env) -> Result<StackSettings, FlagError> {
    apply_overrides(project, overrides, env)?;
    Ok(resolve_with(project, overrides, env))
}

/// [`resolve_stack`] with only build arguments and a kubeconfig at flag level, in this
/// process's environment: for code that has no [`Env`] at hand.
pub fn resolve(project: &Project, build_args: &BTreeMap<String, String>, kubeconfig: Option<PathBuf>) -> StackSettings {
    let overrides = Overrides { build_args: build_args.clone(), kubeconfig, ..Overrides::default() };
    resolve_stack(&mut project.clone(), &overrides, &Env::from_process())
        .expect("without a project name override there is nothing to reject")
}

/// The flag > environment > file rule applied to the project file's values (pure).
fn apply_overrides(project: &mut Project, overrides: &Overrides, env: &Env) -> Result<(), FlagError> {
    let cfg = &mut project.config;
    if let Some(name) = &overrides.project_name {
        if !config::is_dns_label(name) {
            return Err(FlagError {
                flag: "project name".into(),
                problem: format!("`{name}` is not a valid Kubernetes name"),
                fix: "use lowercase letters, digits and '-', at most 63 characters".into(),
            });
        }
        cfg.name = name.clone();
    }
    if let Some(cluster) = &overrides.cluster_name {
        cfg.cluster.name = Some(cluster.clone());
    }
    if let Some(port) = overrides.registry_host_port {
        cfg.registry.host_port = port;
    }
    for mapping in &mut cfg.cluster.ports {
        if let Some(host) = overrides.host_ports.get(&mapping.container) {
            mapping.host = *host;
        }
    }
    cfg.cluster.node_image =
        pick(overrides.node_image.as_deref(), env.get(NODE_IMAGE_ENV), cfg.cluster.node_image.as_deref());
    cfg.registry.image =
        pick(overrides.registry_image.as_deref(), env.get(REGISTRY_IMAGE_ENV), cfg.registry.image.as_deref());
    cfg.cluster.ingress.image =
        pick(overrides.ingress_image.as_deref(), env.get(INGRESS_IMAGE_ENV), cfg.cluster.ingress.image.as_deref());
    if let Some(database) = &mut cfg.database {
        database.image =
            pick(overrides.postgres_image.as_deref(), env.get(POSTGRES_IMAGE_ENV), database.image.as_deref());
    }
    Ok(())
}

/// Why [`resolve_up`] failed: a profile problem or a flag that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Profile(#[from] profile::Error),
    #[error(transparent)]
    Flag(#[from] FlagError),
}

impl crate::error::Classify for ResolveError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ResolveError::Profile(e) => crate::error::Classify::kind(e),
            ResolveError::Flag(e) => crate::error::Classify::kind(e),
        }
    }
}
crate::classify!(ResolveError);

/// Port the registry listens on inside the Docker network (the `registry:2` contract).
const REGISTRY_PORT_IN_NETWORK: u16 = 5000;

/// Everything `up`/`down`/`status` need to know about where the stack runs.
#[derive(Debug, Clone)]
pub struct StackSettings {
    pub project: String,
    /// The namespace the templates render into (the project name).
    pub namespace: String,
    pub cluster: ClusterSpec,
    /// `None` when the project disables the local registry.
    pub registry: Option<RegistrySpec>,
    /// The ingress controller to install; `None` when the project disables it.
    pub ingress: Option<IngressSpec>,
    /// One per service that has a `build:` section, in service-name order.
    pub builds: Vec<BuildSpec>,
    /// The user's kubeconfig to merge the cluster's context into.
    pub kubeconfig: PathBuf,
    /// samestack's own state (`$XDG_STATE_HOME/samestack`, `~/.local/state/samestack`): the
    /// development CA lives in `ca/` there.
    pub state_dir: PathBuf,
}

/// `HOME`, or the working directory when it is unset.
fn home(env: &Env) -> PathBuf {
    env.get("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

/// The registry container of a project: kept across `down` (it is the image cache) unless `--purge`.
pub fn registry_container_name(project: &str) -> String {
    format!("samestack-{project}-registry")
}

/// Maps the project file plus flags onto the domain specs.
/// `build_args` (from `--build-arg`) are added to every service's build arguments and win over
/// the project file's, so offline and CI runs can swap base images without editing it.
fn resolve_with(project: &Project, overrides: &Overrides, env: &Env) -> StackSettings {
    let (build_args, kubeconfig) = (&overrides.build_args, overrides.kubeconfig.as_deref());
    let cfg = &project.config;
    let name = cfg.name.clone();
    let registry = cfg.registry.enabled.then(|| RegistrySpec {
        name: registry_container_name(&name),
        host_port: cfg.registry.host_port,
        image: cfg.registry.image.clone(),
        project: name.clone(),
        cache: overrides.registry_cache.clone(),
    });
    let image_project = overrides.image_project.as_deref().unwrap_or(&name);
    let explicit_kubeconfig = kubeconfig.map(PathBuf::from);
    let provider = match cfg.cluster.provider {
        config::Provider::Auto => ProviderChoice::Auto,
        config::Provider::Docker => ProviderChoice::Docker,
        config::Provider::Kind => ProviderChoice::Kind,
        config::Provider::K3d => ProviderChoice::K3d,
        config::Provider::Existing => {
            ProviderChoice::Existing { context: cfg.cluster.context.clone(), kubeconfig: explicit_kubeconfig }
        }
    };
    let cluster = ClusterSpec {
        project: name.clone(),
        name: cfg.cluster.name.clone().unwrap_or_else(|| name.clone()),
        provider,
        servers: cfg.cluster.servers,
        agents: cfg.cluster.agents,
        kubernetes_version: Some(cfg.cluster.kubernetes_version.clone()),
        node_image: cfg.cluster.node_image.clone(),
        ports: cfg
            .cluster
            .ports
            .iter()
            .map(|p| PortMapping {
                host_ip: None,
                host_port: p.host,
                container_port: p.container,
                protocol: "tcp".into(),
            })
            .collect(),
        registry: registry.as_ref().map(|r| RegistryEndpoint {
            container_name: r.name.clone(),
            host_port: r.host_port,
            port_in_network: REGISTRY_PORT_IN_NETWORK,
        }),
    };
    let builds = cfg
        .services
        .iter()
        .filter_map(|(service, svc)| {
            let build = svc.build.as_ref()?;
            let mut args = build.args.clone();
            args.extend(build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(BuildSpec {
                service: service.clone(),
                context: project.path(&build.context),
                dockerfile: Some(PathBuf::from(&build.dockerfile)),
                build_args: args,
                repository: image_repository(project, image_project, service),
            })
        })
        .collect();
    StackSettings {
        project: name.clone(),
        namespace: name,
        cluster,
        registry,
        ingress: cfg.cluster.ingress.enabled.then(|| IngressSpec { image: cfg.cluster.ingress.image.clone() }),
        builds,
        kubeconfig: crate::cluster::kubeconfig::user_path(kubeconfig, env.raw("KUBECONFIG"), &home(env)),
        state_dir: crate::cluster::kubeconfig::state_dir_for(env.get("XDG_STATE_HOME"), &home(env)),
    }
}

/// Where a built service's image goes: `localhost:<registry port>/<image project>/<service>`
/// (the nodes resolve `localhost:<port>` to the registry container through the wired mirror),
/// or a local-only `samestack/<image project>/<service>` when the registry is disabled. The
/// image project is the project's name, except in `ci` (see [`Overrides::image_project`]).
pub fn image_repository(project: &Project, image_project: &str, service: &str) -> String {
    let cfg = &project.config;
    if cfg.registry.enabled {
        format!("localhost:{}/{image_project}/{service}", cfg.registry.host_port)
    } else {
        format!("samestack/{image_project}/{service}")
    }
}

/// A command-line flag that cannot work as given.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {problem}\n  fix: {fix}")]
pub struct FlagError {
    pub flag: String,
    pub problem: String,
    pub fix: String,
}

impl crate::error::Classify for FlagError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::User
    }
}
crate::classify!(FlagError);

/// Parses `KEY=VALUE` build-argument flags.
pub fn parse_build_args(flags: &[String]) -> Result<BTreeMap<String, String>, FlagError> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(FlagError {
                flag: format!("--build-arg {f}"),
                problem: "expected KEY=VALUE".into(),
                fix: "e.g. --build-arg BASE_IMAGE=python:3.12-slim".into(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let (config, locations) = config::parse_str("samestack.yaml", yaml.as_bytes()).unwrap();
        Project { file: "proj/samestack.yaml".into(), dir: "proj".into(), config, locations }
    }

    const RUN_YAML: &str = "name: shop\ncluster:\n  ports: [{host: 8080, container: 80}, {host: 8443, container: 443}]\nregistry:\n  host_port: 5005\nservices:\n  api:\n    build: { context: ./api }\n    ports: [{ port: 80 }]\n";

    /// A project in a directory that exists (profiles are looked up in it), kept for the
    /// whole test run: the directory is the same for every call.
    fn project_on_disk(yaml: &str) -> Project {
        static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap()).path().to_path_buf();
        let (config, locations) = config::parse_str("samestack.yaml", yaml.as_bytes()).unwrap();
        Project { file: dir.join("samestack.yaml"), dir, config, locations }
    }

    struct IsolatedRun {
        project: Project,
        stack: StackSettings,
    }

    fn isolated(yaml: &str, name: &str) -> (IsolatedRun, Overrides) {
        let mut project = project(yaml);
        let mut o = Overrides { kubeconfig: Some("/run/kubeconfig".into()), ..Overrides::default() };
        o.isolate(&mut project, name);
        let picked = o.clone();
        o.pick_free_ports().unwrap();
        let env = Env::default();
        let stack = resolve_stack(&mut project, &o, &env).unwrap();
        (IsolatedRun { project, stack }, picked)
    }

    #[test]
    fn an_isolated_project_has_the_run_name_and_fresh_ports_and_keeps_its_owner() {
        let (s, picked) = isolated(RUN_YAML, "shop-ci-a1b2c3");
        assert_eq!(picked.registry_host_port, Some(0), "any free port, as `up --registry-port 0`");
        assert_eq!(picked.host_ports, BTreeMap::from([(80, 0), (443, 0)]));
        let c = &s.project.config;
        assert_eq!(c.name, "shop-ci-a1b2c3");
        let ports: Vec<u16> =
            std::iter::once(c.registry.host_port).chain(c.cluster.ports.iter().map(|m| m.host)).collect();
        assert!(ports.iter().all(|p| ![0, 5005, 8080, 8443].contains(p)), "{ports:?}");
        assert_eq!(c.cluster.ports.iter().map(|m| m.container).collect::<Vec<_>>(), [80, 443]);
        assert_eq!(c.owner.as_deref(), Some("shop"));
        assert_eq!(c.cost_center.as_deref(), Some("shop"));
        // Everything downstream follows the name: cluster, registry container, namespace...
        let st = &s.stack;
        assert_eq!(st.cluster.name, "shop-ci-a1b2c3");
        assert_eq!(st.namespace, "shop-ci-a1b2c3");
        assert_eq!(st.registry.as_ref().unwrap().name, "samestack-shop-ci-a1b2c3-registry");
        assert_eq!(st.kubeconfig, PathBuf::from("/run/kubeconfig"));
        // ...except the images' registry path, the same for every run (a shared cache holds it once).
        assert_eq!(st.builds[0].repository, format!("localhost:{}/shop/api", c.registry.host_port));
    }

    #[test]
    fn an_explicit_cluster_name_follows_the_run_and_a_disabled_registry_takes_no_port() {
        let yaml = RUN_YAML
            .replace("cluster:\n", "cluster:\n  name: shared\n")
            .replace("  host_port: 5005", "  enabled: false");
        let (s, picked) = isolated(&yaml, "shop-ci-1");
        assert_eq!(s.project.config.cluster.name.as_deref(), Some("shop-ci-1"));
        assert_eq!(s.stack.cluster.name, "shop-ci-1");
        assert_eq!(picked.registry_host_port, None, "only the two cluster port mappings");
        assert!(s.stack.registry.is_none());
    }

    /// The mapping alone, in an empty environment.
    fn resolve(project: &Project, build_args: &BTreeMap<String, String>) -> StackSettings {
        let overrides = Overrides { build_args: build_args.clone(), ..Overrides::default() };
        resolve_stack(&mut project.clone(), &overrides, &Env::default()).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    /// One override through the whole rule: default, file, environment, flag, each winning
    /// over the ones before it; blank values count as not given.
    fn check_precedence(
        what: &str,
        file: impl Fn(&mut config::Config, &str),
        env_var: &str,
        flag: impl Fn(&mut Overrides, &str),
        read: impl Fn(&Settings) -> Option<String>,
        default: Option<&str>,
    ) {
        let up = |with_file: bool, e: &[(&str, &str)], o: &Overrides| {
            let mut p = project_on_disk(YAML_DB);
            if with_file {
                file(&mut p.config, "file:1");
            }
            read(&resolve_up(p, o, &env(e)).unwrap())
        };
        let none = Overrides::default();
        let mut flagged = Overrides::default();
        flag(&mut flagged, "flag:1");
        assert_eq!(up(false, &[], &none).as_deref(), default, "{what}: default");
        assert_eq!(up(true, &[], &none).as_deref(), Some("file:1"), "{what}: file over default");
        assert_eq!(up(true, &[(env_var, "env:1")], &none).as_deref(), Some("env:1"), "{what}: env over file");
        assert_eq!(up(true, &[(env_var, " ")], &none).as_deref(), Some("file:1"), "{what}: blank env is unset");
        assert_eq!(up(true, &[(env_var, "env:1")], &flagged).as_deref(), Some("flag:1"), "{what}: flag over env");
        assert_eq!(up(false, &[(env_var, "env:1")], &none).as_deref(), Some("env:1"), "{what}: env over default");
    }

    /// A project with a database, a registry and the ingress controller.
    const YAML_DB: &str = "name: shop\ncluster:\n  ports: [{host: 8080, container: 80}]\nservices:\n  web:\n    image: nginx:1.27.2\n    ports: [{ port: 80 }]\ndatabase:\n  engine: postgres\n  version: \"15\"\n  name: app\n  user: app\n  password_secret: pw\nsecrets:\n  pw: { env: SHOP_PW }\n";

    #[test]
    fn every_image_override_is_flag_then_environment_then_file_then_default() {
        let version = project_on_disk(YAML_DB).config.cluster.kubernetes_version;
        let node_default = format!("kindest/node:v{}", version.trim_start_matches('v'));
        check_precedence(
            "node image",
            |c, v| c.cluster.node_image = Some(v.into()),
            NODE_IMAGE_ENV,
            |o, v| o.node_image = Some(v.into()),
            |s| Some(s.stack.cluster.node_image()),
            Some(&node_default),
        );
        check_precedence(
            "registry image",
            |c, v| c.registry.image = Some(v.into()),
            REGISTRY_IMAGE_ENV,
            |o, v| o.registry_image = Some(v.into()),
            |s| s.stack.registry.as_ref().map(|r| r.resolved_image()),
            Some(crate::registry::DEFAULT_IMAGE),
        );
        check_precedence(
            "ingress image",
            |c, v| c.cluster.ingress.image = Some(v.into()),
            INGRESS_IMAGE_ENV,
            |o, v| o.ingress_image = Some(v.into()),
            |s| s.stack.ingress.as_ref().map(|i| i.image()),
            Some(crate::ingress::DEFAULT_IMAGE),
        );
        check_precedence(
            "postgres image",
            |c, v| c.database.as_mut().unwrap().image = Some(v.into()),
            POSTGRES_IMAGE_ENV,
            |o, v| o.postgres_image = Some(v.into()),
            |s| s.postgres_image.clone(),
            None,
        );
        check_precedence(
            "sync image",
            |c, v| c.dev.sync_image = Some(v.into()),
            SYNC_IMAGE_ENV,
            |o, v| o.sync_image = Some(v.into()),
            |s| Some(s.sync_image.clone()),
            Some(crate::sync::ephemeral::DEFAULT_IMAGE),
        );
    }

    #[test]
    fn kubeconfig_is_the_flag_then_the_first_kubeconfig_entry_then_home() {
        let kubeconfig = |flag: Option<&str>, e: &[(&str, &str)]| {
            let o = Overrides { kubeconfig: flag.map(PathBuf::from), ..Overrides::default() };
            resolve_up(project_on_disk(YAML), &o, &env(e)).unwrap().stack.kubeconfig
        };
        assert_eq!(kubeconfig(None, &[("HOME", "/h")]), PathBuf::from("/h/.kube/config"));
        assert_eq!(kubeconfig(None, &[("HOME", "/h"), ("KUBECONFIG", "/a:/b")]), PathBuf::from("/a"));
        assert_eq!(kubeconfig(Some("/f"), &[("KUBECONFIG", "/a")]), PathBuf::from("/f"));
        let state = |e: &[(&str, &str)]| {
            resolve_up(project_on_disk(YAML), &Overrides::default(), &env(e)).unwrap().stack.state_dir
        };
        assert_eq!(state(&[("HOME", "/h")]), PathBuf::from("/h/.local/state/samestack"));
        assert_eq!(state(&[("HOME", "/h"), ("XDG_STATE_HOME", "/x")]), PathBuf::from("/x/samestack"));
    }

    #[test]
    fn timeouts_preload_and_parallelism_are_flag_then_environment_then_default() {
        let none = Overrides::default();
        let s = resolve_up(project_on_disk(YAML), &none, &Env::default()).unwrap();
        assert_eq!((s.build_timeout, s.ready_timeout), (DEFAULT_BUILD_TIMEOUT, DEFAULT_READY_TIMEOUT));
        assert_eq!(s.build_parallelism, DEFAULT_BUILD_PARALLELISM);
        assert_eq!(s.profile.name, "dev");
        let s = resolve_up(project_on_disk(YAML), &none, &env(&[(BUILD_PARALLELISM_ENV, "4")])).unwrap();
        assert_eq!(s.build_parallelism, 4);
        let flags = Overrides {
            build_parallelism: Some(0),
            ready_timeout: Some(Duration::from_secs(9)),
            preload: Some(vec!["a:1".into(), " ".into(), "b:2".into()]),
            profile: Some("prod".into()),
            ..Overrides::default()
        };
        let s = resolve_up(project_on_disk(YAML), &flags, &env(&[(BUILD_PARALLELISM_ENV, "4")])).unwrap();
        assert_eq!(s.build_parallelism, 1, "the flag wins, and at least one build runs");
        assert_eq!(s.ready_timeout, Duration::from_secs(9));
        assert_eq!(s.preload, ["a:1", "b:2"], "empty entries name nothing");
        assert_eq!(s.profile.name, "prod");
        let err = resolve_up(project_on_disk(YAML), &none, &env(&[(BUILD_PARALLELISM_ENV, "many")])).unwrap_err();
        assert!(err.to_string().contains(BUILD_PARALLELISM_ENV), "{err}");
        assert_eq!(crate::error::Classify::kind(&err), crate::error::ErrorKind::User);
    }

    #[test]
    fn names_and_ports_follow_the_overrides_everywhere_they_are_used() {
        let mut o = Overrides {
            project_name: Some("ci-7".into()),
            cluster_name: Some("ci-7-cluster".into()),
            registry_host_port: Some(0),
            host_ports: BTreeMap::from([(80, 0)]),
            ..Overrides::default()
        };
        o.pick_free_ports().unwrap();
        let registry_port = o.registry_host_port.unwrap();
        let ingress_port = o.host_ports[&80];
        assert!(registry_port != 0 && ingress_port != 0, "free ports were picked");
        let s = resolve_up(project_on_disk(YAML), &o, &Env::default()).unwrap();
        assert_eq!((s.stack.project.as_str(), s.stack.namespace.as_str()), ("ci-7", "ci-7"));
        assert_eq!(s.project.config.name, "ci-7", "the templates see the new name too");
        assert_eq!(s.stack.cluster.name, "ci-7-cluster");
        assert_eq!(s.stack.registry.as_ref().unwrap().name, registry_container_name("ci-7"));
        assert_eq!(s.stack.registry.as_ref().unwrap().host_port, registry_port);
        assert_eq!(s.stack.cluster.registry.as_ref().unwrap().host_port, registry_port);
        assert_eq!(s.stack.builds[0].repository, format!("localhost:{registry_port}/ci-7/api"));
        assert_eq!(s.stack.cluster.ports[0].host_port, ingress_port);
        let bad = Overrides { project_name: Some("Not_A_Name".into()), ..Overrides::default() };
        assert!(resolve_up(project_on_disk(YAML), &bad, &Env::default()).is_err());
    }

    const YAML: &str = "name: shop\ncluster:\n  agents: 1\n  ports: [{host: 8080, container: 80}]\nregistry:\n  host_port: 5005\nservices:\n  api:\n    build: { context: ./api, args: { A: '1', BASE_IMAGE: upstream } }\n    ports: [{ port: 8080 }]\n  web:\n    image: nginx:1.27\n    ports: [{ port: 80 }]\n";

    #[test]
    fn maps_services_with_builds_onto_build_specs_in_the_project_registry() {
        let p = project(YAML);
        let flags = BTreeMap::from([("BASE_IMAGE".to_string(), "local/python:1".to_string())]);
        let s = resolve(&p, &flags);
        assert_eq!(s.builds.len(), 1, "only services with a build section are built");
        let b = &s.builds[0];
        assert_eq!(b.service, "api");
        assert_eq!(b.context, PathBuf::from("proj/./api"));
        assert_eq!(b.repository, "localhost:5005/shop/api");
        assert_eq!(b.build_args["A"], "1");
        assert_eq!(b.build_args["BASE_IMAGE"], "local/python:1", "flags win over the project file");
    }

    #[test]
    fn cluster_and_registry_specs_agree_on_the_registry() {
        let s = resolve(&project(YAML), &BTreeMap::new());
        let reg = s.registry.as_ref().unwrap();
        assert_eq!(reg.name, "samestack-shop-registry");
        assert_eq!(reg.host_port, 5005);
        let endpoint = s.cluster.registry.as_ref().unwrap();
        assert_eq!(endpoint.container_name, reg.name);
        assert_eq!(endpoint.host(), "localhost:5005");
        assert_eq!(s.cluster.name, "shop");
        assert_eq!(s.cluster.agents, 1);
        assert_eq!(s.cluster.ports[0].host_port, 8080);
        assert_eq!(s.namespace, "shop");
    }

    #[test]
    fn a_disabled_registry_builds_local_only_images() {
        let yaml = YAML.replace("registry:\n  host_port: 5005", "registry:\n  enabled: false");
        let s = resolve(&project(&yaml), &BTreeMap::new());
        assert!(s.registry.is_none() && s.cluster.registry.is_none());
        assert_eq!(s.builds[0].repository, "samestack/shop/api");
    }

    #[test]
    fn build_arg_flags_need_a_key_and_an_equals_sign() {
        assert_eq!(parse_build_args(&["A=b=c".into()]).unwrap()["A"], "b=c");
        assert!(parse_build_args(&["novalue".into()]).unwrap_err().to_string().contains("KEY=VALUE"));
        assert!(parse_build_args(&["=x".into()]).is_err());
    }
}
