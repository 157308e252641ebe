//! Service validation on create and update, rule for rule and message for message as
//! Kubernetes' `ValidateService` / `ValidateServiceUpdate`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cluster_ips::{INVALID_IP_MSG, cluster_ips_value, families_value, validate_cluster_ips_related_fields};
use super::*;
use crate::field::{BadValue, ErrorList, FieldError, FieldPath};
use crate::ip::parse_ip_sloppy;
use crate::names;

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const TYPES: [&str; 4] = [TYPE_CLUSTER_IP, TYPE_EXTERNAL_NAME, TYPE_LOAD_BALANCER, TYPE_NODE_PORT];
const TRAFFIC_DISTRIBUTIONS: [&str; 3] = ["PreferClose", "PreferSameZone", "PreferSameNode"];
/// The kubelet's port, which LoadBalancers may not expose.
const KUBELET_PORT: i32 = 10250;
/// Total size of all annotations (keys and values), in bytes.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Validates a Service on create.
pub fn validate_service(svc: &Service) -> ErrorList {
    validate_service_as(svc, &Legacy::strict(None))
}

/// `validate_service` for a Service another server stored: addresses and CIDRs in the
/// legacy forms upstream accepted before 1.33 (leading zeros, IPv4-mapped IPv6, host bits in
/// source ranges) are read, not refused, so a proxy still serves an old object.
pub fn validate_service_accepting_legacy(svc: &Service) -> ErrorList {
    validate_service_as(svc, &Legacy::accepted())
}

/// How the legacy address fields (clusterIPs, externalIPs, loadBalancerSourceRanges) are
/// parsed: strictly for new values (upstream's default since 1.33), with the values the
/// stored object already had exempt, as upstream exempts them on update.
pub(crate) struct Legacy {
    strict: bool,
    cluster_ips: Vec<String>,
    external_ips: Vec<String>,
    source_ranges: Vec<String>,
}

impl Legacy {
    pub(crate) fn strict(old: Option<&Service>) -> Self {
        let of = |f: fn(&k8s_openapi::api::core::v1::ServiceSpec) -> Option<&Vec<String>>| {
            old.and_then(|o| o.spec.as_ref())
                .and_then(f)
                .map(|v| v.iter().map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default()
        };
        Legacy {
            strict: true,
            cluster_ips: of(|s| s.cluster_ips.as_ref()),
            external_ips: of(|s| s.external_ips.as_ref()),
            source_ranges: of(|s| s.load_balancer_source_ranges.as_ref()),
        }
    }

    fn accepted() -> Self {
        Legacy {
            strict: false,
            cluster_ips: vec![],
            external_ips: vec![],
            source_ranges: vec![],
        }
    }

    /// The strict parser's objection to a new IP value that parses leniently.
    pub(crate) fn ip_problem(&self, value: &str, old: &[String]) -> Option<&'static str> {
        if !self.strict || old.iter().any(|o| o == value) {
            return None;
        }
        crate::ip::strict_ip_problem(value)
    }

    pub(crate) fn cluster_ip_problem(&self, value: &str) -> Option<&'static str> {
        self.ip_problem(value, &self.cluster_ips)
    }
}

fn validate_service_as(svc: &Service, legacy: &Legacy) -> ErrorList {
    let mut errs = validate_object_meta(&svc.metadata, true, |n, prefix| {
        let n = if prefix {
            names::mask_trailing_dash(n)
        } else {
            n.to_owned()
        };
        // a lowercase RFC 1123 label: upstream relaxed Service names from DNS-1035 (1.34+)
        names::dns1123_label(&n)
    });
    errs.extend(validate_topology_annotations(svc));
    let spec_path = FieldPath::new("spec");
    let sp = spec(svc);
    let ports = sp.ports.as_deref().unwrap_or(&[]);
    let headless = is_headless(svc);
    let ty = type_of(svc);

    if ports.is_empty() && !headless && ty != TYPE_EXTERNAL_NAME {
        errs.push(FieldError::required(spec_path.child("ports"), ""));
    }
    let first_ip = || BadValue::str(cluster_ips(svc).first().cloned().unwrap_or_default());
    match ty {
        TYPE_LOAD_BALANCER => {
            if headless {
                errs.push(FieldError::invalid(
                    spec_path.child("clusterIPs").index(0),
                    first_ip(),
                    "may not be set to 'None' for LoadBalancer services",
                ));
            }
            for (i, p) in ports.iter().enumerate() {
                if p.port == KUBELET_PORT {
                    errs.push(FieldError::invalid(
                        spec_path.child("ports").index(i),
                        p.port,
                        format!("may not expose port {KUBELET_PORT} externally since it is used by kubelet"),
                    ));
                }
            }
        }
        TYPE_NODE_PORT if headless => {
            errs.push(FieldError::invalid(
                spec_path.child("clusterIPs").index(0),
                first_ip(),
                "may not be set to 'None' for NodePort services",
            ));
        }
        TYPE_EXTERNAL_NAME => {
            if !cluster_ips(svc).is_empty() {
                errs.push(FieldError::forbidden(
                    spec_path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !ip_families(svc).is_empty() {
                errs.push(FieldError::forbidden(
                    spec_path.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if sp.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    spec_path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let raw = sp.external_name.as_deref().unwrap_or("");
            let cname = raw.strip_suffix('.').unwrap_or(raw);
            if cname.is_empty() {
                errs.push(FieldError::required(spec_path.child("externalName"), ""));
            } else {
                for msg in names::dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid(spec_path.child("externalName"), cname, msg));
                }
            }
        }
        _ => {}
    }

    let mut port_names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        errs.extend(validate_port(
            p,
            ports.len() > 1,
            &mut port_names,
            spec_path.child("ports").index(i),
        ));
    }

    if let Some(selector) = &sp.selector {
        errs.extend(validate_labels(selector, &spec_path.child("selector")));
    }

    let affinity = sp.session_affinity.as_deref().unwrap_or("");
    if affinity.is_empty() {
        errs.push(FieldError::required(spec_path.child("sessionAffinity"), ""));
    } else if affinity != AFFINITY_CLIENT_IP && affinity != AFFINITY_NONE {
        errs.push(FieldError::not_supported(
            spec_path.child("sessionAffinity"),
            affinity,
            &[AFFINITY_CLIENT_IP, AFFINITY_NONE],
        ));
    }
    let cfg_path = spec_path.child("sessionAffinityConfig");
    if affinity == AFFINITY_CLIENT_IP {
        errs.extend(validate_client_ip_affinity(
            sp.session_affinity_config.as_ref(),
            &cfg_path,
        ));
    } else if affinity == AFFINITY_NONE && sp.session_affinity_config.is_some() {
        errs.push(FieldError::forbidden(
            cfg_path,
            "must not be set when session affinity is None",
        ));
    }

    errs.extend(validate_cluster_ips_related_fields(svc, legacy));

    for (i, ip) in sp.external_ips.iter().flatten().enumerate() {
        let path = spec_path.child("externalIPs").index(i);
        let mut e = super::cluster_ips::validate_ip_field(path.clone(), ip);
        if e.is_empty()
            && let Some(problem) = legacy.ip_problem(ip, &legacy.external_ips)
        {
            e.push(FieldError::invalid(path.clone(), ip.as_str(), problem));
        }
        if e.is_empty() {
            errs.extend(validate_non_special_ip(ip, &path));
        } else {
            errs.extend(e);
        }
    }

    if ty.is_empty() {
        errs.push(FieldError::required(spec_path.child("type"), ""));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(spec_path.child("type"), ty, &TYPES));
    }

    if ty == TYPE_CLUSTER_IP {
        for (i, p) in ports.iter().enumerate() {
            if p.node_port.unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    spec_path.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = p.node_port.unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((p.protocol.clone().unwrap_or_default(), np)) {
            errs.push(FieldError::duplicate(
                spec_path.child("ports").index(i).child("nodePort"),
                np,
            ));
        }
    }

    let mut seen_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.clone().unwrap_or_default();
        if !seen_ports.insert((proto.clone(), p.port)) {
            errs.push(FieldError::duplicate(
                spec_path.child("ports").index(i),
                BadValue::Raw(go_service_port_key(&proto, p.port)),
            ));
        }
    }

    let ranges = sp.load_balancer_source_ranges.as_deref().unwrap_or(&[]);
    if !ranges.is_empty() {
        let path = spec_path.child("LoadBalancerSourceRanges");
        if ty != TYPE_LOAD_BALANCER {
            errs.push(FieldError::forbidden(
                path.clone(),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.trim();
            if r.is_empty() {
                errs.push(FieldError::required(path.index(i), ""));
            } else if !is_valid_cidr(r) {
                errs.push(FieldError::invalid(
                    path.index(i),
                    r,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ));
            } else if legacy.strict
                && !legacy.source_ranges.iter().any(|o| o == r)
                && let Some(problem) = crate::ip::strict_cidr_problem(r)
            {
                errs.push(FieldError::invalid(path.index(i), r, problem));
            }
        }
    }

    if sp.allocate_load_balancer_node_ports.is_some() && ty != TYPE_LOAD_BALANCER {
        errs.push(FieldError::forbidden(
            spec_path.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == TYPE_LOAD_BALANCER && sp.allocate_load_balancer_node_ports.is_none() {
        errs.push(FieldError::required(
            FieldPath::new("allocateLoadBalancerNodePorts"),
            "",
        ));
    }

    errs.extend(validate_load_balancer_class(None, svc));
    errs.extend(validate_external_traffic_policy(svc));
    errs.extend(validate_internal_traffic_policy(svc));

    if let Some(td) = &sp.traffic_distribution
        && !TRAFFIC_DISTRIBUTIONS.contains(&td.as_str())
    {
        errs.push(FieldError::not_supported(
            spec_path.child("trafficDistribution"),
            td.as_str(),
            &TRAFFIC_DISTRIBUTIONS,
        ));
    }
    errs
}

/// The topology annotation and its deprecated name must agree when both are set.
fn validate_topology_annotations(svc: &Service) -> ErrorList {
    use crate::endpoints::hints::{ANNOTATION_TOPOLOGY_AWARE_HINTS, ANNOTATION_TOPOLOGY_MODE};
    let Some(annotations) = svc.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    match (
        annotations.get(ANNOTATION_TOPOLOGY_MODE),
        annotations.get(ANNOTATION_TOPOLOGY_AWARE_HINTS),
    ) {
        (Some(mode), Some(hints)) if mode != hints => vec![FieldError::invalid(
            FieldPath::new("metadata")
                .child("annotations")
                .key(ANNOTATION_TOPOLOGY_MODE),
            mode.as_str(),
            format!("must match annotations[{ANNOTATION_TOPOLOGY_AWARE_HINTS}] when both are specified"),
        )],
        _ => Vec::new(),
    }
}

/// Validates a Service update: immutability rules first, then everything `validate_service` checks.
pub fn validate_service_update(new: &Service, old: &Service) -> ErrorList {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_cluster_ips_upgrade_downgrade(old, new));
    errs.extend(validate_ip_families_upgrade_downgrade(old, new));
    errs.extend(validate_load_balancer_class(Some(old), new));
    errs.extend(validate_service_as(new, &Legacy::strict(Some(old))));
    errs
}

/// The `core.ServicePort` key upstream reports for duplicate ports, as its JSON (the internal
/// type has no JSON tags: Go's field names).
fn go_service_port_key(protocol: &str, port: i32) -> String {
    format!(
        r#"{{"Name":"","Protocol":{},"AppProtocol":null,"Port":{port},"TargetPort":0,"NodePort":0}}"#,
        serde_json::Value::from(protocol)
    )
}

fn validate_port(p: &ServicePort, require_name: bool, names_seen: &mut HashSet<String>, path: FieldPath) -> ErrorList {
    let mut errs = ErrorList::new();
    let name = p.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        for msg in names::dns1123_label(name) {
            errs.push(FieldError::invalid(path.child("name"), name, msg));
        }
        if !names_seen.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(path.child("name"), name));
        }
    }
    for msg in names::port_number(p.port.into()) {
        errs.push(FieldError::invalid(path.child("port"), p.port, msg));
    }
    let proto = p.protocol.as_deref().unwrap_or("");
    if proto.is_empty() {
        errs.push(FieldError::required(path.child("protocol"), ""));
    } else if !PROTOCOLS.contains(&proto) {
        errs.push(FieldError::not_supported(path.child("protocol"), proto, &PROTOCOLS));
    }
    errs.extend(validate_port_num_or_name(
        p.target_port.as_ref(),
        &path.child("targetPort"),
    ));
    if let Some(app) = &p.app_protocol {
        for msg in names::qualified_name(app) {
            errs.push(FieldError::invalid(path.child("appProtocol"), app.as_str(), msg));
        }
    }
    errs
}

/// A port given as a number (1–65535) or an IANA service name.
pub fn validate_port_num_or_name(port: Option<&IntOrString>, path: &FieldPath) -> ErrorList {
    match port {
        None | Some(IntOrString::Int(_)) => {
            let n = match port {
                Some(IntOrString::Int(n)) => *n,
                _ => 0,
            };
            names::port_number(n.into())
                .into_iter()
                .map(|m| FieldError::invalid(path.clone(), n, m))
                .collect()
        }
        Some(IntOrString::String(s)) => names::port_name(s)
            .into_iter()
            .map(|m| FieldError::invalid(path.clone(), s.as_str(), m))
            .collect(),
    }
}

fn validate_client_ip_affinity(cfg: Option<&SessionAffinityConfig>, path: &FieldPath) -> ErrorList {
    let detail = "when session affinity type is ClientIP";
    let Some(cfg) = cfg else {
        return vec![FieldError::required(path.clone(), detail)];
    };
    let Some(client_ip) = &cfg.client_ip else {
        return vec![FieldError::required(path.child("clientIP"), detail)];
    };
    let t_path = path.child("clientIP").child("timeoutSeconds");
    match client_ip.timeout_seconds {
        None => vec![FieldError::required(t_path, detail)],
        Some(t) if t <= 0 || t > MAX_AFFINITY_TIMEOUT_SECONDS => vec![FieldError::invalid(
            t_path,
            t,
            format!("must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT_SECONDS}"),
        )],
        Some(_) => vec![],
    }
}

fn validate_non_special_ip(ip: &str, path: &FieldPath) -> ErrorList {
    let Some(addr) = parse_ip_sloppy(ip) else {
        return vec![FieldError::invalid(path.clone(), ip, INVALID_IP_MSG)];
    };
    let mut errs = ErrorList::new();
    if addr.is_unspecified() {
        errs.push(FieldError::invalid(
            path.clone(),
            ip,
            format!("may not be unspecified ({ip})"),
        ));
    }
    if addr.is_loopback() {
        errs.push(FieldError::invalid(
            path.clone(),
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local_unicast = match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if link_local_unicast {
        errs.push(FieldError::invalid(
            path.clone(),
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let link_local_multicast = match addr {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.is_multicast() && (v6.segments()[0] & 0x000f) == 2,
    };
    if link_local_multicast {
        errs.push(FieldError::invalid(
            path.clone(),
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

fn is_valid_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    let Some(addr) = parse_ip_sloppy(ip) else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    len.parse::<u8>().is_ok_and(|l| l <= max) && !len.starts_with('+')
}

fn validate_external_traffic_policy(svc: &Service) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec_path = FieldPath::new("spec");
    let etp = spec(svc).external_traffic_policy.as_deref().unwrap_or("");
    if !externally_accessible(svc) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                spec_path.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required(spec_path.child("externalTrafficPolicy"), ""));
    } else if etp != POLICY_CLUSTER && etp != POLICY_LOCAL {
        errs.push(FieldError::not_supported(
            spec_path.child("externalTrafficPolicy"),
            etp,
            &[POLICY_CLUSTER, POLICY_LOCAL],
        ));
    }
    let hc = spec(svc).health_check_node_port.unwrap_or(0);
    if !needs_health_check(svc) {
        if hc != 0 {
            errs.push(FieldError::invalid(
                spec_path.child("healthCheckNodePort"),
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(FieldError::required(spec_path.child("healthCheckNodePort"), ""));
    } else {
        for msg in names::port_number(hc.into()) {
            errs.push(FieldError::invalid(spec_path.child("healthCheckNodePort"), hc, msg));
        }
    }
    errs
}

fn validate_internal_traffic_policy(svc: &Service) -> ErrorList {
    let path = FieldPath::new("spec").child("internalTrafficPolicy");
    match spec(svc).internal_traffic_policy.as_deref() {
        None if matches!(type_of(svc), TYPE_NODE_PORT | TYPE_LOAD_BALANCER | TYPE_CLUSTER_IP) => {
            vec![FieldError::required(path, "")]
        }
        Some(p) if p != POLICY_CLUSTER && p != POLICY_LOCAL => {
            vec![FieldError::not_supported(path, p, &[POLICY_CLUSTER, POLICY_LOCAL])]
        }
        _ => vec![],
    }
}

fn validate_load_balancer_class(old: Option<&Service>, svc: &Service) -> ErrorList {
    let path = FieldPath::new("spec").child("loadBalancerClass");
    let mut errs = ErrorList::new();
    let class = spec(svc).load_balancer_class.as_deref();
    if let Some(old) = old {
        let old_class = spec(old).load_balancer_class.as_deref();
        if type_of(old) == TYPE_LOAD_BALANCER && type_of(svc) == TYPE_LOAD_BALANCER && old_class != class {
            errs.push(FieldError::invalid(
                path.clone(),
                class.map_or(BadValue::Null, BadValue::str),
                "may not change once set",
            ));
        }
    }
    if let Some(c) = class {
        if type_of(svc) != TYPE_LOAD_BALANCER {
            errs.push(FieldError::forbidden(
                path.clone(),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        } else {
            for msg in names::qualified_name(c) {
                errs.push(FieldError::invalid(path.clone(), c, msg));
            }
        }
    }
    errs
}

fn validate_cluster_ips_upgrade_downgrade(old: &Service, new: &Service) -> ErrorList {
    let mut errs = ErrorList::new();
    if type_of(new) == TYPE_EXTERNAL_NAME || type_of(old) == TYPE_EXTERNAL_NAME {
        return errs;
    }
    if is_headless(old) && is_headless(new) {
        return errs;
    }
    let path = FieldPath::new("spec").child("clusterIPs");
    let (old_ips, new_ips) = (cluster_ips(old), cluster_ips(new));
    let value = || cluster_ips_value(new);
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errs.push(FieldError::invalid(path.index(i), value(), "may not change once set"));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(FieldError::invalid(
                path.index(0),
                value(),
                "primary clusterIP can not be unset",
            ));
        }
        if !old_ips.is_empty() && !new_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(FieldError::invalid(path.index(0), value(), "may not change once set"));
        }
        if new_ips.len() == 1 && spec(new).ip_family_policy.as_deref() != Some(SINGLE_STACK) {
            errs.push(FieldError::invalid(
                path.index(0),
                value(),
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(FieldError::invalid(path.index(0), value(), "may not change once set"));
    }
    errs
}

fn validate_ip_families_upgrade_downgrade(old: &Service, new: &Service) -> ErrorList {
    let mut errs = ErrorList::new();
    if type_of(new) == TYPE_EXTERNAL_NAME || type_of(old) == TYPE_EXTERNAL_NAME {
        return errs;
    }
    if is_headless(old) != is_headless(new) || is_headless(new) {
        return errs;
    }
    let path = FieldPath::new("spec").child("ipFamilies");
    let (old_f, new_f) = (ip_families(old), ip_families(new));
    if old_f.len() == new_f.len() {
        for (i, f) in old_f.iter().enumerate() {
            if *f != new_f[i] {
                errs.push(FieldError::invalid(
                    path.index(0),
                    families_value(new),
                    "may not change once set",
                ));
            }
        }
    } else if old_f.len() > new_f.len() {
        if !new_f.is_empty() && new_f[0] != old_f[0] {
            errs.push(FieldError::invalid(
                path.index(0),
                cluster_ips_value(new),
                "may not change once set",
            ));
        }
        if new_f.len() == 1 && spec(new).ip_family_policy.as_deref() != Some(SINGLE_STACK) {
            errs.push(FieldError::invalid(
                FieldPath::new("spec").child("clusterIPs").index(0),
                cluster_ips_value(new),
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old_f.is_empty() && !new_f.is_empty() && new_f[0] != old_f[0] {
        errs.push(FieldError::invalid(
            path.index(0),
            cluster_ips_value(new),
            "may not change once set",
        ));
    }
    errs
}

/// Validates label keys and values of a map (labels, selectors).
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &FieldPath) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels {
        for msg in names::qualified_name(k) {
            errs.push(FieldError::invalid(path.clone(), k.as_str(), msg));
        }
        for msg in names::label_value(v) {
            errs.push(FieldError::invalid(path.clone(), v.as_str(), msg));
        }
    }
    errs
}

/// Validates object metadata: name (with `name_check`, which is told whether it is looking at a
/// generateName prefix), namespace, labels, annotations.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_check: impl Fn(&str, bool) -> Vec<String>,
) -> ErrorList {
    let path = FieldPath::new("metadata");
    let mut errs = ErrorList::new();
    if let Some(gen_name) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        for msg in name_check(gen_name, true) {
            errs.push(FieldError::invalid(path.child("generateName"), gen_name, msg));
        }
    }
    match meta.name.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(
            path.child("name"),
            "name or generateName is required",
        )),
        name => {
            for msg in name_check(name, false) {
                errs.push(FieldError::invalid(path.child("name"), name, msg));
            }
        }
    }
    if namespaced {
        match meta.namespace.as_deref().unwrap_or("") {
            "" => errs.push(FieldError::required(path.child("namespace"), "")),
            ns => {
                for msg in names::dns1123_label(ns) {
                    errs.push(FieldError::invalid(path.child("namespace"), ns, msg));
                }
            }
        }
    } else if meta.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
        errs.push(FieldError::forbidden(
            path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(g) = meta.generation
        && g < 0
    {
        errs.push(FieldError::invalid(
            path.child("generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, &path.child("labels")));
    }
    if let Some(annotations) = &meta.annotations {
        let ann_path = path.child("annotations");
        let mut total = 0;
        for (k, v) in annotations {
            for msg in names::qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(ann_path.clone(), k.as_str(), msg));
            }
            total += k.len() + v.len();
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long(
                ann_path,
                format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
            ));
        }
    }
    errs
}

/// Metadata rules on update: identity fields are immutable.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> ErrorList {
    let path = FieldPath::new("metadata");
    let mut errs = ErrorList::new();
    let immutable = |p: FieldPath, n: &Option<String>, o: &Option<String>| {
        (n != o).then(|| FieldError::invalid(p, n.clone().unwrap_or_default(), "field is immutable"))
    };
    errs.extend(immutable(path.child("name"), &new.name, &old.name));
    errs.extend(immutable(path.child("namespace"), &new.namespace, &old.namespace));
    errs.extend(immutable(path.child("uid"), &new.uid, &old.uid));
    if new.creation_timestamp != old.creation_timestamp && new.creation_timestamp.is_some() {
        errs.push(FieldError::invalid(
            path.child("creationTimestamp"),
            BadValue::Omitted,
            "field is immutable",
        ));
    }
    errs
}
