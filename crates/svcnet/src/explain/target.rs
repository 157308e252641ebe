//! What `svcnet explain FROM TO` names: the client (a pod, a node, `external` or an address)
//! and the destination (`svc/NAME[:PORT]` or `ADDRESS:PORT`), resolved against the cluster's
//! objects. Pure: the objects are passed in.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use serde::Serialize;
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::endpoint_choice::Destination;
use svcnet_dataplane::eval::Origin;
use svcnet_dataplane::model::{ProxyModel, ServicePort};

/// The cluster's objects explain reads.
pub struct Objects {
    pub services: Vec<Service>,
    pub slices: Vec<k8s_openapi::api::discovery::v1::EndpointSlice>,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
}

/// Who sends the packet, and on which node it meets the rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    /// `pod default/client`, `node node-1`, `external`, or `address 203.0.113.7`.
    pub name: String,
    pub address: IpAddr,
    /// The node whose rules the packet meets.
    pub node: String,
    #[serde(skip)]
    pub origin: Origin,
}

/// `FROM`: `pod/NAME`, `NAME` (a pod in `namespace`), `node/NAME`, `external`, or an address.
/// `external` and addresses enter at `entry_node` (the node of the destination address when
/// it is one, else `--node`).
pub fn source(
    from: &str,
    namespace: &str,
    external: Option<IpAddr>,
    entry_node: Option<&str>,
    objects: &Objects,
) -> Result<Source> {
    let entry = || -> Result<String> {
        entry_node
            .map(str::to_owned)
            .context("say which node the packet enters with --node (or send it to a node address)")
    };
    if let Some(name) = from.strip_prefix("node/") {
        let node = find_node(objects, name)?;
        let address = *svcnet_agent::tracker::node_addresses(node)
            .first()
            .with_context(|| format!("node {name} reports no address"))?;
        return Ok(Source {
            name: format!("node {name}"),
            address,
            node: name.to_owned(),
            origin: Origin::Local,
        });
    }
    if from == "external" {
        let address = external.context("`external` needs --lab (or give the client's address instead)")?;
        return Ok(Source {
            name: "external".into(),
            address,
            node: entry()?,
            origin: Origin::Arrives,
        });
    }
    if let Ok(address) = from.parse::<IpAddr>() {
        return Ok(Source {
            name: format!("address {address}"),
            address,
            node: entry()?,
            origin: Origin::Arrives,
        });
    }
    let name = from.strip_prefix("pod/").unwrap_or(from);
    let pod = objects
        .pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name) && p.metadata.namespace.as_deref() == Some(namespace))
        .with_context(|| format!("no pod {namespace}/{name}"))?;
    let status = pod.status.as_ref();
    let address = status
        .and_then(|s| s.pod_ip.as_deref())
        .with_context(|| format!("pod {namespace}/{name} has no address yet"))?
        .parse()?;
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .with_context(|| format!("pod {namespace}/{name} is not scheduled"))?;
    Ok(Source {
        name: format!("pod {namespace}/{name}"),
        address,
        node,
        origin: Origin::Arrives,
    })
}

pub fn find_node<'a>(objects: &'a Objects, name: &str) -> Result<&'a Node> {
    objects
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name))
        .with_context(|| format!("no node {name}"))
}

/// The node that has `address`, if any.
pub fn node_with_address(objects: &Objects, address: IpAddr) -> Option<String> {
    objects
        .nodes
        .iter()
        .find(|n| svcnet_agent::tracker::node_addresses(n).contains(&address))
        .and_then(|n| n.metadata.name.clone())
}

/// Where the packet goes, and the service port it is for (when it is for one).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// The service port it reaches, and how.
    pub port: Option<(ServicePort, Destination)>,
}

/// `TO`: `svc/NAME[:PORT]` (a port name or number; the service's first port when left out)
/// in `namespace`, reached the way `source` would (its cluster IP from inside the cluster;
/// from outside, its load-balancer address, else its NodePort on the entry node), or
/// `ADDRESS:PORT`.
pub fn target(
    to: &str,
    namespace: &str,
    protocol: Option<Protocol>,
    model: &ProxyModel,
    from_outside: bool,
) -> Result<Target> {
    if let Some(rest) = to.strip_prefix("svc/").or_else(|| to.strip_prefix("service/")) {
        let (name, port) = rest.split_once(':').map_or((rest, None), |(n, p)| (n, Some(p)));
        let mut ports: Vec<&ServicePort> = model
            .ports
            .values()
            .filter(|sp| sp.namespace == namespace && sp.name == name)
            .filter(|sp| protocol.is_none_or(|p| sp.protocol == p))
            .collect();
        ports.sort_by_key(|sp| sp.port);
        let sp = match port {
            None => ports.first().copied(),
            Some(p) => ports
                .iter()
                .find(|sp| sp.port_name == p || sp.port.to_string() == p)
                .copied(),
        }
        .with_context(|| {
            format!("service {namespace}/{name} has no such port on this node's proxy (headless, ExternalName, another proxy's, or missing?)")
        })?;
        let node_ip = model.node_ips.first().copied();
        let (address, destination) = match (from_outside, sp.load_balancer_ips.first(), sp.node_port, node_ip) {
            (true, Some(lb), _, _) => (SocketAddr::new(*lb, sp.port), Destination::ExternalAddress),
            (true, None, Some(np), Some(ip)) => (SocketAddr::new(ip, np), Destination::NodePort),
            _ => {
                let ip = sp.cluster_ips.first().context("the service port has no cluster IP")?;
                (SocketAddr::new(*ip, sp.port), Destination::ClusterIp)
            }
        };
        return Ok(Target {
            address,
            protocol: sp.protocol,
            port: Some((sp.clone(), destination)),
        });
    }
    let address: SocketAddr = to
        .parse()
        .with_context(|| format!("{to:?}: say svc/NAME[:PORT] or ADDRESS:PORT"))?;
    let protocol = protocol.unwrap_or(Protocol::Tcp);
    let (ip, port) = (address.ip(), address.port());
    let node_address = model.node_ips.contains(&ip);
    let found = model
        .ports
        .values()
        .filter(|sp| sp.protocol == protocol)
        .find_map(|sp| {
            if sp.port == port && sp.cluster_ips.contains(&ip) {
                Some((sp.clone(), Destination::ClusterIp))
            } else if sp.port == port && (sp.external_ips.contains(&ip) || sp.load_balancer_ips.contains(&ip)) {
                Some((sp.clone(), Destination::ExternalAddress))
            } else if node_address && sp.node_port == Some(port) {
                Some((sp.clone(), Destination::NodePort))
            } else {
                None
            }
        });
    if found.is_none() && to.starts_with("svc") {
        bail!("{to:?}: say svc/NAME[:PORT]");
    }
    Ok(Target {
        address,
        protocol,
        port: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_dataplane::model::ProxyConfig;

    fn model() -> ProxyModel {
        let mut web = ServicePort::cluster_ip(
            "default",
            "web",
            "http",
            Protocol::Tcp,
            80,
            vec!["10.96.0.5".parse().unwrap()],
            vec![],
        );
        web.node_port = Some(30080);
        web.load_balancer_ips = vec!["10.240.0.200".parse().unwrap()];
        let dns = ServicePort::cluster_ip(
            "kube-system",
            "dns",
            "dns",
            Protocol::Udp,
            53,
            vec!["10.96.0.10".parse().unwrap()],
            vec![],
        );
        ProxyModel {
            node_name: "node-1".into(),
            node_ips: vec!["10.240.0.11".parse().unwrap()],
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            service_cidrs: vec!["10.96.0.0/16".parse().unwrap()],
            config: ProxyConfig::default(),
            node_zone: None,
            ports: [web, dns].into_iter().map(|sp| (sp.id(), sp)).collect(),
        }
    }

    #[test]
    fn services_are_reached_the_way_the_client_would() {
        let m = model();
        let inside = target("svc/web", "default", None, &m, false).unwrap();
        assert_eq!(inside.address, "10.96.0.5:80".parse().unwrap());
        assert_eq!(inside.port.unwrap().1, Destination::ClusterIp);
        let outside = target("svc/web:http", "default", None, &m, true).unwrap();
        assert_eq!(outside.address, "10.240.0.200:80".parse().unwrap());
        assert_eq!(outside.port.unwrap().1, Destination::ExternalAddress);
        let udp = target("svc/dns:53", "kube-system", None, &m, false).unwrap();
        assert_eq!((udp.address.port(), udp.protocol), (53, Protocol::Udp));
    }

    #[test]
    fn addresses_find_their_service_port() {
        let m = model();
        let np = target("10.240.0.11:30080", "default", None, &m, true).unwrap();
        assert_eq!(np.port.unwrap().1, Destination::NodePort);
        // the same port over another protocol is no service
        let none = target("10.96.0.10:53", "default", Some(Protocol::Tcp), &m, false).unwrap();
        assert!(none.port.is_none());
    }

    #[test]
    fn bad_destinations_say_what_to_write() {
        let m = model();
        let e = target("web", "default", None, &m, false).unwrap_err().to_string();
        assert!(e.contains("say svc/NAME[:PORT] or ADDRESS:PORT"), "{e}");
        let e = target("svc/web:9999", "default", None, &m, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no such port"), "{e}");
        let e = target("svc/nope", "default", None, &m, false).unwrap_err().to_string();
        assert!(e.contains("default/nope"), "{e}");
    }
}
