//! Per-service traffic counters: the dataplane's `service-traffic` and `nodeport-traffic`
//! sets count, per element, the packets and bytes sent to each service address and port and
//! to each node port. At scrape time they are read with `nft -j` and named after the Services
//! they belong to. Parsing and naming are pure; only [`read`] runs nft.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

/// One counting element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The service address; `None` for a node port (any local address).
    pub address: Option<IpAddr>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub port: u16,
    pub packets: u64,
    pub bytes: u64,
}

/// The counters in `nft -j list set ...` output.
pub fn parse(json: &str) -> Vec<Counter> {
    let Ok(doc) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in doc["nftables"].as_array().into_iter().flatten() {
        for elem in item["set"]["elem"].as_array().into_iter().flatten() {
            let e = &elem["elem"];
            let parts: Vec<&Value> = e["val"]["concat"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let (address, rest) = match parts.as_slice() {
                [addr, proto, port] => (addr.as_str().and_then(|a| a.parse().ok()), [*proto, *port]),
                [proto, port] => (None, [*proto, *port]),
                _ => continue,
            };
            let (Some(protocol), Some(port)) = (rest[0].as_str(), rest[1].as_u64()) else {
                continue;
            };
            out.push(Counter {
                address,
                protocol: protocol.to_owned(),
                port: port as u16,
                packets: e["counter"]["packets"].as_u64().unwrap_or(0),
                bytes: e["counter"]["bytes"].as_u64().unwrap_or(0),
            });
        }
    }
    out
}

/// Key → (namespace, service, port name) for every address and node port of `services`.
pub type Index = BTreeMap<(Option<IpAddr>, String, u16), (String, String, String)>;

pub fn index(services: &[std::sync::Arc<Service>]) -> Index {
    let mut out = Index::new();
    for svc in services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &svc.spec else { continue };
        let mut addresses: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.external_ips.iter().flatten())
            .filter_map(|a| a.parse().ok())
            .collect();
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref());
        addresses.extend(
            ingress
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_ref()?.parse::<IpAddr>().ok()),
        );
        for p in spec.ports.iter().flatten() {
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
            let label = (ns.clone(), name.clone(), p.name.clone().unwrap_or_default());
            for a in &addresses {
                out.insert((Some(*a), protocol.clone(), p.port as u16), label.clone());
            }
            if let Some(np) = p.node_port {
                out.insert((None, protocol.clone(), np as u16), label.clone());
            }
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The counters as Prometheus metrics, labelled with their Service (elements of Services the
/// index does not know yet are left out).
pub fn render(counters: &[Counter], index: &Index) -> String {
    let mut packets = String::new();
    let mut bytes = String::new();
    for c in counters {
        let Some((ns, name, port)) = index.get(&(c.address, c.protocol.clone(), c.port)) else {
            continue;
        };
        let destination = match c.address {
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", c.port),
            Some(a) => format!("{a}:{}", c.port),
            None => format!("nodeport:{}", c.port),
        };
        let labels = format!(
            "{{namespace=\"{}\",service=\"{}\",port=\"{}\",protocol=\"{}\",destination=\"{}\"}}",
            escape(ns),
            escape(name),
            escape(port),
            c.protocol.to_ascii_uppercase(),
            destination
        );
        let _ = writeln!(packets, "svcnet_service_packets_total{labels} {}", c.packets);
        let _ = writeln!(bytes, "svcnet_service_bytes_total{labels} {}", c.bytes);
    }
    format!(
        "# HELP svcnet_service_packets_total Packets sent to a service address or node port (before DNAT).\n\
         # TYPE svcnet_service_packets_total counter\n{packets}\
         # HELP svcnet_service_bytes_total Bytes sent to a service address or node port (before DNAT).\n\
         # TYPE svcnet_service_bytes_total counter\n{bytes}"
    )
}

/// Reads every counting set (both families) from the kernel, in `netns` if given.
pub fn read(netns: Option<&str>) -> Vec<Counter> {
    let mut out = Vec::new();
    for family in ["ip", "ip6"] {
        for set in ["service-traffic", "nodeport-traffic"] {
            let mut cmd = match netns {
                Some(ns) => {
                    let mut c = std::process::Command::new("ip");
                    c.args(["netns", "exec", ns, "nft"]);
                    c
                }
                None => std::process::Command::new("nft"),
            };
            cmd.args(["-j", "list", "set", family, "svcnet", set]);
            if let Ok(o) = cmd.output()
                && o.status.success()
            {
                out.extend(parse(&String::from_utf8_lossy(&o.stdout)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "ip", "name": "service-traffic", "table": "svcnet",
        "elem": [{"elem": {"val": {"concat": ["10.96.40.109", "tcp", 80]}, "counter": {"packets": 8, "bytes": 464}}},
                 {"elem": {"val": {"concat": ["10.96.0.99", "udp", 53]}, "counter": {"packets": 1, "bytes": 60}}}]}}]}"#;

    #[test]
    fn counters_are_parsed_and_named_after_their_services() {
        let counters = parse(LISTED);
        assert_eq!(counters.len(), 2);
        assert_eq!(counters[0].packets, 8);
        let mut nodeport = parse(
            r#"{"nftables": [{"set": {"elem": [{"elem": {"val": {"concat": ["tcp", 30080]}, "counter": {"packets": 3, "bytes": 180}}}]}}]}"#,
        );
        assert_eq!(nodeport[0].address, None);
        let mut all = counters;
        all.append(&mut nodeport);
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "demo"},
            "spec": {"clusterIPs": ["10.96.40.109"], "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]},
        }))
        .unwrap();
        let text = render(&all, &index(&[Arc::new(svc)]));
        assert!(text.contains(r#"svcnet_service_packets_total{namespace="default",service="demo",port="http",protocol="TCP",destination="10.96.40.109:80"} 8"#), "{text}");
        assert!(text.contains(r#"svcnet_service_bytes_total{namespace="default",service="demo",port="http",protocol="TCP",destination="nodeport:30080"} 180"#), "{text}");
        assert!(!text.contains("10.96.0.99"), "unknown elements are left out: {text}");
        assert!(parse("not json").is_empty());
    }
}
