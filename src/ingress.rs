//! The ingress controller samestack installs into the clusters it creates, so the project's
//! Ingress resources answer on the host (`cluster.ports` maps host ports onto the node's 80
//! and 443) without kubectl or a port-forward: Traefik, the controller k3d ships too.
//!
//! It runs on the node that publishes the host ports (the first server) with hostPorts 80 and
//! 443, serves Ingresses without a class (its IngressClass is the default one), and lives in
//! its own namespace, outside the project's: `down` of one project never touches it, deleting
//! the cluster removes it. k3d clusters keep k3d's own Traefik; existing clusters keep
//! whatever controller they have.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::cluster::PortMapping;
use crate::kube::KubeClient;

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
/// Traefik's own entrypoint: `/ping` for the probes, `/api` for [`wait_routed`]. Not
/// published on the host.
const ADMIN_PORT: u16 = 8080;
/// How often [`wait_routed`] asks Traefik for its routers.
const ROUTES_POLL: Duration = Duration::from_millis(100);

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
        // The routers Traefik serves, read by `wait_routed` through the API server's pod proxy.
        "--api.insecure=true".to_string(),
        "--api.dashboard=false".to_string(),
        // A new pod's endpoints reach the routes in half a second, not the default two.
        "--providers.providersThrottleDuration=500ms".to_string(),
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

/// One path of an Ingress rule that Traefik must route before the stack is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// The rule's host, empty for every host.
    pub host: String,
    /// The path, empty for every path.
    pub path: String,
    /// The name Traefik's Kubernetes Ingress provider gives the router (without `@kubernetes`).
    key: String,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.is_empty() { "*" } else { &self.host };
        let path = if self.path.is_empty() { "/" } else { &self.path };
        write!(f, "Ingress {} ({host}{path})", self.ingress)
    }
}

/// The routes the controller samestack installs must serve for `manifests`: every path with a
/// Service backend of every rule of the Ingresses it serves (no class, or its own), objects
/// without a namespace being in `default_namespace`.
pub fn routes(manifests: &[Value], default_namespace: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for ing in manifests.iter().filter(|m| m["kind"] == "Ingress" && m["apiVersion"] == "networking.k8s.io/v1") {
        let class = ing["spec"]["ingressClassName"]
            .as_str()
            .or_else(|| ing["metadata"]["annotations"]["kubernetes.io/ingress.class"].as_str());
        if class.is_some_and(|c| c != NAME) {
            continue;
        }
        let namespace = ing["metadata"]["namespace"].as_str().unwrap_or(default_namespace);
        let name = ing["metadata"]["name"].as_str().unwrap_or_default();
        for rule in ing["spec"]["rules"].as_array().into_iter().flatten() {
            let host = rule["host"].as_str().unwrap_or_default();
            for path in rule["http"]["paths"].as_array().into_iter().flatten() {
                if path["backend"]["service"].is_null() {
                    continue; // Traefik serves no resource backends.
                }
                let path = path["path"].as_str().unwrap_or_default();
                // Traefik's own naming (provider/kubernetes/ingress: `Normalize(ns-name-host+path)`).
                let key = traefik_normalize(&format!("{namespace}-{name}-{host}{path}"));
                out.push(Route { ingress: format!("{namespace}/{name}"), host: host.into(), path: path.into(), key });
            }
        }
    }
    out
}

/// Traefik's `provider.Normalize`: runs of anything but letters and digits become one `-`,
/// none at either end.
fn traefik_normalize(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-")
}

/// What [`wait_routed`] compares: Traefik's routers and services (its API, `/api/http/…`), and
/// the pods and EndpointSlices of the routes' namespaces.
#[derive(Debug, Default)]
pub struct Observed {
    pub routers: Vec<Value>,
    pub services: Vec<Value>,
    pub pods: Vec<Pod>,
    pub slices: Vec<Value>,
}

/// The routes of `wanted` that Traefik does not serve yet, each with why: its routers are
/// missing, not enabled (with their errors), or send requests to addresses no ready pod has.
pub fn unserved<'a>(wanted: &'a [Route], seen: &Observed) -> Vec<(&'a Route, Vec<String>)> {
    wanted
        .iter()
        .filter_map(|route| {
            let mine = routers_of(route, seen);
            if !mine.is_empty() && mine.iter().all(|r| r["status"] == "enabled") {
                let stale: Vec<String> = mine.iter().filter_map(|r| stale_backends(r, seen)).collect();
                return (!stale.is_empty()).then_some((route, stale));
            }
            let errors = mine
                .iter()
                .flat_map(|r| r["error"].as_array().into_iter().flatten())
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect();
            Some((route, errors))
        })
        .collect()
}

/// The routers Traefik's Kubernetes Ingress provider made for `route`.
fn routers_of<'a>(route: &Route, seen: &'a Observed) -> Vec<&'a Value> {
    // Two paths of one Ingress with the same key get `key-<hash of the rule>`.
    let hashed = format!("{}-", route.key);
    seen.routers
        .iter()
        .filter(|r| {
            let name = r["name"].as_str().unwrap_or_default();
            name.strip_suffix("@kubernetes")
                .is_some_and(|n| n == route.key || n.strip_prefix(&hashed).is_some_and(|h| h.len() == 10))
        })
        .collect()
}

/// The server URLs Traefik sends `router`'s requests to, leaving out those it fences
/// (terminating pods); `None` when its service is not a load balancer Traefik lists.
fn live_servers<'a>(router: &Value, seen: &'a Observed) -> Option<Vec<&'a str>> {
    let service = router["service"].as_str()?;
    let name = match service.contains('@') {
        true => service.to_string(),
        false => format!("{service}@{}", router["provider"].as_str().unwrap_or("kubernetes")),
    };
    let servers = seen.services.iter().find(|s| s["name"] == name.as_str())?["loadBalancer"]["servers"].as_array()?;
    Some(servers.iter().filter(|s| s["fenced"] != true).filter_map(|s| s["url"].as_str()).collect())
}

/// Why the servers of `router`'s service do not all reach a pod that is ready now, if they
/// don't. After a restart the EndpointSlices still list the pods' addresses from before, and
/// Traefik's copy of them lags the slices: its router is enabled while it answers 502. An
/// address that is not a pod's (an endpoint without a Pod target, an ExternalName's host) is
/// trusted as it is.
fn stale_backends(router: &Value, seen: &Observed) -> Option<String> {
    let live = live_servers(router, seen)?;
    if live.is_empty() {
        return Some("Traefik sends it to terminating pods only".into());
    }
    let stale: Vec<&str> = live
        .into_iter()
        .filter(|url| server_ip(url).is_some_and(|ip| ready_pod_at(ip, seen).is_none() && !outside_pods(ip, seen)))
        .collect();
    (!stale.is_empty()).then(|| format!("Traefik sends it to {}, the address of no ready pod", stale.join(", ")))
}

/// The host of a server URL (`http://10.244.1.5:8000`, `http://[fd00::5]:80`) if it is an IP
/// address.
fn server_ip(url: &str) -> Option<&str> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest).split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>().is_ok().then_some(host)
}

/// The ready pod (running, Ready, not terminating) whose address is `ip`.
fn ready_pod_at<'a>(ip: &str, seen: &'a Observed) -> Option<&'a Pod> {
    seen.pods.iter().find(|pod| {
        let Some(status) = pod.status.as_ref().filter(|_| crate::sync::pods::is_ready(pod)) else { return false };
        status.pod_ip.as_deref() == Some(ip) || status.pod_ips.iter().flatten().any(|a| a.ip == ip)
    })
}

/// Whether an EndpointSlice lists `ip` for something that is not a pod.
fn outside_pods(ip: &str, seen: &Observed) -> bool {
    seen.slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .filter(|e| e["targetRef"]["kind"] != "Pod")
        .any(|e| e["addresses"].as_array().into_iter().flatten().any(|a| a == ip))
}

/// How long [`unreachable`] waits for one pod's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pods Traefik sends the routes to that the API server cannot connect to, as
/// `route: url: why`. The API server runs on the node Traefik runs on (the port node), so it
/// goes by the same routes between the nodes, which the network plugin updates only some time
/// after a restart changed the nodes' addresses (a 502 or a hang in the meantime). Asks each
/// pod for the route's path through the API server's pod proxy: any answer of the pod counts.
async fn unreachable(client: &KubeClient, wanted: &[Route], seen: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    let mut probed = std::collections::BTreeSet::new();
    for route in wanted {
        let servers = routers_of(route, seen).into_iter().filter_map(|r| live_servers(r, seen)).flatten();
        for url in servers {
            let Some(pod) = server_ip(url).and_then(|ip| ready_pod_at(ip, seen)) else { continue };
            if !probed.insert(url) {
                continue;
            }
            let (ns, name) = (pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref());
            let port = url.rsplit_once(':').map_or("80", |(_, port)| port);
            let scheme = if url.starts_with("https:") { "https:" } else { "" };
            let path = if route.path.is_empty() { "/" } else { &route.path };
            let uri = format!(
                "/api/v1/namespaces/{}/pods/{scheme}{}:{port}/proxy{path}",
                ns.unwrap_or_default(),
                name.unwrap_or_default()
            );
            let Ok(request) = http::Request::get(uri).body(Vec::new()) else { continue };
            let why = match tokio::time::timeout(PROBE_TIMEOUT, client.raw().request_text(request)).await {
                Err(_) => format!("no answer in {} s", PROBE_TIMEOUT.as_secs()),
                Ok(Err(::kube::Error::Api(status)))
                    if status.code == 503 && status.message.starts_with("error trying to reach service") =>
                {
                    status.message.clone()
                }
                Ok(_) => continue, // the pod answered (any status)
            };
            out.push(format!("{route}: {url}: {why}"));
        }
    }
    out
}

/// Waits until the controller routes every one of `wanted` to ready pods it can reach.
/// Traefik reports ready before it has read the Ingresses, skips a rule while its Service has
/// no ready endpoint (a 404 from the host in the meantime), and after a restart routes to the
/// pods' addresses from before, or over routes between the nodes not yet updated (a 502), so
/// "all ready" waits for this too. Compares Traefik's API, read through the API server's pod
/// proxy, with the pods every [`ROUTES_POLL`], then asks the pods it routes to; fails after
/// `timeout` naming the routes missing.
pub async fn wait_routed(client: &KubeClient, wanted: &[Route], timeout: Duration) -> anyhow::Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    let mut namespaces: Vec<&str> = wanted.iter().filter_map(|r| r.ingress.split_once('/')).map(|(ns, _)| ns).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    loop {
        let last = match observe(client, &namespaces).await {
            Ok(seen) => {
                let mut missing: Vec<String> = unserved(wanted, &seen)
                    .iter()
                    .map(|(route, errors)| match errors.as_slice() {
                        [] => format!("{route}: no route"),
                        errors => format!("{route}: {}", errors.join("; ")),
                    })
                    .collect();
                if missing.is_empty() {
                    missing = unreachable(client, wanted, &seen).await;
                }
                if missing.is_empty() {
                    return Ok(());
                }
                missing.join("\n  ")
            }
            Err(err) => format!("{err:#}"),
        };
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "the ingress controller serves no route for these Ingress paths after {} s:\n  {last}\n\
                 Traefik skips a path whose Service is missing or has no ready endpoint; see \
                 `kubectl -n {NAMESPACE} logs deploy/{NAME}`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(ROUTES_POLL).await;
    }
}

/// Traefik's routers and services, from the API of its ready pod, and the pods and
/// EndpointSlices of `namespaces`.
async fn observe(client: &KubeClient, namespaces: &[&str]) -> anyhow::Result<Observed> {
    use ::kube::api::{Api, ListParams};
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    let selector = [format!("app.kubernetes.io/name={NAME}")];
    let pods = crate::sync::pods::ready(client.raw(), NAMESPACE, &selector).await.context("listing Traefik's pods")?;
    let pod = pods.first().and_then(|p| p.metadata.name.as_deref()).context("no Traefik pod is ready")?;
    let mut seen = Observed {
        routers: traefik_api(client, pod, "routers").await?,
        services: traefik_api(client, pod, "services").await?,
        ..Default::default()
    };
    let all = ListParams::default();
    for ns in namespaces {
        let pods = Api::<Pod>::namespaced(client.raw().clone(), ns).list(&all).await;
        let pods = pods.with_context(|| format!("listing the pods of namespace {ns}"))?;
        seen.pods.extend(pods.items);
        let slices = Api::<EndpointSlice>::namespaced(client.raw().clone(), ns).list(&all).await;
        let slices = slices.with_context(|| format!("listing the EndpointSlices of namespace {ns}"))?;
        seen.slices.extend(slices.items.iter().filter_map(|s| serde_json::to_value(s).ok()));
    }
    Ok(seen)
}

/// One list of Traefik's API (`/api/http/<what>`), through the API server's pod proxy.
async fn traefik_api(client: &KubeClient, pod: &str, what: &str) -> anyhow::Result<Vec<Value>> {
    let uri = format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}:{ADMIN_PORT}/proxy/api/http/{what}?per_page=100000");
    let request = http::Request::get(uri).body(Vec::new()).context("building the request")?;
    let body =
        client.raw().request_text(request).await.with_context(|| format!("asking Traefik's API for its {what}"))?;
    serde_json::from_str(&body).with_context(|| format!("reading Traefik's {what}"))
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

    fn ingress(namespace: Option<&str>, class: Option<&str>, rules: Value) -> Value {
        let mut ing = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web"}, "spec": {"rules": rules},
        });
        if let Some(ns) = namespace {
            ing["metadata"]["namespace"] = json!(ns);
        }
        if let Some(class) = class {
            ing["spec"]["ingressClassName"] = json!(class);
        }
        ing
    }

    fn service_path(path: &str) -> Value {
        json!({"path": path, "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}})
    }

    #[test]
    fn routes_are_every_service_path_of_the_ingresses_traefik_serves() {
        let rules = json!([
            {"host": "shop.localhost", "http": {"paths": [service_path("/"), service_path("/api/v1")]}},
            {"http": {"paths": [service_path("/any")]}},
            {"host": "res.localhost", "http": {"paths": [{"path": "/r", "backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}},
            {"host": "nohttp.localhost"},
        ]);
        let manifests = vec![
            ingress(None, None, rules.clone()),
            ingress(
                Some("other"),
                Some("traefik"),
                json!([{"host": "o.localhost", "http": {"paths": [service_path("/")]}}]),
            ),
            ingress(Some("x"), Some("nginx"), rules),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
        ];
        let got: Vec<(String, String)> =
            routes(&manifests, "shop").iter().map(|r| (r.to_string(), r.key.clone())).collect();
        assert_eq!(
            got,
            [
                ("Ingress shop/web (shop.localhost/)".to_string(), "shop-web-shop-localhost".to_string()),
                ("Ingress shop/web (shop.localhost/api/v1)".into(), "shop-web-shop-localhost-api-v1".into()),
                ("Ingress shop/web (*/any)".into(), "shop-web-any".into()),
                ("Ingress other/web (o.localhost/)".into(), "other-web-o-localhost".into()),
            ]
        );
    }

    #[test]
    fn a_route_is_served_when_its_routers_are_enabled() {
        let rules = json!([{"host": "a.localhost", "http": {"paths": [service_path("/"), service_path("/b")]}}]);
        let wanted = routes(&[ingress(Some("ns"), None, rules)], "ns");
        let missing = |routers: Value| -> Vec<(String, Vec<String>)> {
            let seen = Observed { routers: routers.as_array().unwrap().clone(), ..Default::default() };
            unserved(&wanted, &seen).into_iter().map(|(r, e)| (r.path.clone(), e)).collect()
        };
        assert_eq!(missing(json!([])).len(), 2);
        let both = json!([
            {"name": "ns-web-a-localhost@kubernetes", "status": "enabled"},
            {"name": "ns-web-a-localhost-b@kubernetes", "status": "enabled"},
            {"name": "ping@internal", "status": "enabled"},
        ]);
        assert!(missing(both).is_empty());
        // Another provider's router of the same name, or a longer name, is not this route.
        let others = json!([
            {"name": "ns-web-a-localhost@file", "status": "enabled"},
            {"name": "ns-web-a-localhost-bb@kubernetes", "status": "enabled"},
        ]);
        assert_eq!(missing(others).len(), 2);
        // A router that is there but not enabled is unserved, with its errors.
        let broken = json!([
            {"name": "ns-web-a-localhost@kubernetes", "status": "disabled", "error": ["the TLS secret is missing"]},
            {"name": "ns-web-a-localhost-b-0123456789@kubernetes", "status": "enabled"},
        ]);
        assert_eq!(missing(broken), [("/".to_string(), vec!["the TLS secret is missing".to_string()])]);
    }

    #[test]
    fn a_route_is_served_once_traefik_sends_it_to_ready_pods_only() {
        let rules = json!([{"host": "a.localhost", "http": {"paths": [service_path("/")]}}]);
        let wanted = routes(&[ingress(Some("ns"), None, rules)], "ns");
        let router = json!({"name": "ns-web-a-localhost@kubernetes", "status": "enabled", "service": "ns-web-80", "provider": "kubernetes"});
        let pod = |ip: &str, ready: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "web-1"}, "status": {"phase": "Running",
                "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [{"type": "Ready", "status": ready}]}}))
            .unwrap()
        };
        let why = |servers: Value, pods: Vec<Pod>, slices: Vec<Value>| -> Vec<String> {
            let seen = Observed {
                routers: vec![router.clone()],
                services: vec![json!({"name": "ns-web-80@kubernetes", "loadBalancer": {"servers": servers}})],
                pods,
                slices,
            };
            unserved(&wanted, &seen).into_iter().flat_map(|(_, e)| e).collect()
        };
        let old = json!([{"url": "http://10.244.1.5:8000"}]);
        // After a restart: the pod has a new address, Traefik (or the slice it read) the old one.
        assert_eq!(
            why(old.clone(), vec![pod("10.244.1.9", "True")], vec![]),
            ["Traefik sends it to http://10.244.1.5:8000, the address of no ready pod"]
        );
        assert!(why(old.clone(), vec![pod("10.244.1.5", "True")], vec![]).is_empty());
        assert_eq!(why(old.clone(), vec![pod("10.244.1.5", "False")], vec![]).len(), 1);
        // A stale slice still names the pod: not trusted; an endpoint that is no pod's is.
        let slice = |target: Value| json!({"endpoints": [{"addresses": ["10.244.1.5"], "targetRef": target}]});
        assert_eq!(why(old.clone(), vec![], vec![slice(json!({"kind": "Pod", "name": "web-1"}))]).len(), 1);
        assert!(why(old.clone(), vec![], vec![slice(Value::Null)]).is_empty());
        // Terminating pods (fenced) do not count; a ready one next to them does.
        let fenced = json!([{"url": "http://10.244.1.5:8000", "fenced": true}]);
        assert_eq!(why(fenced, vec![pod("10.244.1.5", "True")], vec![]), ["Traefik sends it to terminating pods only"]);
        let mixed = json!([{"url": "http://10.244.1.4:8000", "fenced": true}, {"url": "http://10.244.1.5:8000"}]);
        assert!(why(mixed, vec![pod("10.244.1.5", "True")], vec![]).is_empty());
        // Names (an ExternalName Service) are trusted; IPv6 addresses are compared without brackets.
        assert!(why(json!([{"url": "http://db.example.com:5432"}]), vec![], vec![]).is_empty());
        assert!(why(json!([{"url": "http://[fd00::5]:8000"}]), vec![pod("fd00::5", "True")], vec![]).is_empty());
    }

    #[test]
    fn names_are_normalized_like_traefik() {
        assert_eq!(traefik_normalize("ns-web-shop.localhost/api/v1"), "ns-web-shop-localhost-api-v1");
        assert_eq!(traefik_normalize("ns-web-/"), "ns-web");
        assert_eq!(traefik_normalize("ns--web-*.example.com/ä"), "ns-web-example-com-ä");
    }

    #[test]
    fn providers_with_their_own_controller_are_left_alone() {
        assert!(installed_by_samestack("docker").is_ok());
        assert!(installed_by_samestack("kind").is_ok());
        assert!(installed_by_samestack("k3d").is_err());
        assert!(installed_by_samestack("existing").is_err());
    }
}
