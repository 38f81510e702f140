//! One module per command; each orchestrates the domain modules (and the shared pipeline in
//! [`crate::pipeline`]) and holds no domain logic.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use crate::cancel::{self, Cancel, Signal};
use crate::cli::{Cli, Command, GlobalArgs, PipelineArgs};
use crate::settings::{self, Env, Overrides};
use crate::ui::Printer;

mod ci;
mod dev;
mod doctor;
mod down;
pub mod init;
pub mod parity;
pub mod render;
pub mod schema;
pub mod status;
mod up;

/// The outcome of a command that ran to the end: success, a negative result such as
/// undeclared drift or a blocking doctor finding (exit code 1), or another program's exit
/// code passed on (`ci` exits with its command's code, 124 when it timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    /// Exit with this code (0 counts as success).
    Code(u8),
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Code(code) => code,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

/// What every command gets besides its own arguments: the global flags, the printer they
/// decide on, the cancellation the signals fire, and the process environment (read once, here).
pub struct Session<'a> {
    pub global: &'a GlobalArgs,
    pub printer: Printer,
    pub cancel: Cancel,
    pub env: Env,
    /// stderr is a terminal and `CI` is unset: prompts may be shown.
    pub interactive: bool,
}

/// Runs a parsed command line. The async runtime starts here, after parsing.
pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let cancel = Cancel::on_signals(signals(&cli.command))?;
        let env = Env::from_process();
        let terminal = std::io::stderr().is_terminal();
        let ci = env.ci();
        let session = Session {
            global: &cli.global,
            printer: Printer::new(cli.global.quiet, json(&cli.command), terminal, ci),
            cancel,
            interactive: terminal && !ci,
            env,
        };
        dispatch(&session, cli.command).await
    })
}

/// SIGINT and SIGTERM for every command; `ci`, which runs in CI runners and terminals that
/// may go away, also SIGHUP.
fn signals(command: &Command) -> &'static [Signal] {
    match command {
        Command::Ci(_) => &[Signal::Interrupt, Signal::Terminate, Signal::Hangup],
        _ => cancel::DEFAULT_SIGNALS,
    }
}

/// Whether the command was asked for machine-readable output.
fn json(command: &Command) -> bool {
    match command {
        Command::Parity(args) => args.json,
        Command::Doctor(args) => args.json,
        Command::Status(args) => args.json,
        Command::Ci(args) => args.json,
        Command::Dev(args) => args.json,
        _ => false,
    }
}

async fn dispatch(session: &Session<'_>, command: Command) -> anyhow::Result<ExitStatus> {
    let cancel = &session.cancel;
    // Commands without a teardown of their own stop where they stand on a signal: dropping
    // their future cancels whatever they were waiting on, and each step is idempotent.
    match command {
        Command::Up(args) => up::run(session, args).await,
        Command::Render(args) => cancel.or_interrupted(render::run(session, args)).await,
        Command::Parity(args) => cancel.or_interrupted(parity::run(session, args)).await,
        Command::Init(args) => cancel.or_interrupted(init::run(session, args)).await,
        Command::Schema(args) => cancel.or_interrupted(schema::run(session, args)).await,
        Command::Doctor(args) => cancel.or_interrupted(doctor::run(session, args)).await,
        Command::Status(args) => cancel.or_interrupted(status::run(session, args)).await,
        Command::Down(args) => cancel.or_interrupted(down::run(session, args)).await,
        Command::Dev(args) => dev::run(session, args).await,
        // `ci` tears its environment down on a signal, so it watches `cancel` itself.
        Command::Ci(args) => ci::run(session, args).await,
    }
}

/// The overrides the pipeline flags `up`, `dev` and `ci` share make, for `profile`.
fn pipeline_overrides(profile: &str, args: &PipelineArgs) -> anyhow::Result<Overrides> {
    Ok(Overrides {
        profile: Some(profile.to_string()),
        build_args: settings::parse_build_args(&args.build_args)?,
        preload: Some(args.preload.clone()),
        build_timeout: Some(std::time::Duration::from_secs(args.build_timeout)),
        ready_timeout: Some(std::time::Duration::from_secs(args.ready_timeout)),
        registry_cache: match &args.registry_cache {
            // Checked before anything is created: a bad directory is bad input (exit 2).
            Some(dir) if !dir.as_os_str().is_empty() => Some(crate::registry::check_cache_dir(dir)?),
            _ => None,
        },
        ..Overrides::default()
    })
}
