//! `samestack status [--json]`: the cluster, the registry, and every workload's readiness and
//! endpoints. Exit 1 when the cluster or the registry is not running or a workload is not ready.

use bollard::models::ContainerSummaryStateEnum;
use serde_json::json;

use anyhow::Context as _;

use crate::cli::StatusArgs;
use crate::cluster::{self, ClusterState, PortMapping, Provider as _};
use crate::commands::{ExitStatus, Session};
use crate::config;
use crate::docker::{self, LABEL_PROJECT, LABEL_ROLE};
use crate::ingress;
use crate::kube::{self, KubeClient, ProjectStatus, Readiness};
use crate::settings::{self, Overrides};

pub async fn run(session: &Session<'_>, args: StatusArgs) -> anyhow::Result<ExitStatus> {
    let global = session.global;
    let mut project = config::load(&global.file)?;
    let overrides = Overrides { kubeconfig: args.kube.kubeconfig.clone(), ..Overrides::default() };
    let stack = settings::resolve_stack(&mut project, &overrides, &session.env)?;
    let provider = cluster::select(&stack.cluster).await?;
    let cluster = provider.status(&stack.cluster).await?;
    let registry = match &stack.registry {
        Some(spec) => {
            let engine = docker::connect().await?;
            let found =
                docker::find_containers(&engine, &[(LABEL_PROJECT, stack.project.as_str()), (LABEL_ROLE, "registry")])
                    .await?;
            let running = found.iter().any(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING));
            Some(
                json!({ "name": spec.name, "address": format!("localhost:{}", spec.host_port), "exists": !found.is_empty(), "running": running }),
            )
        }
        None => None,
    };
    let workloads = if cluster.state == ClusterState::Running {
        let access = provider.access(&stack.cluster).await?;
        let client = KubeClient::for_access(&access).await?;
        Some(kube::project_status(&client, &stack.project).await?)
    } else {
        None
    };
    // A stopped registry is not healthy either: the next rollout or restart cannot pull.
    let registry_runs = registry.as_ref().is_none_or(|r| r["running"].as_bool() == Some(true));
    let healthy = cluster.state == ClusterState::Running
        && registry_runs
        && workloads.as_ref().is_some_and(ProjectStatus::all_ready);

    if args.json {
        let report = json!({
            "project": stack.project,
            "cluster": {
                "name": stack.cluster.name,
                "provider": cluster.provider,
                "state": format!("{:?}", cluster.state).to_lowercase(),
                "api_server": cluster.api_server,
                "nodes": cluster.nodes.iter().map(|n| json!({"name": n.name, "role": n.role, "running": n.running})).collect::<Vec<_>>(),
            },
            "registry": registry,
            "resources": workloads,
            "urls": workloads.iter().flat_map(|w| &w.ingresses).flat_map(|i| &i.hosts).flat_map(|h| ingress::urls(h, &stack.cluster.ports)).collect::<Vec<_>>(),
            "ready": healthy,
        });
        session.printer.json(&report).context("writing to stdout")?;
    } else {
        let state = format!("{:?}", cluster.state).to_lowercase();
        println!("cluster   {} ({}, {state}, {} node(s))", stack.cluster.name, cluster.provider, cluster.nodes.len());
        if let Some(r) = &registry {
            let state = if r["running"].as_bool() == Some(true) {
                "running"
            } else if r["exists"].as_bool() == Some(true) {
                "stopped"
            } else {
                "absent"
            };
            let fix = match state {
                "running" => "",
                _ => "; `samestack up` starts it",
            };
            println!(
                "registry  {} at {} ({state}){fix}",
                r["name"].as_str().unwrap_or_default(),
                r["address"].as_str().unwrap_or_default()
            );
        }
        match &workloads {
            Some(status) => println!(
                "{}",
                format_endpoints(status, &stack.cluster.context_name(), &stack.namespace, &stack.cluster.ports)
            ),
            None => println!("nothing deployed is reachable: the cluster is not running (run `samestack up`)"),
        }
    }
    Ok(if healthy { ExitStatus::Success } else { ExitStatus::Failure })
}

/// Workload readiness and Service endpoints, as `up` and `status` print them.
pub fn format_endpoints(status: &ProjectStatus, context: &str, namespace: &str, ports: &[PortMapping]) -> String {
    let mut out = String::from("workloads:");
    if status.workloads.is_empty() {
        out.push_str(" none");
    }
    for w in &status.workloads {
        let state = match &w.readiness {
            Readiness::Ready => "ready".to_string(),
            Readiness::Pending(why) => format!("pending: {why}"),
            Readiness::Failed(why) => format!("failed: {why}"),
        };
        out.push_str(&format!("\n  {}/{:<18} {}/{}  {state}", w.kind.to_lowercase(), w.name, w.ready, w.desired));
    }
    if !status.services.is_empty() {
        out.push_str("\nendpoints:");
    }
    for s in &status.services {
        for p in &s.ports {
            out.push_str(&format!(
                "\n  svc/{:<18} {}/{}  kubectl --context {context} -n {namespace} port-forward svc/{} {}:{}",
                s.name, p.port, p.protocol, s.name, p.port, p.port
            ));
        }
    }
    for i in &status.ingresses {
        for host in &i.hosts {
            let urls = ingress::urls(host, ports);
            let reach = if urls.is_empty() {
                format!("host {host} (no host port maps onto the node's 80 or 443: see cluster.ports)")
            } else {
                urls.join("  ")
            };
            out.push_str(&format!("\n  ingress/{:<14} {reach}", i.name));
        }
    }
    out
}
