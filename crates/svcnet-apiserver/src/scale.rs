//! The `/scale` subresource: an autoscaling/v1 Scale view of an object's `spec.replicas`, and
//! writing a Scale back into the object.

use serde_json::{Value, json};
use svcnet_core::status::Status;

/// `matchLabels` as a selector string (`a=b,c=d`), as the Scale's status carries it.
fn selector_string(obj: &Value) -> String {
    let mut terms: Vec<String> = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    terms.sort();
    terms.join(",")
}

/// The Scale of `obj`.
pub fn to_scale(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        // replicas is omitted when 0, as upstream's Scale (omitempty) shows it
        "spec": match obj["spec"]["replicas"].as_i64().unwrap_or(1) {
            0 => json!({}),
            n => json!({ "replicas": n }),
        },
        "status": { "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector_string(obj) },
    })
}

/// `obj` with the replicas of `scale`; the Scale's resourceVersion (if any) becomes the
/// write's precondition.
pub fn apply_scale(mut obj: Value, scale: &Value) -> Result<Value, Box<Status>> {
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if !(0..=i64::from(i32::MAX)).contains(&replicas) {
        return Err(Box::new(Status::invalid(
            "autoscaling",
            "Scale",
            obj["metadata"]["name"].as_str().unwrap_or(""),
            &[svcnet_core::field::FieldError::invalid(
                svcnet_core::field::FieldPath::new("spec").child("replicas"),
                replicas,
                "must be greater than or equal to 0",
            )],
        )));
    }
    obj["spec"]["replicas"] = json!(replicas);
    match scale["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty()) {
        Some(rv) => obj["metadata"]["resourceVersion"] = json!(rv),
        None => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": { "name": "web", "namespace": "default", "resourceVersion": "7" },
            "spec": { "replicas": 3, "selector": { "matchLabels": { "tier": "a", "app": "web" } } },
            "status": { "replicas": 2 },
        })
    }

    #[test]
    fn scale_shows_replicas_and_selector() {
        let s = to_scale(&deployment());
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({ "replicas": 2, "selector": "app=web,tier=a" }));
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn applying_a_scale_sets_replicas_and_checks_them() {
        let out = apply_scale(deployment(), &json!({ "spec": { "replicas": 5 } })).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert!(out["metadata"].get("resourceVersion").is_none());
        let pinned = apply_scale(
            deployment(),
            &json!({ "metadata": { "resourceVersion": "6" }, "spec": { "replicas": 1 } }),
        )
        .unwrap();
        assert_eq!(pinned["metadata"]["resourceVersion"], "6");
        let err = apply_scale(deployment(), &json!({ "spec": { "replicas": -1 } })).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
            "{}",
            err.message
        );
    }
}
