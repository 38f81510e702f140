//! What a batch of changed paths means for each service (pure): copy files into its pods
//! (`Sync`), rebuild its image (`Rebuild`), or nothing. A path only ever concerns the services
//! whose build context holds it (or whose Dockerfile it is); every other service is untouched.
//!
//! A path is dropped, with the rule that dropped it, when it lies under `.git`, when the
//! project's `.gitignore` ignores it, or when the context's `.dockerignore` keeps it out of the
//! image (it can then neither reach the pods nor change the image).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::build::ignore::IgnoreRules;
use crate::config::SyncRule;

/// What the watcher knows about one service.
#[derive(Debug, Clone)]
pub struct ServiceRules {
    pub service: String,
    /// The build context (absolute).
    pub context: PathBuf,
    /// The Dockerfile (absolute; may lie outside the context).
    pub dockerfile: PathBuf,
    /// `from` relative to the context, `to` absolute in the container.
    pub sync: Vec<SyncRule>,
    /// The context's `.dockerignore`.
    pub dockerignore: IgnoreRules,
}

/// Everything the planner needs besides the paths.
#[derive(Debug, Clone, Default)]
pub struct WatchRules {
    /// The project directory (absolute): `.gitignore` paths are relative to it.
    pub project_dir: PathBuf,
    /// The project's `.gitignore` (empty when there is none).
    pub gitignore: IgnoreRules,
    pub services: Vec<ServiceRules>,
}

/// One changed path after the batch settled: whether it still exists decides between a copy
/// and a deletion (a file written then removed within a batch is a deletion).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Changed {
    /// Absolute.
    pub path: PathBuf,
    pub exists: bool,
}

/// A file to copy: local source, absolute destination in the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Copy {
    pub local: PathBuf,
    pub remote: String,
}

/// What to do for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Copy `files` into the running pods and remove `deletions` (absolute container paths).
    Sync { files: Vec<Copy>, deletions: Vec<String> },
    /// Build, push and roll the service; `reason` names the first path that demanded it.
    Rebuild { reason: String },
}

/// A path that led to nothing, and why (shown with `-v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub path: PathBuf,
    pub rule: String,
}

/// The outcome of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// By service name; a service without an entry has nothing to do.
    pub actions: BTreeMap<String, Action>,
    pub dropped: Vec<Dropped>,
}

/// Why a path is not watched at all (the walk skips such directories), or None.
pub fn ignored(rules: &WatchRules, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(&rules.project_dir).ok()?;
    if rel.components().any(|c| c.as_os_str() == ".git") {
        return Some("`.git` is never watched".into());
    }
    let rel = slash(rel);
    if rel.is_empty() {
        return None;
    }
    rules.gitignore.excluded_by(&rel).map(|p| format!(".gitignore: `{p}`"))
}

/// Plans one batch. Paths outside every context, and dropped paths, lead to nothing.
pub fn plan(rules: &WatchRules, changes: &[Changed]) -> Plan {
    let mut out = Plan::default();
    // Sorted and deduplicated so the plan does not depend on event order.
    let changes: BTreeSet<&Changed> = changes.iter().collect();
    let mut syncs: BTreeMap<&str, (BTreeSet<Copy>, BTreeSet<String>)> = BTreeMap::new();
    for change in changes {
        if let Some(rule) = ignored(rules, &change.path) {
            out.dropped.push(Dropped { path: change.path.clone(), rule });
            continue;
        }
        let mut concerned = false;
        for service in &rules.services {
            let Some(decision) = decide(service, change) else { continue };
            concerned = true;
            match decision {
                Decision::Dropped(rule) => out
                    .dropped
                    .push(Dropped { path: change.path.clone(), rule: format!("{}: {rule}", service.service) }),
                Decision::Rebuild(reason) => {
                    if !matches!(out.actions.get(&service.service), Some(Action::Rebuild { .. })) {
                        out.actions.insert(service.service.clone(), Action::Rebuild { reason });
                    }
                }
                Decision::Copy(copy) => {
                    syncs.entry(&service.service).or_default().0.insert(copy);
                }
                Decision::Delete(remote) => {
                    syncs.entry(&service.service).or_default().1.insert(remote);
                }
            }
        }
        if !concerned {
            out.dropped.push(Dropped { path: change.path.clone(), rule: "outside every build context".into() });
        }
    }
    for (service, (files, deletions)) in syncs {
        // A rebuild ships every file anyway.
        out.actions.entry(service.to_string()).or_insert_with(|| Action::Sync {
            files: files.into_iter().collect(),
            deletions: deletions.into_iter().collect(),
        });
    }
    out
}

enum Decision {
    Dropped(String),
    Rebuild(String),
    Copy(Copy),
    Delete(String),
}

/// What `change` means for `service`; None when it does not concern it.
fn decide(service: &ServiceRules, change: &Changed) -> Option<Decision> {
    if change.path == service.dockerfile {
        return Some(Decision::Rebuild(format!("{} changed", display_name(service, &change.path))));
    }
    let rel = change.path.strip_prefix(&service.context).ok()?;
    let rel = slash(rel);
    if rel.is_empty() {
        // The context directory itself (created, removed): only its contents matter.
        return None;
    }
    if rel == ".dockerignore" {
        return Some(Decision::Rebuild(".dockerignore changed (what goes into the image)".into()));
    }
    if let Some(pattern) = service.dockerignore.excluded_by(&rel) {
        return Some(Decision::Dropped(format!(".dockerignore: `{pattern}`")));
    }
    match destination(&service.sync, &rel) {
        Some(remote) if change.exists => Some(Decision::Copy(Copy { local: change.path.clone(), remote })),
        Some(remote) => Some(Decision::Delete(remote)),
        None => Some(Decision::Rebuild(format!("{rel} is outside every sync rule"))),
    }
}

/// The container path of `rel` under the first sync rule that covers it.
pub fn destination(rules: &[SyncRule], rel: &str) -> Option<String> {
    rules.iter().find_map(|rule| {
        let from = rule.from.trim_start_matches("./").trim_end_matches('/');
        let from = if from == "." { "" } else { from };
        let rest = if from.is_empty() {
            rel
        } else if rel == from {
            ""
        } else {
            rel.strip_prefix(from)?.strip_prefix('/')?
        };
        let to = rule.to.trim_end_matches('/');
        Some(if rest.is_empty() { to.to_string() } else { format!("{to}/{rest}") })
    })
}

fn display_name(service: &ServiceRules, path: &Path) -> String {
    path.strip_prefix(&service.context).map(slash).unwrap_or_else(|_| path.display().to_string())
}

fn slash(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> WatchRules {
        WatchRules {
            project_dir: "/p".into(),
            gitignore: IgnoreRules::parse_gitignore(".secrets/\n*.log\n"),
            services: vec![
                ServiceRules {
                    service: "api".into(),
                    context: "/p/api".into(),
                    dockerfile: "/p/api/Dockerfile".into(),
                    sync: vec![SyncRule { from: ".".into(), to: "/app".into() }],
                    dockerignore: IgnoreRules::parse("**/__pycache__\n*.md\n"),
                },
                ServiceRules {
                    service: "web".into(),
                    context: "/p/web".into(),
                    dockerfile: "/p/docker/web.Dockerfile".into(),
                    sync: vec![
                        SyncRule { from: "src/".into(), to: "/srv/src/".into() },
                        SyncRule { from: "./static/index.html".into(), to: "/srv/www/index.html".into() },
                    ],
                    dockerignore: IgnoreRules::default(),
                },
                ServiceRules {
                    service: "worker".into(),
                    context: "/p/worker".into(),
                    dockerfile: "/p/worker/Dockerfile".into(),
                    sync: vec![],
                    dockerignore: IgnoreRules::default(),
                },
            ],
        }
    }

    fn written(path: &str) -> Changed {
        Changed { path: path.into(), exists: true }
    }
    fn removed(path: &str) -> Changed {
        Changed { path: path.into(), exists: false }
    }
    fn copy(local: &str, remote: &str) -> Copy {
        Copy { local: local.into(), remote: remote.into() }
    }
    fn sync(files: Vec<Copy>, deletions: &[&str]) -> Action {
        Action::Sync { files, deletions: deletions.iter().map(|d| d.to_string()).collect() }
    }
    fn rebuild(reason: &str) -> Action {
        Action::Rebuild { reason: reason.into() }
    }

    #[test]
    fn a_synced_edit_copies_into_that_service_only() {
        let plan = plan(&rules(), &[written("/p/api/app.py")]);
        assert_eq!(
            plan.actions,
            BTreeMap::from([("api".into(), sync(vec![copy("/p/api/app.py", "/app/app.py")], &[]))])
        );
        assert!(plan.dropped.is_empty());
    }

    #[test]
    fn nested_paths_keep_their_place_under_the_rule() {
        let plan = plan(&rules(), &[written("/p/api/pkg/sub/m.py"), written("/p/web/src/a/b.js")]);
        assert_eq!(plan.actions["api"], sync(vec![copy("/p/api/pkg/sub/m.py", "/app/pkg/sub/m.py")], &[]));
        assert_eq!(plan.actions["web"], sync(vec![copy("/p/web/src/a/b.js", "/srv/src/a/b.js")], &[]));
    }

    #[test]
    fn a_file_rule_maps_that_file_onto_its_target() {
        let plan = plan(&rules(), &[written("/p/web/static/index.html")]);
        assert_eq!(plan.actions["web"], sync(vec![copy("/p/web/static/index.html", "/srv/www/index.html")], &[]));
        // A sibling the file rule does not name is outside every sync rule.
        let plan = super::plan(&rules(), &[written("/p/web/static/index.html.bak")]);
        assert_eq!(plan.actions["web"], rebuild("static/index.html.bak is outside every sync rule"));
    }

    #[test]
    fn a_rule_prefix_matches_whole_segments_only() {
        assert_eq!(destination(&[SyncRule { from: "src".into(), to: "/a".into() }], "srcx/y"), None);
        assert_eq!(destination(&[SyncRule { from: "src".into(), to: "/a".into() }], "src/y"), Some("/a/y".into()));
        assert_eq!(destination(&[SyncRule { from: "./".into(), to: "/a/".into() }], "y"), Some("/a/y".into()));
        // The first rule that covers a path wins.
        let two =
            [SyncRule { from: "src/gen".into(), to: "/gen".into() }, SyncRule { from: "src".into(), to: "/s".into() }];
        assert_eq!(destination(&two, "src/gen/x"), Some("/gen/x".into()));
        assert_eq!(destination(&two, "src/y"), Some("/s/y".into()));
    }

    #[test]
    fn deletions_are_removed_in_the_container() {
        let plan = plan(&rules(), &[removed("/p/api/old.py"), written("/p/api/new.py")]);
        assert_eq!(plan.actions["api"], sync(vec![copy("/p/api/new.py", "/app/new.py")], &["/app/old.py"]));
    }

    #[test]
    fn a_path_outside_the_sync_rules_rebuilds_that_service_only() {
        let plan = plan(&rules(), &[written("/p/worker/worker.py")]);
        assert_eq!(plan.actions, BTreeMap::from([("worker".into(), rebuild("worker.py is outside every sync rule"))]));
    }

    #[test]
    fn the_dockerfile_rebuilds_also_from_outside_the_context() {
        let plan = plan(&rules(), &[written("/p/docker/web.Dockerfile")]);
        assert_eq!(plan.actions, BTreeMap::from([("web".into(), rebuild("/p/docker/web.Dockerfile changed"))]));
        let plan = super::plan(&rules(), &[written("/p/api/Dockerfile")]);
        assert_eq!(plan.actions, BTreeMap::from([("api".into(), rebuild("Dockerfile changed"))]));
        let plan = super::plan(&rules(), &[removed("/p/api/.dockerignore")]);
        assert_eq!(plan.actions["api"], rebuild(".dockerignore changed (what goes into the image)"));
    }

    #[test]
    fn a_rebuild_wins_over_a_sync_in_the_same_batch() {
        let plan = plan(&rules(), &[written("/p/api/app.py"), written("/p/api/Dockerfile"), written("/p/api/db.py")]);
        assert_eq!(plan.actions, BTreeMap::from([("api".into(), rebuild("Dockerfile changed"))]));
    }

    #[test]
    fn the_first_reason_is_kept_in_path_order() {
        let plan = plan(&rules(), &[written("/p/worker/b.py"), written("/p/worker/a.py")]);
        assert_eq!(plan.actions["worker"], rebuild("a.py is outside every sync rule"));
    }

    #[test]
    fn ignored_paths_say_which_rule_dropped_them() {
        let plan = plan(
            &rules(),
            &[
                written("/p/.git/index"),
                written("/p/api/.git/HEAD"),
                written("/p/.secrets/db-password"),
                written("/p/api/debug.log"),
                written("/p/api/__pycache__/app.cpython-311.pyc"),
                written("/p/api/README.md"),
                written("/p/samestack.yaml.swp"),
            ],
        );
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        let rules: Vec<(String, String)> =
            plan.dropped.iter().map(|d| (d.path.display().to_string(), d.rule.clone())).collect();
        let expect = |path: &str, rule: &str| (path.to_string(), rule.to_string());
        assert_eq!(
            rules,
            [
                expect("/p/.git/index", "`.git` is never watched"),
                expect("/p/.secrets/db-password", ".gitignore: `.secrets/`"),
                expect("/p/api/.git/HEAD", "`.git` is never watched"),
                expect("/p/api/README.md", "api: .dockerignore: `*.md`"),
                expect("/p/api/__pycache__/app.cpython-311.pyc", "api: .dockerignore: `**/__pycache__`"),
                expect("/p/api/debug.log", ".gitignore: `*.log`"),
                expect("/p/samestack.yaml.swp", "outside every build context"),
            ]
        );
    }

    #[test]
    fn a_burst_is_one_action_per_service() {
        let mut changes: Vec<Changed> = (0..1000).map(|i| written(&format!("/p/api/gen/f{i}.py"))).collect();
        changes.extend((0..300).map(|i| written(&format!("/p/worker/w{i}.py"))));
        changes.extend((0..200).map(|i| removed(&format!("/p/api/old/f{i}.py"))));
        let plan = plan(&rules(), &changes);
        assert_eq!(plan.actions.len(), 2);
        let Action::Sync { files, deletions } = &plan.actions["api"] else { panic!("{:?}", plan.actions["api"]) };
        assert_eq!((files.len(), deletions.len()), (1000, 200));
        assert!(matches!(plan.actions["worker"], Action::Rebuild { .. }));
    }

    #[test]
    fn duplicate_events_and_their_order_do_not_matter() {
        let a = plan(&rules(), &[written("/p/api/b.py"), written("/p/api/a.py"), written("/p/api/b.py")]);
        let b = plan(&rules(), &[written("/p/api/a.py"), written("/p/api/b.py")]);
        assert_eq!(a, b);
        assert_eq!(
            a.actions["api"],
            sync(vec![copy("/p/api/a.py", "/app/a.py"), copy("/p/api/b.py", "/app/b.py")], &[])
        );
    }

    #[test]
    fn two_services_sharing_a_context_each_get_their_action() {
        let mut r = rules();
        let mut twin = r.services[0].clone();
        twin.service = "api-twin".into();
        twin.sync = vec![];
        r.services.push(twin);
        let plan = plan(&r, &[written("/p/api/app.py")]);
        assert_eq!(plan.actions["api"], sync(vec![copy("/p/api/app.py", "/app/app.py")], &[]));
        assert_eq!(plan.actions["api-twin"], rebuild("app.py is outside every sync rule"));
    }

    #[test]
    fn the_context_directory_itself_and_paths_elsewhere_do_nothing() {
        let plan = plan(&rules(), &[written("/p/api"), written("/elsewhere/x"), written("/p/samestack.yaml")]);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.dropped.len(), 3);
    }

    #[test]
    fn the_walk_skips_git_and_gitignored_directories() {
        let r = rules();
        assert!(ignored(&r, Path::new("/p/.git")).is_some());
        assert!(ignored(&r, Path::new("/p/.secrets")).is_some());
        assert!(ignored(&r, Path::new("/p/api")).is_none());
        assert!(ignored(&r, Path::new("/p")).is_none());
    }
}
