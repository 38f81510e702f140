//! Cancellation by signal: SIGINT and SIGTERM (and SIGHUP for commands that ask for it) fire
//! one [`Cancel`], which the command receives and decides what to do with. `up` stops at once
//! ([`Cancel::or_interrupted`]: every step is idempotent, the next run converges); a command
//! with a teardown (`ci`) waits for [`Cancel::cancelled`], tears down, then returns
//! [`Cancel::interrupted`]. A second signal while that runs ends the process at once, with the
//! same exit status, so a hanging teardown never traps the user.

use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

pub use tokio_util::sync::CancellationToken;

use crate::error::Interrupted;

/// A signal a command can be cancelled by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (2): Ctrl-C. Exit status 130.
    Interrupt,
    /// SIGTERM (15): `kill`, a CI runner's cancel, `docker stop`. Exit status 143.
    Terminate,
    /// SIGHUP (1): the terminal went away. Exit status 129. Opt-in: listening for it undoes `nohup`.
    Hangup,
}

impl Signal {
    /// The signal's number, as in 128 + number for the exit status.
    pub fn number(self) -> i32 {
        match self {
            Signal::Hangup => 1,
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }

    fn kind(self) -> tokio::signal::unix::SignalKind {
        use tokio::signal::unix::SignalKind;
        match self {
            Signal::Interrupt => SignalKind::interrupt(),
            Signal::Terminate => SignalKind::terminate(),
            Signal::Hangup => SignalKind::hangup(),
        }
    }
}

/// SIGINT and SIGTERM: what every command stops on.
pub const DEFAULT_SIGNALS: &[Signal] = &[Signal::Interrupt, Signal::Terminate];

/// A cancellation shared by a command and the signal listener; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    /// The number of the first signal received; 0 while none.
    signal: Arc<AtomicI32>,
    /// Printed when a second signal ends the process (see [`Cancel::on_abandon`]).
    abandon_note: Arc<Mutex<Option<String>>>,
}

impl Cancel {
    /// A cancellation nothing fires but [`Cancel::cancel`] (tests, and callers without signals).
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Listens for `signals` (on the current tokio runtime): the first one cancels, a second
    /// one exits the process at once with 128 + its number.
    pub fn on_signals(signals: &[Signal]) -> std::io::Result<Cancel> {
        let cancel = Cancel::new();
        for &signal in signals {
            let mut stream = tokio::signal::unix::signal(signal.kind())?;
            let cancel = cancel.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if cancel.is_cancelled() {
                        eprintln!("error: {} again: stopping at once", name(signal));
                        if let Some(note) = cancel.abandon_note.lock().ok().and_then(|n| n.clone()) {
                            eprintln!("{note}");
                        }
                        std::process::exit(128 + signal.number());
                    }
                    tracing::info!(signal = name(signal), "cancelling");
                    cancel.cancel(signal);
                }
            });
        }
        Ok(cancel)
    }

    /// Cancels as if `signal` had arrived (the first signal counts).
    pub fn cancel(&self, signal: Signal) {
        let _ = self.signal.compare_exchange(0, signal.number(), Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    /// What a second signal leaves undone, and how to finish it (e.g. `ci`'s teardown: what
    /// is left and the command that removes it): printed before the process exits. The last
    /// note set counts.
    pub fn on_abandon(&self, note: String) {
        if let Ok(mut slot) = self.abandon_note.lock() {
            *slot = Some(note);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// The token, for code that takes a [`CancellationToken`] (child tokens, `run_until_cancelled`).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The error a command returns once cancelled: [`Interrupted`] with the signal (SIGINT when
    /// cancelled without one). `None` while not cancelled.
    pub fn interrupted(&self) -> Option<Interrupted> {
        self.is_cancelled().then(|| match self.signal.load(Ordering::SeqCst) {
            0 => Interrupted::SIGINT,
            signal => Interrupted { signal },
        })
    }

    /// Runs `work` until it ends or a signal arrives, whichever is first; on a signal the work is
    /// dropped where it stands (it must leave nothing the next run cannot finish) and the
    /// result is [`Interrupted`].
    pub async fn or_interrupted<T>(&self, work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        tokio::select! {
            outcome = work => outcome,
            () = self.cancelled() => Err(self.interrupted().unwrap_or(Interrupted::SIGINT).into()),
        }
    }
}

fn name(signal: Signal) -> &'static str {
    match signal {
        Signal::Interrupt => "SIGINT",
        Signal::Terminate => "SIGTERM",
        Signal::Hangup => "SIGHUP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_signal_decides_the_exit_status_and_the_work_is_dropped() {
        let cancel = Cancel::new();
        assert_eq!(cancel.interrupted(), None);
        cancel.cancel(Signal::Terminate);
        cancel.cancel(Signal::Interrupt);
        assert_eq!(cancel.interrupted(), Some(Interrupted { signal: 15 }));
        let err = cancel.or_interrupted(std::future::pending::<anyhow::Result<()>>()).await.unwrap_err();
        assert_eq!(crate::error::exit_code(&err), std::process::ExitCode::from(143));
    }

    #[tokio::test]
    async fn work_that_ends_first_keeps_its_outcome() {
        let cancel = Cancel::new();
        assert_eq!(cancel.or_interrupted(async { Ok(7) }).await.unwrap(), 7);
    }
}
