//! kubeconfig handling: the samestack-owned file per cluster, and merging its one context into
//! the user's kubeconfig (and removing it again) without touching anything else.
//!
//! The pure functions [`merge`] and [`unmerge`] work on `serde_json::Value` trees so that any
//! field samestack does not know (extensions, exec plugins, preferences) survives unchanged.
//! Writes are atomic (temporary file in the same directory, then rename) with mode 0600.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Error;

const SECTIONS: [&str; 3] = ["clusters", "users", "contexts"];

/// The samestack-owned kubeconfig of a cluster: `$XDG_STATE_HOME/samestack/<cluster>/kubeconfig`,
/// or `~/.local/state/samestack/<cluster>/kubeconfig`.
pub fn owned_path(cluster: &str) -> PathBuf {
    state_dir().join(cluster).join("kubeconfig")
}

pub(crate) fn state_dir() -> PathBuf {
    state_dir_for(std::env::var("XDG_STATE_HOME").ok().as_deref(), &home())
}

/// Pure: samestack's state directory, `$XDG_STATE_HOME/samestack` else `<home>/.local/state/samestack`.
pub fn state_dir_for(xdg_state_home: Option<&str>, home: &Path) -> PathBuf {
    match xdg_state_home.filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("samestack"),
        None => home.join(".local/state/samestack"),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

/// Pure: which user kubeconfig to merge into: `--kubeconfig`, else the first entry of
/// `KUBECONFIG` (like kubectl, which writes new entries to the first file), else `~/.kube/config`.
pub fn user_path(explicit: Option<&Path>, kubeconfig_env: Option<&str>, home: &Path) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    let separator = if cfg!(windows) { ';' } else { ':' };
    if let Some(first) = kubeconfig_env.and_then(|v| v.split(separator).find(|p| !p.is_empty())) {
        return PathBuf::from(first);
    }
    home.join(".kube").join("config")
}

fn parse(text: &str, what: &str) -> Result<Value, Error> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    let value: Value = serde_saphyr::from_str(text)
        .map_err(|e| Error::KubeconfigInvalid { what: what.to_string(), message: e.to_string() })?;
    match value {
        Value::Null => Ok(json!({})),
        Value::Object(_) => Ok(value),
        _ => Err(Error::KubeconfigInvalid { what: what.to_string(), message: "not a mapping".into() }),
    }
}

fn render(value: &Value, what: &str) -> Result<String, Error> {
    serde_saphyr::to_string(value)
        .map_err(|e| Error::KubeconfigInvalid { what: what.to_string(), message: e.to_string() })
}

/// Pure: turn a node's `admin.conf` into a single-context kubeconfig named `name` (cluster,
/// user and context entries alike) whose server is `server`.
pub fn for_host(admin_conf: &str, server: &str, name: &str) -> Result<String, Error> {
    let admin = parse(admin_conf, "admin.conf")?;
    let first = |section: &str, key: &str| -> Result<Value, Error> {
        admin[section].as_array().and_then(|a| a.first()).map(|e| e[key].clone()).filter(|v| v.is_object()).ok_or_else(
            || Error::KubeconfigInvalid { what: "admin.conf".into(), message: format!("no {section} entry") },
        )
    };
    let mut cluster = first("clusters", "cluster")?;
    cluster["server"] = json!(server);
    let user = first("users", "user")?;
    let out = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    });
    render(&out, "kubeconfig")
}

/// Pure: a single-cluster kubeconfig (what `kind get kubeconfig` / `k3d kubeconfig get` print)
/// renamed to `name`, keeping its server address.
pub fn rename(text: &str, name: &str) -> Result<String, Error> {
    let value = parse(text, "kubeconfig")?;
    let server = value["clusters"][0]["cluster"]["server"]
        .as_str()
        .ok_or_else(|| Error::KubeconfigInvalid { what: "kubeconfig".into(), message: "no cluster server".into() })?
        .to_string();
    for_host(text, &server, name)
}

/// Pure: `user` with the cluster, user and context entries named `name` taken from `ours`
/// (replacing entries of that name, appending otherwise); every other entry stays as it was.
/// With `set_current`, the current context becomes `name`.
pub fn merge(user: &str, ours: &str, name: &str, set_current: bool) -> Result<String, Error> {
    let mut target = parse(user, "the user kubeconfig")?;
    let ours = parse(ours, "the samestack kubeconfig")?;
    let object = target.as_object_mut().expect("parse returns a mapping");
    object.entry("apiVersion").or_insert(json!("v1"));
    object.entry("kind").or_insert(json!("Config"));
    for section in SECTIONS {
        let entry =
            ours[section].as_array().and_then(|a| a.iter().find(|e| e["name"] == name)).cloned().ok_or_else(|| {
                Error::KubeconfigInvalid {
                    what: "the samestack kubeconfig".into(),
                    message: format!("no {section} entry named {name}"),
                }
            })?;
        let list = object.entry(section).or_insert(json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        let list = list.as_array_mut().expect("just made an array");
        match list.iter_mut().find(|e| e["name"] == name) {
            Some(existing) => *existing = entry,
            None => list.push(entry),
        }
    }
    if set_current {
        object.insert("current-context".into(), json!(name));
    }
    render(&target, "the user kubeconfig")
}

/// Pure: `user` without the entries named `name`; the current context is cleared only when it
/// was `name`. `None` when nothing was there to remove (the file need not be rewritten).
pub fn unmerge(user: &str, name: &str) -> Result<Option<String>, Error> {
    let mut target = parse(user, "the user kubeconfig")?;
    let object = target.as_object_mut().expect("parse returns a mapping");
    let mut changed = false;
    for section in SECTIONS {
        if let Some(list) = object.get_mut(section).and_then(Value::as_array_mut) {
            let before = list.len();
            list.retain(|e| e["name"] != name);
            changed |= list.len() != before;
        }
    }
    if object.get("current-context").is_some_and(|c| c == name) {
        object.insert("current-context".into(), json!(""));
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    render(&target, "the user kubeconfig").map(Some)
}

/// Creates `dir` and every missing parent with mode 0700, whatever the umask: kubeconfigs,
/// the state directory and the development CA hold credentials. Directories that exist keep
/// their mode (a user's `~/.kube` is theirs to set).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Write `content` to `path` atomically with mode 0600, creating the directory (0700) if needed.
pub fn write_atomic(path: &Path, content: &str) -> Result<(), Error> {
    use std::io::Write;
    let io = |action: &'static str| move |source| Error::KubeconfigIo { path: path.to_path_buf(), action, source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(io("create its directory"))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".samestack-kubeconfig")
        .tempfile_in(dir)
        .map_err(io("create a temporary file next to it"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("set mode 0600"))?;
    }
    temp.write_all(content.as_bytes()).map_err(io("write"))?;
    temp.as_file().sync_all().map_err(io("write"))?;
    // Replace a symlinked kubeconfig's target, not the link.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    temp.persist(&target).map_err(|e| Error::KubeconfigIo {
        path: target.clone(),
        action: "replace",
        source: e.error,
    })?;
    Ok(())
}

fn read_or_empty(path: &Path) -> Result<String, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(Error::KubeconfigIo { path: path.to_path_buf(), action: "read", source }),
    }
}

/// Where a cluster's kubeconfig was written.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The samestack-owned single-context file.
    pub owned: PathBuf,
    /// The user's kubeconfig the context was merged into.
    pub user: PathBuf,
    pub context: String,
}

/// Keep `yaml` (a single-context kubeconfig for context `name`) in the samestack-owned file
/// of `cluster` and merge it into the user's kubeconfig at `user`, making it current.
pub fn install(cluster: &str, name: &str, yaml: &str, user: &Path) -> Result<Installed, Error> {
    let owned = owned_path(cluster);
    write_atomic(&owned, yaml)?;
    let merged = merge(&read_or_empty(user)?, yaml, name, true)?;
    write_atomic(user, &merged)?;
    Ok(Installed { owned, user: user.to_path_buf(), context: name.to_string() })
}

/// How often [`uninstall`] tries to rewrite the user's kubeconfig.
const UNINSTALL_ATTEMPTS: u32 = 3;

/// Remove what [`install`] added: the context's entries in the user's kubeconfig and the
/// samestack-owned file. Missing pieces are fine. The rewrite is tried again when it fails
/// (another tool replacing the file at the same moment), re-reading the file each time.
pub fn uninstall(cluster: &str, name: &str, user: &Path) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = unmerge(&read_or_empty(user)?, name).and_then(|text| match text {
            Some(text) => write_atomic(user, &text),
            None => Ok(()),
        });
        match result {
            Ok(()) => break,
            Err(e) if attempt >= UNINSTALL_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "could not remove the context from the kubeconfig; trying again");
                std::thread::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)));
            }
        }
    }
    let owned = owned_path(cluster);
    match std::fs::remove_file(&owned) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::KubeconfigIo { path: owned, action: "remove", source }),
    }
    if let Some(dir) = owned.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://samestack-dev-server-0:6443\n  name: dev\ncontexts:\n- context:\n    cluster: dev\n    user: kubernetes-admin\n  name: kubernetes-admin@dev\ncurrent-context: kubernetes-admin@dev\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    const USER: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod.example:6443\n    extensions:\n    - name: custom\n      extension: {anything: [1, 2]}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: prod, namespace: shop}\nusers:\n- name: prod\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: get-token\n      args: [--cluster, prod]\ncurrent-context: prod\npreferences: {colors: true}\n";

    fn value(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    fn ours() -> String {
        for_host(ADMIN, "https://127.0.0.1:40123", "samestack-dev").unwrap()
    }

    #[test]
    fn for_host_renames_everything_and_points_at_the_published_port() {
        let v = value(&ours());
        assert_eq!(v["clusters"][0]["name"], "samestack-dev");
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://127.0.0.1:40123");
        assert_eq!(v["clusters"][0]["cluster"]["certificate-authority-data"], "Q0E=");
        assert_eq!(v["users"][0]["user"]["client-key-data"], "S0VZ");
        assert_eq!(
            v["contexts"][0],
            json!({"name": "samestack-dev", "context": {"cluster": "samestack-dev", "user": "samestack-dev"}})
        );
        assert_eq!(v["current-context"], "samestack-dev");
        kube::config::Kubeconfig::from_yaml(&ours()).expect("kube-rs reads it");
    }

    #[test]
    fn merge_adds_our_context_and_keeps_every_other_field() {
        let merged = value(&merge(USER, &ours(), "samestack-dev", true).unwrap());
        let before = value(USER);
        for section in SECTIONS {
            assert_eq!(merged[section][0], before[section][0], "{section}: the user's entry is untouched");
            assert_eq!(merged[section][1]["name"], "samestack-dev");
        }
        assert_eq!(merged["preferences"], before["preferences"]);
        assert_eq!(merged["current-context"], "samestack-dev");
    }

    #[test]
    fn merge_twice_replaces_instead_of_duplicating() {
        let once = merge(USER, &ours(), "samestack-dev", true).unwrap();
        let newer = for_host(ADMIN, "https://127.0.0.1:40999", "samestack-dev").unwrap();
        let twice = value(&merge(&once, &newer, "samestack-dev", false).unwrap());
        assert_eq!(twice["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(twice["clusters"][1]["cluster"]["server"], "https://127.0.0.1:40999");
    }

    #[test]
    fn merge_into_an_empty_or_missing_file_makes_a_valid_kubeconfig() {
        let merged = merge("", &ours(), "samestack-dev", true).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&merged).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("samestack-dev"));
    }

    #[test]
    fn unmerge_removes_only_what_merge_added() {
        let merged = merge(USER, &ours(), "samestack-dev", true).unwrap();
        let back = value(&unmerge(&merged, "samestack-dev").unwrap().unwrap());
        let before = value(USER);
        for section in SECTIONS {
            assert_eq!(back[section], before[section], "{section}");
        }
        assert_eq!(back["current-context"], "", "our context was current; nothing is now");
        let merged_not_current = merge(USER, &ours(), "samestack-dev", false).unwrap();
        let back = value(&unmerge(&merged_not_current, "samestack-dev").unwrap().unwrap());
        assert_eq!(back["current-context"], "prod", "someone else's current context stays");
        assert_eq!(unmerge(USER, "samestack-dev").unwrap(), None, "nothing to remove, nothing to write");
    }

    #[test]
    fn user_path_prefers_flag_then_first_kubeconfig_entry_then_home() {
        let home = Path::new("/home/u");
        assert_eq!(user_path(Some(Path::new("/x")), Some("/a:/b"), home), PathBuf::from("/x"));
        assert_eq!(user_path(None, Some(":/a:/b"), home), PathBuf::from("/a"));
        assert_eq!(user_path(None, Some(""), home), PathBuf::from("/home/u/.kube/config"));
        assert_eq!(user_path(None, None, home), PathBuf::from("/home/u/.kube/config"));
    }

    #[test]
    fn directories_made_for_kubeconfigs_are_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/kube/config");
        write_atomic(&path, "apiVersion: v1\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("new")), 0o700);
            assert_eq!(mode(&dir.path().join("new/kube")), 0o700);
            assert_eq!(mode(&path), 0o600);
            // A directory that exists keeps the mode its owner gave it.
            let mine = dir.path().join("mine");
            std::fs::create_dir(&mine).unwrap();
            std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o750)).unwrap();
            write_atomic(&mine.join("config"), "apiVersion: v1\n").unwrap();
            assert_eq!(mode(&mine), 0o750);
        }
    }

    #[test]
    fn install_and_uninstall_touch_only_our_entries_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("kube/config");
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::write(&user, USER).unwrap();
        // SAFETY-free: XDG_STATE_HOME is read per call; a unique cluster name avoids clashes.
        let cluster = format!("unit-{}", std::process::id());
        let installed = install(
            &cluster,
            "samestack-unit",
            &for_host(ADMIN, "https://127.0.0.1:1", "samestack-unit").unwrap(),
            &user,
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&user).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&installed.owned).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> =
            std::fs::read_dir(user.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
        uninstall(&cluster, "samestack-unit", &user).unwrap();
        assert!(!installed.owned.exists());
        let back = value(&std::fs::read_to_string(&user).unwrap());
        assert_eq!(back["contexts"], value(USER)["contexts"]);
    }
}
