//! Synthetic proxy models of a given size, addressed like the baseline script's rulesets.

use std::net::{IpAddr, Ipv4Addr};

use svcnet_core::service::model::Protocol;
use svcnet_dataplane::model::{Endpoint, Hints, LoadBalancing, ProxyConfig, ProxyModel, ServicePort};

pub const NODE: &str = "bench-node";
/// Endpoints are spread over this many nodes, the benchmarked node being one of them.
pub const NODES: u32 = 20;

fn v4(base: [u8; 4], offset: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + offset))
}

/// Service `i`: ClusterIP 172.30.0.0 + 1 + i, TCP port 80, `endpoints` endpoints on 8080
/// (addresses from 10.128.0.0 + `first_endpoint`).
pub fn service(i: u32, endpoints: u32, first_endpoint: u32) -> ServicePort {
    ServicePort::cluster_ip(
        "bench",
        &format!("svc-{i}"),
        "http",
        Protocol::Tcp,
        80,
        vec![v4([172, 30, 0, 0], 1 + i)],
        (0..endpoints)
            .map(|j| Endpoint {
                ip: v4([10, 128, 0, 0], first_endpoint + j + 1),
                port: 8080,
                is_local: (first_endpoint + j).is_multiple_of(NODES),
                ready: true,
                serving: true,
                terminating: false,
                hints: Default::default(),
            })
            .collect(),
    )
}

pub fn model(services: u32, endpoints: u32) -> ProxyModel {
    let mut m = ProxyModel {
        node_name: NODE.into(),
        node_ips: vec![],
        node_zone: None,
        cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        service_cidrs: vec!["172.16.0.0/12".parse().unwrap()],
        config: ProxyConfig::default(),
        ports: Default::default(),
    };
    for i in 0..services {
        let sp = service(i, endpoints, i * endpoints);
        m.ports.insert(sp.id(), sp);
    }
    m
}

/// Zones the endpoints of a hinted model are spread over; the node is in the first.
pub const ZONES: u32 = 3;

/// Every endpoint of `sp` hinted for its zone, one of [`ZONES`] in turn.
pub fn hint(sp: &mut ServicePort) {
    for (j, ep) in sp.endpoints.iter_mut().enumerate() {
        ep.hints = Hints {
            zones: vec![format!("zone-{}", j as u32 % ZONES)].into(),
            ..Hints::default()
        };
    }
}

/// [`model`] with the features that cost the dataplane more: every endpoint hinted for its
/// zone (the node is in the first of [`ZONES`]), and the first `maglev` services on Maglev.
pub fn model_with(services: u32, endpoints: u32, maglev: u32, hinted: bool) -> ProxyModel {
    let mut m = model(services, endpoints);
    if hinted {
        m.node_zone = Some("zone-0".into());
    }
    for (i, sp) in m.ports.values_mut().enumerate() {
        if (i as u32) < maglev {
            sp.load_balancing = LoadBalancing::Maglev;
        }
        if hinted {
            hint(sp);
        }
    }
    m
}
