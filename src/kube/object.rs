//! Identity of a Kubernetes object and small accessors over untyped manifests (`serde_json::Value`).

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::{Error, Result};

/// What identifies an object across API versions: group, kind, namespace (None when
/// cluster-scoped) and name. The version is left out on purpose: the same Deployment listed
/// through two versions is one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The group part of an apiVersion: "apps/v1" → "apps", "v1" → "" (core).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// The version part of an apiVersion: "apps/v1" → "v1".
pub fn version_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(_, v)| v).unwrap_or(api_version)
}

/// A string at a JSON pointer, if present.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// An integer at a JSON pointer, if present.
pub fn i64_at(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// The typed head of a manifest: apiVersion, kind, name and (optional) namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
}

/// Reads and checks the head of manifest number `index` (for the error message).
pub fn head(value: &Value, index: usize) -> Result<Head<'_>> {
    let field = |pointer: &str, what: &str| {
        str_at(value, pointer)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::InvalidManifest { index, reason: format!("missing or empty {what}") })
    };
    let api_version = field("/apiVersion", "apiVersion")?;
    let kind = field("/kind", "kind")?;
    let name = field("/metadata/name", "metadata.name")
        .map_err(|_| Error::InvalidManifest { index, reason: format!("{kind} without metadata.name") })?;
    Ok(Head { api_version, kind, name, namespace: str_at(value, "/metadata/namespace").filter(|s| !s.is_empty()) })
}

/// A short human label for an object: "Deployment shop/api".
pub fn describe(value: &Value) -> String {
    let kind = str_at(value, "/kind").unwrap_or("object");
    let name = str_at(value, "/metadata/name").unwrap_or("?");
    match str_at(value, "/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn splits_api_versions() {
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
        assert_eq!(version_of("networking.k8s.io/v1"), "v1");
        assert_eq!(version_of("v1"), "v1");
    }

    #[test]
    fn head_requires_name_kind_and_version() {
        let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}});
        assert_eq!(head(&ok, 0).unwrap().namespace, Some("n"));
        let no_name = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        let err = head(&no_name, 3).unwrap_err().to_string();
        assert!(err.contains("#3") && err.contains("ConfigMap without metadata.name"), "{err}");
        let no_kind = json!({"apiVersion": "v1", "metadata": {"name": "a"}});
        assert!(head(&no_kind, 0).unwrap_err().to_string().contains("kind"));
    }
}
