//! `samestack schema`: print the JSON Schema of samestack.yaml (for editor completion).

use anyhow::Context as _;

use crate::commands::{ExitStatus, Session};

pub async fn run(session: &Session<'_>) -> anyhow::Result<ExitStatus> {
    session.printer.stdout(&(crate::config::json_schema() + "\n")).context("writing to stdout")?;
    Ok(ExitStatus::Success)
}
