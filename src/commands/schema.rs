//! `samestack schema [project|profile]`: print the JSON Schema of samestack.yaml or of a
//! profile file (for editor completion).

use anyhow::Context as _;

use crate::cli::{SchemaArgs, SchemaFile};
use crate::commands::{ExitStatus, Session};

pub async fn run(session: &Session<'_>, args: SchemaArgs) -> anyhow::Result<ExitStatus> {
    let schema = match args.of {
        SchemaFile::Project => crate::config::json_schema(),
        SchemaFile::Profile => crate::config::profile_json_schema(),
    };
    session.printer.stdout(&(schema + "\n")).context("writing to stdout")?;
    Ok(ExitStatus::Success)
}
