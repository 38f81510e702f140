//! `samestack ci -- CMD`: an environment of its own (named after the project and a run id,
//! free host ports, a private kubeconfig), `up` on it with the `ci` profile, CMD run against it
//! with the environment in its variables and a dotenv file, artifacts when anything failed, and
//! teardown always — after CMD passes, fails or times out, on SIGINT/SIGTERM/SIGHUP (passed to
//! CMD first), and when samestack itself fails in any step. `--keep` keeps it.
//!
//! The work lives in [`ephemeral`] (names, ports, the command's environment), [`child`] (the
//! command, its signals and timeout), [`artifacts`], [`kube::forward`] and the pipeline `up`
//! runs ([`pipeline::converge_with`]); this module puts them in order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use crate::artifacts;
use crate::build;
use crate::cancel::Cancel;
use crate::child::{self, CommandSpec, Outcome};
use crate::cli::CiArgs;
use crate::cluster::{self, Provider as _, kubeconfig};
use crate::commands::{ExitStatus, Session};
use crate::config;
use crate::docker;
use crate::ephemeral::{self, CommandEnv};
use crate::ingress;
use crate::kube::{self, KubeClient, forward::Forward};
use crate::lock;
use crate::pipeline;
use crate::registry;
use crate::render::{self, RenderOptions};
use crate::settings::{self, FlagError, Overrides, Settings};
use crate::ui::{Printer, Steps, format_duration};

/// How long artifact collection may take: it must not hold up the teardown for long.
const ARTIFACTS_TIMEOUT: Duration = Duration::from_secs(120);
/// How long teardown keeps sweeping labelled objects that are still there.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(session: &Session<'_>, args: CiArgs) -> anyhow::Result<ExitStatus> {
    // The signals (SIGINT, SIGTERM, SIGHUP) cancel `cancel` instead of ending the process, so
    // whatever is made below is torn down; a second signal ends it at once (see `cancel`).
    let cancel = &session.cancel;
    let printer = &session.printer;
    let started = Instant::now();
    let plan = Plan::resolve(session, &args)?;
    // One run per environment name: a second `ci --name N` waits for the first.
    let lock = cancel.or_interrupted(async { Ok(lock::acquire_for(&plan.name, "ci", printer).await?) }).await?;
    // A generated name is this run's alone: its lock file goes with it (a pinned name's stays,
    // so two runs of that name never lock two different files).
    let _unlink = (args.name.is_none()).then(|| RemoveOnDrop(lock.path().to_path_buf()));
    let mut steps = Steps::new(*printer);
    if args.remove {
        let step = steps.start("teardown");
        teardown(&plan).await?;
        steps
            .finish(step, &format!("removed {}: nothing labelled dev.samestack.project={} left", plan.name, plan.name));
        return Ok(ExitStatus::Success);
    }
    printer.line(format!(
        "ci: environment {} (namespace {}, kubeconfig {})",
        plan.name,
        plan.settings.stack.namespace,
        plan.kubeconfig.display()
    ));

    let result = converge_and_run(&plan, &args, printer, &mut steps, cancel).await;
    // The step that was under way when samestack failed (none when the command ran).
    let failed_step = match &result {
        Ended::Failed(_) => steps.running().map(|(name, took)| (name.to_string(), took)),
        _ => None,
    };
    // A signal that stopped CMD counts: what the job saw until it was cancelled is worth
    // keeping (a second signal still ends samestack at once). One before CMD ran does not.
    let failed = match &result {
        Ended::Command(outcome) => !outcome.success(),
        Ended::Failed(_) => true,
        Ended::Interrupted(_) => false,
    };
    let artifacts = if failed {
        collect_artifacts(&plan, &args, &result, failed_step.as_ref(), &mut steps, cancel).await
    } else {
        None
    };

    let teardown = if args.keep {
        None
    } else {
        // What a second signal during teardown leaves, and how to finish the job.
        cancel.on_abandon(format!(
            "ci: teardown of {} stopped; what is left carries the label dev.samestack.project={}\n  remove it with: samestack ci --name {} --remove",
            plan.name, plan.name, plan.name
        ));
        let step_started = Instant::now();
        let outcome = teardown(&plan).await;
        let detail = match &outcome {
            Ok(()) => format!("removed {}: nothing labelled dev.samestack.project={} left", plan.name, plan.name),
            Err(err) => format!("failed: {err:#}"),
        };
        steps.record("teardown", step_started.elapsed(), &detail);
        Some(outcome)
    };

    let exit = exit_code(&result, teardown.as_ref());
    if args.json {
        printer.json(&summary(&plan, &args, &steps, &result, failed_step.as_ref(), &artifacts, exit, started))?;
    }
    report(&plan, &args, printer, &result, &artifacts, started);
    match (result, teardown) {
        (Ended::Failed(err), teardown) => {
            if let Some(Err(left)) = teardown {
                crate::error::report(&left.context("tearing down"));
            }
            Err(err)
        }
        (Ended::Command(outcome), Some(Err(err))) if outcome.success() => Err(err.context("tearing down")),
        (_, Some(Err(err))) => {
            crate::error::report(&err.context("tearing down"));
            Ok(ExitStatus::Code(exit))
        }
        _ => Ok(if exit == 0 { ExitStatus::Success } else { ExitStatus::Code(exit) }),
    }
}

/// Everything decided before anything exists.
struct Plan {
    /// The environment's name: cluster, registry container, namespace and label value.
    name: String,
    /// The settings of the environment: the project under the environment's name and ports.
    settings: Settings,
    /// The run's private files: kubeconfig and dotenv.
    dir: PathBuf,
    kubeconfig: PathBuf,
    env_file: PathBuf,
    /// Services of the project that have ports, each gets `SAMESTACK_<SERVICE>_URL`.
    services: Vec<String>,
}

impl Plan {
    /// Bad input ends here with exit 2, before anything is created.
    fn resolve(session: &Session<'_>, args: &CiArgs) -> anyhow::Result<Plan> {
        let original = config::load(&session.global.file)?;
        if original.config.cluster.provider == config::Provider::Existing {
            return Err(FlagError {
                flag: "ci".into(),
                problem: "cluster.provider is `existing`: ci makes a cluster of its own and removes it afterwards"
                    .into(),
                fix: "use provider auto, docker, kind or k3d for ci (e.g. with a CI-specific samestack.yaml via -f)"
                    .into(),
            }
            .into());
        }
        let name = match &args.name {
            Some(name) => {
                ephemeral::check_name(name).map_err(|problem| FlagError {
                    flag: format!("--name {name}"),
                    problem: format!("the name {problem}"),
                    fix: "e.g. --name shop-pr-42".into(),
                })?;
                name.clone()
            }
            None => ephemeral::env_name(&original.config.name, &ephemeral::run_id()),
        };
        let dir = ephemeral::run_dir(&kubeconfig::state_dir(), &name);
        let kubeconfig = dir.join("kubeconfig");
        let mut project = original;
        let mut overrides = Overrides {
            // The run's own file: the user's kubeconfig is never touched.
            kubeconfig: Some(kubeconfig.clone()),
            ..super::pipeline_overrides(&args.profile, &args.pipeline)?
        };
        // Every host port free, picked the one way `up` picks them for a port of 0.
        overrides.isolate(&mut project, &name);
        overrides.pick_free_ports().context("picking free host ports for ci")?;
        let services =
            project.config.services.iter().filter(|(_, s)| !s.ports.is_empty()).map(|(n, _)| n.clone()).collect();
        let settings = settings::resolve_up(project, &overrides, &session.env)?;
        // All or nothing: templates, profile and secrets render before anything exists.
        let env = |key: &str| settings.env.var(key);
        let options =
            RenderOptions::from_env(&settings.project, BTreeMap::new(), true, settings.postgres_image.clone(), &env)?;
        render::render(&settings.project, &settings.profile, &options)?;
        Ok(Plan { env_file: dir.join("samestack.env"), name, settings, dir, kubeconfig, services })
    }

    fn context(&self) -> String {
        self.settings.stack.cluster.context_name()
    }
}

/// How the part before teardown ended.
enum Ended {
    /// The environment came up and the command ran to this outcome.
    Command(Outcome),
    /// samestack failed in a step (the error says which and why).
    Failed(anyhow::Error),
    /// A signal arrived before the command ran.
    Interrupted(i32),
}

async fn converge_and_run(plan: &Plan, args: &CiArgs, printer: &Printer, steps: &mut Steps, cancel: &Cancel) -> Ended {
    let interrupted = |cancel: &Cancel| {
        let signal = cancel.interrupted().map(|i| i.signal).unwrap_or(2);
        printer.line(format!("ci: got {}; stopping and tearing down", child::signal_name(signal)));
        Ended::Interrupted(signal)
    };
    if let Err(err) = private_dir(&plan.dir) {
        return Ended::Failed(err);
    }
    let converged = tokio::select! {
        converged = pipeline::converge_with(&plan.settings, printer, steps) => converged,
        () = cancel.cancelled() => return interrupted(cancel),
    };
    let stack = match converged {
        Ok(stack) => stack,
        Err(err) => return Ended::Failed(err),
    };
    let step = steps.start("forward");
    let env = tokio::select! {
        env = command_env(plan, &stack.client) => env,
        () = cancel.cancelled() => return interrupted(cancel),
    };
    let (env, _forwards) = match env {
        Ok(env) => env,
        Err(err) => return Ended::Failed(err),
    };
    let forwarded: Vec<String> = env.services.iter().map(|(s, url)| format!("{s} → {url}")).collect();
    let detail = if forwarded.is_empty() { "no service has ports".to_string() } else { forwarded.join(", ") };
    steps.finish(step, &detail);
    let vars = env.vars();
    if let Err(err) = write_private(&plan.env_file, &ephemeral::dotenv(&vars)) {
        return Ended::Failed(err);
    }
    let spec = CommandSpec {
        argv: args.command.clone(),
        env: vars,
        timeout: args.timeout.map(Duration::from_secs),
        own_group: !std::io::IsTerminal::is_terminal(&std::io::stdin()),
    };
    printer.line(format!("ci: running {}", shell_words(&args.command)));
    let command_started = Instant::now();
    let outcome = child::run(&spec, cancel).await;
    steps.record("command", command_started.elapsed(), &outcome.describe());
    Ended::Command(outcome)
}

/// Port-forwards to every service with ports, and the variables the command gets.
async fn command_env(plan: &Plan, client: &KubeClient) -> anyhow::Result<(CommandEnv, Vec<Forward>)> {
    let mut forwards = Vec::new();
    let mut services = BTreeMap::new();
    for service in &plan.services {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .with_context(|| format!("listening on 127.0.0.1 for a port-forward to service {service}"))?;
        if let Some(forward) =
            kube::forward::to_service(client, &plan.settings.stack.namespace, service, listener).await?
        {
            services.insert(service.clone(), forward.url());
            forwards.push(forward);
        }
    }
    let status =
        kube::project_status(client, &plan.settings.stack.project).await.context("reading the stack's Ingresses")?;
    let ingresses = status
        .ingresses
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                i.hosts.iter().flat_map(|h| ingress::urls(h, &plan.settings.stack.cluster.ports)).collect(),
            )
        })
        .collect();
    let env = CommandEnv {
        kubeconfig: plan.kubeconfig.clone(),
        context: plan.context(),
        namespace: plan.settings.stack.namespace.clone(),
        registry: plan.settings.stack.registry.as_ref().map(|r| format!("localhost:{}", r.host_port)),
        services,
        ingresses,
        env_file: plan.env_file.clone(),
    };
    Ok((env, forwards))
}

/// Collects the artifacts into `--artifacts`; a failure to do so is reported, never fatal.
async fn collect_artifacts(
    plan: &Plan,
    args: &CiArgs,
    result: &Ended,
    failed_step: Option<&(String, Duration)>,
    steps: &mut Steps,
    cancel: &Cancel,
) -> Option<PathBuf> {
    let step_log = step_log(steps, result, failed_step);
    let step = steps.start("artifacts");
    let failure = match result {
        Ended::Command(outcome) => format!("the command `{}` {}", shell_words(&args.command), outcome.describe()),
        Ended::Failed(err) => format!("samestack failed: {err:#}"),
        Ended::Interrupted(signal) => format!("interrupted by {}", child::signal_name(*signal)),
    };
    let client = match std::fs::metadata(&plan.kubeconfig) {
        Ok(_) => KubeClient::connect(&plan.kubeconfig, Some(&plan.context())).await.ok(),
        Err(_) => None,
    };
    let manifests = redacted_manifests(&plan.settings);
    let inputs = artifacts::Inputs {
        client: client.as_ref(),
        namespace: &plan.settings.stack.namespace,
        manifests: manifests.as_deref(),
        steps: &step_log,
        failure: &failure,
    };
    // A signal that arrives now stops the collection; one that stopped CMD already does not.
    let signalled_before = cancel.is_cancelled();
    let stopped = async {
        match signalled_before {
            true => std::future::pending().await,
            false => cancel.cancelled().await,
        }
    };
    let collected = tokio::select! {
        collected = tokio::time::timeout(ARTIFACTS_TIMEOUT, artifacts::collect(&args.artifacts, &inputs)) => collected,
        () = stopped => {
            steps.finish(step, "stopped by a signal");
            return None;
        }
    };
    match collected {
        Ok(Ok(collected)) => {
            steps.finish(step, &format!("{} file(s) in {}", collected.entries.len(), collected.dir.display()));
            Some(collected.dir)
        }
        Ok(Err(err)) => {
            steps.finish(step, &format!("could not be written to {}: {err}", args.artifacts.display()));
            None
        }
        Err(_) => {
            steps.finish(step, &format!("not done within {}s", ARTIFACTS_TIMEOUT.as_secs()));
            None
        }
    }
}

/// The manifests as `render` prints them, secrets redacted, with the image names `up` would
/// use before building.
fn redacted_manifests(settings: &Settings) -> Option<String> {
    let env = |key: &str| settings.env.var(key);
    let options =
        RenderOptions::from_env(&settings.project, BTreeMap::new(), false, settings.postgres_image.clone(), &env)
            .ok()?;
    render::render(&settings.project, &settings.profile, &options).ok().map(|set| set.to_yaml())
}

/// samestack's steps so far, one a line with duration and detail, and the one that failed.
fn step_log(steps: &Steps, result: &Ended, failed_step: Option<&(String, Duration)>) -> String {
    let mut out: String = steps
        .timings()
        .iter()
        .zip(steps.details())
        .map(|((name, took), detail)| format!("{name:<10} {:>7}  ok  {detail}\n", format_duration(*took)))
        .collect();
    if let (Some((name, took)), Ended::Failed(err)) = (failed_step, result) {
        out.push_str(&format!("{name:<10} {:>7}  FAILED  {err:#}\n", format_duration(*took)));
    }
    out
}

/// The equivalent of `down --purge` for the environment: cluster, kubeconfig files, registry
/// and its volume, the images built for it, the run's directory; then a label query, so
/// anything left is named.
async fn teardown(plan: &Plan) -> anyhow::Result<()> {
    let stack = &plan.settings.stack;
    let mut problems = Vec::new();
    match cluster::select(&stack.cluster).await {
        Ok(provider) => {
            if let Err(err) = provider.delete(&stack.cluster).await {
                problems.push(format!("the cluster: {err}"));
            }
        }
        Err(err) => problems.push(format!("the cluster: {err}")),
    }
    if let Err(err) = kubeconfig::uninstall(&stack.cluster.name, &plan.context(), &plan.kubeconfig) {
        problems.push(format!("the kubeconfig: {err}"));
    }
    let engine = docker::connect().await?;
    if let Some(spec) = &stack.registry
        && let Err(err) = registry::remove(&engine, &spec.name, true).await
    {
        problems.push(format!("the registry: {err}"));
    }
    let registry_port = stack.registry.as_ref().map(|r| r.host_port);
    if let Err(err) = build::remove_project_images(&engine, &stack.project, registry_port).await {
        problems.push(format!("the images: {err}"));
    }
    match std::fs::remove_dir_all(&plan.dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => problems.push(format!("{}: {err}", plan.dir.display())),
    }
    // A step cancelled by a signal may have had a create request on its way: what it made
    // after the provider's delete looked goes in a sweep by label, until nothing is left.
    let deadline = Instant::now() + SWEEP_TIMEOUT;
    let mut left = docker::labelled_objects(&engine, &stack.project).await?;
    while !left.is_empty() && Instant::now() < deadline {
        tracing::info!("sweeping what is left of {}: {}", plan.name, left.join(", "));
        if let Err(err) = docker::remove_labelled(&engine, &stack.project).await {
            tracing::info!("sweep: {err}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        left = docker::labelled_objects(&engine, &stack.project).await?;
    }
    if !left.is_empty() {
        problems.push(format!("still there: {}", left.join(", ")));
    }
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "could not remove everything of environment {}:\n  {}\n  fix: remove what is left by hand: objects labelled dev.samestack.project={}",
        plan.name,
        problems.join("\n  "),
        plan.name
    )
}

/// Pure: samestack's exit code. The command's own code (or 124, 128+N); 128+N when a signal
/// stopped the run before the command; 1 when teardown failed after the command passed.
/// samestack's own failures return their error instead (1 or 2, see `error`).
fn exit_code(result: &Ended, teardown: Option<&anyhow::Result<()>>) -> u8 {
    let code = match result {
        Ended::Command(outcome) => outcome.exit_code(),
        Ended::Interrupted(signal) => 128 + signal,
        Ended::Failed(err) => i32::from(crate::error::kind_of(err).exit_code()),
    };
    let code = if code == 0 && matches!(teardown, Some(Err(_))) { 1 } else { code };
    u8::try_from(code.clamp(0, 255)).unwrap_or(1)
}

/// The `--json` summary.
#[allow(clippy::too_many_arguments)]
fn summary(
    plan: &Plan,
    args: &CiArgs,
    steps: &Steps,
    result: &Ended,
    failed_step: Option<&(String, Duration)>,
    artifacts: &Option<PathBuf>,
    exit: u8,
    started: Instant,
) -> serde_json::Value {
    let failed_step = match (failed_step, result) {
        (Some((name, took)), Ended::Failed(err)) => Some(
            json!({"name": name, "seconds": took.as_secs_f64(), "outcome": "failed", "detail": format!("{err:#}")}),
        ),
        _ => None,
    };
    let mut step_list: Vec<serde_json::Value> = steps
        .timings()
        .iter()
        .zip(steps.details())
        .map(|((name, took), detail)| {
            let outcome = if name == "teardown" && detail.starts_with("failed") { "failed" } else { "ok" };
            json!({"name": name, "seconds": took.as_secs_f64(), "outcome": outcome, "detail": detail})
        })
        .collect();
    // The failed step goes where it ran: before the artifacts and teardown steps.
    if let Some(failed) = failed_step {
        let at = step_list.iter().position(|s| s["name"] == "artifacts" || s["name"] == "teardown");
        step_list.insert(at.unwrap_or(step_list.len()), failed);
    }
    let (outcome, command) = match result {
        Ended::Command(o) if o.success() => ("passed", Some(o.describe())),
        Ended::Command(Outcome::TimedOut) => ("timed-out", Some(Outcome::TimedOut.describe())),
        Ended::Command(o @ Outcome::Interrupted { .. }) => ("interrupted", Some(o.describe())),
        Ended::Command(o) => ("failed", Some(o.describe())),
        Ended::Failed(_) => ("error", None),
        Ended::Interrupted(_) => ("interrupted", None),
    };
    json!({
        "name": plan.name,
        "namespace": plan.settings.stack.namespace,
        "command": args.command,
        "outcome": outcome,
        "command_outcome": command,
        "exit_code": exit,
        "error": match result { Ended::Failed(err) => Some(format!("{err:#}")), _ => None },
        "steps": step_list,
        "total_seconds": started.elapsed().as_secs_f64(),
        "artifacts": artifacts,
        "kept": args.keep,
        "kubeconfig": args.keep.then(|| plan.kubeconfig.clone()),
        "env_file": args.keep.then(|| plan.env_file.clone()),
    })
}

/// The closing lines on stderr.
fn report(
    plan: &Plan,
    args: &CiArgs,
    printer: &Printer,
    result: &Ended,
    artifacts: &Option<PathBuf>,
    started: Instant,
) {
    let what = match result {
        Ended::Command(outcome) => format!("the command {}", outcome.describe()),
        Ended::Failed(_) => "samestack failed (the error follows)".into(),
        Ended::Interrupted(signal) => format!("interrupted by {} before the command ran", child::signal_name(*signal)),
    };
    printer.line(format!("ci: {what}; {} in all", format_duration(started.elapsed())));
    if let Some(dir) = artifacts {
        printer.line(format!("ci: artifacts in {} (start with {})", dir.display(), dir.join("index.txt").display()));
    }
    if args.keep {
        printer.line(format!(
            "ci: kept environment {}: KUBECONFIG={} (context {}), variables in {}\n  remove it with: samestack ci --name {} --remove",
            plan.name,
            plan.kubeconfig.display(),
            plan.context(),
            plan.env_file.display(),
            plan.name
        ));
    }
}

/// Removes a file when dropped (before the lock it belongs to is released).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates the run's directory, readable by this user only (the kubeconfig holds a key).
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes a file readable by this user only.
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(content.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Pure: a command line as a shell would show it (arguments with spaces quoted).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_commands_unless_the_run_or_teardown_failed() {
        let torn_down: anyhow::Result<()> = Ok(());
        let teardown_failed: anyhow::Result<()> = Err(anyhow::anyhow!("left"));
        assert_eq!(exit_code(&Ended::Command(Outcome::Exited(0)), Some(&torn_down)), 0);
        assert_eq!(exit_code(&Ended::Command(Outcome::Exited(3)), Some(&torn_down)), 3);
        assert_eq!(exit_code(&Ended::Command(Outcome::Exited(3)), Some(&teardown_failed)), 3);
        assert_eq!(exit_code(&Ended::Command(Outcome::Exited(0)), Some(&teardown_failed)), 1);
        assert_eq!(exit_code(&Ended::Command(Outcome::TimedOut), None), 124);
        assert_eq!(exit_code(&Ended::Command(Outcome::Interrupted { signal: 15 }), Some(&torn_down)), 143);
        assert_eq!(exit_code(&Ended::Interrupted(2), Some(&torn_down)), 130);
        let bad_input = anyhow::Error::new(FlagError { flag: "--x".into(), problem: "p".into(), fix: "f".into() });
        assert_eq!(exit_code(&Ended::Failed(bad_input), Some(&torn_down)), 2);
        assert_eq!(exit_code(&Ended::Failed(anyhow::anyhow!("docker gone")), Some(&torn_down)), 1);
    }

    #[test]
    fn command_lines_read_like_a_shell() {
        let argv = ["sh", "-c", "curl -f \"$URL\"", "it's"].map(String::from);
        assert_eq!(shell_words(&argv), r#"sh -c 'curl -f "$URL"' 'it'\''s'"#);
    }
}
