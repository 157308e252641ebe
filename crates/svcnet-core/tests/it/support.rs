//! Shared helpers: build Services from YAML, run writes against fresh allocators.

use k8s_openapi::api::core::v1::Service;
use svcnet_core::alloc::{Allocators, PortRange, SplitMix64};
use svcnet_core::registry::{PlannedWrite, plan_write};
use svcnet_core::status::Status;

/// A Service from YAML; `metadata.namespace` defaults to `default`.
pub fn svc(yaml: &str) -> Service {
    let mut s: Service = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{yaml}"));
    s.metadata.namespace.get_or_insert_with(|| "default".to_owned());
    s
}

/// Single-stack IPv4 cluster: 10.0.0.0/24, default NodePort range.
pub fn v4_cluster() -> Allocators {
    Allocators::new(&["10.0.0.0/24".parse().unwrap()], PortRange::DEFAULT).unwrap()
}

/// Dual-stack cluster, IPv4 primary.
pub fn dual_cluster() -> Allocators {
    Allocators::new(
        &["10.0.0.0/24".parse().unwrap(), "fd00::/112".parse().unwrap()],
        PortRange::DEFAULT,
    )
    .unwrap()
}

pub struct Cluster {
    pub alloc: Allocators,
    pub rng: SplitMix64,
}

impl Cluster {
    pub fn new(alloc: Allocators) -> Self {
        Cluster {
            alloc,
            rng: SplitMix64(7),
        }
    }

    /// Plans and, on success, commits a write.
    pub fn write(&mut self, old: Option<&Service>, new: Service) -> Result<PlannedWrite, Box<Status>> {
        let planned = plan_write(old, new, &self.alloc, &mut self.rng)?;
        self.alloc.commit(&planned.changes).expect("planned changes commit");
        Ok(planned)
    }

    pub fn create(&mut self, yaml: &str) -> Result<Service, Box<Status>> {
        self.write(None, svc(yaml)).map(|p| p.service)
    }
}

/// The `(field, message)` pairs of a Status's causes.
pub fn causes(status: &Status) -> Vec<(String, String)> {
    status
        .details
        .as_ref()
        .map(|d| d.causes.iter().map(|c| (c.field.clone(), c.message.clone())).collect())
        .unwrap_or_default()
}
