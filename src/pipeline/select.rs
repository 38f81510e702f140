//! Which rendered objects belong to one service (pure): what `dev` applies after rebuilding it.

use serde_json::Value;

/// The label the templates give every object of a service, with the service's name as value.
pub use crate::labels::NAME as SERVICE_LABEL;

/// Whether `manifest` is one of `service`'s objects (its Deployment, Service, Ingress, HPA...):
/// labelled with the service's name, or, for a workload of the project's own manifests that
/// runs the service's built image, annotated with it (see
/// [`crate::render::sources::SERVICE_ANNOTATION`]).
pub fn belongs_to(manifest: &Value, service: &str) -> bool {
    let meta = |key: &str, name: &str| {
        manifest.pointer(&format!("/metadata/{key}")).and_then(|l| l.get(name)).and_then(Value::as_str)
    };
    meta("labels", SERVICE_LABEL) == Some(service)
        || meta("annotations", crate::render::sources::SERVICE_ANNOTATION) == Some(service)
}

/// `service`'s objects out of a rendered set, in their order.
pub fn objects_of(manifests: &[Value], service: &str) -> Vec<Value> {
    manifests.iter().filter(|m| belongs_to(m, service)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_objects_labelled_with_the_service_are_its_own() {
        let object = |kind: &str, labels: Value| json!({"kind": kind, "metadata": {"name": "x", "labels": labels}});
        let set = vec![
            object("Deployment", json!({"app.kubernetes.io/name": "api"})),
            object("Service", json!({"app.kubernetes.io/name": "api"})),
            object("Deployment", json!({"app.kubernetes.io/name": "api-worker"})),
            object("Namespace", json!({})),
            json!({"kind": "ConfigMap", "metadata": {"name": "api"}}),
            json!({"kind": "StatefulSet", "metadata": {"name": "chart", "labels": {"app.kubernetes.io/name": "chart"},
                "annotations": {"dev.samestack/service": "api"}}}),
        ];
        let kinds: Vec<_> = objects_of(&set, "api").iter().map(|o| o["kind"].clone()).collect();
        assert_eq!(kinds, ["Deployment", "Service", "StatefulSet"]);
    }
}
