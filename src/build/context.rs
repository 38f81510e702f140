//! A build context on disk: which files go to the engine (`.dockerignore` applied), the content
//! digest that names the image, and the tar stream itself. All blocking; callers run it in
//! `spawn_blocking`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ignore::IgnoreRules;

/// Bumped whenever what goes into the digest changes, so old tags are not reused wrongly.
const DIGEST_VERSION: &str = "samestack-context-v1";
/// Name a Dockerfile from outside the context gets inside the tar.
pub const OUTSIDE_DOCKERFILE: &str = ".samestack.Dockerfile";

/// One file, directory or symlink sent to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the context root, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File { size: u64 },
    Dir,
    Symlink { target: String },
}

/// The scanned context: what will be sent, and its digest.
#[derive(Debug, Clone)]
pub struct Scan {
    pub root: PathBuf,
    pub entries: Vec<Entry>,
    /// Path of the Dockerfile inside the tar (what the engine is told to use).
    pub dockerfile_in_tar: String,
    /// Absolute path of the Dockerfile on disk.
    pub dockerfile: PathBuf,
    /// Hex sha256 over entries, contents, Dockerfile and build args.
    pub digest: String,
}

/// Lists what goes into the context of `root` (honouring `root/.dockerignore`) and digests it
/// together with the Dockerfile and the build arguments.
pub fn scan(root: &Path, dockerfile: &Path, build_args: &BTreeMap<String, String>) -> io::Result<Scan> {
    let root = root.canonicalize()?;
    let dockerfile = if dockerfile.is_absolute() { dockerfile.to_path_buf() } else { root.join(dockerfile) };
    let dockerfile = dockerfile.canonicalize()?;
    let rules = match fs::read_to_string(root.join(".dockerignore")) {
        Ok(text) => IgnoreRules::parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => IgnoreRules::default(),
        Err(e) => return Err(e),
    };
    let dockerfile_in_tar = match dockerfile.strip_prefix(&root) {
        Ok(rel) => slash_path(rel),
        Err(_) => OUTSIDE_DOCKERFILE.to_string(),
    };
    // The Dockerfile and .dockerignore always go, whatever the patterns say (as with the CLI).
    let always = [dockerfile_in_tar.clone(), ".dockerignore".to_string()];
    let mut entries = Vec::new();
    walk(&root, &root, &rules, &always, &mut entries)?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let digest = digest(&root, &entries, &dockerfile, &dockerfile_in_tar, build_args)?;
    Ok(Scan { root, entries, dockerfile_in_tar, dockerfile, digest })
}

fn slash_path(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn walk(root: &Path, dir: &Path, rules: &IgnoreRules, always: &[String], out: &mut Vec<Entry>) -> io::Result<()> {
    let mut children: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let rel = slash_path(path.strip_prefix(root).unwrap_or(&path));
        let meta = fs::symlink_metadata(&path)?;
        let excluded = rules.is_excluded(&rel) && !always.contains(&rel);
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if !excluded {
                out.push(Entry { path: rel.clone(), kind: EntryKind::Dir, mode });
            }
            // An excluded directory can only hold sent files when some `!` exception exists.
            if !excluded || rules.has_exceptions() || always.iter().any(|a| a.starts_with(&format!("{rel}/"))) {
                walk(root, &path, rules, always, out)?;
            }
        } else if !excluded {
            let kind = if meta.file_type().is_symlink() {
                EntryKind::Symlink { target: fs::read_link(&path)?.to_string_lossy().into_owned() }
            } else if meta.is_file() {
                EntryKind::File { size: meta.len() }
            } else {
                continue; // sockets, fifos, devices: Docker skips them too
            };
            out.push(Entry { path: rel, kind, mode });
        }
    }
    Ok(())
}

fn digest(
    root: &Path,
    entries: &[Entry],
    dockerfile: &Path,
    dockerfile_in_tar: &str,
    build_args: &BTreeMap<String, String>,
) -> io::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(DIGEST_VERSION.as_bytes());
    hasher.update([0]);
    let mut buf = vec![0u8; 64 * 1024];
    for entry in entries {
        hasher.update(entry.path.as_bytes());
        hasher.update(format!("\0{:o}\0", entry.mode).as_bytes());
        match &entry.kind {
            EntryKind::Dir => hasher.update(b"dir\0"),
            EntryKind::Symlink { target } => {
                hasher.update(b"symlink\0");
                hasher.update(target.as_bytes());
                hasher.update([0]);
            }
            EntryKind::File { size } => {
                hasher.update(format!("file\0{size}\0").as_bytes());
                let mut file = fs::File::open(root.join(&entry.path))?;
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                hasher.update([0]);
            }
        }
    }
    hasher.update(format!("dockerfile\0{dockerfile_in_tar}\0").as_bytes());
    hasher.update(fs::read(dockerfile)?);
    for (key, value) in build_args {
        hasher.update(format!("\0arg\0{key}={value}").as_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the context as a tar to `out`: entries as scanned (owner 0:0, modes kept) plus a
/// Dockerfile from outside the context under [`OUTSIDE_DOCKERFILE`].
pub fn write_tar(scan: &Scan, out: impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    for entry in &scan.entries {
        let path = scan.root.join(&entry.path);
        let meta = fs::symlink_metadata(&path)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(meta.mtime().max(0) as u64);
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, format!("{}/", entry.path), io::empty())?;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, &entry.path, target)?;
            }
            EntryKind::File { .. } => {
                let file = fs::File::open(&path)?;
                // The file may have changed since the scan: send what is there now, sized honestly.
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(file.metadata()?.len());
                tar.append_data(&mut header, &entry.path, file)?;
            }
        }
    }
    if scan.dockerfile_in_tar == OUTSIDE_DOCKERFILE {
        let content = fs::read(&scan.dockerfile)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, OUTSIDE_DOCKERFILE, content.as_slice())?;
    }
    tar.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let full = dir.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, content).unwrap();
        }
        dir
    }

    fn paths(scan: &Scan) -> Vec<&str> {
        scan.entries.iter().map(|e| e.path.as_str()).collect()
    }

    fn no_args() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn dockerignore_excludes_but_dockerfile_and_ignore_file_always_go() {
        let dir = context(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "Dockerfile\n.dockerignore\n*.log\nsecrets\n"),
            ("app.py", "print()\n"),
            ("debug.log", "x"),
            ("secrets/key", "k"),
        ]);
        let scan = scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap();
        assert_eq!(paths(&scan), vec![".dockerignore", "Dockerfile", "app.py"]);
    }

    #[test]
    fn exceptions_inside_excluded_directories_are_found() {
        let dir = context(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "docs\n!docs/keep.md\n"),
            ("docs/keep.md", "k"),
            ("docs/drop.md", "d"),
        ]);
        let scan = scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap();
        assert_eq!(paths(&scan), vec![".dockerignore", "Dockerfile", "docs/keep.md"]);
    }

    #[test]
    fn digest_is_stable_and_sensitive_to_content_mode_args_and_dockerfile() {
        let dir = context(&[("Dockerfile", "FROM scratch\n"), ("a.txt", "one")]);
        let base = scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest;
        assert_eq!(base.len(), 64);
        assert_eq!(
            scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest,
            base,
            "same input, same digest"
        );

        fs::write(dir.path().join("a.txt"), "two").unwrap();
        let changed = scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest;
        assert_ne!(changed, base, "content");

        fs::set_permissions(dir.path().join("a.txt"), fs::Permissions::from_mode(0o755)).unwrap();
        let moded = scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest;
        assert_ne!(moded, changed, "mode");

        let args = BTreeMap::from([("BASE_IMAGE".to_string(), "x".to_string())]);
        assert_ne!(scan(dir.path(), Path::new("Dockerfile"), &args).unwrap().digest, moded, "build args");

        fs::write(dir.path().join("Dockerfile"), "FROM scratch\nUSER 1\n").unwrap();
        assert_ne!(scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest, moded, "dockerfile");
    }

    #[test]
    fn ignored_files_do_not_change_the_digest() {
        let dir = context(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*.log\n"),
            ("a.txt", "one"),
            ("x.log", "1"),
        ]);
        let before = scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest;
        fs::write(dir.path().join("x.log"), "2").unwrap();
        fs::write(dir.path().join("y.log"), "new").unwrap();
        assert_eq!(scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest, before);
    }

    #[test]
    fn renaming_a_file_changes_the_digest() {
        let dir = context(&[("Dockerfile", "FROM scratch\n"), ("a.txt", "same")]);
        let before = scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest;
        fs::rename(dir.path().join("a.txt"), dir.path().join("b.txt")).unwrap();
        assert_ne!(scan(dir.path(), Path::new("Dockerfile"), &no_args()).unwrap().digest, before);
    }

    #[test]
    fn tar_holds_exactly_the_scanned_entries_and_an_outside_dockerfile() {
        let dir = context(&[
            ("ctx/app.py", "print()\n"),
            ("ctx/sub/b.txt", "b"),
            ("ctx/.dockerignore", "*.tmp\n"),
            ("ctx/z.tmp", "t"),
            ("Dockerfile.other", "FROM scratch\n"),
        ]);
        std::os::unix::fs::symlink("app.py", dir.path().join("ctx/link")).unwrap();
        let scan = scan(&dir.path().join("ctx"), &dir.path().join("Dockerfile.other"), &no_args()).unwrap();
        assert_eq!(scan.dockerfile_in_tar, OUTSIDE_DOCKERFILE);
        let mut bytes = Vec::new();
        write_tar(&scan, &mut bytes).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec![".dockerignore", OUTSIDE_DOCKERFILE, "app.py", "link", "sub", "sub/b.txt"]);
    }
}
