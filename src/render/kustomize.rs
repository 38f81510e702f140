//! What a kustomize source may load. kustomize itself (its default load restrictor,
//! `LoadRestrictionsRootOnly`, which samestack also passes) keeps the *files* a kustomization
//! names (resources, patches, generator inputs) inside that kustomization's directory, symlinks
//! resolved; but a *directory* it names (a base, a component, a generator's kustomization) is a
//! new root anywhere on disk, and an entry that is no local path is fetched as a remote base.
//! So before kustomize runs, every kustomization directory reachable from the source is
//! checked to be inside the project, and entries that are no local path are refused (pure
//! walk over the files, no tool run).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::config::paths;

/// The file names kustomize reads in a kustomization directory, in its order.
const FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// The fields whose entries may name another kustomization directory (or a remote base).
const ROOT_FIELDS: &[&str] = &["resources", "bases", "components", "generators", "transformers", "validators"];

/// Checks the kustomization directories reachable from `start` (resolved, inside the project);
/// the error is the message of [`super::sources::Error::Outside`].
pub fn check_roots(project_dir: &Path, start: &Path) -> Result<(), String> {
    let root = project_dir.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", project_dir.display()))?;
    let mut seen = BTreeSet::new();
    let mut queue = vec![start.to_path_buf()];
    while let Some(dir) = queue.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some((file, text)) = FILES.iter().find_map(|f| std::fs::read_to_string(dir.join(f)).ok().map(|t| (*f, t)))
        else {
            continue; // kustomize reports a directory without a kustomization itself.
        };
        let Ok(doc) = serde_saphyr::from_str::<Value>(&text) else { continue }; // kustomize says why
        let shown = dir.strip_prefix(&root).unwrap_or(&dir).join(file);
        for field in ROOT_FIELDS {
            for entry in doc.get(*field).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                let rel = dir.strip_prefix(&root).unwrap_or(Path::new("")).join(entry);
                let target = paths::resolve_inside(&root, &rel).map_err(|why| {
                    paths::describe(
                        &format!("`{field}` entry"),
                        entry,
                        &format!(" of {}", shown.display()),
                        &root,
                        &why,
                    )
                })?;
                if target.is_dir() {
                    queue.push(target);
                } else if !target.is_file() {
                    return Err(format!(
                        "`{field}` entry `{entry}` of {} is no file or directory inside the project: kustomize would fetch it as a remote base",
                        shown.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn bases_and_components_must_stay_inside_the_project_and_be_local() {
        let tmp = tempfile::tempdir().unwrap();
        let proj = tmp.path().join("proj");
        write(&proj.join("base/kustomization.yaml"), "resources: [cm.yaml]\n");
        write(&proj.join("base/cm.yaml"), "kind: ConfigMap\n");
        write(&proj.join("comp/kustomization.yaml"), "kind: Component\n");
        write(&proj.join("dev/kustomization.yaml"), "resources: [../base, extra.yaml]\ncomponents: [../comp]\n");
        write(&proj.join("dev/extra.yaml"), "kind: ConfigMap\n");
        let start = |d: &str| proj.join(d).canonicalize().unwrap();
        assert_eq!(check_roots(&proj, &start("dev")), Ok(()));

        write(&tmp.path().join("shared/kustomization.yaml"), "resources: []\n");
        // A base outside, reached through the overlay's base: named with where it is written.
        write(&proj.join("base/kustomization.yaml"), "resources: [cm.yaml, ../../shared]\n");
        let err = check_roots(&proj, &start("dev")).unwrap_err();
        assert!(err.starts_with("`resources` entry `../../shared` of base/kustomization.yaml resolves to "), "{err}");
        assert!(err.contains("outside the project directory"), "{err}");
        // Through a symlinked directory.
        write(&proj.join("base/kustomization.yaml"), "resources: [cm.yaml, linked]\n");
        std::os::unix::fs::symlink(tmp.path().join("shared"), proj.join("base/linked")).unwrap();
        assert!(
            check_roots(&proj, &start("dev")).unwrap_err().contains("`linked` of base/kustomization.yaml resolves to")
        );
        // A remote base, and a component elsewhere.
        write(&proj.join("base/kustomization.yaml"), "resources: [\"https://github.com/acme/deploy//base?ref=v1\"]\n");
        let err = check_roots(&proj, &start("base")).unwrap_err();
        assert!(
            err.contains("is no file or directory inside the project: kustomize would fetch it as a remote base"),
            "{err}"
        );
        write(&proj.join("dev/kustomization.yaml"), "components: [/etc]\n");
        assert!(check_roots(&proj, &start("dev")).unwrap_err().contains("is an absolute path"));
    }
}
