//! What `samestack ci` leaves behind when something failed, for the CI job to upload: the
//! namespace's events, every pod's status, every container's logs (current and previous), the
//! nodes' conditions, the rendered manifests (secrets redacted) and samestack's step log, each
//! in a file with a readable name, plus `index.txt` saying what each file holds.
//!
//! Collection never fails the run: a piece that cannot be read (the cluster never came up, a
//! container has no previous instance) is named in the index instead.

use std::path::{Path, PathBuf};

use ::kube::api::{Api, ListParams, LogParams};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use serde_json::Value;

use crate::kube::KubeClient;
use crate::kube::object::str_at;

/// One file written, relative to the artifacts directory, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub what: String,
}

/// What [`collect`] wrote.
#[derive(Debug, Clone)]
pub struct Collected {
    pub dir: PathBuf,
    pub entries: Vec<Entry>,
    /// Pieces that could not be collected, with the reason.
    pub missing: Vec<String>,
}

/// What the run knows that the cluster does not.
pub struct Inputs<'a> {
    /// The cluster, when the run got as far as having one.
    pub client: Option<&'a KubeClient>,
    pub namespace: &'a str,
    /// The rendered manifests with secrets redacted, when rendering succeeded.
    pub manifests: Option<&'a str>,
    /// samestack's step log with timings.
    pub steps: &'a str,
    /// What failed, in one or a few lines.
    pub failure: &'a str,
}

/// Writes the artifacts into `dir` (created if needed; files of an earlier run are replaced).
pub async fn collect(dir: &Path, inputs: &Inputs<'_>) -> std::io::Result<Collected> {
    std::fs::create_dir_all(dir)?;
    let mut out = Collected { dir: dir.to_path_buf(), entries: Vec::new(), missing: Vec::new() };
    out.write("steps.txt", "samestack's steps, each with its duration and outcome", inputs.steps)?;
    match inputs.manifests {
        Some(yaml) => out.write("manifests.yaml", "the rendered manifests, secret values redacted", yaml)?,
        None => out.missing.push("manifests.yaml: the manifests did not render".into()),
    }
    match inputs.client {
        Some(client) => collect_cluster(&mut out, client, inputs.namespace).await?,
        None => out.missing.push("events, pods, logs, nodes: the run had no cluster to read".into()),
    }
    let index = index_text(inputs.failure, &out.entries, &out.missing);
    std::fs::write(dir.join("index.txt"), index)?;
    out.entries.insert(0, Entry { path: "index.txt".into(), what: "this list".into() });
    Ok(out)
}

impl Collected {
    fn write(&mut self, path: &str, what: &str, content: &str) -> std::io::Result<()> {
        let full = self.dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(full, content)?;
        self.entries.push(Entry { path: path.into(), what: what.into() });
        Ok(())
    }
}

async fn collect_cluster(out: &mut Collected, client: &KubeClient, namespace: &str) -> std::io::Result<()> {
    let raw = client.raw().clone();
    let events: Api<Event> = Api::namespaced(raw.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let values: Vec<Value> = list.items.iter().map(to_value).collect();
            out.write(
                "events.txt",
                &format!("events of namespace {namespace}, oldest first"),
                &format_events(&values),
            )?;
        }
        Err(err) => out.missing.push(format!("events.txt: {err}")),
    }
    let nodes: Api<Node> = Api::all(raw.clone());
    match nodes.list(&ListParams::default()).await {
        Ok(list) => {
            let values: Vec<Value> = list.items.iter().map(to_value).collect();
            out.write("nodes.txt", "every node's conditions", &format_nodes(&values))?;
        }
        Err(err) => out.missing.push(format!("nodes.txt: {err}")),
    }
    let pods: Api<Pod> = Api::namespaced(raw, namespace);
    let list = match pods.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().map(to_value).collect::<Vec<_>>(),
        Err(err) => {
            out.missing.push(format!("pods and logs: {err}"));
            return Ok(());
        }
    };
    out.write(
        "pods.txt",
        &format!("every pod of namespace {namespace}: phase, readiness, restarts"),
        &format_pods(&list),
    )?;
    for pod in &list {
        let name = str_at(pod, "/metadata/name").unwrap_or("unnamed");
        let yaml = serde_saphyr::to_string(&without_managed_fields(pod)).unwrap_or_else(|e| format!("# {e}\n"));
        out.write(&format!("pods/{name}.yaml"), &format!("pod {name}: spec and status"), &yaml)?;
        for (container, previous) in log_requests(pod) {
            let params = LogParams { container: Some(container.clone()), previous, ..LogParams::default() };
            let which = if previous { "previous" } else { "current" };
            let path = log_path(name, &container, previous);
            match pods.logs(name, &params).await {
                Ok(text) => {
                    out.write(&path, &format!("logs of container {container} in pod {name} ({which})"), &text)?
                }
                Err(err) => out.missing.push(format!("{path}: {err}")),
            }
        }
    }
    Ok(())
}

fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    copy
}

/// Pure: which logs to fetch for a pod: every init and app container's current log, and its
/// previous one when it restarted.
pub fn log_requests(pod: &Value) -> Vec<(String, bool)> {
    let mut wanted = Vec::new();
    for statuses in ["/status/initContainerStatuses", "/status/containerStatuses"] {
        for status in pod.pointer(statuses).and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = str_at(status, "/name") else { continue };
            let started =
                status.pointer("/state/waiting").is_none() || status.pointer("/lastState/terminated").is_some();
            if started {
                wanted.push((name.to_string(), false));
            }
            if status.get("restartCount").and_then(Value::as_i64).unwrap_or(0) > 0 {
                wanted.push((name.to_string(), true));
            }
        }
    }
    wanted
}

/// Pure: `logs/<pod>/<container>.log`, or `.previous.log` for the instance before a restart.
pub fn log_path(pod: &str, container: &str, previous: bool) -> String {
    let suffix = if previous { ".previous" } else { "" };
    format!("logs/{pod}/{container}{suffix}.log")
}

/// Pure: events oldest first, one a line: `time  type  reason  object  message (xN)`.
pub fn format_events(events: &[Value]) -> String {
    let time = |e: &Value| {
        ["/lastTimestamp", "/eventTime", "/firstTimestamp", "/metadata/creationTimestamp"]
            .iter()
            .find_map(|p| str_at(e, p))
            .unwrap_or_default()
            .to_string()
    };
    let mut sorted: Vec<&Value> = events.iter().collect();
    sorted.sort_by_key(|e| time(e));
    if sorted.is_empty() {
        return "no events\n".into();
    }
    sorted
        .iter()
        .map(|e| {
            let object = format!(
                "{}/{}",
                str_at(e, "/involvedObject/kind").unwrap_or("?").to_lowercase(),
                str_at(e, "/involvedObject/name").unwrap_or("?")
            );
            let count = e.get("count").and_then(Value::as_i64).filter(|c| *c > 1).map(|c| format!(" (x{c})"));
            format!(
                "{}  {:<7} {:<22} {:<32} {}{}\n",
                time(e),
                str_at(e, "/type").unwrap_or("-"),
                str_at(e, "/reason").unwrap_or("-"),
                object,
                str_at(e, "/message").unwrap_or("").trim(),
                count.unwrap_or_default()
            )
        })
        .collect()
}

/// Pure: one line per pod (phase, ready containers, restarts, the first waiting or
/// terminated reason), then the findings of the readiness diagnosis.
pub fn format_pods(pods: &[Value]) -> String {
    if pods.is_empty() {
        return "no pods\n".into();
    }
    let mut out = String::new();
    for pod in pods {
        let statuses: Vec<&Value> =
            pod.pointer("/status/containerStatuses").and_then(Value::as_array).into_iter().flatten().collect();
        let ready = statuses.iter().filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true)).count();
        let restarts: i64 = statuses.iter().filter_map(|s| s.get("restartCount").and_then(Value::as_i64)).sum();
        out.push_str(&format!(
            "{:<40} {:<10} ready {ready}/{}  restarts {restarts}\n",
            str_at(pod, "/metadata/name").unwrap_or("?"),
            str_at(pod, "/status/phase").unwrap_or("Unknown"),
            statuses.len()
        ));
        for finding in crate::kube::diagnose::pod_findings(pod) {
            out.push_str(&format!("    {finding}\n"));
        }
    }
    out
}

/// Pure: every node with each condition's status, reason and message.
pub fn format_nodes(nodes: &[Value]) -> String {
    if nodes.is_empty() {
        return "no nodes\n".into();
    }
    let mut out = String::new();
    for node in nodes {
        out.push_str(&format!("{}\n", str_at(node, "/metadata/name").unwrap_or("?")));
        for c in node.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten() {
            out.push_str(&format!(
                "    {:<20} {:<7} {:<28} {}\n",
                str_at(c, "/type").unwrap_or("?"),
                str_at(c, "/status").unwrap_or("?"),
                str_at(c, "/reason").unwrap_or("-"),
                str_at(c, "/message").unwrap_or("").trim()
            ));
        }
    }
    out
}

/// Pure: the index: what failed, every file with what it holds, what could not be collected.
pub fn index_text(failure: &str, entries: &[Entry], missing: &[String]) -> String {
    let mut out =
        format!("samestack ci artifacts\n\nwhat failed:\n  {}\n\nfiles:\n", failure.trim().replace('\n', "\n  "));
    out.push_str("  index.txt  this list\n");
    let width = entries.iter().map(|e| e.path.len()).max().unwrap_or(0);
    for e in entries {
        out.push_str(&format!("  {:<width$}  {}\n", e.path, e.what));
    }
    if !missing.is_empty() {
        out.push_str("\nnot collected:\n");
        for m in missing {
            out.push_str(&format!("  {m}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "api-7d9f", "managedFields": [{"manager": "samestack"}]},
            "status": {
                "phase": "Running",
                "initContainerStatuses": [{"name": "wait-db", "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}],
                "containerStatuses": [
                    {"name": "api", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}},
                    {"name": "never", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                ],
            },
        })
    }

    #[test]
    fn logs_are_fetched_for_started_containers_and_previous_ones_after_restarts() {
        assert_eq!(
            log_requests(&pod()),
            [("wait-db".to_string(), false), ("api".to_string(), false), ("api".to_string(), true)]
        );
        assert_eq!(log_path("api-7d9f", "api", true), "logs/api-7d9f/api.previous.log");
        assert_eq!(log_path("api-7d9f", "api", false), "logs/api-7d9f/api.log");
    }

    #[test]
    fn events_read_oldest_first_with_their_object() {
        let events = [
            json!({"lastTimestamp": "2026-01-01T00:00:09Z", "type": "Warning", "reason": "BackOff", "message": "Back-off restarting", "count": 4, "involvedObject": {"kind": "Pod", "name": "api-7d9f"}}),
            json!({"lastTimestamp": "2026-01-01T00:00:01Z", "type": "Normal", "reason": "Scheduled", "message": "assigned", "involvedObject": {"kind": "Pod", "name": "api-7d9f"}}),
        ];
        let text = format_events(&events);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("2026-01-01T00:00:01Z  Normal") && lines[0].contains("pod/api-7d9f"), "{text}");
        assert!(lines[1].contains("BackOff") && lines[1].ends_with("Back-off restarting (x4)"), "{text}");
        assert_eq!(format_events(&[]), "no events\n");
    }

    #[test]
    fn pods_show_readiness_restarts_and_why() {
        let text = format_pods(&[pod()]);
        assert!(text.starts_with("api-7d9f") && text.contains("ready 0/2  restarts 2"), "{text}");
        assert!(text.contains("CrashLoopBackOff"), "{text}");
        assert_eq!(without_managed_fields(&pod())["metadata"], json!({"name": "api-7d9f"}));
    }

    #[test]
    fn nodes_show_every_condition() {
        let node = json!({"metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "cni not initialized"},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
        ]}});
        let text = format_nodes(&[node]);
        assert!(text.starts_with("n1\n"), "{text}");
        assert!(
            text.contains("Ready") && text.contains("KubeletNotReady") && text.contains("cni not initialized"),
            "{text}"
        );
        assert!(text.contains("DiskPressure"), "{text}");
    }

    #[test]
    fn the_index_names_the_failure_every_file_and_what_is_missing() {
        let entries = [
            Entry { path: "steps.txt".into(), what: "steps".into() },
            Entry { path: "logs/api-1/api.log".into(), what: "logs of api".into() },
        ];
        let text = index_text("the command exited with 3", &entries, &["nodes.txt: forbidden".into()]);
        assert!(text.contains("what failed:\n  the command exited with 3\n"), "{text}");
        assert!(text.contains("  steps.txt           steps\n"), "{text}");
        assert!(text.contains("  logs/api-1/api.log  logs of api\n"), "{text}");
        assert!(text.contains("not collected:\n  nodes.txt: forbidden\n"), "{text}");
    }

    #[tokio::test]
    async fn without_a_cluster_the_step_log_and_manifests_are_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = Inputs {
            client: None,
            namespace: "shop",
            manifests: Some("kind: Namespace\n"),
            steps: "cluster  failed\n",
            failure: "the cluster did not start",
        };
        let collected = collect(&dir.path().join("out"), &inputs).await.unwrap();
        let paths: Vec<&str> = collected.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["index.txt", "steps.txt", "manifests.yaml"]);
        let index = std::fs::read_to_string(dir.path().join("out/index.txt")).unwrap();
        assert!(index.contains("the cluster did not start") && index.contains("no cluster to read"), "{index}");
        assert_eq!(std::fs::read_to_string(dir.path().join("out/manifests.yaml")).unwrap(), "kind: Namespace\n");
    }
}
