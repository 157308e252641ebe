//! The EndpointSlice and Endpoints controllers (and, each round first, the workload
//! controllers of [`workloads`](crate::workloads)), in-process: after store changes they compute
//! the desired slices and Endpoints of every Service with the core's endpoint computation and
//! write only the differences (which converge: a round that changes nothing writes nothing).
//! The first round looks at every Service; later rounds only at those the store's changes
//! since the previous round can affect ([`Scope`]), so a write costs time in what it touches.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use svcnet_core::endpoints::legacy::desired_endpoints;
use svcnet_core::endpoints::slices::reconcile_slices;
use svcnet_core::endpoints::{CONTROLLER_NAME, EndpointInputs, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use svcnet_core::service::model::ServiceModel;
use svcnet_store::{Event, Store};

use crate::events;
use crate::objects::{self, Ids, Reply};
use crate::registry::Registry;
use crate::resources::{ENDPOINT_SLICES, ENDPOINTS, NODES, PODS, SERVICES};

/// The source of the events this controller records (upstream's name).
const ENDPOINT_SLICE_CONTROLLER: &str = "endpoint-slice-controller";

fn typed<T: serde::de::DeserializeOwned>(items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or("").to_owned()
}

/// Which Services a round looks at: all of them, or those the changes since the last round
/// can affect (by namespace: every Service there when pods changed, else the named ones).
#[derive(Debug, Default, PartialEq)]
pub struct Scope {
    pub all: bool,
    /// namespace → `None` (every Service) or the Services named by changed objects.
    pub namespaces: BTreeMap<String, Option<BTreeSet<String>>>,
    /// Whether workloads (Deployments, ReplicaSets, their Pods) changed.
    pub workloads: bool,
    /// Whether ServiceCIDRs changed (the allocator's ranges follow them).
    pub service_cidrs: bool,
    /// The allocator's own IPAddress objects that were deleted (put back while their
    /// address is still allocated, as upstream's repair loop does).
    pub lost_ip_addresses: Vec<String>,
    /// Whether any IPAddress went (a ServiceCIDR being deleted may now go too).
    pub ip_addresses_released: bool,
}

impl Scope {
    pub fn everything() -> Self {
        Scope {
            all: true,
            namespaces: BTreeMap::new(),
            workloads: true,
            service_cidrs: true,
            lost_ip_addresses: Vec::new(),
            ip_addresses_released: false,
        }
    }

    fn touch(&mut self, namespace: &str, service: Option<String>) {
        let entry = self
            .namespaces
            .entry(namespace.to_owned())
            .or_insert_with(|| Some(BTreeSet::new()));
        match (entry, service) {
            (Some(names), Some(name)) => {
                names.insert(name);
            }
            (entry, None) => *entry = None,
            (None, Some(_)) => {}
        }
    }

    /// What `events` can affect. Node changes (zones, addresses) reach every Service.
    pub fn of(events: &[Event]) -> Self {
        let mut scope = Scope::default();
        for e in events {
            let key = &e.object.key;
            match key.resource.as_str() {
                "services" | "endpoints" => scope.touch(&key.namespace, Some(key.name.clone())),
                "endpointslices.discovery.k8s.io" => {
                    let v: Value = serde_json::from_slice(&e.object.value).unwrap_or_default();
                    if let Some(svc) = v["metadata"]["labels"][LABEL_SERVICE_NAME].as_str() {
                        scope.touch(&key.namespace, Some(svc.to_owned()));
                    }
                }
                "pods" => {
                    scope.touch(&key.namespace, None);
                    scope.workloads = true;
                }
                "deployments.apps" | "replicasets.apps" => scope.workloads = true,
                "nodes" => scope.all = true,
                "servicecidrs.networking.k8s.io" => scope.service_cidrs = true,
                "ipaddresses.networking.k8s.io" if e.kind == svcnet_store::EventKind::Deleted => {
                    scope.ip_addresses_released = true;
                    let v: Value = serde_json::from_slice(&e.object.value).unwrap_or_default();
                    if crate::service_cidrs::is_managed(&v) {
                        scope.lost_ip_addresses.push(key.name.clone());
                    }
                }
                _ => {}
            }
        }
        scope
    }

    pub fn is_empty(&self) -> bool {
        !self.all
            && self.namespaces.is_empty()
            && !self.workloads
            && !self.service_cidrs
            && self.lost_ip_addresses.is_empty()
            && !self.ip_addresses_released
    }
}

struct Inputs {
    services: Vec<Service>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    slices: Vec<EndpointSlice>,
}

fn gather(store: &Store, scope: &Scope) -> Reply<Inputs> {
    let nodes: Vec<Node> = typed(objects::list(store, &NODES, None)?.0);
    if scope.all {
        return Ok(Inputs {
            services: typed(objects::list(store, &SERVICES, None)?.0),
            pods: typed(objects::list(store, &PODS, None)?.0),
            nodes,
            slices: typed(objects::list(store, &ENDPOINT_SLICES, None)?.0),
        });
    }
    let mut inputs = Inputs {
        services: Vec::new(),
        pods: Vec::new(),
        nodes,
        slices: Vec::new(),
    };
    // Services named by the scope that no longer exist: their slices are gathered to go
    let mut gone: Vec<(String, String)> = Vec::new();
    for (ns, names) in &scope.namespaces {
        let services: Vec<Service> = match names {
            None => typed(objects::list(store, &SERVICES, Some(ns))?.0),
            Some(names) => {
                let mut found = Vec::new();
                for name in names {
                    match objects::get(store, &SERVICES, ns, name) {
                        Ok(v) => found.extend(serde_json::from_value(v).ok()),
                        Err(s) if s.code == 404 => gone.push((ns.clone(), name.clone())),
                        Err(s) => return Err(s),
                    }
                }
                found
            }
        };
        let wanted: BTreeSet<String> = services.iter().filter_map(|s| s.metadata.name.clone()).collect();
        let gone_here: BTreeSet<&str> = gone.iter().filter(|(n, _)| n == ns).map(|(_, s)| s.as_str()).collect();
        if services
            .iter()
            .any(|s| s.spec.as_ref().is_some_and(|spec| spec.selector.is_some()))
        {
            inputs
                .pods
                .extend(typed::<Pod>(objects::list(store, &PODS, Some(ns))?.0));
        }
        // only the slices of these Services are decoded: stored objects are compact JSON, so a
        // slice labelled for one of them contains its label pair verbatim (a cheap, exact
        // pre-filter; the decoded label is checked again)
        let pairs: Vec<Vec<u8>> = wanted
            .iter()
            .map(String::as_str)
            .chain(gone_here.iter().copied())
            .map(|svc| serde_json::to_vec(&serde_json::json!({ LABEL_SERVICE_NAME: svc })).unwrap_or_default())
            .map(|pair| pair[1..pair.len() - 1].to_vec())
            .collect();
        let needles: Vec<memchr::memmem::Finder> = pairs.iter().map(memchr::memmem::Finder::new).collect();
        let (stored, _) = objects::list_raw(store, &ENDPOINT_SLICES, Some(ns))?;
        let mut candidates = Vec::new();
        for s in stored {
            if needles.iter().any(|n| n.find(&s.value).is_some()) {
                candidates.push(objects::decode(&s.value, s.revision)?);
            }
        }
        inputs.slices.extend(typed::<EndpointSlice>(
            candidates
                .into_iter()
                .filter(|v| {
                    v["metadata"]["labels"][LABEL_SERVICE_NAME]
                        .as_str()
                        .is_some_and(|svc| wanted.contains(svc) || gone_here.contains(svc))
                })
                .collect(),
        ));
        inputs.services.extend(services);
    }
    Ok(inputs)
}

/// One reconciliation round over the Services in `scope`; returns how many objects it wrote.
pub fn reconcile(store: &Store, ids: &mut dyn Ids, scope: &Scope) -> Reply<usize> {
    let Inputs {
        services,
        pods,
        nodes,
        slices,
    } = gather(store, scope)?;
    let mut writes = 0;
    for svc in &services {
        let Ok(model) = ServiceModel::from_service(svc) else {
            continue;
        };
        let ns = model.namespace.clone();
        let inputs = EndpointInputs {
            service: &model,
            pods: &pods,
            nodes: &nodes,
            trigger_time: Some(objects::now_precise()),
        };
        let changes = reconcile_slices(
            &inputs,
            &slices,
            svcnet_core::endpoints::DEFAULT_MAX_ENDPOINTS_PER_SLICE,
        );
        // recorded with the writes they explain, so a Service whose hints stay off is not
        // told so again on every round (upstream's recorder folds repeats into a count)
        if !changes.is_empty() && !changes.events.is_empty() {
            let object = serde_json::to_value(svc).expect("JSON");
            for e in &changes.events {
                let record = if e.warning {
                    events::record_warning
                } else {
                    events::record
                };
                record(store, ids, &object, e.reason, &e.message, ENDPOINT_SLICE_CONTROLLER);
            }
        }
        for s in changes.create {
            let v = serde_json::to_value(&s).expect("JSON");
            writes += usize::from(objects::create(store, &ENDPOINT_SLICES, &ns, v, ids).is_ok());
        }
        for s in changes.update {
            let v = serde_json::to_value(&s).expect("JSON");
            let name = name_of(&v);
            writes += usize::from(objects::replace(store, &ENDPOINT_SLICES, &ns, &name, v, false, ids).is_ok());
        }
        for s in changes.delete {
            let name = s.metadata.name.clone().unwrap_or_default();
            writes += usize::from(objects::delete(store, &ENDPOINT_SLICES, &ns, &name).is_ok());
        }
        if let Some(desired) = desired_endpoints(&inputs) {
            let desired = serde_json::to_value(&desired).expect("JSON");
            let current = objects::get(store, &ENDPOINTS, &ns, &model.name).ok();
            let same = current.as_ref().is_some_and(|c| {
                c["subsets"] == desired["subsets"] && c["metadata"]["labels"] == desired["metadata"]["labels"]
            });
            if !same {
                let mut body = desired;
                if let Some(c) = &current {
                    body["metadata"]["resourceVersion"] = c["metadata"]["resourceVersion"].clone();
                }
                writes += usize::from(objects::replace(store, &ENDPOINTS, &ns, &model.name, body, false, ids).is_ok());
            }
        }
    }
    // slices of Services that no longer exist
    for s in &slices {
        let labels = s.metadata.labels.as_ref();
        let ours = labels.and_then(|l| l.get(LABEL_MANAGED_BY)).map(String::as_str) == Some(CONTROLLER_NAME);
        let owner = labels.and_then(|l| l.get(LABEL_SERVICE_NAME));
        let ns = s.metadata.namespace.as_deref().unwrap_or("");
        let exists = services
            .iter()
            .any(|svc| svc.metadata.namespace.as_deref() == Some(ns) && svc.metadata.name.as_ref() == owner);
        if ours && !exists {
            let name = s.metadata.name.clone().unwrap_or_default();
            writes += usize::from(objects::delete(store, &ENDPOINT_SLICES, ns, &name).is_ok());
        }
    }
    Ok(writes)
}

/// Runs rounds after every store change (debounced) until the revision feed ends: the first
/// over everything, then over what the changes since the previous round can affect.
pub async fn run(registry: Arc<Registry>, mut revision: tokio::sync::watch::Receiver<u64>) {
    let mut seen: Option<u64> = None;
    loop {
        let r = registry.clone();
        let result = tokio::task::spawn_blocking(move || {
            let store = r.store();
            let (scope, next) = match seen.map(|rev| store.changes_since(rev, None)) {
                Some(Ok(changes)) => (Scope::of(&changes.events), changes.revision),
                // first round, or the history moved past us: look at everything
                _ => (Scope::everything(), store.revision().unwrap_or(0)),
            };
            // namespaces being deleted are emptied, and default/kubernetes comes back if deleted
            let housekeeping = crate::namespaces::reconcile(&r)
                .and_then(|w| r.ensure_kubernetes_service().map(|created| w + usize::from(created)));
            if let Err(status) = &housekeeping {
                tracing::warn!(error = %status.message, "namespace reconciliation failed");
            }
            if scope.is_empty() {
                return (housekeeping, next);
            }
            let mut ids = objects::RandomIds::new();
            let cidrs = crate::service_cidrs::reconcile_round(&r, &scope, &mut ids);
            if let Err(status) = &cidrs {
                tracing::warn!(error = %status.message, "ServiceCIDR reconciliation failed");
            }
            let workloads = if scope.workloads {
                crate::workloads::reconcile(store, &mut ids)
            } else {
                Ok(0)
            };
            if let Err(status) = &workloads {
                tracing::warn!(error = %status.message, "workload reconciliation failed");
            }
            let result = reconcile(store, &mut ids, &scope)
                .map(|w| w + workloads.unwrap_or(0) + housekeeping.unwrap_or(0) + cidrs.unwrap_or(0));
            (result, next)
        })
        .await
        .map(|(result, next)| {
            seen = Some(next);
            result
        });
        match result {
            Ok(Ok(writes)) if writes > 0 => tracing::debug!(writes, "endpoints reconciled"),
            Ok(Ok(_)) => {}
            Ok(Err(status)) => tracing::warn!(error = %status.message, "endpoint reconciliation failed"),
            Err(e) => tracing::warn!(error = %e, "endpoint reconciliation panicked"),
        }
        if revision.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        revision.mark_unchanged();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_store::{EventKind, Key, Stored};

    fn event(resource: &str, namespace: &str, name: &str, value: Value) -> Event {
        Event {
            kind: EventKind::Modified,
            object: Stored {
                key: Key {
                    resource: resource.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                },
                revision: 1,
                value: serde_json::to_vec(&value).unwrap(),
            },
        }
    }

    #[test]
    fn changes_scope_the_next_round() {
        let slice = serde_json::json!({"metadata": {"labels": {LABEL_SERVICE_NAME: "web"}}});
        let scope = Scope::of(&[
            event("services", "a", "db", Value::Null),
            event("endpointslices.discovery.k8s.io", "a", "web-x1", slice),
            event("namespaces", "", "a", Value::Null),
        ]);
        assert!(!scope.all && !scope.workloads);
        assert_eq!(scope.namespaces["a"], Some(["db".to_owned(), "web".to_owned()].into()));
        // a pod change reaches every Service of its namespace, and the workload controllers
        let scope = Scope::of(&[
            event("services", "a", "db", Value::Null),
            event("pods", "a", "p", Value::Null),
        ]);
        assert_eq!((scope.namespaces["a"].clone(), scope.workloads), (None, true));
        assert!(Scope::of(&[event("nodes", "", "n1", Value::Null)]).all);
        assert!(Scope::of(&[event("namespaces", "", "x", Value::Null)]).is_empty());
    }
}
