//! Stale UDP conntrack entries. UDP has no connection end, so when endpoints change, flows the
//! kernel already NATed keep going to the old endpoint; and flows that arrived while a service
//! had no endpoints stay un-NATed. Both must be deleted for traffic to move.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use svcnet_core::service::model::Protocol;

use crate::model::{ProxyModel, ServicePort};

/// Conntrack entries to delete (all UDP): those matching every field that is set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Filter {
    pub orig_dst: Option<IpAddr>,
    pub orig_dport: u16,
    pub reply_src: Option<IpAddr>,
}

fn destinations(sp: &ServicePort) -> Vec<IpAddr> {
    sp.cluster_ips
        .iter()
        .chain(&sp.external_ips)
        .chain(&sp.load_balancer_ips)
        .copied()
        .collect()
}

/// The UDP entries made stale by the change from `old` to `new`.
pub fn stale_udp(old: &ProxyModel, new: &ProxyModel) -> Vec<Filter> {
    let mut out = BTreeSet::new();
    for (id, before) in old.ports.iter().filter(|(_, p)| p.protocol == Protocol::Udp) {
        let before_eps: BTreeSet<IpAddr> = before
            .cluster_endpoints(old.node_zone.as_deref())
            .iter()
            .map(|e| e.ip)
            .collect();
        let after = new.ports.get(id);
        let after_eps: BTreeSet<IpAddr> = after
            .map(|p| {
                p.cluster_endpoints(new.node_zone.as_deref())
                    .iter()
                    .map(|e| e.ip)
                    .collect()
            })
            .unwrap_or_default();
        for gone in before_eps.difference(&after_eps) {
            // a flow's reply comes from an endpoint of its destination's family
            for dst in destinations(before)
                .into_iter()
                .filter(|d| d.is_ipv4() == gone.is_ipv4())
            {
                out.insert(Filter {
                    orig_dst: Some(dst),
                    orig_dport: before.port,
                    reply_src: Some(*gone),
                });
            }
            if let Some(np) = before.node_port {
                out.insert(Filter {
                    orig_dst: None,
                    orig_dport: np,
                    reply_src: Some(*gone),
                });
            }
        }
    }
    for (id, after) in new.ports.iter().filter(|(_, p)| p.protocol == Protocol::Udp) {
        let had_none = old
            .ports
            .get(id)
            .is_none_or(|p| p.cluster_endpoints(old.node_zone.as_deref()).is_empty());
        if had_none && !after.cluster_endpoints(new.node_zone.as_deref()).is_empty() {
            for dst in destinations(after) {
                out.insert(Filter {
                    orig_dst: Some(dst),
                    orig_dport: after.port,
                    reply_src: None,
                });
            }
            if let Some(np) = after.node_port {
                out.insert(Filter {
                    orig_dst: None,
                    orig_dport: np,
                    reply_src: None,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// How stale entries are deleted.
#[derive(Clone, Debug)]
pub enum Cleaner {
    /// Over netlink, in the named namespace file (`/run/netns/NAME`) or the current one.
    Netlink(Option<std::path::PathBuf>),
    /// With the `conntrack` tool: its program and leading arguments.
    Tool(Vec<String>),
}

impl Cleaner {
    /// Deletes the entries `filters` match; returns how many filters failed.
    pub fn delete(&self, filters: &[Filter]) -> usize {
        match self {
            Cleaner::Tool(command) => delete_with_cli(command, filters),
            Cleaner::Netlink(_) if filters.is_empty() => 0,
            Cleaner::Netlink(netns) => match crate::netlink::socket::NfSocket::open(netns.as_deref()) {
                Ok(mut socket) => crate::netlink::conntrack::delete(&mut socket, filters),
                Err(_) => filters.len(),
            },
        }
    }
}

/// Deletes entries with the `conntrack` tool; `command` is its program and leading arguments.
/// Returns how many filters failed to run (a filter matching nothing is not a failure).
pub fn delete_with_cli(command: &[String], filters: &[Filter]) -> usize {
    let mut failed = 0;
    for f in filters {
        let mut args: Vec<String> = vec!["-D".into(), "-p".into(), "udp".into()];
        if f.orig_dst.or(f.reply_src).is_some_and(|a| a.is_ipv6()) {
            args.extend(["-f".into(), "ipv6".into()]);
        }
        if let Some(d) = f.orig_dst {
            args.extend(["--orig-dst".into(), d.to_string()]);
        }
        args.extend(["--orig-port-dst".into(), f.orig_dport.to_string()]);
        if let Some(s) = f.reply_src {
            args.extend(["--reply-src".into(), s.to_string()]);
        }
        let status = Command::new(&command[0])
            .args(&command[1..])
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        // conntrack exits 1 when nothing matched
        if !matches!(status.map(|s| s.code()), Ok(Some(0 | 1))) {
            failed += 1;
        }
    }
    failed
}
