//! `samestack doctor`: gather the machine's facts, print the checks, exit 1 if anything blocks `up`.

use crate::cli::{DoctorArgs, GlobalArgs};
use crate::commands::ExitStatus;
use crate::doctor::{Report, gather, render_human};

pub async fn run(args: &DoctorArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let report = Report::new(gather(&global.file).await);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let symbols = console::Term::stdout().features().is_attended() && std::env::var_os("CI").is_none();
        print!("{}", render_human(&report, symbols));
    }
    Ok(if report.blocks_up { ExitStatus::Failure } else { ExitStatus::Success })
}
