//! A pod's network: its own namespace, a veth to the node, an address from the node's pod
//! CIDR, and a default route through the node (a routed, bridge-free layout: every packet
//! between pods passes the node's stack, so the node's nftables rules see it).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Result, bail};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::lab::plan::{POD_GATEWAY, POD_GATEWAY_V6};
use crate::lab::shell::{add_namespace, remove_namespace};
use crate::rtnl::Rtnl;

/// The addresses of one node's pod CIDR, handed out lowest first (the first host address is
/// left out, as a gateway would be).
#[derive(Debug)]
pub struct IpPool {
    cidr: Ipv4Net,
    used: BTreeSet<Ipv4Addr>,
}

impl IpPool {
    pub fn new(cidr: Ipv4Net) -> Self {
        IpPool {
            cidr,
            used: BTreeSet::new(),
        }
    }

    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let ip = self.cidr.hosts().skip(1).find(|ip| !self.used.contains(ip))?;
        self.used.insert(ip);
        Some(ip)
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip);
    }
}

/// The node-side interface name of a pod's veth (at most 15 bytes, unique per pod).
pub fn host_veth(pod_netns: &str) -> String {
    let id: String = pod_netns.rsplit('-').next().unwrap_or("").chars().take(11).collect();
    format!("vp{id}")
}

/// Creates the pod's namespace and wires it to the node (over IPv6 too when `ipv6` is
/// given: the address on the pod's `eth0`, a default route through [`POD_GATEWAY_V6`]).
pub fn create(node_netns: &str, pod_netns: &str, ip: Ipv4Addr, ipv6: Option<Ipv6Addr>) -> Result<()> {
    if host_veth(pod_netns).len() > 15 {
        bail!("interface name for {pod_netns} is too long");
    }
    let veth = host_veth(pod_netns);
    add_namespace(pod_netns)?;
    let result = (|| -> Result<()> {
        let gateway: Ipv4Addr = POD_GATEWAY.parse()?;
        let host = |a: Ipv4Addr| IpNet::from(Ipv4Net::from(a));
        let mut pod = Rtnl::open_in(pod_netns)?;
        let mut node = Rtnl::open_in(node_netns)?;
        if ipv6.is_some() {
            // the pod's link-local address is usable at once, so its first packets go out
            crate::netns::set_sysctl(pod_netns, "net/ipv6/conf/default/accept_dad", "0")?;
        }
        pod.set_up("lo")?;
        node.add_veth(&veth, "eth0", pod_netns)?;
        node.set_up(&veth)?;
        node.add_address(&veth, host(gateway))?;
        node.add_route(host(ip), None, Some(&veth))?;
        pod.add_address("eth0", host(ip))?;
        pod.set_up("eth0")?;
        pod.add_route(host(gateway), None, Some("eth0"))?;
        pod.add_route("0.0.0.0/0".parse()?, Some(gateway.into()), Some("eth0"))?;
        if let Some(v6) = ipv6 {
            let gateway: Ipv6Addr = POD_GATEWAY_V6.parse()?;
            node.add_address(&veth, IpNet::V6(Ipv6Net::new(gateway, 64)?))?;
            node.add_route(IpNet::V6(Ipv6Net::from(v6)), None, Some(&veth))?;
            pod.add_address("eth0", IpNet::V6(Ipv6Net::from(v6)))?;
            pod.add_route("::/0".parse()?, Some(gateway.into()), Some("eth0"))?;
        }
        // unprivileged containers may listen on low ports in their own namespace, as container
        // runtimes allow (pods run as nobody unless they ask for root)
        crate::netns::set_sysctl(pod_netns, "net/ipv4/ip_unprivileged_port_start", "0")?;
        Ok(())
    })();
    if result.is_err() {
        remove_namespace(pod_netns);
    }
    result
}

/// Removes the pod's namespace (its veth goes with it) and kills anything left inside.
pub fn remove(pod_netns: &str) {
    remove_namespace(pod_netns);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_lowest_free_and_reuses_released() {
        let mut pool = IpPool::new("10.244.1.0/29".parse().unwrap());
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(
            got.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"]
        );
        pool.release("10.244.1.4".parse().unwrap());
        assert_eq!(pool.allocate(), Some("10.244.1.4".parse().unwrap()));
        assert_eq!(pool.allocate(), None);
    }

    #[test]
    fn veth_names_fit_the_kernel_limit() {
        assert_eq!(host_veth("svl-demo-pod-3f2a11eeaaaa"), "vp3f2a11eeaaa");
        assert!(host_veth("svl-abcdefghijkl-pod-0123456789ab").len() <= 15);
    }
}
