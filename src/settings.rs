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
    /// This process's environment (variables that are not UTF-8 are left out).
    pub fn from_process() -> Env {
        Env(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect())
    }

    /// A variable's value as set (possibly empty).
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
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
/// not given, so the environment, the project file or the default decide. Fields are added
/// over time: build it with `..Overrides::default()`.
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
    /// Builds running at once.
    pub build_parallelism: Option<usize>,
    /// `--kubeconfig`: the file the cluster's context is merged into.
    pub kubeconfig: Option<PathBuf>,
}

/// Everything `up`, `dev` and `ci` need resolved before the pipeline runs
/// ([`crate::pipeline::converge`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The loaded project file.
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
    /// The environment secrets and image overrides are read from.
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
/// > default. Fails on flags that cannot work with this project (before anything is created).
pub fn resolve_up(project: Project, overrides: &Overrides, env: &Env) -> Result<Settings, ResolveError> {
    let profile = profile::resolve(&project, overrides.profile.as_deref().unwrap_or("dev"))?;
    let stack = resolve(&project, &overrides.build_args, overrides.kubeconfig.clone());
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
    Ok(Settings {
        profile,
        stack,
        preload,
        build_timeout: overrides.build_timeout.unwrap_or(DEFAULT_BUILD_TIMEOUT),
        ready_timeout: overrides.ready_timeout.unwrap_or(DEFAULT_READY_TIMEOUT),
        build_parallelism: overrides.build_parallelism.unwrap_or(DEFAULT_BUILD_PARALLELISM).max(1),
        env: env.clone(),
        project,
    })
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
}

/// The registry container of a project: kept across `down` (it is the image cache) unless `--purge`.
pub fn registry_container_name(project: &str) -> String {
    format!("samestack-{project}-registry")
}

/// Maps the project file plus flags onto the domain specs.
/// `build_args` (from `--build-arg`) are added to every service's build arguments and win over
/// the project file's, so offline and CI runs can swap base images without editing it.
pub fn resolve(project: &Project, build_args: &BTreeMap<String, String>, kubeconfig: Option<PathBuf>) -> StackSettings {
    let cfg = &project.config;
    let name = cfg.name.clone();
    let registry = cfg.registry.enabled.then(|| RegistrySpec {
        name: registry_container_name(&name),
        host_port: cfg.registry.host_port,
        image: cfg.registry.image.clone(),
        project: name.clone(),
    });
    let explicit_kubeconfig = kubeconfig.clone();
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
                repository: image_repository(project, service),
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
        kubeconfig: crate::cluster::kubeconfig::default_user_path(kubeconfig.as_deref()),
    }
}

/// Where a built service's image goes: `localhost:<registry port>/<project>/<service>` (the
/// nodes resolve `localhost:<port>` to the registry container through the wired mirror), or
/// a local-only `samestack/<project>/<service>` when the registry is disabled.
pub fn image_repository(project: &Project, service: &str) -> String {
    let cfg = &project.config;
    if cfg.registry.enabled {
        format!("localhost:{}/{}/{service}", cfg.registry.host_port, cfg.name)
    } else {
        format!("samestack/{}/{service}", cfg.name)
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

    const YAML: &str = "name: shop\ncluster:\n  agents: 1\n  ports: [{host: 8080, container: 80}]\nregistry:\n  host_port: 5005\nservices:\n  api:\n    build: { context: ./api, args: { A: '1', BASE_IMAGE: upstream } }\n    ports: [{ port: 8080 }]\n  web:\n    image: nginx:1.27\n    ports: [{ port: 80 }]\n";

    #[test]
    fn maps_services_with_builds_onto_build_specs_in_the_project_registry() {
        let p = project(YAML);
        let flags = BTreeMap::from([("BASE_IMAGE".to_string(), "local/python:1".to_string())]);
        let s = resolve(&p, &flags, None);
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
        let s = resolve(&project(YAML), &BTreeMap::new(), None);
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
        let s = resolve(&project(&yaml), &BTreeMap::new(), None);
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
