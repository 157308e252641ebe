//! Which endpoints a destination of a service port uses for one kind of client on this node,
//! and why each of the others is left out. The same choice the compiler makes (traffic
//! policies, topology hints, the terminating fallback), told as reasons for people; pure.

use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Endpoint, NodeHint, Policy, ProxyModel, ServicePort, Topology};

/// How a packet reaches the service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Destination {
    ClusterIp,
    NodePort,
    /// An external IP or a load-balancer IP.
    ExternalAddress,
}

/// Where the packet comes from, as the rules tell clients apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Client {
    /// From the pod CIDRs.
    Pod,
    /// From this node itself.
    Node,
    /// From anywhere else.
    Outside,
}

impl Client {
    pub fn of(model: &ProxyModel, source: IpAddr, from_this_node: bool) -> Self {
        if model.cluster_cidrs.iter().any(|n| n.contains(&source)) {
            Client::Pod
        } else if from_this_node {
            Client::Node
        } else {
            Client::Outside
        }
    }
}

/// One endpoint, and whether this client's new connections may go to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointUse {
    pub address: IpAddr,
    pub port: u16,
    pub used: bool,
    /// Why it is left out (empty when used).
    pub reason: String,
}

/// The choice for one destination and client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// Which endpoints the rules pick from: `Cluster` or `Local`, and why.
    pub view: String,
    pub endpoints: Vec<EndpointUse>,
    /// What happens when none is used.
    pub when_none: Option<String>,
}

/// Which endpoints `sp` uses for `client` reaching it through `destination` on this node.
pub fn choose(model: &ProxyModel, sp: &ServicePort, destination: Destination, client: Client) -> Choice {
    let (local, view) = match (destination, client) {
        (Destination::ClusterIp, _) if sp.internal_traffic_policy == Policy::Local => {
            (true, "Local: internalTrafficPolicy is Local, only this node's endpoints".to_owned())
        }
        (Destination::ClusterIp, _) => (false, "Cluster: every node's endpoints".to_owned()),
        (_, Client::Outside) if sp.external_traffic_policy == Policy::Local => (
            true,
            "Local: externalTrafficPolicy is Local and the client is outside the cluster, only this node's endpoints (the client's address is kept)"
                .to_owned(),
        ),
        (_, Client::Pod) if sp.external_traffic_policy == Policy::Local => (
            false,
            "Cluster: externalTrafficPolicy Local does not apply to a pod, which may use every node's endpoints".to_owned(),
        ),
        (_, Client::Node) if sp.external_traffic_policy == Policy::Local => (
            false,
            "Cluster: externalTrafficPolicy Local does not apply to the node itself, which may use every node's endpoints (masqueraded)"
                .to_owned(),
        ),
        _ => (false, "Cluster: every node's endpoints".to_owned()),
    };
    let zone = model.node_zone.as_deref();
    let chosen: Vec<&Endpoint> = if local {
        sp.local_endpoints()
    } else {
        sp.cluster_endpoints(zone)
    };
    let topology = Topology::from_hints(&sp.endpoints, zone);
    let any_ready = sp.endpoints.iter().any(|e| e.ready && (!local || e.is_local));
    let endpoints = sp
        .endpoints
        .iter()
        .map(|e| {
            let used = chosen.contains(&e);
            let reason = if used {
                String::new()
            } else {
                why_not(e, local, any_ready, topology, zone)
            };
            EndpointUse {
                address: e.ip,
                port: e.port,
                used,
                reason,
            }
        })
        .collect();
    let when_none = chosen.is_empty().then(|| {
        if local && sp.endpoints.iter().any(|e| e.ready || e.serving) {
            "no usable endpoint on this node: the packet is dropped (other nodes' endpoints do not count under a Local policy)".to_owned()
        } else {
            "no usable endpoint: the connection is refused (ICMP port unreachable)".to_owned()
        }
    });
    Choice {
        view,
        endpoints,
        when_none,
    }
}

fn why_not(e: &Endpoint, local: bool, any_ready: bool, topology: Topology, zone: Option<&str>) -> String {
    if local && !e.is_local {
        return "on another node, and the traffic policy is Local".into();
    }
    if e.terminating && e.serving && any_ready {
        return "terminating; terminating endpoints are used only when no endpoint is ready".into();
    }
    if e.terminating && !e.serving {
        return "terminating and no longer serving".into();
    }
    if !e.ready && !e.terminating {
        return "not ready".into();
    }
    match topology {
        Topology::SameNode if e.hints.node != NodeHint::ThisNode => {
            "hinted for another node (trafficDistribution PreferSameNode), and an endpoint is hinted for this one"
                .into()
        }
        Topology::SameZone(z) => format!(
            "hinted for zone(s) {}, not this node's zone {z}",
            if e.hints.zones.is_empty() {
                "(none)".to_owned()
            } else {
                e.hints.zones.join(", ")
            }
        ),
        _ => format!("not used (zone {})", zone.unwrap_or("unset")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Hints, ProxyConfig};
    use svcnet_core::service::model::Protocol;

    fn ep(ip: &str, local: bool, ready: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            is_local: local,
            ready,
            serving: ready,
            terminating: false,
            hints: Hints::default(),
        }
    }

    fn model() -> ProxyModel {
        ProxyModel {
            node_name: "n1".into(),
            node_ips: vec!["192.168.0.2".parse().unwrap()],
            cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            service_cidrs: vec!["172.30.0.0/16".parse().unwrap()],
            config: ProxyConfig::default(),
            node_zone: Some("a".into()),
            ports: Default::default(),
        }
    }

    fn port(eps: Vec<Endpoint>) -> ServicePort {
        ServicePort::cluster_ip(
            "ns",
            "s",
            "",
            Protocol::Tcp,
            80,
            vec!["172.30.0.1".parse().unwrap()],
            eps,
        )
    }

    fn reasons(c: &Choice) -> Vec<(String, bool, String)> {
        c.endpoints
            .iter()
            .map(|e| (e.address.to_string(), e.used, e.reason.clone()))
            .collect()
    }

    #[test]
    fn each_endpoint_left_out_says_why() {
        let m = model();
        let mut terminating = ep("10.0.0.4", false, false);
        (terminating.serving, terminating.terminating) = (true, true);
        let mut sp = port(vec![
            ep("10.0.0.1", true, true),
            ep("10.0.0.2", false, true),
            ep("10.0.0.3", false, false),
            terminating,
        ]);
        let c = choose(&m, &sp, Destination::ClusterIp, Client::Pod);
        let r = reasons(&c);
        assert!(r[0].1 && r[1].1 && !r[2].1 && !r[3].1, "{r:?}");
        assert_eq!(r[2].2, "not ready");
        assert!(r[3].2.starts_with("terminating;"), "{r:?}");
        assert_eq!(c.when_none, None);

        // externalTrafficPolicy Local: outside clients use this node's only; pods all
        sp.node_port = Some(30080);
        sp.external_traffic_policy = Policy::Local;
        let outside = choose(&m, &sp, Destination::NodePort, Client::Outside);
        let r = reasons(&outside);
        assert!(r[0].1 && !r[1].1 && r[1].2.contains("another node"), "{r:?}");
        assert!(outside.view.starts_with("Local"));
        let pod = choose(&m, &sp, Destination::NodePort, Client::Pod);
        assert!(pod.view.starts_with("Cluster") && pod.endpoints[1].used);

        // no local endpoint: dropped, not refused
        sp.endpoints.remove(0);
        let none = choose(&m, &sp, Destination::NodePort, Client::Outside);
        assert!(none.when_none.as_deref().unwrap().contains("dropped"), "{none:?}");
        // no endpoint at all: refused
        sp.endpoints.clear();
        let none = choose(&m, &sp, Destination::ClusterIp, Client::Pod);
        assert!(none.when_none.as_deref().unwrap().contains("refused"), "{none:?}");
    }

    #[test]
    fn zone_hints_name_the_zones() {
        let m = model();
        let mut a = ep("10.0.0.1", false, true);
        a.hints.zones = vec!["a".into()].into();
        let mut b = ep("10.0.0.2", false, true);
        b.hints.zones = vec!["b".into()].into();
        let c = choose(&m, &port(vec![a, b]), Destination::ClusterIp, Client::Pod);
        let r = reasons(&c);
        assert!(r[0].1 && !r[1].1, "{r:?}");
        assert_eq!(r[1].2, "hinted for zone(s) b, not this node's zone a");
    }
}
