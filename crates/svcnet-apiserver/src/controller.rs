//! The EndpointSlice and Endpoints controllers (and, each round first, the workload
//! controllers of [`workloads`](crate::workloads)), in-process: after store changes they compute
//! the desired slices and Endpoints of every Service with the core's endpoint computation and
//! write only the differences (which converge: a round that changes nothing writes nothing).
//! A round lists everything; that is simple and correct, and costs time in the cluster's size.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use svcnet_core::endpoints::legacy::desired_endpoints;
use svcnet_core::endpoints::slices::reconcile_slices;
use svcnet_core::endpoints::{CONTROLLER_NAME, EndpointInputs, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use svcnet_core::service::model::ServiceModel;
use svcnet_store::Store;

use crate::objects::{self, Ids, Reply};
use crate::registry::Registry;
use crate::resources::{ENDPOINT_SLICES, ENDPOINTS, NODES, PODS, SERVICES};

fn typed<T: serde::de::DeserializeOwned>(items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or("").to_owned()
}

/// One reconciliation round over every Service; returns how many objects it wrote.
pub fn reconcile(store: &Store, ids: &mut dyn Ids) -> Reply<usize> {
    let services: Vec<Service> = typed(objects::list(store, &SERVICES, None)?.0);
    let pods: Vec<Pod> = typed(objects::list(store, &PODS, None)?.0);
    let nodes: Vec<Node> = typed(objects::list(store, &NODES, None)?.0);
    let slices: Vec<EndpointSlice> = typed(objects::list(store, &ENDPOINT_SLICES, None)?.0);
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

/// Runs rounds after every store change (debounced) until the revision feed ends.
pub async fn run(registry: Arc<Registry>, mut revision: tokio::sync::watch::Receiver<u64>) {
    loop {
        let r = registry.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut ids = objects::RandomIds::new();
            let workloads = crate::workloads::reconcile(r.store(), &mut ids);
            if let Err(status) = &workloads {
                tracing::warn!(error = %status.message, "workload reconciliation failed");
            }
            reconcile(r.store(), &mut ids).map(|w| w + workloads.unwrap_or(0))
        })
        .await;
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
