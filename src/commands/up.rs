//! `samestack up`: the pipeline of DESIGN.md — preflight, registry, cluster, images, render,
//! apply in waves, readiness, report. Every step is idempotent, so a second run (or a run after
//! Ctrl-C) converges; nothing is created before the manifests have rendered and the ports are free.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::api::Api;
use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;

use crate::build::{self, BuildAction, BuildOptions};
use crate::cli::{GlobalArgs, UpArgs};
use crate::cluster::{self, Provider as _, kubeconfig};
use crate::commands::ExitStatus;
use crate::config::{self, Project};
use crate::docker::{self, LABEL_PROJECT};
use crate::ingress::{self, IngressSpec};
use crate::kube::{self, ApplyOptions, KubeClient};
use crate::preflight::{self, WantedPort};
use crate::profile::{self, ProfileSettings};
use crate::registry;
use crate::render::{self, RenderOptions};
use crate::settings::{self, FlagError, StackSettings};
use crate::tls;
use crate::ui::Steps;

pub async fn run(global: &GlobalArgs, args: UpArgs) -> anyhow::Result<ExitStatus> {
    let project = config::load(&global.file)?;
    let profile = profile::resolve(&project, &args.profile)?;
    let build_args = settings::parse_build_args(&args.build_args)?;
    let stack = settings::resolve(&project, &build_args, global.kubeconfig.clone());
    // `--preload a,,b` and an empty SAMESTACK_PRELOAD name nothing: drop the empty entries.
    let preload: Vec<String> =
        args.preload.iter().map(|i| i.trim()).filter(|i| !i.is_empty()).map(String::from).collect();
    if !preload.is_empty() && stack.registry.is_none() {
        return Err(FlagError {
            flag: "--preload".into(),
            problem: "preloading goes through the local registry, and samestack.yaml disables it".into(),
            fix: "set `registry: { enabled: true }`, or drop --preload".into(),
        }
        .into());
    }
    // All or nothing: a template, profile or secret problem stops `up` before anything exists.
    render_manifests(&project, &profile, BTreeMap::new())?;

    let mut steps = Steps::new(global.quiet);

    let step = steps.start("preflight");
    let engine = docker::connect().await?;
    preflight::check_ports(&engine, &stack.project, &stack.cluster.name, &wanted_ports(&stack)).await?;
    build::require_local_images(&engine, &preload).await?;
    steps.finish(step, "Docker answers; host ports free");

    let mut registry_port = None;
    if let Some(spec) = &stack.registry {
        let step = steps.start("registry");
        let reg = registry::ensure(&engine, spec).await?;
        registry_port = Some(reg.host_port);
        steps.finish(step, &format!("{} {} at {}", action_word(reg.action), reg.name, reg.host_address()));
    }

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
    let options = BuildOptions {
        registry_port,
        parallelism: 2,
        labels: BTreeMap::from([(LABEL_PROJECT.to_string(), stack.project.clone())]),
        ..BuildOptions::default()
    };
    let outcomes = tokio::time::timeout(
        Duration::from_secs(args.build_timeout),
        build::build_all(&engine, &stack.builds, &options),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("image builds did not finish within {}s\n  fix: raise --build-timeout", args.build_timeout)
    })??;
    let built = outcomes.iter().filter(|o| o.action != BuildAction::Skipped).count();
    steps.finish(step, &format!("{built} built or pushed, {} unchanged", outcomes.len() - built));
    let images = outcomes.iter().map(|o| (o.service.clone(), o.pinned_reference())).collect();
    let preloaded = match registry_port {
        Some(port) if !preload.is_empty() => {
            let step = steps.start("preload");
            let preloaded = build::preload(&engine, &preload, port).await?;
            steps.finish(step, &format!("{} image(s) into the local registry", preloaded.len()));
            preloaded
        }
        _ => BTreeMap::new(),
    };

    let client = KubeClient::from_client(cluster.client().await?, context.clone());
    let wave_timeout = Duration::from_secs(args.ready_timeout);
    if let Some(spec) = &stack.ingress {
        let step = steps.start("ingress");
        let outcome = match ingress::installed_by_samestack(cluster.provider) {
            Ok(()) => install_ingress(&client, spec, &cluster, &preloaded, wave_timeout).await?,
            Err(elsewhere) => elsewhere.to_string(),
        };
        steps.finish(step, &outcome);
    }

    let step = steps.start("render");
    let mut manifests = render_manifests(&project, &profile, images)?;
    render::replace_images(&mut manifests, &preloaded);
    let serves_ingress = stack.ingress.is_some() && ingress::installed_by_samestack(cluster.provider).is_ok();
    let ca = if serves_ingress { add_tls_secrets(&client, &mut manifests, &stack.namespace).await? } else { None };
    let certificates = match &ca {
        Some(ca) => format!("; Ingress TLS from the development CA {}", ca.display()),
        None => String::new(),
    };
    steps.finish(step, &format!("{} resources ({} profile){certificates}", manifests.len(), profile.name));

    let step = steps.start("apply");
    let options = ApplyOptions {
        wave_timeout,
        prune: true,
        wait: true,
        default_namespace: stack.namespace.clone(),
        restart: cluster.restart.clone(),
    };
    let report = kube::apply_waves(&client, &stack.project, &manifests, &options).await?;
    steps.finish(step, &format!("{} in {} waves, all ready", report.summary(), report.waves.len()));

    if !global.quiet {
        let status = kube::project_status(&client, &stack.project).await.context("reading the stack's status")?;
        eprintln!("{}", super::status::format_endpoints(&status, &context, &stack.namespace, &stack.cluster.ports));
        if let Some(ca) = &ca {
            eprintln!(
                "https: trust {} to verify the Ingress certificates (curl --cacert, or your trust store)",
                ca.display()
            );
        }
        let total: Duration = steps.timings().iter().map(|(_, d)| *d).sum();
        eprintln!("up in {}. Next: `samestack status`, `samestack down`.", crate::ui::format_duration(total));
    }
    Ok(ExitStatus::Success)
}

/// Applies the ingress controller onto the node that publishes the host ports (the first
/// server) and waits until it is ready; says what it did.
async fn install_ingress(
    client: &KubeClient,
    spec: &IngressSpec,
    cluster: &cluster::Cluster,
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

/// Adds the TLS Secrets the Ingresses name and the templates do not provide, issued by the
/// development CA (see [`tls`]); returns the CA certificate's path when there were any.
async fn add_tls_secrets(
    client: &KubeClient,
    manifests: &mut Vec<serde_json::Value>,
    namespace: &str,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let wanted = tls::wanted(manifests, namespace);
    if wanted.is_empty() {
        return Ok(None);
    }
    let ca = tls::LocalCa::load_or_create(&tls::LocalCa::default_dir())?;
    for w in &wanted {
        let secrets: Api<Secret> = Api::namespaced(client.raw().clone(), &w.namespace);
        let live =
            secrets.get_opt(&w.name).await.with_context(|| format!("reading Secret {}/{}", w.namespace, w.name))?;
        let live = live.map(|s| serde_json::to_value(s).unwrap_or_default());
        manifests.push(tls::secret(&ca, w, live.as_ref(), k8s_openapi::jiff::Timestamp::now())?);
    }
    Ok(Some(ca.cert_path()))
}

/// Renders with real secret values (they go to the cluster, never to the terminal).
fn render_manifests(
    project: &Project,
    profile: &ProfileSettings,
    images: BTreeMap<String, String>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let options = RenderOptions::from_env(project, images, true)?;
    Ok(render::render(project, profile, &options)?.values())
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

fn action_word(action: registry::Action) -> &'static str {
    match action {
        registry::Action::Reused => "reused",
        registry::Action::Started => "started",
        registry::Action::Created => "created",
    }
}
