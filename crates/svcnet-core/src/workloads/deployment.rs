//! A Deployment's reconciliation: one ReplicaSet per pod template (named by its hash). A new
//! template gets a new ReplicaSet at full size; the old ones are scaled to zero once the new
//! one's pods are all ready, so a Service keeps ready endpoints through a rollout.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::{POD_TEMPLATE_HASH, controller_ref, template_hash};

#[derive(Debug, Default, PartialEq)]
pub struct DeploymentPlan {
    pub create: Option<ReplicaSet>,
    /// (ReplicaSet name, new replicas).
    pub scale: Vec<(String, i32)>,
    pub status: DeploymentStatus,
}

fn new_replicaset(d: &Deployment, hash: &str, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone();
    let mut template = spec.template;
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut selector: LabelSelector = spec.selector;
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or(""))),
            namespace: d.metadata.namespace.clone(),
            labels: meta.labels.clone(),
            owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            selector,
            template: Some(template),
            min_ready_seconds: spec.min_ready_seconds,
        },
        status: None,
    }
}

fn condition(
    previous: Option<&DeploymentStatus>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    let status = if ok { "True" } else { "False" };
    let kept = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.type_.as_deref() == Some(type_)
                    && c.status.as_deref() == Some(status)
                    && c.reason.as_deref() == Some(reason)
            })
        })
        .cloned();
    kept.unwrap_or(DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(now)),
        last_update_time: Some(Time(now)),
    })
}

/// What `d` needs, given the ReplicaSets it controls (`owned`) and the time for conditions.
pub fn plan_deployment(d: &Deployment, owned: &[ReplicaSet], now: Timestamp) -> DeploymentPlan {
    let spec = d.spec.clone();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let hash = template_hash(&spec.template);
    let new_name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or(""));
    let mut plan = DeploymentPlan::default();
    let current = owned.iter().find(|rs| rs.metadata.name.as_deref() == Some(&new_name));
    let rs_replicas = |rs: &ReplicaSet| rs.spec.replicas.unwrap_or(0);
    let ready_of = |rs: &ReplicaSet| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    let new_ready = match current {
        None => {
            plan.create = Some(new_replicaset(d, &hash, desired));
            0
        }
        Some(rs) => {
            if rs_replicas(rs) != desired {
                plan.scale.push((new_name.clone(), desired));
            }
            ready_of(rs)
        }
    };
    for old in owned.iter().filter(|rs| rs.metadata.name.as_deref() != Some(&new_name)) {
        if rs_replicas(old) > 0 && new_ready >= desired {
            plan.scale.push((old.metadata.name.clone().unwrap_or_default(), 0));
        }
    }
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| owned.iter().map(f).sum::<i32>();
    let replicas = sum(&|rs| rs.status.as_ref().map_or(0, |s| s.replicas));
    let ready = sum(&|rs| ready_of(rs));
    let updated = current.and_then(|rs| rs.status.as_ref()).map_or(0, |s| s.replicas);
    let previous = d.status.as_ref();
    let available = ready >= desired;
    let (reason, message) = if available {
        ("MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let progress_message = format!("ReplicaSet \"{new_name}\" is progressing.");
    let (p_reason, p_message) = if updated == desired && ready >= desired && replicas == desired {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else {
        ("ReplicaSetUpdated", progress_message)
    };
    plan.status = DeploymentStatus {
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        unavailable_replicas: Some((desired - ready).max(0)),
        observed_generation: d.metadata.generation,
        conditions: Some(vec![
            condition(previous, "Available", available, reason, message, now),
            condition(previous, "Progressing", true, p_reason, &p_message, now),
        ]),
        ..Default::default()
    };
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "default", "uid": "d-uid" },
            "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": "web" } },
                      "template": { "metadata": { "labels": { "app": "web" } },
                                    "spec": { "containers": [{ "name": "c", "image": image }] } } },
        }))
        .unwrap()
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn with_status(mut rs: ReplicaSet, replicas: i32, ready: i32) -> ReplicaSet {
        rs.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
            replicas,
            ready_replicas: Some(ready),
            ..Default::default()
        });
        rs
    }

    #[test]
    fn first_reconcile_creates_the_replicaset_for_the_template() {
        let plan = plan_deployment(&deployment(3, "a"), &[], at(0));
        let rs = plan.create.unwrap();
        let hash = rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH].clone();
        assert_eq!(rs.metadata.name.unwrap(), format!("web-{hash}"));
        let spec = rs.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.selector.match_labels.unwrap()[POD_TEMPLATE_HASH], hash);
        assert_eq!(spec.template.unwrap().metadata.unwrap().labels.unwrap()["app"], "web");
        assert_eq!(rs.metadata.owner_references.unwrap()[0].uid, "d-uid");
        assert_eq!(plan.status.conditions.unwrap()[0].status.as_deref(), Some("False"));
    }

    #[test]
    fn scaling_resizes_the_current_replicaset() {
        let d = deployment(3, "a");
        let rs = with_status(plan_deployment(&d, &[], at(0)).create.unwrap(), 3, 3);
        let plan = plan_deployment(&d, std::slice::from_ref(&rs), at(1));
        assert!(plan.create.is_none() && plan.scale.is_empty());
        assert_eq!(plan.status.ready_replicas, Some(3));
        assert_eq!(
            plan.status.conditions.as_ref().unwrap()[0].reason.as_deref(),
            Some("MinimumReplicasAvailable")
        );
        let plan = plan_deployment(&deployment(5, "a"), &[rs], at(2));
        assert_eq!(plan.scale, [(plan.scale[0].0.clone(), 5)]);
    }

    #[test]
    fn a_new_template_replaces_the_old_replicaset_once_ready() {
        let old = with_status(plan_deployment(&deployment(2, "a"), &[], at(0)).create.unwrap(), 2, 2);
        let d = deployment(2, "b");
        let plan = plan_deployment(&d, std::slice::from_ref(&old), at(1));
        let new = plan.create.unwrap();
        assert_ne!(new.metadata.name, old.metadata.name);
        assert!(plan.scale.is_empty(), "old pods stay until the new ones are ready");
        let new = with_status(new, 2, 2);
        let plan = plan_deployment(&d, &[old.clone(), new], at(2));
        assert_eq!(plan.scale, [(old.metadata.name.unwrap(), 0)]);
    }
}
