//! The EndpointSlice reconciler: desired slices for one Service, reconciled against the
//! existing ones with minimal churn (upstream's strategy: keep endpoints where they are,
//! fill slices already being updated, then the closest-fitting unchanged slice, then create).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::hints::{FamilySlices, HintStrategy, TopologyEvent};
use super::pod;
use super::*;
use crate::ip::IpFamily;
use crate::service::model::ServiceModel;

/// What to write so the stored slices match the desired state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceChanges {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their node is not known yet; retry later.
    pub pods_waiting_for_node: Vec<String>,
    /// Events to record on the Service about its topology hints.
    pub events: Vec<TopologyEvent>,
}

impl SliceChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

type PortKey = Vec<(String, i32, String, Option<String>)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// Identity of an endpoint: addresses, hostname and the pod it stands for.
type EndpointId = (Vec<String>, Option<String>, Option<String>, Option<String>);

fn endpoint_id(ep: &Endpoint) -> EndpointId {
    let mut addrs = ep.addresses.clone();
    addrs.sort();
    (
        addrs,
        ep.hostname.clone(),
        ep.target_ref.as_ref().and_then(|r| r.namespace.clone()),
        ep.target_ref.as_ref().and_then(|r| r.name.clone()),
    )
}

/// A slice's endpoints (absent means none).
pub fn endpoints_of(s: &EndpointSlice) -> &[Endpoint] {
    s.endpoints.as_deref().unwrap_or(&[])
}

fn address_type(family: IpFamily) -> &'static str {
    family.as_str()
}

/// Desired endpoints, grouped by their resolved port list, in pod-name order.
struct Desired {
    groups: BTreeMap<PortKey, (Vec<EndpointPort>, Vec<Endpoint>)>,
}

fn pod_to_endpoint(p: &Pod, node: Option<&Node>, svc: &ServiceModel, address: String) -> Endpoint {
    let serving = pod::is_ready(p);
    let terminating = pod::is_terminating(p);
    let ready = svc.publish_not_ready_addresses || (serving && !terminating);
    Endpoint {
        addresses: vec![address],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(pod::target_ref(p)),
        node_name: pod::node_name(p).map(str::to_owned),
        zone: node
            .and_then(|n| n.metadata.labels.as_ref())
            .and_then(|l| l.get(LABEL_ZONE))
            .filter(|z| !z.is_empty())
            .cloned(),
        hostname: pod::hostname_for(p, &svc.name, &svc.namespace),
        ..Endpoint::default()
    }
}

fn desired_for_family(inputs: &EndpointInputs<'_>, family: IpFamily, waiting: &mut BTreeSet<String>) -> Desired {
    let svc = inputs.service;
    let nodes = inputs.node_index();
    let mut groups: BTreeMap<PortKey, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for p in inputs.selected_pods() {
        if !pod::should_be_in_endpoints(p, true) {
            continue;
        }
        let node = pod::node_name(p).and_then(|n| nodes.get(n).copied());
        if node.is_none() && !svc.publish_not_ready_addresses {
            waiting.insert(format!("{}/{}", pod::namespace(p), pod::name(p)));
            continue;
        }
        let Some(address) = pod::ip_of_family(p, family) else {
            continue;
        };
        let ports: Vec<EndpointPort> = svc
            .ports
            .iter()
            .filter_map(|sp| {
                pod::find_port(p, sp).map(|n| EndpointPort {
                    name: Some(sp.name.clone()),
                    port: Some(n.into()),
                    protocol: Some(sp.protocol.as_str().to_owned()),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        let entry = groups.entry(port_key(&ports)).or_insert_with(|| (ports, Vec::new()));
        entry.1.push(pod_to_endpoint(p, node, svc, address));
    }
    Desired { groups }
}

/// The labels every slice of this service carries.
fn slice_labels(svc: &ServiceModel) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels
        .iter()
        .filter(|(k, _)| *k != LABEL_SERVICE_NAME && *k != LABEL_MANAGED_BY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_SERVICE_NAME.to_owned(), svc.name.clone());
    labels.insert(LABEL_MANAGED_BY.to_owned(), CONTROLLER_NAME.to_owned());
    if svc.headless {
        labels.insert(LABEL_HEADLESS.to_owned(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels
}

/// The controller reference from a slice (or Endpoints) to its Service.
pub fn owner_reference(svc: &ServiceModel) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: svc.name.clone(),
        uid: svc.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn new_slice(svc: &ServiceModel, family: IpFamily, ports: Vec<EndpointPort>) -> EndpointSlice {
    let mut prefix = format!("{}-", svc.name);
    prefix.truncate(58);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: Some(svc.namespace.clone()),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![owner_reference(svc)]),
            ..ObjectMeta::default()
        },
        address_type: address_type(family).to_owned(),
        endpoints: Some(vec![]),
        ports: Some(ports),
    }
}

fn is_ours(slice: &EndpointSlice, svc: &ServiceModel) -> bool {
    let labels = slice.metadata.labels.as_ref();
    labels.and_then(|l| l.get(LABEL_MANAGED_BY)).map(String::as_str) == Some(CONTROLLER_NAME)
        && labels.and_then(|l| l.get(LABEL_SERVICE_NAME)) == Some(&svc.name)
        && slice.metadata.namespace.as_deref() == Some(svc.namespace.as_str())
}

fn stamp(slice: &mut EndpointSlice, trigger_time: &Option<String>) {
    if let Some(t) = trigger_time {
        slice
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_TRIGGER_TIME.to_owned(), t.clone());
    }
}

/// Reconciles the desired slices of `inputs.service` against `existing` (slices from the
/// store; ones not managed by us for this service are ignored). `max_per_slice` ≥ 1.
pub fn reconcile_slices(inputs: &EndpointInputs<'_>, existing: &[EndpointSlice], max_per_slice: usize) -> SliceChanges {
    let svc = inputs.service;
    let max = max_per_slice.max(1);
    let mut changes = SliceChanges::default();
    let mut waiting = BTreeSet::new();
    let mut ours: Vec<&EndpointSlice> = existing.iter().filter(|s| is_ours(s, svc)).collect();
    ours.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    if svc.selector.is_none() || svc.service_type == crate::service::model::ServiceType::ExternalName {
        changes.delete = ours.into_iter().cloned().collect();
        return changes;
    }

    let families = svc.address_families();
    let labels = slice_labels(svc);
    let strategy = HintStrategy::of(svc);
    let mut kept_existing = 0usize;
    for family in &families {
        let (mut create, mut update, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
        let mut desired = desired_for_family(inputs, *family, &mut waiting);
        let of_family: Vec<&EndpointSlice> = ours
            .iter()
            .copied()
            .filter(|s| s.address_type == address_type(*family))
            .collect();
        let mut by_key: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
        for s in of_family {
            by_key
                .entry(port_key(s.ports.as_deref().unwrap_or(&[])))
                .or_default()
                .push(s);
        }
        for (key, slices) in by_key {
            match desired.groups.remove(&key) {
                None => changes.delete.extend(slices.into_iter().cloned()),
                Some((ports, endpoints)) => {
                    let group = reconcile_port_group(svc, *family, &labels, ports, endpoints, &slices, max);
                    kept_existing += group.update.len() + group.unchanged.len();
                    create.extend(group.create);
                    update.extend(group.update);
                    changes.delete.extend(group.delete);
                    unchanged.extend(group.unchanged);
                }
            }
        }
        for (_, (ports, endpoints)) in desired.groups {
            create.extend(reconcile_port_group(svc, *family, &labels, ports, endpoints, &[], max).create);
        }
        let had_hints = ours
            .iter()
            .filter(|s| s.address_type == address_type(*family))
            .flat_map(|s| endpoints_of(s))
            .any(|e| e.hints.is_some());
        let slices = FamilySlices {
            address_type: address_type(*family),
            create: &mut create,
            update: &mut update,
            unchanged: &mut unchanged,
        };
        changes.events.extend(strategy.assign(inputs.nodes, slices, had_hints));
        changes.create.extend(create);
        changes.update.extend(update);
    }
    for s in &ours {
        let supported = families.iter().any(|f| s.address_type == address_type(*f));
        if !supported {
            changes.delete.push((*s).clone());
        }
    }

    if changes.create.is_empty() && kept_existing == 0 {
        // no endpoints anywhere: keep (or create) exactly one placeholder slice
        let family = families.first().copied().unwrap_or(IpFamily::IPv4);
        let placeholder = new_slice(svc, family, vec![]);
        let reusable = changes.delete.iter().position(|s| {
            endpoints_of(s).is_empty()
                && s.ports.as_deref().unwrap_or(&[]).is_empty()
                && s.address_type == placeholder.address_type
                && s.metadata.labels == placeholder.metadata.labels
        });
        match reusable {
            Some(i) => {
                changes.delete.remove(i);
            }
            None => changes.create.push(placeholder),
        }
    }
    for s in changes.create.iter_mut().chain(changes.update.iter_mut()) {
        stamp(s, &inputs.trigger_time);
    }
    changes.pods_waiting_for_node = waiting.into_iter().collect();
    changes
}

/// One port group's slices after reconciliation.
struct GroupResult {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<EndpointSlice>,
    unchanged: Vec<EndpointSlice>,
}

/// Whether two endpoints agree on everything but their topology hints (which are set after
/// endpoints are placed, so a desired endpoint never has them).
fn same_but_hints(stored: &Endpoint, desired: &Endpoint) -> bool {
    stored.hints.is_none() && stored == desired
        || Endpoint {
            hints: None,
            ..stored.clone()
        } == *desired
}

fn reconcile_port_group(
    svc: &ServiceModel,
    family: IpFamily,
    labels: &BTreeMap<String, String>,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
    existing: &[&EndpointSlice],
    max: usize,
) -> GroupResult {
    let mut order: Vec<EndpointId> = Vec::with_capacity(endpoints.len());
    let mut remaining: BTreeMap<EndpointId, Endpoint> = BTreeMap::new();
    for ep in endpoints {
        let id = endpoint_id(&ep);
        if remaining.insert(id.clone(), ep).is_none() {
            order.push(id);
        }
    }
    let mut to_update: Vec<EndpointSlice> = Vec::new();
    let mut to_delete: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<EndpointSlice> = Vec::new();

    // 1. keep desired endpoints where they are; drop the rest
    for s in existing {
        let mut kept = Vec::with_capacity(endpoints_of(s).len());
        let mut changed = false;
        for ep in endpoints_of(s) {
            if let Some(want) = remaining.remove(&endpoint_id(ep)) {
                if same_but_hints(ep, &want) {
                    kept.push(ep.clone());
                } else {
                    changed = true;
                    kept.push(want);
                }
            }
        }
        let labels_changed = s.metadata.labels.as_ref() != Some(labels);
        if changed || kept.len() != endpoints_of(s).len() {
            if kept.is_empty() {
                to_delete.push((*s).clone());
            } else {
                let mut s = (*s).clone();
                s.endpoints = Some(kept);
                s.metadata.labels = Some(labels.clone());
                to_update.push(s);
            }
        } else if labels_changed {
            let mut s = (*s).clone();
            s.metadata.labels = Some(labels.clone());
            to_update.push(s);
        } else {
            unchanged.push((*s).clone());
        }
    }
    let mut queue: std::collections::VecDeque<Endpoint> = order.iter().filter_map(|id| remaining.remove(id)).collect();

    // 2. fill slices already being updated, fullest first
    if !queue.is_empty() {
        to_update.sort_by_key(|s| std::cmp::Reverse(endpoints_of(s).len()));
        for s in &mut to_update {
            let eps = s.endpoints.get_or_insert_with(Vec::new);
            while eps.len() < max {
                let Some(ep) = queue.pop_front() else { break };
                eps.push(ep);
            }
        }
    }

    // 3. fit the rest into the closest-fitting unchanged slice, else new slices
    let mut to_create = Vec::new();
    while !queue.is_empty() {
        let fill_existing = if queue.len() < max {
            unchanged
                .iter()
                .enumerate()
                .filter(|(_, s)| max.saturating_sub(endpoints_of(s).len()) >= queue.len())
                .min_by_key(|(_, s)| max.saturating_sub(endpoints_of(s).len()))
                .map(|(i, _)| i)
        } else {
            None
        };
        let mut slice = match fill_existing {
            Some(i) => unchanged.remove(i),
            None => new_slice(svc, family, ports.clone()),
        };
        let eps = slice.endpoints.get_or_insert_with(Vec::new);
        while eps.len() < max {
            let Some(ep) = queue.pop_front() else { break };
            eps.push(ep);
        }
        if slice.metadata.name.is_some() {
            to_update.push(slice);
        } else {
            to_create.push(slice);
        }
    }
    GroupResult {
        create: to_create,
        update: to_update,
        delete: to_delete,
        unchanged,
    }
}
