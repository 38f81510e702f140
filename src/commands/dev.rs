//! `samestack dev`: converge the stack as `up` does, then watch until Ctrl-C. Each settled
//! batch of file changes is planned per service ([`crate::sync::plan`]): a sync copies the
//! files into the running pods and runs `on_change`; anything else rebuilds, pushes and rolls
//! that one service. Every reload prints its save→running latency; port-forwards and log
//! streams run alongside. Ctrl-C ends the watcher, the forwards, the log streams and any exec
//! in flight; the cluster stays up (it is `up`'s), and the next `dev` reuses all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tokio::task::JoinSet;

use crate::build;
use crate::cli::DevArgs;
use crate::commands::{ExitStatus, Session};
use crate::pipeline::{self, Stack};
use crate::settings::Settings;
use crate::sync::copy::{self, Failure, Target, Via};
use crate::sync::debounce::Debouncer;
use crate::sync::latency::{Kind, Latencies, Reload};
use crate::sync::plan::{self, Action, Copy};
use crate::sync::replay::{self, Fresh, Synced};
use crate::sync::watch::{self, Watcher};
use crate::sync::{forward, logs, pods};
use crate::ui::{Output, Printer};

pub async fn run(session: &Session<'_>, args: DevArgs) -> anyhow::Result<ExitStatus> {
    let extra = crate::settings::Overrides { sync_image: args.sync_image.clone(), ..Default::default() };
    let settings = super::up::resolve_with(session, &args.up, extra)?;
    let printer = session.printer;
    let cancel = &session.cancel;
    let unknown: Vec<&String> =
        args.logs.iter().filter(|s| !settings.project.config.services.contains_key(*s)).collect();
    if !unknown.is_empty() {
        let known: Vec<&String> = settings.project.config.services.keys().collect();
        return Err(crate::settings::FlagError {
            flag: "--logs".into(),
            problem: format!("unknown service(s) {unknown:?} (services: {known:?})"),
            fix: "name services of samestack.yaml, comma-separated".into(),
        }
        .into());
    }
    let mut stack = cancel.or_interrupted(pipeline::converge(&settings, &printer)).await?;

    let started = Instant::now();
    let rules = watch::rules_for(&settings.project)?;
    let mut watcher = cancel.or_interrupted(async { Ok(Watcher::start(rules).await?) }).await?;
    let mut background = JoinSet::new();
    let forwards = cancel.or_interrupted(start_forwards(&settings, &stack, &mut background)).await?;
    for f in &forwards {
        let moved = if f.moved() { format!(" (127.0.0.1:{} is taken)", f.port) } else { String::new() };
        printer.line(format!("forward    {}:{} → 127.0.0.1:{}{moved}", f.service, f.port, f.local));
        json_line(
            &printer,
            serde_json::json!({ "forward": { "service": f.service, "port": f.port, "local": f.local } }),
        )?;
    }
    if !args.no_logs {
        let services = if args.logs.is_empty() {
            settings.project.config.services.keys().cloned().collect()
        } else {
            args.logs.clone()
        };
        let log_settings = logs::LogSettings {
            namespace: settings.stack.namespace.clone(),
            selector: pods::project_selector(&settings.stack.project),
            services,
            colour: printer.output() == Output::Progress,
        };
        background.spawn(logs::stream(stack.client.raw().clone(), log_settings));
    }
    // Restarted containers and new pods of the synced services get what was synced since the
    // service's last build (their image lacks it).
    let (fresh_tx, mut fresh_rx) = tokio::sync::mpsc::unbounded_channel();
    let synced_services: BTreeSet<String> =
        settings.project.config.services.iter().filter(|(_, s)| !s.sync.is_empty()).map(|(n, _)| n.clone()).collect();
    if !synced_services.is_empty() {
        background.spawn(replay::watch(
            stack.client.raw().clone(),
            settings.stack.namespace.clone(),
            pods::project_selector(&settings.stack.project),
            synced_services,
            fresh_tx,
        ));
    }
    printer.line(format!(
        "watching   {} directories of {} build context(s) in {}; Ctrl-C to stop",
        watcher.watched(),
        watcher.rules().services.len(),
        crate::ui::format_duration(started.elapsed())
    ));
    let watching = serde_json::json!({ "directories": watcher.watched(), "seconds": started.elapsed().as_secs_f64() });
    json_line(&printer, serde_json::json!({ "watching": watching }))?;

    let mut dev = Dev {
        settings: &settings,
        printer,
        latencies: Latencies::default(),
        via: BTreeMap::new(),
        sync_image: None,
        synced: Synced::default(),
    };
    let mut debouncer = Debouncer::default();
    let outcome = loop {
        let deadline = debouncer.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            event = watcher.next() => match event {
                None => break Ok(()),
                Some(first) => {
                    // Everything that queued up (during a reload) joins the batch before it is judged.
                    for event in std::iter::once(first).chain(std::iter::from_fn(|| watcher.try_next())) {
                        match event {
                            Ok((at, paths)) => paths.into_iter().for_each(|p| debouncer.push(p, at)),
                            // A new directory beyond the watch limit: said, and the loop goes on.
                            Err(e) => printer.line(format!("error: {e}")),
                        }
                    }
                }
            },
            Some(fresh) = fresh_rx.recv() => {
                tokio::select! {
                    () = cancel.cancelled() => break Ok(()),
                    result = dev.resend(&stack, fresh) => if let Err(e) = result { break Err(e) },
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                let Some(batch) = debouncer.take_ready(Instant::now()) else { continue };
                tokio::select! {
                    () = cancel.cancelled() => break Ok(()),
                    result = dev.reload(&mut stack, &mut watcher, batch) => if let Err(e) = result { break Err(e) },
                }
            }
        }
    };
    // Ends every forward, open connection and log stream; dropping the watcher removes its watches.
    background.shutdown().await;
    drop(watcher);
    match printer.output() {
        Output::Json => {
            printer.stdout(&(serde_json::json!({ "summary": dev.latencies.summary() }).to_string() + "\n"))?
        }
        _ => printer.line(dev.latencies.summary()),
    }
    outcome?;
    Ok(ExitStatus::Success)
}

/// With `--json`: one line on stdout (forwards, watching, each reload, the summary).
fn json_line(printer: &Printer, value: impl serde::Serialize) -> anyhow::Result<()> {
    if printer.output() == Output::Json {
        printer.stdout(&(serde_json::to_string(&value)? + "\n"))?;
    }
    Ok(())
}

/// A one-time notice (how a service receives files from now on, a setting that needs a
/// restart): `service: message` (`note: message`) on stderr, with `--json` a line
/// `{"notice": {"service", "message"}}` on stdout.
fn notice(printer: &Printer, service: Option<&str>, message: String) {
    printer.line(format!("{}: {message}", service.unwrap_or("note")));
    let value = serde_json::json!({ "notice": { "service": service, "message": message } });
    if let Err(e) = json_line(printer, value) {
        tracing::warn!(error = %e, "cannot print a notice");
    }
}

/// The numeric `USER` of `service`'s image, as the local engine has it: whom the sync
/// container runs as when the pod sets no `runAsUser`.
async fn image_user(stack: &Stack, service: &str) -> Option<(i64, Option<i64>)> {
    let build = stack.builds.iter().find(|b| b.service == service)?;
    let image = stack.engine.inspect_image(&build.image_id).await.ok()?;
    crate::sync::ephemeral::numeric_user(image.config?.user.as_deref()?)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Binds a local port for every service port and spawns its forward.
async fn start_forwards(
    settings: &Settings,
    stack: &Stack,
    background: &mut JoinSet<()>,
) -> anyhow::Result<Vec<forward::Forward>> {
    let mut forwards = Vec::new();
    let mut taken: Vec<u16> = Vec::new();
    for (service, config) in &settings.project.config.services {
        for port in &config.ports {
            let (listener, local) = forward::bind(service, port.port, &taken).await?;
            taken.push(local);
            forwards.push(forward::Forward { service: service.clone(), port: port.port, local });
            background.spawn(forward::serve(
                listener,
                stack.client.raw().clone(),
                settings.stack.namespace.clone(),
                pods::selectors(&settings.stack.project, service),
                port.port,
            ));
        }
    }
    Ok(forwards)
}

/// The loop's state between reloads.
struct Dev<'a> {
    settings: &'a Settings,
    printer: Printer,
    latencies: Latencies,
    /// How each service's pods receive files, once it differs from an exec into the app
    /// container: through a sync container, or not at all (then the service rebuilds).
    via: BTreeMap<String, Mode>,
    /// The sync container's image as the nodes pull it (resolved when first needed).
    sync_image: Option<String>,
    /// What each service's pods received since its last build, for fresh containers.
    synced: Synced,
}

/// How a service's pods receive files, when not by exec into the app container.
#[derive(Debug, Clone)]
enum Mode {
    /// Through the pod's ephemeral sync container.
    Ephemeral,
    /// They cannot: every change rebuilds, for this reason.
    Rebuild(String),
}

impl Dev<'_> {
    /// Plans a settled batch and runs each service's action. Only a failure of the loop's own
    /// machinery is an error; a failed reload is reported and the loop goes on.
    async fn reload(
        &mut self,
        stack: &mut Stack,
        watcher: &mut Watcher,
        batch: crate::sync::debounce::Batch,
    ) -> anyhow::Result<()> {
        let project_file = watcher
            .rules()
            .project_dir
            .join(self.settings.project.file.file_name().unwrap_or_else(|| std::ffi::OsStr::new("samestack.yaml")));
        if batch.paths.contains(&project_file) {
            notice(
                &self.printer,
                None,
                format!(
                    "{} changed; restart `samestack dev` to apply it (sync and rebuilds use the settings it started with)",
                    project_file.display()
                ),
            );
        }
        let rules_changed =
            batch.paths.iter().any(|p| p.file_name().is_some_and(|n| n == ".gitignore" || n == ".dockerignore"));
        if rules_changed {
            watcher.set_rules(watch::rules_for(&self.settings.project)?);
        }
        let changed = watch::settle(batch.paths.iter().cloned());
        let plan = plan::plan(watcher.rules(), &changed);
        for dropped in &plan.dropped {
            tracing::info!(path = %dropped.path.display(), rule = %dropped.rule, "ignored");
        }
        tracing::debug!(events = batch.events, paths = batch.paths.len(), actions = plan.actions.len(), "batch");
        for (service, action) in plan.actions {
            let reload = match action {
                Action::Sync { files, deletions } => {
                    self.synced.record(&service, &files, &deletions);
                    match self.sync(stack, &service, &files, &deletions, batch.first_event, None).await {
                        Some(reload) => reload,
                        None => {
                            let reason = match self.via.get(&service) {
                                Some(Mode::Rebuild(reason)) => reason.clone(),
                                _ => "the pods cannot receive files".to_string(),
                            };
                            self.rebuild(stack, &service, &reason, batch.first_event).await
                        }
                    }
                }
                Action::Rebuild { reason } => self.rebuild(stack, &service, &reason, batch.first_event).await,
            };
            self.report(&reload)?;
        }
        Ok(())
    }

    fn report(&mut self, reload: &Reload) -> anyhow::Result<()> {
        self.latencies.record(reload);
        self.printer.line(reload.human());
        json_line(&self.printer, reload)
    }

    /// Sends a fresh container (a restart, a new pod) what its service's pods received since
    /// the last build, and runs `on_change`; one line, as a reload of kind `resend`.
    async fn resend(&mut self, stack: &Stack, fresh: Fresh) -> anyhow::Result<()> {
        let Some(replay) = self.synced.replay(&fresh.service) else { return Ok(()) };
        let noticed = Instant::now();
        match self.sync(stack, &fresh.service, &replay.files, &replay.deletions, noticed, Some(&fresh)).await {
            Some(reload) => self.report(&reload),
            // The service rebuilds on every change from now on (said once): nothing to send.
            None => Ok(()),
        }
    }

    /// The sync container's image as the nodes pull it: copied into the local registry when
    /// the local engine has it (how other images are preloaded), else as named.
    async fn sync_image(&mut self, stack: &Stack) -> String {
        if let Some(image) = &self.sync_image {
            return image.clone();
        }
        let image = self.settings.sync_image.clone();
        let resolved = match &stack.registry {
            Some(registry)
                if build::require_local_images(&stack.engine, std::slice::from_ref(&image)).await.is_ok() =>
            {
                match build::preload(&stack.engine, std::slice::from_ref(&image), registry.host_port).await {
                    Ok(mut pinned) => pinned.remove(&image).unwrap_or_else(|| image.clone()),
                    Err(e) => {
                        tracing::warn!(image = %image, error = %e, "cannot copy the sync image into the local registry; the nodes pull it as named");
                        image.clone()
                    }
                }
            }
            _ => image.clone(),
        };
        self.sync_image = Some(resolved.clone());
        resolved
    }

    /// Copies into every ready pod (only `fresh`'s pod, when given) and runs `on_change`: by
    /// exec into the app container, or, once its image turned out to have no `sh` or `tar`,
    /// through each pod's sync container. None when the pods cannot receive files (said once;
    /// the service rebuilds from then on).
    async fn sync(
        &mut self,
        stack: &Stack,
        service: &str,
        files: &[Copy],
        deletions: &[String],
        first_event: Instant,
        fresh: Option<&Fresh>,
    ) -> Option<Reload> {
        let client = stack.client.raw();
        let target = Target {
            service: service.to_string(),
            namespace: self.settings.stack.namespace.clone(),
            selectors: pods::selectors(&self.settings.stack.project, service),
            on_change: self.settings.project.config.services.get(service).and_then(|s| s.on_change.clone()),
        };
        let kind = if fresh.is_some() { Kind::Resend } else { Kind::Sync };
        let why = fresh.map(|f| match f.restarted {
            true => format!("container restarted in pod {}", f.pod),
            false => format!("new pod {}", f.pod),
        });
        let reload = |ok: bool, pods: usize, detail: String| Reload {
            service: service.to_string(),
            kind,
            ok,
            seconds: first_event.elapsed().as_secs_f64(),
            files: files.len(),
            deletions: deletions.len(),
            pods,
            detail: match (&why, detail.is_empty()) {
                (Some(why), true) => why.clone(),
                (Some(why), false) => format!("{why}: {detail}"),
                (None, _) => detail,
            },
            build_seconds: None,
        };
        let pods = match pods::ready(client, &target.namespace, &target.selectors).await {
            Ok(mut pods) if fresh.is_some() => {
                pods.retain(|p| p.metadata.name.as_deref() == fresh.map(|f| f.pod.as_str()));
                if pods.is_empty() {
                    // Gone, or not ready any more: its files come with the next sync.
                    return Some(reload(false, 0, "the pod is not ready any more".into()));
                }
                pods
            }
            Ok(pods) if !pods.is_empty() => pods,
            Ok(_) => return Some(reload(false, 0, "no ready pod to sync into".into())),
            Err(e) => return Some(reload(false, 0, format!("listing pods: {e}"))),
        };
        let owned = files.to_vec();
        let archive = match tokio::task::spawn_blocking(move || copy::tar_of(&owned)).await {
            Ok(Ok(archive)) => archive,
            Ok(Err(e)) => return Some(reload(false, 0, format!("reading the changed files: {e}"))),
            Err(e) => return Some(reload(false, 0, format!("reading the changed files: {e}"))),
        };
        let results = loop {
            let via = match self.via.get(service) {
                None => Via::App,
                Some(Mode::Ephemeral) => {
                    Via::Ephemeral { image: self.sync_image(stack).await, image_user: image_user(stack, service).await }
                }
                Some(Mode::Rebuild(_)) => return None,
            };
            let results = copy::sync_pods(client, &target, &pods, &archive, deletions, &via).await;
            if let Some((pod, detail)) = results.iter().find_map(|r| match &r.result {
                Err(Failure::NoTar { detail }) => Some((r.pod.clone(), detail.clone())),
                _ => None,
            }) {
                if let Via::Ephemeral { image, .. } = via {
                    let reason = format!("the sync image {image} has no `sh` or `tar` ({detail})");
                    notice(
                        &self.printer,
                        Some(service),
                        format!("{reason}; this service rebuilds on every change from now on"),
                    );
                    self.via.insert(service.to_string(), Mode::Rebuild(reason));
                    return None;
                }
                // Said once; every pod of the service receives files that way from now on.
                self.via.insert(service.to_string(), Mode::Ephemeral);
                let image = self.sync_image(stack).await;
                notice(
                    &self.printer,
                    Some(service),
                    format!(
                        "the image of pod {pod} has no `sh` or `tar` ({detail}); syncing through an ephemeral container `{}` ({image}) from now on",
                        crate::sync::ephemeral::CONTAINER
                    ),
                );
                continue;
            }
            if let Some(refusal) = results.iter().find_map(|r| match &r.result {
                Err(Failure::Refused(refusal)) => Some(format!("pod {}: {refusal}", r.pod)),
                _ => None,
            }) {
                notice(
                    &self.printer,
                    Some(service),
                    format!("cannot sync into its pods ({refusal}); this service rebuilds on every change from now on"),
                );
                self.via.insert(service.to_string(), Mode::Rebuild(format!("no sync possible: {refusal}")));
                return None;
            }
            break results;
        };
        let mut failures = Vec::new();
        for result in &results {
            if let Err(failure) = &result.result {
                failures.push(format!("{}: {failure}", result.pod));
            }
        }
        // Running means ready: the pods that received the files still pass their probes.
        let ready = pods::ready(client, &target.namespace, &target.selectors).await.unwrap_or_default();
        let synced: BTreeSet<&str> = results.iter().map(|r| r.pod.as_str()).collect();
        let still_ready =
            ready.iter().filter(|p| p.metadata.name.as_deref().is_some_and(|n| synced.contains(n))).count();
        if failures.is_empty() {
            Some(reload(true, still_ready, String::new()))
        } else {
            Some(reload(false, results.len(), failures.join("\n")))
        }
    }

    /// Builds (skipped when the digest is unchanged), pushes, re-renders with the new image,
    /// applies only this service's objects and waits for its rollout.
    async fn rebuild(&mut self, stack: &mut Stack, service: &str, reason: &str, first_event: Instant) -> Reload {
        let settings = self.settings;
        let mut build_seconds = None;
        let outcome: anyhow::Result<usize> = async {
            let built = stack.rebuild(settings, &self.printer, service).await?;
            build_seconds = Some((built.scan_time + built.build_time + built.push_time).as_secs_f64());
            let manifests = stack.render(settings)?;
            stack.apply_service(settings, &manifests, service).await?;
            let selectors = pods::selectors(&settings.stack.project, service);
            let ready = pods::ready(stack.client.raw(), &settings.stack.namespace, &selectors).await;
            Ok(ready.map(|p| p.len()).unwrap_or_default())
        }
        .await;
        let (ok, pods, detail) = match outcome {
            Ok(pods) => {
                // The new image holds every file synced so far.
                self.synced.built(service);
                (true, pods, reason.to_string())
            }
            Err(e) => (false, 0, format!("{reason}: {e:#}")),
        };
        Reload {
            service: service.to_string(),
            kind: Kind::Rebuild,
            ok,
            seconds: first_event.elapsed().as_secs_f64(),
            files: 0,
            deletions: 0,
            pods,
            detail,
            build_seconds,
        }
    }
}
