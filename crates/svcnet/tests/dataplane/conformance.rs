//! Both backends build the same kernel state: the same models are synced by a text-backend
//! syncer and a netlink-backend syncer into two fresh namespaces, and after every step the
//! tables read back over netlink, and as `nft -j` lists them, are identical. Once for a
//! hand-written cluster with every kind of service, and as a property over random models.
//! Also: a transaction the kernel refuses is reported by the operation it refused.

use std::net::IpAddr;

use proptest::prelude::*;
use svcnet::netns::Namespaces;
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::model::{Endpoint, Policy, ProxyConfig, ProxyModel, ServicePort};

use svcnet_dataplane::backend::NftText;
use svcnet_dataplane::ir::Family;
use svcnet_dataplane::netlink::{Netlink, dump};
use svcnet_dataplane::syncer::{SyncKind, Syncer};

use crate::world::World;

fn compare(nets: &Namespaces, text_ns: &str, netlink_ns: &str, step: &str) {
    for family in [Family::Ip, Family::Ip6] {
        let read = |ns: &str| {
            let mut nl = Netlink::in_netns(ns).unwrap();
            dump::table(nl.socket(), family).unwrap().expect("our table exists")
        };
        let (a, b) = (read(text_ns), read(netlink_ns));
        assert!(
            a == b,
            "{step}: {family:?} tables differ\n--- nft text backend:\n{a}\n--- netlink backend:\n{b}"
        );
        let list = |ns: &str| nets.exec_ok(ns, &["nft", "-j", "list", "table", family.keyword(), "svcnet"]);
        let strip = |json: String| -> serde_json::Value {
            let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
            strip_handles(&mut v);
            v
        };
        assert_eq!(
            strip(list(text_ns)),
            strip(list(netlink_ns)),
            "{step}: nft -j list table {family:?}"
        );
    }
}

/// Handles are numbered by the kernel in creation order and may differ.
fn strip_handles(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("handle");
            map.values_mut().for_each(strip_handles);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

#[test]
fn both_backends_build_identical_kernel_state() {
    let mut w = World::new(2, svcnet_dataplane::backend::BackendKind::NftText);
    w.add_pod(0, "a1", "{app: a}", &[80, 53], &[], true);
    w.add_pod(1, "a2", "{app: a}", &[80, 53], &[], true);
    w.add_pod(0, "b1", "{app: b}", &[80], &[], true);
    w.apply_service(
        "metadata: {name: a}\nspec: {type: NodePort, ipFamilyPolicy: PreferDualStack, selector: {app: a}, ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]}",
    );
    w.apply_service(
        "metadata: {name: local}\nspec: {type: LoadBalancer, externalTrafficPolicy: Local, externalIPs: [192.168.99.11], loadBalancerSourceRanges: [10.0.0.0/8, 192.168.0.0/24], selector: {app: a}, ports: [{port: 8080, targetPort: 80}]}",
    );
    w.set_load_balancer_ip("local", "1.2.3.4");
    w.apply_service(
        "metadata: {name: sticky}\nspec: {sessionAffinity: ClientIP, internalTrafficPolicy: Local, selector: {app: a}, ports: [{port: 81, targetPort: 80}]}",
    );
    w.apply_service("metadata: {name: empty}\nspec: {type: NodePort, selector: {app: none}, ports: [{port: 82}]}");
    w.apply_service(
        "metadata: {name: sctp}\nspec: {selector: {app: b}, ports: [{port: 83, targetPort: 80, protocol: SCTP}]}",
    );
    w.sync();

    let text_ns = w.nets.add("cmp-text");
    let netlink_ns = w.nets.add("cmp-nl");
    let mut text = Syncer::new(NftText::in_netns(&text_ns));
    let mut netlink = Syncer::new(Netlink::in_netns(&netlink_ns).unwrap());
    let mut now = 0;
    let mut step = |w: &mut World, what: &str, kind: SyncKind| {
        now += 10_000;
        let model = w.model(0);
        let a = text.sync(model.clone(), now).unwrap();
        let b = netlink.sync(model, now).unwrap();
        assert_eq!((a.kind, b.kind), (kind, kind), "{what}");
        compare(&w.nets, &text_ns, &netlink_ns, what);
    };
    step(&mut w, "full sync", SyncKind::Full);
    w.add_pod(0, "a3", "{app: a}", &[80, 53], &[], true);
    w.sync();
    step(&mut w, "endpoint added", SyncKind::Incremental);
    w.delete_service("sctp");
    w.apply_service("metadata: {name: new}\nspec: {selector: {app: b}, ports: [{port: 84, targetPort: 80}]}");
    w.sync();
    step(&mut w, "service deleted and added", SyncKind::Incremental);
    w.forget_pod("a2");
    w.sync();
    step(&mut w, "endpoint removed", SyncKind::Incremental);
    // two pod CIDRs per family: the source checks become anonymous interval sets
    now += 10_000;
    let mut model = w.model(0);
    model.cluster_cidrs.push("10.200.0.0/16".parse().unwrap());
    model.cluster_cidrs.push("10.96.0.0/12".parse().unwrap());
    model.cluster_cidrs.push("fd00:200::/48".parse().unwrap());
    text.sync(model.clone(), now).unwrap();
    netlink.sync(model, now).unwrap();
    compare(&w.nets, &text_ns, &netlink_ns, "several pod CIDRs");
}

/// One random service port: family, protocol, endpoints (ready, local, terminating),
/// policies, node port, affinity, external and load-balancer addresses with source ranges,
/// Maglev or random choice.
fn service_port() -> impl Strategy<Value = ServicePort> {
    (
        (0u8..40, any::<bool>(), 0u8..3),
        prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 0..5),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(1u32..20_000),
        ),
        (any::<bool>(), any::<bool>(), 0usize..3, prop::bool::weighted(0.25)),
    )
        .prop_map(
            |((n, v6, proto), eps, (etp_local, itp_local, node_port, affinity), (ext, lb, ranges, maglev))| {
                let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][usize::from(proto)];
                let addr = |v4: String, v6_addr: String| -> IpAddr {
                    if v6 {
                        v6_addr.parse().unwrap()
                    } else {
                        v4.parse().unwrap()
                    }
                };
                let cluster_ip = addr(format!("172.30.0.{}", n + 1), format!("fd00:30::{:x}", n + 1));
                let endpoints = eps
                    .iter()
                    .enumerate()
                    .map(|(i, (ready, local, terminating))| Endpoint {
                        ip: addr(format!("10.180.{n}.{}", i + 1), format!("fd00:180::{n:x}:{:x}", i + 1)),
                        port: 8080,
                        is_local: *local,
                        ready: *ready,
                        serving: *ready || *terminating,
                        terminating: *terminating,
                        hints: Default::default(),
                    })
                    .collect();
                let mut sp =
                    ServicePort::cluster_ip("ns", &format!("svc{n}"), "p", protocol, 80, vec![cluster_ip], endpoints);
                sp.endpoints.sort_by_key(|e| (e.ip, e.port));
                sp.external_traffic_policy = if etp_local { Policy::Local } else { Policy::Cluster };
                sp.internal_traffic_policy = if itp_local { Policy::Local } else { Policy::Cluster };
                sp.node_port = node_port.then_some(30000 + u16::from(n));
                sp.affinity_timeout_seconds = affinity;
                if maglev {
                    sp.load_balancing = svcnet_dataplane::model::LoadBalancing::Maglev;
                }
                if ext {
                    sp.external_ips = vec![addr(format!("192.168.99.{}", n + 1), format!("fd00:99::{:x}", n + 1))];
                }
                if lb {
                    sp.load_balancer_ips = vec![addr(format!("1.2.3.{}", n + 1), format!("fd00:1::{:x}", n + 1))];
                    let all = ["10.0.0.0/8", "192.168.0.0/16", "203.0.113.0/24"];
                    let all6 = ["fd00::/16", "2001:db8::/32", "fd00:1:2::/48"];
                    sp.load_balancer_source_ranges = (0..ranges)
                        .map(|i| if v6 { all6[i] } else { all[i] }.parse().unwrap())
                        .collect();
                }
                sp
            },
        )
}

pub(crate) fn proxy_model() -> impl Strategy<Value = ProxyModel> {
    (prop::collection::vec(service_port(), 0..8), 1usize..3, any::<bool>()).prop_map(
        |(ports, pod_cidrs, masquerade_all)| {
            let v4 = ["10.180.0.0/16", "10.200.0.0/16"];
            let v6 = ["fd00:180::/48", "fd00:200::/48"];
            ProxyModel {
                node_name: "node-1".into(),
                node_ips: vec!["192.168.0.2".parse().unwrap(), "fd00:192::2".parse().unwrap()],
                node_zone: None,
                cluster_cidrs: v4[..pod_cidrs]
                    .iter()
                    .chain(&v6[..pod_cidrs])
                    .map(|c| c.parse().unwrap())
                    .collect(),
                service_cidrs: vec!["172.30.0.0/16".parse().unwrap(), "fd00:30::/112".parse().unwrap()],
                config: ProxyConfig {
                    masquerade_all,
                    // the backends must agree on any table; a small one keeps `nft` quick
                    maglev_table_size: 251,
                    ..Default::default()
                },
                ports: ports.into_iter().map(|sp| (sp.id(), sp)).collect(),
            }
        },
    )
}

proptest! {
    // each case programs two kernels, one through nft: a few dozen cases cover the space
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_models_build_identical_kernel_state(first in proxy_model(), second in proxy_model()) {
        let mut nets = Namespaces::new("svp-");
        let text_ns = nets.add("text");
        let netlink_ns = nets.add("nl");
        let mut text = Syncer::new(NftText::in_netns(&text_ns));
        let mut netlink = Syncer::new(Netlink::in_netns(&netlink_ns).unwrap());
        for (i, model) in [first, second].into_iter().enumerate() {
            let now = 10_000 * (i as u64 + 1);
            text.sync(model.clone(), now).unwrap();
            netlink.sync(model, now).unwrap();
            compare(&nets, &text_ns, &netlink_ns, if i == 0 { "full sync" } else { "incremental sync" });
        }
    }
}

/// A transaction the kernel refuses names the operation it refused, and changes nothing.
#[test]
fn a_rejected_transaction_names_the_refused_operation_and_changes_nothing() {
    use svcnet_dataplane::backend::Backend;
    use svcnet_dataplane::diff::Op;
    use svcnet_dataplane::ir::{Atom, Element};

    let mut nets = Namespaces::new("svp-");
    let ns = nets.add("reject");
    let mut backend = Netlink::in_netns(&ns).unwrap();
    let model = ProxyModel {
        node_name: "node-1".into(),
        node_ips: vec!["192.168.0.2".parse().unwrap()],
        node_zone: None,
        cluster_cidrs: vec!["10.180.0.0/16".parse().unwrap()],
        service_cidrs: vec!["172.30.0.0/16".parse().unwrap()],
        config: ProxyConfig::default(),
        ports: Default::default(),
    };
    let mut syncer = Syncer::new(Netlink::in_netns(&ns).unwrap());
    syncer.sync(model, 0).unwrap();
    let before = dump::table(backend.socket(), Family::Ip).unwrap();
    // a good element first, then one for a set that does not exist
    let ops = [
        Op::AddElements {
            family: Family::Ip,
            set: "cluster-ips".into(),
            elements: vec![Element::key(vec![Atom::Addr("172.30.0.9".parse().unwrap())])],
        },
        Op::AddElements {
            family: Family::Ip,
            set: "no-such-set".into(),
            elements: vec![Element::key(vec![Atom::Addr("172.30.0.10".parse().unwrap())])],
        },
    ];
    let error = backend.apply(&ops).unwrap_err().to_string();
    assert!(error.contains("add elements of no-such-set"), "{error}");
    assert!(error.contains("No such file or directory"), "{error}");
    assert_eq!(
        dump::table(backend.socket(), Family::Ip).unwrap(),
        before,
        "the good element went in too"
    );
}
