//! Builds a lab's namespaces from its plan, and removes them (with every process inside).
//!
//! Nodes and the external host hang off a bridge in the switch namespace. Each node forwards,
//! routes every other node's pod CIDR to that node and everything else to the external host
//! (its way out); pods are added later by the kubelet. A dual-stack lab does the same over
//! IPv6 (addresses without duplicate detection, so they work at once).
//! Nothing is added to the root namespace.

use std::net::Ipv6Addr;

use anyhow::{Context, Result};

use super::plan::{LabPlan, netns_prefix};
use super::shell::{self, check_nftables_in, namespaces_with_prefix, remove_namespace, sysctl_in};
use crate::rtnl::Rtnl;

fn add_namespace(netns: &str) -> Result<Rtnl> {
    shell::add_namespace(netns)?;
    let mut rtnl = Rtnl::open_in(netns).with_context(|| format!("netlink in {netns}"))?;
    rtnl.set_up("lo").with_context(|| format!("in {netns}"))?;
    Ok(rtnl)
}

/// Puts a host (node or external) on the switch with `ip/24` (and `ipv6/64`, dual-stack) on
/// its `eth0`.
fn attach(plan: &LabPlan, netns: &str, port: &str, ip: &str, ipv6: Option<Ipv6Addr>) -> Result<()> {
    let mut host = add_namespace(netns)?;
    let mut switch = Rtnl::open_in(&plan.switch_netns).context("netlink in the switch")?;
    host.add_veth("eth0", port, &plan.switch_netns)?;
    switch.set_master(port, "br0")?;
    switch.set_up(port)?;
    host.add_address("eth0", format!("{ip}/24").parse()?)?;
    if let Some(v6) = ipv6 {
        host.add_address("eth0", format!("{v6}/64").parse()?)?;
    }
    host.set_up("eth0")?;
    Ok(())
}

/// Creates every namespace, link, address and route of the plan.
pub fn build(plan: &LabPlan) -> Result<()> {
    let mut switch =
        add_namespace(&plan.switch_netns).context("creating network namespaces (is this Linux, as root?)")?;
    switch.add_bridge("br0")?;
    switch.set_up("br0")?;
    let external = (&plan.external_ip.to_string(), plan.external_ipv6);
    attach(plan, &plan.external_netns, "p-external", external.0, external.1)?;
    for node in &plan.nodes {
        let v6 = node.ipv6.as_ref().map(|v| v.ip);
        attach(plan, &node.netns, &format!("p-{}", node.name), &node.ip.to_string(), v6)?;
        for sysctl in [
            "net.ipv4.ip_forward=1",
            // the pod gateway address sits on every pod's veth; replies must not be filtered
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            sysctl_in(&node.netns, sysctl)?;
        }
        // like a real node, a default route towards the outside (the external host): service
        // addresses are routed before the rules decide to reject or drop them
        let mut rtnl = Rtnl::open_in(&node.netns)?;
        rtnl.add_route("0.0.0.0/0".parse()?, Some(plan.external_ip.into()), None)?;
        if let Some(external) = plan.external_ipv6 {
            sysctl_in(&node.netns, "net.ipv6.conf.all.forwarding=1")?;
            rtnl.add_route("::/0".parse()?, Some(external.into()), None)?;
        }
        // the kernel's nftables support, checked once per node so a missing module is named
        check_nftables_in(&node.netns)
            .context("nftables is not usable in a network namespace (kernel module nf_tables?)")?;
    }
    for a in &plan.nodes {
        let mut rtnl = Rtnl::open_in(&a.netns)?;
        for b in plan.nodes.iter().filter(|b| b.name != a.name) {
            rtnl.add_route(b.pod_cidr.into(), Some(b.ip.into()), None)?;
            if let Some(v6) = &b.ipv6 {
                rtnl.add_route(v6.pod_cidr.into(), Some(v6.ip.into()), None)?;
            }
        }
    }
    Ok(())
}

/// Removes every namespace of lab `name` and kills the processes in them; returns how many
/// it removed (one it could not remove is logged with the reason). Works whether or not the lab's daemon is still running.
pub fn remove_all(name: &str) -> usize {
    let mut found = namespaces_with_prefix(&netns_prefix(name));
    // pods first, so their veths go before the nodes they hang off
    found.sort_by_key(|n| !n.contains("-pod-"));
    found.iter().filter(|netns| remove_namespace(netns)).count()
}
