//! Endpoint computation: which pod addresses back a Service, as EndpointSlices and as legacy
//! Endpoints. Pure functions of (Service, Pods, Nodes, existing objects, time passed in).
//! [`validate`] checks an EndpointSlice written through the API.

pub mod hints;
pub mod legacy;
pub mod pod;
pub mod slices;
pub mod validate;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::selector::Selector;
use crate::service::model::{ServiceModel, ServiceType};

/// Label naming the service an EndpointSlice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages an EndpointSlice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Our EndpointSlice controller's name (the upstream one's, so tools recognise the slices).
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Marks slices and Endpoints of headless services; also makes the proxy ignore a Service.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Upstream's default maximum endpoints per slice.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Legacy Endpoints objects are truncated beyond this many addresses.
pub const MAX_LEGACY_ENDPOINTS: usize = 1000;
/// Node label for the endpoint's zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// The inputs of one service's endpoint computation.
pub struct EndpointInputs<'a> {
    pub service: &'a ServiceModel,
    /// Candidate pods; those outside the service's namespace or selector are ignored.
    pub pods: &'a [Pod],
    pub nodes: &'a [Node],
    /// RFC 3339 time of the change that triggered this computation, if known.
    pub trigger_time: Option<String>,
}

impl EndpointInputs<'_> {
    /// The pods the service selects, ordered by name; empty when the service has no selector.
    pub fn selected_pods(&self) -> Vec<&Pod> {
        let svc = self.service;
        let Some(selector) = &svc.selector else { return vec![] };
        if svc.service_type == ServiceType::ExternalName {
            return vec![];
        }
        let sel = Selector::from_map(selector);
        let empty = BTreeMap::new();
        let mut pods: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|p| pod::namespace(p) == svc.namespace)
            .filter(|p| sel.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
            .collect();
        pods.sort_by(|a, b| pod::name(a).cmp(pod::name(b)));
        pods
    }

    /// The nodes by name.
    pub fn node_index(&self) -> BTreeMap<&str, &Node> {
        self.nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref().map(|name| (name, n)))
            .collect()
    }
}
