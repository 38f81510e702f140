//! Which rendered objects belong to one service (pure): what `dev` applies after rebuilding it.

use serde_json::Value;

/// The label the templates give every object of a service, with the service's name as value.
pub use crate::labels::NAME as SERVICE_LABEL;

/// Whether `manifest` is one of `service`'s objects (its Deployment, Service, Ingress, HPA...).
pub fn belongs_to(manifest: &Value, service: &str) -> bool {
    manifest.pointer("/metadata/labels").and_then(|l| l.get(SERVICE_LABEL)).and_then(Value::as_str) == Some(service)
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
        ];
        let kinds: Vec<_> = objects_of(&set, "api").iter().map(|o| o["kind"].clone()).collect();
        assert_eq!(kinds, ["Deployment", "Service"]);
    }
}
