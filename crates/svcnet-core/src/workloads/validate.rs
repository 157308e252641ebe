//! The checks upstream makes on a Deployment's or ReplicaSet's spec before storing it (the
//! ones a controller relies on): a selector that matches the template's labels, a
//! non-negative replica count and at least one container.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::field::{BadValue, FieldError, FieldPath};

/// Whether `selector` selects `labels` (matchLabels and matchExpressions).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or(&[]);
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// A label map as upstream shows it: its JSON, keys sorted.
fn go_map(labels: &BTreeMap<String, String>) -> BadValue {
    BadValue::Raw(serde_json::to_string(labels).expect("labels serialize"))
}

/// Errors in a workload's `spec` (replicas, selector, template).
pub fn validate_spec(
    replicas: Option<i32>,
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
) -> Vec<FieldError> {
    let spec = FieldPath::new("spec");
    let mut errs = Vec::new();
    if let Some(r) = replicas.filter(|r| *r < 0) {
        errs.push(FieldError::invalid(
            spec.child("replicas"),
            BadValue::Int(i64::from(r)),
            "must be greater than or equal to 0",
        ));
    }
    let empty_selector = selector.is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty) && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    });
    if empty_selector {
        errs.push(FieldError::required(spec.child("selector"), ""));
    }
    let labels = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if let Some(sel) = selector.filter(|_| !empty_selector)
        && !selects(sel, &labels)
    {
        errs.push(FieldError::invalid(
            spec.child("template").child("metadata").child("labels"),
            go_map(&labels),
            "`selector` does not match template `labels`",
        ));
    }
    if template
        .and_then(|t| t.spec.as_ref())
        .is_none_or(|s| s.containers.is_empty())
    {
        errs.push(FieldError::required(
            spec.child("template").child("spec").child("containers"),
            "",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(v: serde_json::Value) -> (Option<i32>, Option<LabelSelector>, Option<PodTemplateSpec>) {
        (
            v["replicas"].as_i64().map(|r| r as i32),
            serde_json::from_value(v["selector"].clone()).ok(),
            serde_json::from_value(v["template"].clone()).ok(),
        )
    }

    fn messages(v: serde_json::Value) -> Vec<String> {
        let (r, s, t) = parts(v);
        validate_spec(r, s.as_ref(), t.as_ref())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_spec_passes() {
        let ok = json!({ "replicas": 2, "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web", "x": "y" } }, "spec": { "containers": [{ "name": "c" }] } } });
        assert_eq!(messages(ok), Vec::<String>::new());
    }

    #[test]
    fn bad_specs_get_upstreams_messages() {
        let bad = json!({ "replicas": -1, "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "api" } }, "spec": { "containers": [] } } });
        assert_eq!(
            messages(bad),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match template `labels`",
                "spec.template.spec.containers: Required value",
            ]
        );
        let no_selector = json!({ "template": { "spec": { "containers": [{ "name": "c" }] } } });
        assert_eq!(messages(no_selector), ["spec.selector: Required value"]);
    }

    #[test]
    fn expressions_select() {
        let sel: LabelSelector = serde_json::from_value(json!({ "matchExpressions": [
            { "key": "tier", "operator": "In", "values": ["a", "b"] }, { "key": "old", "operator": "DoesNotExist" } ] }))
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(selects(&sel, &labels(&[("tier", "b")])));
        assert!(!selects(&sel, &labels(&[("tier", "c")])));
        assert!(!selects(&sel, &labels(&[("tier", "a"), ("old", "1")])));
    }
}
