//! What to prune: objects that carry the project's ownership labels but are no longer in the
//! applied set. Only objects samestack itself applied are candidates. Controllers copy labels
//! into what they make: ReplicaSets, Pods and Jobs have ownerReferences, but a StatefulSet's
//! PersistentVolumeClaims (from `volumeClaimTemplates`) have none, and deleting those would
//! lose the database's data. So the test is the managedFields entry of samestack's apply.

use std::collections::BTreeSet;

use serde::Serialize;

use super::object::ObjectKey;

/// An object found in the cluster by the ownership label selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub key: ObjectKey,
    /// The apiVersion it was listed through (used to delete it).
    pub api_version: String,
    /// Something else made it: it has ownerReferences, or no server-side apply by samestack's
    /// field manager ever touched it.
    pub made_by_others: bool,
    /// It already has a deletionTimestamp.
    pub deleting: bool,
}

/// The objects to delete, in a safe order: namespaced objects first, then cluster-scoped ones,
/// with Namespaces and CRDs last (deleting those takes their contents along).
pub fn plan_prune<'a>(applied: &BTreeSet<ObjectKey>, found: &'a [Found]) -> Vec<&'a Found> {
    let mut doomed: Vec<&Found> =
        found.iter().filter(|f| !f.made_by_others && !f.deleting && !applied.contains(&f.key)).collect();
    doomed.sort_by_key(|f| {
        let rank = match (f.key.kind.as_str(), &f.key.namespace) {
            ("Namespace", _) => 3,
            ("CustomResourceDefinition", _) => 2,
            (_, None) => 1,
            (_, Some(_)) => 0,
        };
        (rank, f.key.clone())
    });
    doomed.dedup_by(|a, b| a.key == b.key);
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str, ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey { group: group.into(), kind: kind.into(), namespace: ns.map(Into::into), name: name.into() }
    }

    fn found(key: ObjectKey) -> Found {
        Found { api_version: "v1".into(), key, made_by_others: false, deleting: false }
    }

    #[test]
    fn deletes_only_unowned_objects_missing_from_the_applied_set() {
        let applied: BTreeSet<_> =
            [key("apps", "Deployment", Some("shop"), "api"), key("", "Namespace", None, "shop")].into();
        let mut replica_set = found(key("apps", "ReplicaSet", Some("shop"), "api-7d9"));
        replica_set.made_by_others = true;
        // A StatefulSet's claim: labels inherited from the template, no ownerReferences.
        let mut claim = found(key("", "PersistentVolumeClaim", Some("shop"), "data-database-0"));
        claim.made_by_others = true;
        let mut leaving = found(key("", "ConfigMap", Some("shop"), "going"));
        leaving.deleting = true;
        let all = vec![
            found(key("apps", "Deployment", Some("shop"), "api")),
            found(key("apps", "Deployment", Some("shop"), "old-worker")),
            replica_set,
            claim,
            leaving,
            found(key("", "Namespace", None, "shop")),
        ];
        let plan: Vec<String> = plan_prune(&applied, &all).iter().map(|f| f.key.to_string()).collect();
        assert_eq!(plan, ["Deployment shop/old-worker"]);
    }

    #[test]
    fn namespaces_and_crds_go_last_and_duplicates_once() {
        let applied = BTreeSet::new();
        let all = vec![
            found(key("", "Namespace", None, "old")),
            found(key("apiextensions.k8s.io", "CustomResourceDefinition", None, "w.example.com")),
            found(key("rbac.authorization.k8s.io", "ClusterRole", None, "reader")),
            found(key("", "Service", Some("old"), "db")),
            found(key("", "Service", Some("old"), "db")),
        ];
        let plan: Vec<String> = plan_prune(&applied, &all).iter().map(|f| f.key.to_string()).collect();
        assert_eq!(
            plan,
            ["Service old/db", "ClusterRole reader", "CustomResourceDefinition w.example.com", "Namespace old"]
        );
    }

    #[test]
    fn version_does_not_matter_for_identity() {
        let applied: BTreeSet<_> = [key("autoscaling", "HorizontalPodAutoscaler", Some("s"), "api")].into();
        let mut via_v1 = found(key("autoscaling", "HorizontalPodAutoscaler", Some("s"), "api"));
        via_v1.api_version = "autoscaling/v1".into();
        assert!(plan_prune(&applied, &[via_v1]).is_empty());
    }
}
