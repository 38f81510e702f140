//! The ingress controller samestack installs into the clusters it creates, so the project's
//! Ingress resources answer on the host (`cluster.ports` maps host ports onto the node's 80
//! and 443) without kubectl or a port-forward: Traefik, the controller k3d ships too.
//!
//! It runs on the node that publishes the host ports (the first server) with hostPorts 80 and
//! 443, serves Ingresses without a class (its IngressClass is the default one), and lives in
//! its own namespace, outside the project's: `down` of one project never touches it, deleting
//! the cluster removes it. k3d clusters keep k3d's own Traefik; existing clusters keep
//! whatever controller they have.

use serde_json::{Value, json};

use crate::cluster::PortMapping;

/// The image when neither the project file nor `SAMESTACK_INGRESS_IMAGE` names one.
pub const DEFAULT_IMAGE: &str = "traefik:v3.6.12";
/// Environment variable overriding the image (offline and air-gapped use).
pub const IMAGE_ENV: &str = "SAMESTACK_INGRESS_IMAGE";
/// Namespace of the controller.
pub const NAMESPACE: &str = "samestack-ingress";
/// The `dev.samestack.project` label value of the controller's objects: not a valid project
/// name (it has a dot), so no project's pruning or status ever selects them.
pub const OWNER: &str = "samestack.ingress";
/// Name of the controller's Deployment, ServiceAccount and RBAC objects.
const NAME: &str = "traefik";
/// Ports inside the pod; the node's 80 and 443 forward to them, so no capability is needed.
const HTTP_PORT: u16 = 8000;
const HTTPS_PORT: u16 = 8443;
/// Traefik's own entrypoint (`/ping` for the probes).
const ADMIN_PORT: u16 = 8080;

/// What to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSpec {
    /// The image, as the settings resolved it (flag, `SAMESTACK_INGRESS_IMAGE`, the project
    /// file); `None` or blank: [`DEFAULT_IMAGE`].
    pub image: Option<String>,
}

impl IngressSpec {
    /// The image to run: the spec's, else [`DEFAULT_IMAGE`].
    pub fn image(&self) -> String {
        self.image.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_IMAGE).to_string()
    }
}

/// Whether samestack installs the controller on a cluster of this provider, and if not, who
/// serves Ingresses there (for the progress line).
pub fn installed_by_samestack(provider: &str) -> Result<(), &'static str> {
    match provider {
        "docker" | "kind" => Ok(()),
        "k3d" => Err("k3d's built-in Traefik serves Ingresses"),
        _ => Err("the cluster's own ingress controller (if any) serves Ingresses"),
    }
}

/// The controller's manifests. `node` is the Kubernetes name of the node that publishes the
/// host ports: the pod is pinned there, tolerating the control-plane taint.
pub fn manifests(image: &str, node: &str) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "ingress-controller"});
    let meta = |name: &str, namespaced: bool| {
        let mut m = json!({"name": name, "labels": labels});
        if namespaced {
            m["namespace"] = json!(NAMESPACE);
        }
        m
    };
    let read = json!(["get", "list", "watch"]);
    let args = vec![
        format!("--entryPoints.web.address=:{HTTP_PORT}"),
        format!("--entryPoints.websecure.address=:{HTTPS_PORT}"),
        "--entryPoints.websecure.http.tls=true".to_string(),
        format!("--entryPoints.traefik.address=:{ADMIN_PORT}"),
        "--ping=true".to_string(),
        "--providers.kubernetesingress=true".to_string(),
        "--providers.kubernetesingress.ingressendpoint.hostname=localhost".to_string(),
        // Local clusters are often offline: no update check, no usage report.
        "--global.checknewversion=false".to_string(),
        "--global.sendanonymoususage=false".to_string(),
        "--log.level=INFO".to_string(),
    ];
    let probe = |initial: u32| json!({"httpGet": {"path": "/ping", "port": ADMIN_PORT}, "initialDelaySeconds": initial, "periodSeconds": 5, "timeoutSeconds": 2});
    vec![
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {
                // hostPorts are beyond the `baseline` level: this namespace holds only the controller.
                "pod-security.kubernetes.io/enforce": "privileged",
                "app.kubernetes.io/name": NAME,
            }},
        }),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(NAME, true)}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": meta("samestack-ingress", false),
            "rules": [
                {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": read},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": read},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": meta("samestack-ingress", false),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "samestack-ingress"},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {
                "name": NAME, "labels": labels,
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": "traefik.io/ingress-controller"},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta(NAME, true),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                // Two pods cannot hold the same hostPorts on one node: replace, do not surge.
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "nodeSelector": {"kubernetes.io/hostname": node},
                        "tolerations": [
                            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                        ],
                        "terminationGracePeriodSeconds": 10,
                        "securityContext": {
                            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": NAME,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": args,
                            "ports": [
                                {"name": "web", "containerPort": HTTP_PORT, "hostPort": 80, "protocol": "TCP"},
                                {"name": "websecure", "containerPort": HTTPS_PORT, "hostPort": 443, "protocol": "TCP"},
                                {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
                            ],
                            "readinessProbe": probe(0),
                            "livenessProbe": probe(10),
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                    },
                },
            },
        }),
    ]
}

/// The URLs an Ingress host answers on from the host: `http://host:<port>/` for every host
/// port mapped onto the node's 80, `https://host:<port>/` for 443 (the port left out when it
/// is the scheme's own).
pub fn urls(host: &str, ports: &[PortMapping]) -> Vec<String> {
    ports
        .iter()
        .filter_map(|p| {
            let scheme = match p.container_port {
                80 => "http",
                443 => "https",
                _ => return None,
            };
            Some(if p.host_port == p.container_port {
                format!("{scheme}://{host}/")
            } else {
                format!("{scheme}://{host}:{}/", p.host_port)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
        docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
    }

    #[test]
    fn controller_is_pinned_to_the_port_node_with_host_ports_and_no_privileges() {
        let docs = manifests("img:1", "dev-control-plane");
        let deploy = find(&docs, "Deployment");
        let pod = &deploy["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"]["kubernetes.io/hostname"], "dev-control-plane");
        assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "img:1");
        let host_ports: Vec<_> = c["ports"].as_array().unwrap().iter().filter_map(|p| p["hostPort"].as_u64()).collect();
        assert_eq!(host_ports, [80, 443]);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(args.contains(&"--providers.kubernetesingress=true"), "{args:?}");
        assert!(args.contains(&"--global.checknewversion=false"), "{args:?}");
    }

    #[test]
    fn everything_namespaced_is_in_the_controller_namespace_and_the_class_is_default() {
        let docs = manifests("img:1", "n");
        for d in &docs {
            if let Some(ns) = d["metadata"].get("namespace") {
                assert_eq!(ns, NAMESPACE, "{d}");
            }
        }
        assert_eq!(find(&docs, "Namespace")["metadata"]["name"], NAMESPACE);
        let class = find(&docs, "IngressClass");
        assert_eq!(class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"], "true");
        let binding = find(&docs, "ClusterRoleBinding");
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }

    #[test]
    fn the_spec_image_else_the_default() {
        // Which of flag, environment and file wins is settings' rule (settings::tests).
        assert_eq!(IngressSpec { image: None }.image(), DEFAULT_IMAGE);
        assert_eq!(IngressSpec { image: Some(" ".into()) }.image(), DEFAULT_IMAGE);
        assert_eq!(IngressSpec { image: Some("file:1".into()) }.image(), "file:1");
    }

    #[test]
    fn urls_follow_the_port_mappings() {
        let map = |host_port, container_port| PortMapping {
            host_ip: None,
            host_port,
            container_port,
            protocol: "tcp".into(),
        };
        assert_eq!(
            urls("shop.localhost", &[map(8080, 80), map(8443, 443), map(5432, 5432)]),
            ["http://shop.localhost:8080/", "https://shop.localhost:8443/"]
        );
        assert_eq!(urls("shop.localhost", &[map(80, 80)]), ["http://shop.localhost/"]);
        assert!(urls("shop.localhost", &[]).is_empty());
    }

    #[test]
    fn providers_with_their_own_controller_are_left_alone() {
        assert!(installed_by_samestack("docker").is_ok());
        assert!(installed_by_samestack("kind").is_ok());
        assert!(installed_by_samestack("k3d").is_err());
        assert!(installed_by_samestack("existing").is_err());
    }
}
