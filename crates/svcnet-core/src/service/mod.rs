//! Services: defaulting, validation, the update preparation steps, and the validated model.
//!
//! Works on the wire type (`k8s_openapi` `Service`) because invalid input must be
//! representable to be reported; `model` converts a valid Service into the internal type the
//! rest of the system uses.

pub mod cluster_ips;
pub mod defaults;
pub mod model;
pub mod prepare;
pub mod validate;
pub mod warnings;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};

pub const TYPE_CLUSTER_IP: &str = "ClusterIP";
pub const TYPE_NODE_PORT: &str = "NodePort";
pub const TYPE_LOAD_BALANCER: &str = "LoadBalancer";
pub const TYPE_EXTERNAL_NAME: &str = "ExternalName";
pub const CLUSTER_IP_NONE: &str = "None";
pub const POLICY_CLUSTER: &str = "Cluster";
pub const POLICY_LOCAL: &str = "Local";
pub const AFFINITY_NONE: &str = "None";
pub const AFFINITY_CLIENT_IP: &str = "ClientIP";
pub const SINGLE_STACK: &str = "SingleStack";
pub const PREFER_DUAL_STACK: &str = "PreferDualStack";
pub const REQUIRE_DUAL_STACK: &str = "RequireDualStack";
/// Upper bound for `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const MAX_AFFINITY_TIMEOUT_SECONDS: i32 = 86400;
/// Default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: i32 = 10800;

static EMPTY_SPEC: std::sync::LazyLock<ServiceSpec> = std::sync::LazyLock::new(ServiceSpec::default);

/// The spec, or an empty one.
pub fn spec(svc: &Service) -> &ServiceSpec {
    svc.spec.as_ref().unwrap_or(&EMPTY_SPEC)
}

/// The spec, created empty if absent.
pub fn spec_mut(svc: &mut Service) -> &mut ServiceSpec {
    svc.spec.get_or_insert_with(ServiceSpec::default)
}

pub fn type_of(svc: &Service) -> &str {
    spec(svc).type_.as_deref().unwrap_or("")
}

pub fn cluster_ip(svc: &Service) -> &str {
    spec(svc).cluster_ip.as_deref().unwrap_or("")
}

pub fn cluster_ips(svc: &Service) -> &[String] {
    spec(svc).cluster_ips.as_deref().unwrap_or(&[])
}

pub fn ip_families(svc: &Service) -> &[String] {
    spec(svc).ip_families.as_deref().unwrap_or(&[])
}

pub fn name(svc: &Service) -> &str {
    svc.metadata.name.as_deref().unwrap_or("")
}

/// Headless: `clusterIPs == ["None"]` (clusterIP alone counts too, before normalization).
pub fn is_headless(svc: &Service) -> bool {
    let ips = cluster_ips(svc);
    (ips.len() == 1 && ips[0] == CLUSTER_IP_NONE) || (ips.is_empty() && cluster_ip(svc) == CLUSTER_IP_NONE)
}

/// Reachable from outside the cluster: NodePort, LoadBalancer, or ClusterIP with externalIPs.
pub fn externally_accessible(svc: &Service) -> bool {
    match type_of(svc) {
        TYPE_NODE_PORT | TYPE_LOAD_BALANCER => true,
        TYPE_CLUSTER_IP => spec(svc).external_ips.as_ref().is_some_and(|v| !v.is_empty()),
        _ => false,
    }
}

/// LoadBalancer with externalTrafficPolicy Local needs a health-check node port.
pub fn needs_health_check(svc: &Service) -> bool {
    type_of(svc) == TYPE_LOAD_BALANCER && spec(svc).external_traffic_policy.as_deref() == Some(POLICY_LOCAL)
}

pub fn needs_cluster_ip(svc: &Service) -> bool {
    type_of(svc) != TYPE_EXTERNAL_NAME
}

pub fn needs_node_port(svc: &Service) -> bool {
    matches!(type_of(svc), TYPE_NODE_PORT | TYPE_LOAD_BALANCER)
}

/// Whether ports without a requested nodePort get one allocated.
pub fn should_allocate_node_ports(svc: &Service) -> bool {
    match type_of(svc) {
        TYPE_NODE_PORT => true,
        TYPE_LOAD_BALANCER => spec(svc).allocate_load_balancer_node_ports.unwrap_or(true),
        _ => false,
    }
}
