//! `samestack up`: resolve the settings, converge the stack ([`crate::pipeline::converge`]:
//! preflight, registry, cluster, images, render, apply in waves, readiness), report. A signal
//! stops it at once: every step is idempotent, so the next `up` converges.

use anyhow::Context as _;

use crate::cli::UpArgs;
use crate::commands::{ExitStatus, Session};
use crate::config;
use crate::kube;
use crate::lock;
use crate::pipeline::{self, Stack};
use crate::settings::{self, Overrides, Settings};

pub async fn run(session: &Session<'_>, args: UpArgs) -> anyhow::Result<ExitStatus> {
    let settings = resolve(session, &args)?;
    // One run per project at a time: a second `up` (or `down`) waits here for the first.
    let lock = lock::acquire_for(&settings.stack.project, "up", &session.printer);
    let _lock = session.cancel.or_interrupted(async { Ok(lock.await?) }).await?;
    let stack = session.cancel.or_interrupted(pipeline::converge(&settings, &session.printer)).await?;
    session.cancel.or_interrupted(report(session, &settings, &stack)).await?;
    Ok(ExitStatus::Success)
}

/// The settings `up` converges to: its flags over the environment over samestack.yaml.
pub(super) fn resolve(session: &Session<'_>, args: &UpArgs) -> anyhow::Result<Settings> {
    resolve_with(session, args, Overrides::default())
}

/// [`resolve`], with `extra`'s settings that `up`'s flags do not have (`dev --sync-image`).
pub(super) fn resolve_with(session: &Session<'_>, args: &UpArgs, extra: Overrides) -> anyhow::Result<Settings> {
    let project = config::load(&session.global.file)?;
    let overrides = Overrides {
        kubeconfig: args.kube.kubeconfig.clone(),
        sync_image: extra.sync_image,
        ..super::pipeline_overrides(&args.profile, &args.pipeline)?
    };
    Ok(settings::resolve_up(project, &overrides, &session.env)?)
}

/// Workloads, endpoints, URLs, timings and next commands, on stderr (nothing with `--quiet`).
async fn report(session: &Session<'_>, settings: &Settings, stack: &Stack) -> anyhow::Result<()> {
    let printer = &session.printer;
    if !printer.lines() {
        return Ok(());
    }
    let project = &settings.stack.project;
    let status = kube::project_status(&stack.client, project).await.context("reading the stack's status")?;
    let ports = &settings.stack.cluster.ports;
    printer.line(super::status::format_endpoints(&status, &stack.context, &settings.stack.namespace, ports));
    if let Some(ca) = &stack.ca {
        printer.line(format!(
            "https: trust {} to verify the Ingress certificates (curl --cacert, or your trust store)",
            ca.display()
        ));
    }
    let total = crate::ui::format_duration(stack.total_time());
    printer.line(format!("up in {total}. Next: `samestack status`, `samestack down`."));
    Ok(())
}
