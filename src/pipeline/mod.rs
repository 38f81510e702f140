//! The pipeline `up`, `dev` and `ci` share (DESIGN.md): [`converge`] runs preflight, registry,
//! cluster, images, preload, ingress, render, apply and ready, in that order, and returns the
//! [`Stack`] it leaves running, which `dev` and `ci` keep using: [`Stack::rebuild`] one
//! service, [`Stack::render`] again with the changed images, [`Stack::apply_service`] only its
//! objects and wait for its rollout.
//!
//! Every step is idempotent, so a run stopped anywhere (a signal drops the future) converges
//! on the next run. Nothing is created before the manifests have rendered and the ports are
//! known to be free: a template, profile or secret mistake changes nothing.

pub mod select;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ::kube::api::Api;
use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::build::{self, BuildAction, BuildOptions, BuildOutcome};
use crate::cluster::{self, AnyProvider, Cluster, Provider as _, kubeconfig};
use crate::docker::{self, LABEL_PROJECT};
use crate::ingress::{self, IngressSpec};
use crate::kube::{self, ApplyOptions, ApplyReport, KubeClient};
use crate::preflight::{self, WantedPort};
use crate::registry::{self, Registry};
use crate::render::{self, RenderOptions};
use crate::settings::{Settings, StackSettings};
use crate::tls;
use crate::ui::{Printer, Steps};

/// What [`converge`] leaves running, and what later steps (`dev`'s reloads, `ci`'s command and
/// teardown, `up`'s report) need from it.
pub struct Stack {
    /// The Docker engine.
    pub engine: bollard::Docker,
    /// The local registry (port, host address); `None` when the project disables it.
    pub registry: Option<Registry>,
    /// The provider the cluster runs on.
    pub provider: AnyProvider,
    /// The cluster: provider name, nodes, whether it was created or started again (restart).
    pub cluster: Cluster,
    /// The kubeconfig context of the cluster (installed in the settings' kubeconfig file when
    /// samestack owns the cluster's kubeconfig).
    pub context: String,
    /// The one Kubernetes client every step uses.
    pub client: KubeClient,
    /// The build outcome of every service with a `build:` section, in service-name order.
    pub builds: Vec<BuildOutcome>,
    /// Service → pinned image reference (`repository@sha256:...`), what the manifests run.
    pub images: BTreeMap<String, String>,
    /// Preloaded image → its reference in the local registry.
    pub preloaded: BTreeMap<String, String>,
    /// What the ingress step did (`None` when the project disables the ingress controller).
    pub ingress: Option<String>,
    /// The development CA's certificate, when Ingress TLS Secrets were issued from it.
    pub ca: Option<PathBuf>,
    /// The TLS Secrets issued from the development CA for the Ingresses (part of `manifests`).
    pub tls_secrets: Vec<Value>,
    /// The manifests as rendered and applied (images replaced, TLS Secrets added).
    pub manifests: Vec<Value>,
    /// What the apply did, wave by wave.
    pub applied: ApplyReport,
    /// How long each step took, in order.
    pub timings: Vec<(String, Duration)>,
}

/// Runs the pipeline for `settings` and returns the running stack. Prints one line per step
/// through `printer`. Cancel it by dropping the future (see [`crate::cancel`]): every step is
/// idempotent.
pub async fn converge(settings: &Settings, printer: &Printer) -> anyhow::Result<Stack> {
    converge_with(settings, printer, &mut Steps::new(*printer)).await
}

/// [`converge`], recording each step in `steps`, which the caller keeps also when a step
/// fails or the future is dropped (`ci`'s step log names the step that failed, with timings).
pub async fn converge_with(settings: &Settings, printer: &Printer, steps: &mut Steps) -> anyhow::Result<Stack> {
    let stack = &settings.stack;
    // All or nothing: a template, profile or secret problem stops `up` before anything exists.
    render_manifests(settings, BTreeMap::new())?;

    let step = steps.start("preflight");
    let engine = docker::connect().await?;
    preflight::check_ports(&engine, &stack.project, &stack.cluster.name, &wanted_ports(stack)).await?;
    build::require_local_images(&engine, &settings.preload).await?;
    steps.finish(step, "Docker answers; host ports free");

    let mut registry = None;
    if let Some(spec) = &stack.registry {
        let step = steps.start("registry");
        let reg = registry::ensure(&engine, spec).await?;
        let data = match &spec.cache {
            Some(dir) => format!("; data in {}", dir.display()),
            None => String::new(),
        };
        steps.finish(step, &format!("{} {} at {}{data}", action_word(reg.action), reg.name, reg.host_address()));
        registry = Some(reg);
    }
    let registry_port = registry.as_ref().map(|r| r.host_port);

    let step = steps.start("cluster");
    let provider = cluster::select(&stack.cluster).await?;
    let cluster = provider.ensure(&stack.cluster).await?;
    let context = stack.cluster.context_name();
    if let Some(yaml) = cluster.kubeconfig_yaml() {
        kubeconfig::install(&stack.cluster.name, &context, yaml, &stack.kubeconfig)?;
    }
    let how = match (cluster.created, cluster.started()) {
        (true, _) => "created",
        (false, true) => "started",
        (false, false) => "reused",
    };
    steps.finish(
        step,
        &format!("{how} {} ({}, {} node(s)); context {context}", cluster.name, cluster.provider, cluster.nodes.len()),
    );

    let step = steps.start("images");
    let builds = build_images(&engine, settings, printer, &stack.builds, registry_port).await?;
    steps.finish(step, &images_detail(&builds));
    let images = builds.iter().map(|o| (o.service.clone(), o.pinned_reference())).collect();
    let preloaded = match registry_port {
        Some(port) if !settings.preload.is_empty() => {
            let step = steps.start("preload");
            let preloaded = build::preload(&engine, &settings.preload, port).await?;
            steps.finish(step, &format!("{} image(s) into the local registry", preloaded.len()));
            preloaded
        }
        _ => BTreeMap::new(),
    };

    let client = KubeClient::for_access(&cluster.access).await?;
    let mut ingress = None;
    if let Some(spec) = &stack.ingress {
        let step = steps.start("ingress");
        let outcome = match ingress::installed_by_samestack(cluster.provider) {
            Ok(()) => install_ingress(&client, spec, &cluster, &preloaded, settings.ready_timeout).await?,
            Err(elsewhere) => elsewhere.to_string(),
        };
        steps.finish(step, &outcome);
        ingress = Some(outcome);
    }

    let step = steps.start("render");
    let mut manifests = render_manifests(settings, images)?;
    render::replace_images(&mut manifests, &preloaded);
    let (ca, tls_secrets) = if serves_ingress(stack, &cluster) {
        issue_tls_secrets(&client, &manifests, &stack.namespace, &stack.state_dir.join("ca")).await?
    } else {
        (None, Vec::new())
    };
    manifests.extend(tls_secrets.iter().cloned());
    let certificates = match &ca {
        Some(ca) => format!("; Ingress TLS from the development CA {}", ca.display()),
        None => String::new(),
    };
    steps.finish(step, &format!("{} resources ({} profile){certificates}", manifests.len(), settings.profile.name));

    let step = steps.start("apply");
    let options = apply_options(settings, &cluster, true);
    let applied = kube::apply_waves(&client, &stack.project, &manifests, &options).await?;
    let routes =
        if serves_ingress(stack, &cluster) { ingress::routes(&manifests, &stack.namespace) } else { Vec::new() };
    ingress::wait_routed(&client, &routes, settings.ready_timeout).await?;
    let routed = match routes.len() {
        0 => String::new(),
        n => format!(", {n} Ingress path(s) routed"),
    };
    steps.finish(step, &format!("{} in {} waves, all ready{routed}", applied.summary(), applied.waves.len()));

    Ok(Stack {
        engine,
        registry,
        provider,
        cluster,
        context,
        client,
        images: builds.iter().map(|o| (o.service.clone(), o.pinned_reference())).collect(),
        builds,
        preloaded,
        ingress,
        ca,
        tls_secrets,
        manifests,
        applied,
        timings: steps.timings().to_vec(),
    })
}

impl Stack {
    /// Builds `service`'s image again and pushes it, skipped when its context digest is
    /// unchanged (then the outcome says [`BuildAction::Skipped`]); the image map follows.
    /// Fails for a service without a `build:` section.
    pub async fn rebuild(
        &mut self,
        settings: &Settings,
        printer: &Printer,
        service: &str,
    ) -> anyhow::Result<BuildOutcome> {
        let spec =
            settings.stack.builds.iter().find(|b| b.service == service).with_context(|| {
                format!("service `{service}` has no `build:` section, so there is nothing to rebuild")
            })?;
        let port = self.registry.as_ref().map(|r| r.host_port);
        let outcome = build_images(&self.engine, settings, printer, std::slice::from_ref(spec), port)
            .await?
            .pop()
            .context("a build of one service returned no outcome")?;
        self.images.insert(outcome.service.clone(), outcome.pinned_reference());
        match self.builds.iter_mut().find(|b| b.service == outcome.service) {
            Some(old) => *old = outcome.clone(),
            None => self.builds.push(outcome.clone()),
        }
        Ok(outcome)
    }

    /// Renders the manifests again with the current image map, as [`converge`] applied them:
    /// preloaded images replaced, and the Ingress TLS Secrets kept (they are re-issued only by
    /// `up`). Pure apart from reading secret values; nothing is applied.
    pub fn render(&self, settings: &Settings) -> anyhow::Result<Vec<Value>> {
        let mut manifests = render_manifests(settings, self.images.clone())?;
        render::replace_images(&mut manifests, &self.preloaded);
        manifests.extend(self.tls_secrets.iter().cloned());
        Ok(manifests)
    }

    /// Applies only `service`'s objects out of `manifests` (see [`select::objects_of`]) and
    /// waits for its rollout, with the same readiness rules and diagnosis as `up`. Prunes
    /// nothing. The stack's manifests take the new versions of those objects.
    pub async fn apply_service(
        &mut self,
        settings: &Settings,
        manifests: &[Value],
        service: &str,
    ) -> anyhow::Result<ApplyReport> {
        let objects = select::objects_of(manifests, service);
        if objects.is_empty() {
            anyhow::bail!("the manifests contain no object of service `{service}`");
        }
        let options = apply_options(settings, &self.cluster, false);
        let report = kube::apply_waves(&self.client, &settings.stack.project, &objects, &options).await?;
        self.manifests.retain(|m| !select::belongs_to(m, service));
        self.manifests.extend(objects);
        Ok(report)
    }

    /// Total time of the steps so far.
    pub fn total_time(&self) -> Duration {
        self.timings.iter().map(|(_, d)| *d).sum()
    }
}

/// Builds `specs` within the settings' build timeout, with the settings' parallelism, labelled
/// with the project, drawing through `printer`.
async fn build_images(
    engine: &bollard::Docker,
    settings: &Settings,
    printer: &Printer,
    specs: &[build::BuildSpec],
    registry_port: Option<u16>,
) -> anyhow::Result<Vec<BuildOutcome>> {
    let options = BuildOptions {
        registry_port,
        parallelism: settings.build_parallelism,
        labels: BTreeMap::from([(LABEL_PROJECT.to_string(), settings.stack.project.clone())]),
        printer: *printer,
        ..BuildOptions::default()
    };
    let timeout = settings.build_timeout;
    let timed_out =
        || anyhow::anyhow!("image builds did not finish within {}s\n  fix: raise --build-timeout", timeout.as_secs());
    let built =
        tokio::time::timeout(timeout, build::build_all(engine, specs, &options)).await.map_err(|_| timed_out())?;
    match (built, &settings.stack.registry) {
        // The registry stopped since the registry step (a `docker stop`, an engine restart):
        // start it again, once, and build on.
        (Err(build::Error::RegistryUnreachable { .. }), Some(spec)) => {
            let reg = registry::ensure(engine, spec).await?;
            tracing::warn!(registry = reg.name, "the registry stopped answering; {} it", action_word(reg.action));
            Ok(tokio::time::timeout(timeout, build::build_all(engine, specs, &options))
                .await
                .map_err(|_| timed_out())??)
        }
        (built, _) => built.map_err(Into::into),
    }
}

fn apply_options(settings: &Settings, cluster: &Cluster, prune: bool) -> ApplyOptions {
    ApplyOptions {
        wave_timeout: settings.ready_timeout,
        prune,
        wait: true,
        default_namespace: settings.stack.namespace.clone(),
        restart: cluster.restart.clone(),
    }
}

fn serves_ingress(stack: &StackSettings, cluster: &Cluster) -> bool {
    stack.ingress.is_some() && ingress::installed_by_samestack(cluster.provider).is_ok()
}

/// Applies the ingress controller onto the node that publishes the host ports (the first
/// server) and waits until it is ready; says what it did.
async fn install_ingress(
    client: &KubeClient,
    spec: &IngressSpec,
    cluster: &Cluster,
    preloaded: &BTreeMap<String, String>,
    wave_timeout: Duration,
) -> anyhow::Result<String> {
    let node = cluster.nodes.iter().find(|n| n.role == "server").context("the cluster reports no server node")?;
    let image = spec.image();
    let mut manifests = ingress::manifests(&image, &node.name);
    render::replace_images(&mut manifests, preloaded);
    let options = ApplyOptions {
        wave_timeout,
        prune: false,
        wait: true,
        default_namespace: ingress::NAMESPACE.into(),
        restart: cluster.restart.clone(),
    };
    let report = kube::apply_waves(client, ingress::OWNER, &manifests, &options).await?;
    let how = if report.nothing_changed() { "ready" } else { "installed, ready" };
    Ok(format!("Traefik ({image}) {how} on {}", node.name))
}

/// The TLS Secrets the Ingresses name and the templates do not provide, issued by the
/// development CA (see [`tls`]), with the CA certificate's path when there were any.
async fn issue_tls_secrets(
    client: &KubeClient,
    manifests: &[Value],
    namespace: &str,
    ca_dir: &std::path::Path,
) -> anyhow::Result<(Option<PathBuf>, Vec<Value>)> {
    let wanted = tls::wanted(manifests, namespace);
    if wanted.is_empty() {
        return Ok((None, Vec::new()));
    }
    let ca = tls::LocalCa::load_or_create(ca_dir)?;
    let mut issued = Vec::new();
    for w in &wanted {
        let secrets: Api<Secret> = Api::namespaced(client.raw().clone(), &w.namespace);
        let live =
            secrets.get_opt(&w.name).await.with_context(|| format!("reading Secret {}/{}", w.namespace, w.name))?;
        let live = live.map(|s| serde_json::to_value(s).unwrap_or_default());
        issued.push(tls::secret(&ca, w, live.as_ref(), k8s_openapi::jiff::Timestamp::now())?);
    }
    Ok((Some(ca.cert_path()), issued))
}

/// Renders with real secret values (they go to the cluster, never to the terminal).
fn render_manifests(settings: &Settings, images: BTreeMap<String, String>) -> anyhow::Result<Vec<Value>> {
    let env = |key: &str| settings.env.var(key);
    let options = RenderOptions::from_env(&settings.project, images, true, settings.postgres_image.clone(), &env)?;
    Ok(render::render(&settings.project, &settings.profile, &options)?.values())
}

/// Every host port `up` publishes: the registry's and the cluster's port mappings.
fn wanted_ports(stack: &StackSettings) -> Vec<WantedPort> {
    let registry = stack
        .registry
        .iter()
        .map(|r| WantedPort { port: r.host_port, purpose: "the registry (registry.host_port)".into() });
    let cluster = stack.cluster.ports.iter().map(|p| WantedPort {
        port: p.host_port,
        purpose: format!("the cluster's port {} (cluster.ports)", p.container_port),
    });
    registry.chain(cluster).collect()
}

/// Pure: what the images step did, with how many layers the pushes uploaded and how many the
/// registry had already (what a `--registry-cache` saves).
fn images_detail(builds: &[BuildOutcome]) -> String {
    let built = builds.iter().filter(|o| o.action != BuildAction::Skipped).count();
    let mut detail = format!("{built} built or pushed, {} unchanged", builds.len() - built);
    let layers: usize = builds.iter().map(|o| o.layers_pushed).sum();
    if layers > 0 {
        let uploaded: usize = builds.iter().map(|o| o.layers_uploaded).sum();
        detail.push_str(&format!("; {uploaded} layer(s) uploaded, {} already in the registry", layers - uploaded));
    }
    detail
}

fn action_word(action: registry::Action) -> &'static str {
    match action {
        registry::Action::Reused => "reused",
        registry::Action::Started => "started",
        registry::Action::Created => "created",
    }
}
