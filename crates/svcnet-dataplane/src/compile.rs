//! The rule compiler: a pure function from the proxy model to the ruleset.
//!
//! Layout (see ARCHITECTURE.md, "Dataplane layout"): a fixed set of chains and shared maps.
//! A common ClusterIP destination (see [`SHARED_LB_MAX`]) is balanced by the static rule of
//! its endpoint count, which DNATs through one map keyed by the destination and `numgen
//! random mod N`. Any other destination (`addr . proto . port`, or `proto . port` for
//! NodePorts) is looked up in one verdict map that jumps to a load-balancing chain shared by
//! every service with the same endpoint count and view, whose single rule DNATs alike. Each
//! backend map is referenced by exactly one rule and there is no per-service chain or
//! anonymous set, so load time grows linearly with services and endpoints. Services with ClientIP affinity get their own chains and sets,
//! as their state is per service.

use std::collections::BTreeSet;
use std::net::IpAddr;

use svcnet_core::ip::IpFamily;

use crate::ir::{Atom, Chain, DataType, Element, Family, Hook, Ruleset, Set, SetDecl, SetSpec, Table, Verdict};
use crate::model::{Endpoint, LoadBalancing, Policy, ProxyModel, ServicePort};
use crate::rule::{Field, Rule, Stmt, Terminal};

/// Which endpoints a destination may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Cluster,
    Local,
}

impl View {
    fn tag(self) -> &'static str {
        match self {
            View::Cluster => "c",
            View::Local => "l",
        }
    }
}

/// How a destination is keyed in the shared maps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keying {
    /// `addr . proto . port`: cluster IPs, external IPs, load-balancer IPs.
    Addr(IpAddr),
    /// `proto . port` on any node address: NodePorts.
    NodePort(u16),
}

const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const CLUSTER_IPS: &str = "cluster-ips";
/// Per service address and port (and per node port): packets and bytes sent to it, counted
/// before DNAT in the original direction.
pub const SERVICE_TRAFFIC: &str = "service-traffic";
pub const NODEPORT_TRAFFIC: &str = "nodeport-traffic";
const NODEPORT_IPS: &str = "nodeport-ips";
const HAIRPIN: &str = "hairpin-connections";
const FIREWALL_IPS: &str = "firewall-ips";
const FIREWALL_ALLOW: &str = "firewall-allow";
const ETPL_CLUSTER_IPS: &str = "etp-local-cluster-ips";
const ETPL_LOCAL_IPS: &str = "etp-local-local-ips";
const ETPL_CLUSTER_NODEPORTS: &str = "etp-local-cluster-nodeports";
const ETPL_LOCAL_NODEPORTS: &str = "etp-local-local-nodeports";
const REJECT_CHAIN: &str = "reject-chain";
/// The chain that load-balances the common ClusterIP destinations (see [`SHARED_LB_MAX`]).
const CLUSTER_IP_LB: &str = "cluster-ip-lb";
/// ClusterIP destinations with the Cluster internal policy, random choice, no session
/// affinity and at most this many endpoints are balanced by static rules, one per endpoint
/// count, each DNATing through its own map (`cluster-ip-lb-N`); adding one adds only map
/// elements. Any other destination is dispatched by an element of `service-ips` jumping to
/// its chain, and the kernel validates the whole table (walking every such element) on
/// each commit that adds a jump: that cost grows with the number of those destinations
/// only. A new connection to a shared destination tries one map per count up to its own.
pub const SHARED_LB_MAX: usize = 16;
/// The seed of the Maglev flow hash: the same on every node, so a flow picks the same
/// endpoint whichever node it enters by.
const MAGLEV_SEED: u32 = 0x5c3d_7a11;

/// The static map balancing shared ClusterIP destinations with `n` endpoints.
fn shared_lb_map(n: usize) -> String {
    format!("{CLUSTER_IP_LB}-{n}")
}

/// A load-balancing map keyed by `key` (ending in the random endpoint index) and the rule
/// that DNATs through it to the endpoint's address and port.
fn load_balancing(family: Family, key: Vec<Field>, map: &str) -> (SetDecl, Rule) {
    let data = vec![Field::Daddr(family), Field::DestPort];
    let decl = SetDecl::of(SetSpec::Typeof { key: key.clone(), data });
    let rule = Rule::new([Stmt::DnatMap {
        family,
        key,
        map: map.to_owned(),
    }]);
    (decl, rule)
}

/// Compiles the model into both address families' tables.
pub fn compile(model: &ProxyModel) -> Ruleset {
    let mut rs = Ruleset::default();
    for family in [Family::Ip, Family::Ip6] {
        let mut table = static_table(model, family);
        for sp in model.ports.values() {
            merge(&mut table, &port_fragment(model, family, sp));
        }
        rs.tables.insert(family, table);
    }
    rs
}

/// What one service port contributes to one family's table: elements of the shared sets and
/// maps, and the chains and sets it needs (shared load-balancing chains and maps included;
/// identical for every port that uses them). Small sorted vectors: a port contributes a handful
/// of each, and tens of thousands of fragments are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    pub chains: Vec<(String, Chain)>,
    pub sets: Vec<(String, SetDecl)>,
    /// Elements by set name; each list sorted and without duplicates.
    pub elements: Vec<(String, Vec<Element>)>,
}

impl Fragment {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    pub fn elements_of(&self, set: &str) -> &[Element] {
        self.elements
            .iter()
            .find(|(n, _)| n == set)
            .map_or(&[], |(_, e)| e.as_slice())
    }

    fn finish(&mut self) {
        self.chains.sort_by(|a, b| a.0.cmp(&b.0));
        self.sets.sort_by(|a, b| a.0.cmp(&b.0));
        self.elements.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, elements) in &mut self.elements {
            elements.sort();
            elements.dedup();
            elements.shrink_to_fit();
        }
        self.chains.shrink_to_fit();
        self.sets.shrink_to_fit();
        self.elements.shrink_to_fit();
    }
}

/// Sets whose elements several service ports may contribute (a multi-port service's cluster
/// IP; an endpoint behind two ports), so removal must be reference-counted.
pub fn is_shared_set(name: &str) -> bool {
    name == CLUSTER_IPS || name == HAIRPIN
}

/// Everything that does not depend on individual services: base chains, fixed sets and
/// maps (empty), and the node addresses that serve NodePorts.
pub fn static_table(model: &ProxyModel, family: Family) -> Table {
    TableBuilder::new(model, family).build_static()
}

/// One service port's contribution (empty when it has no cluster IP of this family).
pub fn port_fragment(model: &ProxyModel, family: Family, sp: &ServicePort) -> Fragment {
    let mut b = TableBuilder::new(model, family);
    if sp.cluster_ips.iter().any(|ip| b.is_mine(ip)) {
        b.service_port(sp);
    }
    b.frag.finish();
    b.frag
}

/// Adds a fragment to a table.
pub fn merge(table: &mut Table, frag: &Fragment) {
    for (name, chain) in &frag.chains {
        if !table.chains.contains_key(name) {
            table.chains.insert(name.clone(), chain.clone());
        }
    }
    for (name, decl) in &frag.sets {
        table.sets.entry(name.clone()).or_insert_with(|| Set {
            decl: decl.clone(),
            elements: BTreeSet::new(),
        });
    }
    for (set, elements) in &frag.elements {
        table
            .sets
            .get_mut(set)
            .unwrap_or_else(|| panic!("set {set} is declared before use"))
            .elements
            .extend(elements.iter().cloned());
    }
}

struct TableBuilder<'a> {
    model: &'a ProxyModel,
    fam: Family,
    /// The static part (base chains and fixed sets).
    table: Table,
    /// The current service port's contribution.
    frag: Fragment,
}

impl<'a> TableBuilder<'a> {
    fn new(model: &'a ProxyModel, fam: Family) -> Self {
        TableBuilder {
            model,
            fam,
            table: Table::default(),
            frag: Fragment::default(),
        }
    }

    fn ip_family(&self) -> IpFamily {
        self.fam.ip_family()
    }

    fn is_mine(&self, ip: &IpAddr) -> bool {
        IpFamily::of(*ip) == self.ip_family()
    }

    fn mark(&self) -> Stmt {
        Stmt::MarkOr(self.model.config.masquerade_bit)
    }

    /// `daddr . l4proto . dport`: the key of a service destination.
    fn dest(&self) -> Vec<Field> {
        vec![Field::Daddr(self.fam), Field::L4Proto, Field::DestPort]
    }

    fn set(&mut self, name: &str, key: Vec<DataType>, data: Option<DataType>, interval: bool) {
        let counter = name == SERVICE_TRAFFIC || name == NODEPORT_TRAFFIC;
        self.table.sets.entry(name.to_owned()).or_insert_with(|| Set {
            decl: SetDecl {
                interval,
                counter,
                ..SetDecl::of(SetSpec::Type { key, data })
            },
            elements: BTreeSet::new(),
        });
    }

    /// A service port's element.
    fn add(&mut self, set: &str, e: Element) {
        match self.frag.elements.iter_mut().find(|(n, _)| n == set) {
            Some((_, elements)) => elements.push(e),
            None => self.frag.elements.push((set.to_owned(), vec![e])),
        }
    }

    /// A static chain.
    fn chain(&mut self, name: &str, hook: Option<Hook>, rules: Vec<Rule>) {
        self.table.chains.insert(name.to_owned(), Chain { hook, rules });
    }

    /// A chain a service port needs.
    fn port_chain(&mut self, name: &str, rules: Vec<Rule>) {
        if self.frag.chain(name).is_none() {
            self.frag.chains.push((name.to_owned(), Chain { hook: None, rules }));
        }
    }

    /// A set or map a service port needs.
    fn port_set(&mut self, name: &str, decl: SetDecl) {
        if !self.frag.sets.iter().any(|(n, _)| n == name) {
            self.frag.sets.push((name.to_owned(), decl));
        }
    }

    fn cidrs(&self, nets: &[ipnet::IpNet]) -> Vec<ipnet::IpNet> {
        nets.iter().filter(|n| self.is_mine(&n.addr())).copied().collect()
    }

    fn build_static(mut self) -> Table {
        use DataType::{InetProto, InetService, Verdict};
        let fam = self.fam;
        let addr = DataType::addr(fam);
        let dest = self.dest();
        self.set(CLUSTER_IPS, vec![addr], None, false);
        self.set(NODEPORT_IPS, vec![addr], None, false);
        self.set(SERVICE_TRAFFIC, vec![addr, InetProto, InetService], None, false);
        self.set(NODEPORT_TRAFFIC, vec![InetProto, InetService], None, false);
        for m in [SERVICE_IPS, ETPL_CLUSTER_IPS, ETPL_LOCAL_IPS] {
            self.set(m, vec![addr, InetProto, InetService], Some(Verdict), false);
        }
        for m in [SERVICE_NODEPORTS, ETPL_CLUSTER_NODEPORTS, ETPL_LOCAL_NODEPORTS] {
            self.set(m, vec![InetProto, InetService], Some(Verdict), false);
        }
        // destinations without endpoints are rejected by one rule each: plain sets, so a
        // service losing its endpoints adds no jump for the kernel to validate
        self.set(NO_ENDPOINT_SERVICES, vec![addr, InetProto, InetService], None, false);
        self.set(NO_ENDPOINT_NODEPORTS, vec![InetProto, InetService], None, false);
        let mut shared_lb = Vec::new();
        for n in 1..=SHARED_LB_MAX {
            let map = shared_lb_map(n);
            let key = vec![
                Field::Daddr(fam),
                Field::L4Proto,
                Field::DestPort,
                Field::Random(n as u32),
            ];
            let (decl, rule) = load_balancing(fam, key, &map);
            self.table.sets.insert(
                map,
                Set {
                    decl,
                    elements: BTreeSet::new(),
                },
            );
            shared_lb.push(rule);
        }
        self.chain(CLUSTER_IP_LB, None, shared_lb);
        self.set(HAIRPIN, vec![addr, addr, InetProto, InetService], None, false);
        self.set(FIREWALL_IPS, vec![addr, InetProto, InetService], None, false);
        self.set(FIREWALL_ALLOW, vec![addr, InetProto, InetService, addr], None, true);

        // Node addresses that serve NodePorts, when restricted by nodePortAddresses.
        let restricted = !self.model.config.node_port_addresses.is_empty();
        if restricted {
            let ips: Vec<IpAddr> = self
                .model
                .node_ips
                .iter()
                .filter(|ip| self.is_mine(ip) && !ip.is_loopback())
                .filter(|ip| self.model.config.node_port_addresses.iter().any(|n| n.contains(*ip)))
                .copied()
                .collect();
            let set = self.table.sets.get_mut(NODEPORT_IPS).expect("declared above");
            set.elements
                .extend(ips.into_iter().map(|ip| Element::key(vec![Atom::Addr(ip)])));
        }
        let loopback: ipnet::IpNet = if fam == Family::Ip { "127.0.0.0/8" } else { "::1/128" }
            .parse()
            .expect("a valid prefix");
        let nodeport_dest = if restricted {
            vec![Stmt::Lookup {
                key: vec![Field::Daddr(fam)],
                set: NODEPORT_IPS.into(),
            }]
        } else {
            vec![
                Stmt::FibLocal { source: false },
                Stmt::NotInNet {
                    field: Field::Daddr(fam),
                    net: loopback,
                },
            ]
        };
        let port_key = || vec![Field::L4Proto, Field::DestPort];
        let vmap = |key: Vec<Field>, map: &str| Stmt::Vmap { key, map: map.into() };
        let lookup = |key: Vec<Field>, set: &str| Stmt::Lookup { key, set: set.into() };
        let cluster_ip = || lookup(vec![Field::Daddr(fam)], CLUSTER_IPS);
        let then = |stmts: Vec<Stmt>, last: Stmt| {
            let mut stmts = stmts;
            stmts.push(last);
            Rule(stmts)
        };

        let mark = self.mark();
        let bit = self.model.config.masquerade_bit;
        let pod_cidrs = self.cidrs(&self.model.cluster_cidrs);
        let service_cidrs = self.cidrs(&self.model.service_cidrs);
        let from_pods = |negate| Stmt::InNets {
            field: Field::Saddr(fam),
            nets: pod_cidrs.clone(),
            negate,
        };

        let mut services = Vec::new();
        if self.model.config.masquerade_all {
            services.push(Rule::new([cluster_ip(), mark.clone()]));
        } else if !pod_cidrs.is_empty() {
            services.push(Rule::new([cluster_ip(), from_pods(true), mark.clone()]));
        }
        services.push(Rule::new([vmap(dest.clone(), SERVICE_IPS)]));
        services.push(Rule::new([
            cluster_ip(),
            Stmt::Terminal(Terminal::Jump(CLUSTER_IP_LB.into())),
        ]));
        services.push(then(nodeport_dest.clone(), vmap(port_key(), SERVICE_NODEPORTS)));
        self.chain("services", None, services);

        // externalTrafficPolicy=Local: in-cluster and node-local sources use every endpoint
        // (node-local ones masqueraded); other sources only this node's, source kept.
        let etpl = |key: Vec<Field>, cluster: &str, local: &str| {
            let mut rules = Vec::new();
            if !pod_cidrs.is_empty() {
                rules.push(Rule::new([from_pods(false), vmap(key.clone(), cluster)]));
            }
            rules.push(Rule::new([
                Stmt::FibLocal { source: true },
                mark.clone(),
                vmap(key.clone(), cluster),
            ]));
            rules.push(Rule::new([vmap(key, local)]));
            rules
        };
        let r1 = etpl(dest.clone(), ETPL_CLUSTER_IPS, ETPL_LOCAL_IPS);
        let r2 = etpl(port_key(), ETPL_CLUSTER_NODEPORTS, ETPL_LOCAL_NODEPORTS);
        self.chain("etp-local-ips", None, r1);
        self.chain("etp-local-nodeports", None, r2);

        let hairpin_key = vec![Field::Saddr(fam), Field::Daddr(fam), Field::L4Proto, Field::DestPort];
        self.chain(
            "masquerading",
            None,
            vec![
                Rule::new([Stmt::MarkHas(bit), Stmt::MarkXor(bit), Stmt::Masquerade]),
                Rule::new([Stmt::CtStatusDnat, lookup(hairpin_key, HAIRPIN), Stmt::Masquerade]),
            ],
        );
        let mut allow_key = dest.clone();
        allow_key.push(Field::Saddr(fam));
        self.chain(
            "firewall-check",
            None,
            vec![
                Rule::new([
                    Stmt::LookupRanges {
                        key: allow_key,
                        set: FIREWALL_ALLOW.into(),
                    },
                    Stmt::Terminal(Terminal::Return),
                ]),
                Rule::new([lookup(dest.clone(), FIREWALL_IPS), Stmt::Terminal(Terminal::Drop)]),
            ],
        );
        let to_reject = || Stmt::Terminal(Terminal::Goto(REJECT_CHAIN.into()));
        self.chain(
            "service-endpoints-check",
            None,
            vec![Rule::new([lookup(dest.clone(), NO_ENDPOINT_SERVICES), to_reject()])],
        );
        let mut nodeport_check = nodeport_dest;
        nodeport_check.push(lookup(port_key(), NO_ENDPOINT_NODEPORTS));
        nodeport_check.push(to_reject());
        self.chain("nodeport-endpoints-check", None, vec![Rule(nodeport_check)]);
        let mut cluster_ips_check = vec![Rule::new([cluster_ip(), Stmt::Terminal(Terminal::Reject)])];
        if !service_cidrs.is_empty() {
            cluster_ips_check.push(Rule::new([
                Stmt::InNets {
                    field: Field::Daddr(fam),
                    nets: service_cidrs,
                    negate: false,
                },
                Stmt::Terminal(Terminal::Drop),
            ]));
        }
        self.chain("cluster-ips-check", None, cluster_ips_check);
        self.chain(REJECT_CHAIN, None, vec![Terminal::Reject.into()]);

        let hook = |chain_type, hook, priority| {
            Some(Hook {
                chain_type,
                hook,
                priority,
            })
        };
        let jump = |chain: &str| Stmt::Terminal(Terminal::Jump(chain.into()));
        let new_then_jump = |chain: &str| Rule::new([Stmt::CtStateNew, jump(chain)]);
        self.chain(
            "nat-prerouting",
            hook("nat", "prerouting", -100),
            vec![Rule::new([jump("services")])],
        );
        self.chain(
            "nat-output",
            hook("nat", "output", -100),
            vec![Rule::new([jump("services")])],
        );
        self.chain(
            "nat-postrouting",
            hook("nat", "postrouting", 100),
            vec![Rule::new([jump("masquerading")])],
        );
        // traffic counters: a lookup that matches counts on the element, and goes on; replies
        // never match, so they skip the lookups (and the route lookup)
        let count = vec![
            Rule::new([Stmt::CtOriginal, lookup(dest, SERVICE_TRAFFIC)]),
            Rule::new([
                Stmt::CtOriginal,
                Stmt::FibLocal { source: false },
                lookup(port_key(), NODEPORT_TRAFFIC),
            ]),
        ];
        self.chain("count-prerouting", hook("filter", "prerouting", -150), count.clone());
        self.chain("count-output", hook("filter", "output", -150), count);
        self.chain(
            "filter-prerouting-pre-dnat",
            hook("filter", "prerouting", -110),
            vec![new_then_jump("firewall-check")],
        );
        self.chain(
            "filter-output-pre-dnat",
            hook("filter", "output", -110),
            vec![new_then_jump("firewall-check")],
        );
        self.chain(
            "filter-input",
            hook("filter", "input", 0),
            vec![
                new_then_jump("nodeport-endpoints-check"),
                new_then_jump("service-endpoints-check"),
            ],
        );
        for h in ["forward", "output"] {
            self.chain(
                &format!("filter-{h}"),
                hook("filter", h, 0),
                vec![
                    Rule::new([jump("service-endpoints-check")]),
                    new_then_jump("cluster-ips-check"),
                ],
            );
        }
        self.table
    }

    fn service_port(&mut self, sp: &ServicePort) {
        let fam = self.ip_family();
        let mine = |ip: &IpAddr| IpFamily::of(*ip) == fam;
        let all: Vec<&Endpoint> = sp
            .cluster_endpoints(self.model.node_zone.as_deref())
            .into_iter()
            .filter(|e| mine(&e.ip))
            .collect();
        let local: Vec<&Endpoint> = sp.local_endpoints().into_iter().filter(|e| mine(&e.ip)).collect();
        let proto = Atom::Proto(sp.protocol);
        let port = Atom::Port(sp.port);

        // a pod reaching itself through the service: only this node's pods can
        for ep in sp.endpoints.iter().filter(|e| mine(&e.ip) && e.is_local) {
            self.add(
                HAIRPIN,
                Element::key(vec![
                    Atom::Addr(ep.ip),
                    Atom::Addr(ep.ip),
                    proto.clone(),
                    Atom::Port(ep.port),
                ]),
            );
        }

        for ip in sp.cluster_ips.iter().filter(|ip| mine(ip)) {
            let key = vec![Atom::Addr(*ip), proto.clone(), port.clone()];
            self.add(CLUSTER_IPS, Element::key(vec![Atom::Addr(*ip)]));
            self.add(SERVICE_TRAFFIC, Element::key(key.clone()));
            if all.is_empty() {
                self.add(NO_ENDPOINT_SERVICES, Element::key(key));
                continue;
            }
            let shared = sp.internal_traffic_policy == Policy::Cluster
                && sp.affinity_timeout_seconds.is_none()
                && sp.load_balancing == LoadBalancing::Random
                && all.len() <= SHARED_LB_MAX;
            if shared {
                self.add_endpoints(&shared_lb_map(all.len()), &key, &all);
                continue;
            }
            let verdict = match sp.internal_traffic_policy {
                Policy::Cluster => self.target(sp, View::Cluster, &all, Keying::Addr(*ip), false),
                Policy::Local if local.is_empty() => Verdict::Drop,
                Policy::Local => self.target(sp, View::Local, &local, Keying::Addr(*ip), false),
            };
            self.add(SERVICE_IPS, Element::verdict(key, verdict));
        }

        let externals: Vec<IpAddr> = sp
            .external_ips
            .iter()
            .chain(&sp.load_balancer_ips)
            .filter(|ip| mine(ip))
            .copied()
            .collect();
        for ip in externals {
            let key = vec![Atom::Addr(ip), proto.clone(), port.clone()];
            self.add(SERVICE_TRAFFIC, Element::key(key.clone()));
            self.external(sp, key, Keying::Addr(ip), &all, &local);
        }
        if !sp.load_balancer_source_ranges.is_empty() {
            let ranges: Vec<ipnet::IpNet> = sp
                .load_balancer_source_ranges
                .iter()
                .filter(|n| mine(&n.addr()))
                .copied()
                .collect();
            for ip in sp.load_balancer_ips.iter().filter(|ip| mine(ip)) {
                let key = vec![Atom::Addr(*ip), proto.clone(), port.clone()];
                self.add(FIREWALL_IPS, Element::key(key.clone()));
                for r in &ranges {
                    let mut k = key.clone();
                    k.push(Atom::Net(*r));
                    self.add(FIREWALL_ALLOW, Element::key(k));
                }
            }
        }
        if let Some(np) = sp.node_port {
            let key = vec![proto.clone(), Atom::Port(np)];
            self.add(NODEPORT_TRAFFIC, Element::key(key.clone()));
            self.external(sp, key, Keying::NodePort(np), &all, &local);
        }
    }

    /// An externally reachable destination (external IP, load-balancer IP, NodePort).
    fn external(&mut self, sp: &ServicePort, key: Vec<Atom>, keying: Keying, all: &[&Endpoint], local: &[&Endpoint]) {
        let node_port = matches!(keying, Keying::NodePort(_));
        let (dispatch, no_endpoints, etpl_chain, etpl_cluster, etpl_local) = if node_port {
            (
                SERVICE_NODEPORTS,
                NO_ENDPOINT_NODEPORTS,
                "etp-local-nodeports",
                ETPL_CLUSTER_NODEPORTS,
                ETPL_LOCAL_NODEPORTS,
            )
        } else {
            (
                SERVICE_IPS,
                NO_ENDPOINT_SERVICES,
                "etp-local-ips",
                ETPL_CLUSTER_IPS,
                ETPL_LOCAL_IPS,
            )
        };
        if all.is_empty() {
            self.add(no_endpoints, Element::key(key));
            return;
        }
        match sp.external_traffic_policy {
            Policy::Cluster => {
                let v = self.target(sp, View::Cluster, all, keying, true);
                self.add(dispatch, Element::verdict(key, v));
            }
            Policy::Local => {
                self.add(
                    dispatch,
                    Element::verdict(key.clone(), Verdict::Goto(etpl_chain.into())),
                );
                let v = self.target(sp, View::Cluster, all, keying, false);
                self.add(etpl_cluster, Element::verdict(key.clone(), v));
                let v = if local.is_empty() {
                    Verdict::Drop
                } else {
                    self.target(sp, View::Local, local, keying, false)
                };
                self.add(etpl_local, Element::verdict(key, v));
            }
        }
    }

    /// The chain that load-balances `eps` for this destination (created on first use).
    fn target(&mut self, sp: &ServicePort, view: View, eps: &[&Endpoint], keying: Keying, masq: bool) -> Verdict {
        let base = match (sp.affinity_timeout_seconds, sp.load_balancing) {
            (Some(timeout), _) => self.affinity_chain(sp, view, eps, timeout),
            (None, LoadBalancing::Random) => self.lb_chain(sp, view, eps, keying),
            (None, LoadBalancing::Maglev) => self.maglev_chain(sp, view, eps),
        };
        if !masq {
            return Verdict::Goto(base);
        }
        let masq_chain = format!("{base}-masq");
        if self.frag.chain(&masq_chain).is_none() {
            let rule = Rule::new([self.mark(), Stmt::Terminal(Terminal::Goto(base))]);
            self.port_chain(&masq_chain, vec![rule]);
        }
        Verdict::Goto(masq_chain)
    }

    /// Shared by every destination with `n` endpoints in this view and keying.
    fn lb_chain(&mut self, sp: &ServicePort, view: View, eps: &[&Endpoint], keying: Keying) -> String {
        let n = eps.len();
        let fam = self.fam;
        let (name, key, key_prefix) = match keying {
            Keying::Addr(ip) => (
                format!("lb-{}-{n}", view.tag()),
                vec![
                    Field::Daddr(fam),
                    Field::L4Proto,
                    Field::DestPort,
                    Field::Random(n as u32),
                ],
                vec![Atom::Addr(ip), Atom::Proto(sp.protocol), Atom::Port(sp.port)],
            ),
            Keying::NodePort(np) => (
                format!("lb-np-{}-{n}", view.tag()),
                vec![Field::L4Proto, Field::DestPort, Field::Random(n as u32)],
                vec![Atom::Proto(sp.protocol), Atom::Port(np)],
            ),
        };
        if self.frag.chain(&name).is_none() {
            let (decl, rule) = load_balancing(fam, key, &name);
            self.port_set(&name, decl);
            self.port_chain(&name, vec![rule]);
        }
        self.add_endpoints(&name, &key_prefix, eps);
        name
    }

    /// The elements of load-balancing map `map` for one destination: `key_prefix . i` to
    /// the i-th endpoint.
    fn add_endpoints(&mut self, map: &str, key_prefix: &[Atom], eps: &[&Endpoint]) {
        for (i, ep) in eps.iter().enumerate() {
            let mut key = key_prefix.to_vec();
            key.push(Atom::Int(i as u32));
            self.add(map, Element::map(key, vec![Atom::Addr(ep.ip), Atom::Port(ep.port)]));
        }
    }

    /// Maglev: per service port and view, a chain DNATs by a map from the flow's hash bucket
    /// to the endpoint the Maglev table gives it. Every destination of the port (cluster IP,
    /// node port, external IPs) shares it; an endpoint change rewrites only the buckets that
    /// move.
    fn maglev_chain(&mut self, sp: &ServicePort, view: View, eps: &[&Endpoint]) -> String {
        let fam = self.fam;
        let name = format!("maglev-{}-{}", view.tag(), sp.id());
        if self.frag.chain(&name).is_some() {
            return name;
        }
        let size = self.model.config.maglev_table_size;
        // the key is declared as the integer a numgen of the same modulus gives: nft cannot
        // list a map declared `typeof jhash ...`
        let decl = SetSpec::Typeof {
            key: vec![Field::Random(size)],
            data: vec![Field::Daddr(fam), Field::DestPort],
        };
        self.port_set(&name, SetDecl::of(decl));
        let hash = Field::FlowHash {
            family: fam,
            modulus: size,
            seed: MAGLEV_SEED,
        };
        let dnat = Stmt::DnatMap {
            family: fam,
            key: vec![hash],
            map: name.clone(),
        };
        self.port_chain(&name, vec![Rule::new([Stmt::L4Proto(sp.protocol), dnat])]);
        let names: Vec<String> = eps.iter().map(|e| format!("{}:{}", e.ip, e.port)).collect();
        for (bucket, backend) in crate::maglev::table(&names, size).into_iter().enumerate() {
            let ep = eps[backend];
            self.add(
                &name,
                Element::map(
                    vec![Atom::Int(bucket as u32)],
                    vec![Atom::Addr(ep.ip), Atom::Port(ep.port)],
                ),
            );
        }
        name
    }

    /// ClientIP affinity: per service port, one dynamic set per endpoint remembers the clients
    /// it served; a known client goes back to its endpoint, a new one is balanced randomly.
    fn affinity_chain(&mut self, sp: &ServicePort, view: View, eps: &[&Endpoint], timeout: u32) -> String {
        let fam = self.fam;
        let id = sp.id();
        let name = format!("affinity-{}-{id}", view.tag());
        if self.frag.chain(&name).is_some() {
            return name;
        }
        let mut rules = Vec::new();
        let mut dispatch = Vec::new();
        for ep in eps {
            let index = sp
                .endpoints
                .iter()
                .position(|e| e == *ep)
                .expect("endpoint of this port");
            let ep_chain = format!("endpoint-{index}-{id}");
            // the timeout is part of the name: changing it makes a new set, never a redeclaration
            let set = format!("affinity-{index}-{timeout}s-{id}");
            if self.frag.chain(&ep_chain).is_none() {
                self.port_set(
                    &set,
                    SetDecl {
                        timeout_seconds: Some(timeout),
                        dynamic: true,
                        ..SetDecl::of(SetSpec::Type {
                            key: vec![DataType::addr(fam)],
                            data: None,
                        })
                    },
                );
                self.port_chain(
                    &ep_chain,
                    vec![
                        Rule::new([Stmt::UpdateSaddr {
                            family: fam,
                            set: set.clone(),
                        }]),
                        Rule::new([
                            Stmt::L4Proto(sp.protocol),
                            Stmt::DnatTo {
                                addr: ep.ip,
                                port: ep.port,
                            },
                        ]),
                    ],
                );
            }
            rules.push(Rule::new([
                Stmt::Lookup {
                    key: vec![Field::Saddr(fam)],
                    set,
                },
                Stmt::Terminal(Terminal::Goto(ep_chain.clone())),
            ]));
            dispatch.push(Terminal::Goto(ep_chain));
        }
        rules.push(Rule::new([Stmt::RandomVmap(dispatch)]));
        self.port_chain(&name, rules);
        name
    }
}
