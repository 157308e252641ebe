//! Change tracking: watch events in, changed service ports out, in time proportional to the
//! change (upstream kube-proxy's ServiceChangeTracker and EndpointsChangeTracker play this
//! part). Pure: no I/O, no clock; the agent feeds it events and takes the changes.
//!
//! The tracker keeps, per Service, its ports without endpoints (`service_ports`) and, per
//! EndpointSlice, the few facts the proxy needs (`SliceEndpoints`), never the objects
//! themselves. An event marks the one Service it concerns dirty; [`ChangeTracker::take_changes`]
//! recomputes only the dirty Services' ports and reports which port ids appeared, changed or
//! disappeared. A burst of events about one Service costs one recomputation.
//!
//! A re-list (the watch restarted) is bracketed by [`ChangeTracker::begin_relist`] and
//! [`ChangeTracker::end_relist`]: objects the new list does not contain are deleted then.
//! [`ChangeTracker::full_model`] builds the whole model from the same caches, for the first
//! sync, for a node change, and for the periodic check that the incremental state is right.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use svcnet_dataplane::model::{
    DigestPart, ModelDigest, ProxyConfig, ProxyModel, ServicePort, SliceEndpoints, service_ports, slice_service,
    with_endpoints,
};

/// (namespace, name) of a Service or an EndpointSlice.
pub type Key = (String, String);

/// The kinds the agent lists and watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Watched {
    Services,
    EndpointSlices,
    Node,
}

/// The annotation the EndpointSlice controller sets to when the change it reflects happened.
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

struct TrackedSlice {
    /// The name of the Service it belongs to (in the slice's namespace).
    service: Option<String>,
    endpoints: SliceEndpoints,
    /// The slice's last-change-trigger-time, parsed (kept small: one per slice is held).
    trigger_time: Option<SystemTime>,
}

/// What changed since the last [`ChangeTracker::take_changes`].
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Changed service ports by id; `None` removes one.
    pub ports: Vec<(String, Option<ServicePort>)>,
    /// The node's addresses or zone changed: the whole model must be rebuilt.
    pub node_changed: bool,
    /// When the changes happened in the cluster (EndpointSlices' trigger times), for the
    /// network programming latency.
    pub change_times: Vec<SystemTime>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && !self.node_changed && self.change_times.is_empty()
    }
}

pub struct ChangeTracker {
    node_name: String,
    node_ips: Vec<IpAddr>,
    node_zone: Option<String>,
    cluster_cidrs: Vec<IpNet>,
    service_cidrs: Vec<IpNet>,
    config: ProxyConfig,
    /// Each proxied Service's ports without endpoints (ignored Services are absent).
    services: HashMap<Key, Vec<ServicePort>>,
    slices: HashMap<Key, TrackedSlice>,
    /// Slice names by the Service they belong to (a Service has one or a few, so a short
    /// vector rather than a set: tens of thousands of them are held).
    slices_of: HashMap<Key, Vec<String>>,
    /// Each dirty Service's port ids as last reported (taken when it became dirty: until
    /// then its templates are what was reported), so removed ports can be named.
    previous: HashMap<Key, Vec<String>>,
    dirty: BTreeSet<Key>,
    node_changed: bool,
    change_times: Vec<SystemTime>,
    /// Keys seen since a re-list of that kind began.
    relisting: HashMap<Watched, HashSet<Key>>,
    /// Kinds whose first list is complete.
    listed: HashSet<Watched>,
}

impl ChangeTracker {
    pub fn new(node_name: &str, cluster_cidrs: Vec<IpNet>, service_cidrs: Vec<IpNet>, config: ProxyConfig) -> Self {
        ChangeTracker {
            node_name: node_name.to_owned(),
            node_ips: Vec::new(),
            node_zone: None,
            cluster_cidrs,
            service_cidrs,
            config,
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            previous: HashMap::new(),
            dirty: BTreeSet::new(),
            node_changed: false,
            change_times: Vec::new(),
            relisting: HashMap::new(),
            listed: HashSet::new(),
        }
    }

    /// Whether the first list of every watched kind is in (the first sync waits for it).
    pub fn is_listed(&self) -> bool {
        self.listed.len() == 3
    }

    /// Marks a Service dirty; call it before its templates change.
    fn mark_dirty(&mut self, key: &Key) {
        if self.dirty.contains(key) {
            return;
        }
        let ids = self
            .services
            .get(key)
            .map(|ports| ports.iter().map(ServicePort::id).collect())
            .unwrap_or_default();
        self.previous.insert(key.clone(), ids);
        self.dirty.insert(key.clone());
    }

    fn seen(&mut self, kind: Watched, key: &Key) {
        if let Some(keys) = self.relisting.get_mut(&kind) {
            keys.insert(key.clone());
        }
    }

    pub fn apply_service(&mut self, svc: &Service) {
        let key = key_of(&svc.metadata);
        self.seen(Watched::Services, &key);
        match service_ports(svc) {
            Some(ports) => {
                if self.services.get(&key) == Some(&ports) {
                    return;
                }
                self.mark_dirty(&key);
                self.services.insert(key, ports);
            }
            None => self.delete_service(&key),
        }
    }

    pub fn delete_service(&mut self, key: &Key) {
        if self.services.contains_key(key) {
            self.mark_dirty(key);
            self.services.remove(key);
        }
    }

    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let key = key_of(&slice.metadata);
        self.seen(Watched::EndpointSlices, &key);
        let trigger_time = slice
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_TRIGGER_TIME))
            .and_then(|t| parse_time(t));
        let tracked = TrackedSlice {
            service: slice_service(slice).map(|(_, name)| name),
            endpoints: SliceEndpoints::of(slice, &self.node_name),
            trigger_time,
        };
        let previous = self.slices.get(&key);
        let unchanged = previous.is_some_and(|p| p.service == tracked.service && p.endpoints == tracked.endpoints);
        let retriggered =
            tracked.trigger_time.is_some() && previous.map(|p| &p.trigger_time) != Some(&tracked.trigger_time);
        // the first list only seeds the trigger times: those changes were programmed before
        if retriggered
            && self.listed.contains(&Watched::EndpointSlices)
            && let Some(at) = tracked.trigger_time
        {
            self.change_times.push(at);
        }
        if unchanged {
            self.slices.insert(key, tracked);
            return;
        }
        self.unlink_slice(&key);
        if let Some(service) = &tracked.service {
            let service = (key.0.clone(), service.clone());
            let names = self.slices_of.entry(service.clone()).or_default();
            if !names.contains(&key.1) {
                // most Services have one slice: no spare room in tens of thousands of these
                names.reserve_exact(1);
                names.push(key.1.clone());
            }
            self.mark_dirty(&service);
        }
        self.slices.insert(key, tracked);
    }

    pub fn delete_slice(&mut self, key: &Key) {
        self.unlink_slice(key);
        self.slices.remove(key);
    }

    /// Detaches a slice from its Service (which becomes dirty).
    fn unlink_slice(&mut self, key: &Key) {
        let Some(service) = self.slices.get(key).and_then(|s| s.service.clone()) else {
            return;
        };
        let service = (key.0.clone(), service);
        if let Some(names) = self.slices_of.get_mut(&service) {
            names.retain(|n| *n != key.1);
            if names.is_empty() {
                self.slices_of.remove(&service);
            }
        }
        self.mark_dirty(&service);
    }

    /// This node's object (`None`: deleted). Only a change of its addresses or its zone
    /// (which topology hints are read against) matters.
    pub fn set_node(&mut self, node: Option<&Node>) {
        let ips = node.map(node_addresses).unwrap_or_default();
        let zone = node.and_then(node_zone);
        if ips != self.node_ips || zone != self.node_zone {
            self.node_ips = ips;
            self.node_zone = zone;
            self.node_changed = true;
        }
    }

    /// A list of `kind` starts (the watch began or restarted).
    pub fn begin_relist(&mut self, kind: Watched) {
        self.relisting.insert(kind, HashSet::new());
    }

    /// The list of `kind` is complete: what it did not contain is gone.
    pub fn end_relist(&mut self, kind: Watched) {
        let seen = self.relisting.remove(&kind).unwrap_or_default();
        match kind {
            Watched::Services => {
                let gone: Vec<Key> = self.services.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for key in gone {
                    self.delete_service(&key);
                }
            }
            Watched::EndpointSlices => {
                let gone: Vec<Key> = self.slices.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for key in gone {
                    self.delete_slice(&key);
                }
            }
            Watched::Node => {
                if seen.is_empty() {
                    self.set_node(None);
                }
            }
        }
        self.listed.insert(kind);
    }

    /// Records that the node object was seen during a re-list of it.
    pub fn node_listed(&mut self, node: &Node) {
        self.seen(Watched::Node, &key_of(&node.metadata));
        self.set_node(Some(node));
    }

    /// The service ports of `key` now.
    fn ports_of(&self, key: &Key) -> Vec<ServicePort> {
        let Some(templates) = self.services.get(key) else {
            return Vec::new();
        };
        let names = self.slices_of.get(key);
        let slices: Vec<&SliceEndpoints> = names
            .into_iter()
            .flatten()
            .filter_map(|name| self.slices.get(&(key.0.clone(), name.clone())))
            .map(|s| &s.endpoints)
            .collect();
        templates
            .iter()
            .map(|t| with_endpoints(t, slices.iter().copied()))
            .collect()
    }

    /// The changes since the last call: the dirty Services' ports recomputed, with removals
    /// of the port ids they no longer have.
    pub fn take_changes(&mut self) -> Changes {
        let mut ports = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let now = self.ports_of(&key);
            let ids: Vec<String> = now.iter().map(ServicePort::id).collect();
            for old in self.previous.remove(&key).unwrap_or_default() {
                if !ids.contains(&old) {
                    ports.push((old, None));
                }
            }
            ports.extend(ids.into_iter().zip(now.into_iter().map(Some)));
        }
        Changes {
            ports,
            node_changed: std::mem::take(&mut self.node_changed),
            change_times: std::mem::take(&mut self.change_times),
        }
    }

    /// The whole model from the caches. Also resets the change bookkeeping to it, so the next
    /// [`take_changes`](Self::take_changes) reports only what changes after this model.
    pub fn full_model(&mut self) -> ProxyModel {
        let model = self.rebuild();
        self.dirty.clear();
        self.previous.clear();
        self.node_changed = false;
        model
    }

    /// Forgets the change times recorded so far (the first lists' changes were programmed
    /// before this agent started).
    pub fn forget_change_times(&mut self) {
        self.change_times.clear();
    }

    /// The whole model from the caches, changing nothing (for checks).
    pub fn rebuild(&self) -> ProxyModel {
        let mut ports = BTreeMap::new();
        for key in self.services.keys() {
            for port in self.ports_of(key) {
                ports.insert(port.id(), port);
            }
        }
        ProxyModel {
            ports,
            ..self.node_wide()
        }
    }

    /// The node-wide inputs, without ports.
    fn node_wide(&self) -> ProxyModel {
        ProxyModel {
            node_name: self.node_name.clone(),
            node_ips: self.node_ips.clone(),
            node_zone: self.node_zone.clone(),
            cluster_cidrs: self.cluster_cidrs.clone(),
            service_cidrs: self.service_cidrs.clone(),
            config: self.config.clone(),
            ports: BTreeMap::new(),
        }
    }

    /// A digest of [`rebuild`](Self::rebuild)'s model, built one port at a time: the
    /// periodic check never holds a second model.
    pub fn digest(&self) -> ModelDigest {
        self.digest_part(DigestPart::WHOLE)
    }

    /// A digest of the ports of the Services in `part` (see [`DigestPart`]).
    pub fn digest_part(&self, part: DigestPart) -> ModelDigest {
        let mut digest = ModelDigest {
            node: self.node_wide(),
            part,
            ports: BTreeMap::new(),
        };
        for key in self.services.keys().filter(|(ns, name)| part.holds_service(ns, name)) {
            for port in self.ports_of(key) {
                digest.add(&port);
            }
        }
        digest
    }

    /// Every proxied service port's template (no endpoints), e.g. to name counters.
    pub fn service_ports(&self) -> impl Iterator<Item = &ServicePort> {
        self.services.values().flatten()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let t = text.parse::<k8s_openapi::jiff::Timestamp>().ok()?;
    let nanos = u64::try_from(t.as_nanosecond()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// The node's `topology.kubernetes.io/zone` label, if set and not empty.
pub fn node_zone(node: &Node) -> Option<String> {
    node.metadata
        .labels
        .as_ref()?
        .get("topology.kubernetes.io/zone")
        .filter(|z| !z.is_empty())
        .cloned()
}

/// The node's internal and external addresses, from its status.
pub fn node_addresses(node: &Node) -> Vec<IpAddr> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}
