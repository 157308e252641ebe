//! Builders for proxy models.

use std::net::IpAddr;

use svcnet_core::service::model::Protocol;
use svcnet_dataplane::model::{Endpoint, ProxyConfig, ProxyModel, ServicePort};

pub const NODE: &str = "test-node";

pub fn model() -> ProxyModel {
    ProxyModel {
        node_name: NODE.into(),
        node_ips: vec!["192.168.0.2".parse().unwrap()],
        node_zone: None,
        cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        service_cidrs: vec!["172.30.0.0/16".parse().unwrap()],
        // small Maglev tables keep whole-model compiles in the property tests quick
        config: ProxyConfig {
            maglev_table_size: 251,
            ..ProxyConfig::default()
        },
        ports: Default::default(),
    }
}

pub fn ep(ip: &str, port: u16, node: &str, ready: bool) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port,
        is_local: node == NODE,
        ready,
        serving: ready,
        terminating: false,
        hints: Default::default(),
    }
}

pub fn port(
    name: &str,
    port_name: &str,
    cluster_ip: &str,
    protocol: Protocol,
    port: u16,
    eps: Vec<Endpoint>,
) -> ServicePort {
    let cluster_ips: Vec<IpAddr> = cluster_ip.split(',').map(|s| s.parse().unwrap()).collect();
    ServicePort::cluster_ip("ns1", name, port_name, protocol, port, cluster_ips, eps)
}

pub fn insert(m: &mut ProxyModel, sp: ServicePort) {
    m.ports.insert(sp.id(), sp);
}
