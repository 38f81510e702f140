//! The environment of one `samestack ci` run, planned before anything exists: its name (the
//! project's name plus a run id, or `--name`), which becomes the cluster, registry, namespace and
//! label value (the settings follow it through [`crate::settings::Overrides::isolate`], which
//! also picks its free host ports); and the environment the command under test gets, also
//! written as a dotenv file.
//!
//! Pure except for [`run_id`] (clock and pid): the planning is unit-tested without Docker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Longest environment name: room for the node containers' suffixes (`-control-plane`,
/// `-worker2`) and the registry's `samestack-<name>-registry` within Docker's and
/// Kubernetes' 63-character labels.
pub const MAX_NAME: usize = 40;

/// Six hex digits from the clock and this process's id: distinct for runs on one host.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let digest = Sha256::digest(format!("{nanos}-{}", std::process::id()));
    digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

/// Pure: the environment name of a run of `project`: `<project>-ci-<run id>`, the project part
/// shortened so the whole stays within [`MAX_NAME`].
pub fn env_name(project: &str, run_id: &str) -> String {
    let suffix = format!("-ci-{run_id}");
    let room = MAX_NAME.saturating_sub(suffix.len());
    let head: String = project.chars().take(room).collect();
    format!("{}{suffix}", head.trim_end_matches('-'))
}

/// Pure: why `name` (from `--name`) cannot name an environment, if it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.is_empty() || !valid_chars || name.starts_with('-') || name.ends_with('-') {
        return Err("must be lower-case letters, digits and '-', starting and ending with a letter or digit".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a letter".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("is {} characters long; at most {MAX_NAME}", name.len()));
    }
    Ok(())
}

/// Where a run keeps its private files (kubeconfig, dotenv): `<state dir>/ci/<name>`.
pub fn run_dir(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("ci").join(name)
}

/// Pure: `SAMESTACK_<SERVICE>_URL` for a service name (upper-cased, `-` → `_`).
pub fn url_var(service: &str) -> String {
    format!("SAMESTACK_{}_URL", service.to_uppercase().replace('-', "_"))
}

/// Pure: `SAMESTACK_<SERVICE>_INGRESS_URL` (the first URL of the service's Ingress, HTTP when
/// mapped) for a service name.
pub fn ingress_var(service: &str) -> String {
    format!("SAMESTACK_{}_INGRESS_URL", service.to_uppercase().replace('-', "_"))
}

/// What the command under test is told about its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandEnv {
    pub kubeconfig: PathBuf,
    pub context: String,
    pub namespace: String,
    /// `localhost:<port>`, what images are pushed to; `None` without a registry.
    pub registry: Option<String>,
    /// Service name → `http://127.0.0.1:<port>` of the port-forward to it.
    pub services: BTreeMap<String, String>,
    /// Service name (the Ingress's name) → its URLs on the host.
    pub ingresses: BTreeMap<String, Vec<String>>,
    /// The dotenv file with all of the above.
    pub env_file: PathBuf,
}

impl CommandEnv {
    /// Pure: the variables, sorted by name.
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::from([
            ("KUBECONFIG".to_string(), self.kubeconfig.display().to_string()),
            ("SAMESTACK_CONTEXT".to_string(), self.context.clone()),
            ("SAMESTACK_NAMESPACE".to_string(), self.namespace.clone()),
            ("SAMESTACK_ENV_FILE".to_string(), self.env_file.display().to_string()),
        ]);
        if let Some(registry) = &self.registry {
            vars.insert("SAMESTACK_REGISTRY".into(), registry.clone());
        }
        for (service, url) in &self.services {
            vars.insert(url_var(service), url.clone());
        }
        for (service, urls) in &self.ingresses {
            if let Some(first) = urls.first() {
                vars.insert(ingress_var(service), first.clone());
            }
        }
        let all: Vec<&str> = self.ingresses.values().flatten().map(String::as_str).collect();
        if !all.is_empty() {
            vars.insert("SAMESTACK_INGRESS_URLS".into(), all.join(" "));
        }
        vars
    }
}

/// Pure: variables as a dotenv file (`KEY='value'`, one a line), readable by `set -a; .
/// FILE`, docker `--env-file` readers that strip quotes, and dotenv libraries.
pub fn dotenv(vars: &BTreeMap<String, String>) -> String {
    vars.iter().map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', r"'\''"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_are_the_project_plus_a_run_id_within_the_length_limit() {
        assert_eq!(env_name("shop", "a1b2c3"), "shop-ci-a1b2c3");
        let long = env_name("a-very-long-project-name-that-goes-on-and-on", "a1b2c3");
        assert!(long.len() <= MAX_NAME && long.ends_with("-ci-a1b2c3"), "{long}");
        assert!(check_name(&long).is_ok());
        // Shortening never leaves a `--`.
        assert_eq!(env_name(&format!("{}-x", "a".repeat(MAX_NAME - 11)), "a1b2c3").matches("--").count(), 0);
        let id = run_id();
        assert_eq!(id.len(), 6);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn pinned_names_must_be_dns_labels_that_fit() {
        assert!(check_name("shop-pr-42").is_ok());
        for bad in ["", "Shop", "-shop", "shop-", "shop_pr", "42shop", &"a".repeat(MAX_NAME + 1)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_command_env_names_every_service_and_ingress() {
        let env = CommandEnv {
            kubeconfig: "/state/ci/shop-ci-1/kubeconfig".into(),
            context: "samestack-shop-ci-1".into(),
            namespace: "shop-ci-1".into(),
            registry: Some("localhost:40001".into()),
            services: BTreeMap::from([
                ("api".into(), "http://127.0.0.1:40100".into()),
                ("order-worker".into(), "http://127.0.0.1:40101".into()),
            ]),
            ingresses: BTreeMap::from([(
                "api".into(),
                vec!["http://shop.localhost:40002/".into(), "https://shop.localhost:40003/".into()],
            )]),
            env_file: "/state/ci/shop-ci-1/samestack.env".into(),
        };
        let vars = env.vars();
        assert_eq!(vars["KUBECONFIG"], "/state/ci/shop-ci-1/kubeconfig");
        assert_eq!(vars["SAMESTACK_NAMESPACE"], "shop-ci-1");
        assert_eq!(vars["SAMESTACK_REGISTRY"], "localhost:40001");
        assert_eq!(vars["SAMESTACK_API_URL"], "http://127.0.0.1:40100");
        assert_eq!(vars["SAMESTACK_ORDER_WORKER_URL"], "http://127.0.0.1:40101");
        assert_eq!(vars["SAMESTACK_API_INGRESS_URL"], "http://shop.localhost:40002/");
        assert_eq!(vars["SAMESTACK_INGRESS_URLS"], "http://shop.localhost:40002/ https://shop.localhost:40003/");
        assert_eq!(vars["SAMESTACK_ENV_FILE"], "/state/ci/shop-ci-1/samestack.env");
        let file = dotenv(&vars);
        assert!(file.lines().all(|l| l.starts_with(char::is_uppercase) && l.ends_with('\'')), "{file}");
        assert!(file.contains("SAMESTACK_API_URL='http://127.0.0.1:40100'\n"), "{file}");
    }

    #[test]
    fn dotenv_values_are_quoted_for_the_shell() {
        let vars = BTreeMap::from([("A".to_string(), "it's $HOME".to_string())]);
        assert_eq!(dotenv(&vars), "A='it'\\''s $HOME'\n");
    }
}
