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
    #[error("{0} is not one of the cluster's service IP families (--service-cluster-ip-range)")]
    FamilyNotConfigured(&'static str),
}

/// The committed allocation state of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocators {
    primary: IpFamily,
    /// The configured ranges (`--service-cluster-ip-range`), one per family.
    ranges: BTreeMap<IpFamily, IpRange>,
    /// Ranges added at run time (ServiceCIDR objects), tried in order once the configured
    /// range of their family is full. An address is marked in every range that holds it,
    /// so overlapping ranges never hand it out twice.
    extra: Vec<IpRange>,
    /// Added ranges being removed: they keep the addresses they hold until those are
    /// released, and hand out none.
    draining: Vec<IpRange>,
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
            extra: Vec::new(),
            draining: Vec::new(),
            node_ports: NodePortRange::new(node_ports),
        })
    }

    /// These allocators (nothing allocated yet) with `cidrs` added after the configured
    /// ranges. A CIDR equal to a configured range is already there; one of a family the
    /// cluster is not configured for, or too large for a bitmap, is refused.
    pub fn with_extra_ranges(self, cidrs: &[IpNet]) -> Result<Self, ConfigError> {
        self.adding(cidrs, false)
    }

    /// These allocators with `cidrs` added as draining ranges: they hold addresses (so a
    /// Service keeps one while its ServiceCIDR is being deleted) but hand out none.
    pub fn with_draining_ranges(self, cidrs: &[IpNet]) -> Result<Self, ConfigError> {
        self.adding(cidrs, true)
    }

    fn adding(mut self, cidrs: &[IpNet], draining: bool) -> Result<Self, ConfigError> {
        for cidr in cidrs {
            let range = IpRange::new(*cidr)?;
            if !self.ranges.contains_key(&range.family()) {
                return Err(ConfigError::FamilyNotConfigured(range.family().as_str()));
            }
            let known = self.all_ranges().any(|r| r.cidr() == range.cidr());
            if !known {
                if draining {
                    self.draining.push(range);
                } else {
                    self.extra.push(range);
                }
            }
        }
        Ok(self)
    }

    /// Every range, draining ones last.
    fn all_ranges(&self) -> impl Iterator<Item = &IpRange> {
        self.ranges.values().chain(&self.extra).chain(&self.draining)
    }

    /// Every address taken in any range.
    pub fn allocated_ips(&self) -> BTreeSet<IpAddr> {
        self.all_ranges().flat_map(IpRange::allocated).collect()
    }

    /// The ranges added with [`with_extra_ranges`](Self::with_extra_ranges).
    pub fn extra_ranges(&self) -> &[IpRange] {
        &self.extra
    }

    /// Every range that can hold `ip`: the configured one of its family first, draining
    /// ones last.
    fn holding(&self, ip: IpAddr) -> impl Iterator<Item = &IpRange> {
        self.ranges
            .get(&IpFamily::of(ip))
            .into_iter()
            .chain(&self.extra)
            .chain(&self.draining)
            .filter(move |r| r.slot_of(ip).is_some())
    }

    /// Whether a range that hands out addresses holds `ip`.
    fn active_holds(&self, ip: IpAddr) -> bool {
        self.ranges
            .get(&IpFamily::of(ip))
            .into_iter()
            .chain(&self.extra)
            .any(|r| r.slot_of(ip).is_some())
    }

    /// Whether `ip` is taken in any range.
    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.holding(ip).any(|r| r.is_allocated(ip))
    }

    /// Why `ip` cannot be allocated at all, if it cannot: no range of its family, or outside
    /// every range (worded for the configured range, as upstream words it).
    fn check_request(&self, ip: IpAddr, active_only: bool) -> Result<(), AllocError> {
        let held = if active_only {
            self.active_holds(ip)
        } else {
            self.holding(ip).next().is_some()
        };
        if held {
            return Ok(());
        }
        let family = IpFamily::of(ip);
        let range = self
            .ranges
            .get(&family)
            .ok_or(AllocError::FamilyNotConfigured(family.as_str()))?;
        range.check_request(ip).map(drop)
    }

    /// Marks `ip` in every range holding it; fails if it was taken.
    fn mark_ip(&mut self, ip: IpAddr) -> Result<(), AllocError> {
        self.check_request(ip, false)?;
        if self.is_allocated(ip) {
            return Err(AllocError::IpAllocated);
        }
        let family = IpFamily::of(ip);
        for range in self.ranges_mut(family) {
            if let Some(slot) = range.slot_of(ip) {
                range.pool_mut().set(slot);
            }
        }
        Ok(())
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
            next.mark_ip(*ip)?;
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
        self.mark_ip(ip)
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
        for range in self.ranges_mut(IpFamily::of(ip)) {
            if let Some(slot) = range.slot_of(ip) {
                range.pool_mut().clear(slot);
            }
        }
    }

    fn ranges_mut(&mut self, family: IpFamily) -> impl Iterator<Item = &mut IpRange> {
        self.ranges
            .get_mut(&family)
            .into_iter()
            .chain(self.extra.iter_mut())
            .chain(self.draining.iter_mut())
    }

    pub fn release_port(&mut self, port: u16) {
        if let Some(slot) = self.node_ports.slot_of(port.into()) {
            self.node_ports.pool_mut().clear(slot);
        }
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
        self.base.check_request(ip, true)?;
        if self.base.is_allocated(ip) || self.ips.contains(&ip) {
            return Err(AllocError::IpAllocated);
        }
        self.ips.insert(ip);
        Ok(())
    }

    /// Takes a free address of `family`, random within the dynamic band first, from the
    /// configured range, then from the added ranges in turn.
    pub fn allocate_next_ip(&mut self, family: IpFamily, rng: &mut dyn RandomSource) -> Result<IpAddr, AllocError> {
        let configured = self.range(family)?;
        let added = self.base.extra.iter().filter(|r| r.family() == family);
        for range in std::iter::once(configured).chain(added) {
            let taken_here: Vec<usize> = self.ips.iter().filter_map(|ip| range.slot_of(*ip)).collect();
            let extra = |slot: usize| taken_here.contains(&slot);
            if let Some(slot) = range.pool().pick_free(&extra, taken_here.len(), rng) {
                let ip = range.ip_of(slot);
                self.ips.insert(ip);
                return Ok(ip);
            }
        }
        Err(AllocError::Full)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn allocators(configured: &str, added: &[&str]) -> Allocators {
        let added: Vec<IpNet> = added.iter().map(|c| c.parse().unwrap()).collect();
        Allocators::new(&[configured.parse().unwrap()], PortRange::DEFAULT)
            .unwrap()
            .with_extra_ranges(&added)
            .unwrap()
    }

    fn take_next(a: &mut Allocators, rng: &mut SplitMix64) -> Result<IpAddr, AllocError> {
        let mut tx = a.begin();
        let ip = tx.allocate_next_ip(IpFamily::IPv4, rng)?;
        let changes = tx.finish();
        a.commit(&changes)?;
        Ok(ip)
    }

    #[test]
    fn an_added_range_takes_over_when_the_configured_one_is_full() {
        let mut rng = SplitMix64(7);
        let mut full = allocators("10.0.0.0/30", &[]);
        for _ in 0..2 {
            take_next(&mut full, &mut rng).unwrap();
        }
        assert_eq!(take_next(&mut full, &mut rng), Err(AllocError::Full));
        let mut extended = allocators("10.0.0.0/30", &["10.1.0.0/29"]);
        for ip in full.range(IpFamily::IPv4).unwrap().allocated() {
            extended.reserve_ip(ip).unwrap();
        }
        let ip = take_next(&mut extended, &mut rng).unwrap();
        assert!("10.1.0.0/29".parse::<IpNet>().unwrap().contains(&ip), "{ip}");
        // a specific address of the added range, and one outside every range
        let mut tx = extended.begin();
        assert_eq!(tx.allocate_ip(ip), Err(AllocError::IpAllocated));
        tx.allocate_ip("10.1.0.6".parse().unwrap()).unwrap();
        assert!(matches!(
            tx.allocate_ip("10.2.0.1".parse().unwrap()),
            Err(AllocError::IpNotInRange { .. })
        ));
    }

    #[test]
    fn overlapping_ranges_never_hand_out_an_address_twice() {
        let mut rng = SplitMix64(3);
        // the added range holds the configured one
        let mut a = allocators("10.0.0.0/30", &["10.0.0.0/29"]);
        let first = take_next(&mut a, &mut rng).unwrap();
        let second = take_next(&mut a, &mut rng).unwrap();
        let mut seen = vec![first, second];
        while let Ok(ip) = take_next(&mut a, &mut rng) {
            assert!(!seen.contains(&ip), "{ip} handed out twice");
            seen.push(ip);
        }
        // a /29 has 6 usable addresses, the /30's two among them
        assert_eq!(seen.len(), 6);
        a.release_ip(first);
        assert!(!a.is_allocated(first));
        assert_eq!(take_next(&mut a, &mut rng), Ok(first));
    }

    #[test]
    fn a_draining_range_keeps_its_addresses_and_hands_out_none() {
        let mut rng = SplitMix64(5);
        let mut a = allocators("10.0.0.0/30", &[])
            .with_draining_ranges(&["10.1.0.0/29".parse().unwrap()])
            .unwrap();
        let kept: IpAddr = "10.1.0.3".parse().unwrap();
        a.reserve_ip(kept).unwrap();
        assert!(a.allocated_ips().contains(&kept));
        let mut tx = a.begin();
        assert!(matches!(
            tx.allocate_ip("10.1.0.4".parse().unwrap()),
            Err(AllocError::IpNotInRange { .. })
        ));
        for _ in 0..2 {
            take_next(&mut a, &mut rng).unwrap();
        }
        assert_eq!(take_next(&mut a, &mut rng), Err(AllocError::Full));
        a.release_ip(kept);
        assert!(!a.is_allocated(kept));
    }

    #[test]
    fn an_added_range_of_another_family_is_refused() {
        let a = Allocators::new(&["10.0.0.0/24".parse().unwrap()], PortRange::DEFAULT).unwrap();
        assert_eq!(
            a.with_extra_ranges(&["fd00::/120".parse().unwrap()]),
            Err(ConfigError::FamilyNotConfigured("IPv6"))
        );
    }
}
