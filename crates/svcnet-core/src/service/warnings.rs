//! The warnings upstream's API server returns with a Service it accepted (HTTP `Warning`
//! headers, which kubectl prints): deprecated fields and annotations, fields the Service's type
//! ignores, and addresses written in a non-standard or non-canonical form.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use crate::endpoints::hints::{ANNOTATION_TOPOLOGY_AWARE_HINTS, ANNOTATION_TOPOLOGY_MODE};
use crate::ip::parse_ip_sloppy;

/// `value` as Go prints the address it parses to (IPv4-mapped IPv6 as IPv4).
fn canonical_ip(ip: IpAddr) -> String {
    ip.to_string()
}

/// Warnings about how an address that validation accepted is written.
pub fn ip_warnings(path: &str, value: &str) -> Vec<String> {
    let Some(ip) = parse_ip_sloppy(value) else {
        return Vec::new();
    };
    let canonical = canonical_ip(ip);
    let strict: Option<IpAddr> = value.parse().ok();
    let mapped = matches!(strict, Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some());
    if strict.is_none() || mapped {
        return vec![format!(
            "{path}: non-standard IP address \"{value}\" is invalid: use \"{canonical}\""
        )];
    }
    if ip.is_ipv6() && canonical != value {
        return vec![format!(
            "{path}: IPv6 address \"{value}\" should be in RFC 5952 canonical format (\"{canonical}\")"
        )];
    }
    Vec::new()
}

/// Warnings about how a CIDR that validation accepted is written.
pub fn cidr_warnings(path: &str, value: &str) -> Vec<String> {
    let Some((ip_text, bits_text)) = value.split_once('/') else {
        return Vec::new();
    };
    let (Some(ip), Ok(bits)) = (parse_ip_sloppy(ip_text), bits_text.parse::<u8>()) else {
        return Vec::new();
    };
    let Ok(net) = IpNet::new(ip, bits) else {
        return Vec::new();
    };
    let network = net.trunc();
    let mut warnings = Vec::new();
    if network.addr() != ip {
        let full = if ip.is_ipv4() { 32 } else { 128 };
        warnings.push(format!(
            "{path}: CIDR value \"{value}\" is ambiguous in this context (should be \"{network}\" or \"{ip}/{full}\"?)"
        ));
    }
    let strict: Option<IpAddr> = ip_text.parse().ok();
    let leading_zero_bits = bits_text.len() > 1 && bits_text.starts_with('0');
    let mapped = matches!(strict, Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some());
    if strict.is_none() || leading_zero_bits || mapped {
        warnings.push(format!(
            "{path}: non-standard CIDR value \"{value}\" is invalid: use \"{network}\""
        ));
    }
    let canonical = format!("{ip}/{bits}");
    if warnings.is_empty() && ip.is_ipv6() && canonical != value {
        warnings.push(format!(
            "{path}: IPv6 CIDR value \"{value}\" should be in RFC 5952 canonical format (\"{canonical}\")"
        ));
    }
    warnings
}

/// What upstream warns about a Service it stores, in its order.
pub fn service_warnings(svc: &Service) -> Vec<String> {
    let mut warnings = Vec::new();
    let annotations = svc.metadata.annotations.as_ref();
    if annotations.is_some_and(|a| a.contains_key(ANNOTATION_TOPOLOGY_AWARE_HINTS)) {
        warnings.push(format!(
            "annotation {ANNOTATION_TOPOLOGY_AWARE_HINTS} is deprecated, please use {ANNOTATION_TOPOLOGY_MODE} instead"
        ));
    }
    let Some(spec) = svc.spec.as_ref() else {
        return warnings;
    };
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = ty == "ClusterIP" && cluster_ip == "None";
    if !cluster_ip.is_empty() && cluster_ip != "None" {
        for (i, ip) in spec.cluster_ips.iter().flatten().enumerate() {
            warnings.extend(ip_warnings(&format!("spec.clusterIPs[{i}]"), ip));
        }
    }
    let external_ips = spec.external_ips.as_deref().unwrap_or(&[]);
    if headless {
        if spec.load_balancer_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
            warnings.push("spec.loadBalancerIP is ignored for headless services".into());
        }
        if !external_ips.is_empty() {
            warnings.push("spec.externalIPs is ignored for headless services".into());
        }
        if spec.session_affinity.as_deref().is_some_and(|a| a != "None") {
            warnings.push("spec.SessionAffinity is ignored for headless services".into());
        }
    }
    for (i, ip) in external_ips.iter().enumerate() {
        warnings.extend(ip_warnings(&format!("spec.externalIPs[{i}]"), ip));
    }
    if !external_ips.is_empty() && !headless && ty != "ExternalName" {
        warnings.push("spec.externalIPs is deprecated and may no longer be implemented in some clusters".into());
    }
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|ip| !ip.is_empty()) {
        warnings.extend(ip_warnings("spec.loadBalancerIP", ip));
    }
    for (i, cidr) in spec.load_balancer_source_ranges.iter().flatten().enumerate() {
        warnings.extend(cidr_warnings(&format!("spec.loadBalancerSourceRanges[{i}]"), cidr));
    }
    if ty == "ExternalName" && !external_ips.is_empty() {
        warnings.push("spec.externalIPs is ignored when spec.type is \"ExternalName\"".into());
    }
    if ty != "ExternalName" && spec.external_name.as_deref().is_some_and(|n| !n.is_empty()) {
        warnings.push("spec.externalName is ignored when spec.type is not \"ExternalName\"".into());
    }
    if spec.traffic_distribution.as_deref() == Some("PreferClose") {
        warnings.push("spec.trafficDistribution: \"PreferClose\" is deprecated; use \"PreferSameZone\"".into());
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_non_standard_forms() {
        assert!(ip_warnings("p", "10.0.0.1").is_empty());
        assert_eq!(
            ip_warnings("p", "010.0.0.1"),
            [r#"p: non-standard IP address "010.0.0.1" is invalid: use "10.0.0.1""#]
        );
        assert_eq!(
            ip_warnings("p", "fd00:0::1"),
            [r#"p: IPv6 address "fd00:0::1" should be in RFC 5952 canonical format ("fd00::1")"#]
        );
        assert_eq!(
            cidr_warnings("p", "10.0.0.1/24"),
            [r#"p: CIDR value "10.0.0.1/24" is ambiguous in this context (should be "10.0.0.0/24" or "10.0.0.1/32"?)"#]
        );
        assert!(cidr_warnings("p", "10.0.0.0/24").is_empty());
    }

    #[test]
    fn deprecated_and_ignored_fields() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "s", "annotations": { ANNOTATION_TOPOLOGY_AWARE_HINTS: "Auto" } },
            "spec": { "type": "ClusterIP", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                      "externalIPs": ["192.0.2.1"], "externalName": "x.example.com",
                      "trafficDistribution": "PreferClose" },
        }))
        .unwrap();
        assert_eq!(
            service_warnings(&svc),
            [
                "annotation service.kubernetes.io/topology-aware-hints is deprecated, please use service.kubernetes.io/topology-mode instead",
                "spec.externalIPs is deprecated and may no longer be implemented in some clusters",
                "spec.externalName is ignored when spec.type is not \"ExternalName\"",
                "spec.trafficDistribution: \"PreferClose\" is deprecated; use \"PreferSameZone\"",
            ]
        );
    }
}
