//! Which pods are a service's, and which of their containers runs its image: the pods of the
//! built-in Deployment (labels `app.kubernetes.io/name` and `part-of`, the container named like
//! the service) and those of the project's own manifests that run the service's built image
//! (label [`SERVICE_LABEL`], the container their annotation [`CONTAINER_ANNOTATION`] names, see
//! [`crate::render::sources`]). A label selector cannot say "either", so both are listed.

use std::collections::BTreeMap;

use ::kube::Api;
use ::kube::api::ListParams;
use k8s_openapi::api::core::v1::Pod;

use crate::labels;
use crate::render::sources::{CONTAINER_ANNOTATION, SERVICE_LABEL};

/// The label selectors whose pods together are `service`'s, in project `project`.
pub fn selectors(project: &str, service: &str) -> Vec<String> {
    vec![
        format!("{}={service},{}={project}", labels::NAME, labels::PART_OF),
        format!("{SERVICE_LABEL}={service},{}={project}", labels::PROJECT),
    ]
}

/// The label selector of every pod of the project, built-in or from its manifests.
pub fn project_selector(project: &str) -> String {
    format!("{}={project}", labels::PROJECT)
}

/// The service a pod belongs to: the label of the project's manifests, else the built-in one.
pub fn service_of(pod: &Pod) -> Option<&str> {
    let l = pod.metadata.labels.as_ref()?;
    l.get(SERVICE_LABEL).or_else(|| l.get(labels::NAME)).map(String::as_str)
}

/// The container of `pod` that runs `service`'s image: the one its annotation names, else the
/// one named like the service (the built-in Deployment's).
pub fn container_of<'a>(pod: &'a Pod, service: &'a str) -> &'a str {
    let named = pod.metadata.annotations.as_ref().and_then(|a| a.get(CONTAINER_ANNOTATION));
    named.map(String::as_str).unwrap_or(service)
}

/// The pods matching any of `selectors` that are running, ready and not being deleted, by name.
pub async fn ready(client: &::kube::Client, namespace: &str, selectors: &[String]) -> Result<Vec<Pod>, ::kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut found = BTreeMap::new();
    for selector in selectors {
        for pod in pods.list(&ListParams::default().labels(selector)).await?.items {
            if is_ready(&pod) {
                found.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
            }
        }
    }
    Ok(found.into_values().collect())
}

/// Running, Ready, and not terminating.
pub fn is_ready(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(status) = &pod.status else { return false };
    status.phase.as_deref() == Some("Running")
        && status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Pod {
        let map = |kv: &[(&str, &str)]| Some(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let mut p = Pod::default();
        p.metadata.labels = map(labels);
        p.metadata.annotations = map(annotations);
        p
    }

    #[test]
    fn built_in_pods_and_pods_of_the_projects_manifests_are_the_services() {
        assert_eq!(
            selectors("shop", "api"),
            [
                "app.kubernetes.io/name=api,app.kubernetes.io/part-of=shop",
                "dev.samestack/service=api,dev.samestack.project=shop"
            ]
        );
        let built_in = pod(&[(labels::NAME, "api"), (labels::PART_OF, "shop")], &[]);
        assert_eq!((service_of(&built_in), container_of(&built_in, "api")), (Some("api"), "api"));
        // A chart's pod keeps its own name label; samestack's label and annotation say whose it is.
        let chart =
            pod(&[(labels::NAME, "guestbook-api"), (SERVICE_LABEL, "api")], &[(CONTAINER_ANNOTATION, "server")]);
        assert_eq!((service_of(&chart), container_of(&chart, "api")), (Some("api"), "server"));
        assert_eq!(service_of(&pod(&[], &[])), None);
        assert_eq!(project_selector("shop"), "dev.samestack.project=shop");
    }
}
