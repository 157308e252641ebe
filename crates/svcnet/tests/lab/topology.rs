//! Topology-aware routing in a 3-node lab over two zones (node-1 and node-3 in zone a,
//! node-2 in zone b), one backend pod per node: `trafficDistribution` PreferSameZone (and
//! its older name PreferClose) keeps a client in its zone, PreferSameNode on its node, both fall back to every endpoint where
//! upstream does, and `topology-mode: Auto` hints zones by CPU. Real traffic on every setup,
//! so svcnet's proxy and controller are held to kube-proxy's and kube-controller-manager's.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{ControlPlane, Lab, distinct, netexec_pod, wait_for};

fn backend(node: u32) -> String {
    netexec_pod(&format!("web-{node}"), "web", Some(node), "")
}

fn client(node: u32) -> String {
    crate::support::client_pod(&format!("client-{node}"), Some(node))
}

/// The backends that answer `client-N` over 40 connections to `target`.
fn reached(lab: &Lab, node: u32, target: &str) -> BTreeSet<String> {
    let answers = lab.ask_from_pod(
        &format!("client-{node}"),
        &[target, "--count", "40", "--timeout-ms", "1000"],
    );
    distinct(&answers)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Waits until `client-N` reaches exactly `want` (rules follow the API within seconds).
fn expect(lab: &Lab, node: u32, target: &str, want: &[&str], why: &str) {
    let want = set(want);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = reached(lab, node, target);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {why}: client-{node} reached {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn patch(lab: &Lab, body: &str) {
    lab.k(&["patch", "service", "web", "-p", body]);
}

fn topology_aware_routing(control_plane: ControlPlane) {
    let (lab, _) = Lab::up_with_path_on(3, &["--zones", "a,b"], None, control_plane);
    for node in 1..=3 {
        lab.apply(&backend(node));
    }
    lab.apply(&client(2));
    lab.apply(&client(3));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    lab.wait_ready_pods("app=web", 3);
    lab.wait_ready_pods("app=client", 2);
    let target = format!("{}:80", lab.get(&["service", "web"], "{.spec.clusterIP}"));

    // without a preference, every backend serves every client
    expect(
        &lab,
        3,
        &target,
        &["web-1", "web-2", "web-3"],
        "client-3 to reach all backends",
    );

    patch(&lab, r#"{"spec":{"trafficDistribution":"PreferSameZone"}}"#);
    expect(&lab, 3, &target, &["web-1", "web-3"], "client-3 to stay in zone a");
    expect(&lab, 2, &target, &["web-2"], "client-2 to stay in zone b");
    let zones = lab.get(
        &["endpointslices", "-l", "kubernetes.io/service-name=web"],
        "{.items[*].endpoints[*].hints.forZones[*].name}",
    );
    let mut zones: Vec<&str> = zones.split_whitespace().collect();
    zones.sort();
    assert_eq!(zones, ["a", "a", "b"], "every endpoint hinted for its own zone");
    // PreferClose, the older name of PreferSameZone, behaves the same
    patch(&lab, r#"{"spec":{"trafficDistribution":"PreferClose"}}"#);
    expect(
        &lab,
        3,
        &target,
        &["web-1", "web-3"],
        "PreferClose to keep client-3 in zone a",
    );
    expect(&lab, 2, &target, &["web-2"], "PreferClose to keep client-2 in zone b");

    patch(&lab, r#"{"spec":{"trafficDistribution":"PreferSameNode"}}"#);
    expect(&lab, 3, &target, &["web-3"], "client-3 to stay on node-3");
    expect(&lab, 2, &target, &["web-2"], "client-2 to stay on node-2");

    // node-2 loses its only backend: no endpoint is hinted for node-2 or for zone b, so
    // its client falls back to every endpoint
    lab.k(&["delete", "pod", "web-2", "--grace-period=0"]);
    expect(
        &lab,
        2,
        &target,
        &["web-1", "web-3"],
        "client-2 to fall back to all endpoints",
    );
    expect(&lab, 3, &target, &["web-3"], "client-3 to keep its node's backend");

    // no preference again: hints go, also from slices whose endpoints did not change
    lab.apply(&backend(2));
    lab.wait_ready_pods("app=web", 3);
    patch(&lab, r#"{"spec":{"trafficDistribution":null}}"#);
    expect(&lab, 3, &target, &["web-1", "web-2", "web-3"], "hints to be removed");

    // Auto: three equal nodes give zone a two thirds of three endpoints and zone b one.
    // (Switching straight from PreferSameNode to Auto keeps the node hints of unchanged
    // slices, in kube-controller-manager as in svcnet: Auto only checks zone hints.)
    patch(
        &lab,
        r#"{"metadata":{"annotations":{"service.kubernetes.io/topology-mode":"Auto"}}}"#,
    );
    expect(&lab, 3, &target, &["web-1", "web-3"], "Auto to keep client-3 in zone a");
    expect(&lab, 2, &target, &["web-2"], "Auto to keep client-2 in zone b");
    let reasons = wait_for("the hints-enabled event", Duration::from_secs(20), || {
        let r = lab.get(
            &[
                "events",
                "--field-selector",
                "involvedObject.name=web,involvedObject.kind=Service",
            ],
            "{.items[*].reason}",
        );
        r.contains("TopologyAwareHintsEnabled").then_some(r)
    });
    assert!(!reasons.contains("TopologyAwareHintsDisabled"), "{reasons}");
}

on_both_control_planes!(topology_aware_routing);
