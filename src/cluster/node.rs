//! Docker plumbing for node containers, shared by the native, kind and k3d providers:
//! connecting to the engine, finding containers by label, running commands in a node with
//! their output captured, writing files into a node, and wiring the registry into a node's
//! containerd (kind-style nodes: `hosts.toml` under `/etc/containerd/certs.d`).

use bollard::Docker;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerSummary, EndpointSettings, ExecConfig, NetworkConnectRequest};
use futures_util::StreamExt;

use super::{Error, RegistryEndpoint};

/// Where containerd looks for per-registry `hosts.toml` files (the node contract's `config_path`).
pub const CERTS_DIR: &str = "/etc/containerd/certs.d";
const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
/// How many trailing output lines a failed command's error shows.
const TAIL_LINES: usize = 25;

/// Connect to the local Docker engine and agree on an API version it speaks (Docker 20.10
/// speaks 1.41, older than bollard's default).
pub async fn connect() -> Result<Docker, Error> {
    Ok(crate::docker::connect().await?)
}

/// All containers (running or not) carrying every `key=value` label given.
pub async fn containers_with_labels(docker: &Docker, labels: &[String]) -> Result<Vec<ContainerSummary>, Error> {
    Ok(crate::docker::containers_labelled(docker, labels).await?)
}

/// All containers (running or not) carrying the `key=value` label.
pub async fn containers_with_label(docker: &Docker, label: &str) -> Result<Vec<ContainerSummary>, Error> {
    containers_with_labels(docker, &[label.to_string()]).await
}

/// The name of a listed container, without Docker's leading slash.
pub fn summary_name(summary: &ContainerSummary) -> String {
    crate::docker::container_name(summary)
}

/// True when a listed container is running.
pub fn summary_running(summary: &ContainerSummary) -> bool {
    summary.state.as_ref().map(|s| s.to_string() == "running").unwrap_or(false)
}

/// What a command run in a node printed and how it exited.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub status: i64,
    /// stdout and stderr, interleaved as they came.
    pub output: String,
}

/// Run a command in a container and capture its output; a non-zero exit is not an error here.
pub async fn exec_output(docker: &Docker, node: &str, cmd: &[&str], env: &[String]) -> Result<ExecOutput, Error> {
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        env: (!env.is_empty()).then(|| env.to_vec()),
        ..Default::default()
    };
    let action = || format!("run `{}` in {node}", cmd.join(" "));
    let created =
        docker.create_exec(node, config).await.map_err(|source| Error::Docker { action: action(), source })?;
    let mut output = Vec::new();
    if let StartExecResults::Attached { output: mut stream, .. } =
        docker.start_exec(&created.id, None).await.map_err(|source| Error::Docker { action: action(), source })?
    {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| Error::Docker { action: action(), source })?;
            output.extend_from_slice(&chunk.into_bytes());
        }
    }
    let inspect =
        docker.inspect_exec(&created.id).await.map_err(|source| Error::Docker { action: action(), source })?;
    Ok(ExecOutput { status: inspect.exit_code.unwrap_or(-1), output: String::from_utf8_lossy(&output).into_owned() })
}

/// Run a command in a node; a non-zero exit becomes [`Error::Exec`] with the last output lines.
pub async fn run(docker: &Docker, node: &str, cmd: &[&str]) -> Result<String, Error> {
    run_env(docker, node, cmd, &[]).await
}

/// [`run`] with extra environment variables (`KEY=value`).
pub async fn run_env(docker: &Docker, node: &str, cmd: &[&str], env: &[String]) -> Result<String, Error> {
    let out = exec_output(docker, node, cmd, env).await?;
    if out.status != 0 {
        return Err(Error::Exec {
            node: node.to_string(),
            command: cmd.join(" "),
            status: out.status,
            output: tail(&out.output, TAIL_LINES),
        });
    }
    Ok(out.output)
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Write a file into a node (parents created). The content travels in an environment
/// variable, which avoids relying on stdin half-close over the exec connection.
pub async fn write_file(docker: &Docker, node: &str, path: &str, content: &str) -> Result<(), Error> {
    run_env(
        docker,
        node,
        &["sh", "-c", r#"mkdir -p "$(dirname "$1")" && printf '%s' "$SAMESTACK_FILE" > "$1""#, "sh", path],
        &[format!("SAMESTACK_FILE={content}")],
    )
    .await
    .map(drop)
}

/// The `hosts.toml` that makes containerd pull `localhost:<port>/...` from the registry container.
pub fn hosts_toml(registry: &RegistryEndpoint) -> String {
    format!(
        "# Written by samestack: {host} is the local registry container {net}.\nserver = \"http://{net}\"\n\n[host.\"http://{net}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        host = registry.host(),
        net = registry.in_network(),
    )
}

/// Pure: the containerd config with the registry `config_path` set to [`CERTS_DIR`], or `None`
/// when it is already set (then `hosts.toml` files take effect without a restart).
/// Handles config format v2 (containerd 1.x) and v3 (containerd 2.x).
pub fn containerd_config_with_certs_dir(config: &str) -> Option<String> {
    if config.lines().any(|l| l.trim_start().starts_with("config_path") && l.contains(CERTS_DIR)) {
        return None;
    }
    let v3 = config.lines().any(|l| l.replace(' ', "") == "version=3");
    let section = if v3 {
        r#"[plugins."io.containerd.cri.v1.images".registry]"#
    } else {
        r#"[plugins."io.containerd.grpc.v1.cri".registry]"#
    };
    let line = format!("  config_path = \"{CERTS_DIR}\"");
    // containerd 2 configs quote table keys with single quotes; the table is the same.
    let is_header = |l: &str| l.trim().replace('\'', "\"") == section;
    let mut out = String::new();
    let mut done = false;
    let mut in_section = false;
    for l in config.lines() {
        if in_section && l.trim_start().starts_with("config_path") {
            // An existing, different config_path: replace it.
            out.push_str(&line);
            out.push('\n');
            done = true;
            in_section = false;
            continue;
        }
        out.push_str(l);
        out.push('\n');
        if !done && is_header(l) {
            in_section = true;
        } else if in_section && l.trim_start().starts_with('[') {
            in_section = false;
        }
    }
    if !done {
        if config.lines().any(is_header) {
            // Section present without config_path: insert right after its header.
            let mut patched = String::new();
            for l in out.lines() {
                patched.push_str(l);
                patched.push('\n');
                if is_header(l) {
                    patched.push_str(&line);
                    patched.push('\n');
                }
            }
            return Some(patched);
        }
        out.push_str(&format!("\n{section}\n{line}\n"));
    }
    Some(out)
}

/// Make a kind-style node's containerd resolve the registry: ensure `config_path` (restarting
/// containerd only when it had to be set) and write `hosts.toml` for `localhost:<port>`.
pub async fn wire_containerd(docker: &Docker, node: &str, registry: &RegistryEndpoint) -> Result<(), Error> {
    let config = run(docker, node, &["cat", CONTAINERD_CONFIG]).await?;
    if let Some(patched) = containerd_config_with_certs_dir(&config) {
        tracing::info!(node, "setting containerd's registry config_path to {CERTS_DIR}");
        write_file(docker, node, CONTAINERD_CONFIG, &patched).await?;
        run(docker, node, &["systemctl", "restart", "containerd"]).await?;
    }
    let path = format!("{CERTS_DIR}/{}/hosts.toml", registry.host());
    write_file(docker, node, &path, &hosts_toml(registry)).await
}

/// Connect a container (the registry) to a network unless it already is.
pub async fn connect_network(docker: &Docker, network: &str, container: &str) -> Result<(), Error> {
    let inspect = docker
        .inspect_container(container, None)
        .await
        .map_err(|source| Error::Docker { action: format!("inspect container {container}"), source })?;
    let joined = inspect.network_settings.and_then(|n| n.networks).is_some_and(|n| n.contains_key(network));
    if joined {
        return Ok(());
    }
    let request =
        NetworkConnectRequest { container: container.to_string(), endpoint_config: Some(EndpointSettings::default()) };
    docker
        .connect_network(network, request)
        .await
        .map_err(|source| Error::Docker { action: format!("connect {container} to network {network}"), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> RegistryEndpoint {
        RegistryEndpoint { container_name: "samestack-registry".into(), host_port: 5001, port_in_network: 5000 }
    }

    #[test]
    fn hosts_toml_points_localhost_port_at_the_registry_container() {
        let text = hosts_toml(&registry());
        assert!(text.contains("server = \"http://samestack-registry:5000\""), "{text}");
        assert!(text.contains("[host.\"http://samestack-registry:5000\"]"), "{text}");
        assert!(text.contains("\"pull\", \"resolve\""), "{text}");
    }

    #[test]
    fn containerd_config_already_pointing_at_certs_dir_is_left_alone() {
        let config = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";
        assert_eq!(containerd_config_with_certs_dir(config), None);
    }

    #[test]
    fn containerd_config_v2_without_registry_section_gets_one() {
        let config = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:3.10\"\n";
        let patched = containerd_config_with_certs_dir(config).unwrap();
        assert!(patched.starts_with(config), "{patched}");
        assert!(
            patched.contains(
                "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\""
            ),
            "{patched}"
        );
        assert_eq!(containerd_config_with_certs_dir(&patched), None, "patching is idempotent");
    }

    #[test]
    fn containerd_config_v3_uses_the_images_plugin_section() {
        let patched = containerd_config_with_certs_dir("version = 3\n").unwrap();
        assert!(patched.contains("[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path"), "{patched}");
    }

    #[test]
    fn containerd_config_with_registry_section_gets_config_path_inside_it() {
        let config = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors]\n";
        let patched = containerd_config_with_certs_dir(config).unwrap();
        assert_eq!(patched.matches(".registry]\n").count(), 1, "no duplicate table: {patched}");
        assert!(patched.contains(".registry]\n  config_path = \"/etc/containerd/certs.d\"\n[plugins"), "{patched}");
        let other = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/other\"\n";
        let patched = containerd_config_with_certs_dir(other).unwrap();
        assert!(!patched.contains("/etc/other") && patched.contains(CERTS_DIR), "{patched}");
    }

    #[test]
    fn containerd_config_with_a_single_quoted_section_is_not_given_a_duplicate_table() {
        let config = "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = ''\n";
        let patched = containerd_config_with_certs_dir(config).unwrap();
        assert_eq!(patched.matches("registry]").count(), 1, "{patched}");
        assert!(patched.contains("config_path = \"/etc/containerd/certs.d\""), "{patched}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
