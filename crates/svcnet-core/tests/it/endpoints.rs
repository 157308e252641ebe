//! Endpoint computation against upstream's e2e expectations (service-api.md §8): basic
//! endpoints following pods, multiport with named ports, same port on two protocols,
//! publishNotReadyAddresses, evicted pods; plus slicing, churn and the legacy Endpoints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use svcnet_core::endpoints::legacy::desired_endpoints;
use svcnet_core::endpoints::slices::{SliceChanges, endpoints_of, reconcile_slices};
use svcnet_core::endpoints::{EndpointInputs, LABEL_HEADLESS, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use svcnet_core::service::model::ServiceModel;

use crate::support::*;

fn model(yaml: &str) -> ServiceModel {
    let mut c = Cluster::new(v4_cluster());
    let mut s = c.create(yaml).unwrap_or_else(|e| panic!("{}", e.message));
    s.metadata.uid = Some("svc-uid".into());
    ServiceModel::from_service(&s).unwrap()
}

/// A running pod on `node` with IP `ip`; `ready` sets its Ready condition. Extra YAML for
/// `spec.containers[0].ports` may be given.
fn pod(name: &str, ip: &str, ready: bool, labels: &str, ports: &str) -> Pod {
    let yaml = format!(
        "metadata: {{name: {name}, namespace: default, uid: uid-{name}, labels: {labels}}}
spec: {{nodeName: node-a, containers: [{{name: c, image: x, ports: {ports}}}]}}
status: {{phase: Running, podIP: '{ip}', podIPs: [{{ip: '{ip}'}}], conditions: [{{type: Ready, status: '{}'}}]}}",
        if ready { "True" } else { "False" }
    );
    serde_yaml_ng::from_str(&yaml).unwrap()
}

fn nodes() -> Vec<Node> {
    vec![serde_yaml_ng::from_str("metadata: {name: node-a, labels: {topology.kubernetes.io/zone: zone-1}}").unwrap()]
}

fn reconcile(svc: &ServiceModel, pods: &[Pod], existing: &[EndpointSlice], max: usize) -> SliceChanges {
    let nodes = nodes();
    let inputs = EndpointInputs {
        service: svc,
        pods,
        nodes: &nodes,
        trigger_time: None,
    };
    reconcile_slices(&inputs, existing, max)
}

fn legacy(svc: &ServiceModel, pods: &[Pod]) -> Endpoints {
    let nodes = nodes();
    let inputs = EndpointInputs {
        service: svc,
        pods,
        nodes: &nodes,
        trigger_time: None,
    };
    desired_endpoints(&inputs).expect("selector services get Endpoints")
}

/// Stores the result as the API server would (names assigned to created slices).
fn apply(existing: &mut Vec<EndpointSlice>, changes: SliceChanges, next_name: &mut usize) {
    for d in &changes.delete {
        existing.retain(|s| s.metadata.name != d.metadata.name);
    }
    for u in changes.update {
        let slot = existing
            .iter_mut()
            .find(|s| s.metadata.name == u.metadata.name)
            .unwrap();
        *slot = u;
    }
    for mut c in changes.create {
        *next_name += 1;
        c.metadata.name = Some(format!("{}{}", c.metadata.generate_name.clone().unwrap(), next_name));
        existing.push(c);
    }
}

/// `ip:port,port` summaries of all endpoints across slices, sorted.
fn summary(slices: &[EndpointSlice]) -> Vec<String> {
    let mut out: Vec<String> = slices
        .iter()
        .flat_map(|s| {
            let ports: Vec<String> = s
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}={}/{}",
                        p.name.clone().unwrap(),
                        p.port.unwrap(),
                        p.protocol.clone().unwrap()
                    )
                })
                .collect();
            endpoints_of(s)
                .iter()
                .map(move |e| format!("{} [{}]", e.addresses[0], ports.join(" ")))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

fn addresses(ep: &Endpoints) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    ep.subsets
        .iter()
        .flatten()
        .map(|s| {
            let ips = |v: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
                v.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
            };
            let ports = s.ports.iter().flatten().map(|p| format!("{}", p.port)).collect();
            (ips(&s.addresses), ips(&s.not_ready_addresses), ports)
        })
        .collect()
}

const WEB: &str =
    "metadata: {name: web, labels: {team: a}}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 80}]}";

#[test]
fn basic_endpoints_follow_pods() {
    let svc = model(WEB);
    let mut slices = Vec::new();
    let mut n = 0;
    let p1 = pod("pod1", "10.180.0.1", true, "{app: web}", "[]");
    let p2 = pod("pod2", "10.180.0.2", true, "{app: web}", "[]");
    let other = pod("other", "10.180.0.9", true, "{app: db}", "[]");

    let ch = reconcile(&svc, &[], &slices, 100);
    apply(&mut slices, ch, &mut n);
    assert_eq!(slices.len(), 1, "one placeholder slice");
    assert!(endpoints_of(&slices[0]).is_empty());
    assert_eq!(slices[0].ports.as_deref(), Some(&[][..]));

    let ch = reconcile(&svc, &[p1.clone(), other.clone()], &slices, 100);
    apply(&mut slices, ch, &mut n);
    assert_eq!(summary(&slices), ["10.180.0.1 [=80/TCP]"]);
    let ch = reconcile(&svc, &[p1.clone(), p2.clone(), other.clone()], &slices, 100);
    apply(&mut slices, ch, &mut n);
    assert_eq!(summary(&slices), ["10.180.0.1 [=80/TCP]", "10.180.0.2 [=80/TCP]"]);
    assert_eq!(slices.len(), 1);
    assert_eq!(
        addresses(&legacy(&svc, &[p1.clone(), p2.clone()])),
        [(
            vec!["10.180.0.1".into(), "10.180.0.2".into()],
            vec![],
            vec!["80".into()]
        )]
    );

    let ch = reconcile(&svc, std::slice::from_ref(&p2), &slices, 100);
    apply(&mut slices, ch, &mut n);
    assert_eq!(summary(&slices), ["10.180.0.2 [=80/TCP]"]);
    let ch = reconcile(&svc, &[], &slices, 100);
    apply(&mut slices, ch, &mut n);
    assert_eq!(slices.len(), 1);
    assert!(endpoints_of(&slices[0]).is_empty());
    // a repeated reconcile with no change writes nothing
    assert!(reconcile(&svc, &[], &slices, 100).is_empty());
}

#[test]
fn slice_metadata_and_endpoint_fields() {
    let svc = model(WEB);
    let changes = reconcile(&svc, &[pod("pod1", "10.180.0.1", true, "{app: web}", "[]")], &[], 100);
    let s = &changes.create[0];
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(s.address_type, "IPv4");
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get(LABEL_SERVICE_NAME).map(String::as_str), Some("web"));
    assert_eq!(
        labels.get(LABEL_MANAGED_BY).map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("Service", "web", "svc-uid", Some(true))
    );
    let ep = &endpoints_of(s)[0];
    let c = ep.conditions.as_ref().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(ep.node_name.as_deref(), Some("node-a"));
    assert_eq!(ep.zone.as_deref(), Some("zone-1"));
    let r = ep.target_ref.as_ref().unwrap();
    assert_eq!(
        (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
        (Some("Pod"), Some("pod1"), Some("uid-pod1"))
    );
    // empty lists serialize as [], never null
    let json = serde_json::to_string(&reconcile(&svc, &[], &[], 100).create[0]).unwrap();
    assert!(
        json.contains("\"endpoints\":[]") && json.contains("\"ports\":[]"),
        "{json}"
    );
}

#[test]
fn multiport_with_named_ports_resolves_per_pod() {
    let svc = model(
        "metadata: {name: multi}\nspec: {selector: {app: m}, ports: [{name: portname1, port: 80, targetPort: svc1}, {name: portname2, port: 81, targetPort: svc2}]}",
    );
    let pod1 = pod(
        "pod1",
        "10.180.0.1",
        true,
        "{app: m}",
        "[{name: svc1, containerPort: 100}]",
    );
    let pod2 = pod(
        "pod2",
        "10.180.0.2",
        true,
        "{app: m}",
        "[{name: svc2, containerPort: 101}]",
    );
    let changes = reconcile(&svc, &[pod1.clone(), pod2.clone()], &[], 100);
    assert_eq!(
        changes.create.len(),
        2,
        "different resolved ports land in different slices"
    );
    assert_eq!(
        summary(&changes.create),
        ["10.180.0.1 [portname1=100/TCP]", "10.180.0.2 [portname2=101/TCP]"]
    );
    assert_eq!(
        addresses(&legacy(&svc, &[pod1, pod2.clone()])),
        [
            (vec!["10.180.0.1".into()], vec![], vec!["100".into()]),
            (vec!["10.180.0.2".into()], vec![], vec!["101".into()]),
        ]
    );
    // a named port only resolves with the same protocol
    let udp_named = pod(
        "pod3",
        "10.180.0.3",
        true,
        "{app: m}",
        "[{name: svc1, containerPort: 100, protocol: UDP}]",
    );
    let changes = reconcile(&svc, &[udp_named], &[], 100);
    assert_eq!(summary(&changes.create), ["10.180.0.3 []"]);
    // removing a port from the service updates the endpoints
    let svc = model(
        "metadata: {name: multi}\nspec: {selector: {app: m}, ports: [{name: portname2, port: 81, targetPort: svc2}]}",
    );
    assert_eq!(
        summary(&reconcile(&svc, &[pod2], &[], 100).create),
        ["10.180.0.2 [portname2=101/TCP]"]
    );
}

#[test]
fn same_port_number_on_tcp_and_udp() {
    let svc = model(
        "metadata: {name: dual-proto}\nspec: {type: NodePort, selector: {app: d}, ports: [{name: tcp-port, port: 80, protocol: TCP}, {name: udp-port, port: 80, protocol: UDP}]}",
    );
    let changes = reconcile(&svc, &[pod("pod1", "10.180.0.1", true, "{app: d}", "[]")], &[], 100);
    assert_eq!(
        summary(&changes.create),
        ["10.180.0.1 [tcp-port=80/TCP udp-port=80/UDP]"]
    );
}

#[test]
fn publish_not_ready_addresses() {
    let unready = pod("pod1", "10.180.0.1", false, "{app: web}", "[]");
    let mut terminating = pod("pod2", "10.180.0.2", true, "{app: web}", "[]");
    terminating.metadata.deletion_timestamp = Some(Time(Default::default()));

    let svc = model(WEB);
    let changes = reconcile(&svc, &[unready.clone(), terminating.clone()], &[], 100);
    let conds: Vec<(bool, bool, bool)> = endpoints_of(&changes.create[0])
        .iter()
        .map(|e| {
            let c = e.conditions.as_ref().unwrap();
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
        })
        .collect();
    assert_eq!(conds, [(false, false, false), (false, true, true)]);
    assert_eq!(
        addresses(&legacy(&svc, &[unready.clone(), terminating.clone()])),
        [(vec![], vec!["10.180.0.1".into()], vec!["80".into()])]
    );

    let svc = model(
        "metadata: {name: web}\nspec: {selector: {app: web}, publishNotReadyAddresses: true, ports: [{port: 80}]}",
    );
    let changes = reconcile(&svc, &[unready.clone(), terminating.clone()], &[], 100);
    assert!(
        endpoints_of(&changes.create[0])
            .iter()
            .all(|e| e.conditions.as_ref().unwrap().ready == Some(true))
    );
    assert_eq!(
        addresses(&legacy(&svc, &[unready, terminating])),
        [(
            vec!["10.180.0.1".into(), "10.180.0.2".into()],
            vec![],
            vec!["80".into()]
        )]
    );
}

#[test]
fn evicted_pod_gives_one_empty_slice_and_empty_subsets() {
    let svc = model(WEB);
    let mut evicted = pod("pod1", "10.180.0.1", false, "{app: web}", "[]");
    evicted.status.as_mut().unwrap().phase = Some("Failed".into());
    let changes = reconcile(&svc, &[evicted.clone()], &[], 100);
    assert_eq!(changes.create.len(), 1);
    assert!(endpoints_of(&changes.create[0]).is_empty());
    assert!(legacy(&svc, &[evicted]).subsets.unwrap().is_empty());
}

#[test]
fn no_selector_means_unmanaged_and_empty_selector_selects_all() {
    let svc = model("metadata: {name: manual}\nspec: {ports: [{port: 80}]}");
    assert!(reconcile(&svc, &[pod("p", "10.180.0.1", true, "{app: x}", "[]")], &[], 100).is_empty());
    let nodes = nodes();
    assert!(
        desired_endpoints(&EndpointInputs {
            service: &svc,
            pods: &[],
            nodes: &nodes,
            trigger_time: None
        })
        .is_none()
    );
    let svc = model("metadata: {name: all}\nspec: {selector: {}, ports: [{port: 80}]}");
    let changes = reconcile(&svc, &[pod("p", "10.180.0.1", true, "{app: x}", "[]")], &[], 100);
    assert_eq!(summary(&changes.create), ["10.180.0.1 [=80/TCP]"]);
}

#[test]
fn pods_on_unknown_nodes_wait_unless_publishing_not_ready() {
    let svc = model(WEB);
    let mut p = pod("pod1", "10.180.0.1", true, "{app: web}", "[]");
    p.spec.as_mut().unwrap().node_name = Some("node-gone".into());
    let changes = reconcile(&svc, std::slice::from_ref(&p), &[], 100);
    assert_eq!(changes.pods_waiting_for_node, ["default/pod1"]);
    assert!(summary(&changes.create).is_empty());
    let svc = model(
        "metadata: {name: web}\nspec: {selector: {app: web}, publishNotReadyAddresses: true, ports: [{port: 80}]}",
    );
    assert_eq!(
        summary(&reconcile(&svc, &[p], &[], 100).create),
        ["10.180.0.1 [=80/TCP]"]
    );
}

#[test]
fn slices_hold_at_most_max_endpoints_and_churn_is_minimal() {
    let svc = model(WEB);
    let pods: Vec<Pod> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.180.{}.{}", i / 200, i % 200 + 1),
                true,
                "{app: web}",
                "[]",
            )
        })
        .collect();
    let mut slices = Vec::new();
    let mut n = 0;
    let ch = reconcile(&svc, &pods, &slices, 100);
    apply(&mut slices, ch, &mut n);
    let mut sizes: Vec<usize> = slices.iter().map(|s| endpoints_of(s).len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);

    // removing one pod touches exactly one slice
    let fewer: Vec<Pod> = pods.iter().skip(1).cloned().collect();
    let changes = reconcile(&svc, &fewer, &slices, 100);
    assert_eq!(
        (changes.create.len(), changes.update.len(), changes.delete.len()),
        (0, 1, 0)
    );
    apply(&mut slices, changes, &mut n);

    // a new pod goes into the closest-fitting slice that has room, not a new one
    let mut more = fewer.clone();
    more.push(pod("new", "10.181.0.1", true, "{app: web}", "[]"));
    let changes = reconcile(&svc, &more, &slices, 100);
    assert_eq!((changes.create.len(), changes.update.len()), (0, 1));
    apply(&mut slices, changes, &mut n);
    assert_eq!(summary(&slices).len(), 250);

    // a readiness change updates that endpoint in place
    let mut flipped = more.clone();
    flipped[10] = pod(
        flipped[10].metadata.name.as_deref().unwrap(),
        flipped[10].status.as_ref().unwrap().pod_ip.as_deref().unwrap(),
        false,
        "{app: web}",
        "[]",
    );
    let changes = reconcile(&svc, &flipped, &slices, 100);
    assert_eq!(
        (changes.create.len(), changes.update.len(), changes.delete.len()),
        (0, 1, 0)
    );
}

#[test]
fn headless_and_dual_stack_slices() {
    let svc = model("metadata: {name: h}\nspec: {clusterIP: None, selector: {app: h}, ports: [{port: 80}]}");
    let changes = reconcile(&svc, &[pod("p", "10.180.0.1", true, "{app: h}", "[]")], &[], 100);
    assert_eq!(
        changes.create[0]
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get(LABEL_HEADLESS)
            .map(String::as_str),
        Some("")
    );

    let mut c = Cluster::new(dual_cluster());
    let mut s = c
        .create(
            "metadata: {name: ds}\nspec: {ipFamilyPolicy: RequireDualStack, selector: {app: ds}, ports: [{port: 80}]}",
        )
        .unwrap();
    s.metadata.uid = Some("u".into());
    let svc = ServiceModel::from_service(&s).unwrap();
    let mut p = pod("p", "10.180.0.1", true, "{app: ds}", "[]");
    p.status.as_mut().unwrap().pod_ips = Some(vec![
        serde_yaml_ng::from_str("{ip: 10.180.0.1}").unwrap(),
        serde_yaml_ng::from_str("{ip: 'fd00:10:180::1'}").unwrap(),
    ]);
    let changes = reconcile(&svc, &[p], &[], 100);
    let mut types: Vec<&str> = changes.create.iter().map(|s| s.address_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["IPv4", "IPv6"]);
}

#[test]
fn legacy_endpoints_truncate_beyond_1000() {
    let svc = model(WEB);
    let pods: Vec<Pod> = (0..1100)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.180.{}.{}", i / 250, i % 250 + 1),
                i % 2 == 0,
                "{app: web}",
                "[]",
            )
        })
        .collect();
    let ep = legacy(&svc, &pods);
    let annotations: BTreeMap<String, String> = ep.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations
            .get("endpoints.kubernetes.io/over-capacity")
            .map(String::as_str),
        Some("truncated")
    );
    let (ready, not_ready): (usize, usize) = addresses(&ep)
        .iter()
        .fold((0, 0), |(r, n), s| (r + s.0.len(), n + s.1.len()));
    assert_eq!(ready + not_ready, 1000);
    assert_eq!(ready, 550, "ready addresses are kept first");
}
