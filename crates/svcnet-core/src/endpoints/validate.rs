//! Upstream's checks of an EndpointSlice: a known address type, each endpoint with addresses
//! of that type, and ports with known protocols. Paths and messages are upstream's
//! (compared with kube-apiserver 1.37 by the differential tests). Works on JSON.

use std::net::IpAddr;

use serde_json::Value;

use crate::field::{FieldError, FieldPath};
use crate::names;

const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const BAD_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// The errors of an EndpointSlice.
pub fn validate_endpoint_slice(slice: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let address_type = slice["addressType"].as_str().unwrap_or("");
    if !ADDRESS_TYPES.contains(&address_type) {
        if address_type.is_empty() {
            errs.push(FieldError::required(FieldPath::new("addressType"), ""));
        } else {
            errs.push(FieldError::not_supported(
                FieldPath::new("addressType"),
                address_type,
                &ADDRESS_TYPES,
            ));
        }
        // addresses cannot be checked against an unknown type
        return errs;
    }
    for (i, endpoint) in slice["endpoints"].as_array().into_iter().flatten().enumerate() {
        let path = FieldPath::new("endpoints").index(i).child("addresses");
        let addresses = endpoint["addresses"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if addresses.is_empty() {
            errs.push(FieldError::required(path.clone(), ""));
        }
        for (j, address) in addresses.iter().enumerate() {
            errs.extend(validate_address(address.as_str().unwrap_or(""), address_type, &path, j));
        }
    }
    for (i, port) in slice["ports"].as_array().into_iter().flatten().enumerate() {
        if let Some(protocol) = port["protocol"].as_str()
            && !PROTOCOLS.contains(&protocol)
        {
            let path = FieldPath::new("ports").index(i).child("protocol");
            errs.push(FieldError::not_supported(path, protocol, &PROTOCOLS));
        }
    }
    errs
}

/// One address of an endpoint (`addresses` at `path`, index `j`). A valid IP of the other
/// family is reported on the list, as upstream does.
fn validate_address(address: &str, address_type: &str, path: &FieldPath, j: usize) -> Vec<FieldError> {
    if address_type == "FQDN" {
        return names::dns1123_subdomain(address)
            .into_iter()
            .map(|msg| FieldError::invalid(path.index(j), address, msg))
            .collect();
    }
    let parsed = crate::ip::parse_ip_sloppy(address);
    if parsed.is_some() {
        // new addresses are parsed strictly (upstream's default since 1.33); an IPv6 one
        // must also be written canonically
        if let Some(problem) = crate::ip::strict_ip_problem(address) {
            return vec![FieldError::invalid(path.index(j), address, problem)];
        }
        if address_type == "IPv6"
            && let Some(ip) = parsed.filter(|ip| ip.is_ipv6() && ip.to_string() != address)
        {
            return vec![FieldError::invalid(
                path.index(j),
                address,
                format!("must be in canonical form (\"{ip}\")"),
            )];
        }
    }
    match parsed {
        None => vec![FieldError::invalid(path.index(j), address, BAD_IP)],
        Some(IpAddr::V6(_)) if address_type == "IPv4" => {
            vec![FieldError::invalid(path.clone(), address, "must be an IPv4 address")]
        }
        Some(IpAddr::V4(_)) if address_type == "IPv6" => {
            vec![FieldError::invalid(path.clone(), address, "must be an IPv6 address")]
        }
        Some(_) => Vec::new(),
    }
}

/// The warnings upstream returns with an EndpointSlice it accepted: FQDN slices are
/// deprecated (on create), and addresses in a non-standard form (slices not written by the
/// EndpointSlice controllers, which write canonical addresses).
pub fn endpoint_slice_warnings(obj: &serde_json::Value, create: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if create && obj["addressType"] == "FQDN" {
        warnings.push("spec.addressType: FQDN endpoints are deprecated".to_owned());
    }
    let managed_by = obj["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"].as_str();
    if matches!(
        managed_by,
        Some("endpointslice-controller.k8s.io" | "endpointslicemirroring-controller.k8s.io")
    ) {
        return warnings;
    }
    for (i, endpoint) in obj["endpoints"].as_array().into_iter().flatten().enumerate() {
        for (j, address) in endpoint["addresses"].as_array().into_iter().flatten().enumerate() {
            if let Some(address) = address.as_str() {
                let path = format!("endpoints[{i}].addresses[{j}]");
                warnings.extend(crate::service::warnings::ip_warnings(&path, address));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(slice: Value) -> Vec<String> {
        validate_endpoint_slice(&slice)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn slice(address_type: &str, addresses: Value) -> Value {
        json!({ "addressType": address_type, "endpoints": [{ "addresses": addresses }],
                "ports": [{ "port": 80, "protocol": "TCP" }] })
    }

    #[test]
    fn good_slices_pass() {
        assert!(errors(slice("IPv4", json!(["10.0.0.1"]))).is_empty());
        assert!(errors(slice("IPv6", json!(["fd00::1"]))).is_empty());
        assert!(errors(slice("FQDN", json!(["example.com"]))).is_empty());
    }

    #[test]
    fn upstream_paths_and_messages() {
        assert_eq!(
            errors(slice("IPv5", json!(["10.0.0.1"]))),
            [r#"addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6""#]
        );
        assert_eq!(
            errors(slice("IPv4", json!([]))),
            ["endpoints[0].addresses: Required value"]
        );
        assert_eq!(
            errors(slice("IPv4", json!(["not-an-ip"]))),
            [format!(
                r#"endpoints[0].addresses[0]: Invalid value: "not-an-ip": {BAD_IP}"#
            )]
        );
        assert_eq!(
            errors(slice("IPv4", json!(["fd00::5"]))),
            [r#"endpoints[0].addresses: Invalid value: "fd00::5": must be an IPv4 address"#]
        );
        let mut bad_port = slice("IPv4", json!(["10.0.0.1"]));
        bad_port["ports"][0]["protocol"] = json!("FOO");
        assert_eq!(
            errors(bad_port),
            [r#"ports[0].protocol: Unsupported value: "FOO": supported values: "SCTP", "TCP", "UDP""#]
        );
    }
}
