//! Upstream's checks of a Pod's spec that the lab and clients rely on: volumes and mounts
//! ([`super::pod_volumes`]), containers given, each named (a unique RFC 1123 label) with an
//! image, known restart and image pull policies, container ports in range with known
//! protocols, and the DNS policy and config the lab's
//! kubelet writes `resolv.conf` from. Paths and messages are upstream's (compared
//! with kube-apiserver 1.37 by the differential tests). Works on JSON, after defaulting.

use std::collections::HashSet;

use serde_json::Value;

use crate::field::{FieldError, FieldPath};
use crate::names;

const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH_PATHS: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// The errors of a required name that must be an RFC 1123 label (a container's, a volume's).
pub(super) fn label_name(name: &str, path: &FieldPath) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(path.clone(), "")];
    }
    names::dns1123_label(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path.clone(), name, msg))
        .collect()
}

/// The errors of a Pod's `spec` (at `path`).
pub fn validate_pod_spec(spec: &Value, path: &FieldPath) -> Vec<FieldError> {
    let (volumes, mut errs) = super::pod_volumes::validate_volumes(&spec["volumes"], &path.child("volumes"));
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
            &volumes,
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
    // defaulted to ClusterFirst when unset
    if let Some(policy) = spec["dnsPolicy"].as_str()
        && !DNS_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            path.child("dnsPolicy"),
            policy,
            &DNS_POLICIES,
        ));
    }
    errs.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    errs
}

/// `dnsConfig`: required (with a nameserver) under dnsPolicy None; at most three valid
/// nameservers, 32 search domains of at most 2048 characters in all, and named options.
fn validate_dns_config(spec: &Value, path: &FieldPath) -> Vec<FieldError> {
    let config = &spec["dnsConfig"];
    let strings = |field: &str| -> Vec<&str> {
        config[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    let listed = |items: &[&str]| {
        let owned: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
        crate::field::BadValue::strings(Some(&owned))
    };
    let (nameservers, searches) = (strings("nameservers"), strings("searches"));
    if spec["dnsPolicy"] == "None" {
        if config.is_null() {
            return vec![FieldError::required(
                path.clone(),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )];
        }
        if nameservers.is_empty() {
            return vec![FieldError::required(
                path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )];
        }
    }
    let mut errs = Vec::new();
    if config.is_null() {
        return errs;
    }
    if nameservers.len() > MAX_NAMESERVERS {
        errs.push(FieldError::invalid(
            path.child("nameservers"),
            listed(&nameservers),
            format!("must not have more than {MAX_NAMESERVERS} nameservers"),
        ));
    }
    for (i, server) in nameservers.iter().enumerate() {
        let problem = match crate::ip::parse_ip_sloppy(server) {
            None => Some(crate::service::cluster_ips::INVALID_IP_MSG),
            Some(_) => crate::ip::strict_ip_problem(server),
        };
        if let Some(problem) = problem {
            errs.push(FieldError::invalid(
                path.child("nameservers").index(i),
                *server,
                problem,
            ));
        }
    }
    if searches.len() > MAX_SEARCH_PATHS {
        errs.push(FieldError::invalid(
            path.child("searches"),
            listed(&searches),
            format!("must not have more than {MAX_SEARCH_PATHS} search paths"),
        ));
    }
    if searches.join(" ").len() > MAX_SEARCH_CHARS {
        errs.push(FieldError::invalid(
            path.child("searches"),
            listed(&searches),
            format!("must not have more than {MAX_SEARCH_CHARS} characters (including spaces) in the search list"),
        ));
    }
    for (i, search) in searches.iter().enumerate().filter(|(_, s)| **s != ".") {
        let search = search.strip_suffix('.').unwrap_or(search);
        for message in names::dns1123_subdomain_with_underscore(search) {
            errs.push(FieldError::invalid(path.child("searches").index(i), search, message));
        }
    }
    for (i, option) in config["options"].as_array().into_iter().flatten().enumerate() {
        if option["name"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(
                path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

fn validate_container(
    container: &Value,
    path: &FieldPath,
    seen: &mut HashSet<String>,
    volumes: &HashSet<String>,
) -> Vec<FieldError> {
    let name = container["name"].as_str().unwrap_or("");
    let mut errs = label_name(name, &path.child("name"));
    if !name.is_empty() && !seen.insert(name.to_owned()) {
        errs.push(FieldError::duplicate(path.child("name"), name));
    }
    if container["image"].as_str().is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(path.child("image"), ""));
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
    errs.extend(super::pod_volumes::validate_mounts(
        &container["volumeMounts"],
        volumes,
        &path.child("volumeMounts"),
    ));
    if let Some(policy) = container["imagePullPolicy"].as_str()
        && !PULL_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            path.child("imagePullPolicy"),
            policy,
            &PULL_POLICIES,
        ));
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

    #[test]
    fn dns_policy_and_config_as_upstream_checks_them() {
        let with = |extra: Value| {
            let mut spec = json!({ "containers": [{ "name": "c", "image": "x" }] });
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            errors(spec)
        };
        assert_eq!(
            with(json!({ "dnsPolicy": "Sometimes" })),
            [
                r#"spec.dnsPolicy: Unsupported value: "Sometimes": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None""#
            ]
        );
        assert_eq!(
            with(json!({ "dnsPolicy": "None" })),
            ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
        );
        assert_eq!(
            with(json!({ "dnsPolicy": "None", "dnsConfig": { "searches": ["a"] } })),
            [
                "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
            ]
        );
        assert!(with(json!({ "dnsPolicy": "None", "dnsConfig": { "nameservers": ["1.1.1.1"], "searches": ["_srv.example.com.", "."] } })).is_empty());
        assert_eq!(
            with(json!({ "dnsConfig": { "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"] } })),
            [
                r#"spec.dnsConfig.nameservers: Invalid value: ["1.1.1.1","2.2.2.2","3.3.3.3","4.4.4.4"]: must not have more than 3 nameservers"#
            ]
        );
        assert_eq!(
            with(json!({ "dnsConfig": { "nameservers": ["not-an-ip", "010.1.1.1"], "options": [{ "value": "1" }] } })),
            [
                r#"spec.dnsConfig.nameservers[0]: Invalid value: "not-an-ip": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#,
                r#"spec.dnsConfig.nameservers[1]: Invalid value: "010.1.1.1": must not have leading 0s"#,
                "spec.dnsConfig.options[0]: Required value: must not be empty",
            ]
        );
        let bad = with(json!({ "dnsConfig": { "searches": ["Bad_Domain"] } }));
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].starts_with(
                r#"spec.dnsConfig.searches[0]: Invalid value: "Bad_Domain": a lowercase RFC 1123 subdomain"#
            ),
            "{bad:?}"
        );
    }
}
