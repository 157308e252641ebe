//! The hand-over from client-side apply (`kubectl apply` without `--server-side`, which keeps
//! what it applied in the `kubectl.kubernetes.io/last-applied-configuration` annotation) to
//! server-side apply, as upstream does it for kubectl's applier: fields the annotation names
//! and the object still holds as named may be taken without a conflict, and each server-side
//! apply rewrites the annotation so a later client-side apply sees what was applied.

use serde_json::Value;

use super::fieldset::Set;
use super::schema::{Schema, TypeRef};
use super::typed;

/// The annotation client-side apply keeps its last configuration in.
pub const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn annotation_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
}

/// The fields `live`'s annotation last applied and `live` still holds unchanged, which a
/// conflicting apply may take (`None`: no usable annotation, for the kind's `api_version`).
pub fn handed_over(schema: &Schema, t: &TypeRef, api_version: &str, live: &Value) -> Option<Set> {
    let last: Value = serde_json::from_str(annotation_of(live)?).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let applied = typed::field_set(schema, t, &last).ok()?;
    let comparison = typed::compare(schema, t, &last, live).ok()?;
    Some(
        applied
            .difference(&comparison.modified)
            .difference(&comparison.added)
            .difference(&comparison.removed),
    )
}

/// Rewrites the annotation of `object`, if it has one, to `config` (without the annotation
/// itself), encoded as upstream encodes it: compact JSON with sorted keys and a newline.
pub fn follow(object: &mut Value, config: &Value) {
    if annotation_of(object).is_none() {
        return;
    }
    let mut applied = config.clone();
    if let Some(annotations) = applied
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(ANNOTATION);
    }
    // upstream's encoder ends the document with a newline
    let text = format!("{}\n", sorted(&applied));
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(ANNOTATION.into(), Value::String(text));
    }
}

/// `value` with every object's keys in sorted order (Go encodes maps so).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> TypeRef {
        Schema::get().kind("apps/v1", "Deployment").unwrap()
    }

    fn with_last_applied(object: Value, last: &Value) -> Value {
        let mut object = object;
        object["metadata"]["annotations"] = json!({ ANNOTATION: last.to_string() });
        object
    }

    #[test]
    fn what_was_last_applied_and_is_unchanged_is_handed_over() {
        let last = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "1", "b": "1"}},
                          "spec": {"replicas": 2}});
        // someone changed label b since; replicas and label a are as applied
        let live = with_last_applied(
            json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2, "paused": true}}),
            &last,
        );
        let set = handed_over(Schema::get(), &deployment(), "apps/v1", &live).unwrap();
        let fields = set.to_fields_v1();
        assert!(fields["f:spec"]["f:replicas"].is_object(), "{fields}");
        assert!(fields["f:metadata"]["f:labels"]["f:a"].is_object(), "{fields}");
        assert!(
            fields["f:metadata"]["f:labels"].get("f:b").is_none(),
            "a changed field is not handed over: {fields}"
        );
        assert!(fields["f:spec"].get("f:paused").is_none(), "{fields}");
        // another version, or no annotation: nothing
        assert!(handed_over(Schema::get(), &deployment(), "apps/v1beta1", &live).is_none());
        assert!(handed_over(Schema::get(), &deployment(), "apps/v1", &json!({"metadata": {}})).is_none());
    }

    #[test]
    fn an_apply_rewrites_an_existing_annotation_only() {
        let config = json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "annotations": {ANNOTATION: "old", "z": "1"}}});
        let mut annotated = json!({"metadata": {"annotations": {ANNOTATION: "{}"}}});
        follow(&mut annotated, &config);
        assert_eq!(
            annotated["metadata"]["annotations"][ANNOTATION],
            "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{\"z\":\"1\"},\"name\":\"web\"}}\n"
        );
        let mut plain = json!({"metadata": {"annotations": {"z": "1"}}});
        follow(&mut plain, &config);
        assert_eq!(plain, json!({"metadata": {"annotations": {"z": "1"}}}));
    }
}
