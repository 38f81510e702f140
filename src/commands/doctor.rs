//! `samestack doctor`: gather the machine's facts, print the checks, exit 1 if anything blocks `up`.

use anyhow::Context as _;

use crate::cli::DoctorArgs;
use crate::commands::{ExitStatus, Session};
use crate::doctor::{Report, gather, render_human};

pub async fn run(session: &Session<'_>, args: DoctorArgs) -> anyhow::Result<ExitStatus> {
    let report = Report::new(gather(&session.global.file).await);
    if args.json {
        session.printer.json(&report).context("writing to stdout")?;
    } else {
        let symbols = console::Term::stdout().features().is_attended() && !session.env.ci();
        session.printer.stdout(&render_human(&report, symbols)).context("writing to stdout")?;
    }
    Ok(if report.blocks_up { ExitStatus::Failure } else { ExitStatus::Success })
}
