//! Copying files into running pods in-process, through the exec subresource over the
//! websocket (no kubectl): the changed files as one tar stream on the exec's stdin, deletions
//! removed, then the service's `on_change` — one exec per pod, all ready pods in parallel.
//!
//! Symlinks are sent as their targets' content (a link into the build context would dangle in
//! the container), modes are kept, and files are written as the container's user. A path that
//! user cannot write is reported with the path and the fix; an `on_change` that fails is
//! reported with its exit code and stderr, and the caller carries on.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ::kube::Api;
use ::kube::api::AttachParams;
use futures_util::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::plan::Copy;

/// Exit codes of the sync script that are ours, not `on_change`'s.
const NO_TAR: i32 = 218;
const TAR_FAILED: i32 = 219;
const RM_FAILED: i32 = 220;

/// The shell script run in the container: `$1` is `on_change` (may be empty), the rest are
/// paths to delete, removed before the files are written (a re-sent file may lie under a
/// removed directory). GNU tar needs `-p` to keep modes as a non-root user; busybox keeps
/// them by default and has no `-p`.
const SCRIPT: &str = r#"c=$1; shift
command -v tar >/dev/null 2>&1 || exit 218
p=; tar --version 2>/dev/null | grep -q GNU && p=-p
[ $# -eq 0 ] || rm -rf -- "$@" || exit 220
tar -x $p -o -f - -C / || exit 219
[ -z "$c" ] || exec sh -c "$c""#;

/// Which pods of which container to sync into.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub namespace: String,
    /// Label selectors of the service's pods (see [`super::pods::selectors`]).
    pub selectors: Vec<String>,
    pub on_change: Option<String>,
}

/// What one pod's sync did.
#[derive(Debug, Clone)]
pub struct PodSync {
    pub pod: String,
    pub result: Result<(), Failure>,
}

/// Why a pod's sync did not fully succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The image has no `sh` or no `tar`: files cannot be written through exec.
    NoTar { detail: String },
    /// A destination the container's user cannot write.
    NotWritable { path: String, reason: String, fix: String },
    /// Extracting or deleting failed for another reason.
    Copy { stderr: String },
    /// `on_change` exited non-zero.
    OnChange { exit_code: i32, stderr: String },
    /// The exec itself failed (the pod went away, the API server is unreachable).
    Exec { message: String },
    /// The pod could not get a running sync container (see [`super::ephemeral`]).
    Refused(super::ephemeral::Refusal),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoTar { detail } => write!(f, "the image has no `sh` or `tar` to receive files ({detail})"),
            Failure::NotWritable { path, reason, fix } => write!(f, "cannot write {path}: {reason}\n  fix: {fix}"),
            Failure::Copy { stderr } => write!(f, "copying failed: {}", stderr.trim()),
            Failure::OnChange { exit_code, stderr } => {
                write!(f, "on_change exited with code {exit_code}")?;
                for line in crate::kube::diagnose::tail(stderr, 10) {
                    write!(f, "\n  | {line}")?;
                }
                Ok(())
            }
            Failure::Exec { message } => write!(f, "exec failed: {message}"),
            Failure::Refused(refusal) => write!(f, "{refusal}"),
        }
    }
}

/// Builds the tar of `files` (paths relative to `/` in the archive), following symlinks.
pub fn tar_of(files: &[Copy]) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(true);
    for file in files {
        let remote = file.remote.trim_start_matches('/');
        let meta = match std::fs::metadata(&file.local) {
            Ok(meta) => meta,
            // Removed since the batch settled: the next batch deletes it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            // A symlink to a directory: its contents, followed.
            tar.append_dir_all(remote, &file.local)?;
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.permissions().mode() & 0o7777);
        header.set_mtime(meta.mtime().max(0) as u64);
        header.set_entry_type(tar::EntryType::Regular);
        let content = std::fs::read(&file.local)?;
        header.set_size(content.len() as u64);
        tar.append_data(&mut header, remote, content.as_slice())?;
    }
    tar.into_inner()
}

/// How files reach a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An exec into the app container itself (its image has `sh` and `tar`).
    App,
    /// An exec into the pod's sync container from this image, added when missing
    /// ([`super::ephemeral`]), run as the pod's user, else as the app image's numeric `USER`.
    Ephemeral { image: String, image_user: Option<(i64, Option<i64>)> },
}

/// Copies `archive` into every pod in `pods`, removes `deletions`, runs `on_change`.
pub async fn sync_pods(
    client: &::kube::Client,
    target: &Target,
    pods: &[Pod],
    archive: &[u8],
    deletions: &[String],
    via: &Via,
) -> Vec<PodSync> {
    let runs = pods.iter().map(|pod| async move {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let app = super::pods::container_of(pod, &target.service);
        let result = match via {
            Via::App => sync_pod(client, target, pod, archive, deletions, app, SCRIPT).await,
            Via::Ephemeral { image, image_user } => {
                match super::ephemeral::ensure(client, &target.namespace, pod, app, image, *image_user).await {
                    Ok(()) => {
                        let script = super::ephemeral::SCRIPT;
                        sync_pod(client, target, pod, archive, deletions, super::ephemeral::CONTAINER, script).await
                    }
                    Err(refusal) => Err(Failure::Refused(refusal)),
                }
            }
        };
        PodSync { pod: name, result }
    });
    join_all(runs).await
}

async fn sync_pod(
    client: &::kube::Client,
    target: &Target,
    pod: &Pod,
    archive: &[u8],
    deletions: &[String],
    container: &str,
    script: &str,
) -> Result<(), Failure> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let mut command = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
    command.push(target.on_change.clone().unwrap_or_default());
    command.extend(deletions.iter().cloned());
    let params = AttachParams::default().container(container).stdin(true).stdout(true).stderr(true);
    let mut process = pods.exec(name, command, &params).await.map_err(|e| exec_failure(&e))?;
    let mut stdin = process.stdin().expect("stdin requested");
    let mut stdout = process.stdout().expect("stdout requested");
    let mut stderr = process.stderr().expect("stderr requested");
    let status = process.take_status().expect("status not taken yet");
    let write = async move {
        // The script may exit before reading everything (no tar): that is not our error.
        let _ = stdin.write_all(archive).await;
        let _ = stdin.shutdown().await;
    };
    let read_out = async move {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out).await;
        out
    };
    let read_err = async move {
        let mut err = Vec::new();
        let _ = stderr.read_to_end(&mut err).await;
        err
    };
    let ((), out, err, status) = tokio::join!(write, read_out, read_err, status);
    let _ = process.join().await;
    let stderr = String::from_utf8_lossy(&err).into_owned();
    if !out.is_empty() {
        tracing::info!(pod = name, stdout = %String::from_utf8_lossy(&out).trim_end(), "on_change output");
    }
    let Some(status) = status else {
        return Err(Failure::Exec { message: "the exec ended without a status".into() });
    };
    match exit_code(&status) {
        Ok(0) => Ok(()),
        Ok(NO_TAR) => Err(Failure::NoTar { detail: "`tar` not found".into() }),
        Ok(TAR_FAILED | RM_FAILED) => {
            Err(copy_failure(&stderr, run_as_user(pod, super::pods::container_of(pod, &target.service))))
        }
        Ok(code) => Err(Failure::OnChange { exit_code: code, stderr }),
        Err(message) if message.contains("executable file not found") || message.contains("no such file") => {
            Err(Failure::NoTar { detail: message })
        }
        Err(message) => Err(Failure::Exec { message }),
    }
}

fn exec_failure(e: &::kube::Error) -> Failure {
    let message = e.to_string();
    if message.contains("executable file not found") {
        return Failure::NoTar { detail: message };
    }
    Failure::Exec { message }
}

/// The command's exit code from the exec's final status, or the status message when the
/// command could not run at all.
fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse().ok());
    code.ok_or_else(|| status.message.clone().unwrap_or_else(|| "unknown failure".into()))
}

fn run_as_user(pod: &Pod, container: &str) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .find(|c| c.name == container)
        .and_then(|c| c.security_context.as_ref())
        .and_then(|s| s.run_as_user)
        .or_else(|| spec.security_context.as_ref().and_then(|s| s.run_as_user))
}

/// Reads tar's complaint: GNU (`tar: app/x: Cannot open: Permission denied`) and busybox
/// (`tar: can't open 'app/x': Permission denied`) name the path differently.
pub fn copy_failure(stderr: &str, uid: Option<i64>) -> Failure {
    for line in stderr.lines() {
        // busybox says "can't": the apostrophe is not a quote around the path.
        let line = line.replace("can't", "cannot");
        let line = line.as_str();
        let reason = if line.contains("Read-only file system") {
            "the container's root filesystem is read-only"
        } else if line.contains("Permission denied") {
            "permission denied"
        } else {
            continue;
        };
        let path = line
            .split('\'')
            .nth(1)
            .map(str::to_string)
            .or_else(|| line.strip_prefix("tar: ").and_then(|rest| rest.split(": ").next()).map(str::to_string))
            .unwrap_or_default();
        // Through a sync container the paths are under the app's root as it sees it.
        let path = path.strip_prefix(super::ephemeral::TARGET_ROOT.trim_start_matches('/')).unwrap_or(&path);
        let path = path.strip_prefix(super::ephemeral::TARGET_ROOT).unwrap_or(path);
        let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        let fix = if reason.contains("read-only") {
            "sync needs a writable root filesystem: set `hot_reload: true` in the profile (the built-in dev profile does; it applies to services with `sync` rules), or sync into a mounted volume; for a workload of your own manifests, set `readOnlyRootFilesystem: false` for the dev profile (a values file or an overlay)".to_string()
        } else {
            let who = uid.map(|u| format!("uid {u}")).unwrap_or_else(|| "the container's user".into());
            let dir = Path::new(&path).parent().map(|p| p.display().to_string()).unwrap_or_else(|| "/".into());
            format!(
                "make the synced files and {dir} writable by {who} in the Dockerfile, e.g. `RUN install -d -o {u} -g {u} {dir}` and `COPY --chown={u}:{u} ...`",
                u = uid.map(|u| u.to_string()).unwrap_or_else(|| "USER".into())
            )
        };
        return Failure::NotWritable { path, reason: reason.into(), fix };
    }
    Failure::Copy { stderr: stderr.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_and_busybox_permission_errors_name_the_path() {
        let gnu = copy_failure(
            "tar: app/app.py: Cannot open: Permission denied\ntar: Exiting with failure status\n",
            Some(10001),
        );
        let Failure::NotWritable { path, reason, fix } = gnu else { panic!("{gnu:?}") };
        assert_eq!((path.as_str(), reason.as_str()), ("/app/app.py", "permission denied"));
        assert!(fix.contains("install -d -o 10001 -g 10001 /app") && fix.contains("--chown=10001:10001"), "{fix}");
        let busybox = copy_failure("tar: can't open 'app/new.py': Permission denied\n", None);
        assert!(matches!(&busybox, Failure::NotWritable { path, .. } if path == "/app/new.py"), "{busybox:?}");
    }

    #[test]
    fn a_read_only_root_points_at_hot_reload() {
        let f = copy_failure("tar: app/app.py: Cannot open: Read-only file system\n", Some(10001));
        let Failure::NotWritable { path, fix, .. } = f else { panic!() };
        assert_eq!(path, "/app/app.py");
        assert!(fix.contains("hot_reload: true"), "{fix}");
        assert!(matches!(copy_failure("tar: short read\n", None), Failure::Copy { .. }));
    }

    #[test]
    fn on_change_failures_show_the_code_and_the_last_stderr_lines() {
        let text = Failure::OnChange { exit_code: 3, stderr: "boom\nreally\n".into() }.to_string();
        assert_eq!(text, "on_change exited with code 3\n  | boom\n  | really");
    }

    #[test]
    fn the_tar_follows_symlinks_keeps_modes_and_skips_vanished_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("target.txt"), "content").unwrap();
        std::fs::set_permissions(root.join("target.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink(root.join("target.txt"), root.join("link.txt")).unwrap();
        let files = [
            Copy { local: root.join("run.sh"), remote: "/app/run.sh".into() },
            Copy { local: root.join("link.txt"), remote: "/app/link.txt".into() },
            Copy { local: root.join("gone.txt"), remote: "/app/gone.txt".into() },
        ];
        let bytes = tar_of(&files).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            let header = entry.header();
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.entry_type().is_file(),
                header.mode().unwrap(),
                content,
            ));
        }
        assert_eq!(
            seen,
            [
                ("app/run.sh".to_string(), true, 0o755, "#!/bin/sh\n".to_string()),
                ("app/link.txt".to_string(), true, 0o640, "content".to_string()),
            ]
        );
    }
    use std::io::Read;
}
