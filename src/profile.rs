//! Profiles (dev, ci, prod, and a project's own): overlays on the production settings that
//! change only declared knobs, and list which differences from prod they are allowed to have.
//! Built-in profiles live in `profiles/` and are embedded in the binary; a project's
//! `profiles/NAME.yaml` adds a profile or overrides a built-in one.

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::yaml::{self, Locations, Problem, Problems};
use crate::config::{Project, is_dns_subdomain, paths};
use crate::error::{Classify, ErrorKind};
use crate::waiver::Waiver;

static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/profiles");

/// The knobs a profile may change. Anything else is identical to prod, or it is drift.
pub const KNOBS: &[&str] = &["replicas", "size", "autoscaling", "hot_reload", "ingress_domain", "log_level"];

/// Resource size classes; the numbers live in [`SizeClass::resources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SizeClass {
    Small,
    Medium,
    Large,
}

/// Requests and limits for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub requests_cpu: &'static str,
    pub requests_memory: &'static str,
    pub limits_cpu: &'static str,
    pub limits_memory: &'static str,
    /// Local disk: the writable layer, logs and emptyDir volumes (eviction beyond the limit).
    pub requests_ephemeral: &'static str,
    pub limits_ephemeral: &'static str,
}

impl SizeClass {
    /// Per-container requests and limits for this class.
    pub fn resources(self) -> Resources {
        let r = |requests_cpu, requests_memory, limits_cpu, limits_memory, requests_ephemeral, limits_ephemeral| {
            Resources { requests_cpu, requests_memory, limits_cpu, limits_memory, requests_ephemeral, limits_ephemeral }
        };
        match self {
            // dev and ci: little reserved, and a start may burst to one core. A tighter CPU
            // limit throttles the start a developer waits for after every rebuild (a Python
            // start with its imports: 2.1 s under 250m against 0.4 s under one core).
            SizeClass::Small => r("50m", "64Mi", "1", "256Mi", "128Mi", "512Mi"),
            SizeClass::Medium => r("100m", "128Mi", "500m", "512Mi", "256Mi", "1Gi"),
            SizeClass::Large => r("250m", "256Mi", "1", "1Gi", "512Mi", "2Gi"),
        }
    }
}

/// Log levels passed to workloads as `LOG_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// HPA bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscaling {
    /// Lowest replica count (at least 1, at most `max`).
    #[schemars(range(min = 1))]
    pub min: u32,
    /// Highest replica count.
    #[schemars(range(min = 1))]
    pub max: u32,
    /// Target average CPU utilisation, percent of requests.
    #[serde(default = "default_cpu")]
    #[schemars(range(min = 1, max = 100))]
    pub cpu_percent: u32,
}

fn default_cpu() -> u32 {
    70
}

/// A profile file (`profiles/NAME.yaml`). Unset knobs keep the prod value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "samestack profile", description = "a samestack profile file (profiles/NAME.yaml)")]
pub struct ProfileFile {
    /// One line saying what the profile is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Replicas per service (also the HPA minimum is taken from `autoscaling`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub replicas: Option<u32>,
    /// Container resource class: small | medium | large.
    #[serde(default)]
    pub size: Option<SizeClass>,
    /// HorizontalPodAutoscaler bounds.
    #[serde(default)]
    pub autoscaling: Option<Autoscaling>,
    /// Sync rules active: the root filesystem of synced containers is writable.
    #[serde(default)]
    pub hot_reload: Option<bool>,
    /// Move every ingress host to this domain (`api.example.com` → `api.localhost`).
    #[serde(default)]
    #[schemars(regex(pattern = crate::config::DNS_SUBDOMAIN), length(max = 253))]
    pub ingress_domain: Option<String>,
    /// LOG_LEVEL given to every workload.
    #[serde(default)]
    pub log_level: Option<LogLevel>,
    /// Differences from prod this profile may have: knob names, or `Kind:field.path` patterns
    /// (`*` one segment, `**` any number of segments).
    #[serde(default)]
    pub allowed_drift: Vec<String>,
    /// prod only: production-parity lint checks that do not apply to one object, each with its
    /// reason (`{ check: probes, object: DaemonSet/node-agent, reason: "..." }`).
    #[serde(default)]
    pub lint_waivers: Vec<Waiver>,
}

/// Resolved profile values, ready for the templates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileSettings {
    pub name: String,
    pub description: String,
    /// Where the profile came from: `built-in` or a file path.
    pub source: String,
    pub replicas: u32,
    pub size: SizeClass,
    pub autoscaling: Autoscaling,
    pub hot_reload: bool,
    pub ingress_domain: Option<String>,
    pub log_level: LogLevel,
    pub allowed_drift: Vec<String>,
    /// The lint checks waived per object (prod's; see [`crate::render::lint`]).
    pub lint_waivers: Vec<Waiver>,
}

/// A problem with a profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested profile is not in the project's list.
    #[error(
        "unknown profile `{name}`: the project file lists {known} ({at})\n  fix: use one of them, or add `{name}` to `profiles` and write profiles/{name}.yaml"
    )]
    Unknown { name: String, known: String, at: String },
    /// Listed, but no file anywhere.
    #[error(
        "{at}: profile `{name}` is listed but has no definition: it is not built in (built-in: dev, ci, prod) and {path} does not exist\n  fix: write {path} (see docs/reference.md), or remove `{name}` from `profiles`"
    )]
    Missing { name: String, at: String, path: String },
    /// The profile file cannot be read.
    #[error("cannot read profile {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Syntax, unknown knob, or invalid value, each with its location.
    #[error("{0}")]
    Invalid(Problems),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Read { .. } => ErrorKind::Environment,
            _ => ErrorKind::User,
        }
    }
}
crate::classify!(Error);

/// The names of the built-in profiles.
pub fn builtin_names() -> Vec<String> {
    let mut v: Vec<String> =
        BUILTIN.files().filter_map(|f| f.path().file_stem()).map(|s| s.to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The text of a built-in profile.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN.get_file(format!("{name}.yaml")).and_then(|f| f.contents_utf8())
}

/// The project's file for profile `name`: `profiles/NAME.yaml`, resolved inside the project
/// (a symlink out of it is refused like any other path).
fn project_file(project: &Project, name: &str) -> Result<PathBuf, Problem> {
    let rel = Path::new("profiles").join(format!("{name}.yaml"));
    paths::resolve_inside(&project.dir, &rel).map_err(|why| {
        let idx = project.config.profiles.iter().position(|p| p == name).unwrap_or(0);
        project.locations.problem(
            &format!("profiles[{idx}]"),
            paths::describe("profile file", &rel.display().to_string(), "", &project.dir, &why),
            "keep the profile as a regular file inside the project's profiles/ directory",
        )
    })
}

/// Loads one profile file: the project's `profiles/NAME.yaml`, else the built-in one.
fn load_file(project: &Project, name: &str) -> Result<Option<(ProfileFile, String)>, Error> {
    let resolved = project_file(project, name).map_err(|p| Error::Invalid(Problems(vec![p])))?;
    let shown = project.path(Path::new("profiles").join(format!("{name}.yaml"))).display().to_string();
    let (text, source) = match yaml::read(&resolved).map_err(|source| Error::Read { path: shown.clone(), source })? {
        Some(bytes) => {
            (yaml::check_text(&shown, &bytes, "profile").map_err(|p| Error::Invalid(Problems(vec![p])))?, shown.clone())
        }
        None => match builtin_text(name) {
            Some(t) => (t.to_owned(), format!("built-in:{name}")),
            None => return Ok(None),
        },
    };
    let file = parse_file(&source, &text)?;
    if name != "prod" && !file.lint_waivers.is_empty() {
        return Err(Error::Invalid(Problems(vec![Locations::index(&source, &text).problem(
            "lint_waivers",
            format!("profile `{name}` has lint_waivers, but the lint checks only the prod render"),
            "move the waivers to profiles/prod.yaml",
        )])));
    }
    Ok(Some((file, source)))
}

/// Checks every profile the project lists, whether or not this run uses it: each must have a
/// definition (built in, or `profiles/NAME.yaml`) that parses and validates. Returns every
/// problem found, so a broken `staging` profile fails `render --profile dev` too.
pub fn check_listed(project: &Project) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, name) in project.config.profiles.iter().enumerate() {
        match load_file(project, name) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let path = project.path(Path::new("profiles").join(format!("{name}.yaml"))).display().to_string();
                out.push(project.locations.problem(
                    &format!("profiles[{i}]"),
                    format!(
                        "profile `{name}` is listed but has no definition: it is not built in (built-in: {}) and {path} does not exist",
                        builtin_names().join(", ")
                    ),
                    format!("write {path} (see docs/reference.md), or remove `{name}` from `profiles`"),
                ));
            }
            Err(Error::Invalid(Problems(problems))) => out.extend(problems),
            Err(e) => out.push(Problem {
                at: project.locations.pos(&format!("profiles[{i}]")),
                message: e.to_string(),
                fix: "check the profile file's permissions".into(),
            }),
        }
    }
    out
}

/// Parses and checks one profile's text (pure). Every problem of the file is reported.
pub fn parse_file(shown: &str, text: &str) -> Result<ProfileFile, Error> {
    let file: ProfileFile = yaml::parse_all(shown, text).map_err(|p| Error::Invalid(Problems(p)))?;
    let loc = Locations::index(shown, text);
    let mut out = Vec::new();
    if let Some(r) = file.replicas
        && r == 0
    {
        out.push(loc.problem("replicas", "found 0 replicas, expected at least 1", "set `replicas: 1`"));
    }
    if let Some(a) = file.autoscaling
        && (a.min == 0 || a.min > a.max || a.cpu_percent == 0 || a.cpu_percent > 100)
    {
        out.push(loc.problem(
            "autoscaling",
            format!(
                "invalid autoscaling bounds min {} max {} cpu_percent {}: expected 1 <= min <= max and 1..100 percent",
                a.min, a.max, a.cpu_percent
            ),
            "write e.g. `autoscaling: { min: 1, max: 3 }`",
        ));
    }
    if let Some(d) = &file.ingress_domain
        && !is_dns_subdomain(d)
    {
        out.push(loc.problem(
            "ingress_domain",
            format!("`{d}` is not a DNS domain"),
            "write e.g. `ingress_domain: localhost`",
        ));
    }
    for (i, entry) in file.allowed_drift.iter().enumerate() {
        if KNOBS.contains(&entry.as_str()) {
            continue;
        }
        let why = match crate::drift::Pattern::check(entry) {
            Ok(_) => continue,
            Err(why) if entry.contains(':') => format!("malformed pattern `{entry}` in allowed_drift: {why}"),
            Err(_) => format!(
                "unknown knob `{entry}` in allowed_drift: expected one of {} or a `Kind:field.path` pattern",
                KNOBS.join(", ")
            ),
        };
        out.push(loc.problem(
            &format!("allowed_drift[{i}]"),
            why,
            "use a knob name, or a pattern such as `Deployment:spec.template.metadata.annotations.*`",
        ));
    }
    for (i, w) in file.lint_waivers.iter().enumerate() {
        if let Some(why) = w.problem(is_dns_subdomain) {
            out.push(loc.problem(
                &format!("lint_waivers[{i}]"),
                why,
                "write e.g. `{ check: probes, object: DaemonSet/node-agent, reason: \"its health is watched by the node\" }`",
            ));
        }
    }
    if out.is_empty() { Ok(file) } else { Err(Error::Invalid(Problems(out))) }
}

/// Resolves profile `name` for a project: prod's values, overlaid with the profile's knobs.
pub fn resolve(project: &Project, name: &str) -> Result<ProfileSettings, Error> {
    let listed = &project.config.profiles;
    if !listed.iter().any(|p| p == name) {
        let at = project.locations.pos("profiles");
        let at =
            if at.line == 0 { format!("the default list; set `profiles:` in {}", at.path) } else { at.to_string() };
        return Err(Error::Unknown { name: name.to_owned(), known: listed.join(", "), at });
    }
    let missing = |n: &str| {
        let idx = listed.iter().position(|p| p == n).unwrap_or(0);
        Error::Missing {
            name: n.to_owned(),
            at: project.locations.pos(&format!("profiles[{idx}]")).to_string(),
            path: project.path(Path::new("profiles").join(format!("{n}.yaml"))).display().to_string(),
        }
    };
    let (prod, prod_source) = load_file(project, "prod")?.ok_or_else(|| missing("prod"))?;
    let mut settings = overlay(base(), &prod, "prod", &prod_source);
    if name != "prod" {
        let (file, source) = load_file(project, name)?.ok_or_else(|| missing(name))?;
        settings = overlay(settings, &file, name, &source);
        settings.allowed_drift = file.allowed_drift.clone();
    }
    Ok(settings)
}

fn base() -> ProfileSettings {
    ProfileSettings {
        name: "prod".into(),
        description: String::new(),
        source: String::new(),
        replicas: 2,
        size: SizeClass::Medium,
        autoscaling: Autoscaling { min: 2, max: 6, cpu_percent: 70 },
        hot_reload: false,
        ingress_domain: None,
        log_level: LogLevel::Info,
        allowed_drift: Vec::new(),
        lint_waivers: Vec::new(),
    }
}

/// Applies a profile file's knobs on top of `s` (pure).
pub fn overlay(mut s: ProfileSettings, f: &ProfileFile, name: &str, source: &str) -> ProfileSettings {
    s.name = name.to_owned();
    s.source = source.to_owned();
    s.description = f.description.clone().unwrap_or_default();
    if let Some(v) = f.replicas {
        s.replicas = v;
    }
    if let Some(v) = f.size {
        s.size = v;
    }
    if let Some(v) = f.autoscaling {
        s.autoscaling = v;
    }
    if let Some(v) = f.hot_reload {
        s.hot_reload = v;
    }
    if f.ingress_domain.is_some() {
        s.ingress_domain = f.ingress_domain.clone();
    }
    if let Some(v) = f.log_level {
        s.log_level = v;
    }
    s.allowed_drift = f.allowed_drift.clone();
    s.lint_waivers = f.lint_waivers.clone();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_exist() {
        assert_eq!(builtin_names(), ["ci", "dev", "prod"]);
        for n in builtin_names() {
            parse_file(&n, builtin_text(&n).unwrap()).unwrap();
        }
    }

    #[test]
    fn overlay_changes_only_set_knobs() {
        let prod = parse_file("prod", builtin_text("prod").unwrap()).unwrap();
        let p = overlay(base(), &prod, "prod", "b");
        let f = ProfileFile { replicas: Some(1), allowed_drift: vec!["replicas".into()], ..Default::default() };
        let d = overlay(p.clone(), &f, "x", "b");
        assert_eq!(d.replicas, 1);
        assert_eq!(d.size, p.size);
        assert_eq!(d.autoscaling, p.autoscaling);
        assert_eq!(d.allowed_drift, ["replicas"]);
        assert_eq!(d.name, "x");
    }

    #[test]
    fn unknown_knob_is_located() {
        let e = parse_file("profiles/x.yaml", "replicas: 1\ngpu: 2\n").unwrap_err().to_string();
        assert!(e.starts_with("profiles/x.yaml:2:1: unknown key `gpu`"), "{e}");
        let e = parse_file("profiles/x.yaml", "allowed_drift: [replicas, gpus]\n").unwrap_err().to_string();
        assert!(e.starts_with("profiles/x.yaml:1:27: unknown knob `gpus`"), "{e}");
    }

    #[test]
    fn bad_autoscaling_rejected() {
        let e = parse_file("p", "autoscaling: { min: 3, max: 1 }\n").unwrap_err().to_string();
        assert!(e.contains("invalid autoscaling bounds"), "{e}");
    }
}
