//! One service CIDR's ClusterIP range: a bitmap over its addresses, excluding the network
//! address (and for IPv4 the broadcast address); IPv6 ranges are capped at 65536 slots.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::pool::{Pool, band_offset};
use super::{AllocError, ConfigError};
use crate::ip::IpFamily;

/// Largest IPv4 service CIDR (smallest prefix length) accepted.
pub const MIN_IPV4_PREFIX: u8 = 12;
/// Largest IPv6 service CIDR accepted.
pub const MIN_IPV6_PREFIX: u8 = 108;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRange {
    cidr: IpNet,
    pool: Pool,
}

/// What a range's state is stored as: its CIDR and the taken addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRangeSnapshot {
    pub range: String,
    pub allocated: Vec<IpAddr>,
}

impl IpRange {
    pub fn new(cidr: IpNet) -> Result<Self, ConfigError> {
        let cidr = cidr.trunc();
        let (bits, min_prefix) = match cidr {
            IpNet::V4(_) => (32u32, MIN_IPV4_PREFIX),
            IpNet::V6(_) => (128u32, MIN_IPV6_PREFIX),
        };
        if cidr.prefix_len() < min_prefix {
            return Err(ConfigError::RangeTooLarge { cidr, bits, min_prefix });
        }
        let full: u128 = 1u128 << (bits - u32::from(cidr.prefix_len()));
        let slots = match cidr {
            IpNet::V4(_) => full.saturating_sub(2),
            IpNet::V6(_) => full.min(65536).saturating_sub(1),
        };
        let offset = band_offset(full, 16, 16, 256);
        Ok(IpRange {
            cidr,
            pool: Pool::new(slots as usize, offset),
        })
    }

    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    pub fn family(&self) -> IpFamily {
        match self.cidr {
            IpNet::V4(_) => IpFamily::IPv4,
            IpNet::V6(_) => IpFamily::IPv6,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn pool_mut(&mut self) -> &mut Pool {
        &mut self.pool
    }

    /// The slot of an address, if it is allocatable in this range.
    pub fn slot_of(&self, ip: IpAddr) -> Option<usize> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        let delta = to_u128(ip).checked_sub(to_u128(self.cidr.network()))?;
        let slot = delta.checked_sub(1)?;
        (slot < self.pool.size() as u128).then_some(slot as usize)
    }

    pub fn ip_of(&self, slot: usize) -> IpAddr {
        from_u128(to_u128(self.cidr.network()) + 1 + slot as u128, self.family())
    }

    /// The slot for a requested address, or the upstream error.
    pub fn check_request(&self, ip: IpAddr) -> Result<usize, AllocError> {
        self.slot_of(ip).ok_or_else(|| AllocError::IpNotInRange {
            ip,
            range: self.cidr.to_string(),
        })
    }

    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.slot_of(ip).is_some_and(|s| self.pool.is_set(s))
    }

    pub fn allocated(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.pool.iter().map(|s| self.ip_of(s))
    }

    /// The first address of the range, which belongs to `default/kubernetes`.
    pub fn first_ip(&self) -> IpAddr {
        self.ip_of(0)
    }

    pub fn snapshot(&self) -> IpRangeSnapshot {
        IpRangeSnapshot {
            range: self.cidr.to_string(),
            allocated: self.allocated().collect(),
        }
    }

    /// Rebuilds the taken set from a snapshot of the same range.
    pub fn restore(&mut self, snap: &IpRangeSnapshot) -> Result<(), AllocError> {
        if snap.range != self.cidr.to_string() {
            return Err(AllocError::MismatchedNetwork);
        }
        let mut pool = Pool::new(self.pool.size(), self.pool.offset());
        for ip in &snap.allocated {
            let slot = self.check_request(*ip)?;
            pool.set(slot);
        }
        self.pool = pool;
        Ok(())
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(v: u128, family: IpFamily) -> IpAddr {
    match family {
        IpFamily::IPv4 => IpAddr::V4((v as u32).into()),
        IpFamily::IPv6 => IpAddr::V6(v.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> IpRange {
        IpRange::new(s.parse().unwrap()).unwrap()
    }

    #[test]
    fn ipv4_excludes_network_and_broadcast() {
        let r = range("10.0.0.0/24");
        assert_eq!(r.pool().size(), 254);
        assert_eq!(r.first_ip().to_string(), "10.0.0.1");
        assert_eq!(r.slot_of("10.0.0.0".parse().unwrap()), None);
        assert_eq!(r.slot_of("10.0.0.255".parse().unwrap()), None);
        assert_eq!(r.slot_of("10.0.0.254".parse().unwrap()), Some(253));
    }

    #[test]
    fn bands_follow_kep_3070() {
        assert_eq!(range("10.0.0.0/28").pool().offset(), 0);
        assert_eq!(range("10.0.0.0/24").pool().offset(), 16);
        assert_eq!(range("10.0.0.0/20").pool().offset(), 256);
        assert_eq!(range("10.96.0.0/12").pool().offset(), 256);
        assert_eq!(range("fd00::/112").pool().size(), 65535);
        assert_eq!(range("fd00::/108").pool().size(), 65535);
    }

    #[test]
    fn too_large_ranges_are_refused() {
        let e = IpRange::new("10.0.0.0/11".parse().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "service CIDR 10.0.0.0/11 is too large; for 32-bit addresses, the mask must be >= 12"
        );
        assert!(IpRange::new("fd00::/107".parse().unwrap()).is_err());
    }

    #[test]
    fn not_in_range_message() {
        let r = range("10.0.0.0/24");
        assert_eq!(
            r.check_request("10.0.1.1".parse().unwrap()).unwrap_err().to_string(),
            "the provided network does not match the current range"
        );
    }
}
