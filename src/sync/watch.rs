//! The file watcher: one inotify watch per directory that can matter (the build contexts, the
//! directories of Dockerfiles outside them, the project directory for samestack.yaml), never a
//! poll. Directories that cannot matter — `.git`, what `.gitignore` ignores, what
//! `.dockerignore` keeps out of the image — are not walked and not watched, which is what keeps
//! a large tree (node_modules, build output) cheap. A directory created or moved in later is
//! watched at once and its files are reported as changed.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use super::plan::{Changed, ServiceRules, WatchRules, ignored};
use super::{Error, read_proc_u64};
use crate::build::ignore::IgnoreRules;
use crate::config::Project;

/// Recommended inotify limits (what kind documents for many pods and file watchers); `doctor`
/// recommends the same.
pub const RECOMMENDED_WATCHES: u64 = 524_288;
pub const RECOMMENDED_INSTANCES: u64 = 512;

const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";
const MAX_USER_INSTANCES: &str = "/proc/sys/fs/inotify/max_user_instances";

/// The watch rules of a project: every service with a `build`, its context, Dockerfile, sync
/// rules and `.dockerignore`, and the project's `.gitignore`.
pub fn rules_for(project: &Project) -> Result<WatchRules, Error> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Read { path, source }
    };
    let dir = project.path(".");
    let project_dir = dir.canonicalize().map_err(read_err(&dir))?;
    let gitignore = IgnoreRules::parse_gitignore(&read_optional(&project_dir.join(".gitignore"))?);
    let mut services = Vec::new();
    for (name, service) in &project.config.services {
        let Some(build) = &service.build else { continue };
        let context = project.path(&build.context);
        let context = context.canonicalize().map_err(read_err(&context))?;
        let dockerfile = context.join(&build.dockerfile);
        // A Dockerfile elsewhere is named by its real path, as the events will name it.
        let dockerfile = dockerfile.canonicalize().unwrap_or(dockerfile);
        let dockerignore = IgnoreRules::parse(&read_optional(&context.join(".dockerignore"))?);
        services.push(ServiceRules {
            service: name.clone(),
            context,
            dockerfile,
            sync: service.sync.clone(),
            dockerignore,
        });
    }
    Ok(WatchRules { project_dir, gitignore, services })
}

fn read_optional(path: &Path) -> Result<String, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(Error::Read { path: path.to_path_buf(), source }),
    }
}

/// Why a directory is neither walked nor watched, or None when it is.
fn skip_dir(rules: &WatchRules, dir: &Path) -> Option<String> {
    if let Some(rule) = ignored(rules, dir) {
        return Some(rule);
    }
    // Inside a context, a directory `.dockerignore` excludes (with no `!` exception that could
    // bring files back) holds nothing that reaches the image or the pods. Only when every
    // context holding it says so: contexts may nest.
    let holders: Vec<&ServiceRules> = rules.services.iter().filter(|s| dir.starts_with(&s.context)).collect();
    let excluded_by_all = !holders.is_empty()
        && holders.iter().all(|s| {
            let rel = dir.strip_prefix(&s.context).map(slash).unwrap_or_default();
            !rel.is_empty() && !s.dockerignore.has_exceptions() && s.dockerignore.is_excluded(&rel)
        });
    excluded_by_all.then(|| ".dockerignore".into())
}

fn slash(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// The roots to walk: every context, the directory of each Dockerfile outside its context, and
/// the project directory itself (not recursively: samestack.yaml, .gitignore).
fn roots(rules: &WatchRules) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let recursive: Vec<PathBuf> = rules.services.iter().map(|s| s.context.clone()).collect();
    let mut flat = vec![rules.project_dir.clone()];
    for s in &rules.services {
        if let Some(parent) = s.dockerfile.parent()
            && !recursive.iter().any(|r| parent.starts_with(r))
        {
            flat.push(parent.to_path_buf());
        }
    }
    (recursive, flat)
}

/// Every directory below `root` the watcher watches; skipped directories are logged at debug
/// level with their rule.
fn walk(rules: &WatchRules, root: &Path, dirs: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Gone since the event, or unreadable: nothing to watch there.
            Err(e) if dir != root => {
                tracing::debug!(path = %dir.display(), %e, "not watched");
                continue;
            }
            Err(e) => return Err(e),
        };
        dirs.push(dir.clone());
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                match skip_dir(rules, &path) {
                    Some(rule) => tracing::debug!(path = %path.display(), rule, "directory not watched"),
                    None => stack.push(path),
                }
            }
        }
    }
    Ok(())
}

/// The directories a project's watcher needs (for `doctor`'s inotify estimate, and the watcher).
pub fn watched_dirs(rules: &WatchRules) -> io::Result<Vec<PathBuf>> {
    let (recursive, flat) = roots(rules);
    let mut dirs = Vec::new();
    for root in &recursive {
        walk(rules, root, &mut dirs)?;
    }
    dirs.extend(flat);
    let mut seen = HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    Ok(dirs)
}

/// A running watcher. Dropping it removes every watch.
pub struct Watcher {
    inner: notify::RecommendedWatcher,
    /// Each event with the moment it arrived (a reload's latency starts there, even when the
    /// loop was busy with the previous reload).
    events: mpsc::UnboundedReceiver<(Instant, notify::Result<notify::Event>)>,
    rules: WatchRules,
    watched: HashSet<PathBuf>,
}

impl Watcher {
    /// Walks the tree and watches every directory that can matter. Blocking work (the walk,
    /// the watch calls) runs on a blocking thread.
    pub async fn start(rules: WatchRules) -> Result<Watcher, Error> {
        tokio::task::spawn_blocking(move || Watcher::start_blocking(rules))
            .await
            .expect("the watcher start does not panic")
    }

    fn start_blocking(rules: WatchRules) -> Result<Watcher, Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let inner = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the loop ended.
            let _ = tx.send((Instant::now(), event));
        })
        .map_err(|e| start_error(e, &rules.project_dir))?;
        let dirs = watched_dirs(&rules).map_err(|source| Error::Read { path: rules.project_dir.clone(), source })?;
        let mut watcher = Watcher { inner, events, rules, watched: HashSet::new() };
        let wanted = dirs.len();
        for dir in dirs {
            watcher.add(&dir, wanted)?;
        }
        Ok(watcher)
    }

    fn add(&mut self, dir: &Path, wanted: usize) -> Result<(), Error> {
        if self.watched.contains(dir) {
            return Ok(());
        }
        match self.inner.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(dir.to_path_buf());
                Ok(())
            }
            // Removed between the walk and the watch: nothing to watch.
            Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => Ok(()),
            Err(e) if matches!(&e.kind, notify::ErrorKind::Io(io) if io.kind() == io::ErrorKind::NotFound) => Ok(()),
            Err(e) => Err(watch_error(e, dir, wanted.max(self.watched.len() + 1))),
        }
    }

    /// Watches a directory that appeared, and everything below it that can matter, and returns
    /// the files found there. Each directory is watched before it is listed, so a file created
    /// meanwhile is either listed or reported by its own event (twice is harmless).
    fn watch_new_tree(&mut self, root: &Path) -> Result<Vec<PathBuf>, Error> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            self.add(&dir, self.watched.len() + 1)?;
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => {
                        if skip_dir(&self.rules, &path).is_none() {
                            stack.push(path);
                        }
                    }
                    Ok(_) => files.push(path),
                    Err(_) => {}
                }
            }
        }
        Ok(files)
    }

    /// How many directories are watched.
    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// The rules the watcher was started with (the planner uses the same).
    pub fn rules(&self) -> &WatchRules {
        &self.rules
    }

    /// Replaces the rules (after a `.gitignore` or `.dockerignore` changed). Directories
    /// already watched stay watched; the planner drops what the new rules ignore.
    pub fn set_rules(&mut self, rules: WatchRules) {
        self.rules = rules;
    }

    /// Waits for the next event and returns when it arrived and the paths it names (None when
    /// the watcher stopped). Reads only (opening a file, as a build does) are not changes and
    /// return an empty list. A new directory is watched at once and its files are returned.
    pub async fn next(&mut self) -> Option<Result<(Instant, Vec<PathBuf>), Error>> {
        let (at, event) = self.events.recv().await?;
        Some(self.handle(at, event))
    }

    /// An event that already arrived, without waiting: the loop drains what queued up while it
    /// was busy before it judges whether a batch has settled.
    pub fn try_next(&mut self) -> Option<Result<(Instant, Vec<PathBuf>), Error>> {
        let (at, event) = self.events.try_recv().ok()?;
        Some(self.handle(at, event))
    }

    fn handle(&mut self, at: Instant, event: notify::Result<notify::Event>) -> Result<(Instant, Vec<PathBuf>), Error> {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                let path = e.paths.first().cloned().unwrap_or_else(|| self.rules.project_dir.clone());
                return Err(watch_error(e, &path, self.watched.len() + 1));
            }
        };
        let counts = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) | EventKind::Other => false,
            EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        };
        if !counts {
            return Ok((at, Vec::new()));
        }
        let mut paths = Vec::new();
        for path in event.paths {
            let is_new_dir = !self.watched.contains(&path)
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
                && skip_dir(&self.rules, &path).is_none();
            if is_new_dir {
                match self.watch_new_tree(&path) {
                    Ok(files) => paths.extend(files),
                    Err(e) => return Err(e),
                }
            } else {
                if !path.exists() {
                    // inotify drops the watch of a removed directory by itself.
                    self.watched.remove(&path);
                }
                paths.push(path);
            }
        }
        Ok((at, paths))
    }
}

/// The state of each path once a batch settled. Existing directories are left out: a new one
/// was expanded into its files when it appeared, and a directory's own events carry nothing
/// to copy.
pub fn settle(paths: impl IntoIterator<Item = PathBuf>) -> Vec<Changed> {
    paths
        .into_iter()
        .filter_map(|path| match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some(Changed { path, exists: true }),
            // Gone, or a symlink whose target is gone: nothing to copy, remove it in the pods.
            Err(_) => Some(Changed { path, exists: false }),
        })
        .collect()
}

fn start_error(e: notify::Error, dir: &Path) -> Error {
    match &e.kind {
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(24) => {
            let limit = read_proc_u64(MAX_USER_INSTANCES).unwrap_or(128);
            Error::InstanceLimit { limit, suggested: RECOMMENDED_INSTANCES.max(limit * 2) }
        }
        _ => Error::Watch { path: dir.to_path_buf(), source: e },
    }
}

fn watch_error(e: notify::Error, path: &Path, wanted: usize) -> Error {
    let limit_reached = matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(28));
    if limit_reached {
        let limit = read_proc_u64(MAX_USER_WATCHES).unwrap_or(8192);
        return Error::WatchLimit {
            path: path.to_path_buf(),
            limit,
            wanted,
            suggested: suggested_watches(limit, wanted as u64),
        };
    }
    Error::Watch { path: path.to_path_buf(), source: e }
}

/// The limit to advise: the recommended one, or room for this project's watches on top of the
/// current limit, whichever is larger, rounded up to a power of two.
pub fn suggested_watches(limit: u64, wanted: u64) -> u64 {
    RECOMMENDED_WATCHES.max((limit + wanted * 2).next_power_of_two())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advised_limit_leaves_room_for_the_project() {
        assert_eq!(suggested_watches(8192, 100), RECOMMENDED_WATCHES);
        assert_eq!(suggested_watches(524_288, 200_000), 1_048_576);
    }

    #[test]
    fn the_limit_error_names_the_sysctl_and_the_value() {
        let e = Error::WatchLimit { path: "/p/api".into(), limit: 8192, wanted: 9000, suggested: 524_288 };
        let text = e.to_string();
        assert!(text.contains("fs.inotify.max_user_watches = 8192"), "{text}");
        assert!(text.contains("sudo sysctl fs.inotify.max_user_watches=524288"), "{text}");
    }

    #[test]
    fn the_walk_skips_ignored_directories_and_settle_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in [".git/objects", "api/pkg", "api/__pycache__", "api/node_modules/x", "out/gen"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "out/\n").unwrap();
        std::fs::write(root.join("api/.dockerignore"), "**/__pycache__\nnode_modules\n").unwrap();
        std::fs::write(root.join("api/Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(root.join("api/a.py"), "a").unwrap();
        std::os::unix::fs::symlink(root.join("api/a.py"), root.join("api/link.py")).unwrap();
        std::os::unix::fs::symlink(root.join("api/gone.py"), root.join("api/dangling.py")).unwrap();
        let yaml = "name: p\nservices:\n  api:\n    build: { context: api }\n    ports: [{ port: 80 }]\n";
        std::fs::write(root.join("samestack.yaml"), yaml).unwrap();
        let project = crate::config::load(&root.join("samestack.yaml")).unwrap();
        let rules = rules_for(&project).unwrap();
        let mut dirs = watched_dirs(&rules).unwrap();
        dirs.sort();
        assert_eq!(dirs, [root.clone(), root.join("api"), root.join("api/pkg")]);
        let settled = settle([root.join("api/pkg"), root.join("api/link.py"), root.join("api/dangling.py")]);
        assert_eq!(
            settled,
            [
                Changed { path: root.join("api/link.py"), exists: true },
                Changed { path: root.join("api/dangling.py"), exists: false }
            ]
        );
    }

    #[tokio::test]
    async fn a_new_directory_is_watched_and_its_files_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("api")).unwrap();
        std::fs::write(root.join("api/Dockerfile"), "FROM scratch\n").unwrap();
        let yaml = "name: p\nservices:\n  api:\n    build: { context: api }\n    ports: [{ port: 80 }]\n";
        std::fs::write(root.join("samestack.yaml"), yaml).unwrap();
        let project = crate::config::load(&root.join("samestack.yaml")).unwrap();
        let mut watcher = Watcher::start(rules_for(&project).unwrap()).await.unwrap();
        assert_eq!(watcher.watched(), 2);
        // Made elsewhere and moved in: inotify reports only the directory.
        std::fs::create_dir_all(root.join("staging/sub")).unwrap();
        std::fs::write(root.join("staging/sub/new.py"), "x").unwrap();
        std::fs::rename(root.join("staging"), root.join("api/moved")).unwrap();
        let mut seen = Vec::new();
        while !seen.contains(&root.join("api/moved/sub/new.py")) {
            let paths = tokio::time::timeout(std::time::Duration::from_secs(10), watcher.next())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap()
                .1;
            seen.extend(paths);
        }
        assert_eq!(watcher.watched(), 4, "the moved-in directory and its subdirectory are watched");
        std::fs::write(root.join("api/moved/sub/later.py"), "y").unwrap();
        loop {
            let paths = tokio::time::timeout(std::time::Duration::from_secs(10), watcher.next())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap()
                .1;
            if paths.contains(&root.join("api/moved/sub/later.py")) {
                break;
            }
        }
    }
}
