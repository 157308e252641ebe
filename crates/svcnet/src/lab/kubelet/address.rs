//! Follows a node's address: the IPv4 address on its `eth0`, read over rtnetlink every
//! [`PERIOD`] on a thread of its own, so the kubelet reports a change (`svcnet lab node --ip`)
//! in `Node.status.addresses` well within a second.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::sync::watch;

use crate::rtnl::Rtnl;

/// How often the address is read.
pub const PERIOD: Duration = Duration::from_millis(200);

/// The node's primary IPv4 address: the first the kernel lists.
fn primary(addresses: &[ipnet::IpNet]) -> Option<Ipv4Addr> {
    addresses.iter().find_map(|a| match a.addr() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    })
}

/// A receiver that changes when the node's address does; the thread ends when the receiver
/// is dropped or the namespace is gone.
pub fn follow(netns: String, now: Ipv4Addr) -> watch::Receiver<Ipv4Addr> {
    let (tx, rx) = watch::channel(now);
    std::thread::spawn(move || {
        let Ok(mut rtnl) = Rtnl::open_in(&netns) else { return };
        while !tx.is_closed() {
            std::thread::sleep(PERIOD);
            match rtnl.addresses("eth0") {
                Ok(addresses) => {
                    if let Some(ip) = primary(&addresses) {
                        tx.send_if_modified(|current| std::mem::replace(current, ip) != ip);
                    }
                }
                Err(_) => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ipv4_address_is_the_node_s() {
        let list: Vec<ipnet::IpNet> = vec![
            "fd00::1/64".parse().unwrap(),
            "10.240.0.50/24".parse().unwrap(),
            "10.240.0.11/24".parse().unwrap(),
        ];
        assert_eq!(primary(&list), Some(Ipv4Addr::new(10, 240, 0, 50)));
        assert_eq!(primary(&list[..1]), None);
    }
}
