//! IP address parsing with Kubernetes' tolerance ("sloppy" IPv4 with leading zeros, as
//! Go's `net.ParseIP` accepted before 1.17) and the address-family vocabulary.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// An IP family, as in `spec.ipFamilies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpFamily {
    IPv4,
    IPv6,
}

impl IpFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::IPv4 => "IPv4",
            IpFamily::IPv6 => "IPv6",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IPv4" => Some(IpFamily::IPv4),
            "IPv6" => Some(IpFamily::IPv6),
            _ => None,
        }
    }

    pub fn other(self) -> Self {
        match self {
            IpFamily::IPv4 => IpFamily::IPv6,
            IpFamily::IPv6 => IpFamily::IPv4,
        }
    }

    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::IPv4,
            IpAddr::V6(_) => IpFamily::IPv6,
        }
    }
}

/// Parses an IP as Kubernetes' legacy fields do: IPv4 octets may carry leading zeros (read
/// as decimal), and an IPv4-mapped IPv6 address counts as IPv4.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4_sloppy(s) {
        return Some(IpAddr::V4(v4));
    }
    if !s.contains(':') {
        return None;
    }
    let v6: Ipv6Addr = s.parse().ok()?;
    match v6.to_ipv4_mapped() {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => Some(IpAddr::V6(v6)),
    }
}

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse::<u16>().ok().filter(|v| *v <= 255)? as u8;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Why an address that parses leniently ([`parse_ip_sloppy`]) is refused by upstream's
/// strict parsing (the default since 1.33 for new values of legacy fields): leading zeros,
/// or an IPv4-mapped IPv6 address.
pub fn strict_ip_problem(value: &str) -> Option<&'static str> {
    match value.parse::<IpAddr>() {
        Err(_) => Some("must not have leading 0s"),
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => Some("must not be an IPv4-mapped IPv6 address"),
        Ok(_) => None,
    }
}

/// A CIDR as upstream's lenient parser reads it (leading zeros allowed): the address as
/// written and the prefix length.
pub fn parse_cidr_sloppy(value: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = value.split_once('/')?;
    let ip = parse_ip_sloppy(ip)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= max && bits.bytes().all(|c| c.is_ascii_digit()))?;
    Some((ip, bits))
}

/// Why a CIDR that parses leniently is refused by upstream's strict parsing: leading zeros
/// (in the address or the length), an IPv4-mapped IPv6 address, or bits set beyond the
/// prefix length.
pub fn strict_cidr_problem(value: &str) -> Option<&'static str> {
    let (ip_text, bits_text) = value.split_once('/')?;
    let (_, bits) = parse_cidr_sloppy(value)?;
    let strict = ip_text
        .parse::<IpAddr>()
        .ok()
        .filter(|_| bits_text == "0" || !bits_text.starts_with('0'));
    match strict {
        None => Some("must not have leading 0s in IP or prefix length"),
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => Some("must not have an IPv4-mapped IPv6 address"),
        Some(ip) => {
            let net = ipnet::IpNet::new(ip, bits).ok()?;
            (net.network() != ip).then_some("must not have bits set beyond the prefix length")
        }
    }
}

/// The family of a textual IP, if it parses.
pub fn family_of_str(s: &str) -> Option<IpFamily> {
    parse_ip_sloppy(s).map(IpFamily::of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_parsing() {
        assert_eq!(parse_ip_sloppy("010.000.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip_sloppy("::ffff:1.2.3.4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(family_of_str("fd00::1"), Some(IpFamily::IPv6));
        assert_eq!(parse_ip_sloppy("1.2.3"), None);
        assert_eq!(parse_ip_sloppy("1.2.3.256"), None);
        assert_eq!(parse_ip_sloppy("abc"), None);
        assert_eq!(parse_ip_sloppy(""), None);
    }
}
