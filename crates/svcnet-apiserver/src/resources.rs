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
    /// Whether `metadata.generation` counts changes of the desired state (everything but
    /// metadata and status), as upstream's strategy for the kind does.
    pub tracks_generation: bool,
    /// Answered on create and never stored (the self-subject reviews).
    pub create_only: bool,
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
    tracks_generation: false,
    create_only: false,
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
    tracks_generation: false,
    create_only: false,
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
    tracks_generation: true,
    create_only: false,
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
    tracks_generation: false,
    create_only: false,
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
    tracks_generation: false,
    create_only: false,
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
    tracks_generation: false,
    create_only: false,
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
    tracks_generation: true,
    create_only: false,
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
    tracks_generation: true,
    create_only: false,
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
    tracks_generation: true,
    create_only: false,
};

/// A stored kind with no subresources.
const fn plain(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Kind {
    Kind {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        has_status: false,
        has_scale: false,
        tracks_generation: false,
        create_only: false,
    }
}

/// A workload kind: namespaced, with `/status` (and `/scale` when `scale`).
const fn workload(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
    scale: bool,
) -> Kind {
    Kind {
        has_status: true,
        has_scale: scale,
        tracks_generation: true,
        ..plain(group, plural, singular, kind, true, short_names)
    }
}

/// A review: created, answered, never stored.
const fn review(group: &'static str, plural: &'static str, singular: &'static str, kind: &'static str) -> Kind {
    Kind {
        create_only: true,
        ..plain(group, plural, singular, kind, false, &[])
    }
}

pub const DAEMON_SETS: Kind = workload("apps", "daemonsets", "daemonset", "DaemonSet", &["ds"], false);
pub const STATEFUL_SETS: Kind = workload("apps", "statefulsets", "statefulset", "StatefulSet", &["sts"], true);
pub const JOBS: Kind = workload("batch", "jobs", "job", "Job", &[], false);
pub const CONFIG_MAPS: Kind = plain("", "configmaps", "configmap", "ConfigMap", true, &["cm"]);
pub const SECRETS: Kind = plain("", "secrets", "secret", "Secret", true, &[]);
pub const SERVICE_ACCOUNTS: Kind = plain("", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"]);
pub const ROLES: Kind = plain("rbac.authorization.k8s.io", "roles", "role", "Role", true, &[]);
pub const CLUSTER_ROLES: Kind = plain(
    "rbac.authorization.k8s.io",
    "clusterroles",
    "clusterrole",
    "ClusterRole",
    false,
    &[],
);
pub const ROLE_BINDINGS: Kind = plain(
    "rbac.authorization.k8s.io",
    "rolebindings",
    "rolebinding",
    "RoleBinding",
    true,
    &[],
);
pub const CLUSTER_ROLE_BINDINGS: Kind = plain(
    "rbac.authorization.k8s.io",
    "clusterrolebindings",
    "clusterrolebinding",
    "ClusterRoleBinding",
    false,
    &[],
);
pub const SELF_SUBJECT_ACCESS_REVIEWS: Kind = review(
    "authorization.k8s.io",
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    "SelfSubjectAccessReview",
);
pub const SELF_SUBJECT_REVIEWS: Kind = review(
    "authentication.k8s.io",
    "selfsubjectreviews",
    "selfsubjectreview",
    "SelfSubjectReview",
);

pub const SERVICE_CIDRS: Kind = Kind {
    has_status: true,
    ..plain(
        "networking.k8s.io",
        "servicecidrs",
        "servicecidr",
        "ServiceCIDR",
        false,
        &[],
    )
};
pub const IP_ADDRESSES: Kind = plain(
    "networking.k8s.io",
    "ipaddresses",
    "ipaddress",
    "IPAddress",
    false,
    &["ip"],
);

pub const ALL: [&Kind; 23] = [
    &NAMESPACES,
    &SERVICES,
    &PODS,
    &NODES,
    &ENDPOINTS,
    &EVENTS,
    &ENDPOINT_SLICES,
    &DEPLOYMENTS,
    &REPLICA_SETS,
    &DAEMON_SETS,
    &STATEFUL_SETS,
    &JOBS,
    &CONFIG_MAPS,
    &SECRETS,
    &SERVICE_ACCOUNTS,
    &ROLES,
    &CLUSTER_ROLES,
    &ROLE_BINDINGS,
    &CLUSTER_ROLE_BINDINGS,
    &SELF_SUBJECT_ACCESS_REVIEWS,
    &SELF_SUBJECT_REVIEWS,
    &SERVICE_CIDRS,
    &IP_ADDRESSES,
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    ALL.into_iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}
