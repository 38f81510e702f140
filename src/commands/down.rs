//! `samestack down [--purge]`: removes the cluster and what samestack added for it (containers,
//! network, kubeconfig context); keeps the registry and its image cache, and the images built
//! in the local engine, unless `--purge`. The kubeconfig context goes first, so a cluster that
//! cannot be removed leaves no context pointing at it. Ends with a label query over containers,
//! networks and volumes: what is left is removed when nothing uses it, and named otherwise.

use crate::build;
use crate::cli::DownArgs;
use crate::cluster::{self, Provider as _, kubeconfig};
use crate::commands::{ExitStatus, Session};
use crate::config;
use crate::docker::{self, LABEL_PROJECT};
use crate::registry;
use crate::settings::{self, Overrides};

pub async fn run(session: &Session<'_>, args: DownArgs) -> anyhow::Result<ExitStatus> {
    let global = session.global;
    let mut project = config::load(&global.file)?;
    let overrides = Overrides { kubeconfig: args.kube.kubeconfig.clone(), ..Overrides::default() };
    let stack = settings::resolve_stack(&mut project, &overrides, &session.env)?;
    kubeconfig::uninstall(&stack.cluster.name, &stack.cluster.context_name(), &stack.kubeconfig)?;
    let provider = cluster::select(&stack.cluster).await?;
    provider.delete(&stack.cluster).await?;
    let engine = docker::connect().await?;
    let mut kept = Vec::new();
    if let Some(spec) = &stack.registry {
        if args.purge {
            registry::remove(&engine, &spec.name, true).await?;
        } else {
            kept.push(spec.name.clone());
            kept.push(spec.volume());
        }
    }
    let images = if args.purge {
        build::remove_project_images(&engine, &stack.project, stack.registry.as_ref().map(|r| r.host_port)).await?
    } else {
        Vec::new()
    };
    let left = leftovers(&engine, &stack.project, &kept).await?;
    if !left.is_empty() {
        let list: Vec<String> = left.iter().map(|l| format!("\n  {l}")).collect();
        anyhow::bail!(
            "down could not remove everything of project {}:{}\n  fix: stop what still uses them, then run `samestack down` again",
            stack.project,
            list.concat()
        );
    }
    session.printer.line(match kept.first() {
        Some(name) => {
            format!(
                "removed cluster {}; kept registry {name} and its image cache (--purge removes it)",
                stack.cluster.name
            )
        }
        None => format!(
            "removed cluster {} and everything samestack made for it ({} image reference(s))",
            stack.cluster.name,
            images.len()
        ),
    });
    Ok(ExitStatus::Success)
}

/// Containers, networks and volumes labelled with the project that are still there (except
/// `kept`). Networks and volumes nothing uses are removed on the way (duplicates from racing
/// `up`s, an interrupted create's probe network); what stays is described with the reason.
async fn leftovers(engine: &docker::Client, project: &str, kept: &[String]) -> anyhow::Result<Vec<String>> {
    let labels = [(LABEL_PROJECT, project)];
    let mut left = Vec::new();
    for container in docker::find_containers(engine, &labels).await? {
        let name = docker::container_name(&container);
        if !kept.contains(&name) {
            left.push(format!("container {name} (remove it with `docker rm -f {name}`)"));
        }
    }
    for network in docker::find_networks(engine, &labels).await? {
        let (Some(id), name) = (network.id.as_deref(), network.name.clone().unwrap_or_default()) else { continue };
        match engine.remove_network(id).await {
            Ok(()) => {}
            Err(e) if docker::is_not_found(&e) => {}
            Err(e) => left.push(format!("network {name} ({id:.12}): {}", docker::describe(&e))),
        }
    }
    for volume in docker::find_volumes(engine, &labels).await? {
        if kept.contains(&volume.name) {
            continue;
        }
        match engine.remove_volume(&volume.name, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) => {}
            Err(e) if docker::is_not_found(&e) => {}
            Err(e) => left.push(format!("volume {}: {}", volume.name, docker::describe(&e))),
        }
    }
    Ok(left)
}
