//! Which address each LoadBalancer Service gets and which node announces it: deterministic,
//! no I/O. Addresses come from one IPv4 range; a Service keeps the address it has, asks for
//! one with `spec.loadBalancerIP`, or takes the lowest free one (after a restart, the address
//! already in its status is taken back first, so addresses survive the controller).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// `(namespace, name)` of a Service.
pub type Key = (String, String);

/// What a Service asks of the load balancer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `spec.loadBalancerIP` (deprecated upstream, still honoured by MetalLB and here).
    pub requested: Option<String>,
    /// The addresses in its `status.loadBalancer.ingress` now.
    pub held: Vec<Ipv4Addr>,
    /// Whether it asks only for IPv6 (the lab's pool is IPv4).
    pub ipv6_only: bool,
}

/// An inclusive range of addresses and who holds which.
#[derive(Clone, Debug)]
pub struct Pool {
    first: Ipv4Addr,
    last: Ipv4Addr,
    by_service: BTreeMap<Key, Ipv4Addr>,
    by_address: BTreeMap<Ipv4Addr, Key>,
}

impl Pool {
    pub fn new((first, last): (Ipv4Addr, Ipv4Addr)) -> Self {
        Pool {
            first,
            last,
            by_service: BTreeMap::new(),
            by_address: BTreeMap::new(),
        }
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }

    fn describe(&self) -> String {
        format!("{}-{}", self.first, self.last)
    }

    /// The address `key` holds.
    pub fn address_of(&self, key: &Key) -> Option<Ipv4Addr> {
        self.by_service.get(key).copied()
    }

    /// Releases what `key` holds; returns it.
    pub fn release(&mut self, key: &Key) -> Option<Ipv4Addr> {
        let ip = self.by_service.remove(key)?;
        self.by_address.remove(&ip);
        Some(ip)
    }

    fn take(&mut self, key: &Key, ip: Ipv4Addr) -> Ipv4Addr {
        self.by_service.insert(key.clone(), ip);
        self.by_address.insert(ip, key.clone());
        ip
    }

    fn holder(&self, ip: Ipv4Addr) -> Option<&Key> {
        self.by_address.get(&ip)
    }

    /// The address `key` should have for `request`, taking or changing it; an error says why
    /// none can be given (the Service stays pending).
    pub fn assign(&mut self, key: &Key, request: &Request) -> Result<Ipv4Addr, String> {
        if request.ipv6_only {
            self.release(key);
            return Err(format!(
                "the lab's load-balancer pool {} is IPv4 only; this Service asks for IPv6",
                self.describe()
            ));
        }
        let wanted = match request.requested.as_deref().filter(|r| !r.is_empty()) {
            None => None,
            Some(text) => match text.parse::<Ipv4Addr>() {
                Ok(ip) if self.contains(ip) => Some(ip),
                _ => {
                    self.release(key);
                    return Err(format!(
                        "spec.loadBalancerIP {text:?} is not in the lab's load-balancer pool {}",
                        self.describe()
                    ));
                }
            },
        };
        if let Some(current) = self.address_of(key) {
            if wanted.is_none_or(|w| w == current) {
                return Ok(current);
            }
            self.release(key);
        }
        if let Some(ip) = wanted {
            return match self.holder(ip) {
                Some((ns, name)) => Err(format!(
                    "spec.loadBalancerIP {ip} is already assigned to Service {ns}/{name}"
                )),
                None => Ok(self.take(key, ip)),
            };
        }
        let held = request
            .held
            .iter()
            .copied()
            .find(|ip| self.contains(*ip) && self.holder(*ip).is_none());
        if let Some(ip) = held {
            return Ok(self.take(key, ip));
        }
        let free = (u32::from(self.first)..=u32::from(self.last))
            .map(Ipv4Addr::from)
            .find(|ip| self.holder(*ip).is_none());
        match free {
            Some(ip) => Ok(self.take(key, ip)),
            None => Err(format!(
                "no address is free in the lab's load-balancer pool {}",
                self.describe()
            )),
        }
    }
}

/// A node that can announce addresses: ready, with its InternalIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcer {
    pub name: String,
    pub ip: Ipv4Addr,
}

/// The node that announces `key`'s address (the external host routes it there): among the
/// ready nodes, or with `local_only` (externalTrafficPolicy Local) only those that run a ready
/// endpoint of it, one picked by a hash of the Service's name, so Services spread over nodes
/// and each stays where it is while that node stays a candidate. `None`: no node may.
pub fn announcer<'a>(
    key: &Key,
    local_only: bool,
    nodes: &'a [Announcer],
    with_ready_endpoints: &BTreeSet<String>,
) -> Option<&'a Announcer> {
    let mut candidates: Vec<&Announcer> = nodes
        .iter()
        .filter(|n| !local_only || with_ready_endpoints.contains(&n.name))
        .collect();
    candidates.sort_by(|a, b| a.name.cmp(&b.name));
    if candidates.is_empty() {
        return None;
    }
    let index = fnv1a(format!("{}/{}", key.0, key.1).as_bytes()) % candidates.len() as u64;
    Some(candidates[index as usize])
}

/// 64-bit FNV-1a: a stable hash (std's is seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("default".into(), name.into())
    }

    fn pool(last: u8) -> Pool {
        Pool::new((Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, last)))
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    #[test]
    fn lowest_free_address_first_and_kept_until_released() {
        let mut p = pool(3);
        let none = Request::default();
        assert_eq!(p.assign(&key("a"), &none), Ok(ip(1)));
        assert_eq!(p.assign(&key("b"), &none), Ok(ip(2)));
        assert_eq!(p.assign(&key("a"), &none), Ok(ip(1)), "a keeps its address");
        assert_eq!(p.release(&key("a")), Some(ip(1)));
        assert_eq!(p.assign(&key("c"), &none), Ok(ip(1)), "a released address is reused");
        assert_eq!(p.assign(&key("d"), &none), Ok(ip(3)));
        let full = p.assign(&key("e"), &none).unwrap_err();
        assert!(
            full.contains("no address is free") && full.contains("10.0.0.1-10.0.0.3"),
            "{full}"
        );
    }

    #[test]
    fn a_requested_address_must_be_in_the_pool_and_free() {
        let mut p = pool(5);
        let asks = |r: &str| Request {
            requested: Some(r.into()),
            ..Request::default()
        };
        assert_eq!(p.assign(&key("a"), &asks("10.0.0.4")), Ok(ip(4)));
        let taken = p.assign(&key("b"), &asks("10.0.0.4")).unwrap_err();
        assert!(taken.contains("already assigned to Service default/a"), "{taken}");
        let outside = p.assign(&key("b"), &asks("192.0.2.1")).unwrap_err();
        assert!(outside.contains("not in the lab's load-balancer pool"), "{outside}");
        let garbage = p.assign(&key("b"), &asks("not-an-ip")).unwrap_err();
        assert!(garbage.contains("\"not-an-ip\""), "{garbage}");
        // changing the request moves the Service and frees its old address
        assert_eq!(p.assign(&key("a"), &asks("10.0.0.5")), Ok(ip(5)));
        assert_eq!(p.assign(&key("b"), &Request::default()), Ok(ip(1)));
        assert_eq!(p.assign(&key("c"), &asks("10.0.0.4")), Ok(ip(4)));
    }

    #[test]
    fn addresses_in_status_are_taken_back_after_a_restart() {
        let mut p = pool(5);
        let held = |last: u8| Request {
            held: vec![ip(last)],
            ..Request::default()
        };
        assert_eq!(p.assign(&key("a"), &held(3)), Ok(ip(3)));
        // a status address someone else holds, or outside the pool, is not taken
        assert_eq!(p.assign(&key("b"), &held(3)), Ok(ip(1)));
        let outside = Request {
            held: vec![Ipv4Addr::new(192, 0, 2, 1)],
            ..Request::default()
        };
        assert_eq!(p.assign(&key("c"), &outside), Ok(ip(2)));
    }

    #[test]
    fn ipv6_only_services_are_refused_and_release_what_they_held() {
        let mut p = pool(2);
        assert_eq!(p.assign(&key("a"), &Request::default()), Ok(ip(1)));
        let v6 = Request {
            ipv6_only: true,
            ..Request::default()
        };
        assert!(p.assign(&key("a"), &v6).unwrap_err().contains("IPv4 only"));
        assert_eq!(p.address_of(&key("a")), None);
    }

    #[test]
    fn announcers_spread_by_name_and_respect_local_traffic_policy() {
        let nodes: Vec<Announcer> = (1..=3)
            .map(|i| Announcer {
                name: format!("node-{i}"),
                ip: Ipv4Addr::new(10, 240, 0, 10 + i),
            })
            .collect();
        let none = BTreeSet::new();
        let chosen: BTreeSet<String> = (0..30)
            .filter_map(|i| announcer(&key(&format!("svc-{i}")), false, &nodes, &none))
            .map(|n| n.name.clone())
            .collect();
        assert_eq!(chosen.len(), 3, "30 Services spread over all 3 nodes: {chosen:?}");
        // the same Service always gets the same node, whatever the order nodes come in
        let mut reversed = nodes.clone();
        reversed.reverse();
        assert_eq!(
            announcer(&key("web"), false, &nodes, &none),
            announcer(&key("web"), false, &reversed, &none)
        );
        // Local: only nodes with a ready endpoint, and none when there is none
        assert_eq!(announcer(&key("web"), true, &nodes, &none), None);
        let on_two: BTreeSet<String> = ["node-2".to_owned()].into();
        assert_eq!(
            announcer(&key("web"), true, &nodes, &on_two).map(|n| n.name.as_str()),
            Some("node-2")
        );
        assert_eq!(announcer(&key("web"), false, &[], &none), None);
    }
}
