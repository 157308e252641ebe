//! `svcnet lab node NODE --ip ADDR`: moves a node to another address on the lab's switch, as
//! a new DHCP lease or a migrated VM would. The node's `eth0` gets the new address before the
//! old one goes (so its routes stay), the other nodes route its pod CIDR to the new address,
//! and its kubelet, which follows the address, reports it in `Node.status.addresses`; proxies
//! and the load balancer follow the Node object from there.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, bail};
use ipnet::{IpNet, Ipv4Net};

use super::plan::{LAB_SUBNET, LOAD_BALANCER_POOL, LabPlan};
use super::shell::sysctl_in;
use crate::rtnl::Rtnl;

/// Why `ip` cannot be `node`'s new address in `plan`, if it cannot.
pub fn check(plan: &LabPlan, node: &str, ip: Ipv4Addr) -> Result<()> {
    let subnet: Ipv4Net = LAB_SUBNET.parse().expect("a valid subnet");
    let Some(current) = plan.nodes.iter().find(|n| n.name == node) else {
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "no node {node:?} in lab {:?} (its nodes: {})",
            plan.name,
            names.join(", ")
        );
    };
    if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
        bail!("{ip} is not a host address of the lab's switch subnet {subnet}");
    }
    if ip == current.ip {
        bail!("{node} already has the address {ip}");
    }
    if let Some(other) = plan.nodes.iter().find(|n| n.ip == ip) {
        bail!("{ip} is {}'s address", other.name);
    }
    if ip == plan.external_ip {
        bail!("{ip} is the external host's address");
    }
    if (LOAD_BALANCER_POOL.0..=LOAD_BALANCER_POOL.1).contains(&ip) {
        bail!(
            "{ip} is in the load-balancer pool {}-{}",
            LOAD_BALANCER_POOL.0,
            LOAD_BALANCER_POOL.1
        );
    }
    Ok(())
}

/// Gives `node` the address `ip` (checked with [`check`]) and returns the plan with it.
pub fn change(plan: &LabPlan, node: &str, ip: Ipv4Addr) -> Result<LabPlan> {
    check(plan, node, ip)?;
    let mut plan = plan.clone();
    let moved = plan.nodes.iter_mut().find(|n| n.name == node).expect("checked above");
    let old = moved.ip;
    let prefix = IpNet::from(Ipv4Net::new(ip, 24)?);
    let old_prefix = IpNet::from(Ipv4Net::new(old, 24)?);
    // with promote_secondaries, removing the old (primary) address keeps the new one and the
    // routes through the subnet, rather than flushing them
    sysctl_in(&moved.netns, "net.ipv4.conf.all.promote_secondaries=1")?;
    let mut rtnl = Rtnl::open_in(&moved.netns).with_context(|| format!("netlink in {}", moved.netns))?;
    rtnl.add_address("eth0", prefix)?;
    rtnl.delete_address("eth0", old_prefix)?;
    // the way out (set at build time) must survive; put it back if the kernel dropped it
    rtnl.replace_route("0.0.0.0/0".parse()?, Some(IpAddr::V4(plan.external_ip)), None)?;
    moved.ip = ip;
    let (cidr, netns) = (moved.pod_cidr, moved.netns.clone());
    for other in plan.nodes.iter().filter(|n| n.netns != netns) {
        Rtnl::open_in(&other.netns)?
            .replace_route(cidr.into(), Some(IpAddr::V4(ip)), None)
            .with_context(|| format!("routing {cidr} from {}", other.name))?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_free_host_addresses_of_the_switch_subnet_are_taken() {
        let plan = LabPlan::new("t", 2).unwrap();
        check(&plan, "node-1", "10.240.0.50".parse().unwrap()).unwrap();
        let refused = |node: &str, ip: &str| check(&plan, node, ip.parse().unwrap()).unwrap_err().to_string();
        assert!(refused("node-9", "10.240.0.50").contains("no node \"node-9\""));
        assert!(refused("node-1", "10.241.0.50").contains("not a host address"));
        assert!(refused("node-1", "10.240.0.255").contains("not a host address"));
        assert!(refused("node-1", "10.240.0.11").contains("already has"));
        assert!(refused("node-1", "10.240.0.12").contains("node-2's address"));
        assert!(refused("node-1", "10.240.0.100").contains("external host"));
        assert!(refused("node-1", "10.240.0.200").contains("load-balancer pool"));
    }
}
