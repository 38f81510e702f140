//! Paths named by a project file or a profile (build contexts, Dockerfiles, secret files, sync
//! sources, project templates and profiles, and any future manifest sources): each must
//! resolve, symlinks included, inside the project directory. A cloned repository must not be
//! able to make `samestack up` read `/etc/shadow` or `~/.ssh/id_ed25519` and put it into a
//! Secret on a remote cluster; a value from elsewhere comes through an environment variable.

use std::path::{Component, Path, PathBuf};

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outside {
    /// Written as an absolute path (`/etc/passwd`).
    Absolute,
    /// Resolves (through `..` or a symlink) to `resolved`, which is outside the project.
    Escapes { resolved: PathBuf },
    /// The project directory itself cannot be resolved (it vanished, or is unreadable).
    NoRoot { error: String },
}

/// Resolves `rel` (relative to the project directory `root`) to its canonical path, following
/// every symlink that exists, and refuses anything that ends up outside `root`. The part of the
/// path that does not exist yet is resolved lexically, so a missing file is not an error here
/// (the caller reports it), but `missing/../../x` still is.
pub fn resolve_inside(root: &Path, rel: impl AsRef<Path>) -> Result<PathBuf, Outside> {
    let rel = rel.as_ref();
    if rel.has_root() || rel.is_absolute() {
        return Err(Outside::Absolute);
    }
    let root = root.canonicalize().map_err(|e| Outside::NoRoot { error: e.to_string() })?;
    let full = root.join(rel);
    // The longest prefix of `full` that exists, canonicalized (this follows its symlinks).
    let (mut resolved, rest) = full
        .ancestors()
        .find_map(|a| a.canonicalize().ok().map(|c| (c, full.strip_prefix(a).unwrap_or(Path::new("")).to_path_buf())))
        .unwrap_or_else(|| (root.clone(), rel.to_path_buf()));
    for c in rest.components() {
        match c {
            Component::Normal(seg) => resolved.push(seg),
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(Outside::Absolute),
        }
    }
    if resolved.starts_with(&root) { Ok(resolved) } else { Err(Outside::Escapes { resolved }) }
}

/// The message for a refused path `given`, as written, for `what` (e.g. "secret file");
/// `note` follows the path (e.g. " (in build context `api`)").
pub fn describe(what: &str, given: &str, note: &str, root: &Path, why: &Outside) -> String {
    let given = super::yaml::clip(given);
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    match why {
        Outside::Absolute => format!(
            "{what} `{given}`{note} is an absolute path; every path in a project is relative to the project directory {}",
            root.display()
        ),
        Outside::Escapes { resolved } => format!(
            "{what} `{given}`{note} resolves to {}, outside the project directory {} (symlinks are followed)",
            super::yaml::clip(&resolved.display().to_string()),
            root.display()
        ),
        Outside::NoRoot { error } => format!("cannot resolve the project directory {}: {error}", root.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_paths_resolve_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join("api")).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        let canon = root.canonicalize().unwrap();
        assert_eq!(resolve_inside(&root, "api").unwrap(), canon.join("api"));
        assert_eq!(resolve_inside(&root, "./api/../api/Dockerfile").unwrap(), canon.join("api/Dockerfile"));
        assert_eq!(resolve_inside(&root, "missing/file").unwrap(), canon.join("missing/file"), "missing is fine");
        assert_eq!(resolve_inside(&root, ".").unwrap(), canon);
        assert_eq!(resolve_inside(&root, "/etc/passwd"), Err(Outside::Absolute));
        assert!(matches!(resolve_inside(&root, "../secret"), Err(Outside::Escapes { .. })));
        assert!(matches!(resolve_inside(&root, "missing/../../secret"), Err(Outside::Escapes { .. })));
        assert!(matches!(resolve_inside(&root, "api/../../proj/../secret"), Err(Outside::Escapes { .. })));
        // A symlink inside the project that points outside it.
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        assert_eq!(
            resolve_inside(&root, "link"),
            Err(Outside::Escapes { resolved: dir.path().canonicalize().unwrap().join("secret") })
        );
        assert!(matches!(resolve_inside(&root, "up/secret"), Err(Outside::Escapes { .. })));
        assert!(matches!(resolve_inside(&root, "up/not-there"), Err(Outside::Escapes { .. })));
        // A symlink that stays inside is fine.
        std::os::unix::fs::symlink("api", root.join("alias")).unwrap();
        assert_eq!(resolve_inside(&root, "alias").unwrap(), canon.join("api"));
    }
}
