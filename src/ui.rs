//! Terminal output: logging setup, and the [`Printer`] that decides what a command draws —
//! nothing with `--quiet`, progress bars on a terminal, plain lines otherwise, and with `--json`
//! nothing on stdout but the JSON document. Every command and the pipeline print through it.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr; `-v` raises the level, `SAMESTACK_LOG` (an `EnvFilter` directive) overrides it.
pub fn init_tracing(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
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

/// What a command draws on stderr, and what it may write to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `--quiet`: only errors (and results a command exists to print, such as `render`'s YAML).
    Quiet,
    /// A terminal: spinners and progress bars, then one line per finished step.
    Progress,
    /// Not a terminal, or CI: the same lines, no bars.
    Plain,
    /// `--json`: stdout carries the JSON document and nothing else; stderr stays silent as
    /// with `--quiet`, so `2>&1` still parses.
    Json,
}

/// Writes a line to stderr, ignoring failure: a closed pipe or a terminal that went away (SIGHUP)
/// must not end a command that still has to clean up (`eprintln!` would panic).
pub fn stderr_line(text: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Decides what to draw; cheap to copy into every step and into the image builds.
/// True when `CI` is set to anything but "", "0" or "false" (as CI services set it): then
/// nothing draws progress bars or asks, and the test tiers may not skip.
pub fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printer {
    output: Output,
}

impl Default for Printer {
    /// What a command without `--quiet` or `--json` gets on this process's stderr.
    fn default() -> Self {
        Printer::detect(false, false)
    }
}

impl Printer {
    /// Pure: the output for the flags and the facts about the terminal.
    /// `--json` wins over `--quiet` (both silence stderr; JSON still goes to stdout).
    pub fn new(quiet: bool, json: bool, terminal: bool, ci: bool) -> Printer {
        let output = match (json, quiet, terminal && !ci) {
            (true, _, _) => Output::Json,
            (false, true, _) => Output::Quiet,
            (false, false, true) => Output::Progress,
            (false, false, false) => Output::Plain,
        };
        Printer { output }
    }

    /// [`Printer::new`] for this process: stderr a terminal? `CI` set?
    pub fn detect(quiet: bool, json: bool) -> Printer {
        Printer::new(quiet, json, std::io::stderr().is_terminal(), is_ci(std::env::var("CI").ok().as_deref()))
    }

    /// A printer with a fixed output (tests, and code that must not draw).
    pub fn with_output(output: Output) -> Printer {
        Printer { output }
    }

    pub fn output(&self) -> Output {
        self.output
    }

    /// Whether spinners and progress bars draw.
    pub fn bars(&self) -> bool {
        self.output == Output::Progress
    }

    /// Whether human status lines go to stderr.
    pub fn lines(&self) -> bool {
        matches!(self.output, Output::Progress | Output::Plain)
    }

    /// A status line on stderr (a step, a note, the report); nothing with `--quiet` or `--json`.
    pub fn line(&self, text: impl std::fmt::Display) {
        if self.lines() {
            stderr_line(text);
        }
    }

    /// A command's result on stdout (YAML, a report): printed in every mode, since it is what
    /// the command was asked for. A closed pipe (`| head`) ends quietly instead of panicking.
    pub fn stdout(&self, text: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(()),
        }
    }

    /// A JSON document on stdout, pretty-printed, with a final newline.
    pub fn json(&self, value: &impl serde::Serialize) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        self.stdout(&(text + "\n"))
    }

    /// A spinner with a prefix, when bars draw; `None` otherwise.
    pub fn spinner(&self, template: &str, prefix: &str) -> Option<indicatif::ProgressBar> {
        self.bars().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(prefix.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        })
    }
}

/// One line per pipeline step with its duration: a spinner while it runs on a TTY, a plain
/// line when it ends otherwise. Nothing with `--quiet`. Keeps the timings for the report.
pub struct Steps {
    printer: Printer,
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
    pub fn new(printer: Printer) -> Self {
        Steps { printer, timings: Vec::new(), details: Vec::new(), running: None }
    }

    pub fn start(&mut self, name: &str) -> Step {
        tracing::info!(step = name, "starting");
        self.running = Some((name.to_string(), std::time::Instant::now()));
        let spinner = self.printer.spinner("{spinner} {prefix:<10} {elapsed}", name);
        Step { name: name.to_string(), started: std::time::Instant::now(), spinner }
    }

    /// Ends a step: prints `name  duration  detail`.
    pub fn finish(&mut self, step: Step, detail: &str) {
        let took = step.started.elapsed();
        if let Some(bar) = step.spinner {
            bar.finish_and_clear();
        }
        self.printer.line(format!("{:<10} {:>7}  {detail}", step.name, format_duration(took)));
        self.running = None;
        self.details.push(detail.to_string());
        self.timings.push((step.name, took));
    }

    /// Records a step that ran without a spinner (one whose own output goes to the terminal,
    /// like the command `ci` runs): prints its line like [`Steps::finish`].
    pub fn record(&mut self, name: &str, took: std::time::Duration, detail: &str) {
        self.printer.line(format!("{name:<10} {:>7}  {detail}", format_duration(took)));
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

    /// The timings, for the pipeline's `Stack` to keep.
    pub fn into_timings(self) -> Vec<(String, std::time::Duration)> {
        self.timings
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

    use super::*;

    #[test]
    fn ci_is_any_value_but_empty_zero_or_false() {
        for (value, ci) in [(None, false), (Some(""), false), (Some("0"), false), (Some("false"), false)] {
            assert_eq!(is_ci(value), ci, "{value:?}");
        }
        for value in ["true", "1", "yes", "gitlab"] {
            assert!(is_ci(Some(value)), "{value}");
        }
    }

    #[test]
    fn durations_read_well_at_every_scale() {
        assert_eq!(format_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn json_wins_then_quiet_then_the_terminal_decides_and_ci_never_draws() {
        assert_eq!(Printer::new(true, true, true, false).output(), Output::Json);
        assert_eq!(Printer::new(true, false, true, false).output(), Output::Quiet);
        assert_eq!(Printer::new(false, false, true, false).output(), Output::Progress);
        assert_eq!(Printer::new(false, false, true, true).output(), Output::Plain);
        assert_eq!(Printer::new(false, false, false, false).output(), Output::Plain);
        assert!(!Printer::with_output(Output::Json).lines() && !Printer::with_output(Output::Quiet).lines());
        assert!(Printer::with_output(Output::Plain).lines() && !Printer::with_output(Output::Plain).bars());
    }
}
