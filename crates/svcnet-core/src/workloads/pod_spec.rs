//! Upstream's checks of a Pod's spec that the lab and clients rely on: containers given, each
//! named (a unique RFC 1123 label) with an image, known restart and image pull policies, and
//! container ports in range with known protocols. Paths and messages are upstream's (compared
//! with kube-apiserver 1.37 by the differential tests). Works on JSON, after defaulting.

use std::collections::HashSet;

use serde_json::Value;

use crate::field::{FieldError, FieldPath};
use crate::names;

const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// The errors of a Pod's `spec` (at `path`).
pub fn validate_pod_spec(spec: &Value, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let containers = spec["containers"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if containers.is_empty() {
        errs.push(FieldError::required(path.child("containers"), ""));
    }
    let mut seen = HashSet::new();
    for (i, container) in containers.iter().enumerate() {
        errs.extend(validate_container(
            container,
            &path.child("containers").index(i),
            &mut seen,
        ));
    }
    if let Some(policy) = spec["restartPolicy"].as_str()
        && !RESTART_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            path.child("restartPolicy"),
            policy,
            &RESTART_POLICIES,
        ));
    }
    errs
}

fn validate_container(container: &Value, path: &FieldPath, seen: &mut HashSet<String>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = container["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        for msg in names::dns1123_label(name) {
            errs.push(FieldError::invalid(path.child("name"), name, msg));
        }
        if !seen.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(path.child("name"), name));
        }
    }
    if container["image"].as_str().is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(path.child("image"), ""));
    }
    if let Some(policy) = container["imagePullPolicy"].as_str()
        && !PULL_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            path.child("imagePullPolicy"),
            policy,
            &PULL_POLICIES,
        ));
    }
    for (i, port) in container["ports"].as_array().into_iter().flatten().enumerate() {
        let at = path.child("ports").index(i);
        match port["containerPort"].as_i64().unwrap_or(0) {
            0 => errs.push(FieldError::required(at.child("containerPort"), "")),
            n => {
                for msg in names::port_number(n) {
                    errs.push(FieldError::invalid(at.child("containerPort"), n, msg));
                }
            }
        }
        if let Some(protocol) = port["protocol"].as_str()
            && !PROTOCOLS.contains(&protocol)
        {
            errs.push(FieldError::not_supported(at.child("protocol"), protocol, &PROTOCOLS));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(spec: Value) -> Vec<String> {
        validate_pod_spec(&spec, &FieldPath::new("spec"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_spec_passes() {
        let spec = json!({ "containers": [{ "name": "c", "image": "x", "imagePullPolicy": "Always",
                                           "ports": [{ "containerPort": 80, "protocol": "TCP" }] }],
                           "restartPolicy": "Never" });
        assert!(errors(spec).is_empty());
    }

    #[test]
    fn upstream_paths_and_messages() {
        assert_eq!(errors(json!({ "containers": [] })), ["spec.containers: Required value"]);
        assert_eq!(
            errors(json!({ "containers": [{ "name": "c" }] })),
            ["spec.containers[0].image: Required value"]
        );
        assert_eq!(
            errors(json!({ "containers": [{ "name": "c", "image": "x" }, { "name": "c", "image": "y" }] })),
            [r#"spec.containers[1].name: Duplicate value: "c""#]
        );
        assert_eq!(
            errors(json!({ "containers": [{ "name": "c", "image": "x", "ports": [{ "containerPort": 0 }] }] })),
            ["spec.containers[0].ports[0].containerPort: Required value"]
        );
        assert_eq!(
            errors(json!({ "containers": [{ "name": "c", "image": "x", "imagePullPolicy": "Sometimes" }] })),
            [
                r#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#
            ]
        );
        assert_eq!(
            errors(json!({ "containers": [{ "name": "c", "image": "x" }], "restartPolicy": "Sometimes" })),
            [r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#]
        );
    }
}
