//! Coalescing file events into batches (pure; time is passed in, so tests need no sleeps).
//!
//! A batch closes when no event arrived for `quiet` (an editor's save is a handful of events
//! within a few milliseconds), or at the latest `max_wait` after its first event, so a
//! process that writes without pause (a branch switch, a code generator) still reloads. Events
//! that arrive while a batch is being acted on start the next batch.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Quiet period that closes a batch.
pub const QUIET: Duration = Duration::from_millis(50);
/// Longest a batch stays open.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// A closed batch: each changed path once, and when its first event arrived (where the
/// save→running latency starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub paths: BTreeSet<PathBuf>,
    pub first_event: Instant,
    /// Raw events folded into this batch.
    pub events: usize,
}

/// The open batch.
#[derive(Debug, Clone)]
pub struct Debouncer {
    quiet: Duration,
    max_wait: Duration,
    paths: BTreeSet<PathBuf>,
    first: Option<Instant>,
    last: Option<Instant>,
    events: usize,
}

impl Default for Debouncer {
    fn default() -> Self {
        Debouncer::new(QUIET, MAX_WAIT)
    }
}

impl Debouncer {
    pub fn new(quiet: Duration, max_wait: Duration) -> Self {
        Debouncer { quiet, max_wait, paths: BTreeSet::new(), first: None, last: None, events: 0 }
    }

    /// Records an event for `path` seen at `now`.
    pub fn push(&mut self, path: PathBuf, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.events += 1;
        self.paths.insert(path);
    }

    /// When the open batch closes (None when nothing is pending): sleep until then.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + self.max_wait))
    }

    /// The batch, when it has closed by `now`; the debouncer is empty again afterwards.
    pub fn take_ready(&mut self, now: Instant) -> Option<Batch> {
        if now < self.deadline()? {
            return None;
        }
        let first_event = self.first.take()?;
        self.last = None;
        Some(Batch { paths: std::mem::take(&mut self.paths), first_event, events: std::mem::take(&mut self.events) })
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_pending_has_no_deadline() {
        let mut d = Debouncer::default();
        assert_eq!(d.deadline(), None);
        assert_eq!(d.take_ready(Instant::now()), None);
        assert!(d.is_empty());
    }

    #[test]
    fn a_save_closes_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50), ms(2000));
        d.push("/p/a.py".into(), t0);
        d.push("/p/a.py".into(), t0 + ms(3));
        d.push("/p/.a.py.swp".into(), t0 + ms(5));
        assert_eq!(d.deadline(), Some(t0 + ms(55)));
        assert_eq!(d.take_ready(t0 + ms(54)), None);
        let batch = d.take_ready(t0 + ms(55)).unwrap();
        assert_eq!(batch.first_event, t0);
        assert_eq!(batch.events, 3);
        assert_eq!(batch.paths.len(), 2);
        assert!(d.is_empty());
        assert_eq!(d.take_ready(t0 + ms(500)), None);
    }

    #[test]
    fn a_burst_of_a_thousand_files_is_one_batch() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50), ms(2000));
        // 1,000 files over 400 ms, one every 0.4 ms: never quiet for 50 ms.
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(400 * i);
            d.push(format!("/p/f{i}").into(), now);
            assert_eq!(d.take_ready(now), None, "closed early at file {i}");
        }
        let batch = d.take_ready(t0 + ms(460)).unwrap();
        assert_eq!(batch.paths.len(), 1000);
        assert_eq!(batch.first_event, t0);
    }

    #[test]
    fn a_writer_that_never_pauses_is_cut_at_max_wait() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50), ms(2000));
        let mut batches = Vec::new();
        for i in 0..300u64 {
            let now = t0 + ms(10 * i);
            if let Some(b) = d.take_ready(now) {
                batches.push(b);
            }
            d.push(format!("/p/f{i}").into(), now);
        }
        assert_eq!(batches.len(), 1, "one cut within 3 s of continuous writes");
        assert_eq!(batches[0].first_event, t0);
        assert_eq!(batches[0].paths.len(), 200, "events up to the 2 s mark");
        // What came after the cut starts the next batch, timed from its own first event.
        let next = d.take_ready(t0 + ms(10_000)).unwrap();
        assert_eq!(next.first_event, t0 + ms(2000));
        assert_eq!(next.paths.len(), 100);
    }

    #[test]
    fn events_after_a_close_start_a_new_batch() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50), ms(2000));
        d.push("/p/a".into(), t0);
        assert!(d.take_ready(t0 + ms(60)).is_some());
        d.push("/p/b".into(), t0 + ms(70));
        assert_eq!(d.deadline(), Some(t0 + ms(120)));
        let b = d.take_ready(t0 + ms(120)).unwrap();
        assert_eq!(b.paths.into_iter().collect::<Vec<_>>(), [PathBuf::from("/p/b")]);
        assert_eq!(b.first_event, t0 + ms(70));
    }
}
