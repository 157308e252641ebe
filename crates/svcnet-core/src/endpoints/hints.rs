//! Topology hints on EndpointSlices, as upstream's EndpointSlice controller writes them. A
//! Service picks one strategy: `service.kubernetes.io/topology-mode: Auto` hints each zone a
//! share of the ready endpoints in proportion to its nodes' allocatable CPU (with upstream's
//! safeguards); `trafficDistribution: PreferClose`/`PreferSameZone` hints every ready endpoint
//! for its own zone, and `PreferSameNode` for its own node too; anything else removes hints.
//! Each strategy works over one address type's slices after endpoint reconciliation: slices
//! being created or updated get their hints set, and an unchanged slice whose hints are wrong
//! moves to the updates.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointHints, EndpointSlice, ForNode, ForZone};

use super::LABEL_ZONE;
use crate::service::model::ServiceModel;

/// The annotation that turns on proportional zone hints.
pub const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
/// Its deprecated name, which takes precedence when both are set (as upstream reads them).
pub const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";

/// A zone is overloaded when it gets fewer endpoints than its CPU share by more than this.
const OVERLOAD_THRESHOLD: f64 = 0.2;

/// An Event the controller records on the Service about its hints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl TopologyEvent {
    fn disabled(message: String) -> Self {
        TopologyEvent {
            warning: true,
            reason: "TopologyAwareHintsDisabled",
            message,
        }
    }
}

/// One address type's slices, as endpoint reconciliation left them.
pub struct FamilySlices<'a> {
    /// `IPv4` or `IPv6`, for event messages.
    pub address_type: &'a str,
    pub create: &'a mut Vec<EndpointSlice>,
    pub update: &'a mut Vec<EndpointSlice>,
    pub unchanged: &'a mut Vec<EndpointSlice>,
}

/// How a Service's endpoints get hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintStrategy {
    /// No hints (and stale ones are removed).
    None,
    /// Each ready endpoint is hinted for its own zone, and for its own node when asked.
    PreferClose { node_hints: bool },
    /// Zones share the endpoints in proportion to their allocatable CPU.
    Auto,
}

impl HintStrategy {
    /// The strategy `svc` asks for: the annotation wins over `trafficDistribution`.
    pub fn of(svc: &ServiceModel) -> Self {
        let annotation = svc
            .annotations
            .get(ANNOTATION_TOPOLOGY_AWARE_HINTS)
            .or_else(|| svc.annotations.get(ANNOTATION_TOPOLOGY_MODE));
        if matches!(annotation.map(String::as_str), Some("Auto" | "auto")) {
            return HintStrategy::Auto;
        }
        match svc.traffic_distribution.as_deref() {
            Some("PreferClose" | "PreferSameZone") => HintStrategy::PreferClose { node_hints: false },
            Some("PreferSameNode") => HintStrategy::PreferClose { node_hints: true },
            _ => HintStrategy::None,
        }
    }

    /// Sets the hints of `slices`; `had_hints` tells whether the Service's stored slices of
    /// this address type carried hints before (the "enabled" event is recorded only then).
    pub fn assign(self, nodes: &[Node], slices: FamilySlices<'_>, had_hints: bool) -> Vec<TopologyEvent> {
        match self {
            HintStrategy::None => {
                remove_hints(slices);
                vec![]
            }
            HintStrategy::PreferClose { node_hints } => {
                prefer_close(node_hints, slices);
                vec![]
            }
            HintStrategy::Auto => proportional(nodes, slices, had_hints),
        }
    }
}

fn is_ready(ep: &Endpoint) -> bool {
    ep.conditions.as_ref().and_then(|c| c.ready) == Some(true)
}

fn endpoints_mut(slice: &mut EndpointSlice) -> &mut Vec<Endpoint> {
    slice.endpoints.get_or_insert_with(Vec::new)
}

fn zone_hints(ep: &Endpoint) -> &[ForZone] {
    ep.hints.as_ref().and_then(|h| h.for_zones.as_deref()).unwrap_or(&[])
}

fn node_hints(ep: &Endpoint) -> &[ForNode] {
    ep.hints.as_ref().and_then(|h| h.for_nodes.as_deref()).unwrap_or(&[])
}

fn hinted_for_zone(zone: &str) -> Option<EndpointHints> {
    Some(EndpointHints {
        for_zones: Some(vec![ForZone { name: zone.to_owned() }]),
        for_nodes: None,
    })
}

/// Moves the unchanged slices `stale` picks to the updates, where their hints are set.
fn move_stale(slices: &mut FamilySlices<'_>, stale: impl Fn(&EndpointSlice) -> bool) {
    let (moved, kept): (Vec<EndpointSlice>, Vec<EndpointSlice>) =
        std::mem::take(slices.unchanged).into_iter().partition(stale);
    *slices.unchanged = kept;
    slices.update.extend(moved);
}

fn remove_hints(mut slices: FamilySlices<'_>) {
    move_stale(&mut slices, |s| {
        super::slices::endpoints_of(s).iter().any(|e| e.hints.is_some())
    });
    for slice in slices.create.iter_mut().chain(slices.update.iter_mut()) {
        for ep in endpoints_mut(slice) {
            ep.hints = None;
        }
    }
}

/// The hints PreferClose gives a ready endpoint (`None` for a not-ready one: left as it is).
fn close_hints(ep: &Endpoint, with_node_hints: bool) -> Option<Option<EndpointHints>> {
    if !is_ready(ep) {
        return None;
    }
    let for_zones = ep.zone.as_ref().map(|z| vec![ForZone { name: z.clone() }]);
    let for_nodes = ep
        .node_name
        .as_ref()
        .filter(|_| with_node_hints)
        .map(|n| vec![ForNode { name: n.clone() }]);
    Some((for_zones.is_some() || for_nodes.is_some()).then_some(EndpointHints { for_zones, for_nodes }))
}

fn prefer_close(with_node_hints: bool, mut slices: FamilySlices<'_>) {
    let wrong = |ep: &Endpoint| {
        let zones_right = match &ep.zone {
            Some(zone) => matches!(zone_hints(ep), [only] if only.name == *zone),
            None => zone_hints(ep).is_empty(),
        };
        let nodes_right = match ep.node_name.as_ref().filter(|_| with_node_hints) {
            Some(node) => matches!(node_hints(ep), [only] if only.name == *node),
            None => node_hints(ep).is_empty(),
        };
        is_ready(ep) && !(zones_right && nodes_right)
    };
    move_stale(&mut slices, |s| super::slices::endpoints_of(s).iter().any(wrong));
    for slice in slices.create.iter_mut().chain(slices.update.iter_mut()) {
        for ep in endpoints_mut(slice) {
            if let Some(hints) = close_hints(ep, with_node_hints) {
                ep.hints = hints;
            }
        }
    }
}

/// A zone's share of a Service's ready endpoints.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Allocation {
    minimum: usize,
    maximum: usize,
    desired: f64,
}

/// Each zone's share of the allocatable CPU of the ready, non-control-plane nodes; `None`
/// when a node lacks a zone or CPU, or fewer than two zones have any.
fn cpu_ratios(nodes: &[Node]) -> Option<BTreeMap<String, f64>> {
    let mut by_zone: BTreeMap<String, i128> = BTreeMap::new();
    for node in nodes {
        let labels = node.metadata.labels.as_ref();
        let excluded = labels.is_some_and(|l| {
            l.contains_key("node-role.kubernetes.io/control-plane") || l.contains_key("node-role.kubernetes.io/master")
        });
        let status = node.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        if excluded || !ready {
            continue;
        }
        let cpu = status
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("cpu"))
            .and_then(|q| crate::quantity::milli_value(&q.0))
            .unwrap_or(0);
        let zone = labels.and_then(|l| l.get(LABEL_ZONE)).filter(|z| !z.is_empty());
        let zone = zone.filter(|_| cpu != 0)?;
        *by_zone.entry(zone.clone()).or_default() += cpu;
    }
    let total: i128 = by_zone.values().sum();
    if total == 0 || by_zone.len() < 2 {
        return None;
    }
    Some(
        by_zone
            .into_iter()
            .map(|(z, cpu)| (z, cpu as f64 / total as f64))
            .collect(),
    )
}

fn allocations(
    ratios: Option<&BTreeMap<String, f64>>,
    endpoints: usize,
) -> Result<BTreeMap<String, Allocation>, String> {
    let Some(ratios) = ratios else {
        return Err("Insufficient Node information: allocatable CPU or zone not specified on one or more nodes".into());
    };
    if ratios.len() < 2 {
        return Err("Nodes only ready in one zone".into());
    }
    if ratios.len() > endpoints {
        return Err(format!(
            "Insufficient number of endpoints ({endpoints} endpoints, {} zones)",
            ratios.len()
        ));
    }
    let mut out = BTreeMap::new();
    let mut minimum_total = 0usize;
    for (zone, ratio) in ratios {
        let desired = ratio * endpoints as f64;
        let minimum = (desired * (1.0 / (1.0 + OVERLOAD_THRESHOLD))).ceil() as usize;
        minimum_total += minimum;
        if minimum_total > endpoints {
            return Err(format!(
                "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold ({endpoints} endpoints, {} zones)",
                ratios.len()
            ));
        }
        out.insert(
            zone.clone(),
            Allocation {
                minimum,
                maximum: 0,
                desired: desired.max(minimum as f64),
            },
        );
    }
    for a in out.values_mut() {
        a.maximum = a.minimum + endpoints - minimum_total;
    }
    Ok(out)
}

/// The hints an unchanged slice already gives each zone, if they fit the allocations.
fn hints_by_zone(
    slice: &EndpointSlice,
    allocated: &BTreeMap<String, usize>,
    allocations: &BTreeMap<String, Allocation>,
) -> Option<BTreeMap<String, usize>> {
    let mut by_zone: BTreeMap<String, usize> = BTreeMap::new();
    for ep in super::slices::endpoints_of(slice).iter().filter(|e| is_ready(e)) {
        let zones = zone_hints(ep);
        if zones.is_empty() {
            return None;
        }
        for zone in zones {
            allocations.get(&zone.name)?;
            *by_zone.entry(zone.name.clone()).or_default() += 1;
        }
    }
    let fits = by_zone
        .iter()
        .all(|(zone, n)| n + allocated.get(zone).copied().unwrap_or(0) <= allocations[zone].maximum);
    fits.then_some(by_zone)
}

/// The zone holding the largest remaining amount (the first such zone on a tie).
fn most(zones: &BTreeMap<String, f64>) -> Option<(String, f64)> {
    let mut best: Option<(String, f64)> = None;
    for (zone, n) in zones {
        if *n > best.as_ref().map_or(0.0, |b| b.1) {
            best = Some((zone.clone(), *n));
        }
    }
    best
}

type ZoneCounts = BTreeMap<String, usize>;

/// How many hints each zone with too many gives away, and each with too few receives.
fn giving_and_receiving(
    allocations: &BTreeMap<String, Allocation>,
    allocated: &ZoneCounts,
) -> (ZoneCounts, ZoneCounts) {
    let mut giving_wanted = BTreeMap::new();
    let mut receiving_wanted = BTreeMap::new();
    for (zone, a) in allocations {
        let have = allocated.get(zone).copied().unwrap_or(0) as f64;
        if have > a.desired {
            giving_wanted.insert(zone.clone(), have - a.desired);
        } else if have < a.desired {
            receiving_wanted.insert(zone.clone(), a.desired - have);
        }
    }
    let (mut giving, mut receiving) = (ZoneCounts::new(), ZoneCounts::new());
    while let (Some((giver, give)), Some((receiver, receive))) = (most(&giving_wanted), most(&receiving_wanted)) {
        if (give < 1.0 && receive < 1.0) || give < 0.5 || receive < 0.5 {
            break;
        }
        *giving.entry(giver.clone()).or_default() += 1;
        *giving_wanted.get_mut(&giver).expect("present") -= 1.0;
        *receiving.entry(receiver.clone()).or_default() += 1;
        *receiving_wanted.get_mut(&receiver).expect("present") -= 1.0;
    }
    (giving, receiving)
}

/// Re-hints endpoints of giving zones for receiving zones; returns each zone's change.
fn redistribute(
    slices: &mut [&mut EndpointSlice],
    giving: &mut ZoneCounts,
    receiving: &mut ZoneCounts,
) -> BTreeMap<String, isize> {
    let mut moved: BTreeMap<String, isize> = BTreeMap::new();
    for slice in slices.iter_mut() {
        for ep in endpoints_mut(slice) {
            if !is_ready(ep) {
                continue;
            }
            if giving.is_empty() || receiving.is_empty() {
                return moved;
            }
            let Some(zone) = ep.zone.clone().filter(|z| !z.is_empty()) else {
                continue;
            };
            if giving.get(&zone).is_none_or(|n| *n == 0) {
                continue;
            }
            let Some(receiver) = receiving.iter().find(|(_, n)| **n > 0).map(|(z, _)| z.clone()) else {
                continue;
            };
            ep.hints = hinted_for_zone(&receiver);
            for (counts, key) in [(&mut *giving, &zone), (&mut *receiving, &receiver)] {
                let n = counts.get_mut(key).expect("present");
                *n -= 1;
                if *n == 0 {
                    counts.remove(key);
                }
            }
            *moved.entry(receiver).or_default() += 1;
            *moved.entry(zone).or_default() -= 1;
        }
    }
    moved
}

fn proportional(nodes: &[Node], slices: FamilySlices<'_>, had_hints: bool) -> Vec<TopologyEvent> {
    let address_type = slices.address_type;
    let with_type = |message: &str| format!("{message}, addressType: {address_type}");
    let ready = slices
        .create
        .iter()
        .chain(slices.update.iter())
        .chain(slices.unchanged.iter())
        .flat_map(super::slices::endpoints_of)
        .filter(|e| is_ready(e))
        .count();
    let allocations = match allocations(cpu_ratios(nodes).as_ref(), ready) {
        Ok(a) => a,
        Err(message) => {
            let event = TopologyEvent::disabled(with_type(&message));
            remove_hints(slices);
            return vec![event];
        }
    };
    // unchanged slices keep their hints while those fit
    let mut allocated: ZoneCounts = BTreeMap::new();
    let mut kept = Vec::new();
    for slice in std::mem::take(slices.unchanged) {
        match hints_by_zone(&slice, &allocated, &allocations) {
            Some(counts) => {
                for (zone, n) in counts {
                    *allocated.entry(zone).or_default() += n;
                }
                kept.push(slice);
            }
            None => slices.update.push(slice),
        }
    }
    *slices.unchanged = kept;
    let zoneless = slices
        .create
        .iter()
        .chain(slices.update.iter())
        .flat_map(super::slices::endpoints_of)
        .any(|e| is_ready(e) && e.zone.as_deref().is_none_or(str::is_empty));
    if zoneless {
        let event = TopologyEvent::disabled(with_type("One or more endpoints do not have a zone specified"));
        remove_hints(slices);
        return vec![event];
    }
    let mut rehinted: Vec<&mut EndpointSlice> = slices.create.iter_mut().chain(slices.update.iter_mut()).collect();
    for slice in rehinted.iter_mut() {
        for ep in endpoints_mut(slice) {
            let Some(zone) = ep.zone.clone().filter(|_| is_ready(ep)) else {
                continue;
            };
            ep.hints = hinted_for_zone(&zone);
            *allocated.entry(zone).or_default() += 1;
        }
    }
    let (mut giving, mut receiving) = giving_and_receiving(&allocations, &allocated);
    for (zone, change) in redistribute(&mut rehinted, &mut giving, &mut receiving) {
        let n = allocated.entry(zone).or_default();
        *n = n.saturating_add_signed(change);
    }
    drop(rehinted);
    if allocated.is_empty() {
        let event = TopologyEvent::disabled(with_type("No hints allocated for zones"));
        remove_hints(slices);
        return vec![event];
    }
    if had_hints {
        return vec![];
    }
    vec![TopologyEvent {
        warning: false,
        reason: "TopologyAwareHintsEnabled",
        message: with_type("Topology Aware Hints has been enabled"),
    }]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(zone: Option<&str>, cpu: &str, ready: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": { "name": "n", "labels": zone.map(|z| json!({ LABEL_ZONE: z })).unwrap_or(json!({})) },
            "status": {
                "allocatable": { "cpu": cpu },
                "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
            },
        }))
        .expect("node")
    }

    #[test]
    fn cpu_ratios_need_every_ready_node_to_have_a_zone_and_two_zones() {
        let ratios = cpu_ratios(&[node(Some("a"), "2", true), node(Some("b"), "6", true)]).expect("ratios");
        assert_eq!(ratios["a"], 0.25);
        assert_eq!(ratios["b"], 0.75);
        assert_eq!(cpu_ratios(&[node(Some("a"), "2", true), node(None, "2", true)]), None);
        assert_eq!(
            cpu_ratios(&[node(Some("a"), "2", true), node(Some("a"), "2", true)]),
            None
        );
        // a node that is not ready does not count, even without a zone
        let ratios = cpu_ratios(&[
            node(Some("a"), "1", true),
            node(Some("b"), "1", true),
            node(None, "0", false),
        ]);
        assert_eq!(ratios.map(|r| r.len()), Some(2));
    }

    #[test]
    fn allocations_follow_upstream_arithmetic() {
        let ratios: BTreeMap<String, f64> = [("a".to_owned(), 0.25), ("b".to_owned(), 0.75)].into();
        let a = allocations(Some(&ratios), 8).expect("allocations");
        // desired 2 and 6; minimum ceil(desired / 1.2) = 2 and 5; maximum = minimum + 8 - 7
        assert_eq!(
            a["a"],
            Allocation {
                minimum: 2,
                maximum: 3,
                desired: 2.0
            }
        );
        assert_eq!(
            a["b"],
            Allocation {
                minimum: 5,
                maximum: 6,
                desired: 6.0
            }
        );
        assert_eq!(
            allocations(Some(&ratios), 1).unwrap_err(),
            "Insufficient number of endpoints (1 endpoints, 2 zones)"
        );
    }

    #[test]
    fn the_annotation_wins_over_traffic_distribution() {
        let mut svc: ServiceModel = crate::service::model::ServiceModel::from_service(
            &serde_json::from_value(json!({
                "metadata": { "name": "s", "namespace": "default", "annotations": { ANNOTATION_TOPOLOGY_MODE: "Auto" } },
                "spec": { "type": "ClusterIP", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
                          "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                          "trafficDistribution": "PreferSameNode",
                          "ports": [{ "port": 80, "protocol": "TCP", "targetPort": 80 }] },
            }))
            .expect("service"),
        )
        .expect("model");
        assert_eq!(HintStrategy::of(&svc), HintStrategy::Auto);
        svc.annotations.clear();
        assert_eq!(HintStrategy::of(&svc), HintStrategy::PreferClose { node_hints: true });
        svc.traffic_distribution = Some("PreferClose".into());
        assert_eq!(HintStrategy::of(&svc), HintStrategy::PreferClose { node_hints: false });
        svc.traffic_distribution = None;
        assert_eq!(HintStrategy::of(&svc), HintStrategy::None);
    }
}
