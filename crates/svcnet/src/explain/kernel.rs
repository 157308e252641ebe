//! The kernel's side of an explanation: whether the node's `svcnet` table, read back over
//! netlink, equals the rules compiled from the API objects (programmed into a scratch
//! namespace and read back the same way), which kernel-filled affinity sets hold, and the
//! conntrack entries of the destination.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use serde::Serialize;
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::ir::{Family, Ruleset};
use svcnet_dataplane::model::{ProxyModel, ServicePort};
use svcnet_dataplane::netlink::consts::{NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END};
use svcnet_dataplane::netlink::dump::{self, TableDump};
use svcnet_dataplane::netlink::{Netlink, conntrack};
use svcnet_dataplane::syncer::Syncer;

use crate::netns;

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelCheck {
    /// The rules equal the compiled ones.
    pub rules_match: bool,
    /// What differs, each naming the chain or set (and the service, when an element names one).
    pub drift: Vec<String>,
    /// Conntrack entries for the destination: `protocol dst -> endpoint`, stale ones called out.
    pub conntrack: Vec<String>,
}

/// Opens our netlink backend where the node's rules are: the named namespace, or this one.
fn open(netns: Option<&str>) -> Result<Netlink> {
    Ok(match netns {
        Some(ns) => Netlink::in_netns(ns)?,
        None => Netlink::open(None)?,
    })
}

/// The addresses the kernel holds in each dynamic (session-affinity) set of `rules`.
pub fn dynamic_sets(
    netns: Option<&str>,
    rules: &Ruleset,
    family: Family,
) -> Result<BTreeMap<String, BTreeSet<IpAddr>>> {
    let mut nl = open(netns)?;
    let mut out = BTreeMap::new();
    if let Some(table) = rules.tables.get(&family) {
        for name in table.sets.iter().filter(|(_, s)| s.decl.dynamic).map(|(n, _)| n) {
            let members = dump::addresses(nl.socket(), family, name).unwrap_or_default();
            out.insert(name.clone(), members.into_iter().collect());
        }
    }
    Ok(out)
}

/// A network namespace of explain's own, removed when dropped.
struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

pub fn check(
    netns: Option<&str>,
    model: &ProxyModel,
    family: Family,
    protocol: Protocol,
    destination: SocketAddr,
    port: Option<&ServicePort>,
) -> Result<KernelCheck> {
    let mut node = open(netns)?;
    let live = dump::table(node.socket(), family).context("reading the node's svcnet table")?;
    let mut check = KernelCheck::default();
    match live {
        None => check.drift.push(format!(
            "the node has no {} svcnet table: is `svcnet proxy` running there?",
            family.keyword()
        )),
        Some(live) => {
            let scratch = Scratch(format!("svx-{}-explain", std::process::id()));
            let _ = netns::delete(&scratch.0);
            netns::create(&scratch.0).context("creating a scratch network namespace")?;
            let mut syncer = Syncer::new(Netlink::in_netns(&scratch.0)?);
            syncer
                .sync(model.clone(), 0)
                .context("programming the compiled rules into a scratch namespace")?;
            let mut reader = Netlink::in_netns(&scratch.0)?;
            let want = dump::table(reader.socket(), family)?.context("the scratch table")?;
            check.drift = differences(&want, &live, model, family);
            check.rules_match = check.drift.is_empty();
        }
    }
    let entries = conntrack::list(node.socket()).context("listing conntrack entries")?;
    let endpoints: BTreeSet<IpAddr> = port.iter().flat_map(|sp| sp.endpoints.iter().map(|e| e.ip)).collect();
    for e in entries.iter().filter(|e| {
        e.orig_dst == destination.ip() && e.orig_dport == destination.port() && e.protocol == protocol_number(protocol)
    }) {
        let stale = port.is_some() && !endpoints.contains(&e.reply_src) && e.reply_src != destination.ip();
        let note = if stale && protocol == Protocol::Udp {
            " (stale: no longer an endpoint; UDP packets of this flow still go there until the entry expires or is deleted)"
        } else if stale {
            " (no longer an endpoint)"
        } else {
            ""
        };
        check
            .conntrack
            .push(format!("{protocol:?} {destination} -> {}{note}", e.reply_src));
    }
    Ok(check)
}

fn protocol_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// What differs between the compiled table and the node's, compared as the kernel holds
/// them: chains and rules whole; set elements by key and data only (counters and timeouts
/// change on their own), and kernel-filled sets not at all.
fn differences(want: &TableDump, live: &TableDump, model: &ProxyModel, family: Family) -> Vec<String> {
    let mut out = Vec::new();
    // chains and sets nothing refers to any more wait there for the proxy's delayed deletion
    for (what, want_names, live_names) in [("chain", &want.chains, &live.chains), ("set", &want.sets, &live.sets)] {
        for name in want_names.keys().filter(|k| !live_names.contains_key(*k)) {
            out.push(format!("{what} {name} is missing on the node"));
        }
        for name in live_names.keys().filter(|k| !want_names.contains_key(*k)) {
            if referenced(live, name) {
                out.push(format!(
                    "{what} {name} is on the node, in use, but not in the compiled rules"
                ));
            }
        }
    }
    for (chain, rules) in &want.rules {
        if let Some(theirs) = live.rules.get(chain)
            && theirs != rules
        {
            out.push(format!(
                "chain {chain}: its rules differ ({} compiled, {} on the node)",
                rules.len(),
                theirs.len()
            ));
        }
    }
    for (set, elements) in &want.elements {
        let Some(theirs) = live.elements.get(set) else {
            continue;
        };
        if set.starts_with("affinity-") {
            continue;
        }
        let keyed = |list: &Vec<dump::RawAttrs>| -> BTreeSet<dump::RawAttrs> {
            list.iter()
                .map(|attrs| {
                    attrs
                        .iter()
                        .filter(|(k, _)| [NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END, NFTA_SET_ELEM_DATA].contains(k))
                        .cloned()
                        .collect()
                })
                .collect()
        };
        let (a, b) = (keyed(elements), keyed(theirs));
        for e in a.difference(&b) {
            out.push(format!(
                "set {set}: element {} is missing on the node",
                describe(set, e, model, family)
            ));
        }
        for e in b.difference(&a) {
            out.push(format!(
                "set {set}: element {} is on the node but not compiled",
                describe(set, e, model, family)
            ));
        }
    }
    out
}

/// Whether a rule or a map element of `table` names `object` (a chain or set name, which
/// the kernel stores as a NUL-terminated string inside the expression or verdict).
fn referenced(table: &TableDump, object: &str) -> bool {
    let mut needle = object.as_bytes().to_vec();
    needle.push(0);
    let holds = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle.as_slice());
    let in_rules = table
        .rules
        .values()
        .flatten()
        .flatten()
        .any(|expr| expr.attrs.iter().any(|(_, v)| holds(v)));
    let in_elements = table
        .elements
        .iter()
        .filter(|(set, _)| set.as_str() != object)
        .flat_map(|(_, elements)| elements)
        .any(|attrs| attrs.iter().any(|(_, v)| holds(v)));
    in_rules || in_elements
}

/// An element by the service it belongs to (its key starts with a service's address, or is
/// a node port), else by its key bytes.
fn describe(set: &str, attrs: &dump::RawAttrs, model: &ProxyModel, family: Family) -> String {
    let key = attrs
        .iter()
        .find(|(k, _)| *k == NFTA_SET_ELEM_KEY)
        .and_then(|(_, nested)| {
            svcnet_dataplane::netlink::wire::Attrs(nested)
                .next()
                .map(|a| a.value.to_vec())
        })
        .unwrap_or_default();
    let hex = || key.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let port_of = |sp: &ServicePort| format!("service {}/{} port {}", sp.namespace, sp.name, sp.port);
    if set.contains("nodeport") {
        // proto . port, each in a 4-byte register
        let Some(port) = key.get(4..6).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return format!("with key {}", hex());
        };
        let owner = model.ports.values().find(|sp| sp.node_port == Some(port));
        return match owner {
            Some(sp) => format!("for node port {port} ({})", port_of(sp)),
            None => format!("for node port {port}"),
        };
    }
    let width = if family == Family::Ip { 4 } else { 16 };
    let address = key.get(..width).map(|b| match family {
        Family::Ip => IpAddr::from(<[u8; 4]>::try_from(b).expect("4 bytes")),
        Family::Ip6 => IpAddr::from(<[u8; 16]>::try_from(b).expect("16 bytes")),
    });
    let Some(ip) = address else {
        return format!("with key {}", hex());
    };
    let owner = model
        .ports
        .values()
        .find(|sp| sp.cluster_ips.contains(&ip) || sp.external_ips.contains(&ip) || sp.load_balancer_ips.contains(&ip));
    match owner {
        Some(sp) => format!("for {ip} ({})", port_of(sp)),
        None => format!("for {ip} (key {})", hex()),
    }
}
