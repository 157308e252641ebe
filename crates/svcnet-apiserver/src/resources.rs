//! The resources this server serves: where they live in the URL space, their kind, scope and
//! subresources.

/// One served resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    /// API group (`""` for core).
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether `/status` is a subresource (the main resource then keeps the stored status).
    pub has_status: bool,
    /// Whether `/scale` is a subresource (an autoscaling/v1 Scale over `spec.replicas`).
    pub has_scale: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store's resource name (`services`, `endpointslices.discovery.k8s.io`).
    pub fn store_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub const NAMESPACES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
    has_status: true,
    has_scale: false,
};
pub const SERVICES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "services",
    singular: "service",
    kind: "Service",
    namespaced: true,
    short_names: &["svc"],
    has_status: true,
    has_scale: false,
};
pub const PODS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
    has_status: true,
    has_scale: false,
};
pub const NODES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "nodes",
    singular: "node",
    kind: "Node",
    namespaced: false,
    short_names: &["no"],
    has_status: true,
    has_scale: false,
};
pub const ENDPOINTS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "endpoints",
    singular: "endpoints",
    kind: "Endpoints",
    namespaced: true,
    short_names: &["ep"],
    has_status: false,
    has_scale: false,
};
pub const EVENTS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
    has_status: false,
    has_scale: false,
};
pub const ENDPOINT_SLICES: Kind = Kind {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    singular: "endpointslice",
    kind: "EndpointSlice",
    namespaced: true,
    short_names: &[],
    has_status: false,
    has_scale: false,
};

pub const DEPLOYMENTS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    short_names: &["deploy"],
    has_status: true,
    has_scale: true,
};
pub const REPLICA_SETS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    namespaced: true,
    short_names: &["rs"],
    has_status: true,
    has_scale: true,
};

pub const ALL: [&Kind; 9] = [
    &NAMESPACES,
    &SERVICES,
    &PODS,
    &NODES,
    &ENDPOINTS,
    &EVENTS,
    &ENDPOINT_SLICES,
    &DEPLOYMENTS,
    &REPLICA_SETS,
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    ALL.into_iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}
