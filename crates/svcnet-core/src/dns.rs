//! Cluster DNS: the records Kubernetes' DNS specification (schema 1.1.0) defines for Services
//! and pods, answered from an index of Services and EndpointSlices that is updated one object
//! at a time. No wire format here: a server turns [`Outcome`]s into DNS messages.
//!
//! - `SVC.NS.svc.ZONE`: A/AAAA of the ClusterIPs; of the ready endpoints when headless; a CNAME
//!   to `spec.externalName` for an ExternalName Service; SRV for every port.
//! - `_PORT._PROTO.SVC.NS.svc.ZONE`: SRV per named port (per ready endpoint when headless).
//! - `HOST.SVC.NS.svc.ZONE`: a headless Service's endpoint, by its `hostname` or its dashed
//!   address (`10-244-1-5`).
//! - `A-B-C-D.NS.pod.ZONE`: a pod address, answered from the name itself.
//! - PTR for ClusterIPs and for headless endpoints that have a hostname.
//! - `dns-version.ZONE` TXT: the schema version.
//!
//! Names outside the zone (and the reverse zones) are refused: the lab has no upstream
//! resolver to forward them to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The schema version `dns-version.ZONE` answers.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// Every record's time to live, in seconds (CoreDNS's kubernetes plugin default).
pub const TTL: u32 = 5;
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The query types the index answers (others get no data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryType {
    A,
    Aaaa,
    Cname,
    Srv,
    Ptr,
    Txt,
    Any,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Ptr(String),
    Txt(String),
}

/// One resource record; names are absolute, without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR with records (and the address records of SRV targets as additionals).
    Answer {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// NOERROR, the name exists but has no record of the type asked for.
    NoData,
    /// NXDOMAIN.
    NxDomain,
    /// REFUSED: not a name this server is authoritative for.
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Port {
    name: String,
    protocol: String,
    port: u16,
}

impl Port {
    /// A port as DNS names it: name and protocol lowercased (TCP when unset); `None` for a
    /// number that is no port.
    fn new(name: Option<&str>, protocol: Option<&str>, number: Option<i32>) -> Option<Port> {
        Some(Port {
            name: name.unwrap_or_default().to_ascii_lowercase(),
            protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
            port: u16::try_from(number?).ok()?,
        })
    }
}

#[derive(Clone, Debug)]
struct ServiceEntry {
    cluster_ips: Vec<IpAddr>,
    headless: bool,
    external_name: Option<String>,
    ports: Vec<Port>,
}

#[derive(Clone, Debug)]
struct Endpoint {
    addresses: Vec<IpAddr>,
    hostname: Option<String>,
}

#[derive(Clone, Debug)]
struct SliceEntry {
    service: String,
    ports: Vec<Port>,
    /// Ready endpoints only: the only ones DNS publishes.
    endpoints: Vec<Endpoint>,
}

type Key = (String, String);

/// The index one DNS server answers from.
#[derive(Clone, Debug)]
pub struct ClusterDns {
    zone: String,
    services: BTreeMap<Key, ServiceEntry>,
    slices: BTreeMap<Key, SliceEntry>,
    /// (namespace, service) → its slices' names.
    slices_of: BTreeMap<Key, BTreeSet<String>>,
}

/// `10.244.1.5` → `10-244-1-5`; `fd00::5` → `fd00--5`.
pub fn dashed(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

fn undashed(label: &str) -> Option<IpAddr> {
    label
        .replace('-', ".")
        .parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .ok()
        .or_else(|| label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6))
}

fn address_record(name: &str, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(a) => Data::A(a),
        IpAddr::V6(a) => Data::Aaaa(a),
    };
    Record {
        name: name.to_owned(),
        ttl: TTL,
        data,
    }
}

fn wants(qtype: QueryType, ip: &IpAddr) -> bool {
    match qtype {
        QueryType::A => ip.is_ipv4(),
        QueryType::Aaaa => ip.is_ipv6(),
        QueryType::Any => true,
        _ => false,
    }
}

fn answer_or_nodata(answers: Vec<Record>, additionals: Vec<Record>) -> Outcome {
    if answers.is_empty() {
        Outcome::NoData
    } else {
        Outcome::Answer { answers, additionals }
    }
}

/// The address a PTR name stands for (`5.1.244.10.in-addr.arpa`, or 32 nibbles under
/// `ip6.arpa`).
fn reverse_address(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = rest.split('.').map(|o| o.parse().ok()).collect::<Option<_>>()?;
        if octets.len() != 4 {
            return None;
        }
        octets.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3])));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|n| u8::from_str_radix(n, 16).ok().filter(|_| n.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        bytes[i] = (pair[1] << 4) | pair[0];
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

impl ClusterDns {
    /// An empty index for `zone` (`cluster.local`).
    pub fn new(zone: &str) -> Self {
        ClusterDns {
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            services: BTreeMap::new(),
            slices: BTreeMap::new(),
            slices_of: BTreeMap::new(),
        }
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// `(namespace, name)` of every Service indexed (to drop those a relist no longer has).
    pub fn service_keys(&self) -> Vec<(String, String)> {
        self.services.keys().cloned().collect()
    }

    /// `(namespace, name)` of every EndpointSlice indexed.
    pub fn slice_keys(&self) -> Vec<(String, String)> {
        self.slices.keys().cloned().collect()
    }

    /// Adds or replaces a Service.
    pub fn set_service(&mut self, svc: &Service) {
        let (Some(ns), Some(name)) = (svc.metadata.namespace.clone(), svc.metadata.name.clone()) else {
            return;
        };
        let spec = svc.spec.clone().unwrap_or_default();
        let external_name = (spec.type_.as_deref() == Some("ExternalName"))
            .then(|| spec.external_name.clone())
            .flatten()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        let headless = spec.cluster_ip.as_deref() == Some("None");
        let cluster_ips = spec
            .cluster_ips
            .clone()
            .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
            .unwrap_or_default()
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Port::new(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
            .collect();
        self.services.insert(
            (ns, name),
            ServiceEntry {
                cluster_ips,
                headless,
                external_name,
                ports,
            },
        );
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        self.services.remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Adds or replaces an EndpointSlice (one without a Service label is ignored).
    pub fn set_slice(&mut self, slice: &EndpointSlice) {
        let (Some(ns), Some(name)) = (slice.metadata.namespace.clone(), slice.metadata.name.clone()) else {
            return;
        };
        self.remove_slice(&ns, &name);
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
        else {
            return;
        };
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Port::new(p.name.as_deref(), p.protocol.as_deref(), p.port))
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .map(|e| Endpoint {
                addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                hostname: e.hostname.clone().map(|h| h.to_ascii_lowercase()),
            })
            .collect();
        self.slices_of
            .entry((ns.clone(), service.clone()))
            .or_default()
            .insert(name.clone());
        self.slices.insert(
            (ns, name),
            SliceEntry {
                service,
                ports,
                endpoints,
            },
        );
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(old) = self.slices.remove(&key) {
            let owner = (key.0, old.service);
            if let Some(names) = self.slices_of.get_mut(&owner) {
                names.remove(&key.1);
                if names.is_empty() {
                    self.slices_of.remove(&owner);
                }
            }
        }
    }

    fn slices_for(&self, ns: &str, service: &str) -> Vec<&SliceEntry> {
        let names = self.slices_of.get(&(ns.to_owned(), service.to_owned()));
        names
            .into_iter()
            .flatten()
            .filter_map(|slice| self.slices.get(&(ns.to_owned(), slice.clone())))
            .collect()
    }

    /// A headless Service's ready endpoints, each with its DNS label, once per label.
    fn endpoints_of(&self, ns: &str, service: &str) -> Vec<(String, &Endpoint)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for slice in self.slices_for(ns, service) {
            for ep in &slice.endpoints {
                let Some(first) = ep.addresses.first() else { continue };
                let label = ep.hostname.clone().unwrap_or_else(|| dashed(first));
                if seen.insert(label.clone()) {
                    out.push((label, ep));
                }
            }
        }
        out
    }

    /// The SOA record of the zone, for the authority section of negative answers.
    pub fn soa_fields(&self) -> (String, String) {
        (format!("ns.dns.{}", self.zone), format!("hostmaster.{}", self.zone))
    }

    /// Answers a query for `name` (any case, with or without the trailing dot).
    pub fn resolve(&self, name: &str, qtype: QueryType) -> Outcome {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.ends_with(".in-addr.arpa") || name.ends_with(".ip6.arpa") {
            return self.reverse(&name, qtype);
        }
        let rest = if name == self.zone {
            ""
        } else if let Some(rest) = name.strip_suffix(&format!(".{}", self.zone)) {
            rest
        } else {
            return Outcome::Refused;
        };
        if rest == "dns-version" {
            return match qtype {
                QueryType::Txt | QueryType::Any => answer_or_nodata(
                    vec![Record {
                        name,
                        ttl: TTL,
                        data: Data::Txt(SCHEMA_VERSION.into()),
                    }],
                    vec![],
                ),
                _ => Outcome::NoData,
            };
        }
        let labels: Vec<&str> = if rest.is_empty() {
            vec![]
        } else {
            rest.split('.').collect()
        };
        match labels.as_slice() {
            [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => Outcome::NoData,
            [service, ns, "svc"] => self.service(&name, ns, service, qtype),
            [port, proto, service, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.named_port(&name, ns, service, &port[1..], &proto[1..], qtype)
            }
            [host, service, ns, "svc"] => self.endpoint(&name, ns, service, host, qtype),
            [pod, _, "pod"] => match undashed(pod) {
                Some(ip) if wants(qtype, &ip) => answer_or_nodata(vec![address_record(&name, ip)], vec![]),
                Some(_) => Outcome::NoData,
                None => Outcome::NxDomain,
            },
            _ => Outcome::NxDomain,
        }
    }

    fn service_name(&self, ns: &str, service: &str) -> String {
        format!("{service}.{ns}.svc.{}", self.zone)
    }

    fn service(&self, name: &str, ns: &str, service: &str, qtype: QueryType) -> Outcome {
        let Some(entry) = self.services.get(&(ns.to_owned(), service.to_owned())) else {
            return Outcome::NxDomain;
        };
        if let Some(target) = &entry.external_name {
            let cname = Record {
                name: name.to_owned(),
                ttl: TTL,
                data: Data::Cname(target.clone()),
            };
            return Outcome::Answer {
                answers: vec![cname],
                additionals: vec![],
            };
        }
        if qtype == QueryType::Srv {
            let (mut answers, mut additionals) = (vec![], vec![]);
            for port in &entry.ports {
                let (a, b) = self.srv_for(name, ns, service, entry, port.port);
                answers.extend(a);
                additionals.extend(b);
            }
            spread_weights(&mut answers);
            return answer_or_nodata(answers, dedup(additionals));
        }
        let ips: Vec<IpAddr> = if entry.headless {
            self.endpoints_of(ns, service)
                .into_iter()
                .flat_map(|(_, ep)| ep.addresses.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            entry.cluster_ips.clone()
        };
        let answers = ips
            .into_iter()
            .filter(|ip| wants(qtype, ip))
            .map(|ip| address_record(name, ip))
            .collect();
        answer_or_nodata(answers, vec![])
    }

    /// SRV records (and their targets' addresses) for one port of a Service (weights to be
    /// spread by [`spread_weights`] over the whole answer): the Service's
    /// own name as target, or each ready endpoint's name when headless.
    fn srv_for(
        &self,
        name: &str,
        ns: &str,
        service: &str,
        entry: &ServiceEntry,
        port: u16,
    ) -> (Vec<Record>, Vec<Record>) {
        let srv = |target: String, weight: u16, port: u16| Record {
            name: name.to_owned(),
            ttl: TTL,
            data: Data::Srv {
                priority: 0,
                weight,
                port,
                target,
            },
        };
        let base = self.service_name(ns, service);
        if !entry.headless {
            let additionals = entry.cluster_ips.iter().map(|ip| address_record(&base, *ip)).collect();
            return (vec![srv(base.clone(), 100, port)], additionals);
        }
        let (mut answers, mut additionals) = (vec![], vec![]);
        for (label, ep) in self.endpoints_of(ns, service) {
            let target = format!("{label}.{base}");
            answers.push(srv(target.clone(), 100, port));
            additionals.extend(ep.addresses.iter().map(|ip| address_record(&target, *ip)));
        }
        (answers, additionals)
    }

    fn named_port(&self, name: &str, ns: &str, service: &str, port: &str, proto: &str, qtype: QueryType) -> Outcome {
        let Some(entry) = self.services.get(&(ns.to_owned(), service.to_owned())) else {
            return Outcome::NxDomain;
        };
        // a headless Service's ports are its endpoints' (target) ports
        let ports: Vec<Port> = if entry.headless {
            self.slices_for(ns, service)
                .into_iter()
                .flat_map(|s| s.ports.clone())
                .collect()
        } else {
            entry.ports.clone()
        };
        let Some(found) = ports
            .iter()
            .find(|p| !p.name.is_empty() && p.name == port && p.protocol == proto)
        else {
            return Outcome::NxDomain;
        };
        if !matches!(qtype, QueryType::Srv | QueryType::Any) {
            return Outcome::NoData;
        }
        let (mut answers, additionals) = self.srv_for(name, ns, service, entry, found.port);
        spread_weights(&mut answers);
        answer_or_nodata(answers, dedup(additionals))
    }

    fn endpoint(&self, name: &str, ns: &str, service: &str, host: &str, qtype: QueryType) -> Outcome {
        let Some(entry) = self.services.get(&(ns.to_owned(), service.to_owned())) else {
            return Outcome::NxDomain;
        };
        if !entry.headless {
            return Outcome::NxDomain;
        }
        let Some((_, ep)) = self
            .endpoints_of(ns, service)
            .into_iter()
            .find(|(label, _)| label == host)
        else {
            return Outcome::NxDomain;
        };
        let answers = ep
            .addresses
            .iter()
            .filter(|ip| wants(qtype, ip))
            .map(|ip| address_record(name, *ip))
            .collect();
        answer_or_nodata(answers, vec![])
    }

    fn reverse(&self, name: &str, qtype: QueryType) -> Outcome {
        let Some(ip) = reverse_address(name) else {
            return Outcome::NxDomain;
        };
        let mut targets = BTreeSet::new();
        for ((ns, service), entry) in &self.services {
            if entry.cluster_ips.contains(&ip) {
                targets.insert(self.service_name(ns, service));
            }
            if entry.headless {
                for (label, ep) in self.endpoints_of(ns, service) {
                    if ep.hostname.is_some() && ep.addresses.contains(&ip) {
                        targets.insert(format!("{label}.{}", self.service_name(ns, service)));
                    }
                }
            }
        }
        if targets.is_empty() {
            return Outcome::NxDomain;
        }
        if !matches!(qtype, QueryType::Ptr | QueryType::Any) {
            return Outcome::NoData;
        }
        let answers = targets
            .into_iter()
            .map(|t| Record {
                name: name.to_owned(),
                ttl: TTL,
                data: Data::Ptr(t),
            })
            .collect();
        answer_or_nodata(answers, vec![])
    }
}

fn dedup(records: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for r in records {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// Shares a weight of 100 equally among an answer's SRV records (at least 1 each), as
/// CoreDNS's kubernetes plugin weighs them: over every record of the answer, all ports'.
fn spread_weights(answers: &mut [Record]) {
    let count = answers.iter().filter(|r| matches!(r.data, Data::Srv { .. })).count();
    let share = u16::try_from(100 / count.max(1)).unwrap_or(100).max(1);
    for record in answers {
        if let Data::Srv { weight, .. } = &mut record.data {
            *weight = share;
        }
    }
}
