//! The change tracker against the whole-model build: after any sequence of Service,
//! EndpointSlice and Node events (re-lists included), the model the agent maintains from the
//! tracker's changes equals `ProxyModel::build` over the same objects, and so does the ruleset
//! compiled incrementally from those changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proptest::prelude::*;
use serde_json::json;
use svcnet_agent::tracker::{ChangeTracker, Watched};
use svcnet_dataplane::incremental::CompiledModel;
use svcnet_dataplane::model::{DigestPart, ModelDigest, ProxyConfig, ProxyModel, service_ports};

const NODE: &str = "node-a";
const NAMESPACES: [&str; 2] = ["default", "team"];

#[derive(Clone, Debug)]
enum Step {
    ApplyService {
        ns: usize,
        svc: usize,
        ports: usize,
        node_port: bool,
        ignored: u8,
        ip: u8,
    },
    DeleteService {
        ns: usize,
        svc: usize,
    },
    ApplySlice {
        ns: usize,
        slice: usize,
        svc: Option<usize>,
        ports: usize,
        endpoints: Vec<(u8, bool, bool, bool, bool)>,
    },
    DeleteSlice {
        ns: usize,
        slice: usize,
    },
    Node {
        addresses: u8,
        /// 0: no zone label, else zone `z{zone}`.
        zone: u8,
    },
    /// A re-list of services (`true`) or slices that drops the objects whose mask bit is set.
    Relist {
        services: bool,
        drop_mask: u8,
    },
    /// The agent takes the changes so far.
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    let endpoint = (0u8..6, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    prop_oneof![
        4 => (0..2usize, 0..4usize, 0..3usize, any::<bool>(), 0u8..8, 1u8..4)
            .prop_map(|(ns, svc, ports, node_port, ignored, ip)| Step::ApplyService { ns, svc, ports, node_port, ignored, ip }),
        1 => (0..2usize, 0..4usize).prop_map(|(ns, svc)| Step::DeleteService { ns, svc }),
        5 => (0..2usize, 0..6usize, proptest::option::weighted(0.9, 0..4usize), 0..3usize, proptest::collection::vec(endpoint, 0..4))
            .prop_map(|(ns, slice, svc, ports, endpoints)| Step::ApplySlice { ns, slice, svc, ports, endpoints }),
        1 => (0..2usize, 0..6usize).prop_map(|(ns, slice)| Step::DeleteSlice { ns, slice }),
        1 => (0u8..3, 0u8..3).prop_map(|(addresses, zone)| Step::Node { addresses, zone }),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(services, drop_mask)| Step::Relist { services, drop_mask }),
        3 => Just(Step::Flush),
    ]
}

/// Port sets a Service or slice may have: (name, protocol, number).
const PORT_SETS: [&[(&str, &str, i32)]; 3] = [
    &[("http", "TCP", 80)],
    &[("http", "TCP", 80), ("dns", "UDP", 53)],
    &[("dns", "UDP", 53)],
];

fn service(ns: usize, svc: usize, ports: usize, node_port: bool, ignored: u8, ip: u8) -> Service {
    let ip = format!("10.96.{}.{}", ns * 10 + svc, ip);
    let ports: Vec<_> = PORT_SETS[ports]
        .iter()
        .enumerate()
        .map(|(i, (name, protocol, port))| {
            let mut p = json!({"name": name, "protocol": protocol, "port": port, "targetPort": port + 8000});
            if node_port {
                p["nodePort"] = json!(30000 + (ns * 100 + svc * 10 + i) as i32);
            }
            p
        })
        .collect();
    let mut labels = json!({});
    // a few Services the proxy must leave alone
    if ignored == 0 {
        labels["service.kubernetes.io/service-proxy-name"] = json!("other");
    }
    let mut spec = json!({
        "type": if node_port { "NodePort" } else { "ClusterIP" },
        "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
        "sessionAffinity": "None", "internalTrafficPolicy": "Cluster", "ports": ports,
    });
    if node_port {
        spec["externalTrafficPolicy"] = json!(if ignored == 1 { "Local" } else { "Cluster" });
    }
    if ignored == 2 && !node_port {
        spec["clusterIP"] = json!("None");
        spec["clusterIPs"] = json!(["None"]);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": NAMESPACES[ns], "name": format!("s{svc}"), "labels": labels},
        "spec": spec,
    }))
    .unwrap()
}

fn slice(
    ns: usize,
    slice: usize,
    svc: Option<usize>,
    ports: usize,
    endpoints: &[(u8, bool, bool, bool, bool)],
) -> EndpointSlice {
    let mut labels = json!({});
    if let Some(svc) = svc {
        labels["kubernetes.io/service-name"] = json!(format!("s{svc}"));
    }
    let ports: Vec<_> = PORT_SETS[ports]
        .iter()
        .map(|(name, protocol, port)| json!({"name": name, "protocol": protocol, "port": port + 8000}))
        .collect();
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(ip, local, ready, serving, terminating)| {
            let node = if *local { NODE } else { "node-b" };
            // the address also picks the endpoint's topology hints
            let hints = match ip % 4 {
                0 => json!(null),
                1 => json!({"forZones": [{"name": "z1"}]}),
                2 => json!({"forZones": [{"name": "z2"}]}),
                _ => json!({"forZones": [{"name": "z1"}], "forNodes": [{"name": node}]}),
            };
            json!({
                "addresses": [format!("10.244.{}.{}", ns, ip + 1)],
                "nodeName": node,
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "hints": hints,
            })
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"namespace": NAMESPACES[ns], "name": format!("e{slice}"), "labels": labels},
        "ports": ports, "endpoints": endpoints,
    }))
    .unwrap()
}

fn node(addresses: u8, zone: u8) -> Node {
    let list: Vec<_> = (0..addresses)
        .map(|i| json!({"type": "InternalIP", "address": format!("10.240.0.{}", 11 + i)}))
        .collect();
    let labels = if zone == 0 {
        json!({})
    } else {
        json!({"topology.kubernetes.io/zone": format!("z{zone}")})
    };
    serde_json::from_value(json!({"metadata": {"name": NODE, "labels": labels}, "status": {"addresses": list}}))
        .unwrap()
}

type Key = (String, String);

/// What the API server holds: the truth every model is compared with.
#[derive(Default)]
struct Cluster {
    services: BTreeMap<Key, Service>,
    slices: BTreeMap<Key, EndpointSlice>,
    node: Option<Node>,
}

fn key(ns: usize, name: String) -> Key {
    (NAMESPACES[ns].to_owned(), name)
}

impl Cluster {
    fn model(&self) -> ProxyModel {
        let services: Vec<Service> = self.services.values().cloned().collect();
        let slices: Vec<EndpointSlice> = self.slices.values().cloned().collect();
        let node_ips = self
            .node
            .as_ref()
            .map(svcnet_agent::tracker::node_addresses)
            .unwrap_or_default();
        let mut model = ProxyModel::build(
            NODE,
            node_ips,
            cidrs("10.244.0.0/16"),
            cidrs("10.96.0.0/16"),
            ProxyConfig::default(),
            &services,
            &slices,
        );
        model.node_zone = self.node.as_ref().and_then(svcnet_agent::tracker::node_zone);
        model
    }
}

fn cidrs(c: &str) -> Vec<ipnet::IpNet> {
    vec![c.parse().unwrap()]
}

/// The agent's side: the tracker, the model its changes build, and the ruleset compiled from
/// the same changes.
struct Agent {
    tracker: ChangeTracker,
    model: ProxyModel,
    compiled: CompiledModel,
}

impl Agent {
    fn start(cluster: &Cluster) -> Self {
        let mut tracker = ChangeTracker::new(
            NODE,
            cidrs("10.244.0.0/16"),
            cidrs("10.96.0.0/16"),
            ProxyConfig::default(),
        );
        for kind in [Watched::Services, Watched::EndpointSlices, Watched::Node] {
            tracker.begin_relist(kind);
        }
        for s in cluster.services.values() {
            tracker.apply_service(s);
        }
        for s in cluster.slices.values() {
            tracker.apply_slice(s);
        }
        if let Some(n) = &cluster.node {
            tracker.node_listed(n);
        }
        for kind in [Watched::Services, Watched::EndpointSlices, Watched::Node] {
            tracker.end_relist(kind);
        }
        assert!(tracker.is_listed());
        let model = tracker.full_model();
        Agent {
            compiled: CompiledModel::new(model.clone()),
            tracker,
            model,
        }
    }

    fn flush(&mut self) {
        let changes = self.tracker.take_changes();
        if changes.node_changed {
            self.model = self.tracker.full_model();
            self.compiled = CompiledModel::new(self.model.clone());
            return;
        }
        for (id, port) in &changes.ports {
            match port {
                Some(p) => self.model.ports.insert(id.clone(), p.clone()),
                None => self.model.ports.remove(id),
            };
        }
        self.compiled.update_ports(changes.ports);
    }
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut cluster = Cluster {
        node: Some(node(1, 1)),
        ..Default::default()
    };
    let mut agent = Agent::start(&cluster);
    for step in steps {
        match step {
            Step::ApplyService {
                ns,
                svc,
                ports,
                node_port,
                ignored,
                ip,
            } => {
                let s = service(ns, svc, ports, node_port, ignored, ip);
                if ignored >= 3 {
                    prop_assert!(
                        service_ports(&s).is_some(),
                        "the generator made an invalid Service: {s:?}"
                    );
                }
                agent.tracker.apply_service(&s);
                cluster.services.insert(key(ns, format!("s{svc}")), s);
            }
            Step::DeleteService { ns, svc } => {
                let k = key(ns, format!("s{svc}"));
                if cluster.services.remove(&k).is_some() {
                    agent.tracker.delete_service(&k);
                }
            }
            Step::ApplySlice {
                ns,
                slice: n,
                svc,
                ports,
                endpoints,
            } => {
                let s = slice(ns, n, svc, ports, &endpoints);
                agent.tracker.apply_slice(&s);
                cluster.slices.insert(key(ns, format!("e{n}")), s);
            }
            Step::DeleteSlice { ns, slice } => {
                let k = key(ns, format!("e{slice}"));
                if cluster.slices.remove(&k).is_some() {
                    agent.tracker.delete_slice(&k);
                }
            }
            Step::Node { addresses, zone } => {
                let n = node(addresses, zone);
                agent.tracker.set_node(Some(&n));
                cluster.node = Some(n);
            }
            Step::Relist { services, drop_mask } => {
                let kind = if services {
                    Watched::Services
                } else {
                    Watched::EndpointSlices
                };
                agent.tracker.begin_relist(kind);
                let mut i = 0u32;
                let dropped = |i: &mut u32| {
                    *i += 1;
                    drop_mask & (1 << (*i % 8)) != 0
                };
                if services {
                    cluster.services.retain(|_, _| !dropped(&mut i));
                    for s in cluster.services.values() {
                        agent.tracker.apply_service(s);
                    }
                } else {
                    cluster.slices.retain(|_, _| !dropped(&mut i));
                    for s in cluster.slices.values() {
                        agent.tracker.apply_slice(s);
                    }
                }
                agent.tracker.end_relist(kind);
            }
            Step::Flush => {
                agent.flush();
                prop_assert_eq!(&agent.model, &cluster.model());
            }
        }
    }
    agent.flush();
    let expected = cluster.model();
    prop_assert_eq!(&agent.model, &expected);
    prop_assert_eq!(&agent.tracker.rebuild(), &expected);
    prop_assert_eq!(agent.tracker.digest(), ModelDigest::of(&expected));
    // the parts of a check cover every port once, and each agrees with the model's part
    for count in [2, 3] {
        let mut union = std::collections::BTreeMap::new();
        for index in 0..count {
            let part = DigestPart { index, count };
            let digest = agent.tracker.digest_part(part);
            prop_assert_eq!(&digest, &ModelDigest::of_part(&expected, part));
            for (id, hash) in digest.ports {
                prop_assert!(union.insert(id, hash).is_none(), "a port in two parts");
            }
        }
        prop_assert_eq!(&union, &ModelDigest::of(&expected).ports);
    }
    prop_assert!(
        agent.compiled.ruleset() == CompiledModel::new(expected).ruleset(),
        "incremental ruleset differs"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn incremental_changes_equal_a_whole_build(steps in proptest::collection::vec(step(), 1..60)) {
        run(steps)?;
    }
}

#[test]
fn a_burst_about_one_service_reports_only_its_ports() {
    let mut cluster = Cluster::default();
    for svc in 0..4 {
        cluster
            .services
            .insert(key(0, format!("s{svc}")), service(0, svc, 1, false, 5, 1));
    }
    let mut agent = Agent::start(&cluster);
    for i in 0..20u8 {
        agent
            .tracker
            .apply_slice(&slice(0, 0, Some(2), 1, &[(i % 5, true, true, true, false)]));
    }
    let changes = agent.tracker.take_changes();
    let ids: Vec<&str> = changes.ports.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["default/s2/tcp/http", "default/s2/udp/dns"]);
    // nothing changed since: nothing to report
    agent
        .tracker
        .apply_slice(&slice(0, 0, Some(2), 1, &[(4, true, true, true, false)]));
    assert!(agent.tracker.take_changes().is_empty());
}

#[test]
fn a_slice_that_moves_to_another_service_leaves_the_first() {
    let mut cluster = Cluster::default();
    for svc in 0..2 {
        cluster
            .services
            .insert(key(0, format!("s{svc}")), service(0, svc, 0, false, 5, 1));
    }
    let mut agent = Agent::start(&cluster);
    for svc in [0, 1] {
        let s = slice(0, 0, Some(svc), 0, &[(1, true, true, true, false)]);
        agent.tracker.apply_slice(&s);
        cluster.slices.insert(key(0, "e0".into()), s);
        agent.flush();
        assert_eq!(agent.model, cluster.model());
    }
    assert!(agent.model.ports["default/s0/tcp/http"].endpoints.is_empty());
    assert_eq!(agent.model.ports["default/s1/tcp/http"].endpoints.len(), 1);
}
