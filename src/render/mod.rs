//! Templates + resolved profile → a validated manifest set, in memory, all or nothing.
//! Built-in production-parity templates live in `templates/` (embedded in the binary); a
//! project's `templates/NAME.yaml` overrides the built-in one of the same name, and extra
//! templates there are rendered once with the project context.

mod kustomize;
pub mod lint;
pub mod parity;
pub mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{self, DATABASE_NAME, Deploy, Project};
use crate::error::{Classify, ErrorKind};
use crate::labels;
use crate::profile::ProfileSettings;

static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Templates rendered once per service, with `service` in the context.
const PER_SERVICE: &str = "service.yaml";
/// Templates rendered once per secret, with `secret` in the context.
const PER_SECRET: &str = "secret.yaml";
/// Rendered only when the project has a database / migrations.
const DATABASE: &str = "database.yaml";
const MIGRATIONS: &str = "migrations.yaml";

/// The annotation on a Secret rendered without its values (no `--reveal`); its value names
/// the keys left out.
pub const REDACTED_ANNOTATION: &str = "dev.samestack/redacted";
/// The annotation on an object whose name samestack completes with a hash of its `spec`
/// (the migrations Job: its pod template is immutable); the value is the name's stem.
pub const NAME_BY_SPEC_ANNOTATION: &str = "dev.samestack/name-by-spec";

/// The postgres default images, defined with the `database` section the loader checks.
pub use crate::config::{POSTGRES_IMAGES, default_postgres_image};

/// The image `render` uses for a built service when no build produced one:
/// `localhost:<registry port>/<project>/<service>:unbuilt` (deterministic, never `latest`).
pub fn default_image(project: &Project, service: &str) -> String {
    format!("localhost:{}/{}/{}:unbuilt", project.config.registry.host_port, project.config.name, service)
}

/// What a render needs besides the project and profile.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Service name → image reference (from a build). Missing entries fall back to the
    /// service's `image:` or [`default_image`].
    pub images: BTreeMap<String, String>,
    /// Postgres image, as the settings resolved it (flag, `SAMESTACK_POSTGRES_IMAGE`,
    /// `database.image`); `None`: the default for `database.version`.
    pub postgres_image: Option<String>,
    /// Secret name → value (see [`config::resolve_secrets`]); missing values render redacted.
    pub secrets: BTreeMap<String, String>,
    /// Put real secret values into the Secrets (for apply, or `render --reveal`).
    pub reveal: bool,
}

impl RenderOptions {
    /// Options as `render` and `up` use them: secret values from their environment variables
    /// (looked up through `env`) or files (an error names the missing one), the resolved
    /// postgres image, and the given service images.
    pub fn from_env(
        project: &Project,
        images: BTreeMap<String, String>,
        reveal: bool,
        postgres_image: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RenderOptions, config::Error> {
        let secrets = config::resolve_secrets(project, env)?;
        Ok(RenderOptions { images, postgres_image, secrets, reveal })
    }
}

/// One rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub value: Value,
}

/// Identity of a resource: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl Resource {
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.value.get("apiVersion").and_then(Value::as_str).unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.value.pointer("/metadata/namespace").and_then(Value::as_str)
    }
    pub fn id(&self) -> ResourceId {
        ResourceId {
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }
    /// Apply order class: namespace-level first, workloads later (see [`kind_rank`]).
    pub fn rank(&self) -> usize {
        kind_rank(self.kind())
    }
}

/// The order resources are listed (and a sensible apply order): namespace and policies,
/// identities and config, storage, services, the database, migrations, workloads, scaling,
/// exposure.
pub fn kind_rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Service",
        "StatefulSet",
        "Job",
        "Deployment",
        "CronJob",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// A validated manifest set, in a stable order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderedSet {
    pub resources: Vec<Resource>,
}

impl RenderedSet {
    /// The objects as JSON values, in order (what `kube::plan_waves` takes).
    pub fn values(&self) -> Vec<Value> {
        self.resources.iter().map(|r| r.value.clone()).collect()
    }

    /// Deterministic multi-document YAML.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for r in &self.resources {
            out.push_str("---\n");
            out.push_str(&to_yaml(&r.value));
        }
        out
    }

    /// `(file name, YAML)` per resource, numbered in order: `012-deployment-api.yaml`.
    pub fn files(&self) -> Vec<(String, String)> {
        self.resources
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("{:03}-{}-{}.yaml", i + 1, r.kind().to_lowercase(), r.name()), to_yaml(&r.value)))
            .collect()
    }
}

fn to_yaml(v: &Value) -> String {
    let s = serde_saphyr::to_string(v).expect("JSON values serialize to YAML");
    if s.ends_with('\n') { s } else { s + "\n" }
}

/// A problem rendering templates or with what they produced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template failed: syntax, undefined variable, bad filter.
    #[error(transparent)]
    Template(Box<TemplateFailure>),
    /// A template produced text that is not YAML.
    #[error(
        "template {template} ({origin}) produced invalid YAML{context}: {problem}\n  fix: check the template's indentation and quoting (use `| tojson` for values)"
    )]
    Output { template: String, origin: String, context: String, problem: String },
    /// A rendered resource fails validation.
    #[error("{resource} (from {template}): {message}\n  fix: {fix}")]
    Invalid { resource: String, template: String, message: String, fix: String },
    /// A project template is a symlink that leaves the project directory.
    #[error(
        "{message}\n  fix: keep templates as regular files inside the project's templates/ directory (a symlink may point only inside the project)"
    )]
    Outside { message: String },
    /// A project template cannot be read.
    #[error("cannot read template {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing the output directory failed.
    #[error("{path}: {message}\n  fix: {fix}")]
    OutputDir { path: String, message: String, fix: String },
    /// A manifest source (`manifests:`) failed: its tool is missing or refused it, or one of
    /// its objects fails a check.
    #[error(transparent)]
    Source(#[from] sources::Error),
    /// Writing the output directory failed on the file system.
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where and why a template failed.
#[derive(Debug, thiserror::Error)]
#[error("template {template}:{line} ({origin}): {message}\n{excerpt}  fix: {fix}")]
pub struct TemplateFailure {
    pub template: String,
    pub origin: String,
    pub line: usize,
    pub message: String,
    pub excerpt: String,
    pub fix: String,
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Read { .. } | Error::Write { .. } => ErrorKind::Environment,
            Error::Source(e) => e.kind(),
            _ => ErrorKind::User,
        }
    }
}
crate::classify!(Error);

struct Template {
    name: String,
    origin: String,
    source: String,
}

/// The templates in effect: built-ins, overridden or extended by `<project>/templates/*.yaml`.
fn load_templates(project: &Project) -> Result<Vec<Template>, Error> {
    let project_dir = &project.path("templates");
    let mut map: BTreeMap<String, Template> = BUILTIN
        .files()
        .filter(|f| f.path().extension().is_some_and(|e| e == "yaml"))
        .map(|f| {
            let name = f.path().to_string_lossy().into_owned();
            (
                name.clone(),
                Template { name, origin: "built-in".into(), source: f.contents_utf8().unwrap_or_default().to_owned() },
            )
        })
        .collect();
    if let Ok(entries) = std::fs::read_dir(project_dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        for path in paths {
            let shown = path.display().to_string();
            let rel = path.strip_prefix(&project.dir).unwrap_or(&path);
            let resolved = config::paths::resolve_inside(&project.dir, rel).map_err(|why| Error::Outside {
                message: config::paths::describe("template", &shown, "", &project.dir, &why),
            })?;
            let source =
                std::fs::read_to_string(&resolved).map_err(|source| Error::Read { path: shown.clone(), source })?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            map.insert(name.clone(), Template { name, origin: shown, source });
        }
    }
    Ok(map.into_values().collect())
}

/// Renders and validates the manifest set for `profile`. Nothing is written anywhere.
pub fn render(project: &Project, profile: &ProfileSettings, opts: &RenderOptions) -> Result<RenderedSet, Error> {
    let templates = load_templates(project)?;
    let ctx = context(project, profile, opts);
    let mut env = environment();
    for t in &templates {
        env.add_template_owned(t.name.clone(), t.source.clone()).map_err(|e| template_error(t, &e))?;
    }
    let mut produced: Vec<(Resource, String)> = Vec::new();
    for t in &templates {
        let mut runs: Vec<(Value, String)> = Vec::new();
        match t.name.as_str() {
            PER_SERVICE => {
                // A service the project's manifests deploy gets no built-in objects.
                let templated = |s: &&Value| s["deploy"] != json!(Deploy::Manifests);
                for s in ctx["services"].as_array().into_iter().flatten().filter(templated) {
                    runs.push((
                        with(&ctx, "service", s),
                        format!(" for service `{}`", s["name"].as_str().unwrap_or("")),
                    ));
                }
            }
            PER_SECRET => {
                for s in ctx["secrets"].as_array().into_iter().flatten() {
                    runs.push((with(&ctx, "secret", s), format!(" for secret `{}`", s["name"].as_str().unwrap_or(""))));
                }
            }
            DATABASE if ctx["database"].is_null() => {}
            MIGRATIONS if ctx["migrations"].is_null() => {}
            _ => runs.push((ctx.clone(), String::new())),
        }
        let tmpl = env.get_template(&t.name).map_err(|e| template_error(t, &e))?;
        for (c, what) in runs {
            let text =
                tmpl.render(minijinja::Value::from(minijinja::value::Serde(&c))).map_err(|e| template_error(t, &e))?;
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
                let rendered = e
                    .location()
                    .and_then(|l| {
                        text.lines()
                            .nth((l.line() as usize).saturating_sub(1))
                            .map(|line| format!("\n  rendered line {}: {}", l.line(), line.trim_end()))
                    })
                    .unwrap_or_default();
                Error::Output {
                    template: t.name.clone(),
                    origin: t.origin.clone(),
                    context: what.clone(),
                    problem: format!("{}{rendered}", e.to_string().lines().next().unwrap_or("")),
                }
            })?;
            let lines = document_lines(&text);
            let lines = if lines.len() == docs.len() { lines } else { vec![0; docs.len()] };
            for (mut d, line) in docs.into_iter().zip(lines).filter(|(d, _)| !d.is_null()) {
                name_by_spec(&mut d);
                let shown = text.lines().nth(line.saturating_sub(1)).filter(|_| line > 0).unwrap_or("").trim_end();
                let at = if line > 0 {
                    format!(", rendered line {line}: `{}`", config::yaml::clip(shown))
                } else {
                    String::new()
                };
                produced.push((Resource { value: d }, format!("{} ({}){what}{at}", t.name, t.origin)));
            }
        }
    }
    validate(project, profile, &produced)?;
    // The project's own manifests join the set after the templates' checks (they carry their
    // own); an object both produce is an error either way.
    let mut seen: BTreeMap<ResourceId, String> = produced.iter().map(|(r, t)| (r.id(), t.clone())).collect();
    for (r, t) in sources::render_all(project, profile, opts)? {
        if let Some(prev) = seen.insert(r.id(), t.clone()) {
            return Err(invalid(
                &r,
                &t,
                format!("rendered twice (also by {prev})"),
                "give each object a unique kind/namespace/name, or leave it out of one of the sources",
            ));
        }
        produced.push((r, t));
    }
    let mut resources: Vec<Resource> = produced.into_iter().map(|(r, _)| r).collect();
    resources.sort_by_key(|r| (r.rank(), r.id()));
    Ok(RenderedSet { resources })
}

/// The line (1-based) where each document of a rendered multi-document text starts its
/// content, in document order, so a bad object can be pointed at in the rendered output.
fn document_lines(text: &str) -> Vec<usize> {
    use serde_saphyr::granit_parser::{Event, Parser};
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut pending = false;
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        match event {
            Event::DocumentStart(..) => pending = true,
            Event::Scalar(..) | Event::Alias(..) | Event::MappingStart(..) | Event::SequenceStart(..)
                if pending && depth == 0 =>
            {
                out.push(span.start.line());
                pending = false;
                if matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
                    depth += 1;
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

fn with(ctx: &Value, key: &str, v: &Value) -> Value {
    let mut c = ctx.clone();
    c[key] = v.clone();
    c
}

/// The template engine with samestack's rules: strict undefined in every form (printing,
/// iteration, tests of truth, and the filters that would otherwise pass an undefined through).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Strict undefined does not reach into filters that take any value: `tojson` would
    // serialize an undefined variable as `null`. The reference tells users to write every
    // value with `| tojson`, so that form must fail like `{{ x }}` does.
    env.add_filter("tojson", strict_tojson);
    // The other built-in filters that let an undefined value through without an error.
    refuse_undefined(&mut env, "join", minijinja::Value::from_function(minijinja::filters::join));
    refuse_undefined(&mut env, "escape", minijinja::Value::from_function(minijinja::filters::escape));
    refuse_undefined(&mut env, "e", minijinja::Value::from_function(minijinja::filters::escape));
    refuse_undefined(&mut env, "pprint", minijinja::Value::from_function(minijinja::filters::pprint));
    refuse_undefined(&mut env, "chain", minijinja::Value::from_function(minijinja::filters::chain));
    refuse_undefined(&mut env, "zip", minijinja::Value::from_function(minijinja::filters::zip));
    refuse_undefined(&mut env, "groupby", minijinja::Value::from_function(minijinja::filters::groupby));
    env
}

/// Registers filter `name` as `builtin`, but failing when its input or an argument is undefined.
fn refuse_undefined(env: &mut Environment<'_>, name: &'static str, builtin: minijinja::Value) {
    env.add_filter(
        name,
        move |state: &mut minijinja::State, value: minijinja::Value, rest: minijinja::value::Rest<minijinja::Value>| {
            if value.is_undefined() || rest.iter().any(minijinja::Value::is_undefined) {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::UndefinedError,
                    format!("`{name}` was given an undefined value (a variable or attribute that does not exist)"),
                ));
            }
            let args: Vec<minijinja::Value> = std::iter::once(value).chain(rest.0).collect();
            builtin.call(state, &args)
        },
    );
}

/// `tojson`, refusing undefined values (also inside lists and maps built in the template).
fn strict_tojson(
    value: &minijinja::Value,
    indent: Option<minijinja::Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    fn undefined_inside(v: &minijinja::Value, depth: usize) -> bool {
        if v.is_undefined() {
            return true;
        }
        if depth > 32 || !matches!(v.kind(), minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Map) {
            return false;
        }
        let Ok(items) = v.try_iter() else { return false };
        items.into_iter().any(|k| {
            let child =
                if v.kind() == minijinja::value::ValueKind::Map { v.get_item(&k).unwrap_or_default() } else { k };
            undefined_inside(&child, depth + 1)
        })
    }
    if undefined_inside(value, 0) {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "`tojson` was given an undefined value (a variable or attribute that does not exist)",
        ));
    }
    minijinja::filters::tojson(value, indent, kwargs)
}

fn template_error(t: &Template, e: &minijinja::Error) -> Error {
    let line = e.line().unwrap_or(0);
    let excerpt = t
        .source
        .lines()
        .nth(line.saturating_sub(1))
        .filter(|_| line > 0)
        .map(|l| format!("  {line} | {}\n", l.trim_end()))
        .unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let message = format!("{}{detail}", e.kind());
    let fix = if e.kind() == minijinja::ErrorKind::UndefinedError {
        "use only variables the context provides (see docs/reference.md, \"Template context\"), or guard optional ones with `{% if x is defined %}`".into()
    } else {
        "fix the template syntax near this line".into()
    };
    Error::Template(Box::new(TemplateFailure {
        template: t.name.clone(),
        origin: t.origin.clone(),
        line,
        message,
        excerpt,
        fix,
    }))
}

/// Names an object that carries [`NAME_BY_SPEC_ANNOTATION`] `<stem>-<hash of its spec>`, so
/// that any change to what an immutable object (a Job's pod template) would run gives a new
/// object instead of a rejected update. Idempotent: run it again after changing the spec
/// (`up` does, after pointing images at the local registry). Other objects are left alone.
pub fn name_by_spec(doc: &mut Value) {
    let Some(stem) = doc.pointer("/metadata/annotations").and_then(|a| a.get(NAME_BY_SPEC_ANNOTATION)) else {
        return;
    };
    let Some(stem) = stem.as_str().map(str::to_owned) else { return };
    let mut spec = String::new();
    canonical_json(doc.get("spec").unwrap_or(&Value::Null), &mut spec);
    doc["metadata"]["name"] = Value::String(format!("{stem}-{}", sha8(&[&spec])));
}

/// JSON with object keys sorted, whatever order the map keeps them in: a stable hash input.
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn sha8(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The template context (pure): everything computed in Rust so templates stay declarative.
pub fn context(project: &Project, profile: &ProfileSettings, opts: &RenderOptions) -> Value {
    let c = &project.config;
    let owner = c.owner.clone().unwrap_or_else(|| c.name.clone());
    let cost = c.cost_center.clone().unwrap_or_else(|| c.name.clone());
    let labels = |name: &str| {
        json!({
            (labels::NAME): name,
            (labels::PART_OF): c.name,
            (labels::MANAGED_BY): labels::MANAGER,
            (labels::PROJECT): c.name,
            (labels::OWNER): owner,
            (labels::COST_CENTER): cost,
        })
    };
    let selector = |name: &str| json!({ (labels::NAME): name, (labels::PART_OF): c.name });
    let res = profile.size.resources();
    let resources = json!({
        "requests": { "cpu": res.requests_cpu, "memory": res.requests_memory, "ephemeral-storage": res.requests_ephemeral },
        "limits": { "cpu": res.limits_cpu, "memory": res.limits_memory, "ephemeral-storage": res.limits_ephemeral },
    });

    // Who talks to whom: client → target edges, including the migrations Job and backups.
    let db_port = 5432u16;
    let ports_of = |target: &str| -> Vec<u16> {
        if target == DATABASE_NAME {
            vec![db_port]
        } else {
            c.services.get(target).map(|s| s.ports.iter().map(|p| p.port).collect()).unwrap_or_default()
        }
    };
    let mut ingress_from: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, s) in &c.services {
        for dep in &s.depends_on {
            ingress_from.entry(dep.clone()).or_default().insert(name.clone());
            if c.migrations.as_ref().is_some_and(|m| &m.service == name) {
                ingress_from.entry(dep.clone()).or_default().insert("migrations".into());
            }
        }
    }
    if c.database.as_ref().is_some_and(|d| d.backup.is_some()) {
        ingress_from.entry(DATABASE_NAME.into()).or_default().insert("database-backup".into());
    }
    // The pods of a peer: the built-in labels, or, for a service the project's manifests
    // deploy, the label samestack puts on their pod templates (see `sources`).
    let peer_selector = |name: &str| -> Value {
        match c.services.get(name) {
            Some(s) if s.deploy == Deploy::Manifests => {
                json!({ (sources::SERVICE_LABEL): name, (labels::PROJECT): c.name })
            }
            _ => selector(name),
        }
    };
    let egress = |deps: &[String]| -> Value {
        deps.iter()
            .map(|d| json!({ "name": d, "ports": ports_of(d), "selector": peer_selector(d) }))
            .collect::<Vec<_>>()
            .into()
    };
    let ingress_peers = |target: &str| -> Value {
        let clients = ingress_from.get(target).into_iter().flatten();
        clients.map(|n| json!({ "name": n, "selector": peer_selector(n) })).collect::<Vec<_>>().into()
    };
    let env_list = |env: &BTreeMap<String, String>| -> Vec<Value> {
        let mut v: Vec<Value> = env.iter().map(|(k, val)| json!({ "name": k, "value": val })).collect();
        // The profile's log level, unless the service pins its own.
        if !env.contains_key("LOG_LEVEL") {
            v.push(
                json!({ "name": "LOG_LEVEL", "value": serde_json::to_value(profile.log_level).unwrap_or_default() }),
            );
        }
        v
    };
    let secret_env = |m: &BTreeMap<String, String>| -> Vec<Value> {
        m.iter().map(|(k, s)| json!({ "name": k, "secret": s, "key": "value" })).collect()
    };
    let image_of = |name: &str| -> String {
        opts.images
            .get(name)
            .cloned()
            .or_else(|| c.services.get(name).and_then(|s| s.image.clone()))
            .unwrap_or_else(|| default_image(project, name))
    };

    let services: Vec<Value> = c
        .services
        .iter()
        .map(|(name, s)| {
            let main_port = s.ports.first().map(|p| p.port);
            let probe = match &s.health {
                Some(h) => json!({ "type": "http", "path": h.path, "live_path": h.live, "port": h.port.or(main_port) }),
                None => json!({ "type": "tcp", "path": null, "live_path": null, "port": main_port }),
            };
            let ingress = s.ingress.as_ref().map(|i| {
                let host = match &profile.ingress_domain {
                    Some(d) => format!("{}.{d}", i.host.split('.').next().unwrap_or(name)),
                    None => i.host.clone(),
                };
                json!({ "host": host, "path": i.path, "tls_secret": format!("{name}-tls") })
            });
            let hot = profile.hot_reload && !s.sync.is_empty();
            json!({
                "name": name,
                "deploy": s.deploy,
                "image": image_of(name),
                "command": s.command,
                "ports": s.ports.iter().map(|p| json!({ "name": p.name, "port": p.port })).collect::<Vec<_>>(),
                "main_port": main_port,
                "env": env_list(&s.env),
                "secret_env": secret_env(&s.secrets),
                "probe": probe,
                "depends_on": s.depends_on,
                "egress": egress(&s.depends_on),
                "ingress_from": ingress_from.get(name).map(|v| v.iter().cloned().collect::<Vec<_>>()).unwrap_or_default(),
                "ingress_peers": ingress_peers(name),
                "ingress": ingress,
                "hot_reload": hot,
                "read_only_root": !hot,
                "sync": s.sync,
                "labels": labels(name),
                "selector": selector(name),
            })
        })
        .collect();

    let secrets: Vec<Value> = c
        .secrets
        .keys()
        .map(|name| {
            // Redacted: no value at all rather than a fake one, so the Secret stays valid for the
            // API server and applying it never replaces a real value (see docs/reference.md).
            let value = match (opts.reveal, opts.secrets.get(name)) {
                (true, Some(v)) => Some(base64(v.as_bytes())),
                _ => None,
            };
            json!({ "name": name, "redacted": value.is_none(), "value_b64": value, "labels": labels(name) })
        })
        .collect();

    let database = c.database.as_ref().map(|d| {
        let image = opts.postgres_image.clone().or_else(|| d.image.clone()).unwrap_or_else(|| {
            // The loader refuses a version without a default unless `database.image` is set.
            default_postgres_image(&d.version).unwrap_or(POSTGRES_IMAGES[0].1).to_owned()
        });
        json!({
            "name": DATABASE_NAME,
            "image": image,
            "port": db_port,
            "db": d.name,
            "user": d.user,
            "password_secret": d.password_secret,
            "storage": d.storage,
            "backup": d.backup.as_ref().map(|b| json!({ "name": "database-backup", "schedule": b.schedule, "storage": b.storage, "labels": labels("database-backup"), "selector": selector("database-backup") })),
            "ingress_from": ingress_from.get(DATABASE_NAME).map(|v| v.iter().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            "ingress_peers": ingress_peers(DATABASE_NAME),
            "labels": labels(DATABASE_NAME),
            "selector": selector(DATABASE_NAME),
        })
    });

    let migrations = c.migrations.as_ref().and_then(|m| {
        let s = c.services.get(&m.service)?;
        let image = image_of(&m.service);
        Some(json!({
            "name": "migrations",
            // The stem: `render` appends a hash of the rendered Job's spec (see name_by_spec).
            "job_name": "migrations",
            "service": m.service,
            "image": image,
            "command": m.command,
            "env": env_list(&s.env),
            "secret_env": secret_env(&s.secrets),
            "egress": egress(&s.depends_on),
            "labels": labels("migrations"),
            "selector": selector("migrations"),
        }))
    });

    // Quota: enough for every service at its autoscaling maximum, plus database and jobs.
    let pods = c.services.len() as u32 * profile.autoscaling.max.max(profile.replicas) + 4;
    let quota = json!({
        "pods": pods.to_string(),
        "requests_cpu": scale(res.requests_cpu, pods),
        "requests_memory": scale(res.requests_memory, pods),
        "limits_cpu": scale(res.limits_cpu, pods),
        "limits_memory": scale(res.limits_memory, pods),
        "requests_ephemeral": scale(res.requests_ephemeral, pods),
        "limits_ephemeral": scale(res.limits_ephemeral, pods),
    });

    json!({
        "project": { "name": c.name, "namespace": c.name, "owner": owner, "cost_center": cost },
        "labels": labels(&c.name),
        "profile": {
            "name": profile.name,
            "replicas": profile.replicas,
            "size": profile.size,
            "autoscaling": profile.autoscaling,
            "hot_reload": profile.hot_reload,
            "log_level": profile.log_level,
            "ingress_domain": profile.ingress_domain,
        },
        "resources": resources,
        "quota": quota,
        "services": services,
        "secrets": secrets,
        "database": database,
        "migrations": migrations,
    })
}

/// Multiplies a quantity like `250m`, `1`, `128Mi` by `n`, keeping its unit.
fn scale(q: &str, n: u32) -> String {
    let digits = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &q[digits.len()..];
    let v: u64 = digits.parse().unwrap_or(0);
    format!("{}{unit}", v * n as u64)
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Kinds that live outside any namespace: the templates' objects and the sources' (which add the
/// kinds of cluster-scoped CRDs in their set).
pub(crate) const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

fn invalid(r: &Resource, template: &str, message: impl Into<String>, fix: impl Into<String>) -> Error {
    Error::Invalid {
        resource: r.id().to_string(),
        template: template.to_owned(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// Checks a produced set before anything is written or applied.
fn validate(project: &Project, profile: &ProfileSettings, produced: &[(Resource, String)]) -> Result<(), Error> {
    let ns = &project.config.name;
    let mut seen: BTreeMap<ResourceId, &str> = BTreeMap::new();
    for (r, t) in produced {
        if !r.value.is_object() {
            return Err(Error::Invalid {
                resource: "a document".into(),
                template: t.clone(),
                message: "a rendered document is not a mapping".into(),
                fix: "each YAML document must be one Kubernetes object".into(),
            });
        }
        if r.api_version().is_empty() || r.kind().is_empty() {
            return Err(invalid(
                r,
                t,
                "missing `apiVersion` or `kind`",
                "every object needs apiVersion, kind and metadata.name",
            ));
        }
        let name = r.name();
        if !config::is_dns_subdomain(name) {
            return Err(invalid(
                r,
                t,
                format!("name `{name}` is not a valid Kubernetes name (DNS-1123)"),
                "use lowercase letters, digits, '-' and '.'",
            ));
        }
        let cluster_scoped = CLUSTER_SCOPED.contains(&r.kind());
        match (cluster_scoped, r.namespace()) {
            (false, Some(n)) if n == ns => {}
            (false, other) => {
                return Err(invalid(
                    r,
                    t,
                    format!(
                        "namespace is {}, expected `{ns}` (the project namespace)",
                        other.map(|o| format!("`{o}`")).unwrap_or_else(|| "missing".into())
                    ),
                    "set `metadata.namespace: {{ project.namespace | tojson }}`",
                ));
            }
            (true, Some(_)) => {
                return Err(invalid(r, t, "a cluster-scoped object has a namespace", "remove metadata.namespace"));
            }
            (true, None) => {}
        }
        for key in [labels::MANAGED_BY, labels::PROJECT] {
            if r.value.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str).is_none() {
                return Err(invalid(
                    r,
                    t,
                    format!("label `{key}` is missing (needed for ownership and pruning)"),
                    "add `labels: {{ labels | tojson }}` (or the service's labels) to metadata",
                ));
            }
        }
        if let Some(prev) = seen.insert(r.id(), t) {
            return Err(invalid(
                r,
                t,
                format!("rendered twice (also by {prev})"),
                "give each object a unique kind/namespace/name",
            ));
        }
        if profile.name == "prod" {
            check_parity(r, t)?;
        }
    }
    if profile.name == "prod" {
        check_autoscaled_replicas(produced)?;
    }
    Ok(())
}

/// A workload an autoscaler scales must leave `spec.replicas` out: every apply of the
/// production manifests would otherwise reset the count the autoscaler chose.
fn check_autoscaled_replicas(produced: &[(Resource, String)]) -> Result<(), Error> {
    let scaled: BTreeSet<(Option<&str>, &str, &str)> = produced
        .iter()
        .filter(|(r, _)| r.kind() == "HorizontalPodAutoscaler")
        .filter_map(|(r, _)| {
            let target = r.value.pointer("/spec/scaleTargetRef")?;
            Some((r.namespace(), target.get("kind")?.as_str()?, target.get("name")?.as_str()?))
        })
        .collect();
    for (r, t) in produced {
        if r.value.pointer("/spec/replicas").is_some() && scaled.contains(&(r.namespace(), r.kind(), r.name())) {
            return Err(invalid(
                r,
                t,
                "sets spec.replicas although a HorizontalPodAutoscaler scales it: applying the manifests would reset the autoscaler's count",
                "remove `replicas` from the workload; the autoscaler's minReplicas gives the starting count",
            ));
        }
    }
    Ok(())
}

fn pod_spec(r: &Resource) -> Option<&Value> {
    match r.kind() {
        "Deployment" | "StatefulSet" | "Job" => r.value.pointer("/spec/template/spec"),
        "CronJob" => r.value.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// The production-parity rules a prod render must satisfy.
fn check_parity(r: &Resource, t: &str) -> Result<(), Error> {
    let Some(spec) = pod_spec(r) else { return Ok(()) };
    let fix = "keep the built-in security and resource settings (see docs/reference.md, Production parity)";
    if spec.pointer("/securityContext/seccompProfile/type").and_then(Value::as_str) != Some("RuntimeDefault") {
        return Err(invalid(r, t, "pod securityContext lacks seccompProfile RuntimeDefault", fix));
    }
    if spec.get("automountServiceAccountToken") != Some(&Value::Bool(false)) {
        return Err(invalid(r, t, "service account token is automounted", fix));
    }
    let pod_non_root = spec.pointer("/securityContext/runAsNonRoot") == Some(&Value::Bool(true));
    for c in spec.get("containers").and_then(Value::as_array).into_iter().flatten() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let sc = c.get("securityContext").cloned().unwrap_or(Value::Null);
        let checks = [
            (sc.get("allowPrivilegeEscalation") == Some(&Value::Bool(false)), "allowPrivilegeEscalation is not false"),
            (sc.get("readOnlyRootFilesystem") == Some(&Value::Bool(true)), "readOnlyRootFilesystem is not true"),
            (pod_non_root || sc.get("runAsNonRoot") == Some(&Value::Bool(true)), "runAsNonRoot is not true"),
            (
                sc.pointer("/capabilities/drop")
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|x| x == "ALL")),
                "capabilities are not all dropped",
            ),
            (
                c.pointer("/resources/requests").is_some() && c.pointer("/resources/limits").is_some(),
                "resource requests and limits are not both set",
            ),
            (
                c.get("image").and_then(Value::as_str).is_some_and(config::image_is_pinned),
                "image tag is not pinned (no tag, or latest)",
            ),
        ];
        for (ok, what) in checks {
            if !ok {
                return Err(invalid(r, t, format!("container `{cname}`: {what}"), fix));
            }
        }
        if matches!(r.kind(), "Deployment" | "StatefulSet")
            && (c.get("readinessProbe").is_none() || c.get("livenessProbe").is_none())
        {
            return Err(invalid(r, t, format!("container `{cname}` lacks a readiness or liveness probe"), fix));
        }
    }
    Ok(())
}

/// Points every container whose image is a key of `images` at the mapped reference, wherever a
/// pod template is (Deployment, StatefulSet, Job, CronJob...). Used by `up --preload`.
pub fn replace_images(manifests: &mut [Value], images: &BTreeMap<String, String>) {
    fn walk(value: &mut Value, images: &BTreeMap<String, String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if matches!(key.as_str(), "containers" | "initContainers")
                        && let Value::Array(containers) = child
                    {
                        for container in containers.iter_mut() {
                            if let Some(to) = container.get("image").and_then(Value::as_str).and_then(|i| images.get(i))
                            {
                                container["image"] = Value::String(to.clone());
                            }
                        }
                    } else {
                        walk(child, images);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, images)),
            _ => {}
        }
    }
    if !images.is_empty() {
        manifests.iter_mut().for_each(|m| walk(m, images));
        // A Job named by its spec gets the name of its new spec.
        manifests.iter_mut().for_each(name_by_spec);
    }
}

/// Writes one file per resource into `dir`, all or nothing: files go to a temporary
/// directory next to it, which then replaces `dir`. An existing `dir` may only hold a
/// previous render (`*.yaml` files); anything else is refused.
///
/// With `revealed` (real secret values in the Secrets), the Secret files are written 0600
/// from their creation and the directory is 0700; otherwise the directory is 0755.
pub fn write_dir(set: &RenderedSet, dir: &Path, revealed: bool) -> Result<(), Error> {
    let shown = dir.display().to_string();
    let werr = |source: std::io::Error| Error::Write { path: shown.clone(), source };
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::OutputDir {
                path: shown,
                message: "exists and is not a directory".into(),
                fix: "choose another output directory".into(),
            });
        }
        for e in std::fs::read_dir(dir).map_err(werr)? {
            let p = e.map_err(werr)?.path();
            if !(p.is_file() && p.extension().is_some_and(|x| x == "yaml")) {
                return Err(Error::OutputDir {
                    path: shown,
                    message: format!("holds {}, which is not a rendered manifest", p.display()),
                    fix: "choose an empty or new output directory".into(),
                });
            }
        }
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(werr)?;
    let tmp = tempfile::Builder::new().prefix(".samestack-render-").tempdir_in(parent).map_err(werr)?;
    for ((name, text), r) in set.files().into_iter().zip(&set.resources) {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mode = if r.kind() == "Secret" { 0o600 } else { 0o644 };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp.path().join(name))
            .map_err(werr)?;
        f.write_all(text.as_bytes()).map_err(werr)?;
    }
    {
        use std::os::unix::fs::PermissionsExt as _;
        let holds_secrets = revealed && set.resources.iter().any(|r| r.kind() == "Secret");
        let mode = if holds_secrets { 0o700 } else { 0o755 };
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).map_err(werr)?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(werr)?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, dir).map_err(|source| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        Error::Write { path: shown.clone(), source }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Autoscaling, LogLevel, SizeClass};

    #[test]
    fn preloaded_images_replace_matching_container_images_in_every_pod_template() {
        let mut set = vec![
            json!({"kind": "StatefulSet", "spec": {"template": {"spec": {
                "initContainers": [{"image": "pg:15"}], "containers": [{"image": "pg:15"}, {"image": "other:1"}]}}}}),
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "pg:15"}]}}}}}}),
            json!({"kind": "ConfigMap", "data": {"image": "pg:15"}}),
        ];
        replace_images(&mut set, &BTreeMap::from([("pg:15".to_string(), "localhost:5001/pg@sha256:1".to_string())]));
        let pinned = "localhost:5001/pg@sha256:1";
        assert_eq!(set[0]["spec"]["template"]["spec"]["initContainers"][0]["image"], pinned);
        assert_eq!(set[0]["spec"]["template"]["spec"]["containers"][0]["image"], pinned);
        assert_eq!(set[0]["spec"]["template"]["spec"]["containers"][1]["image"], "other:1");
        assert_eq!(set[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"], pinned);
        assert_eq!(set[2]["data"]["image"], "pg:15", "only container images change");
    }

    const PROJECT: &str = "name: shop\nservices:\n  api:\n    build: { context: ./api }\n    ports: [{ port: 8080 }]\n    depends_on: [worker, database]\n    secrets: { PW: pw }\n    sync: [{ from: ., to: /app }]\n    ingress: { host: shop.example.com }\n  worker:\n    image: busybox:1.36\n    ports: [{ port: 9000 }]\nsecrets:\n  pw: { env: PW }\ndatabase:\n  password_secret: pw\n  backup: { schedule: \"0 3 * * *\" }\nmigrations:\n  service: api\n  command: [migrate]\n";

    fn project() -> Project {
        let (config, locations) = config::parse_str("samestack.yaml", PROJECT.as_bytes()).unwrap();
        Project { file: "samestack.yaml".into(), dir: "/nonexistent".into(), config, locations }
    }

    fn profile(hot_reload: bool, domain: Option<&str>) -> ProfileSettings {
        ProfileSettings {
            name: "dev".into(),
            description: String::new(),
            source: "test".into(),
            replicas: 1,
            size: SizeClass::Small,
            autoscaling: Autoscaling { min: 1, max: 2, cpu_percent: 70 },
            hot_reload,
            ingress_domain: domain.map(Into::into),
            log_level: LogLevel::Debug,
            allowed_drift: vec![],
            lint_waivers: vec![],
        }
    }

    fn service<'a>(ctx: &'a Value, name: &str) -> &'a Value {
        ctx["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
    }

    #[test]
    fn network_edges_follow_depends_on() {
        let ctx = context(&project(), &profile(false, None), &RenderOptions::default());
        assert_eq!(
            service(&ctx, "worker")["ingress_from"],
            json!(["api", "migrations"]),
            "the migrations Job connects where its service does"
        );
        let pods = |name: &str| json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop" });
        assert_eq!(
            service(&ctx, "api")["egress"],
            json!([{ "name": "worker", "ports": [9000], "selector": pods("worker") },
                   { "name": "database", "ports": [5432], "selector": pods("database") }])
        );
        assert_eq!(ctx["database"]["ingress_from"], json!(["api", "database-backup", "migrations"]));
        assert_eq!(ctx["database"]["ingress_peers"][0], json!({ "name": "api", "selector": pods("api") }));
        assert_eq!(ctx["migrations"]["egress"], service(&ctx, "api")["egress"]);

        // A peer the project's manifests deploy is selected by the label on their pod templates.
        let mut p = project();
        p.config.services.get_mut("worker").unwrap().deploy = Deploy::Manifests;
        let ctx = context(&p, &profile(false, None), &RenderOptions::default());
        let worker_pods = json!({ "dev.samestack/service": "worker", "dev.samestack.project": "shop" });
        assert_eq!(service(&ctx, "api")["egress"][0]["selector"], worker_pods);
        assert_eq!(ctx["migrations"]["egress"][0]["selector"], worker_pods);
        assert_eq!(service(&ctx, "api")["egress"][1]["selector"], pods("database"));
    }

    #[test]
    fn images_default_and_override() {
        let p = project();
        let ctx = context(&p, &profile(false, None), &RenderOptions::default());
        assert_eq!(service(&ctx, "api")["image"], "localhost:5001/shop/api:unbuilt");
        assert_eq!(service(&ctx, "worker")["image"], "busybox:1.36");
        assert_eq!(ctx["database"]["image"], "postgres:15.8");
        let opts = RenderOptions {
            images: [("api".to_owned(), "r/api:1".to_owned())].into(),
            postgres_image: Some("pg:local".into()),
            ..Default::default()
        };
        let ctx2 = context(&p, &profile(false, None), &opts);
        assert_eq!(service(&ctx2, "api")["image"], "r/api:1");
        assert_eq!(ctx2["database"]["image"], "pg:local");
        assert_eq!(ctx2["migrations"]["image"], "r/api:1");
    }

    fn migrations_job(profile: &ProfileSettings, opts: &RenderOptions) -> Value {
        let set = render(&project(), profile, opts).unwrap();
        let jobs: Vec<&Resource> = set.resources.iter().filter(|r| r.kind() == "Job").collect();
        assert_eq!(jobs.len(), 1);
        jobs[0].value.clone()
    }

    #[test]
    fn the_migrations_job_is_named_by_its_whole_spec() {
        let base = profile(false, None);
        let job = migrations_job(&base, &RenderOptions::default());
        let name = job["metadata"]["name"].as_str().unwrap().to_owned();
        assert!(name.starts_with("migrations-") && name.len() == "migrations-".len() + 8, "{name}");
        assert_eq!(migrations_job(&base, &RenderOptions::default())["metadata"]["name"], name, "stable");

        // Anything in the pod template gives a new name: a Job's template is immutable.
        let image = RenderOptions { images: [("api".to_owned(), "r/api:2".to_owned())].into(), ..Default::default() };
        let log_level = ProfileSettings { log_level: LogLevel::Info, ..base.clone() };
        let size = ProfileSettings { size: SizeClass::Medium, ..base.clone() };
        for (what, other) in [
            ("image", migrations_job(&base, &image)),
            ("LOG_LEVEL", migrations_job(&log_level, &RenderOptions::default())),
            ("resources", migrations_job(&size, &RenderOptions::default())),
        ] {
            assert_ne!(other["metadata"]["name"], name, "a new {what} must give a new Job");
        }
        // Knobs the Job does not use keep its name.
        let replicas = ProfileSettings { replicas: 5, ..base.clone() };
        assert_eq!(migrations_job(&replicas, &RenderOptions::default())["metadata"]["name"], name);
    }

    #[test]
    fn naming_by_spec_is_idempotent_and_follows_a_replaced_image() {
        let mut job = migrations_job(&profile(false, None), &RenderOptions::default());
        let name = job["metadata"]["name"].clone();
        name_by_spec(&mut job);
        assert_eq!(job["metadata"]["name"], name);
        let mut set = vec![job];
        let image = set[0].pointer("/spec/template/spec/containers/0/image").unwrap().as_str().unwrap().to_owned();
        replace_images(&mut set, &BTreeMap::from([(image, "localhost:5001/api@sha256:2".to_string())]));
        assert_ne!(set[0]["metadata"]["name"], name, "the pod template changed, so the name did");
        let mut plain = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "spec": {"a": 1}});
        name_by_spec(&mut plain);
        assert_eq!(plain["metadata"]["name"], "c", "only annotated objects are renamed");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut out = String::new();
        canonical_json(&json!({"b": [{"y": 1, "x": "s"}], "a": null}), &mut out);
        assert_eq!(out, r#"{"a":null,"b":[{"x":"s","y":1}]}"#);
    }

    #[test]
    fn knobs_reach_the_context() {
        let ctx = context(&project(), &profile(true, Some("localhost")), &RenderOptions::default());
        assert_eq!(service(&ctx, "api")["ingress"]["host"], "shop.localhost");
        assert_eq!(service(&ctx, "api")["read_only_root"], false, "hot reload makes synced services writable");
        assert_eq!(service(&ctx, "worker")["read_only_root"], true, "services without sync stay read-only");
        assert!(
            service(&ctx, "api")["env"].as_array().unwrap().contains(&json!({ "name": "LOG_LEVEL", "value": "debug" }))
        );
    }

    #[test]
    fn secrets_redacted_unless_revealed() {
        let mut opts =
            RenderOptions { secrets: [("pw".to_owned(), "hunter2".to_owned())].into(), ..Default::default() };
        let secret = |opts: &RenderOptions| {
            let set = render(&project(), &profile(false, None), opts).unwrap();
            set.resources.iter().find(|r| r.kind() == "Secret").unwrap().value.clone()
        };
        let redacted = secret(&opts);
        assert_eq!(redacted.get("data"), None, "no placeholder value that could replace a real one");
        assert_eq!(redacted["metadata"]["annotations"][REDACTED_ANNOTATION], "value");
        opts.reveal = true;
        let revealed = secret(&opts);
        assert_eq!(revealed["data"]["value"], "aHVudGVyMg==");
        assert_eq!(revealed["metadata"].get("annotations"), None);
    }

    #[test]
    fn undefined_is_an_error_in_every_form() {
        let env = environment();
        for form in [
            "{{ x }}",
            "{{ x | tojson }}",
            "{{ project.nope | tojson }}",
            "{{ [x] | tojson }}",
            "{{ {'a': [x]} | tojson }}",
            "{{ dict(a=x) | tojson }}",
            "{{ x | join(',') }}",
            "{{ [1] | join(x) }}",
            "{{ x | escape }}",
            "{{ x | e }}",
            "{{ x | pprint }}",
            "{{ x | chain([1]) }}",
            "{{ x | zip([1]) }}",
            "{{ x | groupby('a') }}",
            "{{ x | length }}",
            "{{ x | string }}",
            "{{ x | upper }}",
            "{{ x ~ 'a' }}",
            "{% if x %}y{% endif %}",
            "{% for i in x %}{% endfor %}",
        ] {
            let got = env.render_str(form, minijinja::context! { project => minijinja::context! { name => "p" } });
            let err = got.expect_err(form);
            assert!(err.to_string().contains("undefined"), "{form}: {err}");
        }
        let ok = env.render_str(
            "{{ x | default('d') | tojson }}{{ x is defined }}{{ [1, 2] | join(',') }}",
            minijinja::context! {},
        );
        assert_eq!(ok.unwrap(), "\"d\"False1,2");
    }

    #[test]
    fn full_render_is_valid_and_ordered() {
        let set = render(&project(), &profile(false, None), &RenderOptions::default()).unwrap();
        assert_eq!(set.resources[0].kind(), "Namespace");
        let ranks: Vec<usize> = set.resources.iter().map(Resource::rank).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(set.values().len(), set.files().len());
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn quantities_scale_with_units() {
        assert_eq!(scale("250m", 4), "1000m");
        assert_eq!(scale("128Mi", 3), "384Mi");
        assert_eq!(scale("1", 5), "5");
    }

    #[test]
    fn kinds_order_namespace_first() {
        assert!(kind_rank("Namespace") < kind_rank("Deployment"));
        assert!(kind_rank("Job") < kind_rank("Deployment"));
        assert!(kind_rank("Ingress") < kind_rank("Unknown"));
    }
}
