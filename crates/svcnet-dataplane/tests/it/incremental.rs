//! Property: after any sequence of model edits, the incrementally maintained ruleset equals a
//! fresh compile of the same model, and every change it reports is consistent with the two.

use proptest::prelude::*;
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::compile::compile;
use svcnet_dataplane::diff;
use svcnet_dataplane::incremental::CompiledModel;
use svcnet_dataplane::model::{Policy, ProxyModel};

use crate::support::*;

#[derive(Clone, Debug)]
enum Edit {
    /// Set service `s` port `p` to `n` endpoints (0 removes nothing but empties it).
    Endpoints {
        s: u8,
        p: u8,
        n: u8,
        ready_mask: u32,
        local_mask: u32,
        /// Terminating endpoints: not ready, and serving when their ready bit is set.
        terminating_mask: u32,
    },
    Remove {
        s: u8,
        p: u8,
    },
    Affinity {
        s: u8,
        p: u8,
        timeout: Option<u8>,
    },
    Policies {
        s: u8,
        p: u8,
        etp_local: bool,
        itp_local: bool,
        node_port: bool,
    },
    ExternalIp {
        s: u8,
        p: u8,
        on: bool,
    },
    Maglev {
        s: u8,
        p: u8,
        on: bool,
    },
    /// A load-balancer address, with the first `ranges` source ranges.
    LoadBalancer {
        s: u8,
        p: u8,
        on: bool,
        ranges: u8,
    },
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    // port 0 is TCP, 1 UDP, 2 SCTP; service 1, 4 are dual-stack, 2, 5 IPv6
    let sp = (0u8..6, 0u8..3);
    prop::collection::vec(
        prop_oneof![
            // counts around 16 too: the largest served by the shared ClusterIP rules
            4 => (sp.clone(), prop_oneof![3 => 0u8..5, 1 => 15u8..19], prop_oneof![any::<u32>(), Just(u32::MAX)], any::<u32>(), prop_oneof![any::<u32>(), Just(0)]).prop_map(|((s, p), n, ready_mask, local_mask, terminating_mask)| Edit::Endpoints { s, p, n, ready_mask, local_mask, terminating_mask }),
            1 => sp.clone().prop_map(|(s, p)| Edit::Remove { s, p }),
            1 => (sp.clone(), prop::option::of(1u8..4)).prop_map(|((s, p), timeout)| Edit::Affinity { s, p, timeout }),
            1 => (sp.clone(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|((s, p), etp_local, itp_local, node_port)| Edit::Policies { s, p, etp_local, itp_local, node_port }),
            1 => (sp.clone(), any::<bool>()).prop_map(|((s, p), on)| Edit::ExternalIp { s, p, on }),
            1 => (sp.clone(), any::<bool>()).prop_map(|((s, p), on)| Edit::Maglev { s, p, on }),
            1 => (sp, any::<bool>(), 0u8..3).prop_map(|((s, p), on, ranges)| Edit::LoadBalancer { s, p, on, ranges }),
        ],
        1..40,
    )
}

fn protocol(p: u8) -> Protocol {
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][usize::from(p)]
}

/// Service `s`'s addresses of a kind: IPv4, IPv6 or both.
fn addresses(s: u8, v4: String, v6: String) -> Vec<String> {
    match s % 3 {
        0 => vec![v4],
        1 => vec![v4, v6],
        _ => vec![v6],
    }
}

fn ensure(m: &mut ProxyModel, s: u8, p: u8) -> &mut svcnet_dataplane::model::ServicePort {
    let proto = protocol(p);
    let ip = addresses(s, format!("172.30.0.{}", s + 1), format!("fd00:30::{s}")).join(",");
    let sp = port(&format!("svc{s}"), &format!("p{p}"), &ip, proto, 80, vec![]);
    let id = sp.id();
    m.ports.entry(id).or_insert(sp)
}

fn apply(m: &mut ProxyModel, e: &Edit) {
    match *e {
        Edit::Endpoints {
            s,
            p,
            n,
            ready_mask,
            local_mask,
            terminating_mask,
        } => {
            let sp = ensure(m, s, p);
            sp.endpoints = (0..n)
                .map(|i| {
                    // a dual-stack service's endpoints alternate between the families
                    let family = addresses(s, format!("10.180.0.{}", i + 1), format!("fd00:180::{}", i + 1));
                    let ip = &family[usize::from(i) % family.len()];
                    let node = if local_mask & (1 << i) != 0 { NODE } else { "other" };
                    let ready = ready_mask & (1 << i) != 0;
                    let mut e = ep(ip, 8080, node, ready);
                    if terminating_mask & (1 << i) != 0 {
                        (e.ready, e.serving, e.terminating) = (false, ready, true);
                    }
                    e
                })
                .collect();
            sp.endpoints.sort_by_key(|e| (e.ip, e.port));
        }
        Edit::Remove { s, p } => {
            let id = ensure(m, s, p).id();
            m.ports.remove(&id);
        }
        Edit::Affinity { s, p, timeout } => ensure(m, s, p).affinity_timeout_seconds = timeout.map(u32::from),
        Edit::Policies {
            s,
            p,
            etp_local,
            itp_local,
            node_port,
        } => {
            let sp = ensure(m, s, p);
            sp.external_traffic_policy = if etp_local { Policy::Local } else { Policy::Cluster };
            sp.internal_traffic_policy = if itp_local { Policy::Local } else { Policy::Cluster };
            sp.node_port = node_port.then_some(30000 + u16::from(s) * 2 + u16::from(p));
        }
        Edit::ExternalIp { s, p, on } => {
            let ips = addresses(s, format!("192.168.99.{}", s + 1), format!("fd00:99::{s}"));
            ensure(m, s, p).external_ips = if on {
                ips.iter().map(|ip| ip.parse().unwrap()).collect()
            } else {
                vec![]
            };
        }
        Edit::LoadBalancer { s, p, on, ranges } => {
            let ips = addresses(s, format!("1.2.3.{}", s + 1), format!("fd00:1::{s}"));
            let sp = ensure(m, s, p);
            sp.load_balancer_ips = if on {
                ips.iter().map(|ip| ip.parse().unwrap()).collect()
            } else {
                vec![]
            };
            let all = ["10.0.0.0/8", "fd00::/16", "203.0.113.0/24", "2001:db8::/32"];
            sp.load_balancer_source_ranges = all[..usize::from(ranges) * 2]
                .iter()
                .map(|r| r.parse().unwrap())
                .collect();
        }
        Edit::Maglev { s, p, on } => {
            use svcnet_dataplane::model::LoadBalancing;
            ensure(m, s, p).load_balancing = if on {
                LoadBalancing::Maglev
            } else {
                LoadBalancing::Random
            };
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn incremental_equals_whole_compile(edits in edits(), restricted in any::<bool>()) {
        let mut model = model();
        model.node_ips.push("fd00:192::2".parse().unwrap());
        model.cluster_cidrs.push("fd00:180::/48".parse().unwrap());
        model.service_cidrs.push("fd00:30::/112".parse().unwrap());
        if restricted {
            model.config.node_port_addresses = vec!["192.168.0.0/24".parse().unwrap(), "fd00:192::/64".parse().unwrap()];
        }
        let mut compiled = CompiledModel::new(model.clone());
        for e in &edits {
            let before = compiled.ruleset();
            apply(&mut model, e);
            let changes = compiled.update(model.clone()).expect("node-wide inputs unchanged");
            let whole = compile(&model);
            prop_assert_eq!(&compiled.ruleset(), &whole, "after {:?}", e);
            prop_assert_eq!(compiled.stats(), whole.stats(), "counts after {:?}", e);
            // a full replacement rendered from the compiled model says the same as one
            // rendered from the assembled ruleset
            // statements, with element lists split into one entry per element (their order
            // within a statement does not matter)
            let lines = |s: String| {
                let mut v: Vec<String> = Vec::new();
                for l in s.lines() {
                    match l.strip_prefix("add element ").and_then(|r| r.split_once(" { ")) {
                        Some((target, items)) => v.extend(
                            items.trim_end_matches(" }").split(", ").map(|e| format!("add element {target} {e}")),
                        ),
                        None => v.push(l.to_owned()),
                    }
                }
                v.sort();
                v
            };
            let (mine, theirs) = (lines(svcnet_dataplane::nft_text::replace_script(&compiled)), lines(svcnet_dataplane::nft_text::replace_script(&whole)));
            let only_mine: Vec<&String> = mine.iter().filter(|l| !theirs.contains(l)).collect();
            let only_theirs: Vec<&String> = theirs.iter().filter(|l| !mine.contains(l)).collect();
            prop_assert!(only_mine.is_empty() && only_theirs.is_empty() && mine.len() == theirs.len(), "from compiled only: {:?}\nfrom ruleset only: {:?}", only_mine, only_theirs);
            // what it reports is exactly the difference between the rulesets
            let expected = diff::compare(&before, &whole).expect("same tables");
            for (fam, c) in &changes {
                let want = &expected[fam];
                prop_assert_eq!(&c.added_chains, &want.added_chains);
                prop_assert_eq!(&c.removed_chains, &want.removed_chains);
                prop_assert_eq!(&c.changed_chains, &want.changed_chains);
                prop_assert_eq!(&c.added_sets, &want.added_sets);
                prop_assert_eq!(&c.removed_sets.keys().collect::<Vec<_>>(), &want.removed_sets.keys().collect::<Vec<_>>());
                let sorted = |m: &std::collections::BTreeMap<String, Vec<svcnet_dataplane::ir::Element>>, skip: &std::collections::BTreeMap<String, svcnet_dataplane::ir::SetDecl>| {
                    m.iter()
                        .filter(|(k, _)| !skip.contains_key(*k))
                        .map(|(k, v)| { let mut v = v.clone(); v.sort(); (k.clone(), v) })
                        .filter(|(_, v)| !v.is_empty())
                        .collect::<std::collections::BTreeMap<_, _>>()
                };
                prop_assert_eq!(sorted(&c.added_elements, &Default::default()), sorted(&want.added_elements, &Default::default()));
                prop_assert_eq!(sorted(&c.removed_elements, &want.removed_sets), sorted(&want.removed_elements, &want.removed_sets));
            }
        }
    }
}

#[test]
fn node_wide_changes_ask_for_a_fresh_compile() {
    let m = model();
    let mut c = CompiledModel::new(m.clone());
    let mut other = m;
    other.config.masquerade_all = true;
    assert!(c.update(other).is_err());
}
