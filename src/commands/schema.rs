//! `samestack schema`: print the JSON Schema of samestack.yaml (for editor completion).

use crate::commands::ExitStatus;

pub async fn run() -> anyhow::Result<ExitStatus> {
    println!("{}", crate::config::json_schema());
    Ok(ExitStatus::Success)
}
