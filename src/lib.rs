//! samestack: one command from "Docker is installed" to the production stack running locally.
//!
//! The binary (`src/main.rs`) only parses arguments and maps errors to exit codes; each
//! command in [`commands`] orchestrates the domain modules, which do the work; `up`, `dev` and
//! `ci` share the [`pipeline`].

pub mod artifacts;
pub mod build;
pub mod cancel;
pub mod child;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod docker;
pub mod doctor;
pub mod drift;
pub mod ephemeral;
pub mod error;
pub mod ingress;
pub mod kube;
pub mod labels;
pub mod lock;
pub mod pipeline;
pub mod ports;
pub mod preflight;
pub mod profile;
pub mod registry;
pub mod render;
pub mod settings;
pub mod sync;
pub mod tls;
pub mod ui;
pub mod waiver;

/// The layering of DESIGN.md, checked on the source: the binary and `cli` on top, then
/// `commands`, then the `pipeline` and `settings`, then the domain modules, with `error` and
/// `labels` at the bottom importing nothing of the crate; and no import cycle between modules.
/// `config` and `profile` count as one: the project file and the profiles it lists are loaded
/// and checked together.
#[cfg(test)]
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Top-level module → the top-level modules its non-test code names as `crate::<module>`.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, files);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let top =
                rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
            let top = if top == "profile" { "config".to_string() } else { top };
            if top == "main" || top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let entry = graph.entry(top.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    if line[..i].ends_with('$') {
                        continue;
                    }
                    let name: String =
                        line[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    let name = if name == "profile" { "config".to_string() } else { name };
                    if name != top && !name.is_empty() {
                        entry.insert(name);
                    }
                }
            }
        }
        graph
    }

    #[test]
    fn no_module_imports_one_above_it_and_there_is_no_cycle() {
        let graph = imports();
        for bottom in ["error", "labels"] {
            assert!(graph[bottom].is_empty(), "{bottom} imports {:?}", graph[bottom]);
        }
        let above_domain = ["cli", "commands", "pipeline", "settings"];
        for (module, uses) in &graph {
            if above_domain.contains(&module.as_str()) {
                continue;
            }
            let wrong: Vec<_> = uses.iter().filter(|u| above_domain.contains(&u.as_str())).collect();
            assert!(wrong.is_empty(), "domain module {module} imports {wrong:?}");
        }
        for module in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&String> = graph[module].iter().collect();
            while let Some(next) = todo.pop() {
                assert_ne!(next, module, "{module} imports itself through {seen:?}");
                if seen.insert(next.clone()) {
                    todo.extend(graph.get(next).into_iter().flatten());
                }
            }
        }
    }
}
