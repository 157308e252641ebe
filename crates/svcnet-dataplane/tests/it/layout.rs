//! The compiled layout against upstream kube-proxy's acceptance cases (reference §4). Each
//! packet goes through the compiled rules with the rule evaluator (`svcnet_dataplane::eval`),
//! which knows nftables but not our layout, and the outcome is the endpoints it may be DNATed
//! to (with masquerade or not), REJECT, DROP, or untouched. Conventions: pods 10.0.0.0/8,
//! services 172.30.0.0/16, this node 192.168.0.2, endpoints 10.180.0.1 (this node) and
//! 10.180.2.1 (another node), external client 203.0.113.2.
//!
//! `mutations_of_the_rules_fail_these_tests` runs the tests again against rules with one
//! behaviour taken out, and insists each mutation makes one of them fail.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use svcnet_core::service::model::Protocol;
use svcnet_dataplane::eval::{self, Fate, Host, Origin};
use svcnet_dataplane::ir::{Data, Family, Ruleset};
use svcnet_dataplane::model::{Policy, ProxyModel};
use svcnet_dataplane::rule::{Stmt, Terminal};

use crate::support::*;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Dnat {
        endpoints: BTreeSet<String>,
        masquerade: bool,
    },
    Reject,
    Drop,
    Untouched,
    /// Branches that end differently (other than in the endpoint chosen).
    Mixed(String),
}

fn dnat(eps: &[&str], masquerade: bool) -> Outcome {
    Outcome::Dnat {
        endpoints: eps.iter().map(|s| s.to_string()).collect(),
        masquerade,
    }
}

struct Packet<'a> {
    src: &'a str,
    /// The source is an address of this node: the packet is sent by the node itself.
    src_local: bool,
    dst: &'a str,
    proto: Protocol,
    port: u16,
}

fn pkt<'a>(src: &'a str, dst: &'a str, port: u16) -> Packet<'a> {
    Packet {
        src,
        src_local: src == "192.168.0.2",
        dst,
        proto: Protocol::Tcp,
        port,
    }
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A behaviour taken out of the compiled rules, to show the tests notice.
#[derive(Clone, Copy, Debug)]
enum Mutation {
    /// The compiler ignores `masqueradeAll`.
    MasqueradeAllIgnored,
    /// No DROP for unallocated addresses of the service range.
    NoServiceRangeDrop,
    /// No masquerade for a pod that reaches itself through its service.
    NoHairpinMasquerade,
    All,
}

thread_local! {
    static MUTATION: Cell<Option<Mutation>> = const { Cell::new(None) };
}

/// The rules the tests check: compiled, then mutated when a mutation check asks for it.
fn compiled(model: &ProxyModel) -> Ruleset {
    let mutation = MUTATION.with(Cell::get);
    let ignore_masquerade_all = matches!(mutation, Some(Mutation::MasqueradeAllIgnored | Mutation::All));
    let mut model = model.clone();
    if ignore_masquerade_all {
        model.config.masquerade_all = false;
    }
    let mut rs = svcnet_dataplane::compile::compile(&model);
    for table in rs.tables.values_mut() {
        let mut drop_rules = |chain: &str, unwanted: &dyn Fn(&Stmt) -> bool| {
            if let Some(c) = table.chains.get_mut(chain) {
                c.rules.retain(|r| !r.0.iter().any(unwanted));
            }
        };
        if matches!(mutation, Some(Mutation::NoServiceRangeDrop | Mutation::All)) {
            drop_rules("cluster-ips-check", &|s| matches!(s, Stmt::Terminal(Terminal::Drop)));
        }
        if matches!(mutation, Some(Mutation::NoHairpinMasquerade | Mutation::All)) {
            drop_rules("masquerading", &|s| matches!(s, Stmt::CtStatusDnat));
        }
    }
    rs
}

fn trace(model: &ProxyModel, rs: &Ruleset, p: &Packet) -> Outcome {
    let (src, dst) = (addr(p.src), addr(p.dst));
    let mut host = Host::default();
    host.local_addresses.extend(model.node_ips.iter().copied());
    host.local_addresses.extend([addr("127.0.0.1"), addr("::1")]);
    let origin = if p.src_local { Origin::Local } else { Origin::Arrives };
    let packet = eval::Packet::new(
        origin,
        p.proto,
        SocketAddr::new(src, 40000),
        SocketAddr::new(dst, p.port),
    );
    outcome(&eval::evaluate(rs, &host, &packet))
}

fn outcome(e: &eval::Evaluation) -> Outcome {
    let outcomes = e.outcomes();
    let all = |f: &dyn Fn(&eval::Outcome) -> bool| outcomes.keys().all(f);
    let passes = |o: &eval::Outcome| matches!(o.fate, Fate::Delivered | Fate::Forwarded);
    if all(&|o| o.fate == Fate::Rejected) {
        return Outcome::Reject;
    }
    if all(&|o| o.fate == Fate::Dropped) {
        return Outcome::Drop;
    }
    if all(&|o| passes(o) && o.dnat.is_none() && !o.masquerade) {
        return Outcome::Untouched;
    }
    let masquerade = outcomes.keys().next().is_some_and(|o| o.masquerade);
    if all(&|o| passes(o) && o.dnat.is_some() && o.masquerade == masquerade) {
        let endpoints = outcomes.keys().filter_map(|o| o.dnat).map(|d| d.to_string()).collect();
        return Outcome::Dnat { endpoints, masquerade };
    }
    Outcome::Mixed(format!("{outcomes:?}"))
}

fn check(model: &ProxyModel, cases: &[(Packet, Outcome)]) {
    let rs = compiled(model);
    for (p, want) in cases {
        assert_eq!(
            &trace(model, &rs, p),
            want,
            "{} → {}:{} {:?}",
            p.src,
            p.dst,
            p.port,
            p.proto
        );
    }
}

const LOCAL_EP: &str = "10.180.0.1";
const REMOTE_EP: &str = "10.180.2.1";

#[test]
fn cluster_ip_general() {
    let mut m = model();
    insert(
        &mut m,
        port(
            "svc1",
            "http",
            "172.30.0.41",
            Protocol::Tcp,
            80,
            vec![ep(LOCAL_EP, 80, NODE, true)],
        ),
    );
    let both = |p| vec![ep(LOCAL_EP, p, NODE, true), ep(REMOTE_EP, p, "other", true)];
    insert(&mut m, port("svc2", "http", "172.30.0.42", Protocol::Tcp, 80, both(80)));
    insert(
        &mut m,
        port("svc2", "https", "172.30.0.42", Protocol::Tcp, 443, both(8443)),
    );
    insert(
        &mut m,
        port("svc2", "dns-udp", "172.30.0.42", Protocol::Udp, 53, both(53)),
    );
    insert(
        &mut m,
        port("svc2", "dns-tcp", "172.30.0.42", Protocol::Tcp, 53, both(5353)),
    );
    insert(
        &mut m,
        port("svc2", "dns-sctp", "172.30.0.42", Protocol::Sctp, 53, both(53)),
    );
    let with = |proto, p: Packet<'static>| Packet { proto, ..p };
    check(
        &m,
        &[
            (pkt("10.180.0.2", "172.30.0.41", 80), dnat(&["10.180.0.1:80"], false)),
            (pkt(LOCAL_EP, "172.30.0.41", 80), dnat(&["10.180.0.1:80"], true)),
            (
                pkt("10.180.0.2", "172.30.0.42", 80),
                dnat(&["10.180.0.1:80", "10.180.2.1:80"], false),
            ),
            (
                pkt("10.180.0.2", "172.30.0.42", 443),
                dnat(&["10.180.0.1:8443", "10.180.2.1:8443"], false),
            ),
            (
                pkt("10.180.0.2", "172.30.0.42", 53),
                dnat(&["10.180.0.1:5353", "10.180.2.1:5353"], false),
            ),
            (
                with(Protocol::Udp, pkt("10.180.0.2", "172.30.0.42", 53)),
                dnat(&["10.180.0.1:53", "10.180.2.1:53"], false),
            ),
            (
                with(Protocol::Sctp, pkt("10.180.0.2", "172.30.0.42", 53)),
                dnat(&["10.180.0.1:53", "10.180.2.1:53"], false),
            ),
            (
                with(Protocol::Udp, pkt("10.180.0.2", "172.30.0.42", 80)),
                Outcome::Reject,
            ),
            (pkt("10.180.0.2", "172.30.0.41", 443), Outcome::Reject),
            (pkt("10.180.0.2", "172.30.0.50", 80), Outcome::Drop),
            (pkt("10.180.0.2", "8.8.8.8", 80), Outcome::Untouched),
        ],
    );
}

#[test]
fn node_ports_and_node_port_addresses() {
    let mut m = model();
    m.node_ips.push("192.168.1.2".parse().unwrap());
    let mut sp = port(
        "np",
        "http",
        "172.30.0.41",
        Protocol::Tcp,
        80,
        vec![ep(LOCAL_EP, 80, "other", true), ep(REMOTE_EP, 80, NODE, true)],
    );
    sp.node_port = Some(3001);
    insert(&mut m, sp);
    let both = |masq| dnat(&["10.180.0.1:80", "10.180.2.1:80"], masq);
    check(
        &m,
        &[
            (pkt("10.180.0.2", "172.30.0.41", 80), both(false)),
            (pkt("203.0.113.2", "192.168.0.2", 3001), both(true)),
            (pkt("192.168.0.2", "192.168.0.2", 3001), both(true)),
            (pkt("203.0.113.2", "192.168.1.2", 3001), both(true)),
        ],
    );
    m.config.node_port_addresses = vec!["192.168.0.0/24".parse().unwrap()];
    check(
        &m,
        &[
            (pkt("203.0.113.2", "192.168.0.2", 3001), both(true)),
            (pkt("203.0.113.2", "192.168.1.2", 3001), Outcome::Untouched),
        ],
    );
}

#[test]
fn node_ports_ipv6() {
    let mut m = model();
    m.node_ips = vec!["fd00:192::2".parse().unwrap()];
    m.cluster_cidrs.push("fd00:10::/64".parse().unwrap());
    let mut sp = port(
        "np6",
        "http",
        "fd00:30::41",
        Protocol::Tcp,
        80,
        vec![ep("fd00:10::1", 80, NODE, true)],
    );
    sp.node_port = Some(3001);
    insert(&mut m, sp);
    check(
        &m,
        &[
            (pkt("fd00:10::2", "fd00:30::41", 80), dnat(&["[fd00:10::1]:80"], false)),
            (
                pkt("2001:db8::1", "fd00:192::2", 3001),
                dnat(&["[fd00:10::1]:80"], true),
            ),
        ],
    );
}

fn lb_service(etp: Policy) -> ProxyModel {
    let mut m = model();
    let mut sp = port(
        "lb",
        "http",
        "172.30.0.41",
        Protocol::Tcp,
        80,
        vec![ep(LOCAL_EP, 80, "other", true), ep(REMOTE_EP, 80, NODE, true)],
    );
    sp.node_port = Some(3001);
    sp.external_ips = vec!["192.168.99.11".parse().unwrap()];
    sp.load_balancer_ips = vec!["1.2.3.4".parse().unwrap()];
    sp.external_traffic_policy = etp;
    insert(&mut m, sp);
    m
}

#[test]
fn external_traffic_policy_local() {
    let m = lb_service(Policy::Local);
    let both = dnat(&["10.180.0.1:80", "10.180.2.1:80"], false);
    let local_only = dnat(&["10.180.2.1:80"], false);
    check(
        &m,
        &[
            (pkt("10.180.0.2", "172.30.0.41", 80), both),
            (
                pkt("10.180.0.2", "192.168.99.11", 80),
                dnat(&["10.180.0.1:80", "10.180.2.1:80"], false),
            ),
            (
                pkt("10.180.0.2", "1.2.3.4", 80),
                dnat(&["10.180.0.1:80", "10.180.2.1:80"], false),
            ),
            (
                pkt("10.180.0.2", "192.168.0.2", 3001),
                dnat(&["10.180.0.1:80", "10.180.2.1:80"], false),
            ),
            (pkt("203.0.113.2", "192.168.99.11", 80), local_only),
            (pkt("203.0.113.2", "1.2.3.4", 80), dnat(&["10.180.2.1:80"], false)),
            (pkt("203.0.113.2", "192.168.0.2", 3001), dnat(&["10.180.2.1:80"], false)),
            (
                pkt("192.168.0.2", "192.168.0.2", 3001),
                dnat(&["10.180.0.1:80", "10.180.2.1:80"], true),
            ),
        ],
    );
    // no local endpoint: external traffic dropped, in-cluster traffic still served
    let mut m = m;
    for sp in m.ports.values_mut() {
        sp.endpoints.retain(|e| !e.is_local);
    }
    check(
        &m,
        &[
            (pkt("203.0.113.2", "1.2.3.4", 80), Outcome::Drop),
            (pkt("10.180.0.2", "1.2.3.4", 80), dnat(&["10.180.0.1:80"], false)),
        ],
    );
}

#[test]
fn external_traffic_policy_cluster_masquerades_all_but_pod_to_cluster_ip() {
    let m = lb_service(Policy::Cluster);
    let both = |masq| dnat(&["10.180.0.1:80", "10.180.2.1:80"], masq);
    check(
        &m,
        &[
            (pkt("10.180.0.2", "172.30.0.41", 80), both(false)),
            (pkt("10.180.0.2", "192.168.99.11", 80), both(true)),
            (pkt("10.180.0.2", "1.2.3.4", 80), both(true)),
            (pkt("203.0.113.2", "192.168.99.11", 80), both(true)),
            (pkt("203.0.113.2", "192.168.0.2", 3001), both(true)),
        ],
    );
}

#[test]
fn internal_traffic_policy_local() {
    let mut m = model();
    let mut sp = port(
        "itp",
        "http",
        "172.30.0.41",
        Protocol::Tcp,
        80,
        vec![ep(LOCAL_EP, 80, NODE, true), ep(REMOTE_EP, 80, "other", true)],
    );
    sp.internal_traffic_policy = Policy::Local;
    insert(&mut m, sp.clone());
    check(
        &m,
        &[(pkt("10.180.0.2", "172.30.0.41", 80), dnat(&["10.180.0.1:80"], false))],
    );
    sp.endpoints.retain(|e| !e.is_local);
    insert(&mut m, sp.clone());
    check(&m, &[(pkt("10.180.0.2", "172.30.0.41", 80), Outcome::Drop)]);
    sp.endpoints.clear();
    insert(&mut m, sp);
    check(&m, &[(pkt("10.180.0.2", "172.30.0.41", 80), Outcome::Reject)]);
}

#[test]
fn no_endpoints_reject_everywhere() {
    let mut m = lb_service(Policy::Cluster);
    for sp in m.ports.values_mut() {
        sp.endpoints.clear();
    }
    for src in ["10.180.0.2", "203.0.113.2"] {
        check(
            &m,
            &[
                (pkt(src, "172.30.0.41", 80), Outcome::Reject),
                (pkt(src, "192.168.99.11", 80), Outcome::Reject),
                (pkt(src, "1.2.3.4", 80), Outcome::Reject),
                (pkt(src, "192.168.0.2", 3001), Outcome::Reject),
            ],
        );
    }
}

#[test]
fn masquerade_all_and_source_ranges_and_terminating_fallback() {
    let mut m = lb_service(Policy::Cluster);
    m.config.masquerade_all = true;
    check(
        &m,
        &[(
            pkt("10.180.0.2", "172.30.0.41", 80),
            dnat(&["10.180.0.1:80", "10.180.2.1:80"], true),
        )],
    );

    let mut m = lb_service(Policy::Cluster);
    for sp in m.ports.values_mut() {
        sp.load_balancer_source_ranges = vec!["203.0.113.0/24".parse().unwrap()];
    }
    check(
        &m,
        &[
            (
                pkt("203.0.113.2", "1.2.3.4", 80),
                dnat(&["10.180.0.1:80", "10.180.2.1:80"], true),
            ),
            (pkt("198.51.100.7", "1.2.3.4", 80), Outcome::Drop),
            (
                pkt("198.51.100.7", "192.168.0.2", 3001),
                dnat(&["10.180.0.1:80", "10.180.2.1:80"], true),
            ),
        ],
    );

    // no ready endpoint: serving terminating ones take the traffic
    let mut m = model();
    let mut term = ep(REMOTE_EP, 80, "other", false);
    term.serving = true;
    term.terminating = true;
    insert(
        &mut m,
        port(
            "t",
            "http",
            "172.30.0.41",
            Protocol::Tcp,
            80,
            vec![ep(LOCAL_EP, 80, NODE, false), term],
        ),
    );
    check(
        &m,
        &[(pkt("10.180.0.2", "172.30.0.41", 80), dnat(&["10.180.2.1:80"], false))],
    );
}

#[test]
fn session_affinity_chains() {
    let mut m = model();
    let mut sp = port(
        "sticky",
        "http",
        "172.30.0.41",
        Protocol::Tcp,
        80,
        vec![ep(LOCAL_EP, 80, NODE, true), ep(REMOTE_EP, 80, "other", true)],
    );
    sp.affinity_timeout_seconds = Some(10800);
    insert(&mut m, sp);
    check(
        &m,
        &[(
            pkt("10.180.0.2", "172.30.0.41", 80),
            dnat(&["10.180.0.1:80", "10.180.2.1:80"], false),
        )],
    );
    let rs = compiled(&m);
    let t = &rs.tables[&Family::Ip];
    let sets: Vec<&String> = t.sets.keys().filter(|n| n.starts_with("affinity-")).collect();
    assert_eq!(sets.len(), 2, "one set per endpoint: {sets:?}");
    assert!(t.sets[sets[0]].decl.timeout_seconds == Some(10800) && t.sets[sets[0]].decl.dynamic);
}

#[test]
fn load_time_structures_do_not_grow_per_service() {
    let mut m = model();
    let mut first_four = None;
    for i in 0..500u32 {
        if i == 4 {
            first_four = Some(compiled(&m).stats());
        }
        let eps = (0..(i % 4 + 1))
            .map(|j| ep(&format!("10.181.{}.{}", i / 200, j + 1), 80, "other", true))
            .collect();
        insert(
            &mut m,
            port(
                &format!("s{i}"),
                "http",
                &format!("172.30.{}.{}", i / 250, i % 250 + 1),
                Protocol::Tcp,
                80,
                eps,
            ),
        );
    }
    // four services already use every endpoint count (1 to 4) the 500 have
    let (few, many) = (first_four.expect("taken at the fifth"), compiled(&m).stats());
    assert_eq!(many.chains, few.chains, "chains must not grow with services: {many:?}");
    assert_eq!(many.sets, few.sets, "sets must not grow with services: {many:?}");
    assert!(many.elements > few.elements * 100, "{many:?}");
}

/// `ep` hinted for `zones` and, when given, for `node`.
fn hinted(ip: &str, node: &str, zones: &[&str], node_hint: Option<&str>) -> svcnet_dataplane::model::Endpoint {
    use svcnet_dataplane::model::{Hints, NodeHint};
    let mut e = ep(ip, 80, node, true);
    e.hints = Hints {
        zones: zones.iter().map(|z| z.to_string()).collect(),
        node: match node_hint {
            None => NodeHint::None,
            Some(n) if n == NODE => NodeHint::ThisNode,
            Some(_) => NodeHint::OtherNodes,
        },
    };
    e
}

#[test]
fn topology_hints_choose_endpoints_as_kube_proxy_does() {
    let a = "10.180.0.1";
    let b = "10.180.2.1";
    let c = "10.180.3.1";
    let to_cluster_ip = |m: &ProxyModel| trace(m, &compiled(m), &pkt("10.180.9.9", "172.30.0.41", 80));
    let with = |zone: Option<&str>, eps: Vec<svcnet_dataplane::model::Endpoint>, itp: Policy| {
        let mut m = model();
        m.node_zone = zone.map(str::to_owned);
        let mut sp = port("topo", "http", "172.30.0.41", Protocol::Tcp, 80, eps);
        sp.internal_traffic_policy = itp;
        insert(&mut m, sp);
        m
    };
    let zoned = || {
        vec![
            hinted(a, NODE, &["zone-a"], None),
            hinted(b, "other", &["zone-b"], None),
            hinted(c, "third", &["zone-a"], None),
        ]
    };
    let cases: Vec<(&str, ProxyModel, Outcome)> = vec![
        (
            "zone hints for this node's zone",
            with(Some("zone-a"), zoned(), Policy::Cluster),
            dnat(&["10.180.0.1:80", "10.180.3.1:80"], false),
        ),
        (
            "no endpoint hinted for this zone: all",
            with(Some("zone-c"), zoned(), Policy::Cluster),
            dnat(&["10.180.0.1:80", "10.180.2.1:80", "10.180.3.1:80"], false),
        ),
        (
            "a node without a zone uses all",
            with(None, zoned(), Policy::Cluster),
            dnat(&["10.180.0.1:80", "10.180.2.1:80", "10.180.3.1:80"], false),
        ),
        (
            "one ready endpoint without hints: all",
            with(
                Some("zone-a"),
                vec![hinted(a, NODE, &["zone-a"], None), ep(b, 80, "other", true)],
                Policy::Cluster,
            ),
            dnat(&["10.180.0.1:80", "10.180.2.1:80"], false),
        ),
        (
            "a not-ready endpoint without hints does not matter",
            with(
                Some("zone-a"),
                vec![
                    hinted(a, NODE, &["zone-a"], None),
                    hinted(b, "other", &["zone-b"], None),
                    ep(c, 80, "third", false),
                ],
                Policy::Cluster,
            ),
            dnat(&["10.180.0.1:80"], false),
        ),
        (
            "node hints for this node win over zone hints",
            with(
                Some("zone-a"),
                vec![
                    hinted(a, NODE, &["zone-a"], Some(NODE)),
                    hinted(c, "third", &["zone-a"], Some("third")),
                ],
                Policy::Cluster,
            ),
            dnat(&["10.180.0.1:80"], false),
        ),
        (
            "no endpoint on this node: zone hints",
            with(
                Some("zone-a"),
                vec![
                    hinted(b, "other", &["zone-b"], Some("other")),
                    hinted(c, "third", &["zone-a"], Some("third")),
                ],
                Policy::Cluster,
            ),
            dnat(&["10.180.3.1:80"], false),
        ),
        (
            "internalTrafficPolicy Local wins over hints",
            with(Some("zone-b"), zoned(), Policy::Local),
            dnat(&["10.180.0.1:80"], false),
        ),
    ];
    for (name, m, want) in cases {
        assert_eq!(to_cluster_ip(&m), want, "{name}");
    }
}

#[test]
fn maglev_services_reach_the_same_endpoints_as_random_ones() {
    use svcnet_dataplane::model::LoadBalancing;
    for etp in [Policy::Cluster, Policy::Local] {
        let random = lb_service(etp);
        let mut maglev = random.clone();
        for sp in maglev.ports.values_mut() {
            sp.load_balancing = LoadBalancing::Maglev;
        }
        for (src, dst, port) in [
            ("10.180.0.2", "172.30.0.41", 80),
            ("203.0.113.2", "192.168.0.2", 3001),
            ("203.0.113.2", "1.2.3.4", 80),
            ("10.180.0.2", "192.168.99.11", 80),
        ] {
            let p = pkt(src, dst, port);
            assert_eq!(
                trace(&maglev, &compiled(&maglev), &p),
                trace(&random, &compiled(&random), &p),
                "{etp:?} {src} -> {dst}:{port}"
            );
        }
        // the table: every bucket names an endpoint, each endpoint an equal share
        let rs = compiled(&maglev);
        let map = rs.tables[&Family::Ip]
            .sets
            .iter()
            .find(|(name, _)| name.starts_with("maglev-c-"))
            .map(|(_, set)| set)
            .expect("a Maglev map");
        assert_eq!(map.elements.len(), maglev.config.maglev_table_size as usize);
        let mut shares = std::collections::BTreeMap::<String, usize>::new();
        for e in &map.elements {
            if let Some(Data::Atoms(a)) = &e.data {
                *shares.entry(format!("{}", a[0])).or_default() += 1;
            }
        }
        let (min, max) = (shares.values().min().unwrap(), shares.values().max().unwrap());
        assert!(max - min <= 1, "{shares:?}");
    }
}

/// Each mutation of the rules makes at least one of the tests above fail (they once all
/// passed with the three taken out at once, when a tracer re-implemented the model).
#[test]
fn mutations_of_the_rules_fail_these_tests() {
    let tests: [(&str, fn()); 12] = [
        ("cluster_ip_general", cluster_ip_general),
        ("node_ports_and_node_port_addresses", node_ports_and_node_port_addresses),
        ("node_ports_ipv6", node_ports_ipv6),
        ("external_traffic_policy_local", external_traffic_policy_local),
        (
            "external_traffic_policy_cluster_masquerades_all_but_pod_to_cluster_ip",
            external_traffic_policy_cluster_masquerades_all_but_pod_to_cluster_ip,
        ),
        ("internal_traffic_policy_local", internal_traffic_policy_local),
        ("no_endpoints_reject_everywhere", no_endpoints_reject_everywhere),
        (
            "masquerade_all_and_source_ranges_and_terminating_fallback",
            masquerade_all_and_source_ranges_and_terminating_fallback,
        ),
        ("session_affinity_chains", session_affinity_chains),
        (
            "load_time_structures_do_not_grow_per_service",
            load_time_structures_do_not_grow_per_service,
        ),
        (
            "topology_hints_choose_endpoints_as_kube_proxy_does",
            topology_hints_choose_endpoints_as_kube_proxy_does,
        ),
        (
            "maglev_services_reach_the_same_endpoints_as_random_ones",
            maglev_services_reach_the_same_endpoints_as_random_ones,
        ),
    ];
    let failing = |mutation: Option<Mutation>| -> Vec<&str> {
        MUTATION.with(|m| m.set(mutation));
        let failed = tests
            .iter()
            .filter(|(_, test)| std::panic::catch_unwind(test).is_err())
            .map(|(name, _)| *name)
            .collect();
        MUTATION.with(|m| m.set(None));
        failed
    };
    assert_eq!(failing(None), Vec::<&str>::new(), "the rules as compiled");
    for mutation in [
        Mutation::MasqueradeAllIgnored,
        Mutation::NoServiceRangeDrop,
        Mutation::NoHairpinMasquerade,
        Mutation::All,
    ] {
        let failed = failing(Some(mutation));
        println!("{mutation:?} fails {failed:?}");
        assert!(!failed.is_empty(), "{mutation:?} made no layout test fail");
    }
}
