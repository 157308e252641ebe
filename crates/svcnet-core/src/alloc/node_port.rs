//! The NodePort range (default 30000–32767) as a bitmap with KEP-3668's static band.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::pool::{Pool, band_offset};
use super::{AllocError, ConfigError};

/// An inclusive port range such as `30000-32767`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub base: u16,
    pub size: u32,
}

impl PortRange {
    pub const DEFAULT: PortRange = PortRange {
        base: 30000,
        size: 2768,
    };

    pub fn contains(&self, port: u16) -> bool {
        port >= self.base && u32::from(port) < u32::from(self.base) + self.size
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.base, u32::from(self.base) + self.size - 1)
    }
}

impl FromStr for PortRange {
    type Err = ConfigError;

    /// Parses `LOW-HIGH`, `LOW+SIZE` or a single port, as upstream's flag does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadPortRange(s.to_owned());
        let s = s.trim();
        let (low, high) = if let Some((a, b)) = s.split_once('-') {
            (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            )
        } else if let Some((a, n)) = s.split_once('+') {
            let low = a.parse::<u16>().map_err(|_| bad())?;
            let n = n.parse::<u16>().map_err(|_| bad())?;
            (low, low.checked_add(n).ok_or_else(bad)?)
        } else {
            let p = s.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        };
        if low == 0 || high < low {
            return Err(bad());
        }
        Ok(PortRange {
            base: low,
            size: u32::from(high - low) + 1,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePortRange {
    range: PortRange,
    pool: Pool,
}

/// What the NodePort state is stored as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePortSnapshot {
    pub range: String,
    pub allocated: Vec<u16>,
}

impl NodePortRange {
    pub fn new(range: PortRange) -> Self {
        let offset = band_offset(range.size.into(), 16, 32, 128);
        NodePortRange {
            range,
            pool: Pool::new(range.size as usize, offset),
        }
    }

    pub fn range(&self) -> PortRange {
        self.range
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn pool_mut(&mut self) -> &mut Pool {
        &mut self.pool
    }

    pub fn slot_of(&self, port: i32) -> Option<usize> {
        let port = u16::try_from(port).ok()?;
        self.range.contains(port).then(|| usize::from(port - self.range.base))
    }

    pub fn port_of(&self, slot: usize) -> u16 {
        self.range.base + slot as u16
    }

    pub fn check_request(&self, port: i32) -> Result<usize, AllocError> {
        self.slot_of(port).ok_or_else(|| AllocError::PortNotInRange {
            range: self.range.to_string(),
        })
    }

    pub fn is_allocated(&self, port: u16) -> bool {
        self.slot_of(port.into()).is_some_and(|s| self.pool.is_set(s))
    }

    pub fn allocated(&self) -> impl Iterator<Item = u16> + '_ {
        self.pool.iter().map(|s| self.port_of(s))
    }

    pub fn snapshot(&self) -> NodePortSnapshot {
        NodePortSnapshot {
            range: self.range.to_string(),
            allocated: self.allocated().collect(),
        }
    }

    pub fn restore(&mut self, snap: &NodePortSnapshot) -> Result<(), AllocError> {
        if snap.range != self.range.to_string() {
            return Err(AllocError::MismatchedPortRange);
        }
        let mut pool = Pool::new(self.pool.size(), self.pool.offset());
        for p in &snap.allocated {
            pool.set(self.check_request((*p).into())?);
        }
        self.pool = pool;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_band_is_86() {
        let r = NodePortRange::new(PortRange::DEFAULT);
        assert_eq!(r.pool().offset(), 86);
        assert_eq!(r.range().to_string(), "30000-32767");
    }

    #[test]
    fn parses_flag_forms() {
        assert_eq!("30000-32767".parse::<PortRange>().unwrap(), PortRange::DEFAULT);
        assert_eq!("30000+2767".parse::<PortRange>().unwrap(), PortRange::DEFAULT);
        assert!("5-1".parse::<PortRange>().is_err());
        assert!("x".parse::<PortRange>().is_err());
    }

    #[test]
    fn out_of_range_message() {
        let r = NodePortRange::new(PortRange::DEFAULT);
        assert_eq!(
            r.check_request(80).unwrap_err().to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
    }
}
