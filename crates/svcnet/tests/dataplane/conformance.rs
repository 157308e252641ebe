//! Both backends build the same kernel state: the same models are synced by a text-backend
//! syncer and a netlink-backend syncer into two fresh namespaces, and after every step the
//! tables read back over netlink, and as `nft -j` lists them, are identical.

use svcnet_dataplane::backend::NftText;
use svcnet_dataplane::ir::Family;
use svcnet_dataplane::netlink::{Netlink, dump};
use svcnet_dataplane::syncer::{SyncKind, Syncer};

use crate::world::World;

fn compare(w: &World, text_ns: &str, netlink_ns: &str, step: &str) {
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
        let list = |ns: &str| {
            w.nets
                .exec_ok(ns, &["nft", "-j", "list", "table", family.keyword(), "svcnet"])
        };
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
        compare(w, &text_ns, &netlink_ns, what);
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
    compare(&w, &text_ns, &netlink_ns, "several pod CIDRs");
}
