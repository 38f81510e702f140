//! Parity: diff two rendered manifest sets resource by resource, field by field, and classify
//! each difference as allowed (declared by a profile's `allowed_drift`) or drift. Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::{RenderedSet, ResourceId};

pub use crate::drift::{Pattern, Seg, path_string};

/// The fields each knob may change. A profile that lists the knob in `allowed_drift` may
/// differ from prod in exactly these fields.
pub fn knob_patterns(knob: &str) -> Vec<Pattern> {
    let pats: &[&str] = match knob {
        "replicas" => &["Deployment:spec.replicas", "ResourceQuota:spec.**"],
        "size" => &["*:**.resources.**", "LimitRange:spec.**", "ResourceQuota:spec.**"],
        "autoscaling" => &[
            "HorizontalPodAutoscaler:spec.minReplicas",
            "HorizontalPodAutoscaler:spec.maxReplicas",
            "HorizontalPodAutoscaler:spec.metrics.**",
            "ResourceQuota:spec.**",
        ],
        "hot_reload" => &["Deployment:spec.template.spec.containers.*.securityContext.readOnlyRootFilesystem"],
        "ingress_domain" => &["Ingress:spec.rules.*.host", "Ingress:spec.tls.*.hosts.*"],
        "log_level" => &["*:**.env.LOG_LEVEL.value"],
        _ => &[],
    };
    pats.iter().filter_map(|p| Pattern::parse(p)).collect()
}

/// A raw difference between two renders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Field path; empty when the whole resource exists on one side only.
    pub path: String,
    #[serde(skip)]
    pub segs: Vec<Seg>,
    /// Value in the first render (`None`: absent).
    pub a: Option<Value>,
    /// Value in the second render.
    pub b: Option<Value>,
    /// The `allowed_drift` entry that allows it; `None` means drift.
    pub allowed_by: Option<String>,
}

/// The result of comparing two profiles.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    pub a: String,
    pub b: String,
    pub differences: Vec<Difference>,
    pub allowed: usize,
    pub drift: usize,
}

impl ParityReport {
    /// True when some difference is not declared.
    pub fn has_drift(&self) -> bool {
        self.drift > 0
    }
}

/// How parity matches a resource across two renders: by kind, namespace and name, except an
/// object named by its spec (the migrations Job, see [`super::name_by_spec`]), which matches
/// by its stem. Its name is then left out of the comparison: it only follows the spec, whose
/// differences are reported (and allowed or not) field by field.
fn identity(r: &super::Resource) -> (ResourceId, Value) {
    let stem = r
        .value
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(super::NAME_BY_SPEC_ANNOTATION))
        .and_then(Value::as_str);
    match stem {
        Some(stem) => {
            let mut value = r.value.clone();
            if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("name");
            }
            (ResourceId { name: stem.to_owned(), ..r.id() }, value)
        }
        None => (r.id(), r.value.clone()),
    }
}

/// Diffs two rendered sets resource by resource, field by field (pure).
pub fn diff(a: &RenderedSet, b: &RenderedSet) -> Vec<Difference> {
    let index = |set: &RenderedSet| -> BTreeMap<ResourceId, Value> { set.resources.iter().map(identity).collect() };
    let (ma, mb) = (index(a), index(b));
    let mut out = Vec::new();
    let mut ids: Vec<&ResourceId> = ma.keys().chain(mb.keys()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let mut push = |segs: Vec<Seg>, va: Option<&Value>, vb: Option<&Value>| {
            out.push(Difference {
                kind: id.kind.clone(),
                namespace: id.namespace.clone(),
                name: id.name.clone(),
                path: path_string(&segs),
                segs,
                a: va.cloned(),
                b: vb.cloned(),
                allowed_by: None,
            })
        };
        match (ma.get(id), mb.get(id)) {
            (Some(va), Some(vb)) => diff_values(&mut Vec::new(), va, vb, &mut push),
            (va, vb) => push(Vec::new(), va.map(|_| &Value::Bool(true)), vb.map(|_| &Value::Bool(true))),
        }
    }
    out
}

fn named_items(v: &[Value]) -> Option<BTreeMap<String, &Value>> {
    let mut m = BTreeMap::new();
    for item in v {
        let name = item.get("name")?.as_str()?;
        if m.insert(name.to_owned(), item).is_some() {
            return None;
        }
    }
    Some(m)
}

/// Receives each difference found: field path, value in A, value in B.
type Sink<'a> = dyn FnMut(Vec<Seg>, Option<&Value>, Option<&Value>) + 'a;

fn diff_values(path: &mut Vec<Seg>, a: &Value, b: &Value, push: &mut Sink<'_>) {
    match (a, b) {
        (Value::Object(oa), Value::Object(ob)) => {
            let mut keys: Vec<&String> = oa.keys().chain(ob.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(Seg::Key(k.clone()));
                match (oa.get(k), ob.get(k)) {
                    (Some(x), Some(y)) => diff_values(path, x, y, push),
                    (x, y) => push(path.clone(), x, y),
                }
                path.pop();
            }
        }
        (Value::Array(xa), Value::Array(xb)) => {
            if let (Some(na), Some(nb)) = (named_items(xa), named_items(xb))
                && !(xa.is_empty() && xb.is_empty())
            {
                let mut names: Vec<&String> = na.keys().chain(nb.keys()).collect();
                names.sort();
                names.dedup();
                for n in names {
                    path.push(Seg::Named(n.clone()));
                    match (na.get(n), nb.get(n)) {
                        (Some(x), Some(y)) => diff_values(path, x, y, push),
                        (x, y) => push(path.clone(), x.copied(), y.copied()),
                    }
                    path.pop();
                }
            } else {
                for i in 0..xa.len().max(xb.len()) {
                    path.push(Seg::Index(i));
                    match (xa.get(i), xb.get(i)) {
                        (Some(x), Some(y)) => diff_values(path, x, y, push),
                        (x, y) => push(path.clone(), x, y),
                    }
                    path.pop();
                }
            }
        }
        (x, y) if x == y => {}
        (x, y) => push(path.clone(), Some(x), Some(y)),
    }
}

/// Marks each difference allowed or drift, given the union of both profiles' `allowed_drift`.
pub fn classify(a_name: &str, b_name: &str, mut diffs: Vec<Difference>, allowed_drift: &[String]) -> ParityReport {
    let rules: Vec<(String, Vec<Pattern>)> = allowed_drift
        .iter()
        .map(|entry| {
            let pats = match Pattern::parse(entry) {
                Some(p) => vec![p],
                None => knob_patterns(entry),
            };
            (entry.clone(), pats)
        })
        .collect();
    for d in &mut diffs {
        d.allowed_by =
            rules.iter().find(|(_, pats)| pats.iter().any(|p| p.matches(&d.kind, &d.segs))).map(|(e, _)| e.clone());
    }
    let allowed = diffs.iter().filter(|d| d.allowed_by.is_some()).count();
    ParityReport {
        a: a_name.to_owned(),
        b: b_name.to_owned(),
        drift: diffs.len() - allowed,
        allowed,
        differences: diffs,
    }
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 80 {
                format!("{}…", &s[..s.char_indices().nth(77).map(|(i, _)| i).unwrap_or(s.len())])
            } else {
                s
            }
        }
    }
}

/// The human-readable report.
pub fn format_report(r: &ParityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "parity {} vs {}: {} difference(s), {} allowed, {} undeclared drift",
        r.a,
        r.b,
        r.differences.len(),
        r.allowed,
        r.drift
    );
    let mut last = None;
    for d in &r.differences {
        let res =
            format!("{} {}{}", d.kind, d.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default(), d.name);
        if last.as_ref() != Some(&res) {
            let _ = writeln!(out, "\n{res}");
            last = Some(res);
        }
        let (tag, why) = match &d.allowed_by {
            Some(k) => ("allowed", format!("  [{k}]")),
            None => ("DRIFT  ", String::new()),
        };
        if d.path.is_empty() {
            let side = if d.a.is_some() { &r.a } else { &r.b };
            let _ = writeln!(out, "  {tag} (whole resource): only in {side}{why}");
        } else {
            let _ = writeln!(out, "  {tag} {}: {} -> {}{why}", d.path, show(&d.a), show(&d.b));
        }
    }
    if r.has_drift() {
        let _ = writeln!(
            out,
            "\nresult: {} undeclared difference(s) between {} and {}.\n  fix: make the templates render the same for both, or declare the knob/field in the profile's allowed_drift",
            r.drift, r.a, r.b
        );
    } else {
        let _ = writeln!(out, "\nresult: no undeclared drift between {} and {}", r.a, r.b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{RenderedSet, Resource};
    use serde_json::json;

    fn set(values: Vec<Value>) -> RenderedSet {
        RenderedSet { resources: values.into_iter().map(|value| Resource { value }).collect() }
    }

    fn deploy(replicas: u32, image: &str, level: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "p"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "api", "image": image,
            "env": [{"name": "A", "value": "1"}, {"name": "LOG_LEVEL", "value": level}]}]}}}})
    }

    #[test]
    fn identical_sets_have_no_differences() {
        let a = set(vec![deploy(1, "x:1", "info")]);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn lists_of_named_items_diff_by_name() {
        let d = diff(&set(vec![deploy(1, "x:1", "debug")]), &set(vec![deploy(2, "x:1", "info")]));
        let paths: Vec<_> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["spec.replicas", "spec.template.spec.containers[api].env[LOG_LEVEL].value"]);
    }

    #[test]
    fn knobs_allow_only_their_fields() {
        let d = diff(&set(vec![deploy(1, "x:1", "debug")]), &set(vec![deploy(2, "x:2", "info")]));
        let r = classify("dev", "prod", d, &["replicas".into(), "log_level".into()]);
        assert_eq!((r.allowed, r.drift), (2, 1));
        let drift: Vec<_> = r.differences.iter().filter(|d| d.allowed_by.is_none()).map(|d| d.path.clone()).collect();
        assert_eq!(drift, ["spec.template.spec.containers[api].image"]);
        assert!(format_report(&r).contains("DRIFT"));
    }

    #[test]
    fn explicit_patterns_and_missing_resources() {
        let a = set(vec![
            deploy(1, "x:1", "info"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "p"}}),
        ]);
        let b = set(vec![deploy(1, "x:2", "info")]);
        let r = classify("a", "b", diff(&a, &b), &["Deployment:spec.template.spec.containers[*].image".into()]);
        assert_eq!(r.differences.len(), 2);
        assert_eq!(r.drift, 1);
        assert_eq!(r.differences.iter().find(|d| d.kind == "ConfigMap").unwrap().path, "");
        assert!(format_report(&r).contains("DRIFT   (whole resource): only in a"), "{}", format_report(&r));
    }

    #[test]
    fn objects_named_by_their_spec_match_by_stem() {
        let job = |name: &str, level: &str| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "p",
                "annotations": {crate::render::NAME_BY_SPEC_ANNOTATION: "migrations"}},
                "spec": {"template": {"spec": {"containers": [{"name": "m", "env": [{"name": "LOG_LEVEL", "value": level}]}]}}}})
        };
        let d = diff(&set(vec![job("migrations-aaaa", "debug")]), &set(vec![job("migrations-bbbb", "info")]));
        let r = classify("dev", "prod", d, &["log_level".into()]);
        assert_eq!((r.allowed, r.drift), (1, 0), "{}", format_report(&r));
        assert_eq!(r.differences[0].name, "migrations");
        assert_eq!(r.differences[0].path, "spec.template.spec.containers[m].env[LOG_LEVEL].value");
    }

    #[test]
    fn patterns_parse_and_match() {
        let p = Pattern::parse("*:**.resources.**").unwrap();
        let path = vec![
            Seg::Key("spec".into()),
            Seg::Named("api".into()),
            Seg::Key("resources".into()),
            Seg::Key("limits".into()),
        ];
        assert!(p.matches("StatefulSet", &path));
        assert!(Pattern::parse("replicas").is_none());
        assert!(Pattern::parse("Deploy ment:x").is_none());
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        for ok in [
            "Deployment:spec.template.spec.containers[*].image",
            "*:metadata.labels[app.kubernetes.io/name]",
            "Deployment:spec.**",
            "Deployment:spec.containers[api].env[LOG_LEVEL].value",
        ] {
            assert!(Pattern::check(ok).is_ok(), "{ok}: {:?}", Pattern::check(ok));
        }
        let p = Pattern::check("*:metadata.labels[app.kubernetes.io/name]").unwrap();
        assert!(p.matches(
            "Service",
            &[Seg::Key("metadata".into()), Seg::Key("labels".into()), Seg::Key("app.kubernetes.io/name".into())]
        ));
        for (bad, says) in [
            ("Deployment:", "empty segment"),
            ("Deployment:spec..replicas", "empty segment"),
            ("Deployment:spec.replicas.", "empty segment"),
            ("Deployment:.spec", "empty segment"),
            ("Deployment:spec.containers[*.image", "without `]`"),
            ("Deployment:spec.containers]", "without `[`"),
            ("Deployment:spec.containers[]", "empty or nested"),
            ("Deployment:spec.rep*", "whole segment"),
            ("Deployment:spec.a:b", "contains a space or `:`"),
            ("Deployment:spec[x]y", "expected `.` or `[`"),
            ("Deploy-ment:spec", "kind"),
        ] {
            let err = Pattern::check(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
