//! Terminal output: logging setup, and whether progress bars draw (only on a TTY, never in CI
//! or with --quiet).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

/// Logs go to stderr; `-v` raises the level, `SAMESTACK_LOG` (an `EnvFilter` directive) overrides it.
pub fn init_tracing(args: &GlobalArgs) {
    let level = match (args.quiet, args.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("SAMESTACK_LOG").unwrap_or_else(|_| EnvFilter::new(format!("samestack={level}")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

/// True when interactive output (progress bars, prompts) makes sense.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}
