//! The proxy model: the node-local view the rule compiler needs. It holds which service ports
//! exist, which endpoints back each (with readiness and node), this node's identity and
//! addresses, and the proxy configuration. It is built from Services and EndpointSlices, and
//! services a proxy must ignore are dropped here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::{Deserialize, Serialize};
use svcnet_core::endpoints::{LABEL_HEADLESS, LABEL_SERVICE_NAME};
use svcnet_core::service::model::{Protocol, ServiceModel, ServiceType, TrafficPolicy};

/// Services carrying this label belong to another proxy.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// svcnet's annotation choosing how a Service's new connections pick an endpoint:
/// `maglev` for consistent hashing of the flow (see [`LoadBalancing`]).
pub const ANNOTATION_LOAD_BALANCING: &str = "svcnet.io/load-balancing";

/// How new connections pick among a service port's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoadBalancing {
    /// Uniformly at random, as kube-proxy does.
    #[default]
    Random,
    /// By a Maglev table over a hash of the flow's addresses and ports, so a change of one of
    /// N endpoints moves about 1/N of new connections (see [`crate::maglev`]).
    Maglev,
}

impl LoadBalancing {
    /// What a Service's annotations ask for (anything but `maglev` is the default).
    pub fn of(annotations: &std::collections::BTreeMap<String, String>) -> Self {
        match annotations.get(ANNOTATION_LOAD_BALANCING).map(String::as_str) {
            Some("maglev") => LoadBalancing::Maglev,
            _ => LoadBalancing::Random,
        }
    }
}

/// Proxy settings (the parts of upstream's KubeProxyConfiguration that apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyConfig {
    /// Masquerade all traffic to cluster IPs, not only traffic from outside the pod CIDRs.
    pub masquerade_all: bool,
    /// CIDRs whose node addresses serve NodePorts; empty means every local address.
    pub node_port_addresses: Vec<IpNet>,
    /// The packet mark bit that asks for masquerade.
    pub masquerade_bit: u32,
    /// Buckets of each Maglev table (a prime; see [`crate::maglev`]).
    pub maglev_table_size: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            masquerade_all: false,
            node_port_addresses: vec![],
            masquerade_bit: 0x4000,
            maglev_table_size: crate::maglev::TABLE_SIZE,
        }
    }
}

/// Whether an endpoint carries node hints, and whether one names this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeHint {
    #[default]
    None,
    ThisNode,
    OtherNodes,
}

/// An endpoint's topology hints as one node reads them (see [`Topology`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hints {
    /// The zones it is hinted for; empty when it has no zone hints. A boxed slice, not a
    /// vector: every endpoint of a large cluster holds one, twice in the agent.
    pub zones: Box<[String]>,
    pub node: NodeHint,
}

impl Hints {
    /// The hints of `ep` for the proxy of node `node_name`.
    pub fn of(ep: &k8s_openapi::api::discovery::v1::Endpoint, node_name: &str) -> Self {
        let Some(hints) = &ep.hints else {
            return Hints::default();
        };
        let nodes = hints.for_nodes.as_deref().unwrap_or(&[]);
        Hints {
            zones: hints.for_zones.iter().flatten().map(|z| z.name.clone()).collect(),
            node: if nodes.is_empty() {
                NodeHint::None
            } else if nodes.iter().any(|n| n.name == node_name) {
                NodeHint::ThisNode
            } else {
                NodeHint::OtherNodes
            },
        }
    }
}

/// One endpoint of one service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    /// The endpoint runs on this node.
    pub is_local: bool,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    #[serde(default)]
    pub hints: Hints,
}

/// Which endpoints a node uses for Cluster-policy traffic, from the ready endpoints' hints
/// (upstream kube-proxy's rule): its own node's when every ready endpoint has node hints and
/// one names this node; else its zone's when every ready endpoint has zone hints and one
/// names this node's zone; else all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology<'a> {
    All,
    SameNode,
    SameZone(&'a str),
}

impl<'a> Topology<'a> {
    pub fn from_hints(endpoints: &[Endpoint], zone: Option<&'a str>) -> Self {
        let mut ready = endpoints.iter().filter(|e| e.ready).peekable();
        if ready.peek().is_none() {
            return Topology::All;
        }
        let ready: Vec<&Endpoint> = ready.collect();
        if ready.iter().all(|e| e.hints.node != NodeHint::None)
            && ready.iter().any(|e| e.hints.node == NodeHint::ThisNode)
        {
            return Topology::SameNode;
        }
        if let Some(zone) = zone
            && ready.iter().all(|e| !e.hints.zones.is_empty())
            && ready.iter().any(|e| e.hints.zones.iter().any(|z| z == zone))
        {
            return Topology::SameZone(zone);
        }
        Topology::All
    }

    pub fn admits(self, ep: &Endpoint) -> bool {
        match self {
            Topology::All => true,
            Topology::SameNode => ep.hints.node == NodeHint::ThisNode,
            Topology::SameZone(zone) => ep.hints.zones.iter().any(|z| z == zone),
        }
    }
}

/// A service port as the proxy sees it: every address it is reachable on and its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub cluster_ips: Vec<IpAddr>,
    pub external_ips: Vec<IpAddr>,
    pub load_balancer_ips: Vec<IpAddr>,
    pub load_balancer_source_ranges: Vec<IpNet>,
    pub node_port: Option<u16>,
    pub external_traffic_policy: Policy,
    pub internal_traffic_policy: Policy,
    pub affinity_timeout_seconds: Option<u32>,
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// Sorted by address then port.
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Policy {
    Cluster,
    Local,
}

impl From<TrafficPolicy> for Policy {
    fn from(p: TrafficPolicy) -> Self {
        match p {
            TrafficPolicy::Cluster => Policy::Cluster,
            TrafficPolicy::Local => Policy::Local,
        }
    }
}

impl ServicePort {
    /// A ClusterIP service port with these endpoints and every other field at its default
    /// (no external addresses, no node port, Cluster policies, no affinity).
    pub fn cluster_ip(
        namespace: &str,
        name: &str,
        port_name: &str,
        protocol: Protocol,
        port: u16,
        cluster_ips: Vec<IpAddr>,
        endpoints: Vec<Endpoint>,
    ) -> Self {
        ServicePort {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port_name: port_name.to_owned(),
            protocol,
            port,
            cluster_ips,
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            node_port: None,
            external_traffic_policy: Policy::Cluster,
            internal_traffic_policy: Policy::Cluster,
            affinity_timeout_seconds: None,
            load_balancing: LoadBalancing::Random,
            endpoints,
        }
    }

    /// `namespace/name/protocol/portName` (the port number when unnamed), unique per
    /// service port.
    pub fn id(&self) -> String {
        let port = if self.port_name.is_empty() {
            self.port.to_string()
        } else {
            self.port_name.clone()
        };
        format!(
            "{}/{}/{}/{port}",
            self.namespace,
            self.name,
            self.protocol.as_str().to_lowercase()
        )
    }

    /// Endpoints that receive new connections under the Cluster policy on a node in `zone`:
    /// the ready ones its [`Topology`] admits, or when none is ready anywhere, the serving
    /// ones that are terminating (graceful-termination fallback).
    pub fn cluster_endpoints(&self, zone: Option<&str>) -> Vec<&Endpoint> {
        let topology = Topology::from_hints(&self.endpoints, zone);
        usable(self.endpoints.iter().filter(move |e| !e.ready || topology.admits(e)))
    }

    /// The same choice among this node's endpoints.
    pub fn local_endpoints(&self) -> Vec<&Endpoint> {
        usable(self.endpoints.iter().filter(|e| e.is_local))
    }

    pub fn has_external_destinations(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }
}

fn usable<'a>(eps: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = eps.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    eps.filter(|e| e.serving && e.terminating).collect()
}

/// Everything the compiler needs for one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyModel {
    pub node_name: String,
    /// This node's addresses (NodePorts are served on those within `nodePortAddresses`).
    pub node_ips: Vec<IpAddr>,
    /// The pod CIDRs: traffic from them is in-cluster.
    pub cluster_cidrs: Vec<IpNet>,
    /// The service CIDRs: traffic to an unallocated address there is dropped.
    pub service_cidrs: Vec<IpNet>,
    pub config: ProxyConfig,
    /// This node's `topology.kubernetes.io/zone`, which zone hints are read against.
    #[serde(default)]
    pub node_zone: Option<String>,
    /// Keyed by `ServicePort::id()`.
    pub ports: BTreeMap<String, ServicePort>,
}

/// A model reduced to its node-wide inputs and one hash per service port: what the periodic
/// check compares with the incrementally maintained state, without a second copy of every
/// port and endpoint. A digest may cover one [`DigestPart`] of the Services only, so a large
/// model is checked a part at a time and no check holds up the events for long.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelDigest {
    /// The node-wide inputs (its `ports` stay empty).
    pub node: ProxyModel,
    /// Which Services' ports it covers.
    pub part: DigestPart,
    /// Each covered port's [`port_hash`] by its id.
    pub ports: BTreeMap<String, u64>,
}

impl ModelDigest {
    /// A digest of the whole of `model`.
    pub fn of(model: &ProxyModel) -> Self {
        Self::of_part(model, DigestPart::WHOLE)
    }

    /// A digest of the ports of `model` in `part`.
    pub fn of_part(model: &ProxyModel, part: DigestPart) -> Self {
        let mut digest = ModelDigest {
            node: model.clone_node_wide(),
            part,
            ports: BTreeMap::new(),
        };
        model
            .ports
            .iter()
            .filter(|(id, _)| part.holds_port(id))
            .for_each(|(_, p)| digest.add(p));
        digest
    }

    pub fn add(&mut self, port: &ServicePort) {
        self.ports.insert(port.id(), port_hash(port));
    }
}

/// Part `index` of `count`: the Services whose namespace and name hash to `index` modulo
/// `count` (every port of a Service falls in the same part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestPart {
    pub index: u32,
    pub count: u32,
}

impl Default for DigestPart {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl DigestPart {
    pub const WHOLE: DigestPart = DigestPart { index: 0, count: 1 };

    /// Whether the Service `namespace/name` is in this part.
    pub fn holds_service(&self, namespace: &str, name: &str) -> bool {
        self.count <= 1 || service_hash(namespace, name) % u64::from(self.count) == u64::from(self.index)
    }

    /// Whether the port with this id ([`ServicePort::id`]: `namespace/name/...`) is in this
    /// part.
    pub fn holds_port(&self, id: &str) -> bool {
        let mut fields = id.splitn(3, '/');
        let (namespace, name) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        self.holds_service(namespace, name)
    }
}

/// FNV-1a over `namespace/name`: the same in every process, so the sender and the receiver
/// of a digest part agree on what it covers.
fn service_hash(namespace: &str, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes().chain(std::iter::once(b'/')).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A hash of everything in a service port (stable within one build of svcnet).
pub fn port_hash(port: &ServicePort) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    port.hash(&mut h);
    h.finish()
}

impl ProxyModel {
    /// The node-wide inputs without the ports.
    pub fn clone_node_wide(&self) -> ProxyModel {
        ProxyModel {
            node_name: self.node_name.clone(),
            node_ips: self.node_ips.clone(),
            cluster_cidrs: self.cluster_cidrs.clone(),
            service_cidrs: self.service_cidrs.clone(),
            config: self.config.clone(),
            node_zone: self.node_zone.clone(),
            ports: BTreeMap::new(),
        }
    }
}

/// Whether the proxy must leave this Service alone.
pub fn is_ignored(svc: &ServiceModel) -> bool {
    svc.labels.contains_key(LABEL_HEADLESS)
        || svc.labels.contains_key(LABEL_SERVICE_PROXY_NAME)
        || svc.headless
        || svc.service_type == ServiceType::ExternalName
}

/// A Service's ports as the proxy sees them, each without endpoints yet; `None` for a Service
/// the proxy leaves alone (see [`is_ignored`]) or one that fails validation (the API server
/// should never have stored it).
pub fn service_ports(svc: &Service) -> Option<Vec<ServicePort>> {
    let model = ServiceModel::from_service(svc).ok()?;
    if is_ignored(&model) {
        return None;
    }
    Some(
        model
            .ports
            .iter()
            .map(|p| ServicePort {
                namespace: model.namespace.clone(),
                name: model.name.clone(),
                port_name: p.name.clone(),
                protocol: p.protocol,
                port: p.port,
                cluster_ips: model.cluster_ips.clone(),
                external_ips: model.external_ips.clone(),
                load_balancer_ips: model.load_balancer_ips.clone(),
                load_balancer_source_ranges: model.load_balancer_source_ranges.clone(),
                node_port: p.node_port,
                external_traffic_policy: model.external_traffic_policy.into(),
                internal_traffic_policy: model.internal_traffic_policy.into(),
                affinity_timeout_seconds: model.affinity_timeout_seconds,
                load_balancing: LoadBalancing::of(&model.annotations),
                endpoints: vec![],
            })
            .collect(),
    )
}

/// The Service an EndpointSlice belongs to (its namespace and `kubernetes.io/service-name`).
pub fn slice_service(slice: &EndpointSlice) -> Option<(String, String)> {
    let name = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    Some((slice.metadata.namespace.clone().unwrap_or_default(), name.clone()))
}

/// One address of an EndpointSlice, as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceAddress {
    pub ip: IpAddr,
    pub is_local: bool,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub hints: Hints,
}

/// An EndpointSlice reduced to what one node's proxy needs: its ports (name, protocol,
/// number) and its addresses with their conditions and locality. Much smaller than the
/// object, so an agent can keep every slice of a large cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceEndpoints {
    pub ports: Vec<(String, Protocol, u16)>,
    pub addresses: Vec<SliceAddress>,
}

impl SliceEndpoints {
    /// What `slice` gives the proxy of node `node_name`.
    pub fn of(slice: &EndpointSlice, node_name: &str) -> Self {
        let mut ports: Vec<(String, Protocol, u16)> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let protocol = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))?;
                let number = p.port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0)?;
                Some((p.name.clone().unwrap_or_default(), protocol, number))
            })
            .collect();
        let mut addresses = Vec::new();
        for ep in slice.endpoints.iter().flatten() {
            let cond = ep.conditions.clone().unwrap_or_default();
            // Unknown readiness counts as ready, as upstream interprets a nil condition.
            let ready = cond.ready.unwrap_or(true);
            let hints = Hints::of(ep, node_name);
            for addr in &ep.addresses {
                let Some(ip) = svcnet_core::ip::parse_ip_sloppy(addr) else {
                    continue;
                };
                addresses.push(SliceAddress {
                    ip,
                    is_local: ep.node_name.as_deref() == Some(node_name),
                    ready,
                    serving: cond.serving.unwrap_or(ready),
                    terminating: cond.terminating.unwrap_or(false),
                    hints: hints.clone(),
                });
            }
        }
        // exact sizes: an agent keeps one of these per slice of the cluster, and a vector
        // grown by pushing holds up to twice (a one-element one four times) what it needs
        ports.shrink_to_fit();
        addresses.shrink_to_fit();
        SliceEndpoints { ports, addresses }
    }
}

/// `template` (from [`service_ports`]) with its endpoints from the Service's `slices`: the
/// addresses of every slice carrying the port's name and protocol, sorted by address then
/// port, one per address and port.
pub fn with_endpoints<'a>(template: &ServicePort, slices: impl IntoIterator<Item = &'a SliceEndpoints>) -> ServicePort {
    let mut endpoints = Vec::new();
    for slice in slices {
        let Some((_, _, number)) = slice
            .ports
            .iter()
            .find(|(name, protocol, _)| *name == template.port_name && *protocol == template.protocol)
        else {
            continue;
        };
        endpoints.extend(slice.addresses.iter().map(|a| Endpoint {
            ip: a.ip,
            port: *number,
            is_local: a.is_local,
            ready: a.ready,
            serving: a.serving,
            terminating: a.terminating,
            hints: a.hints.clone(),
        }));
    }
    endpoints.sort();
    endpoints.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    ServicePort {
        endpoints,
        ..template.clone()
    }
}

impl ProxyModel {
    /// Builds the model from stored Services and EndpointSlices. Services the proxy ignores
    /// or that fail validation are skipped.
    pub fn build(
        node_name: &str,
        node_ips: Vec<IpAddr>,
        cluster_cidrs: Vec<IpNet>,
        service_cidrs: Vec<IpNet>,
        config: ProxyConfig,
        services: &[Service],
        slices: &[EndpointSlice],
    ) -> Self {
        let mut by_service: BTreeMap<(String, String), Vec<SliceEndpoints>> = BTreeMap::new();
        for s in slices {
            if let Some(key) = slice_service(s) {
                by_service
                    .entry(key)
                    .or_default()
                    .push(SliceEndpoints::of(s, node_name));
            }
        }
        let mut ports = BTreeMap::new();
        for svc in services {
            let Some(templates) = service_ports(svc) else {
                continue;
            };
            let key = (
                svc.metadata.namespace.clone().unwrap_or_default(),
                svc.metadata.name.clone().unwrap_or_default(),
            );
            let svc_slices = by_service.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            for template in &templates {
                let sp = with_endpoints(template, svc_slices);
                ports.insert(sp.id(), sp);
            }
        }
        ProxyModel {
            node_name: node_name.to_owned(),
            node_ips,
            cluster_cidrs,
            service_cidrs,
            config,
            node_zone: None,
            ports,
        }
    }
}
