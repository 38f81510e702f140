//! `samestack down [--purge]`: removes the cluster and what samestack added for it (containers,
//! network, kubeconfig context); keeps the registry and its image cache, and the images built
//! in the local engine, unless `--purge`. Ends with a label query, so anything left behind is
//! named.

use std::collections::BTreeMap;

use crate::build;
use crate::cli::DownArgs;
use crate::cluster::{self, Provider as _, kubeconfig};
use crate::commands::{ExitStatus, Session};
use crate::config;
use crate::docker::{self, LABEL_PROJECT};
use crate::registry;
use crate::settings;

pub async fn run(session: &Session<'_>, args: DownArgs) -> anyhow::Result<ExitStatus> {
    let global = session.global;
    let project = config::load(&global.file)?;
    let stack = settings::resolve(&project, &BTreeMap::new(), args.kube.kubeconfig.clone());
    let provider = cluster::select(&stack.cluster).await?;
    provider.delete(&stack.cluster).await?;
    kubeconfig::uninstall(&stack.cluster.name, &stack.cluster.context_name(), &stack.kubeconfig)?;
    let engine = docker::connect().await?;
    let mut kept = Vec::new();
    if let Some(spec) = &stack.registry {
        if args.purge {
            registry::remove(&engine, &spec.name, true).await?;
        } else {
            kept.push(spec.name.clone());
        }
    }
    let images = if args.purge {
        build::remove_project_images(&engine, &stack.project, stack.registry.as_ref().map(|r| r.host_port)).await?
    } else {
        Vec::new()
    };
    let left: Vec<String> = docker::find_containers(&engine, &[(LABEL_PROJECT, stack.project.as_str())])
        .await?
        .iter()
        .map(docker::container_name)
        .filter(|name| !kept.contains(name))
        .collect();
    if !left.is_empty() {
        anyhow::bail!(
            "containers of project {} are still there after down: {}\n  fix: remove them with `docker rm -f {}`",
            stack.project,
            left.join(", "),
            left.join(" ")
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
