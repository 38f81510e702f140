//! One samestack at a time per project: `up`, `down` and `ci` hold an exclusive lock on
//! `<state dir>/locks/<project>.lock` while they change the project's cluster, registry and
//! kubeconfig, so two runs never make two clusters or interleave writes to one kubeconfig.
//!
//! The lock is a `flock(2)` on an open file: the kernel drops it when the process ends in any
//! way (return, error, panic, Ctrl-C, SIGKILL), so a lock is never left behind. The file stays;
//! what it holds (the holder's pid and command) is only for the message a waiting run prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Classify, ErrorKind};
use crate::ui::Printer;

/// How often a waiting run tries the lock again. There is no notification for a released
/// `flock`, and a blocking `flock` in a thread would keep the runtime from shutting down on Ctrl-C.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// The held lock of one project; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
    path: PathBuf,
}

impl ProjectLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A failure taking a project's lock.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock file or its directory could not be made or opened.
    #[error("cannot {action} the project lock {path}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Another run kept the lock for longer than this run was willing to wait.
    #[error(
        "another samestack run ({holder}) still works on project {project} after {waited}s\n  fix: wait for it to finish, or stop it; the lock is {path}"
    )]
    Timeout { project: String, holder: String, waited: u64, path: PathBuf },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Environment
    }
}
crate::classify!(Error);

/// Where the lock of `project` lives under the state directory `state_dir`.
pub fn path_for(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{project}.lock"))
}

/// Takes the lock at `path` without waiting: `Ok(None)` when another process holds it.
/// `command` (e.g. `up`) is written into the file for the message of a waiting run.
pub fn try_acquire(path: &Path, command: &str) -> Result<Option<ProjectLock>, Error> {
    let io = |action| move |source| Error::Io { path: path.to_path_buf(), action, source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
    }
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io("open"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(source)) => return Err(io("lock")(source)),
    }
    let holder = format!("pid {}, samestack {command}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(holder.as_bytes()))
        .map_err(io("write"))?;
    Ok(Some(ProjectLock { _file: file, path: path.to_path_buf() }))
}

/// Who holds the lock at `path`, as its holder wrote it (`pid 123, samestack up`).
pub fn holder(path: &Path) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
        _ => "another process".into(),
    }
}

/// Takes the lock of `project`, waiting for the run that holds it (at most `timeout`, when
/// given). `waiting` is called once, with the holder, when the lock is taken by another run.
pub async fn acquire(
    path: &Path,
    project: &str,
    command: &str,
    timeout: Option<Duration>,
    waiting: impl FnOnce(&str),
) -> Result<ProjectLock, Error> {
    if let Some(lock) = try_acquire(path, command)? {
        return Ok(lock);
    }
    let started = Instant::now();
    waiting(&holder(path));
    loop {
        tokio::time::sleep(RETRY_EVERY).await;
        if let Some(lock) = try_acquire(path, command)? {
            return Ok(lock);
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            return Err(Error::Timeout {
                project: project.to_string(),
                holder: holder(path),
                waited: limit.as_secs(),
                path: path.to_path_buf(),
            });
        }
    }
}

/// [`acquire`] for a command of this binary: the lock under the user's state directory, and a
/// line through `printer` while it waits.
pub async fn acquire_for(project: &str, command: &str, printer: &Printer) -> Result<ProjectLock, Error> {
    let path = path_for(&crate::cluster::kubeconfig::state_dir(), project);
    acquire(&path, project, command, None, |holder| {
        printer.line(format!(
            "waiting for another samestack run on project {project} to finish ({holder}; lock {})",
            path.display()
        ));
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "shop");
        let first = try_acquire(&path, "up").unwrap().expect("a free lock is taken");
        assert!(try_acquire(&path, "up").unwrap().is_none(), "a held lock must not be taken twice");
        assert_eq!(holder(&path), format!("pid {}, samestack up", std::process::id()));
        drop(first);
        assert!(try_acquire(&path, "down").unwrap().is_some(), "a dropped lock is free again");
        assert!(holder(&path).ends_with("samestack down"), "the new holder replaces the old one's line");
    }

    #[test]
    fn projects_have_locks_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let _shop = try_acquire(&path_for(dir.path(), "shop"), "up").unwrap().unwrap();
        assert!(try_acquire(&path_for(dir.path(), "blog"), "up").unwrap().is_some());
    }

    #[tokio::test]
    async fn a_waiting_run_says_who_it_waits_for_and_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "shop");
        let first = try_acquire(&path, "up").unwrap().unwrap();
        let (released, release) = tokio::sync::oneshot::channel::<()>();
        let holder_task = tokio::spawn(async move {
            let _ = release.await;
            drop(first);
        });
        let mut told = None;
        let waiter = acquire(&path, "shop", "up", None, |holder| {
            told = Some(holder.to_string());
            released.send(()).unwrap();
        });
        let lock = tokio::time::timeout(Duration::from_secs(60), waiter).await.expect("no deadlock").unwrap();
        holder_task.await.unwrap();
        assert_eq!(told.as_deref(), Some(format!("pid {}, samestack up", std::process::id()).as_str()));
        assert_eq!(lock.path(), path);
    }

    #[tokio::test]
    async fn a_bounded_wait_ends_with_an_error_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "shop");
        let _first = try_acquire(&path, "up").unwrap().unwrap();
        let err = acquire(&path, "shop", "ci", Some(Duration::from_millis(300)), |_| {}).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("project shop") && text.contains("samestack up") && text.contains("fix:"), "{text}");
    }
}
