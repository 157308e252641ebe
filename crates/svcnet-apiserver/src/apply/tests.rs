//! Apply and update scenarios over whole objects, as kubectl and controllers make them.

use serde_json::{Value, json};

use super::*;
use crate::resources::DEPLOYMENTS;

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        subresource: "",
        now: "2026-12-03T04:00:00Z",
    }
}

fn config(replicas: i64, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "labels": labels},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_owned(),
                e["operation"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_apply_creates_and_owns_what_it_names() {
    let created = apply(
        &DEPLOYMENTS,
        None,
        &config(2, json!({"a": "1"})),
        writer("kubectl"),
        false,
    )
    .unwrap();
    assert_eq!(created["spec"]["replicas"], 2);
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], "2026-12-03T04:00:00Z");
    assert_eq!(entry["fieldsV1"]["f:metadata"], json!({"f:labels": {"f:a": {}}}));
    assert_eq!(entry["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
}

#[test]
fn a_field_the_applier_no_longer_names_goes_unless_another_manager_owns_it() {
    let live = apply(
        &DEPLOYMENTS,
        None,
        &config(2, json!({"a": "1", "b": "2"})),
        writer("kubectl"),
        false,
    )
    .unwrap();
    // someone else sets label c and takes label b by changing it
    let mut edited = live.clone();
    edited["metadata"]["labels"]["c"] = "3".into();
    edited["metadata"]["labels"]["b"] = "two".into();
    track_update(&DEPLOYMENTS, Some(&live), &mut edited, writer("kubectl-edit"));
    assert_eq!(
        managers(&edited),
        [
            ("kubectl".into(), "Apply".into()),
            ("kubectl-edit".into(), "Update".into())
        ]
    );
    // the applier drops a and b from its configuration
    let applied = apply(
        &DEPLOYMENTS,
        Some(&edited),
        &config(2, json!({})),
        writer("kubectl"),
        false,
    )
    .unwrap();
    assert_eq!(applied["metadata"]["labels"], json!({"b": "two", "c": "3"}));
}

#[test]
fn changing_another_manager_s_field_conflicts_unless_forced() {
    let live = apply(&DEPLOYMENTS, None, &config(2, json!({})), writer("kubectl"), false).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = 5.into();
    track_update(&DEPLOYMENTS, Some(&live), &mut scaled, writer("kubectl-scale"));
    // applying the same value again is no conflict: the field is shared
    let same = apply(
        &DEPLOYMENTS,
        Some(&scaled),
        &config(5, json!({})),
        writer("kubectl"),
        false,
    )
    .unwrap();
    assert_eq!(same["spec"]["replicas"], 5);
    let err = apply(
        &DEPLOYMENTS,
        Some(&scaled),
        &config(3, json!({})),
        writer("kubectl"),
        false,
    )
    .unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
    );
    let cause = &err.details.as_ref().unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldManagerConflict", ".spec.replicas")
    );
    let forced = apply(
        &DEPLOYMENTS,
        Some(&scaled),
        &config(3, json!({})),
        writer("kubectl"),
        true,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(
        managers(&forced).iter().all(|(m, _)| m != "kubectl-scale"),
        "the scaler owned only replicas, and lost it: {:?}",
        managers(&forced)
    );
}

#[test]
fn an_object_nobody_applied_is_owned_by_before_first_apply() {
    let mut live = config(2, json!({"team": "x"}));
    live["metadata"]["uid"] = "u".into();
    let err = apply(
        &DEPLOYMENTS,
        Some(&live),
        &config(4, json!({})),
        writer("kubectl"),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
    let applied = apply(
        &DEPLOYMENTS,
        Some(&live),
        &config(2, json!({})),
        writer("kubectl"),
        false,
    )
    .unwrap();
    assert_eq!(
        applied["metadata"]["labels"],
        json!({"team": "x"}),
        "a field it never named stays"
    );
    assert_eq!(
        managers(&applied),
        [
            ("kubectl".into(), "Apply".into()),
            ("before-first-apply".into(), "Update".into())
        ]
    );
}

#[test]
fn an_update_takes_what_it_changed_and_nobody_keeps_what_it_removed() {
    let mut created = config(1, json!({"a": "1"}));
    track_update(&DEPLOYMENTS, None, &mut created, writer("kubectl-create"));
    let fields = &created["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(fields["f:metadata"], json!({"f:labels": {".": {}, "f:a": {}}}));
    let mut relabelled = created.clone();
    relabelled["metadata"]["labels"] = json!({"b": "2"});
    track_update(&DEPLOYMENTS, Some(&created), &mut relabelled, writer("kubectl-label"));
    let entries = relabelled["metadata"]["managedFields"].as_array().unwrap();
    let create = entries.iter().find(|e| e["manager"] == "kubectl-create").unwrap();
    assert_eq!(
        create["fieldsV1"]["f:metadata"],
        json!({"f:labels": {}}),
        "a member with nothing under it"
    );
    let label = entries.iter().find(|e| e["manager"] == "kubectl-label").unwrap();
    assert_eq!(label["fieldsV1"], json!({"f:metadata": {"f:labels": {"f:b": {}}}}));
    // a write that changes nothing leaves the entries and their times alone
    let mut same = relabelled.clone();
    track_update(&DEPLOYMENTS, Some(&relabelled), &mut same, writer("other"));
    assert_eq!(
        same["metadata"]["managedFields"],
        relabelled["metadata"]["managedFields"]
    );
}

#[test]
fn an_apply_config_is_checked_before_anything_is_merged() {
    let mut wrong_version = config(1, json!({}));
    wrong_version["apiVersion"] = "apps/v1beta1".into();
    let err = apply(&DEPLOYMENTS, None, &wrong_version, writer("k"), false).unwrap_err();
    assert_eq!(err.message, "invalid object type: apps/v1beta1, Kind=Deployment");
    let mut with_managed = config(1, json!({}));
    with_managed["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(&DEPLOYMENTS, None, &with_managed, writer("k"), false)
            .unwrap_err()
            .message,
        "metadata.managedFields must be nil"
    );
    let mut duplicated = config(1, json!({}));
    duplicated["spec"]["template"]["spec"]["containers"] = json!([{"name": "c"}, {"name": "c"}]);
    let err = apply(&DEPLOYMENTS, None, &duplicated, writer("k"), false).unwrap_err();
    assert_eq!(err.code, 500, "upstream's answer");
    assert_eq!(
        err.message,
        "failed to create typed patch object (/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name=\"c\"]"
    );
}

#[test]
fn a_user_agent_names_its_manager() {
    assert_eq!(
        manager_from_user_agent("kubectl/v1.37.2 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
    assert_eq!(manager_from_user_agent(&"é".repeat(100)).len(), 128);
}
