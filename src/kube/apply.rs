//! Server-side apply in waves, then pruning, with a report of what changed.
//!
//! Every object is applied with field manager `samestack` and `force`: samestack's templates
//! are the source of truth for the fields they set, so a field last written by someone else
//! (a `kubectl edit`, an older client-side apply, another tool) is taken back instead of
//! failing the whole `up` with a conflict — the same choice as `kubectl apply --server-side
//! --force-conflicts` in a CD pipeline. Fields the templates do not set keep their other
//! managers. One exception to "templates win": the replica count of a workload that a
//! HorizontalPodAutoscaler in the same set scales. The autoscaler owns it: a live workload
//! keeps its live count, and a new one starts at the template's count or, when the template
//! leaves it out (as the built-in templates do, so that production's `kubectl apply` never
//! resets the scale), at the autoscaler's `minReplicas` — where the autoscaler would take it
//! anyway, so the first rollout waits for the right number of pods.
//!
//! Change detection compares each object's content before and after its apply (see
//! [`content`]), so a second `up` with the same manifests reports every object unchanged.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use ::kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde_json::Value;

use super::client::{KubeClient, ResourceType};
use super::object::{ObjectKey, describe, group_of, head, str_at};
use super::prune::{Found, plan_prune};
use super::wave::{Phase, plan_waves};
use super::{Error, MANAGED_BY_LABEL, MANAGER, PROJECT_LABEL, Result, ownership_selector, wait};

/// How many API calls run at once within a wave.
const CONCURRENCY: usize = 8;

/// How `apply_waves` behaves.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How long each wave may take to become ready (separate from build timeouts).
    pub wave_timeout: Duration,
    /// Delete owned objects the manifests no longer contain.
    pub prune: bool,
    /// Wait for readiness after each wave (off only for API-only clusters and dry tests).
    pub wait: bool,
    /// Namespace for namespaced manifests that name none.
    pub default_namespace: String,
    /// Nodes started again just before (a reboot): pods on them count as ready only once
    /// they turned Ready after the restart.
    pub restart: Option<super::readiness::Restart>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            wave_timeout: Duration::from_secs(300),
            prune: true,
            wait: true,
            default_namespace: "default".into(),
            restart: None,
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Created,
    Changed,
    Unchanged,
    Pruned,
}

/// One object and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectChange {
    #[serde(flatten)]
    pub key: ObjectKey,
    pub change: Change,
}

/// One wave: what was applied and how long apply and readiness took.
#[derive(Debug, Clone, Serialize)]
pub struct WaveReport {
    pub phase: Phase,
    pub objects: Vec<ObjectChange>,
    pub apply_ms: u128,
    pub ready_ms: u128,
}

/// Everything `apply_waves` did, for `up`'s report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub waves: Vec<WaveReport>,
    pub pruned: Vec<ObjectChange>,
}

impl ApplyReport {
    /// How many objects had `change`.
    pub fn count(&self, change: Change) -> usize {
        self.waves.iter().flat_map(|w| &w.objects).chain(&self.pruned).filter(|o| o.change == change).count()
    }

    /// True when the cluster already matched the manifests: nothing created, changed or pruned.
    pub fn nothing_changed(&self) -> bool {
        self.count(Change::Created) + self.count(Change::Changed) + self.pruned.len() == 0
    }

    /// "3 created, 1 changed, 12 unchanged, 1 pruned".
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} changed, {} unchanged, {} pruned",
            self.count(Change::Created),
            self.count(Change::Changed),
            self.count(Change::Unchanged),
            self.pruned.len()
        )
    }
}

/// Stamps the ownership labels (what pruning selects on) onto a manifest.
pub fn stamp_ownership(manifest: &mut Value, project: &str) {
    let Some(obj) = manifest.as_object_mut() else { return };
    let metadata = obj.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else { return };
    let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(PROJECT_LABEL.into(), project.into());
        labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    }
}

/// Whether an API group is Kubernetes' own (typed, with Go's "empty list = absent" storage).
fn builtin_group(group: &str) -> bool {
    group.is_empty() || group.ends_with(".k8s.io") || matches!(group, "apps" | "batch" | "policy" | "autoscaling")
}

/// Removes empty lists (`egress: []`) from a built-in object. The API server stores an empty
/// list as absent, so server-side apply would see `[]` against nothing and write the object
/// again on every apply, bumping its generation — a second `up` would never be quiet. For
/// these types the two mean the same. Empty maps (`podSelector: {}`) do carry meaning and stay;
/// custom resources keep everything, since their storage preserves the difference.
pub fn strip_empty_lists(manifest: &mut Value) {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|_, v| !matches!(v, Value::Array(a) if a.is_empty()));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if builtin_group(group_of(str_at(manifest, "/apiVersion").unwrap_or(""))) {
        strip(manifest);
    }
}

/// The (group, kind) pairs the CRDs in a manifest set define.
pub fn kinds_defined_by_crds(manifests: &[Value]) -> HashSet<(String, String)> {
    manifests
        .iter()
        .filter(|m| str_at(m, "/kind") == Some("CustomResourceDefinition"))
        .filter_map(|m| Some((str_at(m, "/spec/group")?.to_string(), str_at(m, "/spec/names/kind")?.to_string())))
        .collect()
}

/// Applies `manifests` for `project` in waves (see [`super::wave`]), waiting for each wave to
/// be ready, then prunes owned objects that are no longer in the set. Every manifest is checked
/// (head fields, known kind) before anything is sent.
pub async fn apply_waves(
    client: &KubeClient,
    project: &str,
    manifests: &[Value],
    options: &ApplyOptions,
) -> Result<ApplyReport> {
    apply_waves_with(client, project, manifests, options, |_| {}).await
}

/// [`apply_waves`], calling `on_wave` after each wave is applied and ready (for progress lines).
pub async fn apply_waves_with(
    client: &KubeClient,
    project: &str,
    manifests: &[Value],
    options: &ApplyOptions,
    mut on_wave: impl FnMut(&WaveReport),
) -> Result<ApplyReport> {
    let mut docs = manifests.to_vec();
    for (index, doc) in docs.iter_mut().enumerate() {
        let name = describe(doc);
        head(doc, index)?;
        super::wave::annotated_phase(doc)
            .map_err(|reason| Error::InvalidManifest { index, reason: format!("{name}: {reason}") })?;
        stamp_ownership(doc, project);
        strip_empty_lists(doc);
    }
    let crd_kinds = kinds_defined_by_crds(&docs);
    let autoscaled = autoscaled_workloads(&docs, &options.default_namespace);
    let limit = options.wave_timeout + super::DIAGNOSIS_GRACE;
    super::within(client, || "looking up the kinds of the manifests".into(), limit, async {
        for doc in &docs {
            let h = head(doc, 0)?;
            let custom = crd_kinds.contains(&(group_of(h.api_version).to_string(), h.kind.to_string()));
            if !custom && client.resolve(h.api_version, h.kind).await?.is_none() {
                return Err(Error::UnknownKind {
                    api_version: h.api_version.into(),
                    kind: h.kind.into(),
                    name: h.name.into(),
                });
            }
        }
        Ok(())
    })
    .await?;

    let mut report = ApplyReport::default();
    let mut applied: BTreeSet<ObjectKey> = BTreeSet::new();
    for wave in plan_waves(&docs) {
        let what = || format!("applying wave \"{}\"", wave.phase.label());
        let wave_report =
            super::within(client, what, limit, apply_wave(client, &wave, options, &autoscaled, &crd_kinds)).await?;
        applied.extend(wave_report.objects.iter().map(|o| o.key.clone()));
        on_wave(&wave_report);
        report.waves.push(wave_report);
    }
    if options.prune {
        report.pruned = super::within(client, || "pruning".into(), limit, prune(client, project, &applied)).await?;
    }
    Ok(report)
}

/// Applies one wave and waits until it is ready; readiness has what is left of the wave's
/// timeout once the objects are applied.
async fn apply_wave(
    client: &KubeClient,
    wave: &super::Wave,
    options: &ApplyOptions,
    autoscaled: &Autoscaled,
    crd_kinds: &HashSet<(String, String)>,
) -> Result<WaveReport> {
    let started = Instant::now();
    let results: Vec<(ObjectKey, Change, ResourceType)> = stream::iter(wave.objects.iter())
        .map(|doc| apply_one(client, doc, &options.default_namespace, autoscaled))
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let apply_ms = started.elapsed().as_millis();
    let ready_started = Instant::now();
    let left = options.wave_timeout.saturating_sub(started.elapsed());
    if options.wait {
        let targets: Vec<(ResourceType, ObjectKey)> = results.iter().map(|(k, _, t)| (t.clone(), k.clone())).collect();
        wait::wait_wave(client, wave.phase, &targets, left, options.restart.as_ref()).await?;
    }
    if wave.phase == Phase::Foundation && !crd_kinds.is_empty() {
        wait_until_served(client, crd_kinds, left).await?;
    }
    tracing::info!(wave = wave.phase.label(), objects = results.len(), "wave applied");
    let objects = results.into_iter().map(|(key, change, _)| ObjectChange { key, change }).collect();
    Ok(WaveReport { phase: wave.phase, objects, apply_ms, ready_ms: ready_started.elapsed().as_millis() })
}

/// Refreshes discovery until the kinds of the new CRDs are served: the API server publishes
/// them in discovery a moment after the CRDs report Established.
async fn wait_until_served(client: &KubeClient, kinds: &HashSet<(String, String)>, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        client.forget_discovery().await;
        let mut missing = None;
        for (group, kind) in kinds {
            if !client.serves(group, kind).await? {
                missing = Some((group, kind));
                break;
            }
        }
        let Some((group, kind)) = missing else { return Ok(()) };
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                wave: Phase::Foundation.label(),
                timeout,
                diagnosis: format!("the API server does not serve {kind}.{group} yet, although its CRD was applied"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn api_error(object: String, action: &'static str, source: ::kube::Error) -> Error {
    match &source {
        ::kube::Error::Api(status) if matches!(status.code, 400 | 404 | 422) => Error::Rejected {
            object,
            code: status.code,
            message: crate::error::cap_message(&status.message, super::MAX_SERVER_MESSAGE),
        },
        _ => Error::Api { action, object, source: super::capped(source) },
    }
}

/// A workload an autoscaler scales: (kind, namespace, name).
type Autoscaled = HashMap<(String, String, String), Option<Value>>;

/// The workloads a HorizontalPodAutoscaler in `docs` scales, each with the autoscaler's
/// `minReplicas` (absent: Kubernetes' default of 1 applies).
fn autoscaled_workloads(docs: &[Value], default_namespace: &str) -> Autoscaled {
    docs.iter()
        .filter(|d| str_at(d, "/kind") == Some("HorizontalPodAutoscaler"))
        .filter_map(|hpa| {
            let namespace = str_at(hpa, "/metadata/namespace").unwrap_or(default_namespace);
            let kind = str_at(hpa, "/spec/scaleTargetRef/kind")?;
            let name = str_at(hpa, "/spec/scaleTargetRef/name")?;
            let min = hpa.pointer("/spec/minReplicas").filter(|m| m.is_u64()).cloned();
            Some(((kind.to_string(), namespace.to_string(), name.to_string()), min))
        })
        .collect()
}

/// The replica count to apply for a workload an autoscaler scales (see the module
/// documentation): the live count when it exists, else the template's, else `min_replicas`.
fn autoscaled_replicas(doc: &mut Value, live: Option<&DynamicObject>, min_replicas: Option<&Value>) {
    let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let count = match live.and_then(|l| l.data.pointer("/spec/replicas")) {
        Some(live) => Some(live),
        None if spec.contains_key("replicas") => None,
        None => min_replicas,
    };
    if let Some(count) = count {
        spec.insert("replicas".into(), count.clone());
    }
}

async fn apply_one(
    client: &KubeClient,
    doc: &Value,
    default_namespace: &str,
    autoscaled: &Autoscaled,
) -> Result<(ObjectKey, Change, ResourceType)> {
    let h = head(doc, 0)?;
    let ty = client.resolve(h.api_version, h.kind).await?.ok_or_else(|| Error::UnknownKind {
        api_version: h.api_version.into(),
        kind: h.kind.into(),
        name: h.name.into(),
    })?;
    let namespace = ty.namespaced().then(|| h.namespace.unwrap_or(default_namespace).to_string());
    let key = ObjectKey {
        group: ty.resource.group.clone(),
        kind: h.kind.into(),
        namespace: namespace.clone(),
        name: h.name.into(),
    };
    let mut doc = doc.clone();
    if let (Some(ns), Some(meta)) = (&namespace, doc.get_mut("metadata").and_then(Value::as_object_mut)) {
        meta.insert("namespace".into(), ns.clone().into());
    }
    let api = client.api(&ty, namespace.as_deref());
    let before = api.get_opt(&key.name).await.map_err(|s| api_error(describe(&doc), "reading", s))?;
    if let Some(min_replicas) =
        autoscaled.get(&(key.kind.clone(), namespace.clone().unwrap_or_default(), key.name.clone()))
    {
        autoscaled_replicas(&mut doc, before.as_ref(), min_replicas.as_ref());
    }
    let params = PatchParams::apply(MANAGER).force();
    let after = api
        .patch(&key.name, &params, &Patch::Apply(&doc))
        .await
        .map_err(|s| api_error(describe(&doc), "applying", s))?;
    let change = match before {
        None => Change::Created,
        Some(before) if content(&before) == content(&after) => Change::Unchanged,
        Some(_) => Change::Changed,
    };
    tracing::debug!(object = %key, ?change, "applied");
    Ok((key, change, ty))
}

/// What an apply can change: the object without its bookkeeping. The resourceVersion alone is
/// no witness: right after creation the server may rewrite an object with identical content
/// (seen on PersistentVolumeClaims), and `status` belongs to the controllers.
fn content(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
    }
    value
}

/// True when samestack server-side applied this object (its field manager has an Apply entry)
/// and no controller owns it; see [`super::prune`] for why labels alone are not enough.
fn applied_by_samestack(meta: &::kube::api::ObjectMeta) -> bool {
    let owned = meta.owner_references.as_ref().is_some_and(|o| !o.is_empty());
    let applied = meta
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(MANAGER) && m.operation.as_deref() == Some("Apply"));
    applied && !owned
}

/// Kinds never pruned even when labelled: events are records, not desired state.
fn prunable(ty: &ResourceType) -> bool {
    !matches!(ty.resource.kind.as_str(), "Event" | "EndpointSlice" | "Endpoints" | "Lease")
}

/// Lists every listable, deletable resource type by the ownership selector and deletes what
/// [`plan_prune`] picks. Types that fail to list (aggregated APIs that are down) are skipped.
async fn prune(client: &KubeClient, project: &str, applied: &BTreeSet<ObjectKey>) -> Result<Vec<ObjectChange>> {
    let types: Vec<ResourceType> =
        client.types_supporting(&["list", "delete"]).await?.into_iter().filter(prunable).collect();
    let selector = ownership_selector(project);
    let params = ListParams::default().labels(&selector);
    let listed: Vec<Vec<Found>> = stream::iter(types.iter())
        .map(|ty| {
            let params = params.clone();
            async move {
                let api = client.api(ty, None);
                match api.list_metadata(&params).await {
                    Ok(list) => list
                        .items
                        .into_iter()
                        .map(|item| Found {
                            key: ObjectKey {
                                group: ty.resource.group.clone(),
                                kind: ty.resource.kind.clone(),
                                namespace: item.metadata.namespace.clone(),
                                name: item.metadata.name.clone().unwrap_or_default(),
                            },
                            api_version: ty.resource.api_version.clone(),
                            made_by_others: !applied_by_samestack(&item.metadata),
                            deleting: item.metadata.deletion_timestamp.is_some(),
                        })
                        .collect(),
                    Err(err) => {
                        tracing::debug!(kind = %ty.resource.kind, %err, "cannot list for pruning; skipped");
                        Vec::new()
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let found: Vec<Found> = listed.into_iter().flatten().collect();
    let mut pruned = Vec::new();
    for doomed in plan_prune(applied, &found) {
        let ty = types
            .iter()
            .find(|t| t.resource.group == doomed.key.group && t.resource.kind == doomed.key.kind)
            .expect("pruned objects come from listed types");
        let api = client.api(ty, doomed.key.namespace.as_deref());
        match api.delete(&doomed.key.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(::kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(Error::Api {
                    action: "pruning",
                    object: doomed.key.to_string(),
                    source: super::capped(source),
                });
            }
        }
        tracing::info!(object = %doomed.key, "pruned");
        pruned.push(ObjectChange { key: doomed.key.clone(), change: Change::Pruned });
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_objects_samestack_applied_and_nobody_owns_are_prunable() {
        let meta = |managers: &[(&str, &str)], owner: bool| -> ::kube::api::ObjectMeta {
            serde_json::from_value(json!({
                "name": "x",
                "managedFields": managers.iter().map(|(m, op)| json!({"manager": m, "operation": op})).collect::<Vec<_>>(),
                "ownerReferences": if owner { json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "1"}]) } else { json!([]) },
            }))
            .unwrap()
        };
        assert!(applied_by_samestack(&meta(&[("samestack", "Apply")], false)));
        // A StatefulSet's claim: made by the controller, labels inherited, no owner.
        assert!(!applied_by_samestack(&meta(&[("kube-controller-manager", "Update")], false)));
        assert!(!applied_by_samestack(&meta(&[("samestack", "Apply")], true)));
        assert!(!applied_by_samestack(&meta(&[("samestack", "Update")], false)));
    }

    #[test]
    fn a_rewrite_with_the_same_content_is_no_change() {
        let object = |rv: &str, status: &str, storage: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "resourceVersion": rv, "managedFields": [{"manager": "samestack", "time": format!("2026-11-22T05:00:{rv}Z")}]},
                "spec": {"resources": {"requests": {"storage": storage}}},
                "status": {"phase": status}
            }))
            .unwrap()
        };
        assert_eq!(content(&object("31", "Pending", "1Gi")), content(&object("35", "Bound", "1Gi")));
        assert_ne!(content(&object("31", "Pending", "1Gi")), content(&object("35", "Pending", "2Gi")));
    }

    #[test]
    fn an_autoscaled_workload_keeps_its_live_replica_count_and_starts_at_the_minimum() {
        let hpa = |ns: Option<&str>, name: &str| {
            let mut h = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}});
            if let Some(ns) = ns {
                h["metadata"]["namespace"] = json!(ns);
                h["spec"]["minReplicas"] = json!(3);
            }
            h
        };
        let docs =
            [hpa(Some("shop"), "api"), hpa(None, "worker"), json!({"kind": "Deployment", "metadata": {"name": "web"}})];
        let scaled = autoscaled_workloads(&docs, "default");
        let key = |ns: &str, name: &str| ("Deployment".to_string(), ns.to_string(), name.to_string());
        assert_eq!(scaled, [(key("shop", "api"), Some(json!(3))), (key("default", "worker"), None)].into());

        let live: DynamicObject = serde_json::from_value(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {"replicas": 5}}),
        )
        .unwrap();
        let replicas = |spec: Value, live: Option<&DynamicObject>, min: Option<Value>| {
            let mut doc = json!({"kind": "Deployment", "spec": spec});
            autoscaled_replicas(&mut doc, live, min.as_ref());
            doc["spec"].clone()
        };
        let three = Some(json!(3));
        assert_eq!(
            replicas(json!({"replicas": 2, "paused": false}), Some(&live), three.clone()),
            json!({"replicas": 5, "paused": false})
        );
        assert_eq!(
            replicas(json!({}), Some(&live), three.clone()),
            json!({"replicas": 5}),
            "live wins over the minimum"
        );
        assert_eq!(replicas(json!({}), None, three.clone()), json!({"replicas": 3}), "created at minReplicas");
        assert_eq!(replicas(json!({"replicas": 2}), None, three), json!({"replicas": 2}), "or at the template's count");
        assert_eq!(replicas(json!({}), None, None), json!({}), "Kubernetes' default when the HPA names no minimum");
    }

    #[test]
    fn stamps_labels_keeping_others() {
        let mut m =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "api"}}});
        stamp_ownership(&mut m, "shop");
        assert_eq!(
            m["metadata"]["labels"],
            json!({"app": "api", PROJECT_LABEL: "shop", MANAGED_BY_LABEL: "samestack"})
        );
        let mut bare = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        stamp_ownership(&mut bare, "shop");
        assert_eq!(bare["metadata"]["labels"][PROJECT_LABEL], "shop");
    }

    #[test]
    fn empty_lists_go_from_builtin_objects_only() {
        let mut np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db"},
            "spec": {"podSelector": {}, "egress": [], "ingress": [{"from": [], "ports": [{"port": 5432}]}], "policyTypes": ["Egress"]}});
        strip_empty_lists(&mut np);
        assert_eq!(
            np["spec"],
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 5432}]}], "policyTypes": ["Egress"]})
        );
        let mut custom = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"parts": []}});
        strip_empty_lists(&mut custom);
        assert_eq!(custom["spec"]["parts"], json!([]));
    }

    #[test]
    fn crd_kinds_come_from_spec() {
        let crd =
            json!({"kind": "CustomResourceDefinition", "spec": {"group": "example.com", "names": {"kind": "Widget"}}});
        let kinds = kinds_defined_by_crds(&[crd, json!({"kind": "ConfigMap"})]);
        assert_eq!(kinds, [("example.com".to_string(), "Widget".to_string())].into());
    }

    #[test]
    fn report_counts_and_nothing_changed() {
        let key =
            ObjectKey { group: String::new(), kind: "ConfigMap".into(), namespace: Some("s".into()), name: "c".into() };
        let wave = |change| WaveReport {
            phase: Phase::Config,
            objects: vec![ObjectChange { key: key.clone(), change }],
            apply_ms: 1,
            ready_ms: 0,
        };
        let quiet = ApplyReport { waves: vec![wave(Change::Unchanged)], pruned: vec![] };
        assert!(quiet.nothing_changed());
        assert_eq!(quiet.summary(), "0 created, 0 changed, 1 unchanged, 0 pruned");
        let busy = ApplyReport { waves: vec![wave(Change::Changed)], pruned: vec![] };
        assert!(!busy.nothing_changed());
        let pruned = ApplyReport {
            waves: vec![wave(Change::Unchanged)],
            pruned: vec![ObjectChange { key, change: Change::Pruned }],
        };
        assert!(!pruned.nothing_changed());
        assert_eq!(pruned.count(Change::Pruned), 1);
    }
}
