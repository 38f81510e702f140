//! What `samestack init` writes: a project file from a few answers, a profile, ignore rules.
//! Pure text generation; the command does the file I/O.

use crate::config::Provider;

/// The answers `init` collects (from flags or the wizard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub name: String,
    pub service: String,
    pub port: u16,
    /// Prebuilt image; `None` means build from `context`.
    pub image: Option<String>,
    pub context: String,
    pub database: bool,
    pub provider: Provider,
    /// The kubeconfig context, for provider `existing`.
    pub kube_context: Option<String>,
}

/// The ignore rule that keeps local secret files out of git.
pub const IGNORE_RULE: &str = ".secrets/";

/// The samestack.yaml text for `a`.
/// A free-text answer as a YAML scalar: plain when it is an ordinary image or path, else
/// double-quoted, so no answer can change the file's structure (`#`, `{`, `: `, newlines).
fn scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "._/:@-+".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/');
    if plain { text.to_string() } else { serde_json::to_string(text).unwrap_or_default() }
}

pub fn project_file(a: &Answers) -> String {
    let mut s = format!(
        "# samestack project file: see docs/reference.md, or `samestack schema` for editor completion.\nname: {name}\n\ncluster:\n  provider: {provider}\n{context}  ports:\n    - {{ host: 8080, container: 80 }}\n\nservices:\n  {svc}:\n",
        name = a.name,
        provider = a.provider.as_str(),
        context = a.kube_context.as_deref().map(|c| format!("  context: {}\n", scalar(c))).unwrap_or_default(),
        svc = a.service
    );
    match &a.image {
        Some(img) => s.push_str(&format!("    image: {}\n", scalar(img))),
        None => s.push_str(&format!("    build: {{ context: {} }}\n", scalar(&a.context))),
    }
    s.push_str(&format!(
        "    ports:\n      - {{ name: http, port: {} }}\n    health: {{ path: /healthz, port: {} }}\n",
        a.port, a.port
    ));
    if a.database {
        s.push_str("    env:\n      DATABASE_HOST: database\n      DATABASE_NAME: app\n      DATABASE_USER: app\n    secrets:\n      DATABASE_PASSWORD: db-password\n    depends_on: [database]\n");
    }
    if a.image.is_none() {
        s.push_str("    sync:\n      - { from: ., to: /app }\n");
    }
    if a.database {
        let var = format!("{}_DB_PASSWORD", a.name.to_uppercase().replace('-', "_"));
        s.push_str(&format!(
            "\nsecrets:\n  db-password:\n    env: {var}\n    file: .secrets/db-password\n\ndatabase:\n  engine: postgres\n  version: \"15\"\n  name: app\n  user: app\n  password_secret: db-password\n  storage: 1Gi\n  backup:\n    schedule: \"0 3 * * *\"\n"
        ));
    }
    s.push_str("\nprofiles: [dev, ci, prod]\n");
    s
}

/// The project's own dev profile: `builtin` (the built-in dev profile's text), to adjust.
pub fn dev_profile(builtin: &str) -> String {
    format!(
        "# This project's dev profile (overrides the built-in one). Only knobs listed in allowed_drift\n# may differ from prod; `samestack parity dev prod` checks it.\n{}",
        builtin.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n") + "\n"
    )
}

/// `.gitignore` content with the secrets rule added (unchanged if already present).
pub fn gitignore(existing: Option<&str>) -> Option<String> {
    let existing = existing.unwrap_or("");
    if existing.lines().any(|l| matches!(l.trim(), ".secrets/" | ".secrets" | "/.secrets/" | "/.secrets")) {
        return None;
    }
    let mut s = existing.to_owned();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str("# samestack: local secret values, never committed\n.secrets/\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_answers_cannot_change_the_structure() {
        assert_eq!(scalar("nginx:1.27.2"), "nginx:1.27.2");
        assert_eq!(scalar("./api"), "./api");
        assert_eq!(scalar("a #b"), "\"a #b\"");
        assert_eq!(scalar("{x}\ny: 1"), "\"{x}\\ny: 1\"");
    }

    fn answers(database: bool, image: Option<&str>) -> Answers {
        Answers {
            name: "shop".into(),
            service: "web".into(),
            port: 8080,
            image: image.map(Into::into),
            context: ".".into(),
            database,
            provider: Provider::Auto,
            kube_context: None,
        }
    }

    #[test]
    fn generated_files_parse_and_validate() {
        for a in [answers(true, None), answers(false, Some("nginx:1.27.2")), answers(false, None)] {
            let text = project_file(&a);
            crate::config::parse_str("samestack.yaml", text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
        crate::profile::parse_file("dev", &dev_profile(crate::profile::builtin_text("dev").unwrap())).unwrap();
    }

    #[test]
    fn gitignore_rule_added_once() {
        assert_eq!(gitignore(Some("target\n.secrets/\n")), None);
        assert_eq!(
            gitignore(Some("target")).unwrap(),
            "target\n# samestack: local secret values, never committed\n.secrets/\n"
        );
    }
}
