//! Topology hints as upstream's EndpointSlice controller writes them: PreferClose and
//! PreferSameNode hint every ready endpoint for its own zone (and node), `topology-mode: Auto`
//! shares endpoints among zones by CPU with upstream's safeguards, and hints go away with the
//! setting that asked for them, also from slices whose endpoints did not change.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use svcnet_core::endpoints::EndpointInputs;
use svcnet_core::endpoints::hints::TopologyEvent;
use svcnet_core::endpoints::slices::{SliceChanges, endpoints_of, reconcile_slices};
use svcnet_core::service::model::ServiceModel;

use crate::support::*;

fn service(extra_meta: &str, extra_spec: &str) -> ServiceModel {
    let mut c = Cluster::new(v4_cluster());
    let yaml = format!(
        "metadata: {{name: web, namespace: default{extra_meta}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80}}]{extra_spec}}}"
    );
    let mut s = c.create(&yaml).unwrap_or_else(|e| panic!("{}", e.message));
    s.metadata.uid = Some("svc-uid".into());
    ServiceModel::from_service(&s).unwrap()
}

fn node(name: &str, zone: Option<&str>, cpu: &str) -> Node {
    let labels = zone
        .map(|z| format!("{{topology.kubernetes.io/zone: {z}}}"))
        .unwrap_or("{}".into());
    serde_yaml_ng::from_str(&format!(
        "metadata: {{name: {name}, labels: {labels}}}
status: {{allocatable: {{cpu: '{cpu}'}}, conditions: [{{type: Ready, status: 'True'}}]}}"
    ))
    .unwrap()
}

fn pod(name: &str, node: &str, ip: &str, ready: bool) -> Pod {
    serde_yaml_ng::from_str(&format!(
        "metadata: {{name: {name}, namespace: default, uid: uid-{name}, labels: {{app: web}}}}
spec: {{nodeName: {node}, containers: [{{name: c, image: x}}]}}
status: {{phase: Running, podIP: '{ip}', podIPs: [{{ip: '{ip}'}}], conditions: [{{type: Ready, status: '{}'}}]}}",
        if ready { "True" } else { "False" }
    ))
    .unwrap()
}

fn reconcile(svc: &ServiceModel, pods: &[Pod], nodes: &[Node], existing: &[EndpointSlice]) -> SliceChanges {
    let inputs = EndpointInputs {
        service: svc,
        pods,
        nodes,
        trigger_time: None,
    };
    reconcile_slices(&inputs, existing, 100)
}

/// Stores a round's result as the API server would.
fn apply(existing: &mut Vec<EndpointSlice>, changes: SliceChanges) {
    for u in changes.update {
        let slot = existing
            .iter_mut()
            .find(|s| s.metadata.name == u.metadata.name)
            .unwrap();
        *slot = u;
    }
    for (i, mut c) in changes.create.into_iter().enumerate() {
        c.metadata.name = Some(format!("web-{}", existing.len() + i));
        existing.push(c);
    }
}

/// `address -> (zones, nodes)` hinted, for every endpoint.
fn hints(slices: &[EndpointSlice]) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    slices
        .iter()
        .flat_map(endpoints_of)
        .map(|e| {
            let h = e.hints.clone().unwrap_or_default();
            let zones = h.for_zones.unwrap_or_default().into_iter().map(|z| z.name).collect();
            let nodes = h.for_nodes.unwrap_or_default().into_iter().map(|n| n.name).collect();
            (e.addresses[0].clone(), (zones, nodes))
        })
        .collect()
}

fn three_zones() -> Vec<Node> {
    vec![
        node("node-a", Some("zone-a"), "2"),
        node("node-b", Some("zone-b"), "2"),
        node("node-c", Some("zone-c"), "2"),
    ]
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn prefer_close_hints_each_ready_endpoint_for_its_own_zone_only() {
    let svc = service("", ", trafficDistribution: PreferClose");
    let pods = [
        pod("a1", "node-a", "10.1.0.1", true),
        pod("b1", "node-b", "10.1.0.2", true),
        pod("b2", "node-b", "10.1.0.3", false),
    ];
    let mut slices = vec![];
    apply(&mut slices, reconcile(&svc, &pods, &three_zones(), &[]));
    let h = hints(&slices);
    assert_eq!(h["10.1.0.1"], (strs(&["zone-a"]), vec![]));
    assert_eq!(h["10.1.0.2"], (strs(&["zone-b"]), vec![]));
    assert_eq!(h["10.1.0.3"], (vec![], vec![]), "a not-ready endpoint gets no hints");
    assert!(
        reconcile(&svc, &pods, &three_zones(), &slices).is_empty(),
        "hinted slices are stable"
    );
}

#[test]
fn prefer_same_node_hints_the_node_too_and_same_zone_does_not() {
    let pods = [pod("a1", "node-a", "10.1.0.1", true)];
    let same_node = service("", ", trafficDistribution: PreferSameNode");
    let mut slices = vec![];
    apply(&mut slices, reconcile(&same_node, &pods, &three_zones(), &[]));
    assert_eq!(hints(&slices)["10.1.0.1"], (strs(&["zone-a"]), strs(&["node-a"])));
    // switching to PreferSameZone rewrites the unchanged slice without node hints
    let same_zone = service("", ", trafficDistribution: PreferSameZone");
    let changes = reconcile(&same_zone, &pods, &three_zones(), &slices);
    assert_eq!(changes.update.len(), 1, "{changes:?}");
    apply(&mut slices, changes);
    assert_eq!(hints(&slices)["10.1.0.1"], (strs(&["zone-a"]), vec![]));
}

#[test]
fn hints_go_when_the_service_stops_asking_for_them() {
    let pods = [
        pod("a1", "node-a", "10.1.0.1", true),
        pod("b1", "node-b", "10.1.0.2", true),
    ];
    let mut slices = vec![];
    apply(
        &mut slices,
        reconcile(
            &service("", ", trafficDistribution: PreferClose"),
            &pods,
            &three_zones(),
            &[],
        ),
    );
    assert_eq!(hints(&slices)["10.1.0.2"].0, strs(&["zone-b"]));
    let plain = service("", "");
    let changes = reconcile(&plain, &pods, &three_zones(), &slices);
    assert_eq!(
        changes.update.len(),
        1,
        "the unchanged slice is updated to drop its hints"
    );
    apply(&mut slices, changes);
    assert!(hints(&slices).values().all(|h| *h == (vec![], vec![])));
    assert!(reconcile(&plain, &pods, &three_zones(), &slices).is_empty());
}

#[test]
fn a_zoneless_endpoint_gets_no_zone_hint_under_prefer_close() {
    let nodes = vec![node("node-a", Some("zone-a"), "2"), node("node-x", None, "2")];
    let pods = [
        pod("a1", "node-a", "10.1.0.1", true),
        pod("x1", "node-x", "10.1.0.2", true),
    ];
    let mut slices = vec![];
    apply(
        &mut slices,
        reconcile(&service("", ", trafficDistribution: PreferClose"), &pods, &nodes, &[]),
    );
    let h = hints(&slices);
    assert_eq!(h["10.1.0.1"].0, strs(&["zone-a"]));
    assert_eq!(h["10.1.0.2"], (vec![], vec![]));
}

const AUTO: &str = ", annotations: {service.kubernetes.io/topology-mode: Auto}";

#[test]
fn auto_shares_endpoints_among_zones_by_cpu() {
    // two equal zones, three endpoints in zone-a and one in zone-b: one of zone-a's serves zone-b
    let nodes = vec![
        node("node-a", Some("zone-a"), "2"),
        node("node-b", Some("zone-b"), "2000m"),
    ];
    let pods = [
        pod("a1", "node-a", "10.1.0.1", true),
        pod("a2", "node-a", "10.1.0.2", true),
        pod("a3", "node-a", "10.1.0.3", true),
        pod("b1", "node-b", "10.1.0.4", true),
    ];
    let svc = service(AUTO, "");
    let changes = reconcile(&svc, &pods, &nodes, &[]);
    assert_eq!(
        changes.events,
        vec![TopologyEvent {
            warning: false,
            reason: "TopologyAwareHintsEnabled",
            message: "Topology Aware Hints has been enabled, addressType: IPv4".into(),
        }]
    );
    let mut slices = vec![];
    apply(&mut slices, changes);
    let h = hints(&slices);
    let for_zone = |z: &str| h.values().filter(|(zones, _)| zones == &strs(&[z])).count();
    assert_eq!((for_zone("zone-a"), for_zone("zone-b")), (2, 2), "{h:?}");
    assert_eq!(h["10.1.0.4"].0, strs(&["zone-b"]), "zone-b keeps its own endpoint");
    let again = reconcile(&svc, &pods, &nodes, &slices);
    assert!(again.is_empty() && again.events.is_empty(), "{again:?}");
}

#[test]
fn auto_refuses_with_upstream_s_reasons() {
    let svc = service(AUTO, "");
    let pods = [
        pod("a1", "node-a", "10.1.0.1", true),
        pod("b1", "node-b", "10.1.0.2", true),
    ];
    let cases = [
        (
            vec![node("node-a", Some("zone-a"), "2"), node("node-b", None, "2")],
            "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes, addressType: IPv4",
        ),
        (
            three_zones(),
            "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4",
        ),
        (
            vec![node("node-a", Some("zone-a"), "1"), node("node-b", Some("zone-b"), "9")],
            "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold (2 endpoints, 2 zones), addressType: IPv4",
        ),
    ];
    for (nodes, message) in cases {
        let changes = reconcile(&svc, &pods, &nodes, &[]);
        assert_eq!(changes.events.len(), 1, "{changes:?}");
        assert!(changes.events[0].warning);
        assert_eq!(changes.events[0].reason, "TopologyAwareHintsDisabled");
        assert_eq!(changes.events[0].message, message);
        let mut slices = vec![];
        apply(&mut slices, changes);
        assert!(hints(&slices).values().all(|h| *h == (vec![], vec![])));
    }
}
