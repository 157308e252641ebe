//! A ReplicaSet's reconciliation: pods to create from its template or to delete (the least
//! useful first, as upstream ranks them), and the status it should report.

use std::cmp::Reverse;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{controller_ref, is_active, is_ready};

#[derive(Debug, Default, PartialEq)]
pub struct ReplicaPlan {
    /// New pods (named by `generateName`).
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    pub status: ReplicaSetStatus,
}

fn new_pod(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.template.clone().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or(""))),
            namespace: rs.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletion order: unscheduled, then pending, then not ready, then the newest.
fn deletion_rank(pod: &Pod) -> (bool, bool, bool, Reverse<String>) {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    (scheduled, running, is_ready(pod), Reverse(created))
}

/// What `rs` needs, given the pods it controls (`owned`).
pub fn plan_replicaset(rs: &ReplicaSet, owned: &[Pod]) -> ReplicaPlan {
    let desired = rs.spec.replicas.unwrap_or(1).max(0) as usize;
    let mut active: Vec<&Pod> = owned.iter().filter(|p| is_active(p)).collect();
    let mut plan = ReplicaPlan::default();
    if active.len() < desired {
        plan.create = (active.len()..desired).map(|_| new_pod(rs)).collect();
    } else if active.len() > desired {
        active.sort_by_key(|p| deletion_rank(p));
        plan.delete = active[..active.len() - desired]
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
    }
    let ready = active.iter().filter(|p| is_ready(p)).count() as i32;
    plan.status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(active.len() as i32),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        observed_generation: rs.metadata.generation,
        ..Default::default()
    };
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": { "name": "web-abc", "namespace": "default", "uid": "rs-uid" },
            "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": "web" } },
                      "template": { "metadata": { "labels": { "app": "web" } },
                                    "spec": { "containers": [{ "name": "c", "image": "agnhost" }] } } },
        }))
        .unwrap()
    }

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, created: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "creationTimestamp": created },
            "spec": { "containers": [], "nodeName": node },
            "status": { "phase": phase, "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] },
        }))
        .unwrap()
    }

    #[test]
    fn creates_missing_pods_from_the_template() {
        let plan = plan_replicaset(&rs(3), &[pod("a", Some("n1"), "Running", true, "2026-01-01T00:00:00Z")]);
        assert_eq!(plan.create.len(), 2);
        let p = &plan.create[0];
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(p.metadata.owner_references.as_ref().unwrap()[0].uid, "rs-uid");
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.ready_replicas, Some(1));
    }

    #[test]
    fn deletes_the_least_useful_pods_first() {
        let pods = [
            pod("old-ready", Some("n1"), "Running", true, "2026-01-01T00:00:00Z"),
            pod("new-ready", Some("n1"), "Running", true, "2026-01-02T00:00:00Z"),
            pod("not-ready", Some("n2"), "Running", false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", None, "Pending", false, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(
            plan_replicaset(&rs(1), &pods).delete,
            ["unscheduled", "not-ready", "new-ready"]
        );
        assert_eq!(plan_replicaset(&rs(3), &pods).delete, ["unscheduled"]);
        assert!(plan_replicaset(&rs(4), &pods).delete.is_empty());
    }

    #[test]
    fn finished_and_terminating_pods_do_not_count() {
        let mut gone = pod("gone", Some("n1"), "Running", true, "2026-01-01T00:00:00Z");
        gone.metadata.deletion_timestamp = gone.metadata.creation_timestamp.clone();
        let done = pod("done", Some("n1"), "Succeeded", false, "2026-01-01T00:00:00Z");
        let plan = plan_replicaset(&rs(2), &[gone, done]);
        assert_eq!(plan.create.len(), 2);
        assert_eq!(plan.status.replicas, 0);
    }
}
