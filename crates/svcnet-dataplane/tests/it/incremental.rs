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
        ready_mask: u8,
        local_mask: u8,
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
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let sp = (0u8..6, 0u8..2);
    prop::collection::vec(
        prop_oneof![
            4 => (sp.clone(), 0u8..5, any::<u8>(), any::<u8>()).prop_map(|((s, p), n, ready_mask, local_mask)| Edit::Endpoints { s, p, n, ready_mask, local_mask }),
            1 => sp.clone().prop_map(|(s, p)| Edit::Remove { s, p }),
            1 => (sp.clone(), prop::option::of(1u8..4)).prop_map(|((s, p), timeout)| Edit::Affinity { s, p, timeout }),
            1 => (sp.clone(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|((s, p), etp_local, itp_local, node_port)| Edit::Policies { s, p, etp_local, itp_local, node_port }),
            1 => (sp.clone(), any::<bool>()).prop_map(|((s, p), on)| Edit::ExternalIp { s, p, on }),
            1 => (sp, any::<bool>()).prop_map(|((s, p), on)| Edit::Maglev { s, p, on }),
        ],
        1..40,
    )
}

fn ensure(m: &mut ProxyModel, s: u8, p: u8) -> &mut svcnet_dataplane::model::ServicePort {
    let proto = if p == 0 { Protocol::Tcp } else { Protocol::Udp };
    let ip = if s % 3 == 2 {
        format!("fd00:30::{s}")
    } else {
        format!("172.30.0.{}", s + 1)
    };
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
        } => {
            let v6 = s % 3 == 2;
            let sp = ensure(m, s, p);
            sp.endpoints = (0..n)
                .map(|i| {
                    let ip = if v6 {
                        format!("fd00:180::{}", i + 1)
                    } else {
                        format!("10.180.0.{}", i + 1)
                    };
                    let node = if local_mask & (1 << i) != 0 { NODE } else { "other" };
                    ep(&ip, 8080, node, ready_mask & (1 << i) != 0)
                })
                .collect();
        }
        Edit::Remove { s, p } => {
            let proto = if p == 0 { "tcp" } else { "udp" };
            m.ports.remove(&format!("ns1/svc{s}/{proto}/p{p}"));
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
            let v6 = s % 3 == 2;
            let ip = if v6 {
                format!("fd00:99::{s}")
            } else {
                format!("192.168.99.{}", s + 1)
            };
            ensure(m, s, p).external_ips = if on { vec![ip.parse().unwrap()] } else { vec![] };
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
    fn incremental_equals_whole_compile(edits in edits()) {
        let mut model = model();
        let mut compiled = CompiledModel::new(model.clone());
        for e in &edits {
            let before = compiled.ruleset();
            apply(&mut model, e);
            let changes = compiled.update(model.clone()).expect("node-wide inputs unchanged");
            let whole = compile(&model);
            prop_assert_eq!(&compiled.ruleset(), &whole, "after {:?}", e);
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
