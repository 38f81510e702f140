//! Production-parity lint: checks every object of a rendered set, whatever produced it (the
//! built-in templates, a project's templates, user manifests), for what the built-in templates
//! guarantee — probes, requests and limits, restricted pod security, pinned images, and
//! PodDisruptionBudget and NetworkPolicy coverage — and reports each gap per object, container
//! and field path, with the YAML that fixes it. Pure: the commands decide where it prints and
//! whether a finding fails the run (`--strict`).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::{RenderedSet, Resource};
use crate::config::image_is_pinned;
use crate::drift::{Seg, path_string};
use crate::profile::SizeClass;
pub use crate::waiver::{Check, Waiver};

/// One gap between an object and what production parity needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The container (or init container) concerned; `None` for the pod or the object.
    pub container: Option<String>,
    /// Where the fix goes: `spec.template.spec.containers[api].readinessProbe`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// The YAML to merge into the parent of `path` (its last key included); for a missing
    /// object (`path` empty), the whole object to add.
    pub fix: String,
    /// The reason of the `lint_waivers` entry that waives it; `None`: open.
    pub waived: Option<String>,
}

/// The lint of one rendered set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LintReport {
    pub profile: String,
    /// `error` under `--strict`, else `warning`.
    pub level: &'static str,
    /// Findings not waived.
    pub open: usize,
    pub waived: usize,
    pub findings: Vec<Finding>,
    /// Waivers no finding matched: stale (the object was fixed or renamed), to be removed.
    pub unused_waivers: Vec<Waiver>,
}

impl LintReport {
    /// True when a finding is open (not waived).
    pub fn has_open(&self) -> bool {
        self.open > 0
    }
}

/// Lints `set` (pure): every finding, marked waived where a waiver covers it.
pub fn lint(profile: &str, set: &RenderedSet, waivers: &[Waiver], strict: bool) -> LintReport {
    let mut findings = Vec::new();
    let pdbs: Vec<&Resource> = set.resources.iter().filter(|r| r.kind() == "PodDisruptionBudget").collect();
    let policies: Vec<&Resource> = set.resources.iter().filter(|r| r.kind() == "NetworkPolicy").collect();
    for r in &set.resources {
        let Some(pod) = PodTemplate::of(r) else { continue };
        let mut out = Out { r, findings: &mut findings };
        check_containers(&mut out, &pod);
        check_pod_level(&mut out, &pod);
        check_coverage(&mut out, &pod, &pdbs, &policies);
    }
    for f in &mut findings {
        f.waived = waivers.iter().find(|w| covers(w, f)).map(|w| w.reason.clone());
    }
    let waived = findings.iter().filter(|f| f.waived.is_some()).count();
    let unused_waivers = waivers.iter().filter(|w| !findings.iter().any(|f| covers(w, f))).cloned().collect();
    LintReport {
        profile: profile.to_owned(),
        level: if strict { "error" } else { "warning" },
        open: findings.len() - waived,
        waived,
        findings,
        unused_waivers,
    }
}

/// Does `w` waive `f`? Same check, same `Kind/name`, and the same container unless the waiver
/// names none.
fn covers(w: &Waiver, f: &Finding) -> bool {
    w.check == f.check
        && w.object.split_once('/') == Some((f.kind.as_str(), f.name.as_str()))
        && w.container.as_ref().is_none_or(|c| f.container.as_ref() == Some(c))
}

/// Where an object keeps its pod template.
struct PodTemplate<'a> {
    /// Path to the pod spec: `spec.template.spec`, `spec` for a Pod.
    spec_path: Vec<Seg>,
    spec: &'a Value,
    /// The pod template's labels (what selectors match).
    labels: serde_json::Map<String, Value>,
    /// Its containers run until stopped (not a Job's, not a Pod that restarts never/on failure).
    long_running: bool,
}

impl<'a> PodTemplate<'a> {
    fn of(r: &'a Resource) -> Option<PodTemplate<'a>> {
        let keys: &[&str] = match r.kind() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &["spec", "template"],
            "CronJob" => &["spec", "jobTemplate", "spec", "template"],
            "Pod" => &[],
            _ => return None,
        };
        let mut template = &r.value;
        for k in keys {
            template = template.get(k)?;
        }
        let spec = template.get("spec")?;
        let labels = template.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
        let long_running = match r.kind() {
            "Job" | "CronJob" => false,
            "Pod" => !matches!(spec.get("restartPolicy").and_then(Value::as_str), Some("Never" | "OnFailure")),
            _ => true,
        };
        let mut spec_path: Vec<Seg> = keys.iter().map(|k| Seg::Key((*k).to_owned())).collect();
        spec_path.push(Seg::Key("spec".into()));
        Some(PodTemplate { spec_path, spec, labels, long_running })
    }

    /// `(list key, container)` for every init container, then every container.
    fn containers(&self) -> impl Iterator<Item = (&'static str, &'a Value)> {
        let list = |key: &'static str| {
            self.spec.get(key).and_then(Value::as_array).into_iter().flatten().map(move |c| (key, c))
        };
        list("initContainers").chain(list("containers"))
    }

    fn path(&self, more: &[&str]) -> String {
        let mut p = self.spec_path.clone();
        p.extend(more.iter().map(|k| Seg::Key((*k).to_owned())));
        path_string(&p)
    }

    fn container_path(&self, list: &str, name: &str, more: &[&str]) -> String {
        let mut p = self.spec_path.clone();
        p.push(Seg::Key(list.to_owned()));
        p.push(Seg::Named(name.to_owned()));
        p.extend(more.iter().map(|k| Seg::Key((*k).to_owned())));
        path_string(&p)
    }
}

/// Collects the findings of one object.
struct Out<'r, 'f> {
    r: &'r Resource,
    findings: &'f mut Vec<Finding>,
}

impl Out<'_, '_> {
    fn push(&mut self, check: Check, container: Option<&str>, path: String, message: String, fix: String) {
        self.findings.push(Finding {
            check,
            kind: self.r.kind().to_owned(),
            namespace: self.r.namespace().map(str::to_owned),
            name: self.r.name().to_owned(),
            container: container.map(str::to_owned),
            path,
            message,
            fix,
            waived: None,
        });
    }
}

fn container_name(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// A container's `securityContext.<key>`, if set.
fn sc<'a>(c: &'a Value, key: &str) -> Option<&'a Value> {
    c.get("securityContext").and_then(|s| s.get(key))
}

/// The first port a container declares, for the probe the fix suggests.
fn first_port(c: &Value) -> String {
    c.pointer("/ports/0/containerPort").map(Value::to_string).unwrap_or_else(|| "8080".into())
}

fn check_containers(out: &mut Out<'_, '_>, pod: &PodTemplate<'_>) {
    let medium = SizeClass::Medium.resources();
    for (list, c) in pod.containers() {
        let name = container_name(c);
        let at = |more: &[&str]| pod.container_path(list, name, more);
        let what = if list == "initContainers" { "init container" } else { "container" };
        // Probes matter for what runs until stopped: a workload's containers and native
        // sidecars (init containers with restartPolicy Always); the API refuses them on other
        // init containers, and a Job's containers end by themselves.
        let sidecar = c.get("restartPolicy").and_then(Value::as_str) == Some("Always");
        if pod.long_running && (list == "containers" || sidecar) {
            let port = first_port(c);
            for (probe, path) in [("readinessProbe", "/healthz"), ("livenessProbe", "/livez")] {
                if c.get(probe).is_none() {
                    out.push(
                        Check::Probes,
                        Some(name),
                        at(&[probe]),
                        format!("{what} `{name}` has no {probe}"),
                        format!("{probe}:\n  httpGet: {{ path: {path}, port: {port} }}\n  periodSeconds: 10"),
                    );
                }
            }
        }
        let missing: Vec<&str> = ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"]
            .into_iter()
            .filter(|field| {
                let (group, res) = field.split_once('.').unwrap_or_default();
                c.pointer(&format!("/resources/{group}/{res}")).is_none()
            })
            .collect();
        if !missing.is_empty() {
            out.push(
                Check::Resources,
                Some(name),
                at(&["resources"]),
                format!("{what} `{name}` does not set resources {}", missing.join(", ")),
                format!(
                    "resources:\n  requests: {{ cpu: {}, memory: {} }}\n  limits: {{ cpu: {}, memory: {} }}",
                    medium.requests_cpu, medium.requests_memory, medium.limits_cpu, medium.limits_memory
                ),
            );
        }
        let flags = [
            (
                Check::ReadOnlyRoot,
                "readOnlyRootFilesystem",
                true,
                "  # mount an emptyDir where the program writes, e.g. /tmp",
            ),
            (Check::PrivilegeEscalation, "allowPrivilegeEscalation", false, ""),
        ];
        for (check, key, want, hint) in flags {
            if sc(c, key) != Some(&Value::Bool(want)) {
                out.push(
                    check,
                    Some(name),
                    at(&["securityContext", key]),
                    format!("{what} `{name}`: {key} is {}, expected {want}", shown(sc(c, key))),
                    format!("{key}: {want}{hint}"),
                );
            }
        }
        let drops_all = sc(c, "capabilities")
            .and_then(|caps| caps.get("drop"))
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            out.push(
                Check::Capabilities,
                Some(name),
                at(&["securityContext", "capabilities", "drop"]),
                format!("{what} `{name}` does not drop ALL capabilities"),
                "drop: [ALL]".into(),
            );
        }
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        if !image_is_pinned(image) {
            let base = image.split('@').next().unwrap_or(image);
            let repo = match base.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo,
                _ => base,
            };
            out.push(
                Check::PinnedImage,
                Some(name),
                at(&["image"]),
                format!("{what} `{name}`: image `{image}` is not pinned (no tag, `latest`, or a malformed digest)"),
                format!(
                    "image: {}:1.2.3  # a fixed version, or @sha256:<digest>",
                    if repo.is_empty() { "REPO" } else { repo }
                ),
            );
        }
    }
}

/// Pod-level settings a container may override: runAsNonRoot and seccompProfile. A container
/// that sets a bad value is reported at the container; containers that inherit a missing or bad
/// pod value are reported once, at the pod.
fn check_pod_level(out: &mut Out<'_, '_>, pod: &PodTemplate<'_>) {
    let pod_sc = |key: &str| pod.spec.get("securityContext").and_then(|s| s.get(key));
    let seccomp_ok = |v: Option<&Value>| {
        matches!(v.and_then(|p| p.get("type")).and_then(Value::as_str), Some("RuntimeDefault" | "Localhost"))
    };
    let non_root_ok = |v: Option<&Value>| v == Some(&Value::Bool(true));
    type Ok = dyn Fn(Option<&Value>) -> bool;
    let rules: [(Check, &str, &Ok, &str); 2] = [
        (
            Check::RunAsNonRoot,
            "runAsNonRoot",
            &non_root_ok,
            "runAsNonRoot: true\nrunAsUser: 10001  # any non-zero uid the image can run as",
        ),
        (Check::Seccomp, "seccompProfile", &seccomp_ok, "seccompProfile:\n  type: RuntimeDefault"),
    ];
    for (check, key, ok, fix) in rules {
        let mut inheriting = Vec::new();
        for (list, c) in pod.containers() {
            let name = container_name(c);
            let what = if list == "initContainers" { "init container" } else { "container" };
            match sc(c, key) {
                Some(v) if !ok(Some(v)) => out.push(
                    check,
                    Some(name),
                    pod.container_path(list, name, &["securityContext", key]),
                    format!("{what} `{name}` overrides the pod's {key} with {}", shown(view(key, Some(v)))),
                    fix.to_owned(),
                ),
                Some(_) => {}
                None if !ok(pod_sc(key)) => inheriting.push(format!("`{name}`")),
                None => {}
            }
        }
        if !inheriting.is_empty() {
            out.push(
                check,
                None,
                pod.path(&["securityContext", key]),
                format!(
                    "pod {key} is {} and container(s) {} do not set their own",
                    shown(view(key, pod_sc(key))),
                    inheriting.join(", ")
                ),
                fix.to_owned(),
            );
        }
    }
}

/// What a message shows of a setting: a seccomp profile by its type.
fn view<'a>(key: &str, v: Option<&'a Value>) -> Option<&'a Value> {
    if key == "seccompProfile" { v.map(|p| p.get("type").unwrap_or(p)) } else { v }
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None => "unset".into(),
        Some(v) => v.to_string(),
    }
}

/// Does a Kubernetes label selector (`matchLabels`, `matchExpressions`) select `labels`?
/// An empty selector selects every pod.
pub fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k).is_some() && label(k) == v.as_str());
    let by_expressions = selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> =
            e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// The template labels as a YAML flow mapping, for the selectors the fixes suggest.
fn match_labels(pod: &PodTemplate<'_>) -> String {
    if pod.labels.is_empty() {
        return "{ app.kubernetes.io/name: NAME }  # the pod template has no labels: add some".into();
    }
    let pairs: Vec<String> = pod.labels.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or(""))).collect();
    format!("{{ {} }}", pairs.join(", "))
}

fn check_coverage(out: &mut Out<'_, '_>, pod: &PodTemplate<'_>, pdbs: &[&Resource], policies: &[&Resource]) {
    let ns = out.r.namespace();
    let name = out.r.name().to_owned();
    let ns_line = ns.map(|n| format!("\n  namespace: {n}")).unwrap_or_default();
    // Only Deployments and StatefulSets, whatever their replica count: the count is a knob
    // (dev 1, prod 2, an autoscaler's choice when spec.replicas is absent), so coverage must
    // not depend on it. DaemonSet pods are skipped by `kubectl drain`, and Job and bare pods
    // end by themselves: a budget protects none of them.
    if matches!(out.r.kind(), "Deployment" | "StatefulSet") {
        // policy/v1: an empty selector selects every pod of the namespace, a missing one none.
        let covered = pdbs
            .iter()
            .any(|p| p.namespace() == ns && p.value.pointer("/spec/selector").is_some_and(|s| selects(s, &pod.labels)));
        if !covered {
            out.push(
                Check::DisruptionBudget,
                None,
                String::new(),
                format!("no PodDisruptionBudget selects the pods of {} {name}", out.r.kind()),
                format!(
                    "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}{ns_line}\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels: {}",
                    match_labels(pod)
                ),
            );
        }
    }
    // A policy without podSelector selects every pod, like `podSelector: {}`.
    let covered = policies
        .iter()
        .any(|p| p.namespace() == ns && p.value.pointer("/spec/podSelector").is_none_or(|s| selects(s, &pod.labels)));
    if !covered {
        out.push(
            Check::NetworkPolicy,
            None,
            String::new(),
            format!("no NetworkPolicy selects the pods of {} {name}: all traffic to and from them is allowed", out.r.kind()),
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}{ns_line}\nspec:\n  podSelector:\n    matchLabels: {}\n  policyTypes: [Ingress, Egress]\n  # then allow what the pods need: ingress from their clients, egress to their dependencies",
                match_labels(pod)
            ),
        );
    }
}

/// The human-readable report (for stderr): one block per object, each finding with its path
/// and the YAML to add.
pub fn format_report(r: &LintReport) -> String {
    let mut out = String::new();
    let level = r.level;
    let _ = writeln!(out, "lint ({}): {} production-parity finding(s), {} waived", r.profile, r.open, r.waived);
    let mut last = None;
    for f in r.findings.iter().filter(|f| f.waived.is_none()) {
        let object =
            format!("{} {}{}", f.kind, f.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default(), f.name);
        if last.as_ref() != Some(&object) {
            let _ = writeln!(out, "\n{object}");
            last = Some(object);
        }
        let _ = writeln!(out, "  {level}[{}]: {}", f.check.name(), f.message);
        if f.path.is_empty() {
            let _ = writeln!(out, "    fix: add this object to the set:");
        } else {
            let _ = writeln!(out, "    at: {}", f.path);
            let parent = f.path.rsplit_once('.').map(|(p, _)| p).unwrap_or(&f.path);
            let _ = writeln!(out, "    fix: under {parent}:");
        }
        for line in f.fix.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
    let waived: Vec<&Finding> = r.findings.iter().filter(|f| f.waived.is_some()).collect();
    if !waived.is_empty() {
        let _ = writeln!(out, "\nwaived by the profile's lint_waivers:");
        for f in waived {
            let container = f.container.as_deref().map(|c| format!(" container `{c}`")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  waived[{}] {}/{}{container}: {}",
                f.check.name(),
                f.kind,
                f.name,
                f.waived.as_deref().unwrap_or("")
            );
        }
    }
    if !r.unused_waivers.is_empty() {
        let _ = writeln!(out, "\nlint_waivers that match no finding (remove them from profiles/{}.yaml):", r.profile);
        for w in &r.unused_waivers {
            let container = w.container.as_deref().map(|c| format!(" container `{c}`")).unwrap_or_default();
            let _ = writeln!(out, "  {} {}{container}", w.check.name(), w.object);
        }
    }
    if r.has_open() {
        let how = if level == "error" {
            "--strict: these findings fail the command"
        } else {
            "warnings only; `--strict` makes them fail the command"
        };
        let _ = writeln!(
            out,
            "\nresult: {} finding(s) ({how}).\n  fix: apply the fixes above, or waive a check for one object in profiles/{}.yaml `lint_waivers` with a reason",
            r.open, r.profile
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(yaml: &str) -> RenderedSet {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
        RenderedSet { resources: docs.into_iter().filter(|d| !d.is_null()).map(|value| Resource { value }).collect() }
    }

    /// A Deployment that passes every check, with a PDB and a NetworkPolicy selecting it.
    const GOOD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  template:
    metadata: { labels: { app: web, tier: front } }
    spec:
      securityContext: { runAsNonRoot: true, seccompProfile: { type: RuntimeDefault } }
      initContainers:
      - name: init
        image: busybox:1.36
        resources: { requests: { cpu: 10m, memory: 16Mi }, limits: { cpu: 100m, memory: 64Mi } }
        securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: [ALL] } }
      containers:
      - name: web
        image: nginx:1.27.2
        ports: [{ containerPort: 80 }]
        readinessProbe: { httpGet: { path: /, port: 80 } }
        livenessProbe: { httpGet: { path: /, port: 80 } }
        resources: { requests: { cpu: 10m, memory: 16Mi }, limits: { cpu: 100m, memory: 64Mi } }
        securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: [ALL] } }
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: web, namespace: shop }
spec: { maxUnavailable: 1, selector: { matchLabels: { app: web } } }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web, namespace: shop }
spec: { podSelector: { matchExpressions: [{ key: tier, operator: In, values: [front] }] }, policyTypes: [Ingress] }
"#;

    fn findings(yaml: &str) -> Vec<(Check, Option<String>, String)> {
        lint("prod", &set(yaml), &[], false).findings.into_iter().map(|f| (f.check, f.container, f.path)).collect()
    }

    fn of(yaml: &str, check: Check) -> Vec<(Option<String>, String)> {
        findings(yaml).into_iter().filter(|(c, _, _)| *c == check).map(|(_, c, p)| (c, p)).collect()
    }

    fn c(name: &str) -> Option<String> {
        Some(name.into())
    }

    #[test]
    fn a_hardened_covered_deployment_has_no_finding() {
        assert_eq!(findings(GOOD), vec![]);
    }

    #[test]
    fn probes_are_required_on_long_running_containers_only() {
        let weak = GOOD.replace("        readinessProbe: { httpGet: { path: /, port: 80 } }\n", "");
        assert_eq!(of(&weak, Check::Probes), [(c("web"), "spec.template.spec.containers[web].readinessProbe".into())]);
        // A Job's containers, and plain init containers, need none; a native sidecar does.
        let job = GOOD
            .replace("kind: Deployment", "kind: Job")
            .replace("        livenessProbe: { httpGet: { path: /, port: 80 } }\n", "");
        assert_eq!(of(&job, Check::Probes), []);
        let sidecar = GOOD.replace("      - name: init\n", "      - name: init\n        restartPolicy: Always\n");
        assert_eq!(
            of(&sidecar, Check::Probes).iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(),
            [
                "spec.template.spec.initContainers[init].readinessProbe",
                "spec.template.spec.initContainers[init].livenessProbe"
            ]
        );
        let pod = r#"
apiVersion: v1
kind: Pod
metadata: { name: once }
spec:
  restartPolicy: Never
  containers: [{ name: run, image: busybox:1.36 }]
"#;
        assert_eq!(of(pod, Check::Probes), []);
        assert_eq!(of(&pod.replace("Never", "Always"), Check::Probes).len(), 2);
    }

    #[test]
    fn resources_need_cpu_and_memory_requests_and_limits() {
        let weak = GOOD.replacen("limits: { cpu: 100m, memory: 64Mi }", "limits: { cpu: 100m }", 1);
        let f = lint("prod", &set(&weak), &[], false).findings;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].check, Check::Resources);
        assert_eq!(f[0].path, "spec.template.spec.initContainers[init].resources");
        assert_eq!(f[0].message, "init container `init` does not set resources limits.memory");
        assert!(f[0].fix.contains("limits: { cpu: 500m, memory: 512Mi }"), "{}", f[0].fix);
    }

    #[test]
    fn container_flags_are_checked_on_every_container() {
        let weak = GOOD.replacen(
            "securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: [ALL] } }",
            "securityContext: { readOnlyRootFilesystem: false, capabilities: { drop: [NET_RAW], add: [NET_ADMIN] } }",
            1,
        );
        assert_eq!(
            findings(&weak),
            [
                (
                    Check::ReadOnlyRoot,
                    c("init"),
                    "spec.template.spec.initContainers[init].securityContext.readOnlyRootFilesystem".into()
                ),
                (
                    Check::PrivilegeEscalation,
                    c("init"),
                    "spec.template.spec.initContainers[init].securityContext.allowPrivilegeEscalation".into()
                ),
                (
                    Check::Capabilities,
                    c("init"),
                    "spec.template.spec.initContainers[init].securityContext.capabilities.drop".into()
                ),
            ]
        );
    }

    #[test]
    fn run_as_non_root_and_seccomp_come_from_the_pod_or_the_container() {
        // The pod sets neither: one finding each, at the pod, naming the containers.
        let weak = GOOD
            .replace("      securityContext: { runAsNonRoot: true, seccompProfile: { type: RuntimeDefault } }\n", "");
        let f = lint("prod", &set(&weak), &[], false).findings;
        assert_eq!(
            f.iter().map(|f| (f.check, f.path.as_str())).collect::<Vec<_>>(),
            [
                (Check::RunAsNonRoot, "spec.template.spec.securityContext.runAsNonRoot"),
                (Check::Seccomp, "spec.template.spec.securityContext.seccompProfile"),
            ]
        );
        assert!(f[0].message.contains("`init`, `web`"), "{}", f[0].message);
        // The containers set them themselves: fine (Localhost is as good as RuntimeDefault).
        let own = weak.replace(
            "capabilities: { drop: [ALL] } }",
            "capabilities: { drop: [ALL] }, runAsNonRoot: true, seccompProfile: { type: Localhost, localhostProfile: p.json } }",
        );
        assert_eq!(findings(&own), []);
        // A container overriding the pod's good value with a bad one is reported at the container.
        let over = GOOD.replacen(
            "capabilities: { drop: [ALL] } }",
            "capabilities: { drop: [ALL] }, runAsNonRoot: false, seccompProfile: { type: Unconfined } }",
            2,
        );
        assert_eq!(
            of(&over, Check::RunAsNonRoot),
            [
                (c("init"), "spec.template.spec.initContainers[init].securityContext.runAsNonRoot".into()),
                (c("web"), "spec.template.spec.containers[web].securityContext.runAsNonRoot".into()),
            ]
        );
        assert_eq!(of(&over, Check::Seccomp).len(), 2);
    }

    #[test]
    fn pinned_means_a_digest_or_a_tag_other_than_latest() {
        let digest = format!("x@sha256:{}", "a".repeat(64));
        let both = format!("r.io:443/x/y:1@sha256:{}", "0".repeat(64));
        for good in ["nginx:1.27", "localhost:5001/a/b:abc", &digest, &both] {
            assert!(image_is_pinned(good), "{good}");
        }
        for bad in ["nginx", "localhost:5001/nginx", "nginx:latest", "nginx:", "x@sha256:00", ""] {
            assert!(!image_is_pinned(bad), "{bad}");
        }
        let weak = GOOD.replace("image: nginx:1.27.2", "image: localhost:5001/nginx");
        let f = lint("prod", &set(&weak), &[], false).findings;
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "spec.template.spec.containers[web].image");
        assert!(f[0].fix.starts_with("image: localhost:5001/nginx:1.2.3"), "{}", f[0].fix);
    }

    #[test]
    fn every_deployment_and_statefulset_needs_a_budget_in_its_namespace() {
        let other_ns = GOOD.replace(
            "kind: PodDisruptionBudget\nmetadata: { name: web, namespace: shop }",
            "kind: PodDisruptionBudget\nmetadata: { name: web, namespace: other }",
        );
        assert_eq!(findings(&other_ns), [(Check::DisruptionBudget, None, String::new())]);
        let wrong = GOOD.replace("selector: { matchLabels: { app: web } }", "selector: { matchLabels: { app: api } }");
        let f = lint("prod", &set(&wrong), &[], false).findings;
        assert_eq!(f.len(), 1);
        assert!(f[0].fix.contains("matchLabels: { app: web, tier: front }"), "{}", f[0].fix);
        let sts = wrong.replace("kind: Deployment", "kind: StatefulSet");
        assert_eq!(of(&sts, Check::DisruptionBudget).len(), 1);
        // DaemonSets and Jobs are not budgeted; an empty selector selects every pod.
        assert_eq!(of(&wrong.replace("kind: Deployment", "kind: DaemonSet"), Check::DisruptionBudget), []);
        let all = GOOD.replace("selector: { matchLabels: { app: web } }", "selector: {}");
        assert_eq!(findings(&all), []);
    }

    #[test]
    fn every_pod_template_needs_a_network_policy_in_its_namespace() {
        let wrong = GOOD.replace("values: [front]", "values: [back]");
        assert_eq!(findings(&wrong), [(Check::NetworkPolicy, None, String::new())]);
        let not_in = GOOD.replace("operator: In, values: [front]", "operator: NotIn, values: [front]");
        assert_eq!(findings(&not_in).len(), 1);
        let exists = GOOD.replace("operator: In, values: [front]", "operator: Exists");
        assert_eq!(findings(&exists), []);
        let default_deny = GOOD.replace(
            "podSelector: { matchExpressions: [{ key: tier, operator: In, values: [front] }] }",
            "podSelector: {}",
        );
        assert_eq!(findings(&default_deny), []);
    }

    #[test]
    fn every_pod_bearing_kind_is_checked() {
        let weak = |kind: &str, nest: &str| format!("apiVersion: v1\nkind: {kind}\nmetadata: {{ name: x }}\n{nest}");
        let template = "spec:\n  template:\n    spec:\n      containers: [{ name: c, image: busybox:1.36 }]\n";
        let cron = "spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{ name: c, image: busybox:1.36 }]\n";
        let pod = "spec:\n  containers: [{ name: c, image: busybox:1.36 }]\n";
        for (kind, nest) in [
            ("Deployment", template),
            ("StatefulSet", template),
            ("DaemonSet", template),
            ("ReplicaSet", template),
            ("Job", template),
            ("CronJob", cron),
            ("Pod", pod),
        ] {
            let f = findings(&weak(kind, nest));
            assert!(f.iter().any(|(c, _, _)| *c == Check::ReadOnlyRoot), "{kind}: {f:?}");
            assert!(f.iter().any(|(c, _, _)| *c == Check::NetworkPolicy), "{kind}: {f:?}");
        }
        assert_eq!(findings(&weak("ConfigMap", "data: {}\n")), []);
        let cron = findings(&weak("CronJob", cron));
        assert!(
            cron.iter().any(|(_, _, p)| p
                == "spec.jobTemplate.spec.template.spec.containers[c].securityContext.readOnlyRootFilesystem"),
            "{cron:?}"
        );
    }

    #[test]
    fn a_waiver_waives_one_check_for_one_object_and_is_reported() {
        let weak = GOOD
            .replace("        readinessProbe: { httpGet: { path: /, port: 80 } }\n", "")
            .replace("image: nginx:1.27.2", "image: nginx");
        let waiver = Waiver {
            check: Check::Probes,
            object: "Deployment/web".into(),
            container: Some("web".into()),
            reason: "legacy".into(),
        };
        let r = lint("prod", &set(&weak), std::slice::from_ref(&waiver), true);
        assert_eq!((r.open, r.waived, r.has_open()), (1, 1, true));
        let text = format_report(&r);
        assert!(text.contains("error[pinned_image]"), "{text}");
        assert!(text.contains("waived[probes] Deployment/web container `web`: legacy"), "{text}");
        let other = Waiver { object: "Deployment/api".into(), ..waiver.clone() };
        let r = lint("prod", &set(&weak), std::slice::from_ref(&other), false);
        assert_eq!((r.waived, &r.unused_waivers), (0, &vec![other]));
        assert!(format_report(&r).contains("lint_waivers that match no finding (remove them from profiles/prod.yaml):\n  probes Deployment/api container `web`"), "{}", format_report(&r));
        assert_eq!(waiver.problem(crate::config::is_dns_subdomain), None);
        assert!(
            Waiver { object: "web".into(), ..waiver.clone() }
                .problem(crate::config::is_dns_subdomain)
                .unwrap()
                .contains("Kind/name")
        );
        assert!(
            Waiver { reason: " ".into(), ..waiver }
                .problem(crate::config::is_dns_subdomain)
                .unwrap()
                .contains("no reason")
        );
    }

    #[test]
    fn every_check_is_documented_with_its_fix() {
        let reference = include_str!("../../docs/reference.md");
        let mut names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        for name in &names {
            assert!(reference.contains(&format!("| `{name}` |")), "docs/reference.md has no row for {name}");
            let json = serde_json::to_value(Check::ALL.iter().find(|c| c.name() == *name).unwrap()).unwrap();
            assert_eq!(json, *name, "the JSON and waiver name is the documented one");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Check::ALL.len());
    }
}
