//! The Deployment and ReplicaSet controllers, in-process like the endpoint controllers: each
//! round lists Deployments, ReplicaSets and Pods, applies the core's plans (new ReplicaSets,
//! scaling, pods to create and delete, statuses), then lets [`crate::gc`] collect garbage.
//! Scaling, pod creation and deletion are recorded as upstream's events.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use svcnet_core::workloads::controller_uid;
use svcnet_core::workloads::deployment::{REVISION, plan_deployment};
use svcnet_core::workloads::replicaset::{plan_replicaset, slow_start_batches};
use svcnet_store::Store;

use crate::events;
use crate::gc;
use crate::objects::{self, Ids, Reply};
use crate::resources::{DEPLOYMENTS, PODS, REPLICA_SETS};

/// The event sources upstream's controllers report as.
const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
const REPLICASET_CONTROLLER: &str = "replicaset-controller";

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

fn typed<T: serde::de::DeserializeOwned>(items: &[Value]) -> Vec<T> {
    items
        .iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect()
}

fn owned_by<'a, T>(
    items: &'a [T],
    meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    uid: &str,
) -> Vec<&'a T> {
    items.iter().filter(|i| controller_uid(meta(i)) == Some(uid)).collect()
}

/// Writes `status` into the stored object unless it already has it.
fn set_status(store: &Store, kind: &crate::resources::Kind, stored: &Value, status: Value, ids: &mut dyn Ids) -> usize {
    if stored["status"] == status {
        return 0;
    }
    let mut obj = stored.clone();
    obj["status"] = status;
    let ns = stored["metadata"]["namespace"].as_str().unwrap_or("");
    let name = stored["metadata"]["name"].as_str().unwrap_or("");
    usize::from(objects::replace(store, kind, ns, name, obj, true, ids).is_ok())
}

/// Sets annotation `key` of a stored object to `value` (a metadata-only write: the
/// generation stays); 1 if written.
fn annotate(
    store: &Store,
    kind: &crate::resources::Kind,
    ns: &str,
    name: &str,
    key: &str,
    value: &str,
    ids: &mut dyn Ids,
) -> usize {
    let Ok(mut object) = objects::get(store, kind, ns, name) else {
        return 0;
    };
    if object["metadata"]["annotations"][key] == value {
        return 0;
    }
    if !object["metadata"]["annotations"].is_object() {
        object["metadata"]["annotations"] = json!({});
    }
    object["metadata"]["annotations"][key] = json!(value);
    usize::from(objects::replace(store, kind, ns, name, object, false, ids).is_ok())
}

/// One round; returns how many writes it made.
pub fn reconcile(store: &Store, ids: &mut dyn Ids) -> Reply<usize> {
    let (deployments_raw, _) = objects::list(store, &DEPLOYMENTS, None)?;
    let owned_pod = |p: &Value| {
        p["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    };
    if deployments_raw.is_empty()
        && objects::list(store, &REPLICA_SETS, None)?.0.is_empty()
        && !objects::list(store, &PODS, None)?.0.iter().any(owned_pod)
    {
        // nothing to control and no dependent left to collect
        return Ok(0);
    }
    let now = objects::now_timestamp();
    let mut writes = 0;
    let deployments: Vec<Deployment> = typed(&deployments_raw);
    let (sets_raw, _) = objects::list(store, &REPLICA_SETS, None)?;
    let sets: Vec<ReplicaSet> = typed(&sets_raw);
    for (d, raw) in deployments.iter().zip(&deployments_raw) {
        let uid = d.metadata.uid.as_deref().unwrap_or("");
        let ns = d.metadata.namespace.as_deref().unwrap_or("");
        let owned: Vec<ReplicaSet> = owned_by(&sets, |s| &s.metadata, uid).into_iter().cloned().collect();
        let mut plan = plan_deployment(d, &owned, now);
        if d.metadata.deletion_timestamp.is_some() {
            // being deleted (finalizers pending): status only, as upstream
            plan.create = None;
            plan.scale.clear();
            plan.revise.clear();
            plan.delete.clear();
            plan.deployment_revision = None;
        }
        for (name, revision) in &plan.revise {
            writes += annotate(store, &REPLICA_SETS, ns, name, REVISION, revision, ids);
        }
        for name in &plan.delete {
            let deleted = gc::delete_with(store, &REPLICA_SETS, ns, name, gc::Propagation::Background, ids);
            writes += usize::from(deleted.is_ok());
        }
        if let Some(rs) = plan.create {
            let v = serde_json::to_value(&rs).expect("JSON");
            let replicas = v["spec"]["replicas"].as_i64().unwrap_or(0);
            if let Ok(created) = objects::create(store, &REPLICA_SETS, ns, v, ids) {
                writes += 1;
                let message = format!("Scaled up replica set {} from 0 to {replicas}", name_of(&created));
                events::record(store, ids, raw, "ScalingReplicaSet", &message, DEPLOYMENT_CONTROLLER);
            }
        }
        for (name, replicas) in plan.scale {
            if let Ok(mut rs) = objects::get(store, &REPLICA_SETS, ns, &name) {
                let from = rs["spec"]["replicas"].as_i64().unwrap_or(0);
                rs["spec"]["replicas"] = json!(replicas);
                if objects::replace(store, &REPLICA_SETS, ns, &name, rs, false, ids).is_ok() {
                    writes += 1;
                    let direction = if i64::from(replicas) > from { "up" } else { "down" };
                    let message = format!("Scaled {direction} replica set {name} from {from} to {replicas}");
                    events::record(store, ids, raw, "ScalingReplicaSet", &message, DEPLOYMENT_CONTROLLER);
                }
            }
        }
        let status = serde_json::to_value(&plan.status).expect("JSON");
        writes += set_status(store, &DEPLOYMENTS, raw, status, ids);
        if let Some(revision) = &plan.deployment_revision {
            let name = d.metadata.name.as_deref().unwrap_or("");
            writes += annotate(store, &DEPLOYMENTS, ns, name, REVISION, revision, ids);
        }
    }
    let (sets_raw, _) = objects::list(store, &REPLICA_SETS, None)?;
    let sets: Vec<ReplicaSet> = typed(&sets_raw);
    let (pods_raw, _) = objects::list(store, &PODS, None)?;
    let pods: Vec<Pod> = typed(&pods_raw);
    for (rs, raw) in sets.iter().zip(&sets_raw) {
        let uid = rs.metadata.uid.as_deref().unwrap_or("");
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let owned: Vec<Pod> = owned_by(&pods, |p| &p.metadata, uid).into_iter().cloned().collect();
        let mut plan = plan_replicaset(rs, &owned);
        if rs.metadata.deletion_timestamp.is_some() {
            plan.create.clear();
            plan.delete.clear();
        }
        let mut pods_to_create = plan.create.into_iter();
        'batches: for batch in slow_start_batches(pods_to_create.len()) {
            for pod in pods_to_create.by_ref().take(batch) {
                let v = serde_json::to_value(&pod).expect("JSON");
                match objects::create(store, &PODS, ns, v, ids) {
                    Ok(created) => {
                        writes += 1;
                        let message = format!("Created pod: {}", name_of(&created));
                        events::record(store, ids, raw, "SuccessfulCreate", &message, REPLICASET_CONTROLLER);
                    }
                    Err(status) => {
                        // a template that cannot be created fails once per round, not per replica
                        let message = format!("Error creating: {}", status.message);
                        events::record_warning(store, ids, raw, "FailedCreate", &message, REPLICASET_CONTROLLER);
                        break 'batches;
                    }
                }
            }
        }
        for name in plan.delete {
            if objects::delete_pod(store, ns, &name, None).is_ok() {
                writes += 1;
                let message = format!("Deleted pod: {name}");
                events::record(store, ids, raw, "SuccessfulDelete", &message, REPLICASET_CONTROLLER);
            }
        }
        let status = serde_json::to_value(&plan.status).expect("JSON");
        writes += set_status(store, &REPLICA_SETS, raw, status, ids);
    }
    writes += gc::collect(store, &deployments_raw, &sets_raw, &pods_raw, ids);
    Ok(writes)
}
