//! Strategic merge patch for the served types: a JSON merge patch, except that lists with a
//! merge key are merged element by element (an element with `$patch: delete` removes its
//! match) instead of being replaced. Merge keys are those of upstream's types for the fields
//! these resources have.

use serde_json::{Map, Value};

/// The merge key of a list field, given a sample element (`ports` differs between Services
/// and containers).
fn merge_key(field: &str, sample: &Value) -> Option<&'static [&'static str]> {
    match field {
        "ports" if sample.get("containerPort").is_some() => Some(&["containerPort", "protocol"]),
        "ports" => Some(&["port", "protocol"]),
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "volumeMounts" => Some(&["name"]),
        "conditions" | "addresses" => Some(&["type"]),
        "ownerReferences" => Some(&["uid"]),
        _ => None,
    }
}

fn same_key(a: &Value, b: &Value, key: &[&str]) -> bool {
    key.iter().all(|k| {
        let (x, y) = (a.get(*k), b.get(*k));
        // an unset protocol means TCP, as defaulting would make it
        if *k == "protocol" {
            x.and_then(Value::as_str).unwrap_or("TCP") == y.and_then(Value::as_str).unwrap_or("TCP")
        } else {
            x == y
        }
    })
}

fn merge_list(field: &str, target: &mut Vec<Value>, patch: &[Value]) -> bool {
    let Some(key) = patch
        .first()
        .filter(|p| p.is_object())
        .and_then(|p| merge_key(field, p))
    else {
        return false;
    };
    for p in patch {
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match target.iter().position(|t| same_key(t, p, key)) {
            Some(i) if delete => {
                target.remove(i);
            }
            Some(i) => apply(&mut target[i], p),
            None if delete => {}
            None => target.push(p.clone()),
        }
    }
    true
}

/// Applies a strategic merge patch to `target` in place.
pub fn apply(target: &mut Value, patch: &Value) {
    let Some(patch_obj) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_obj = target.as_object_mut().expect("made an object above");
    for (field, value) in patch_obj {
        if field.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target_obj.remove(field);
            }
            Value::Object(_) => apply(target_obj.entry(field.clone()).or_insert(Value::Null), value),
            Value::Array(items) => {
                let merged = match target_obj.get_mut(field) {
                    Some(Value::Array(existing)) => merge_list(field, existing, items),
                    _ => false,
                };
                if !merged {
                    let kept: Vec<Value> = items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .cloned()
                        .collect();
                    target_obj.insert(field.clone(), Value::Array(kept));
                }
            }
            other => {
                target_obj.insert(field.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_ports_merge_by_port_and_protocol() {
        let mut svc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [
            {"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}});
        apply(
            &mut svc,
            &json!({"metadata": {"labels": {"b": "2", "a": null}}, "spec": {"ports": [
            {"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP", "$patch": "delete"}, {"name": "https", "port": 443}]}}),
        );
        assert_eq!(
            svc,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"ports": [
                {"name": "http", "port": 80, "nodePort": 30080, "targetPort": 8080}, {"name": "https", "port": 443}]}})
        );
    }

    #[test]
    fn conditions_merge_by_type_and_plain_lists_are_replaced() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}],
                                        "podIPs": [{"ip": "10.0.0.1"}]}});
        apply(
            &mut pod,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}], "podIPs": [{"ip": "10.0.0.2"}]}}),
        );
        assert_eq!(
            pod["status"]["conditions"],
            json!([{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}])
        );
        assert_eq!(pod["status"]["podIPs"], json!([{"ip": "10.0.0.2"}]));
    }
}
