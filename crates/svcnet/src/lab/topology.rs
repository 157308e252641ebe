//! Builds a lab's namespaces from its plan, and removes them (with every process inside).
//!
//! Nodes and the external host hang off a bridge in the switch namespace. Each node forwards,
//! routes every other node's pod CIDR to that node and everything else to the external host
//! (its way out); pods are added later by the kubelet.
//! Nothing is added to the root namespace.

use anyhow::{Context, Result};

use super::plan::{LabPlan, netns_prefix};
use super::shell::{check_nftables_in, namespaces_with_prefix, remove_namespace, run, run_in, sysctl_in};

fn add_namespace(netns: &str) -> Result<()> {
    run(&["ip", "netns", "add", netns])?;
    run_in(netns, &["ip", "link", "set", "lo", "up"])?;
    Ok(())
}

/// Puts a host (node or external) on the switch with `ip/24` on its `eth0`.
fn attach(plan: &LabPlan, netns: &str, port: &str, ip: &str) -> Result<()> {
    add_namespace(netns)?;
    run(&[
        "ip",
        "link",
        "add",
        "eth0",
        "netns",
        netns,
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        &plan.switch_netns,
    ])?;
    run_in(&plan.switch_netns, &["ip", "link", "set", port, "master", "br0", "up"])?;
    run_in(netns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
    run_in(netns, &["ip", "link", "set", "eth0", "up"])?;
    Ok(())
}

/// Creates every namespace, link, address and route of the plan.
pub fn build(plan: &LabPlan) -> Result<()> {
    add_namespace(&plan.switch_netns).context("creating network namespaces (is this Linux, as root?)")?;
    run_in(&plan.switch_netns, &["ip", "link", "add", "br0", "type", "bridge"])?;
    run_in(&plan.switch_netns, &["ip", "link", "set", "br0", "up"])?;
    attach(plan, &plan.external_netns, "p-external", &plan.external_ip.to_string())?;
    for node in &plan.nodes {
        attach(plan, &node.netns, &format!("p-{}", node.name), &node.ip.to_string())?;
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
        run_in(
            &node.netns,
            &["ip", "route", "add", "default", "via", &plan.external_ip.to_string()],
        )?;
        // the kernel's nftables support, checked once per node so a missing module is named
        check_nftables_in(&node.netns)
            .context("nftables is not usable in a network namespace (kernel module nf_tables?)")?;
    }
    for a in &plan.nodes {
        for b in plan.nodes.iter().filter(|b| b.name != a.name) {
            run_in(
                &a.netns,
                &["ip", "route", "add", &b.pod_cidr.to_string(), "via", &b.ip.to_string()],
            )?;
        }
    }
    Ok(())
}

/// Removes every namespace of lab `name` and kills the processes in them; returns how many
/// namespaces there were. Works whether or not the lab's daemon is still running.
pub fn remove_all(name: &str) -> usize {
    let mut found = namespaces_with_prefix(&netns_prefix(name));
    // pods first, so their veths go before the nodes they hang off
    found.sort_by_key(|n| !n.contains("-pod-"));
    for netns in &found {
        remove_namespace(netns);
    }
    found.len()
}
