//! Save→running latency of each reload, and the summary printed when `dev` ends (pure).
//!
//! A reload's clock starts at the first file event of its batch and stops when the files are
//! written, `on_change` is done and the pods are ready (a sync), or when the new pods are ready
//! (a rebuild). A resend (the syncs since the last build, to a restarted container or a new
//! pod) is timed from when `dev` noticed that container ready.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// What kind of reload ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Sync,
    Rebuild,
    Resend,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sync => "sync",
            Kind::Rebuild => "rebuild",
            Kind::Resend => "resend",
        }
    }
}

/// One reload, as printed (`--json`: one line each).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reload {
    pub service: String,
    pub kind: Kind,
    pub ok: bool,
    /// First file event → running, in seconds.
    pub seconds: f64,
    /// Files copied (sync, resend) — 0 for a rebuild.
    pub files: usize,
    pub deletions: usize,
    /// Pods that received the files, or that the rollout made ready.
    pub pods: usize,
    /// What happened, in a few words (the rebuild's reason, the resend's pod, the failure).
    pub detail: String,
    /// A rebuild's scan + build + push time, in seconds (the rest is render, apply, rollout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_seconds: Option<f64>,
}

impl Reload {
    /// One human line: `api      sync     0.31s  2 files, 1 deleted → 1 pod`.
    pub fn human(&self) -> String {
        let deleted = if self.deletions > 0 { format!(", {} deleted", self.deletions) } else { String::new() };
        let what = match self.kind {
            Kind::Sync => format!("{} file(s){deleted} → {} pod(s)", self.files, self.pods),
            Kind::Rebuild => format!("{} → {} pod(s) ready", self.detail, self.pods),
            Kind::Resend => format!("{} file(s){deleted} synced since the build → {}", self.files, self.detail),
        };
        let status = if self.ok { String::new() } else { format!(" FAILED: {}", self.detail) };
        let what = if self.ok || self.kind == Kind::Sync { what } else { String::new() };
        format!(
            "{:<10} {:<8} {:>7}  {what}{status}",
            self.service,
            self.kind.as_str(),
            crate::ui::format_duration(Duration::from_secs_f64(self.seconds))
        )
        .trim_end()
        .to_string()
    }
}

/// Every reload of the run, for the summary.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    ok: BTreeMap<Kind, Vec<Duration>>,
    failed: usize,
}

impl Latencies {
    pub fn record(&mut self, reload: &Reload) {
        if reload.ok {
            self.ok.entry(reload.kind).or_default().push(Duration::from_secs_f64(reload.seconds));
        } else {
            self.failed += 1;
        }
    }

    /// `reloads: 12 sync (p50 0.31s, p95 0.52s), 2 rebuild (p50 8.10s, p95 9.00s), 1 failed`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .ok
            .iter()
            .map(|(kind, times)| {
                let mut sorted = times.clone();
                sorted.sort();
                format!(
                    "{} {} (p50 {}, p95 {})",
                    sorted.len(),
                    kind.as_str(),
                    crate::ui::format_duration(percentile(&sorted, 50)),
                    crate::ui::format_duration(percentile(&sorted, 95))
                )
            })
            .collect();
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if parts.is_empty() { "reloads: none".into() } else { format!("reloads: {}", parts.join(", ")) }
    }
}

/// Nearest-rank percentile of sorted samples (zero when empty).
pub fn percentile(sorted: &[Duration], p: u32) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn reload(kind: Kind, ok: bool, seconds: f64) -> Reload {
        Reload {
            service: "api".into(),
            kind,
            ok,
            seconds,
            files: 2,
            deletions: 1,
            pods: 1,
            detail: "Dockerfile changed".into(),
            build_seconds: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=20).map(|i| ms(i * 100)).collect();
        assert_eq!(percentile(&samples, 50), ms(1000));
        assert_eq!(percentile(&samples, 95), ms(1900));
        assert_eq!(percentile(&samples[..1], 95), ms(100));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn the_summary_groups_by_kind_and_counts_failures() {
        let mut l = Latencies::default();
        assert_eq!(l.summary(), "reloads: none");
        for s in [0.3, 0.2, 0.4] {
            l.record(&reload(Kind::Sync, true, s));
        }
        l.record(&reload(Kind::Rebuild, true, 8.0));
        l.record(&reload(Kind::Sync, false, 0.1));
        assert_eq!(l.summary(), "reloads: 3 sync (p50 0.30s, p95 0.40s), 1 rebuild (p50 8.00s, p95 8.00s), 1 failed");
    }

    #[test]
    fn one_line_per_reload_for_humans_and_scripts() {
        assert_eq!(
            reload(Kind::Sync, true, 0.31).human(),
            "api        sync       0.31s  2 file(s), 1 deleted → 1 pod(s)"
        );
        assert_eq!(
            reload(Kind::Rebuild, true, 8.0).human(),
            "api        rebuild    8.00s  Dockerfile changed → 1 pod(s) ready"
        );
        let mut resend = reload(Kind::Resend, true, 0.4);
        resend.detail = "new pod api-7d9f-x".into();
        assert_eq!(
            resend.human(),
            "api        resend     0.40s  2 file(s), 1 deleted synced since the build → new pod api-7d9f-x"
        );
        let json = serde_json::to_string(&reload(Kind::Sync, true, 0.31)).unwrap();
        assert_eq!(
            json,
            r#"{"service":"api","kind":"sync","ok":true,"seconds":0.31,"files":2,"deletions":1,"pods":1,"detail":"Dockerfile changed"}"#
        );
    }
}
