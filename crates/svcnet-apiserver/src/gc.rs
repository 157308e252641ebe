//! Garbage collection of the workload hierarchy (Deployment → ReplicaSets → Pods) and the
//! delete propagation policies, as upstream's garbage collector applies them:
//!
//! - Background (the default): the owner goes at once; the collector then deletes dependents
//!   whose controller is gone.
//! - Foreground: the owner is marked with the `foregroundDeletion` finalizer; the collector
//!   deletes its dependents (ReplicaSets in the foreground too) and, once none is left,
//!   removes the finalizer, which removes the owner.
//! - Orphan: the dependents lose their reference to the owner, then the owner goes.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use svcnet_core::status::Status;
use svcnet_core::workloads::is_orphan;
use svcnet_store::Store;

use crate::objects::{self, Ids, Reply};
use crate::resources::{DEPLOYMENTS, Kind, PODS, REPLICA_SETS};

/// The finalizer of an owner waiting for its dependents to go.
pub const FOREGROUND: &str = "foregroundDeletion";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    /// A request's `propagationPolicy` (absent: Background); 422 for anything else.
    pub fn parse(policy: Option<&str>) -> Reply<Self> {
        match policy.unwrap_or("") {
            "" | "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => {
                let error = svcnet_core::field::FieldError::not_supported(
                    svcnet_core::field::FieldPath::new("propagationPolicy"),
                    other,
                    &["Foreground", "Background", "Orphan", "nil"],
                );
                Err(Box::new(Status::invalid("meta.k8s.io", "DeleteOptions", "", &[error])))
            }
        }
    }
}

/// The kind whose objects `owner` controls, if it has dependents.
fn dependent_kind(owner: &Kind) -> Option<&'static Kind> {
    if *owner == DEPLOYMENTS {
        Some(&REPLICA_SETS)
    } else if *owner == REPLICA_SETS {
        Some(&PODS)
    } else {
        None
    }
}

fn str_at<'a>(v: &'a Value, field: &str) -> &'a str {
    v["metadata"][field].as_str().unwrap_or("")
}

fn refers_to(object: &Value, uid: &str) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// The objects of `owner`'s namespace that name it among their owners.
fn dependents(store: &Store, kind: &Kind, owner: &Value) -> Reply<Vec<Value>> {
    let Some(dependent) = dependent_kind(kind) else {
        return Ok(Vec::new());
    };
    let uid = str_at(owner, "uid");
    let (items, _) = objects::list(store, dependent, Some(str_at(owner, "namespace")))?;
    Ok(items.into_iter().filter(|d| refers_to(d, uid)).collect())
}

fn finalizers_of(object: &Value) -> Vec<String> {
    serde_json::from_value(object["metadata"]["finalizers"].clone()).unwrap_or_default()
}

/// DELETE of an object with `policy`.
pub fn delete_with(
    store: &Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    policy: Propagation,
    ids: &mut dyn Ids,
) -> Reply<Value> {
    if dependent_kind(kind).is_none() || policy == Propagation::Background {
        return objects::delete(store, kind, namespace, name);
    }
    let mut owner = objects::get(store, kind, namespace, name)?;
    match policy {
        Propagation::Orphan => {
            let uid = str_at(&owner, "uid").to_owned();
            for mut dependent in dependents(store, kind, &owner)? {
                if let Some(refs) = dependent["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                    if refs.is_empty()
                        && let Some(meta) = dependent["metadata"].as_object_mut()
                    {
                        meta.remove("ownerReferences");
                    }
                }
                let (ns, dep_name) = (
                    str_at(&dependent, "namespace").to_owned(),
                    str_at(&dependent, "name").to_owned(),
                );
                let dep_kind = dependent_kind(kind).unwrap_or(kind);
                objects::replace(store, dep_kind, &ns, &dep_name, dependent, false, ids)?;
            }
        }
        Propagation::Foreground => {
            let mut finalizers = finalizers_of(&owner);
            if !finalizers.iter().any(|f| f == FOREGROUND) {
                finalizers.push(FOREGROUND.to_owned());
                owner["metadata"]["finalizers"] = json!(finalizers);
                objects::replace(store, kind, namespace, name, owner, false, ids)?;
            }
        }
        Propagation::Background => {}
    }
    objects::delete(store, kind, namespace, name)
}

/// One collection pass over the given Deployments, ReplicaSets and Pods (as stored): deletes
/// dependents whose controller is gone, and advances foreground deletions. Returns how many
/// writes it made.
pub fn collect(store: &Store, deployments: &[Value], sets: &[Value], pods: &[Value], ids: &mut dyn Ids) -> usize {
    let mut writes = 0;
    fn live(owners: &[Value]) -> HashSet<&str> {
        owners.iter().map(|o| str_at(o, "uid")).collect()
    }
    let (deployment_uids, set_uids) = (live(deployments), live(sets));
    let controller_gone = |object: &Value, owner_kind: &str, uids: &HashSet<&str>| {
        // only the owner references matter: decode just those
        let refs = &object["metadata"]["ownerReferences"];
        if refs.is_null() {
            return false;
        }
        let meta = ObjectMeta {
            owner_references: serde_json::from_value(refs.clone()).ok(),
            ..ObjectMeta::default()
        };
        is_orphan(&meta, owner_kind, uids)
    };
    for rs in sets
        .iter()
        .filter(|rs| controller_gone(rs, "Deployment", &deployment_uids))
    {
        writes +=
            usize::from(objects::delete(store, &REPLICA_SETS, str_at(rs, "namespace"), str_at(rs, "name")).is_ok());
    }
    for pod in pods.iter().filter(|p| controller_gone(p, "ReplicaSet", &set_uids)) {
        let deleted = objects::delete_pod(store, str_at(pod, "namespace"), str_at(pod, "name"), None);
        writes += usize::from(deleted.is_ok());
    }
    for (kind, owners) in [(&DEPLOYMENTS, deployments), (&REPLICA_SETS, sets)] {
        for owner in owners
            .iter()
            .filter(|o| finalizers_of(o).iter().any(|f| f == FOREGROUND))
        {
            writes += advance_foreground(store, kind, owner, ids);
        }
    }
    writes
}

/// Deletes what remains of a foreground-deleted owner's dependents, or, when none is left,
/// lets the owner go.
fn advance_foreground(store: &Store, kind: &Kind, owner: &Value, ids: &mut dyn Ids) -> usize {
    let (ns, name) = (str_at(owner, "namespace"), str_at(owner, "name"));
    let Ok(remaining) = dependents(store, kind, owner) else {
        return 0;
    };
    if remaining.is_empty() {
        let mut released = owner.clone();
        let finalizers: Vec<String> = finalizers_of(owner).into_iter().filter(|f| f != FOREGROUND).collect();
        released["metadata"]["finalizers"] = json!(finalizers);
        return usize::from(objects::replace(store, kind, ns, name, released, false, ids).is_ok());
    }
    let mut writes = 0;
    for dependent in remaining
        .iter()
        .filter(|d| d["metadata"]["deletionTimestamp"].is_null())
    {
        let dep_name = str_at(dependent, "name");
        let deleted = if kind == &DEPLOYMENTS {
            delete_with(store, &REPLICA_SETS, ns, dep_name, Propagation::Foreground, ids).is_ok()
        } else {
            objects::delete_pod(store, ns, dep_name, None).is_ok()
        };
        writes += usize::from(deleted);
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_policies_parse_as_upstream() {
        assert_eq!(Propagation::parse(None).unwrap(), Propagation::Background);
        assert_eq!(Propagation::parse(Some("Foreground")).unwrap(), Propagation::Foreground);
        assert_eq!(Propagation::parse(Some("Orphan")).unwrap(), Propagation::Orphan);
        let e = Propagation::parse(Some("orphan")).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "orphan": supported values: "Foreground", "Background", "Orphan", "nil""#
        );
    }

    #[test]
    fn only_workloads_have_dependents() {
        assert_eq!(dependent_kind(&DEPLOYMENTS), Some(&REPLICA_SETS));
        assert_eq!(dependent_kind(&REPLICA_SETS), Some(&PODS));
        assert_eq!(dependent_kind(&PODS), None);
        let rs = json!({"metadata": {"ownerReferences": [{"uid": "d1", "kind": "Deployment"}]}});
        assert!(refers_to(&rs, "d1"));
        assert!(!refers_to(&rs, "d2"));
    }
}
