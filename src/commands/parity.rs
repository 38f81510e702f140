//! `samestack parity A B`: render both profiles (secrets redacted, images identical) and report
//! every difference as allowed or drift; undeclared drift exits 1.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::cli::{LintArgs, ParityArgs};
use crate::commands::{ExitStatus, Session};
use crate::config;
use crate::profile;
use crate::render::{self, RenderOptions, parity};

pub async fn run(session: &Session<'_>, args: ParityArgs) -> anyhow::Result<ExitStatus> {
    let project = config::load(&session.global.file)?;
    let a = profile::resolve(&project, &args.a)?;
    let b = profile::resolve(&project, &args.b)?;
    // Same images and no secret values on both sides: only profile-driven differences remain.
    let opts = RenderOptions {
        images: BTreeMap::new(),
        postgres_image: crate::settings::postgres_image(&project, None, &session.env),
        secrets: BTreeMap::new(),
        reveal: false,
    };
    let set_a = render::render(&project, &a, &opts)?;
    let set_b = render::render(&project, &b, &opts)?;
    let mut allowed = a.allowed_drift.clone();
    allowed.extend(b.allowed_drift.iter().cloned());
    let report = parity::classify(&a.name, &b.name, parity::diff(&set_a, &set_b), &allowed);
    // The prod side gets the production-parity lint (both sides when both are prod: one report).
    let lint_args = LintArgs { strict: args.strict, json: args.json };
    let prod = if b.name == "prod" { Some((&b, &set_b)) } else { (a.name == "prod").then_some((&a, &set_a)) };
    let lint = match prod {
        Some((profile, set)) => super::render::lint_prod(session, profile, set, lint_args)?,
        None => None,
    };
    let lint_failed = lint.is_some_and(|r| args.strict && r.has_open());
    let text = if args.json {
        serde_json::to_string_pretty(&report).context("serializing the report")? + "\n"
    } else {
        parity::format_report(&report)
    };
    session.printer.stdout(&text).context("writing to stdout")?;
    Ok(if report.has_drift() || lint_failed { ExitStatus::Failure } else { ExitStatus::Success })
}
