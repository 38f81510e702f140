//! Why something is not ready, in words (pure formatting over live JSON): container states
//! (image pulls, crash loops with exit codes and the previous container's last log lines, OOM
//! kills), unschedulable pods, failing probes and other Warning events, failed Job pods' logs.
//! The I/O that gathers the inputs lives in [`super::wait`].

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::object::{i64_at, str_at};

/// How many log lines of a failed container are shown.
pub const LOG_LINES: i64 = 20;
/// How many distinct Warning events are shown per object.
const MAX_EVENTS: usize = 8;

/// One object's diagnosis: what state it is in and the evidence found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// "Deployment shop/api".
    pub object: String,
    /// The readiness verdict: "0 of 1 updated replicas available".
    pub state: String,
    pub findings: Vec<String>,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.state)?;
        for finding in &self.findings {
            let mut lines = finding.lines();
            if let Some(first) = lines.next() {
                write!(f, "\n  - {first}")?;
            }
            for line in lines {
                write!(f, "\n      {line}")?;
            }
        }
        Ok(())
    }
}

/// A log to fetch for the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub pod: String,
    pub container: String,
    /// The previous (crashed) instance of the container rather than the current one.
    pub previous: bool,
}

/// A fetched log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLog {
    pub request: LogRequest,
    pub text: String,
}

fn container_statuses(pod: &Value) -> impl Iterator<Item = &Value> {
    ["/status/initContainerStatuses", "/status/containerStatuses"]
        .into_iter()
        .flat_map(move |p| pod.pointer(p).and_then(Value::as_array).into_iter().flatten())
}

/// What is wrong with a pod's scheduling and containers, one finding each.
pub fn pod_findings(pod: &Value) -> Vec<String> {
    let name = str_at(pod, "/metadata/name").unwrap_or("?");
    let mut findings = Vec::new();
    if let Some(c) = super::readiness::condition(pod, "PodScheduled")
        && str_at(c, "/status") == Some("False")
    {
        let reason = str_at(c, "/reason").unwrap_or("not scheduled");
        findings.push(format!("pod {name} {}: {}", reason.to_lowercase(), str_at(c, "/message").unwrap_or("")));
    }
    for status in container_statuses(pod) {
        let container = str_at(status, "/name").unwrap_or("?");
        let restarts = i64_at(status, "/restartCount").unwrap_or(0);
        let last = status.pointer("/lastState/terminated");
        let at = format!("pod {name} container {container}");
        if let Some(waiting) = status.pointer("/state/waiting") {
            let reason = str_at(waiting, "/reason").unwrap_or("Waiting");
            let message = str_at(waiting, "/message").unwrap_or("");
            match reason {
                "ImagePullBackOff" | "ErrImagePull" | "ErrImageNeverPull" | "InvalidImageName" => {
                    let image = str_at(status, "/image").unwrap_or("?");
                    findings.push(format!(
                        "{at}: {reason} for image {image}: {message}\n  fix: check the image name and tag, and that it was pushed to the local registry"
                    ));
                }
                "CrashLoopBackOff" => {
                    let exit = last.and_then(|t| i64_at(t, "/exitCode"));
                    let why = last.and_then(|t| str_at(t, "/reason")).unwrap_or("Error");
                    let exit =
                        exit.map(|c| format!("last exit code {c} ({why})")).unwrap_or_else(|| "no exit code".into());
                    findings.push(format!("{at}: CrashLoopBackOff, {exit}, restarted {restarts} times"));
                }
                "ContainerCreating" | "PodInitializing" if message.is_empty() => {}
                _ => findings.push(format!(
                    "{at}: {reason}{}",
                    if message.is_empty() { String::new() } else { format!(": {message}") }
                )),
            }
        } else if let Some(term) = status.pointer("/state/terminated") {
            let code = i64_at(term, "/exitCode").unwrap_or(0);
            if code != 0 {
                findings
                    .push(format!("{at}: exited with code {code} ({})", str_at(term, "/reason").unwrap_or("Error")));
            }
        } else if status.pointer("/state/running").is_some() && status.get("ready") == Some(&Value::Bool(false)) {
            findings.push(format!("{at}: running but not ready (see the probe events below)"));
        }
        let oom = |t: &Value| str_at(t, "/reason") == Some("OOMKilled");
        if last.is_some_and(oom) || status.pointer("/state/terminated").is_some_and(oom) {
            findings.push(format!("{at}: OOMKilled: it used more memory than its limit\n  fix: raise the service's memory limit (resources) or lower its memory use"));
        }
    }
    findings
}

/// Distinct Warning events, oldest first, the most recent [`MAX_EVENTS`] kept; probe failures
/// ("Readiness probe failed: ...") come through here.
pub fn event_findings(events: &[Value]) -> Vec<String> {
    let mut warnings: Vec<&Value> = events.iter().filter(|e| str_at(e, "/type") == Some("Warning")).collect();
    let time = |e: &Value| {
        str_at(e, "/lastTimestamp")
            .or_else(|| str_at(e, "/eventTime"))
            .or_else(|| str_at(e, "/metadata/creationTimestamp"))
            .unwrap_or("")
            .to_string()
    };
    warnings.sort_by_key(|e| time(e));
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for e in warnings.iter().rev() {
        let reason = str_at(e, "/reason").unwrap_or("Warning").to_string();
        let message = str_at(e, "/message").unwrap_or("").trim().to_string();
        let object = format!(
            "{}/{}",
            str_at(e, "/involvedObject/kind").or_else(|| str_at(e, "/regarding/kind")).unwrap_or("?").to_lowercase(),
            str_at(e, "/involvedObject/name").or_else(|| str_at(e, "/regarding/name")).unwrap_or("?")
        );
        let key = (object.clone(), reason.clone(), message.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let count = i64_at(e, "/count").or_else(|| i64_at(e, "/series/count")).unwrap_or(1);
        let times = if count > 1 { format!(" (x{count})") } else { String::new() };
        out.push(format!("event {reason} on {object}{times}: {message}"));
        if out.len() == MAX_EVENTS {
            break;
        }
    }
    out.reverse();
    out
}

/// Which logs are worth fetching: the previous instance of a restarted container that
/// terminated abnormally, and the current one of a container that exited with an error (a
/// failed Job pod).
pub fn logs_wanted(pods: &[Value]) -> Vec<LogRequest> {
    let mut wanted = Vec::new();
    for pod in pods {
        let pod_name = str_at(pod, "/metadata/name").unwrap_or("?");
        for status in container_statuses(pod) {
            let container = str_at(status, "/name").unwrap_or("?").to_string();
            let failed = |t: Option<&Value>| t.is_some_and(|t| i64_at(t, "/exitCode").unwrap_or(0) != 0);
            let previous =
                i64_at(status, "/restartCount").unwrap_or(0) > 0 && failed(status.pointer("/lastState/terminated"));
            if failed(status.pointer("/state/terminated")) {
                wanted.push(LogRequest { pod: pod_name.into(), container, previous: false });
            } else if previous {
                wanted.push(LogRequest { pod: pod_name.into(), container, previous: true });
            }
        }
    }
    wanted
}

/// The last `n` lines of a log.
pub fn tail(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Puts the evidence together: pod and container findings, then Warning events, then logs.
/// `expects_pods`: the object runs pods (a workload), so finding none is itself a finding.
pub fn diagnose(
    object: &str,
    state: &str,
    expects_pods: bool,
    pods: &[Value],
    events: &[Value],
    logs: &[PodLog],
) -> Diagnosis {
    let mut findings: Vec<String> = pods.iter().flat_map(pod_findings).collect();
    findings.extend(event_findings(events));
    for log in logs {
        let lines = tail(&log.text, LOG_LINES as usize);
        let which = if log.request.previous { "previous instance" } else { "container" };
        if lines.is_empty() {
            findings.push(format!("pod {} {which} {}: no log output", log.request.pod, log.request.container));
        } else {
            findings.push(format!(
                "pod {} {which} {}: last {} log lines:\n{}",
                log.request.pod,
                log.request.container,
                lines.len(),
                lines.iter().map(|l| format!("| {l}")).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    if expects_pods && pods.is_empty() && findings.is_empty() {
        findings.push("no pods and no warning events found (is a controller running in the cluster?)".into());
    }
    Diagnosis { object: object.into(), state: state.into(), findings }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn crashing_pod() -> Value {
        json!({
            "metadata": {"name": "api-5f7c-x2"},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "api", "image": "localhost:5001/api:abc", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}
            }]}
        })
    }

    #[test]
    fn crash_loop_shows_exit_code_restarts_and_previous_logs() {
        let pods = [crashing_pod()];
        let wanted = logs_wanted(&pods);
        assert_eq!(wanted, [LogRequest { pod: "api-5f7c-x2".into(), container: "api".into(), previous: true }]);
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let logs = [PodLog { request: wanted[0].clone(), text }];
        let d = diagnose("Deployment shop/api", "0 of 1 updated replicas available", true, &pods, &[], &logs);
        let out = d.to_string();
        assert!(out.starts_with("Deployment shop/api: 0 of 1 updated replicas available\n"), "{out}");
        assert!(
            out.contains(
                "pod api-5f7c-x2 container api: CrashLoopBackOff, last exit code 3 (Error), restarted 4 times"
            ),
            "{out}"
        );
        assert!(out.contains("last 20 log lines:"), "{out}");
        assert!(out.contains("| line 30") && out.contains("| line 11") && !out.contains("| line 10\n"), "{out}");
    }

    #[test]
    fn image_pull_names_the_image_and_the_fix() {
        let pod = json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [{
            "name": "web", "image": "localhost:5001/web:v9", "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"localhost:5001/web:v9\""}}}]}});
        let f = pod_findings(&pod);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].starts_with(
                "pod p container web: ImagePullBackOff for image localhost:5001/web:v9: Back-off pulling image"
            ),
            "{}",
            f[0]
        );
        assert!(f[0].contains("fix:"));
        assert!(logs_wanted(&[pod]).is_empty(), "no logs for a container that never ran");
    }

    #[test]
    fn oom_killed_and_unschedulable() {
        let pod = json!({"metadata": {"name": "db-0"}, "status": {
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient memory."}],
            "containerStatuses": [{"name": "pg", "restartCount": 1, "state": {"running": {}}, "ready": true,
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}});
        let f = pod_findings(&pod);
        assert_eq!(f[0], "pod db-0 unschedulable: 0/1 nodes are available: 1 Insufficient memory.");
        assert!(f[1].contains("OOMKilled") && f[1].contains("memory limit"), "{f:?}");
    }

    #[test]
    fn failed_job_pod_wants_current_logs() {
        let pod = json!({"metadata": {"name": "migrate-abc"}, "status": {"phase": "Failed", "containerStatuses": [{
            "name": "migrate", "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}});
        assert_eq!(
            logs_wanted(std::slice::from_ref(&pod)),
            [LogRequest { pod: "migrate-abc".into(), container: "migrate".into(), previous: false }]
        );
        assert_eq!(pod_findings(&pod), ["pod migrate-abc container migrate: exited with code 1 (Error)"]);
    }

    #[test]
    fn events_are_warnings_only_deduplicated_in_time_order() {
        let ev = |t: &str, reason: &str, msg: &str, ts: &str, count: i64| {
            json!({"type": t, "reason": reason, "message": msg,
            "lastTimestamp": ts, "count": count, "involvedObject": {"kind": "Pod", "name": "api-1"}})
        };
        let events = [
            ev(
                "Warning",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 500",
                "2026-01-01T00:00:03Z",
                7,
            ),
            ev("Normal", "Pulled", "Successfully pulled", "2026-01-01T00:00:01Z", 1),
            ev("Warning", "BackOff", "Back-off restarting failed container", "2026-01-01T00:00:02Z", 1),
            ev(
                "Warning",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 500",
                "2026-01-01T00:00:00Z",
                2,
            ),
        ];
        assert_eq!(
            event_findings(&events),
            [
                "event BackOff on pod/api-1: Back-off restarting failed container",
                "event Unhealthy on pod/api-1 (x7): Readiness probe failed: HTTP probe failed with statuscode: 500",
            ]
        );
    }

    #[test]
    fn nothing_found_says_so() {
        let d = diagnose("Deployment s/a", "0 of 1 replicas updated", true, &[], &[], &[]);
        assert_eq!(d.findings.len(), 1);
        assert!(d.findings[0].contains("no pods"));
        let s = diagnose("Service s/a", "no ready endpoints", false, &[], &[], &[]);
        assert!(s.findings.is_empty(), "a Service's pods are its workload's diagnosis");
    }
}
