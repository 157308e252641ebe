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

/// Merges `patch` into the list `target` by the field's merge key, ordering the result as
/// upstream does: the patch's elements in patch order and the live list's other elements in
/// their order, interleaved by their places in the live list; where an element is new (no
/// place in it), the patch's element comes first.
fn merge_list(field: &str, target: &mut Vec<Value>, patch: &[Value]) -> bool {
    let Some(key) = patch
        .first()
        .filter(|p| p.is_object())
        .and_then(|p| merge_key(field, p))
    else {
        return false;
    };
    let live = std::mem::take(target);
    // (place in the live list, element) of what the patch names, in patch order
    let mut patched: Vec<(Option<usize>, Value)> = Vec::new();
    let mut named = vec![false; live.len()];
    for p in patch {
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        let place = live.iter().position(|t| same_key(t, p, key));
        if let Some(i) = place {
            named[i] = true;
        }
        match place {
            _ if delete => {}
            Some(i) => {
                let mut element = live[i].clone();
                apply(&mut element, p);
                patched.push((Some(i), element));
            }
            None => patched.push((None, p.clone())),
        }
    }
    let mut live_only = live.into_iter().enumerate().filter(|(i, _)| !named[*i]).peekable();
    let mut patched = patched.into_iter().peekable();
    loop {
        let take_live = match (live_only.peek(), patched.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((live_place, _)), Some((patch_place, _))) => patch_place.is_some_and(|p| *live_place < p),
        };
        let next = if take_live {
            live_only.next().map(|(_, v)| v)
        } else {
            patched.next().map(|(_, v)| v)
        };
        target.extend(next);
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
    fn new_elements_go_before_the_live_list_s_others_as_upstream_orders_them() {
        let mut svc = json!({ "spec": { "ports": [{ "port": 80 }, { "port": 90 }] } });
        apply(
            &mut svc,
            &json!({ "spec": { "ports": [{ "port": 81 }, { "port": 90, "name": "b" }] } }),
        );
        assert_eq!(
            svc["spec"]["ports"],
            json!([{ "port": 81 }, { "port": 80 }, { "port": 90, "name": "b" }])
        );
    }

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
