//! What each statement of a rule does to a packet's walk: matches, rewrites, verdicts, and
//! random choices that split the walk into weighted branches.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::ir::{Atom, Atoms, Data, Element, Set, Table, Verdict};
use crate::rule::{Field, Rule, Stmt, Terminal};

use super::{Conntrack, Host, Packet, Walk};

pub(super) struct Context<'a> {
    pub table: &'a Table,
    pub host: &'a Host,
    pub packet: &'a Packet,
}

/// How a rule ended for one branch.
pub(super) enum RuleEnd {
    /// A statement did not match: on to the next rule.
    NoMatch,
    /// Every statement matched and none ended the chain: on to the next rule.
    Continue,
    /// A NAT statement: the chain accepts the packet.
    Nat,
    Terminal(Terminal),
}

enum Effect {
    Matched(Option<String>),
    NoMatch(String),
    End(RuleEnd, String),
}

/// The branches a rule splits the walk into, each with how the rule ended and a note on why.
pub(super) fn eval_rule(ctx: &Context, rule: &Rule, walk: Walk) -> Vec<(Walk, RuleEnd, String)> {
    let mut partial = vec![(walk, Vec::<String>::new())];
    let mut done = Vec::new();
    for stmt in &rule.0 {
        let mut next = Vec::new();
        for (walk, notes) in partial {
            for (walk, effect) in eval_stmt(ctx, stmt, walk) {
                let mut notes = notes.clone();
                match effect {
                    Effect::Matched(note) => {
                        notes.extend(note);
                        next.push((walk, notes));
                    }
                    Effect::NoMatch(why) => done.push((walk, RuleEnd::NoMatch, why)),
                    Effect::End(end, note) => {
                        notes.push(note);
                        done.push((walk, end, notes.join("; ")));
                    }
                }
            }
        }
        partial = next;
    }
    done.extend(
        partial
            .into_iter()
            .map(|(walk, notes)| (walk, RuleEnd::Continue, notes.join("; "))),
    );
    done
}

fn one(walk: Walk, effect: Effect) -> Vec<(Walk, Effect)> {
    vec![(walk, effect)]
}

fn test(walk: Walk, ok: bool, what: impl FnOnce() -> String) -> Vec<(Walk, Effect)> {
    let effect = if ok {
        Effect::Matched(None)
    } else {
        Effect::NoMatch(what())
    };
    one(walk, effect)
}

fn eval_stmt(ctx: &Context, stmt: &Stmt, mut walk: Walk) -> Vec<(Walk, Effect)> {
    let p = ctx.packet;
    match stmt {
        Stmt::Lookup { key, set } => {
            let Some(s) = ctx.table.sets.get(set) else {
                return one(walk, Effect::NoMatch(format!("no set @{set}")));
            };
            split(ctx, &walk, key, |atoms| member(ctx, set, s, atoms))
                .into_iter()
                .map(|(weight, shown, found)| {
                    let mut w = walk.clone();
                    w.probability *= weight;
                    let effect = if found {
                        Effect::Matched(None)
                    } else {
                        Effect::NoMatch(format!("{shown} is not in @{set}"))
                    };
                    (w, effect)
                })
                .collect()
        }
        Stmt::LookupRanges { key, set } => {
            let atoms = fixed_key(ctx, &walk, key);
            let found = ctx.table.sets.get(set).is_some_and(|s| {
                s.elements
                    .iter()
                    .any(|e| e.key.len() == atoms.len() && e.key.iter().zip(&atoms).all(|(range, a)| covers(range, a)))
            });
            test(walk, found, || format!("{} is in no range of @{set}", show(&atoms)))
        }
        Stmt::Vmap { key, map } => map_lookup(ctx, &walk, key, map, |_, shown, data| match data {
            Some(Data::Verdict(Verdict::Goto(chain))) => Effect::End(
                RuleEnd::Terminal(Terminal::Goto(chain.clone())),
                format!("{shown} in @{map}: goto {chain}"),
            ),
            Some(Data::Verdict(Verdict::Drop)) => {
                Effect::End(RuleEnd::Terminal(Terminal::Drop), format!("{shown} in @{map}: drop"))
            }
            _ => Effect::NoMatch(format!("{shown} is not in @{map}")),
        }),
        Stmt::InNets { field, nets, negate } => {
            let value = fixed_key(ctx, &walk, std::slice::from_ref(field));
            let inside = match value.first() {
                Some(Atom::Addr(a)) => nets.iter().any(|n| n.contains(a)),
                _ => false,
            };
            test(walk, inside != *negate, || {
                let how = if *negate { "is in" } else { "is not in" };
                format!("{field} {} {how} the listed networks", show(&value))
            })
        }
        Stmt::NotInNet { field, net } => {
            let value = fixed_key(ctx, &walk, std::slice::from_ref(field));
            let inside = matches!(value.first(), Some(Atom::Addr(a)) if net.contains(a));
            test(walk, !inside, || format!("{field} {} is in {net}", show(&value)))
        }
        Stmt::FibLocal { source } => {
            let addr = if *source { walk.src } else { walk.dst };
            let local = ctx.host.local_addresses.contains(&addr);
            let which = if *source { "source" } else { "destination" };
            test(walk, local, || format!("{which} {addr} is not an address of this host"))
        }
        Stmt::CtStateNew => test(walk, p.conntrack == Conntrack::New, || {
            "not the first packet of its connection".into()
        }),
        Stmt::CtOriginal => {
            let original = match p.conntrack {
                Conntrack::New => true,
                Conntrack::Established { original, .. } => original,
            };
            test(walk, original, || "a reply".into())
        }
        Stmt::CtStatusDnat => {
            let dnat = walk.dnat || matches!(p.conntrack, Conntrack::Established { dnat: true, .. });
            test(walk, dnat, || "the connection was not DNATed".into())
        }
        Stmt::MarkHas(bit) => {
            let has = walk.mark & bit != 0;
            test(walk, has, || format!("mark bit {bit:#x} is not set"))
        }
        Stmt::MarkOr(bit) => {
            walk.mark |= bit;
            one(walk, Effect::Matched(Some(format!("mark bit {bit:#x} set"))))
        }
        Stmt::MarkXor(bit) => {
            walk.mark ^= bit;
            one(walk, Effect::Matched(None))
        }
        Stmt::L4Proto(protocol) => test(walk, p.protocol == *protocol, || {
            format!("not {}", Atom::Proto(*protocol))
        }),
        Stmt::Masquerade => {
            walk.masquerade = true;
            one(walk, Effect::End(RuleEnd::Nat, "masquerade".into()))
        }
        Stmt::DnatMap { key, map, .. } => map_lookup(ctx, &walk, key, map, |w, shown, data| {
            match data.as_ref().and_then(address_and_port) {
                Some((addr, port)) => {
                    dnat(w, addr, port);
                    Effect::End(RuleEnd::Nat, format!("{shown} in @{map}: dnat to {}", w_dest(w)))
                }
                None => Effect::NoMatch(format!("{shown} is not in @{map}")),
            }
        }),
        Stmt::DnatTo { addr, port } => {
            dnat(&mut walk, *addr, *port);
            let note = format!("dnat to {}", w_dest(&walk));
            one(walk, Effect::End(RuleEnd::Nat, note))
        }
        Stmt::UpdateSaddr { set, .. } => {
            let src = walk.src;
            walk.updates.push((set.clone(), src));
            one(walk, Effect::Matched(Some(format!("{src} remembered in @{set}"))))
        }
        Stmt::RandomVmap(targets) => {
            let n = targets.len() as f64;
            targets
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let mut w = walk.clone();
                    w.probability /= n;
                    let note = format!("random {i} of {}: {t}", targets.len());
                    (w, Effect::End(RuleEnd::Terminal(t.clone()), note))
                })
                .collect()
        }
        Stmt::Terminal(t) => one(walk, Effect::End(RuleEnd::Terminal(t.clone()), t.to_string())),
    }
}

/// Each branch of looking `key` up in the map `map` (one per distinct answer, weighted), with
/// what `effect` makes of the data found there (`None`: no element).
fn map_lookup(
    ctx: &Context,
    walk: &Walk,
    key: &[Field],
    map: &str,
    effect: impl Fn(&mut Walk, &str, Option<Data>) -> Effect,
) -> Vec<(Walk, Effect)> {
    let Some(s) = ctx.table.sets.get(map) else {
        return one(walk.clone(), Effect::NoMatch(format!("no map @{map}")));
    };
    split(ctx, walk, key, |atoms| find(s, atoms).and_then(|e| e.data.clone()))
        .into_iter()
        .map(|(weight, shown, data)| {
            let mut w = walk.clone();
            w.probability *= weight;
            let e = effect(&mut w, &shown, data);
            (w, e)
        })
        .collect()
}

fn dnat(walk: &mut Walk, addr: IpAddr, port: u16) {
    walk.dst = addr;
    walk.dst_port = port;
    walk.dnat = true;
}

fn w_dest(walk: &Walk) -> std::net::SocketAddr {
    std::net::SocketAddr::new(walk.dst, walk.dst_port)
}

fn address_and_port(data: &Data) -> Option<(IpAddr, u16)> {
    match data {
        Data::Atoms(a) => match a.as_slice() {
            [Atom::Addr(addr), Atom::Port(port)] => Some((*addr, *port)),
            _ => None,
        },
        Data::Verdict(_) => None,
    }
}

/// A field's value for this packet; `None` for the random ones.
fn value(ctx: &Context, walk: &Walk, field: &Field) -> Option<Atom> {
    Some(match field {
        Field::Saddr(_) => Atom::Addr(walk.src),
        Field::Daddr(_) => Atom::Addr(walk.dst),
        Field::L4Proto => Atom::Proto(ctx.packet.protocol),
        Field::DestPort => Atom::Port(walk.dst_port),
        Field::Random(_) | Field::FlowHash { .. } => return None,
    })
}

/// A key without random parts (their place holds 0).
fn fixed_key(ctx: &Context, walk: &Walk, fields: &[Field]) -> Atoms {
    fields
        .iter()
        .map(|f| value(ctx, walk, f).unwrap_or(Atom::Int(0)))
        .collect()
}

/// Looks every value a key may take up with `lookup`, and sums the weights of the keys that
/// give the same answer. `numgen random mod N` takes each of its N values with weight 1/N;
/// the flow hash too, as the evaluator does not compute the kernel's jhash.
fn split<R: Ord>(
    ctx: &Context,
    walk: &Walk,
    fields: &[Field],
    mut lookup: impl FnMut(&Atoms) -> R,
) -> Vec<(f64, String, R)> {
    let mut keys: Vec<(f64, Atoms)> = vec![(1.0, Atoms::new())];
    for field in fields {
        match value(ctx, walk, field) {
            Some(atom) => keys.iter_mut().for_each(|(_, k)| k.push(atom.clone())),
            None => {
                let n = match field {
                    Field::Random(n) => *n,
                    Field::FlowHash { modulus, .. } => *modulus,
                    _ => 1,
                };
                keys = keys
                    .into_iter()
                    .flat_map(|(w, k)| {
                        (0..n).map(move |i| {
                            let mut k = k.clone();
                            k.push(Atom::Int(i));
                            (w / f64::from(n), k)
                        })
                    })
                    .collect();
            }
        }
    }
    let mut grouped: BTreeMap<R, (f64, String)> = BTreeMap::new();
    for (weight, key) in &keys {
        let answer = lookup(key);
        let entry = grouped.entry(answer).or_insert_with(|| (0.0, show_key(fields, key)));
        entry.0 += weight;
    }
    grouped.into_iter().map(|(r, (w, shown))| (w, shown, r)).collect()
}

/// A key as shown in notes: random parts as `random`.
fn show_key(fields: &[Field], key: &Atoms) -> String {
    let parts: Vec<String> = fields
        .iter()
        .zip(key)
        .map(|(f, a)| match f {
            Field::Random(n) => format!("random({a} of {n})"),
            Field::FlowHash { .. } => "hash".to_owned(),
            _ => a.to_string(),
        })
        .collect();
    parts.join(" . ")
}

fn show(atoms: &Atoms) -> String {
    atoms.iter().map(ToString::to_string).collect::<Vec<_>>().join(" . ")
}

/// The element with exactly this key.
fn find<'s>(set: &'s Set, key: &Atoms) -> Option<&'s Element> {
    let probe = Element {
        key: key.clone(),
        data: None,
    };
    set.elements.range(probe..).next().filter(|e| &e.key == key)
}

/// Set membership; a dynamic set's members are what the kernel put there.
fn member(ctx: &Context, name: &str, set: &Set, key: &Atoms) -> bool {
    if set.decl.dynamic {
        return match key.as_slice() {
            [Atom::Addr(a)] => ctx.host.dynamic_sets.get(name).is_some_and(|m| m.contains(a)),
            _ => false,
        };
    }
    find(set, key).is_some()
}

/// One part of an interval-set element against a packet's value.
fn covers(range: &Atom, value: &Atom) -> bool {
    match (range, value) {
        (Atom::Net(net), Atom::Addr(a)) => net.contains(a),
        (r, v) => r == v,
    }
}
