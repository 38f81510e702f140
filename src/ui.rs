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
    let filter =
        EnvFilter::try_from_env("SAMESTACK_LOG").unwrap_or_else(|_| EnvFilter::new(format!("samestack={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// True when interactive output (progress bars, prompts) makes sense.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// One line per pipeline step with its duration: a spinner while it runs on a TTY, a plain
/// line when it ends otherwise. Nothing with `--quiet`. Keeps the timings for the report.
pub struct Steps {
    quiet: bool,
    interactive: bool,
    timings: Vec<(String, std::time::Duration)>,
    /// Each finished step's detail, in the order of `timings`.
    details: Vec<String>,
    /// The step started last and not finished yet: the one that failed, if the run failed.
    running: Option<(String, std::time::Instant)>,
}

/// A step under way; hand it back to [`Steps::finish`].
pub struct Step {
    name: String,
    started: std::time::Instant,
    spinner: Option<indicatif::ProgressBar>,
}

impl Steps {
    pub fn new(quiet: bool) -> Self {
        Steps { quiet, interactive: interactive(), timings: Vec::new(), details: Vec::new(), running: None }
    }

    pub fn start(&mut self, name: &str) -> Step {
        tracing::info!(step = name, "starting");
        self.running = Some((name.to_string(), std::time::Instant::now()));
        let spinner = (self.interactive && !self.quiet).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix:<10} {elapsed}").expect("valid template"),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Step { name: name.to_string(), started: std::time::Instant::now(), spinner }
    }

    /// Ends a step: prints `name  duration  detail`.
    pub fn finish(&mut self, step: Step, detail: &str) {
        let took = step.started.elapsed();
        let line = format!("{:<10} {:>7}  {detail}", step.name, format_duration(took));
        if let Some(bar) = step.spinner {
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!("{line}");
        }
        self.running = None;
        self.details.push(detail.to_string());
        self.timings.push((step.name, took));
    }

    /// Records a step that ran without a spinner (one whose own output goes to the terminal,
    /// like the command `ci` runs): prints its line like [`Steps::finish`].
    pub fn record(&mut self, name: &str, took: std::time::Duration, detail: &str) {
        if !self.quiet {
            eprintln!("{:<10} {:>7}  {detail}", name, format_duration(took));
        }
        self.details.push(detail.to_string());
        self.timings.push((name.to_string(), took));
    }

    /// Every finished step's detail, in the order of [`Steps::timings`].
    pub fn details(&self) -> &[String] {
        &self.details
    }

    /// The step under way (started, not finished) and how long it has run.
    pub fn running(&self) -> Option<(&str, std::time::Duration)> {
        self.running.as_ref().map(|(name, started)| (name.as_str(), started.elapsed()))
    }

    pub fn timings(&self) -> &[(String, std::time::Duration)] {
        &self.timings
    }
}

/// `0.42s`, `12.3s`, `2m05s`.
pub fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::format_duration;

    #[test]
    fn durations_read_well_at_every_scale() {
        assert_eq!(format_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
