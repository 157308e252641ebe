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

/// At most this many pods are created or deleted for one ReplicaSet in one round, as upstream's
/// `burstReplicas`: a huge `replicas` costs many bounded rounds, never one unbounded one.
pub const BURST_REPLICAS: usize = 500;

/// The sizes of the batches in which `count` creations are attempted: 1, 2, 4, … (upstream's
/// slow start), so a template that cannot be created fails once, not `count` times. The caller
/// stops at the first batch with a failure.
pub fn slow_start_batches(count: usize) -> impl Iterator<Item = usize> {
    let mut done = 0usize;
    let mut size = 1usize;
    std::iter::from_fn(move || {
        if done >= count {
            return None;
        }
        let batch = size.min(count - done);
        done += batch;
        size = size.saturating_mul(2);
        Some(batch)
    })
}

/// What `rs` needs, given the pods it controls (`owned`): at most [`BURST_REPLICAS`] pods to
/// create or delete this round.
pub fn plan_replicaset(rs: &ReplicaSet, owned: &[Pod]) -> ReplicaPlan {
    let desired = usize::try_from(rs.spec.replicas.unwrap_or(1)).unwrap_or(0);
    let mut active: Vec<&Pod> = owned.iter().filter(|p| is_active(p)).collect();
    let mut plan = ReplicaPlan::default();
    if active.len() < desired {
        let missing = (desired - active.len()).min(BURST_REPLICAS);
        plan.create = (0..missing).map(|_| new_pod(rs)).collect();
    } else if active.len() > desired {
        active.sort_by_key(|p| deletion_rank(p));
        let excess = (active.len() - desired).min(BURST_REPLICAS);
        plan.delete = active[..excess]
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
    fn a_huge_replica_count_creates_a_bounded_batch() {
        let plan = plan_replicaset(&rs(i32::MAX), &[]);
        assert_eq!(plan.create.len(), BURST_REPLICAS);
        assert_eq!(plan.status.replicas, 0);
    }

    #[test]
    fn scaling_down_deletes_a_bounded_batch() {
        let pods: Vec<Pod> = (0..BURST_REPLICAS + 20)
            .map(|i| pod(&format!("p{i}"), Some("n1"), "Running", true, "2026-01-01T00:00:00Z"))
            .collect();
        let plan = plan_replicaset(&rs(0), &pods);
        assert_eq!(plan.delete.len(), BURST_REPLICAS);
    }

    #[test]
    fn slow_start_doubles_and_ends_at_the_count() {
        assert_eq!(slow_start_batches(0).collect::<Vec<_>>(), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1).collect::<Vec<_>>(), [1]);
        assert_eq!(slow_start_batches(10).collect::<Vec<_>>(), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(500).sum::<usize>(), 500);
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
