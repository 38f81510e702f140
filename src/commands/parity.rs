//! `samestack parity A B`: render both profiles (secrets redacted, images identical) and report
//! every difference as allowed or drift; undeclared drift exits 1.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::Value;

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
    let mut report = parity::classify(&a.name, &b.name, parity::diff(&set_a, &set_b), &allowed);
    render::sources::allow_declared_drift(&mut report, &set_a, &set_b, &project.config);
    // The prod side gets the production-parity lint (both sides when both are prod: one report).
    let lint_args = LintArgs { strict: args.strict, json: args.json };
    let prod = if b.name == "prod" { Some((&b, &set_b)) } else { (a.name == "prod").then_some((&a, &set_a)) };
    let lint = match prod {
        Some((profile, set)) => super::render::lint_prod(session, profile, set, lint_args)?,
        None => None,
    };
    let lint_failed = lint.is_some_and(|r| args.strict && r.has_open());
    let values = render::sources::values_differences(&project, &a.name, &b.name);
    let text = if args.json {
        let mut json = serde_json::to_value(&report).context("serializing the report")?;
        let values: Vec<_> = values
            .into_iter()
            .map(|(source, path, va, vb)| serde_json::json!({ "source": source, "path": path, "a": va, "b": vb }))
            .collect();
        json["helm_values"] = values.into();
        serde_json::to_string_pretty(&json).context("serializing the report")? + "\n"
    } else {
        parity::format_report(&report) + &values_note(&a.name, &b.name, values)
    };
    session.printer.stdout(&text).context("writing to stdout")?;
    Ok(if report.has_drift() || lint_failed { ExitStatus::Failure } else { ExitStatus::Success })
}

/// Where the Helm values of the two profiles differ (the cause of a chart's differences, by
/// values path); empty without Helm sources or differences.
fn values_note(a: &str, b: &str, diffs: Vec<(String, String, Option<Value>, Option<Value>)>) -> String {
    if diffs.is_empty() {
        return String::new();
    }
    let show = |v: &Option<Value>| match v {
        None => "(absent)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let mut out = format!("\nHelm values that differ between {a} and {b}:\n");
    for (source, path, va, vb) in diffs {
        out.push_str(&format!("  {source} {path}: {} -> {}\n", show(&va), show(&vb)));
    }
    out
}
