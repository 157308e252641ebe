//! Steps that prepare a written Service before allocation and validation: keeping
//! `clusterIP`/`clusterIPs` in step, copying back allocated values a client left out (so
//! re-applying the same YAML works), and clearing fields the new type no longer uses.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServiceStatus};

use super::*;

/// Keeps `clusterIP` and `clusterIPs` in step; `old` is `None` on create.
pub fn normalize_cluster_ips(old: Option<&Service>, new: &mut Service) {
    let Some(old) = old else {
        if !cluster_ip(new).is_empty() && cluster_ips(new).is_empty() {
            let ip = cluster_ip(new).to_owned();
            spec_mut(new).cluster_ips = Some(vec![ip]);
        }
        return;
    };
    if !cluster_ips(old).is_empty() && cluster_ips(new).is_empty() && cluster_ip(old) == cluster_ip(new) {
        spec_mut(new).cluster_ips = spec(old).cluster_ips.clone();
    }
    if cluster_ip(old) != cluster_ip(new) {
        let same_ips = cluster_ips(old) == cluster_ips(new);
        if !cluster_ip(old).is_empty() && cluster_ip(new).is_empty() {
            if same_ips {
                spec_mut(new).cluster_ips = None;
            }
        } else if same_ips {
            let ip = cluster_ip(new).to_owned();
            spec_mut(new).cluster_ips = Some(vec![ip]);
        }
    }
}

/// Copies allocated values (cluster IPs, node ports matched by port name, health-check node
/// port) from the stored Service into an update that left them out.
pub fn patch_allocated_values(new: &mut Service, old: &Service) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if cluster_ip(new).is_empty() {
            spec_mut(new).cluster_ip = spec(old).cluster_ip.clone();
        }
        if cluster_ips(new).is_empty() && !cluster_ips(old).is_empty() {
            spec_mut(new).cluster_ips = spec(old).cluster_ips.clone();
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        let used = |s: &Service| -> BTreeSet<i32> {
            spec(s)
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.node_port.filter(|n| *n != 0))
                .collect()
        };
        let in_both: BTreeSet<i32> = used(old).intersection(&used(new)).copied().collect();
        let by_name: BTreeMap<String, i32> = spec(old)
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.node_port.unwrap_or(0)))
            .collect();
        for p in spec_mut(new).ports.iter_mut().flatten() {
            if p.node_port.unwrap_or(0) == 0 {
                let old_val = by_name.get(p.name.as_deref().unwrap_or("")).copied().unwrap_or(0);
                if !in_both.contains(&old_val) && old_val != 0 {
                    p.node_port = Some(old_val);
                }
            }
        }
    }
    if needs_health_check(old) && needs_health_check(new) && spec(new).health_check_node_port.unwrap_or(0) == 0 {
        spec_mut(new).health_check_node_port = spec(old).health_check_node_port;
    }
}

/// Clears fields the new type does not use, where the client did not change them.
pub fn drop_type_dependent_fields(new: &mut Service, old: &Service) {
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if cluster_ips(old) == cluster_ips(new) && cluster_ip(old) == cluster_ip(new) {
            let s = spec_mut(new);
            s.cluster_ip = None;
            s.cluster_ips = None;
        }
        if ip_families(old) == ip_families(new) {
            spec_mut(new).ip_families = None;
        }
        if spec(old).ip_family_policy == spec(new).ip_family_policy {
            spec_mut(new).ip_family_policy = None;
        }
    }
    if needs_node_port(old) && !needs_node_port(new) {
        let node_ports = |s: &Service| -> Vec<i32> {
            spec(s)
                .ports
                .iter()
                .flatten()
                .map(|p| p.node_port.unwrap_or(0))
                .collect()
        };
        if node_ports(old) == node_ports(new) {
            for p in spec_mut(new).ports.iter_mut().flatten() {
                p.node_port = None;
            }
        }
    }
    if needs_health_check(old)
        && !needs_health_check(new)
        && spec(old).health_check_node_port == spec(new).health_check_node_port
    {
        spec_mut(new).health_check_node_port = None;
    }
    let leaving_lb = type_of(old) == TYPE_LOAD_BALANCER && type_of(new) != TYPE_LOAD_BALANCER;
    if leaving_lb {
        let (o, n) = (
            spec(old).allocate_load_balancer_node_ports,
            spec(new).allocate_load_balancer_node_ports,
        );
        if o.is_some() && o == n {
            spec_mut(new).allocate_load_balancer_node_ports = None;
        }
        if spec(old).load_balancer_class == spec(new).load_balancer_class {
            spec_mut(new).load_balancer_class = None;
        }
    }
    if externally_accessible(old)
        && !externally_accessible(new)
        && spec(old).external_traffic_policy == spec(new).external_traffic_policy
    {
        spec_mut(new).external_traffic_policy = None;
    }
    if type_of(new) != TYPE_LOAD_BALANCER
        && let Some(status) = &mut new.status
    {
        status.load_balancer = Some(LoadBalancerStatus::default());
    }
}

/// The status subresource: the stored spec stays, status and metadata come from the request.
pub fn prepare_status_update(new: &mut Service, old: &Service) {
    new.spec = old.spec.clone();
    if new.status.is_none() {
        new.status = Some(ServiceStatus::default());
    }
}
