//! `samestack render`: load the project, resolve the profile and secrets, render and validate
//! in memory, then print or write everything at once (nothing on any error).

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::cli::{LintArgs, RenderArgs};
use crate::commands::{ExitStatus, Session};
use crate::config::{self, Project};
use crate::error::{Classify, ErrorKind};
use crate::profile;
use crate::render::{self, RenderOptions, RenderedSet, lint};
use crate::ui;

/// A bad `--image` flag.
#[derive(Debug, thiserror::Error)]
#[error(
    "--image {given}: {message}\n  fix: write --image SERVICE=REPO:TAG, e.g. --image api=localhost:5001/shop/api:1.4.2"
)]
pub struct ImageFlagError {
    pub given: String,
    pub message: String,
}

impl Classify for ImageFlagError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::User
    }
}
crate::classify!(ImageFlagError);

/// Parses `--image SERVICE=REF` flags against the project's services.
pub fn parse_images(project: &Project, flags: &[String]) -> Result<BTreeMap<String, String>, ImageFlagError> {
    let mut out = BTreeMap::new();
    for f in flags {
        let err = |message: String| ImageFlagError { given: f.clone(), message };
        let (svc, image) = f.split_once('=').ok_or_else(|| err("expected SERVICE=IMAGE".into()))?;
        if !project.config.services.contains_key(svc) {
            let known: Vec<_> = project.config.services.keys().map(String::as_str).collect();
            return Err(err(format!("unknown service `{svc}` (services: {})", known.join(", "))));
        }
        if !config::image_is_pinned(image) {
            return Err(err(format!("image `{image}` is not pinned (no tag, or latest)")));
        }
        out.insert(svc.to_owned(), image.to_owned());
    }
    Ok(out)
}

pub async fn run(session: &Session<'_>, args: RenderArgs) -> anyhow::Result<ExitStatus> {
    let project = config::load(&session.global.file)?;
    let profile = profile::resolve(&project, &args.profile)?;
    let images = parse_images(&project, &args.image)?;
    let env = &session.env;
    let postgres_image = crate::settings::postgres_image(&project, None, env);
    let opts = RenderOptions::from_env(&project, images, args.reveal, postgres_image, &|key| env.var(key))?;
    let started = std::time::Instant::now();
    let set = render::render(&project, &profile, &opts)?;
    tracing::info!(
        "rendered {} resources for profile {} in {:?}",
        set.resources.len(),
        profile.name,
        started.elapsed()
    );
    let report = lint_prod(session, &profile, &set, args.lint)?;
    if report.as_ref().is_some_and(|r| args.lint.strict && r.has_open()) {
        // Under --strict a finding fails the render like bad input would: nothing is written.
        return Ok(ExitStatus::Failure);
    }
    match &args.output {
        Some(dir) => {
            let dir = dir.clone();
            let revealed = args.reveal;
            let count = set.resources.len();
            let dir = tokio::task::spawn_blocking(move || render::write_dir(&set, &dir, revealed).map(|_| dir))
                .await
                .context("writing the output directory")??;
            session.printer.line(format!("wrote {count} resources ({} profile) to {}", profile.name, dir.display()));
        }
        None => session.printer.stdout(&set.to_yaml()).context("writing to stdout")?,
    }
    Ok(ExitStatus::Success)
}

/// The production-parity lint of a `prod` render (`None` for any other profile), printed to
/// stderr: JSON with `--lint-json`, else text; warnings are left out under `--quiet`, errors
/// (`--strict`) never. The caller decides the exit status.
pub fn lint_prod(
    session: &Session<'_>,
    profile: &crate::profile::ProfileSettings,
    set: &RenderedSet,
    args: LintArgs,
) -> anyhow::Result<Option<lint::LintReport>> {
    if profile.name != "prod" {
        return Ok(None);
    }
    let report = lint::lint(&profile.name, set, &profile.lint_waivers, args.strict);
    if args.json {
        ui::stderr_line(serde_json::to_string_pretty(&report).context("serializing the lint report")?);
    } else if (!report.findings.is_empty() || !report.unused_waivers.is_empty())
        && (args.strict || !session.global.quiet)
    {
        ui::stderr_line(lint::format_report(&report).trim_end());
    }
    Ok(Some(report))
}
