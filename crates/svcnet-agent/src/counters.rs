//! Per-service traffic counters: the dataplane's `service-traffic` and `nodeport-traffic`
//! sets count, per element, the packets and bytes sent to each service address and port and
//! to each node port. At scrape time they are read from the kernel (over netlink, or with
//! `nft -j` for the text backend) and named after the Services they belong to. Parsing and
//! naming are pure; only [`read`] talks to the kernel.
//!
//! A scrape at 50,000 services handles 50,000 counters: each is small (no string of its
//! own), the index shares one label per service port, and the text is written once, so a
//! scrape costs a few MiB rather than the tens it took.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use std::path::Path;

use serde_json::Value;
use svcnet_dataplane::backend::BackendKind;
use svcnet_dataplane::ir::Family;
use svcnet_dataplane::model::ServicePort;
use svcnet_dataplane::netlink::dump::{self, RawAttrs};
use svcnet_dataplane::netlink::socket::NfSocket;
use svcnet_dataplane::netlink::wire::Attrs;

/// One counting element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The service address; `None` for a node port (any local address).
    pub address: Option<IpAddr>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
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
            let (Some(protocol), Some(port)) = (rest[0].as_str().and_then(protocol_name), rest[1].as_u64()) else {
                continue;
            };
            out.push(Counter {
                address,
                protocol,
                port: port as u16,
                packets: e["counter"]["packets"].as_u64().unwrap_or(0),
                bytes: e["counter"]["bytes"].as_u64().unwrap_or(0),
            });
        }
    }
    out
}

/// The protocol names the counters use, as static strings.
fn protocol_name(name: &str) -> Option<&'static str> {
    ["tcp", "udp", "sctp"]
        .into_iter()
        .find(|p| p.eq_ignore_ascii_case(name))
}

/// Key (address, protocol, port) → the Service labels of every address and node port of
/// `services`: `namespace="…",service="…",port="…",protocol="…"`, one string shared by a
/// port's keys.
pub type Index = HashMap<(Option<IpAddr>, &'static str, u16), Arc<str>>;

/// The index of the given service ports (their addresses and node ports).
pub fn index<'a>(ports: impl IntoIterator<Item = &'a ServicePort>) -> Index {
    let mut out = Index::new();
    for p in ports {
        let Some(protocol) = protocol_name(p.protocol.as_str()) else {
            continue;
        };
        let label: Arc<str> = format!(
            "namespace=\"{}\",service=\"{}\",port=\"{}\",protocol=\"{}\"",
            escape(&p.namespace),
            escape(&p.name),
            escape(&p.port_name),
            protocol.to_ascii_uppercase()
        )
        .into();
        for a in p.cluster_ips.iter().chain(&p.external_ips).chain(&p.load_balancer_ips) {
            out.insert((Some(*a), protocol, p.port), label.clone());
        }
        if let Some(np) = p.node_port {
            out.insert((None, protocol, np), label.clone());
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The counters as Prometheus metrics, labelled with their Service (elements of Services the
/// index does not know yet are left out).
/// All at once; the agent sends [`Rendering`]'s chunks instead.
pub fn render(counters: &[Counter], index: &Index) -> String {
    Rendering::new(counters.to_vec(), index.clone()).collect()
}

/// The metrics text a chunk at a time (about 64 KiB), so a scrape at 50,000 services never
/// holds its whole text (tens of MiB).
pub struct Rendering {
    counters: Vec<Counter>,
    index: Index,
    /// 0: packets, 1: bytes, 2: done.
    metric: usize,
    next: usize,
}

/// Lines per chunk.
const LINES_PER_CHUNK: usize = 400;

impl Rendering {
    pub fn new(counters: Vec<Counter>, index: Index) -> Self {
        Rendering {
            counters,
            index,
            metric: 0,
            next: 0,
        }
    }
}

impl Iterator for Rendering {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        const METRICS: [(&str, &str); 2] = [("packets", "Packets"), ("bytes", "Bytes")];
        let (unit, what) = *METRICS.get(self.metric)?;
        let mut out = String::with_capacity(LINES_PER_CHUNK * 170);
        if self.next == 0 {
            let _ = writeln!(
                out,
                "# HELP svcnet_service_{unit}_total {what} sent to a service address or node port (before DNAT).\n\
                 # TYPE svcnet_service_{unit}_total counter"
            );
        }
        let end = (self.next + LINES_PER_CHUNK).min(self.counters.len());
        for c in &self.counters[self.next..end] {
            let Some(labels) = self.index.get(&(c.address, c.protocol, c.port)) else {
                continue;
            };
            let value = if self.metric == 0 { c.packets } else { c.bytes };
            let _ = write!(out, "svcnet_service_{unit}_total{{{labels},destination=\"");
            let _ = match c.address {
                Some(IpAddr::V6(a)) => write!(out, "[{a}]:{}", c.port),
                Some(a) => write!(out, "{a}:{}", c.port),
                None => write!(out, "nodeport:{}", c.port),
            };
            let _ = writeln!(out, "\"}} {value}");
        }
        self.next = end;
        if self.next >= self.counters.len() {
            self.metric += 1;
            self.next = 0;
        }
        Some(out)
    }
}

/// The counters in element attribute lists as the kernel dumps them: the key (address,
/// protocol and port, each padded to 4 bytes; or protocol and port) and the counter
/// expression's bytes and packets.
pub fn parse_elements(elements: &[RawAttrs]) -> Vec<Counter> {
    elements.iter().filter_map(parse_element).collect()
}

/// One element's counter (see [`parse_elements`]); `None` for an element of another shape.
pub fn parse_element(e: &RawAttrs) -> Option<Counter> {
    use svcnet_dataplane::netlink::consts::{
        NFTA_COUNTER_BYTES as COUNTER_BYTES, NFTA_COUNTER_PACKETS as COUNTER_PACKETS, NFTA_DATA_VALUE as DATA_VALUE,
        NFTA_EXPR_DATA as EXPR_DATA, NFTA_SET_ELEM_EXPR as ELEM_EXPR, NFTA_SET_ELEM_KEY as ELEM_KEY,
    };
    let attr = |attrs: &[u8], kind: u16| Attrs(attrs).find(|a| a.kind == kind).map(|a| a.value.to_vec());
    let be64 = |b: Option<Vec<u8>>| b.and_then(|b| Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?)));
    let find = |kind| e.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.as_slice());
    let key = find(ELEM_KEY).and_then(|k| attr(k, DATA_VALUE))?;
    let (address, rest): (Option<IpAddr>, &[u8]) = match key.len() {
        8 => (None, &key[..]),
        12 => (
            Some(IpAddr::from(<[u8; 4]>::try_from(&key[..4]).expect("4 bytes"))),
            &key[4..],
        ),
        24 => (
            Some(IpAddr::from(<[u8; 16]>::try_from(&key[..16]).expect("16 bytes"))),
            &key[16..],
        ),
        _ => return None,
    };
    let protocol = match rest[0] {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => return None,
    };
    let port = u16::from_be_bytes([rest[4], rest[5]]);
    let counter = find(ELEM_EXPR).and_then(|x| attr(x, EXPR_DATA)).unwrap_or_default();
    Some(Counter {
        address,
        protocol,
        port,
        packets: be64(attr(&counter, COUNTER_PACKETS)).unwrap_or(0),
        bytes: be64(attr(&counter, COUNTER_BYTES)).unwrap_or(0),
    })
}

const COUNTING_SETS: [&str; 2] = ["service-traffic", "nodeport-traffic"];

/// Reads every counting set (both families) from the kernel, in `netns` if given, the way
/// `backend` talks to it.
pub fn read(netns: Option<&str>, backend: BackendKind) -> Vec<Counter> {
    match backend {
        BackendKind::Netlink => read_netlink(netns),
        BackendKind::NftText => read_nft(netns),
    }
}

fn read_netlink(netns: Option<&str>) -> Vec<Counter> {
    let socket = NfSocket::open(netns.map(|ns| Path::new("/run/netns").join(ns)).as_deref());
    let Ok(mut socket) = socket else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for family in [Family::Ip, Family::Ip6] {
        for set in COUNTING_SETS {
            let _ = dump::for_each_element(&mut socket, family, set, &mut |e| out.extend(parse_element(&e)));
        }
    }
    out
}

fn read_nft(netns: Option<&str>) -> Vec<Counter> {
    let mut out = Vec::new();
    for family in ["ip", "ip6"] {
        for set in COUNTING_SETS {
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
    use k8s_openapi::api::core::v1::Service;

    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "ip", "name": "service-traffic", "table": "svcnet",
        "elem": [{"elem": {"val": {"concat": ["10.96.40.109", "tcp", 80]}, "counter": {"packets": 8, "bytes": 464}}},
                 {"elem": {"val": {"concat": ["10.96.0.99", "udp", 53]}, "counter": {"packets": 1, "bytes": 60}}}]}}]}"#;

    #[test]
    fn counters_are_read_from_dumped_elements() {
        use svcnet_dataplane::netlink::wire::Writer;
        let tlv = |kind: u16, v: &[u8]| {
            let mut w = Writer::default();
            w.put(kind, v);
            w.buf
        };
        let key = tlv(1, &[10, 96, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0]);
        let counter = [
            tlv(1, b"counter\0"),
            tlv(
                2,
                &[tlv(1, &464u64.to_be_bytes()), tlv(2, &8u64.to_be_bytes())].concat(),
            ),
        ]
        .concat();
        let node_port = tlv(1, &[6, 0, 0, 0, 0x7d, 0xd8, 0, 0]);
        let counters = parse_elements(&[
            vec![(1, key), (7, counter)],
            vec![(1, node_port)],
            vec![(1, vec![1, 2])],
        ]);
        assert_eq!(
            counters,
            vec![
                Counter {
                    address: Some("10.96.0.1".parse().unwrap()),
                    protocol: "udp",
                    port: 53,
                    packets: 8,
                    bytes: 464,
                },
                Counter {
                    address: None,
                    protocol: "tcp",
                    port: 32216,
                    packets: 0,
                    bytes: 0,
                },
            ]
        );
    }

    #[test]
    fn the_text_comes_in_bounded_chunks_with_every_counter_once() {
        let counters: Vec<Counter> = (0..1000u32)
            .map(|i| Counter {
                address: Some(IpAddr::from([10, 96, (i / 250) as u8, (i % 250) as u8])),
                protocol: "tcp",
                port: 80,
                packets: u64::from(i),
                bytes: u64::from(i) * 60,
            })
            .collect();
        let index: Index = counters
            .iter()
            .step_by(2)
            .map(|c| {
                (
                    (c.address, "tcp", 80),
                    Arc::from("namespace=\"n\",service=\"s\",port=\"\",protocol=\"TCP\""),
                )
            })
            .collect();
        let chunks: Vec<String> = Rendering::new(counters, index).collect();
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < LINES_PER_CHUNK * 170), "bounded");
        let text = chunks.concat();
        for (metric, value) in [("packets", "998"), ("bytes", "59880")] {
            assert_eq!(
                text.matches(&format!("svcnet_service_{metric}_total{{")).count(),
                500,
                "{metric}"
            );
            assert_eq!(
                text.matches(&format!("# TYPE svcnet_service_{metric}_total counter"))
                    .count(),
                1
            );
            assert!(
                text.contains(&format!("destination=\"10.96.3.248:80\"}} {value}\n")),
                "{metric}"
            );
        }
    }

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
            "spec": {"type": "NodePort", "clusterIP": "10.96.40.109", "clusterIPs": ["10.96.40.109"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                     "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080}]},
        }))
        .unwrap();
        let ports = svcnet_dataplane::model::service_ports(&svc).expect("a proxied service");
        let text = render(&all, &index(&ports));
        assert!(text.contains(r#"svcnet_service_packets_total{namespace="default",service="demo",port="http",protocol="TCP",destination="10.96.40.109:80"} 8"#), "{text}");
        assert!(text.contains(r#"svcnet_service_bytes_total{namespace="default",service="demo",port="http",protocol="TCP",destination="nodeport:30080"} 180"#), "{text}");
        assert!(!text.contains("10.96.0.99"), "unknown elements are left out: {text}");
        assert!(parse("not json").is_empty());
    }
}
