//! `samestack schema`: print the JSON Schema of samestack.yaml (for editor completion).

use crate::commands::ExitStatus;

pub async fn run() -> anyhow::Result<ExitStatus> {
    super::render::print_stdout(&(crate::config::json_schema() + "\n"))?;
    Ok(ExitStatus::Success)
}
