//! The `pods/binding` subresource: how a scheduler assigns a pending pod to a node (a pod's
//! `spec.nodeName` cannot be changed by an update). Answers are upstream's, compared with
//! kube-apiserver 1.37: Success (201) as a Status, a name that differs from the URL's is 400,
//! a bad target is 500 with the aggregated field errors, a bound or terminating pod is a
//! Conflict on `pods/binding`, a UID that is not the pod's a Conflict on `pods`.

use serde_json::{Value, json};
use svcnet_core::field::{FieldError, FieldPath};
use svcnet_core::status::Status;

type Reply<T> = Result<T, Box<Status>>;

/// The Status a successful binding answers with.
pub fn success() -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 })
}

/// `pod` bound as `binding` (posted to the URL of pod `url_name`) asks, at `now`: its node,
/// the binding's annotations, and the PodScheduled condition.
pub fn assign(mut pod: Value, binding: &Value, url_name: &str, now: &str) -> Reply<Value> {
    if binding["metadata"]["name"].as_str().unwrap_or("") != url_name {
        return Err(Box::new(Status::bad_request(
            "name in URL does not match name in Binding object",
        )));
    }
    let target = &binding["target"];
    let node = target["name"].as_str().unwrap_or("");
    let mut errors = Vec::new();
    let kind = target["kind"].as_str().unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        errors.push(FieldError::not_supported(
            FieldPath::new("target").child("kind"),
            kind,
            &["Node", "<empty>"],
        ));
    }
    if node.is_empty() {
        errors.push(FieldError::required(FieldPath::new("target").child("name"), ""));
    }
    if !errors.is_empty() {
        // upstream returns the aggregate as a plain error, hence a 500 without a reason
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let mut status = Status::internal("");
        status.message = format!("[{}]", text.join(", "));
        status.reason = String::new();
        status.details = None;
        return Err(Box::new(status));
    }
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    if let Some(wanted) = binding["metadata"]["uid"].as_str().filter(|u| !u.is_empty())
        && wanted != uid
    {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let mut status = Status::conflict("", "pods", url_name);
        status.message = format!(
            "Operation cannot be fulfilled on pods \"{url_name}\": StorageError: invalid object, Code: 4, \
             Key: /registry/pods/{namespace}/{url_name}, ResourceVersion: 0, AdditionalErrorMsg: \
             Precondition failed: UID in precondition: {wanted}, UID in object meta: {uid}"
        );
        return Err(Box::new(status));
    }
    let conflict = |why: String| {
        let mut status = Status::conflict("", "pods/binding", url_name);
        status.message = format!("Operation cannot be fulfilled on pods/binding \"{url_name}\": {why}");
        Box::new(status)
    };
    if pod["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return Err(conflict(format!(
            "pod {url_name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(conflict(format!(
            "pod {url_name} is already assigned to node \"{bound}\""
        )));
    }
    pod["spec"]["nodeName"] = json!(node);
    if let Some(annotations) = binding["metadata"]["annotations"].as_object() {
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = json!({});
        }
        for (k, v) in annotations {
            pod["metadata"]["annotations"][k] = v.clone();
        }
    }
    set_scheduled(&mut pod, now);
    Ok(pod)
}

fn set_scheduled(pod: &mut Value, now: &str) {
    let scheduled =
        json!({ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now });
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let conditions = &mut pod["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("an array");
    match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(c) if c["status"] == "True" => {}
        Some(c) => *c = scheduled,
        None => list.push(scheduled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({ "metadata": { "name": "p", "namespace": "ns", "uid": "u1" }, "spec": { "containers": [] } })
    }

    fn binding(name: &str, node: &str) -> Value {
        json!({ "metadata": { "name": name }, "target": { "kind": "Node", "name": node } })
    }

    #[test]
    fn a_binding_sets_the_node_annotations_and_condition() {
        let mut b = binding("p", "n1");
        b["metadata"]["annotations"] = json!({ "a": "b" });
        let bound = assign(pod(), &b, "p", "T").unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(bound["metadata"]["annotations"]["a"], "b");
        assert_eq!(
            bound["status"]["conditions"],
            json!([{ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "T" }])
        );
    }

    #[test]
    fn refusals_read_as_upstream_s() {
        let err = assign(pod(), &binding("q", "n1"), "p", "T").unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "name in URL does not match name in Binding object")
        );

        let bad = json!({ "metadata": { "name": "p" }, "target": { "kind": "Pod" } });
        let err = assign(pod(), &bad, "p", "T").unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            r#"[target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>", target.name: Required value]"#
        );

        let bound = assign(pod(), &binding("p", "n1"), "p", "T").unwrap();
        let err = assign(bound, &binding("p", "n2"), "p", "T").unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            r#"Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n1""#
        );
        assert_eq!(err.details.as_ref().unwrap().kind, "pods/binding");

        let mut terminating = pod();
        terminating["metadata"]["deletionTimestamp"] = json!("T");
        let err = assign(terminating, &binding("p", "n1"), "p", "T").unwrap_err();
        assert!(
            err.message
                .ends_with("pod p is being deleted, cannot be assigned to a host"),
            "{}",
            err.message
        );

        let mut other = binding("p", "n1");
        other["metadata"]["uid"] = json!("u2");
        let err = assign(pod(), &other, "p", "T").unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.ends_with("UID in precondition: u2, UID in object meta: u1"),
            "{}",
            err.message
        );
    }
}
