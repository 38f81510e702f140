//! The command `samestack ci` runs against its environment: started with the environment's
//! variables and this process's stdin/stdout/stderr, given the `SIGINT`/`SIGTERM`/`SIGHUP`
//! that cancelled samestack ([`Cancel`]), stopped at a timeout, and always waited for, so
//! teardown only starts once it is gone.
//!
//! Without a terminal (CI) the command runs in a process group of its own and signals go to
//! the whole group, so `sh -c 'tests...'` and whatever it started stop together. On a terminal
//! it stays in samestack's foreground group, where it can read the terminal; Ctrl-C reaches it
//! from the terminal directly, so SIGINT is not sent a second time.

use std::collections::BTreeMap;
use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::cancel::Cancel;

/// How long a command may take to exit after SIGTERM (timeout) or a forwarded signal before it
/// is killed.
pub const GRACE: Duration = Duration::from_secs(10);

/// Exit code of a command that ran out of time, as coreutils `timeout` reports it.
pub const TIMEOUT_EXIT: i32 = 124;
/// Exit code when the command cannot be executed (found but not runnable), as shells report it.
pub const NOT_EXECUTABLE_EXIT: i32 = 126;
/// Exit code when the command is not found, as shells report it.
pub const NOT_FOUND_EXIT: i32 = 127;

/// The name of a signal number, for messages (`SIGTERM`).
pub fn signal_name(number: i32) -> String {
    match Signal::from_named_raw(number) {
        Some(Signal::INT) => "SIGINT".into(),
        Some(Signal::TERM) => "SIGTERM".into(),
        Some(Signal::HUP) => "SIGHUP".into(),
        Some(Signal::KILL) => "SIGKILL".into(),
        _ => format!("signal {number}"),
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it (not one samestack forwarded).
    Killed { signal: i32 },
    /// It ran longer than the timeout and was stopped.
    TimedOut,
    /// samestack got `signal`, passed it on, and the command ended.
    Interrupted { signal: i32 },
    /// It could not be started; `code` is 126 or 127.
    NotStarted { code: i32 },
}

impl Outcome {
    /// Pure: samestack's exit code for this outcome: the command's own code; 128 + the signal
    /// that ended it or interrupted the run (130 SIGINT, 143 SIGTERM); 124 for a timeout.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Exited(code) | Outcome::NotStarted { code } => code,
            Outcome::Killed { signal } | Outcome::Interrupted { signal } => 128 + signal,
            Outcome::TimedOut => TIMEOUT_EXIT,
        }
    }

    pub fn success(self) -> bool {
        self == Outcome::Exited(0)
    }

    /// One phrase for logs and the summary.
    pub fn describe(self) -> String {
        match self {
            Outcome::Exited(code) => format!("exited with {code}"),
            Outcome::Killed { signal } => format!("killed by {}", signal_name(signal)),
            Outcome::TimedOut => "timed out".into(),
            Outcome::Interrupted { signal } => format!("interrupted by {}", signal_name(signal)),
            Outcome::NotStarted { code } => format!("could not be started ({code})"),
        }
    }
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Added to this process's environment.
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    /// Run in a process group of its own (no terminal), see the module documentation.
    pub own_group: bool,
}

/// Runs the command to its end. The signal that cancels `cancel` is passed on; when the command
/// has not ended [`GRACE`] later, it is killed. (A second signal ends samestack at once, see
/// [`crate::cancel`].)
pub async fn run(spec: &CommandSpec, cancel: &Cancel) -> Outcome {
    let Some((program, args)) = spec.argv.split_first() else {
        return Outcome::NotStarted { code: NOT_FOUND_EXIT };
    };
    let mut command = tokio::process::Command::new(program);
    command.args(args).envs(&spec.env).kill_on_drop(true);
    if spec.own_group {
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let code = if err.kind() == std::io::ErrorKind::NotFound { NOT_FOUND_EXIT } else { NOT_EXECUTABLE_EXIT };
            crate::ui::stderr_line(format!("error: cannot run `{program}`: {err}"));
            return Outcome::NotStarted { code };
        }
    };
    let pid = child.id().and_then(|id| Pid::from_raw(id as i32));
    let send = |signal: Signal| {
        let Some(pid) = pid else { return };
        let sent = if spec.own_group {
            rustix::process::kill_process_group(pid, signal)
        } else {
            rustix::process::kill_process(pid, signal)
        };
        if let Err(err) = sent {
            tracing::debug!("sending {} to the command: {err}", signal_name(signal.as_raw()));
        }
    };
    let deadline = async {
        match spec.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    // First: the command ends, the timeout passes, or a signal arrives.
    let stopped = tokio::select! {
        status = child.wait() => return exited(status),
        () = deadline => {
            crate::ui::stderr_line(format!("samestack: the command ran longer than {}s; stopping it (SIGTERM)", spec.timeout.unwrap_or_default().as_secs()));
            send(Signal::TERM);
            Outcome::TimedOut
        }
        () = cancel.cancelled() => {
            let number = cancel.interrupted().map(|i| i.signal).unwrap_or(Signal::INT.as_raw());
            // On a terminal, Ctrl-C already reached the command through its process group.
            if spec.own_group || number != Signal::INT.as_raw() {
                send(Signal::from_named_raw(number).unwrap_or(Signal::TERM));
            }
            Outcome::Interrupted { signal: number }
        }
    };
    // Then: it ends within the grace period, or it is killed.
    tokio::select! {
        _ = child.wait() => {}
        () = tokio::time::sleep(GRACE) => {
            crate::ui::stderr_line(format!("samestack: the command did not stop within {}s; killing it", GRACE.as_secs()));
            send(Signal::KILL);
            let _ = child.wait().await;
        }
    }
    stopped
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> Outcome {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(signal)) => Outcome::Killed { signal },
            (None, None) => Outcome::Exited(1),
        },
        Err(err) => {
            crate::ui::stderr_line(format!("error: waiting for the command: {err}"));
            Outcome::Exited(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, timeout: Option<Duration>) -> CommandSpec {
        CommandSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("SAMESTACK_TEST_VALUE".to_string(), "42".to_string())]),
            timeout,
            own_group: true,
        }
    }

    #[test]
    fn exit_codes_follow_the_shell_conventions() {
        assert_eq!(Outcome::Exited(3).exit_code(), 3);
        assert_eq!(Outcome::Killed { signal: 9 }.exit_code(), 137);
        assert_eq!(Outcome::Interrupted { signal: 15 }.exit_code(), 143);
        assert_eq!(Outcome::Interrupted { signal: 2 }.exit_code(), 130);
        assert_eq!(Outcome::TimedOut.exit_code(), 124);
        assert_eq!(Outcome::NotStarted { code: 127 }.exit_code(), 127);
        assert!(Outcome::Exited(0).success() && !Outcome::Exited(1).success());
        assert_eq!(Outcome::Interrupted { signal: 15 }.describe(), "interrupted by SIGTERM");
    }

    #[tokio::test]
    async fn the_command_gets_the_environment_and_its_exit_code_is_kept() {
        let cancel = Cancel::new();
        let outcome = run(&spec("test \"$SAMESTACK_TEST_VALUE\" = 42 && exit 3", None), &cancel).await;
        assert_eq!(outcome, Outcome::Exited(3));
    }

    #[tokio::test]
    async fn a_cancelling_signal_is_passed_on_and_decides_the_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let started = dir.path().join("started");
        let cancel = Cancel::new();
        let canceller = {
            let cancel = cancel.clone();
            let started = started.clone();
            tokio::spawn(async move {
                while !started.exists() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                cancel.cancel(crate::cancel::Signal::Terminate);
            })
        };
        let got = dir.path().join("got-sigterm");
        let script = format!(
            "trap 'touch {}; exit 7' TERM; touch {}; while :; do sleep 0.1; done",
            got.display(),
            started.display()
        );
        let outcome = run(&spec(&script, None), &cancel).await;
        canceller.await.unwrap();
        assert!(got.exists(), "the command never got SIGTERM");
        // Its own exit code (7) does not hide that the run was interrupted.
        assert_eq!(outcome, Outcome::Interrupted { signal: 15 });
        assert_eq!(outcome.exit_code(), 143);
    }

    #[tokio::test]
    async fn a_missing_program_is_127() {
        let cancel = Cancel::new();
        let spec = CommandSpec { argv: vec!["/nonexistent/samestack-test".into()], ..spec("", None) };
        assert_eq!(run(&spec, &cancel).await, Outcome::NotStarted { code: 127 });
    }

    #[tokio::test]
    async fn a_timeout_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let cancel = Cancel::new();
        let script = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
        let outcome = run(&spec(&script, Some(Duration::from_millis(500))), &cancel).await;
        assert_eq!(outcome, Outcome::TimedOut);
        let pid = std::fs::read_to_string(&pid_file).expect("the command started its grandchild");
        // Gone, or a zombie waiting for init to reap it: either way it no longer runs.
        let runs = || {
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .map(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
                .unwrap_or(false)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while runs() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!runs(), "the command's grandchild {pid} outlived the timeout");
    }
}
