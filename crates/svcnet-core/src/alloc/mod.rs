//! ClusterIP and NodePort allocation.
//!
//! `Allocators` is the committed state (one IP range per configured family, one NodePort
//! range). A write plans its allocations in a `Transaction` that borrows the state and only
//! records what it takes and frees; the resulting `AllocationChanges` are committed with
//! `Allocators::commit` once the write is accepted, so a failed write changes nothing.

mod cluster_ip;
mod node_port;
mod pool;
mod random;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use cluster_ip::{IpRange, IpRangeSnapshot, MIN_IPV4_PREFIX, MIN_IPV6_PREFIX};
pub use node_port::{NodePortRange, NodePortSnapshot, PortRange};
pub use pool::{Pool, band_offset};
pub use random::{RandomSource, SplitMix64};

use crate::ip::IpFamily;

/// Allocation failures, worded as upstream's allocators word them.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AllocError {
    #[error("range is full")]
    Full,
    #[error("provided IP is already allocated")]
    IpAllocated,
    /// (worded as upstream's IPAddress-based allocator, the default since 1.33)
    #[error("the provided network does not match the current range")]
    IpNotInRange { ip: IpAddr, range: String },
    #[error("provided port is already allocated")]
    PortAllocated,
    #[error("provided port is not in the valid range. The range of valid ports is {range}")]
    PortNotInRange { range: String },
    #[error("the provided network does not match the current range")]
    MismatchedNetwork,
    #[error("the provided port range does not match the current port range")]
    MismatchedPortRange,
    #[error("{0} is not configured on this cluster")]
    FamilyNotConfigured(&'static str),
}

/// Bad allocator configuration.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("service CIDR {cidr} is too large; for {bits}-bit addresses, the mask must be >= {min_prefix}")]
    RangeTooLarge { cidr: IpNet, bits: u32, min_prefix: u8 },
    #[error("at most two service CIDRs, one per IP family, may be given")]
    BadDualStack,
    #[error("at least one service CIDR is required")]
    NoRange,
    #[error("invalid port range {0:?}: expected LOW-HIGH within 1-65535")]
    BadPortRange(String),
}

/// The committed allocation state of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocators {
    primary: IpFamily,
    ranges: BTreeMap<IpFamily, IpRange>,
    node_ports: NodePortRange,
}

/// Everything the allocators hold, for persistence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorsSnapshot {
    pub ranges: Vec<IpRangeSnapshot>,
    pub node_ports: NodePortSnapshot,
}

/// What one write takes and frees; applied by `Allocators::commit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocationChanges {
    pub allocated_ips: Vec<IpAddr>,
    pub released_ips: Vec<IpAddr>,
    pub allocated_ports: Vec<u16>,
    pub released_ports: Vec<u16>,
}

impl AllocationChanges {
    pub fn is_empty(&self) -> bool {
        self.allocated_ips.is_empty()
            && self.released_ips.is_empty()
            && self.allocated_ports.is_empty()
            && self.released_ports.is_empty()
    }
}

impl Allocators {
    /// One range per family (the first is the cluster's primary family) and the NodePort range.
    pub fn new(service_cidrs: &[IpNet], node_ports: PortRange) -> Result<Self, ConfigError> {
        let mut ranges = BTreeMap::new();
        let mut primary = None;
        if service_cidrs.len() > 2 {
            return Err(ConfigError::BadDualStack);
        }
        for cidr in service_cidrs {
            let r = IpRange::new(*cidr)?;
            primary.get_or_insert(r.family());
            if ranges.insert(r.family(), r).is_some() {
                return Err(ConfigError::BadDualStack);
            }
        }
        Ok(Allocators {
            primary: primary.ok_or(ConfigError::NoRange)?,
            ranges,
            node_ports: NodePortRange::new(node_ports),
        })
    }

    pub fn primary_family(&self) -> IpFamily {
        self.primary
    }

    pub fn is_dual_stack(&self) -> bool {
        self.ranges.len() == 2
    }

    pub fn range(&self, family: IpFamily) -> Option<&IpRange> {
        self.ranges.get(&family)
    }

    pub fn ranges(&self) -> impl Iterator<Item = &IpRange> {
        self.ranges.values()
    }

    pub fn node_ports(&self) -> &NodePortRange {
        &self.node_ports
    }

    /// Starts planning a write.
    pub fn begin(&self) -> Transaction<'_> {
        Transaction {
            base: self,
            ips: BTreeSet::new(),
            ports: BTreeSet::new(),
            released_ips: BTreeSet::new(),
            released_ports: BTreeSet::new(),
        }
    }

    /// Applies a planned write: marks what it took, then frees what it released. Errors
    /// (a slot taken twice) mean the changes were not planned against this state.
    pub fn commit(&mut self, changes: &AllocationChanges) -> Result<(), AllocError> {
        let mut next = self.clone();
        for ip in &changes.allocated_ips {
            let range = next.range_for_mut(*ip)?;
            let slot = range.check_request(*ip)?;
            if !range.pool_mut().set(slot) {
                return Err(AllocError::IpAllocated);
            }
        }
        for port in &changes.allocated_ports {
            let slot = next.node_ports.check_request((*port).into())?;
            if !next.node_ports.pool_mut().set(slot) {
                return Err(AllocError::PortAllocated);
            }
        }
        for ip in &changes.released_ips {
            next.release_ip(*ip);
        }
        for port in &changes.released_ports {
            next.release_port(*port);
        }
        *self = next;
        Ok(())
    }

    /// Marks an address as taken (rebuilding state from stored Services).
    pub fn reserve_ip(&mut self, ip: IpAddr) -> Result<(), AllocError> {
        let range = self.range_for_mut(ip)?;
        let slot = range.check_request(ip)?;
        if range.pool_mut().set(slot) {
            Ok(())
        } else {
            Err(AllocError::IpAllocated)
        }
    }

    /// Marks a node port as taken (rebuilding state from stored Services).
    pub fn reserve_port(&mut self, port: u16) -> Result<(), AllocError> {
        let slot = self.node_ports.check_request(port.into())?;
        if self.node_ports.pool_mut().set(slot) {
            Ok(())
        } else {
            Err(AllocError::PortAllocated)
        }
    }

    /// Frees an address; addresses outside every range are ignored, as upstream does.
    pub fn release_ip(&mut self, ip: IpAddr) {
        if let Ok(range) = self.range_for_mut(ip)
            && let Some(slot) = range.slot_of(ip)
        {
            range.pool_mut().clear(slot);
        }
    }

    pub fn release_port(&mut self, port: u16) {
        if let Some(slot) = self.node_ports.slot_of(port.into()) {
            self.node_ports.pool_mut().clear(slot);
        }
    }

    fn range_for_mut(&mut self, ip: IpAddr) -> Result<&mut IpRange, AllocError> {
        let family = IpFamily::of(ip);
        self.ranges
            .get_mut(&family)
            .ok_or(AllocError::FamilyNotConfigured(family.as_str()))
    }

    pub fn snapshot(&self) -> AllocatorsSnapshot {
        AllocatorsSnapshot {
            ranges: self.ranges.values().map(IpRange::snapshot).collect(),
            node_ports: self.node_ports.snapshot(),
        }
    }

    /// Replaces the taken sets with a snapshot's; the configuration must match.
    pub fn restore(&mut self, snap: &AllocatorsSnapshot) -> Result<(), AllocError> {
        let mut next = self.clone();
        if snap.ranges.len() != next.ranges.len() {
            return Err(AllocError::MismatchedNetwork);
        }
        for (range, s) in next.ranges.values_mut().zip(&snap.ranges) {
            range.restore(s)?;
        }
        next.node_ports.restore(&snap.node_ports)?;
        *self = next;
        Ok(())
    }
}

/// A write's allocations in progress, on top of borrowed committed state.
pub struct Transaction<'a> {
    base: &'a Allocators,
    ips: BTreeSet<IpAddr>,
    ports: BTreeSet<u16>,
    released_ips: BTreeSet<IpAddr>,
    released_ports: BTreeSet<u16>,
}

impl Transaction<'_> {
    pub fn allocators(&self) -> &Allocators {
        self.base
    }

    fn range(&self, family: IpFamily) -> Result<&IpRange, AllocError> {
        self.base
            .ranges
            .get(&family)
            .ok_or(AllocError::FamilyNotConfigured(family.as_str()))
    }

    /// Takes a specific address.
    pub fn allocate_ip(&mut self, ip: IpAddr) -> Result<(), AllocError> {
        let range = self.range(IpFamily::of(ip))?;
        let slot = range.check_request(ip)?;
        if range.pool().is_set(slot) || self.ips.contains(&ip) {
            return Err(AllocError::IpAllocated);
        }
        self.ips.insert(ip);
        Ok(())
    }

    /// Takes a free address of `family`, random within the dynamic band first.
    pub fn allocate_next_ip(&mut self, family: IpFamily, rng: &mut dyn RandomSource) -> Result<IpAddr, AllocError> {
        let range = self.range(family)?;
        let taken_here: Vec<usize> = self.ips.iter().filter_map(|ip| range.slot_of(*ip)).collect();
        let extra = |slot: usize| taken_here.contains(&slot);
        let slot = range
            .pool()
            .pick_free(&extra, taken_here.len(), rng)
            .ok_or(AllocError::Full)?;
        let ip = range.ip_of(slot);
        self.ips.insert(ip);
        Ok(ip)
    }

    /// Takes a specific node port.
    pub fn allocate_port(&mut self, port: i32) -> Result<u16, AllocError> {
        let slot = self.base.node_ports.check_request(port)?;
        let port = self.base.node_ports.port_of(slot);
        if self.base.node_ports.pool().is_set(slot) || self.ports.contains(&port) {
            return Err(AllocError::PortAllocated);
        }
        self.ports.insert(port);
        Ok(port)
    }

    /// Takes a free node port, random within the dynamic band first.
    pub fn allocate_next_port(&mut self, rng: &mut dyn RandomSource) -> Result<u16, AllocError> {
        let np = &self.base.node_ports;
        let taken_here: Vec<usize> = self.ports.iter().filter_map(|p| np.slot_of((*p).into())).collect();
        let extra = |slot: usize| taken_here.contains(&slot);
        let slot = np
            .pool()
            .pick_free(&extra, taken_here.len(), rng)
            .ok_or(AllocError::Full)?;
        let port = np.port_of(slot);
        self.ports.insert(port);
        Ok(port)
    }

    /// Frees an address when the write commits.
    pub fn release_ip_deferred(&mut self, ip: IpAddr) {
        self.released_ips.insert(ip);
    }

    /// Frees a node port when the write commits.
    pub fn release_port_deferred(&mut self, port: u16) {
        self.released_ports.insert(port);
    }

    pub fn finish(self) -> AllocationChanges {
        AllocationChanges {
            allocated_ips: self.ips.into_iter().collect(),
            released_ips: self.released_ips.into_iter().collect(),
            allocated_ports: self.ports.into_iter().collect(),
            released_ports: self.released_ports.into_iter().collect(),
        }
    }
}
