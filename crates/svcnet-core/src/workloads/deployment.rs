//! A Deployment's reconciliation as upstream's deployment controller does it: one ReplicaSet
//! per pod template (named by its hash), numbered by the `deployment.kubernetes.io/revision`
//! annotation (a template seen again becomes the newest revision, which is how `kubectl
//! rollout undo` works), rolled out by its strategy:
//!
//! - **RollingUpdate**: the new ReplicaSet grows while all pods stay within `replicas +
//!   maxSurge`, and old ones shrink while available pods stay at `replicas - maxUnavailable`
//!   or more (percentages of `replicas`; surge rounds up, unavailable down; both zero means one
//!   unavailable), unavailable old pods first;
//! - **Recreate**: every old ReplicaSet goes to zero, and the new one is created or scaled up
//!   only once no old pod is left.
//!
//! A paused Deployment starts no rollout (only scaling applies to its current ReplicaSet).
//! Old ReplicaSets beyond `revisionHistoryLimit` that hold no pods are deleted. Conditions,
//! reasons and messages are upstream's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::{POD_TEMPLATE_HASH, controller_ref, template_hash};

/// The annotation numbering a Deployment's ReplicaSets (and the Deployment's current one).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Why a revision was made; copied from the Deployment to its new ReplicaSet.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

#[derive(Debug, Default, PartialEq)]
pub struct DeploymentPlan {
    pub create: Option<ReplicaSet>,
    /// (ReplicaSet name, new replicas).
    pub scale: Vec<(String, i32)>,
    /// (ReplicaSet name, revision) for a ReplicaSet whose template became current again.
    pub revise: Vec<(String, String)>,
    /// The revision the Deployment's own annotation must show, when it differs.
    pub deployment_revision: Option<String>,
    /// Old ReplicaSets beyond the history limit, to delete.
    pub delete: Vec<String>,
    pub status: DeploymentStatus,
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn new_replicaset(d: &Deployment, hash: &str, replicas: i32, revision: i64) -> ReplicaSet {
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
    let mut annotations = BTreeMap::from([(REVISION.to_owned(), revision.to_string())]);
    if let Some(cause) = d.metadata.annotations.as_ref().and_then(|a| a.get(CHANGE_CAUSE)) {
        annotations.insert(CHANGE_CAUSE.to_owned(), cause.clone());
    }
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or(""))),
            namespace: d.metadata.namespace.clone(),
            labels: meta.labels.clone(),
            annotations: Some(annotations),
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

/// An int-or-percent of `total`, rounded up or down; malformed values count as 0. Counts are
/// i64 throughout the planner, so `replicas: 2147483647` cannot overflow a sum.
fn scaled(value: Option<&IntOrString>, total: i64, round_up: bool) -> i64 {
    match value {
        Some(IntOrString::Int(n)) => i64::from(*n).max(0),
        Some(IntOrString::String(s)) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let numerator = percent.clamp(0, 100_000).saturating_mul(total);
            if round_up {
                (numerator + 99) / 100
            } else {
                numerator / 100
            }
        }
        None => 0,
    }
}

/// A count back in the API's int32.
fn int32(n: i64) -> i32 {
    i32::try_from(n.max(0)).unwrap_or(i32::MAX)
}

/// (maxSurge, maxUnavailable) of a rolling update for `desired` replicas, as upstream
/// resolves them.
pub fn surge_and_unavailable(d: &Deployment, desired: i64) -> (i64, i64) {
    let rolling = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String("25%".into());
    let surge = scaled(rolling.map_or(Some(&default), |r| r.max_surge.as_ref()), desired, true);
    let mut unavailable = scaled(
        rolling.map_or(Some(&default), |r| r.max_unavailable.as_ref()),
        desired,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(desired))
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// Desired, ready/available and present counts of a ReplicaSet.
fn wanted(rs: &ReplicaSet) -> i64 {
    i64::from(rs.spec.replicas.unwrap_or(0))
}

fn available(rs: &ReplicaSet) -> i64 {
    let status = rs.status.as_ref();
    i64::from(
        status
            .and_then(|s| s.available_replicas.or(s.ready_replicas))
            .unwrap_or(0),
    )
}

fn present(rs: &ReplicaSet) -> i64 {
    i64::from(rs.status.as_ref().map_or(0, |s| s.replicas))
}

/// The sizes of `olds` after a rolling update's scale-down step (oldest first).
fn scale_down_olds(
    olds: &mut [(String, i64, i64)],
    new_wanted: i64,
    new_available: i64,
    desired: i64,
    unavailable: i64,
) {
    let all: i64 = olds.iter().map(|o| o.1).sum::<i64>() + new_wanted;
    let min_available = desired - unavailable;
    let new_unavailable = (new_wanted - new_available).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return;
    }
    // unavailable old pods go first: they serve nothing
    for old in olds.iter_mut() {
        let unhealthy = (old.1 - old.2).max(0).min(budget);
        old.1 -= unhealthy;
        budget -= unhealthy;
    }
    let available_now: i64 = olds.iter().map(|o| o.1.min(o.2)).sum::<i64>() + new_available;
    let mut left = (available_now - min_available).max(0);
    for old in olds.iter_mut() {
        let cut = old.1.min(left);
        old.1 -= cut;
        left -= cut;
    }
}

/// What `d` needs, given the ReplicaSets it controls (`owned`) and the time for conditions.
pub fn plan_deployment(d: &Deployment, owned: &[ReplicaSet], now: Timestamp) -> DeploymentPlan {
    let spec = &d.spec;
    let desired = i64::from(spec.replicas.unwrap_or(1).max(0));
    let hash = template_hash(&spec.template);
    let new_name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or(""));
    let paused = spec.paused == Some(true);
    let mut plan = DeploymentPlan::default();
    let current = owned.iter().find(|rs| rs.metadata.name.as_deref() == Some(&new_name));
    let mut olds: Vec<&ReplicaSet> = owned
        .iter()
        .filter(|rs| rs.metadata.name.as_deref() != Some(&new_name))
        .collect();
    olds.sort_by_key(|rs| (revision_of(rs), rs.metadata.creation_timestamp.as_ref().map(|t| t.0)));
    let max_old_revision = olds.iter().map(|rs| revision_of(rs)).max().unwrap_or(0);
    let (surge, unavailable) = surge_and_unavailable(d, desired);
    let recreate = is_recreate(d);
    let old_total: i64 = olds.iter().map(|rs| wanted(rs)).sum();
    let old_present: i64 = olds.iter().map(|rs| present(rs)).sum();

    // the new ReplicaSet: its revision and size
    let mut new_revision = current.map(revision_of).unwrap_or(0);
    let mut new_size = current.map(wanted);
    if paused {
        // no rollout: the current ReplicaSet (the newest revision) follows `replicas`
        let newest = current.or_else(|| olds.last().copied());
        if let Some(rs) = newest
            && wanted(rs) != desired
        {
            plan.scale
                .push((rs.metadata.name.clone().unwrap_or_default(), int32(desired)));
        }
    } else {
        if current.is_none() || new_revision <= max_old_revision {
            new_revision = max_old_revision + 1;
        }
        let target = if recreate {
            if old_present > 0 || old_total > 0 { 0 } else { desired }
        } else {
            let new_now = new_size.unwrap_or(0);
            if new_now >= desired {
                desired
            } else {
                let room = desired + surge - (old_total + new_now);
                new_now + room.clamp(0, desired - new_now)
            }
        };
        // Recreate makes its new ReplicaSet only once no old pod is left
        let waiting_for_olds = recreate && (old_total > 0 || old_present > 0);
        match current {
            None if !waiting_for_olds => {
                plan.create = Some(new_replicaset(d, &hash, int32(target), new_revision));
                new_size = Some(target);
            }
            None => {}
            Some(rs) => {
                if revision_of(rs) != new_revision {
                    plan.revise.push((new_name.clone(), new_revision.to_string()));
                }
                if wanted(rs) != target {
                    plan.scale.push((new_name.clone(), int32(target)));
                    new_size = Some(target);
                }
            }
        }
        // the old ReplicaSets
        let mut sizes: Vec<(String, i64, i64)> = olds
            .iter()
            .map(|rs| (rs.metadata.name.clone().unwrap_or_default(), wanted(rs), available(rs)))
            .collect();
        if recreate {
            sizes.iter_mut().for_each(|s| s.1 = 0);
        } else {
            let new_available = current.map(available).unwrap_or(0);
            scale_down_olds(&mut sizes, new_size.unwrap_or(0), new_available, desired, unavailable);
        }
        for ((name, size, _), rs) in sizes.into_iter().zip(&olds) {
            if size != wanted(rs) {
                plan.scale.push((name, int32(size)));
            }
        }
        if plan.create.is_some() || current.is_some() {
            let shown = d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION));
            if shown.map(String::as_str) != Some(&new_revision.to_string()) {
                plan.deployment_revision = Some(new_revision.to_string());
            }
        }
    }

    // history: old ReplicaSets without pods beyond the limit, oldest first
    let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let idle: Vec<&&ReplicaSet> = olds.iter().filter(|rs| wanted(rs) == 0 && present(rs) == 0).collect();
    if idle.len() > limit {
        plan.delete = idle[..idle.len() - limit]
            .iter()
            .filter_map(|rs| rs.metadata.name.clone())
            .collect();
    }

    // status, as upstream's calculateStatus
    let sum = |f: &dyn Fn(&ReplicaSet) -> i64| owned.iter().map(f).sum::<i64>();
    let replicas = sum(&present);
    let ready = sum(&|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0).into());
    let available_count = sum(&available);
    let total_wanted = sum(&wanted);
    let updated = current.map_or(0, present);
    let previous = d.status.as_ref();
    let is_available = available_count >= desired - unavailable;
    let (reason, message) = if is_available {
        ("MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let (p_ok, p_reason, p_message) = if paused {
        (false, "DeploymentPaused", "Deployment is paused".to_owned())
    } else if current.is_none() && plan.create.is_some() {
        (
            true,
            "NewReplicaSetCreated",
            format!("Created new replica set \"{new_name}\""),
        )
    } else if updated == desired && available_count >= desired && replicas == desired {
        (
            true,
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else {
        (
            true,
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    };
    plan.status = DeploymentStatus {
        replicas: Some(int32(replicas)),
        updated_replicas: Some(int32(updated)),
        ready_replicas: Some(int32(ready)),
        available_replicas: Some(int32(available_count)),
        unavailable_replicas: Some(int32(total_wanted - available_count)),
        observed_generation: d.metadata.generation,
        conditions: Some(vec![
            condition(previous, "Available", is_available, reason, message, now),
            condition(previous, "Progressing", p_ok, p_reason, &p_message, now),
        ]),
        collision_count: previous.and_then(|p| p.collision_count),
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

    fn name(rs: &ReplicaSet) -> String {
        rs.metadata.name.clone().unwrap()
    }

    /// Applies a plan's scaling to `sets` and gives every set `ready` ready pods of its size
    /// (`ready(name, size)`), as the ReplicaSet controller and kubelets would.
    fn settle(sets: &mut Vec<ReplicaSet>, plan: DeploymentPlan, ready: impl Fn(&str, i32) -> i32) {
        if let Some(rs) = plan.create {
            sets.push(rs);
        }
        for (n, size) in plan.scale {
            let rs = sets.iter_mut().find(|rs| name(rs) == n).unwrap();
            rs.spec.replicas = Some(size);
        }
        for rs in sets.iter_mut() {
            let size = rs.spec.replicas.unwrap();
            let r = ready(&name(rs), size);
            *rs = with_status(rs.clone(), size, r);
        }
    }

    #[test]
    fn a_rolling_update_stays_within_surge_and_unavailability() {
        let d = deployment(4, "a");
        let mut sets = Vec::new();
        let plan = plan_deployment(&d, &sets, at(0));
        settle(&mut sets, plan, |_, size| size);
        assert_eq!(sets[0].spec.replicas, Some(4));
        let d = deployment(4, "b");
        let mut rounds = 0;
        loop {
            let plan = plan_deployment(&d, &sets, at(rounds));
            // new pods become ready only in the round after they were asked for
            let before: BTreeMap<String, i32> = sets
                .iter()
                .map(|rs| (name(rs), rs.status.as_ref().unwrap().replicas))
                .collect();
            settle(&mut sets, plan, |n, size| before.get(n).copied().unwrap_or(0).min(size));
            let total: i32 = sets.iter().map(|rs| rs.spec.replicas.unwrap()).sum();
            let available: i64 = sets.iter().map(available).sum();
            assert!(total <= 5, "maxSurge 25% of 4 is 1: {total} pods");
            assert!(available >= 3, "maxUnavailable 25% of 4 is 1: {available} available");
            rounds += 1;
            let new = sets
                .iter()
                .find(|rs| {
                    rs.spec.template.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
                        .image
                        .as_deref()
                        == Some("b")
                })
                .unwrap();
            if new.spec.replicas == Some(4) && sets.iter().filter(|rs| rs.spec.replicas != Some(0)).count() == 1 {
                break;
            }
            assert!(rounds < 20, "the rollout never finished: {sets:?}");
        }
        assert!(
            rounds > 2,
            "a rollout of 4 with surge 1 takes several steps, took {rounds}"
        );
    }

    #[test]
    fn recreate_removes_every_old_pod_before_the_new_replicaset() {
        let mut d = deployment(2, "a");
        d.spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let mut sets = Vec::new();
        let plan = plan_deployment(&d, &sets, at(0));
        settle(&mut sets, plan, |_, size| size);
        d.spec.template.spec.as_mut().unwrap().containers[0].image = Some("b".into());
        let plan = plan_deployment(&d, &sets, at(1));
        assert!(plan.create.is_none(), "no new pods while old ones run");
        assert_eq!(plan.scale, [(name(&sets[0]), 0)]);
        settle(&mut sets, plan, |_, size| size);
        let plan = plan_deployment(&d, &sets, at(2));
        assert_eq!(plan.create.as_ref().unwrap().spec.replicas, Some(2));
    }

    #[test]
    fn a_paused_deployment_starts_no_rollout_but_scales() {
        let mut d = deployment(2, "a");
        let mut sets = Vec::new();
        let plan = plan_deployment(&d, &sets, at(0));
        settle(&mut sets, plan, |_, size| size);
        d.spec.paused = Some(true);
        d.spec.template.spec.as_mut().unwrap().containers[0].image = Some("b".into());
        d.spec.replicas = Some(3);
        let plan = plan_deployment(&d, &sets, at(1));
        assert!(plan.create.is_none());
        assert_eq!(plan.scale, [(name(&sets[0]), 3)]);
        assert_eq!(
            plan.status.conditions.as_ref().unwrap()[1].reason.as_deref(),
            Some("DeploymentPaused")
        );
    }

    #[test]
    fn revisions_number_templates_and_a_template_seen_again_is_the_newest() {
        let a = deployment(1, "a");
        let mut sets = Vec::new();
        let plan = plan_deployment(&a, &sets, at(0));
        assert_eq!(plan.deployment_revision.as_deref(), Some("1"));
        settle(&mut sets, plan, |_, size| size);
        assert_eq!(revision_of(&sets[0]), 1);
        let b = deployment(1, "b");
        let plan = plan_deployment(&b, &sets, at(1));
        assert_eq!(revision_of(plan.create.as_ref().unwrap()), 2);
        assert_eq!(plan.deployment_revision.as_deref(), Some("2"));
        settle(&mut sets, plan, |_, size| size);
        // back to a (what `kubectl rollout undo` does): its ReplicaSet becomes revision 3
        let plan = plan_deployment(&a, &sets, at(2));
        assert!(plan.create.is_none());
        assert_eq!(plan.revise, [(name(&sets[0]), "3".to_owned())]);
        assert_eq!(plan.deployment_revision.as_deref(), Some("3"));
    }

    #[test]
    fn old_replicasets_beyond_the_history_limit_are_deleted() {
        let mut sets = Vec::new();
        for (i, image) in ["a", "b", "c", "d"].iter().enumerate() {
            let mut d = deployment(1, image);
            d.spec.revision_history_limit = Some(1);
            for _ in 0..6 {
                let plan = plan_deployment(&d, &sets, at(i as i64));
                let delete = plan.delete.clone();
                settle(&mut sets, plan, |_, size| size);
                sets.retain(|rs| !delete.contains(&name(rs)));
            }
        }
        assert_eq!(
            sets.len(),
            2,
            "the current ReplicaSet and one old one: {:?}",
            sets.iter().map(name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_largest_replica_count_plans_without_overflow() {
        let d = deployment(i32::MAX, "a");
        let plan = plan_deployment(&d, &[], at(0));
        assert_eq!(plan.create.unwrap().spec.replicas, Some(i32::MAX));
        let mut old = deployment(i32::MAX, "a");
        old.spec.template.spec.as_mut().unwrap().containers[0].image = Some("old".into());
        let olds = vec![with_status(
            plan_deployment(&old, &[], at(0)).create.unwrap(),
            i32::MAX,
            i32::MAX,
        )];
        let plan = plan_deployment(&d, &olds, at(1));
        assert!(plan.create.is_some());
        assert_eq!(plan.status.unavailable_replicas, Some(0));
    }

    #[test]
    fn surge_and_unavailability_resolve_as_upstream() {
        let mut d = deployment(10, "a");
        assert_eq!(surge_and_unavailable(&d, 10), (3, 2));
        d.spec.strategy = Some(
            serde_json::from_value(json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}))
            .unwrap(),
        );
        assert_eq!(surge_and_unavailable(&d, 10), (0, 1));
    }
}
