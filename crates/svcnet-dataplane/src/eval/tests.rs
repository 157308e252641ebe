//! The evaluator's own semantics on small hand-written tables (the compiled layout is checked
//! in the crate's `layout` tests, and against the kernel in the system tests).

use std::collections::BTreeSet;

use super::*;
use crate::ir::{Atom, Chain, DataType, Element, Hook, Set, SetDecl, SetSpec};
use crate::rule::{Field, Rule, Stmt};

fn hook(chain_type: &'static str, hook: &'static str, priority: i32) -> Option<Hook> {
    Some(Hook {
        chain_type,
        hook,
        priority,
    })
}

fn table(chains: Vec<(&str, Option<Hook>, Vec<Rule>)>, sets: Vec<(&str, Set)>) -> Ruleset {
    let mut t = Table::default();
    for (name, hook, rules) in chains {
        t.chains.insert(name.into(), Chain { hook, rules });
    }
    for (name, set) in sets {
        t.sets.insert(name.into(), set);
    }
    let mut rs = Ruleset::default();
    rs.tables.insert(Family::Ip, t);
    rs
}

fn packet(origin: Origin, dst: &str) -> Packet {
    Packet::new(
        origin,
        Protocol::Tcp,
        "10.0.0.1:40000".parse().unwrap(),
        dst.parse().unwrap(),
    )
}

fn host(addrs: &[&str]) -> Host {
    Host {
        local_addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        dynamic_sets: Default::default(),
    }
}

fn jump(c: &str) -> Stmt {
    Stmt::Terminal(Terminal::Jump(c.into()))
}

#[test]
fn a_jump_returns_and_a_goto_does_not() {
    let mark = |bit| Rule::new([Stmt::MarkOr(bit)]);
    let rs = table(
        vec![
            (
                "base",
                hook("filter", "prerouting", 0),
                vec![
                    Rule::new([jump("a")]),
                    mark(0x1),
                    Rule::new([Stmt::MarkHas(0x4), Stmt::Terminal(Terminal::Drop)]),
                ],
            ),
            (
                "a",
                None,
                vec![Rule::new([Stmt::Terminal(Terminal::Goto("b".into()))]), mark(0x2)],
            ),
            (
                "b",
                None,
                vec![mark(0x4), Rule::new([Stmt::Terminal(Terminal::Return)]), mark(0x8)],
            ),
        ],
        vec![],
    );
    let e = evaluate(&rs, &host(&[]), &packet(Origin::Arrives, "10.0.0.2:80"));
    assert_eq!(e.branches.len(), 1);
    let b = &e.branches[0];
    // base → a → goto b; b returns to base (not to a), whose next rule marks 0x1, then drop
    let path: Vec<(&str, usize)> = b.steps.iter().map(|s| (s.chain.as_str(), s.rule)).collect();
    assert_eq!(
        path,
        [("base", 0), ("a", 0), ("b", 0), ("b", 1), ("base", 1), ("base", 2)]
    );
    assert_eq!(b.fate, Fate::Dropped);
}

#[test]
fn random_choices_split_with_their_probabilities() {
    let key = vec![Field::Daddr(Family::Ip), Field::Random(4)];
    let mut elements = BTreeSet::new();
    // buckets 0, 1 and 2 lead to .7 and .8; bucket 3 is missing, so the rule does not match
    for (bucket, ep) in [(0, "10.1.0.7"), (1, "10.1.0.7"), (2, "10.1.0.8")] {
        elements.insert(Element::map(
            vec![Atom::Addr("10.0.0.2".parse().unwrap()), Atom::Int(bucket)],
            vec![Atom::Addr(ep.parse().unwrap()), Atom::Port(8080)],
        ));
    }
    let map = Set {
        decl: SetDecl::of(SetSpec::Typeof {
            key: key.clone(),
            data: vec![Field::Daddr(Family::Ip), Field::DestPort],
        }),
        elements,
    };
    let dnat = Stmt::DnatMap {
        family: Family::Ip,
        key,
        map: "m".into(),
    };
    let rs = table(
        vec![("nat", hook("nat", "prerouting", -100), vec![Rule::new([dnat])])],
        vec![("m", map)],
    );
    let e = evaluate(&rs, &host(&[]), &packet(Origin::Arrives, "10.0.0.2:80"));
    let outcomes = e.outcomes();
    let p = |dnat: Option<&str>| {
        outcomes[&Outcome {
            fate: Fate::Forwarded,
            dnat: dnat.map(|d| d.parse().unwrap()),
            masquerade: false,
        }]
    };
    assert_eq!(p(Some("10.1.0.7:8080")), 0.5);
    assert_eq!(p(Some("10.1.0.8:8080")), 0.25);
    assert_eq!(p(None), 0.25);
    assert_eq!(outcomes.len(), 3);
    // a packet of an established connection does not see NAT chains
    let mut later = packet(Origin::Arrives, "10.0.0.2:80");
    later.conntrack = Conntrack::Established {
        original: true,
        dnat: true,
    };
    let e = evaluate(&rs, &host(&[]), &later);
    assert!(e.branches.iter().all(|b| b.dnat.is_none() && b.steps.is_empty()));
}

#[test]
fn hooks_follow_the_route_after_dnat() {
    let dnat_to = |addr: &str| {
        Rule::new([Stmt::DnatTo {
            addr: addr.parse().unwrap(),
            port: 80,
        }])
    };
    let count = |bit| vec![Rule::new([Stmt::MarkOr(bit)])];
    let rs = table(
        vec![
            ("pre", hook("nat", "prerouting", -100), vec![dnat_to("192.168.0.2")]),
            ("out", hook("nat", "output", -100), vec![dnat_to("10.9.9.9")]),
            ("in", hook("filter", "input", 0), count(0x1)),
            ("fwd", hook("filter", "forward", 0), count(0x2)),
            (
                "post",
                hook("nat", "postrouting", 100),
                vec![Rule::new([Stmt::MarkHas(0x1), Stmt::Masquerade])],
            ),
        ],
        vec![],
    );
    let node = host(&["192.168.0.2"]);
    // arriving, DNATed to this host: input, delivered
    let e = evaluate(&rs, &node, &packet(Origin::Arrives, "10.0.0.2:80"));
    let chains: Vec<&str> = e.branches[0].steps.iter().map(|s| s.chain.as_str()).collect();
    assert_eq!(chains, ["pre", "in"]);
    assert_eq!(e.branches[0].fate, Fate::Delivered);
    // sent by this host, DNATed elsewhere: output, postrouting, forwarded, not masqueraded
    let e = evaluate(&rs, &node, &packet(Origin::Local, "192.168.0.2:80"));
    let b = &e.branches[0];
    let chains: Vec<&str> = b.steps.iter().map(|s| s.chain.as_str()).collect();
    assert_eq!(chains, ["out", "post"]);
    assert_eq!((b.fate, b.masquerade), (Fate::Forwarded, false));
    assert_eq!(b.dnat, Some("10.9.9.9:80".parse().unwrap()));
    assert!(
        !b.steps[1].matched && b.steps[1].note.contains("0x1"),
        "{:?}",
        b.steps[1]
    );
}

#[test]
fn dynamic_sets_are_what_the_host_says_and_updates_are_reported() {
    let set = Set {
        decl: SetDecl {
            dynamic: true,
            timeout_seconds: Some(10),
            ..SetDecl::of(SetSpec::Type {
                key: vec![DataType::Ipv4Addr],
                data: None,
            })
        },
        elements: BTreeSet::new(),
    };
    let rs = table(
        vec![(
            "base",
            hook("filter", "prerouting", 0),
            vec![
                Rule::new([
                    Stmt::Lookup {
                        key: vec![Field::Saddr(Family::Ip)],
                        set: "known".into(),
                    },
                    Stmt::Terminal(Terminal::Drop),
                ]),
                Rule::new([Stmt::UpdateSaddr {
                    family: Family::Ip,
                    set: "known".into(),
                }]),
            ],
        )],
        vec![("known", set)],
    );
    let p = packet(Origin::Arrives, "10.0.0.2:80");
    let first = evaluate(&rs, &host(&[]), &p);
    assert_eq!(first.branches[0].fate, Fate::Forwarded);
    assert_eq!(first.branches[0].updates, [("known".to_owned(), p.src)]);
    let mut again = host(&[]);
    again.dynamic_sets.insert("known".into(), [p.src].into());
    assert_eq!(evaluate(&rs, &again, &p).branches[0].fate, Fate::Dropped);
}
