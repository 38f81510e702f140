//! Progress lines for a set of builds: one spinner or push bar per service when the printer
//! says bars draw (a terminal, not `--quiet`), nothing otherwise.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Progress display for a set of builds: one line per service on a TTY, nothing otherwise.
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// `bars`: draw them (pass [`crate::ui::Printer::bars`]).
    pub fn new(bars: bool) -> Self {
        Progress { multi: bars.then(MultiProgress::new) }
    }

    pub(super) fn bar(&self, service: &str) -> ServiceBar {
        let Some(multi) = &self.multi else {
            return ServiceBar(None);
        };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(service.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        ServiceBar(Some(bar))
    }
}

/// One service's line; a no-op without a TTY.
pub(super) struct ServiceBar(pub(super) Option<ProgressBar>);

impl ServiceBar {
    pub(super) fn message(&self, msg: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(msg.to_string());
        }
    }

    pub(super) fn start_push(&self, layers: u64) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:.bold} pushing [{bar:20}] {pos}/{len} layers {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_length(layers);
            bar.set_position(0);
        }
    }

    pub(super) fn layer_done(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    pub(super) fn layer_bytes(&self, current: i64, total: i64) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("{:.1}/{:.1} MB", current as f64 / 1e6, total as f64 / 1e6));
        }
    }

    pub(super) fn finish(&self, msg: String) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("✓ {prefix:.bold} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.finish_with_message(msg);
        }
    }
}
