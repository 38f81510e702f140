//! Pure generation of what the native provider writes into kind-contract nodes: the kubeadm
//! config (init and join), the CNI manifest rendering, the bootstrap token, and the decision
//! between a privileged node and the explicit capability set. No I/O here.

use std::hash::{BuildHasher, Hasher};

/// Pod network of every cluster samestack creates (kind's default).
pub const POD_SUBNET: &str = "10.244.0.0/16";
/// Service network (kind's default).
pub const SERVICE_SUBNET: &str = "10.96.0.0/16";
/// Where the kubeadm config goes in the node (the node contract's path).
pub const KUBEADM_CONFIG: &str = "/kind/kubeadm.conf";
const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";

/// Which part a node plays in the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// The first control-plane node: `kubeadm init`.
    Init {
        /// No worker nodes: leave the control plane untainted so workloads schedule on it.
        schedule_on_control_plane: bool,
    },
    /// A worker: `kubeadm join`.
    Join,
}

/// Inputs of the kubeadm config for one node.
#[derive(Debug, Clone)]
pub struct KubeadmParams {
    pub cluster: String,
    /// Content of `/kind/version`, e.g. `v1.34.4`.
    pub version: String,
    /// Container name of the control-plane node (resolvable on the cluster network).
    pub control_plane: String,
    pub node_name: String,
    pub node_ip: String,
    pub token: String,
    /// `systemd` or `cgroupfs`, matching containerd's runc `SystemdCgroup`.
    pub cgroup_driver: String,
    pub bootstrap: Bootstrap,
}

/// `(major, minor)` of a `vX.Y.Z` version string.
pub fn minor_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some((major, minor))
}

/// The kubeadm config file for a node (all documents kubeadm needs for its step).
pub fn config(p: &KubeadmParams) -> String {
    let v1beta4 = minor_version(&p.version).is_none_or(|v| v >= (1, 31));
    let api = if v1beta4 { "kubeadm.k8s.io/v1beta4" } else { "kubeadm.k8s.io/v1beta3" };
    // v1beta4 turned the extra-argument maps into name/value lists.
    let args = |indent: &str, pairs: &[(&str, &str)]| -> String {
        pairs
            .iter()
            .map(|(k, v)| {
                if v1beta4 {
                    format!("{indent}- name: {k}\n{indent}  value: \"{v}\"\n")
                } else {
                    // A map must be indented deeper than its key; a list may sit at the key's level.
                    format!("{indent}  {k}: \"{v}\"\n")
                }
            })
            .collect()
    };
    let endpoint = format!("{}:6443", p.control_plane);
    let provider_id = format!("samestack://docker/{}/{}", p.cluster, p.node_name);
    let kubelet_args = args("  ", &[("node-ip", &p.node_ip), ("provider-id", &provider_id)]);
    let mut out = String::new();
    match p.bootstrap {
        Bootstrap::Init { schedule_on_control_plane } => {
            out.push_str(&format!(
                "apiVersion: {api}\nkind: ClusterConfiguration\nkubernetesVersion: {version}\nclusterName: {cluster}\ncontrolPlaneEndpoint: {endpoint}\nnetworking:\n  podSubnet: {POD_SUBNET}\n  serviceSubnet: {SERVICE_SUBNET}\napiServer:\n  certSANs:\n  - localhost\n  - 127.0.0.1\n  - {cp}\ncontrollerManager:\n  extraArgs:\n{cm_args}---\n",
                version = p.version.trim(),
                cluster = p.cluster,
                cp = p.control_plane,
                cm_args = args("  ", &[("enable-hostpath-provisioner", "true")]),
            ));
            let taints = if schedule_on_control_plane { "  taints: []\n" } else { "" };
            out.push_str(&format!(
                "apiVersion: {api}\nkind: InitConfiguration\nbootstrapTokens:\n- token: {token}\nlocalAPIEndpoint:\n  advertiseAddress: {ip}\n  bindPort: 6443\nnodeRegistration:\n  name: {name}\n  criSocket: {CRI_SOCKET}\n  imagePullPolicy: IfNotPresent\n{taints}  kubeletExtraArgs:\n{kubelet_args}---\n",
                token = p.token,
                ip = p.node_ip,
                name = p.node_name,
            ));
            // No `cgroupRoot: /kubelet` (kind sets it): on cgroup v1 the kubelet then requires a
            // `kubelet.slice` in every controller (cpuset, cpuacct...), which systemd does not
            // create; the node's private cgroup namespace already keeps pods under the node.
            let fail_cgroup_v1 = if v1beta4 { "failCgroupV1: false\n" } else { "" };
            out.push_str(&format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: {driver}\nfailSwapOn: false\n{fail_cgroup_v1}imageGCHighThresholdPercent: 100\nevictionHard:\n  nodefs.available: \"0%\"\n  nodefs.inodesFree: \"0%\"\n  imagefs.available: \"0%\"\n---\n",
                driver = p.cgroup_driver,
            ));
            out.push_str(
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\nconntrack:\n  maxPerCore: 0\n  tcpEstablishedTimeout: 0s\n  tcpCloseWaitTimeout: 0s\niptables:\n  minSyncPeriod: 1s\n",
            );
        }
        Bootstrap::Join => {
            out.push_str(&format!(
                "apiVersion: {api}\nkind: JoinConfiguration\nnodeRegistration:\n  name: {name}\n  criSocket: {CRI_SOCKET}\n  imagePullPolicy: IfNotPresent\n  kubeletExtraArgs:\n{kubelet_args}discovery:\n  bootstrapToken:\n    apiServerEndpoint: {endpoint}\n    token: {token}\n    unsafeSkipCAVerification: true\n",
                name = p.node_name,
                token = p.token,
            ));
        }
    }
    out
}

/// A fresh bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`), random enough for a local cluster
/// whose API server listens on 127.0.0.1 only.
pub fn new_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut chars = String::with_capacity(23);
    let mut bits = 0u64;
    let mut left = 0;
    for i in 0..22 {
        if left == 0 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            h.write_u32(std::process::id());
            h.write_usize(i);
            bits = h.finish();
            left = 10;
        }
        chars.push(ALPHABET[(bits % 36) as usize] as char);
        bits /= 36;
        left -= 1;
        if i == 5 {
            chars.push('.');
        }
    }
    chars
}

/// The kubelet cgroup driver matching a containerd config (runc `SystemdCgroup = true` → systemd).
pub fn cgroup_driver(containerd_config: &str) -> &'static str {
    let systemd = containerd_config.lines().any(|l| l.replace(' ', "").eq_ignore_ascii_case("systemdcgroup=true"));
    if systemd { "systemd" } else { "cgroupfs" }
}

/// Marker kind puts in a CNI manifest that must be templated with the pod subnet.
const TEMPLATE_MARKER: &str = "would you kindly template this file";
/// Marker kind puts in a CNI manifest whose DaemonSet wants `CONTROL_PLANE_ENDPOINT`.
const PATCH_MARKER: &str = "would you kindly patch this file";

/// Render `/kind/manifests/default-cni.yaml` the way kind does: fill `{{ .PodSubnet }}` when the
/// template marker is there, add `CONTROL_PLANE_ENDPOINT` to the DaemonSet's first container
/// when the patch marker is there.
pub fn render_cni(manifest: &str, pod_subnet: &str, control_plane_endpoint: &str) -> Result<String, String> {
    let mut text = manifest.to_string();
    if text.contains(TEMPLATE_MARKER) {
        text = text.replace("{{ .PodSubnet }}", pod_subnet).replace("{{.PodSubnet}}", pod_subnet);
    }
    if !text.contains(PATCH_MARKER) {
        return Ok(text);
    }
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc["kind"] == "DaemonSet"
            && let Some(container) = doc.pointer_mut("/spec/template/spec/containers/0").and_then(|c| c.as_object_mut())
        {
            let env = container.entry("env").or_insert_with(|| serde_json::json!([]));
            if let Some(env) = env.as_array_mut() {
                env.retain(|e| e["name"] != "CONTROL_PLANE_ENDPOINT");
                env.push(serde_json::json!({"name": "CONTROL_PLANE_ENDPOINT", "value": control_plane_endpoint}));
            }
        }
        out.push(serde_saphyr::to_string(&doc).map_err(|e| e.to_string())?);
    }
    Ok(out.join("---\n"))
}

/// How a node container asks for its privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privileges {
    /// `--privileged`, like kind.
    Privileged,
    /// The explicit set from the node contract, for engines whose capability bounding set
    /// lacks `CAP_SYS_RESOURCE` (privileged is refused there).
    Explicit,
}

/// Pure: whether a failed create/start of a privileged node is the engine refusing the
/// privileges (so retrying with [`Privileges::Explicit`] can work) rather than anything else.
pub fn privileges_refused(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("unable to apply caps") || (m.contains("operation not permitted") && m.contains("caps"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(bootstrap: Bootstrap) -> KubeadmParams {
        KubeadmParams {
            cluster: "demo".into(),
            version: "v1.34.4\n".into(),
            control_plane: "samestack-demo-server-0".into(),
            node_name: "samestack-demo-server-0".into(),
            node_ip: "172.20.0.2".into(),
            token: "abcdef.0123456789abcdef".into(),
            cgroup_driver: "systemd".into(),
            bootstrap,
        }
    }

    fn docs(text: &str) -> Vec<serde_json::Value> {
        serde_saphyr::from_str_multiple(text).unwrap()
    }

    #[test]
    fn init_config_pins_the_version_and_endpoint_and_relaxes_the_kubelet() {
        let text = config(&params(Bootstrap::Init { schedule_on_control_plane: true }));
        let docs = docs(&text);
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect();
        assert_eq!(
            kinds,
            ["ClusterConfiguration", "InitConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]
        );
        let cc = &docs[0];
        assert_eq!(cc["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(cc["kubernetesVersion"], "v1.34.4");
        assert_eq!(cc["controlPlaneEndpoint"], "samestack-demo-server-0:6443");
        assert_eq!(cc["networking"]["podSubnet"], POD_SUBNET);
        let sans = cc["apiServer"]["certSANs"].as_array().unwrap();
        for san in ["localhost", "127.0.0.1", "samestack-demo-server-0"] {
            assert!(sans.iter().any(|s| s == san), "{san} missing from {sans:?}");
        }
        assert_eq!(cc["controllerManager"]["extraArgs"][0]["name"], "enable-hostpath-provisioner");
        let init = &docs[1];
        assert_eq!(init["bootstrapTokens"][0]["token"], "abcdef.0123456789abcdef");
        assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "172.20.0.2");
        assert_eq!(init["nodeRegistration"]["taints"], serde_json::json!([]));
        assert_eq!(
            init["nodeRegistration"]["kubeletExtraArgs"][0],
            serde_json::json!({"name": "node-ip", "value": "172.20.0.2"})
        );
        let kubelet = &docs[2];
        assert_eq!(kubelet["cgroupDriver"], "systemd");
        assert_eq!(kubelet["failCgroupV1"], false);
        assert!(kubelet.get("cgroupRoot").is_none(), "cgroup v1 nodes lack kubelet.slice in every controller");
        assert_eq!(kubelet["evictionHard"]["nodefs.available"], "0%");
        assert_eq!(kubelet["imageGCHighThresholdPercent"], 100);
        assert_eq!(docs[3]["conntrack"]["maxPerCore"], 0);
    }

    #[test]
    fn init_config_keeps_the_control_plane_taint_when_there_are_workers() {
        let text = config(&params(Bootstrap::Init { schedule_on_control_plane: false }));
        assert!(docs(&text)[1]["nodeRegistration"].get("taints").is_none(), "{text}");
    }

    #[test]
    fn old_versions_get_v1beta3_maps_and_no_fail_cgroup_v1() {
        let mut p = params(Bootstrap::Init { schedule_on_control_plane: true });
        p.version = "v1.29.2".into();
        let docs = docs(&config(&p));
        assert_eq!(docs[0]["apiVersion"], "kubeadm.k8s.io/v1beta3");
        assert_eq!(docs[0]["controllerManager"]["extraArgs"]["enable-hostpath-provisioner"], "true");
        assert_eq!(docs[1]["nodeRegistration"]["kubeletExtraArgs"]["node-ip"], "172.20.0.2");
        assert!(docs[2].get("failCgroupV1").is_none());
    }

    #[test]
    fn join_config_discovers_the_control_plane_by_token() {
        let mut p = params(Bootstrap::Join);
        p.node_name = "samestack-demo-agent-0".into();
        p.node_ip = "172.20.0.3".into();
        let docs = docs(&config(&p));
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["kind"], "JoinConfiguration");
        assert_eq!(docs[0]["nodeRegistration"]["name"], "samestack-demo-agent-0");
        let bt = &docs[0]["discovery"]["bootstrapToken"];
        assert_eq!(bt["apiServerEndpoint"], "samestack-demo-server-0:6443");
        assert_eq!(bt["token"], "abcdef.0123456789abcdef");
        assert_eq!(bt["unsafeSkipCAVerification"], true);
    }

    #[test]
    fn tokens_have_the_bootstrap_token_shape_and_differ() {
        let (a, b) = (new_token(), new_token());
        for t in [&a, &b] {
            let (id, secret) = t.split_once('.').unwrap();
            assert_eq!((id.len(), secret.len()), (6, 16), "{t}");
            assert!(t.chars().all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()), "{t}");
        }
        assert_ne!(a, b);
    }

    #[test]
    fn cgroup_driver_follows_containerd() {
        assert_eq!(cgroup_driver("[x]\n            SystemdCgroup = true\n"), "systemd");
        assert_eq!(cgroup_driver("SystemdCgroup = false\n"), "cgroupfs");
    }

    #[test]
    fn cni_manifest_is_templated_and_patched_only_when_marked() {
        let plain = "kind: ConfigMap\ndata:\n  x: '{{ .PodSubnet }}'\n";
        assert_eq!(render_cni(plain, POD_SUBNET, "cp:6443").unwrap(), plain);
        let templated = format!("# {TEMPLATE_MARKER}\n{plain}");
        assert!(render_cni(&templated, POD_SUBNET, "cp:6443").unwrap().contains("x: '10.244.0.0/16'"));
        let patched = format!(
            "# {PATCH_MARKER}\nkind: ServiceAccount\nmetadata:\n  name: cni\n---\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n      - name: cni\n        env:\n        - name: A\n          value: b\n"
        );
        let out = render_cni(&patched, POD_SUBNET, "cp:6443").unwrap();
        let docs = docs(&out);
        assert_eq!(docs[0]["kind"], "ServiceAccount");
        let env = &docs[1]["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "A");
        assert_eq!(env[1], serde_json::json!({"name": "CONTROL_PLANE_ENDPOINT", "value": "cp:6443"}));
    }

    #[test]
    fn only_a_capability_refusal_triggers_the_explicit_fallback() {
        assert!(privileges_refused(
            "OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown"
        ));
        assert!(!privileges_refused("Conflict. The container name \"/x\" is already in use"));
        assert!(!privileges_refused("No such image: kindest/node:v1.34.0"));
    }

    #[test]
    fn minor_version_parses_tags() {
        assert_eq!(minor_version("v1.34.4"), Some((1, 34)));
        assert_eq!(minor_version("1.31.0-rc.1"), Some((1, 31)));
        assert_eq!(minor_version("latest"), None);
    }
}
