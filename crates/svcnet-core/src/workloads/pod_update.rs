//! Upstream's rules for updating a Pod: its spec is fixed once created, except container and
//! init container images, `activeDeadlineSeconds` (set or lowered), added tolerations (and
//! existing ones' `tolerationSeconds`), removed scheduling gates, and a negative
//! `terminationGracePeriodSeconds` raised to 1. `spec.nodeName` is set through the binding
//! subresource only. Works on JSON after defaulting; messages are upstream's, except that the
//! list of changed fields replaces upstream's Go-struct diff.

use serde_json::{Value, json};

use crate::field::{BadValue, FieldError, FieldPath};

/// The fields an update may change, as upstream lists them.
const UPDATABLE: [&str; 5] = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Containers may not come or go; each keeps an image without surrounding whitespace.
/// `true`: stop here, as upstream does when the number changed.
fn container_errors(new: &Value, old: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> bool {
    let (new, old) = (list(new), list(old));
    if new.len() != old.len() {
        errs.push(FieldError::forbidden(
            path.clone(),
            "pod updates may not add or remove containers",
        ));
        return true;
    }
    for (i, c) in new.iter().enumerate() {
        let image = c["image"].as_str().unwrap_or("");
        if image.is_empty() {
            errs.push(FieldError::required(path.index(i).child("image"), ""));
        } else if image.trim() != image {
            errs.push(FieldError::invalid(
                path.index(i).child("image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    false
}

/// The errors of updating `old` (a stored Pod) to `new`.
pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let spec_path = FieldPath::new("spec");
    let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
    let mut errs = Vec::new();
    for field in ["containers", "initContainers"] {
        if container_errors(&new_spec[field], &old_spec[field], &spec_path.child(field), &mut errs) {
            return errs;
        }
    }
    let deadline_path = spec_path.child("activeDeadlineSeconds");
    match (
        new_spec["activeDeadlineSeconds"].as_i64(),
        old_spec["activeDeadlineSeconds"].as_i64(),
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                deadline_path,
                n,
                crate::names::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                deadline_path,
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(
                deadline_path,
                BadValue::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }
    // every existing toleration stays, but for its tolerationSeconds
    let new_tolerations = list(&new_spec["tolerations"]);
    for old_toleration in list(&old_spec["tolerations"]) {
        let kept = new_tolerations.iter().any(|t| {
            let mut o = old_toleration.clone();
            o["tolerationSeconds"] = t["tolerationSeconds"].clone();
            strip_nulls(&o) == strip_nulls(t)
        });
        if !kept {
            errs.push(FieldError::forbidden(
                spec_path.child("tolerations"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    if new_spec == old_spec {
        return errs;
    }
    // the spec with what may change taken back from the stored one
    let mut munged = new_spec.clone();
    for field in ["containers", "initContainers"] {
        if let Some(containers) = munged[field].as_array_mut() {
            for (c, o) in containers.iter_mut().zip(list(&old_spec[field])) {
                c["image"] = o["image"].clone();
            }
        }
    }
    for field in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
        set_or_remove(&mut munged, field, &old_spec[field]);
    }
    if old_spec["terminationGracePeriodSeconds"]
        .as_i64()
        .is_some_and(|t| t < 0)
        && munged["terminationGracePeriodSeconds"].as_i64() == Some(1)
    {
        munged["terminationGracePeriodSeconds"] = old_spec["terminationGracePeriodSeconds"].clone();
    }
    let changed = changed_fields(&munged, old_spec);
    if !changed.is_empty() {
        errs.push(FieldError::forbidden(
            spec_path,
            format!(
                "pod updates may not change fields other than {}\nchanged: {}",
                UPDATABLE.join(","),
                changed.join(", ")
            ),
        ));
    }
    errs
}

fn set_or_remove(spec: &mut Value, field: &str, value: &Value) {
    if let Some(map) = spec.as_object_mut() {
        if value.is_null() {
            map.remove(field);
        } else {
            map.insert(field.to_owned(), value.clone());
        }
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The spec fields (top level) whose values differ, absent and null alike.
fn changed_fields(new: &Value, old: &Value) -> Vec<String> {
    let empty = json!({});
    let (n, o) = (
        new.as_object().unwrap_or_else(|| empty.as_object().expect("object")),
        old.as_object().unwrap_or_else(|| empty.as_object().expect("object")),
    );
    let mut keys: Vec<&String> = n.keys().chain(o.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| strip_nulls(n.get(*k).unwrap_or(&Value::Null)) != strip_nulls(o.get(*k).unwrap_or(&Value::Null)))
        .map(|k| format!("spec.{k}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({ "metadata": { "name": "p" }, "spec": spec })
    }

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn images_and_deadlines_may_change_the_node_may_not() {
        let old = pod(json!({ "nodeName": "n1", "containers": [{ "name": "c", "image": "a" }] }));
        let image = pod(
            json!({ "nodeName": "n1", "containers": [{ "name": "c", "image": "b" }], "activeDeadlineSeconds": 30 }),
        );
        assert!(validate_pod_update(&image, &old).is_empty());
        let moved = pod(json!({ "nodeName": "n2", "containers": [{ "name": "c", "image": "a" }] }));
        let errs = messages(validate_pod_update(&moved, &old));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with(
                "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
            ),
            "{errs:?}"
        );
        assert!(errs[0].ends_with("changed: spec.nodeName"), "{errs:?}");
    }

    #[test]
    fn containers_tolerations_and_deadlines_follow_upstream() {
        let old = pod(
            json!({ "containers": [{ "name": "c", "image": "a" }], "activeDeadlineSeconds": 10,
                              "tolerations": [{ "key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5 }] }),
        );
        let more = pod(json!({ "containers": [{ "name": "c", "image": "a" }, { "name": "d", "image": "a" }] }));
        assert_eq!(
            messages(validate_pod_update(&more, &old)),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let later = pod(
            json!({ "containers": [{ "name": "c", "image": "a" }], "activeDeadlineSeconds": 20,
                                "tolerations": [{ "key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5 }] }),
        );
        assert_eq!(
            messages(validate_pod_update(&later, &old)),
            ["spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"]
        );
        let retimed = pod(
            json!({ "containers": [{ "name": "c", "image": "a" }], "activeDeadlineSeconds": 10,
                                  "tolerations": [{ "key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60 },
                                                  { "key": "x", "operator": "Exists" }] }),
        );
        assert!(validate_pod_update(&retimed, &old).is_empty());
        let dropped = pod(json!({ "containers": [{ "name": "c", "image": "a" }], "activeDeadlineSeconds": 10 }));
        assert_eq!(
            messages(validate_pod_update(&dropped, &old)),
            ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
    }
}
