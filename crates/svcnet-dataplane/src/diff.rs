//! The sync planner: the operations that take the kernel from one ruleset to another.
//!
//! A full plan recreates our tables in one transaction (deleting and re-adding the table is
//! atomic for packets, and NAT state lives in conntrack, so established connections survive).
//! An incremental plan touches only what changed: new sets and chains, rewritten chains,
//! element differences. Removed chains and sets are emptied at once and deleted by a later
//! sync (a chain a just-deleted map element referenced cannot always be deleted in the same
//! transaction).

use std::collections::{BTreeMap, BTreeSet};

use crate::ir::{Chain, Element, Family, Hook, Ruleset, SetDecl, Table};
use crate::rule::Rule;

/// One nftables operation on our tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    AddTable(Family),
    DeleteTable(Family),
    AddChain {
        family: Family,
        name: String,
        hook: Option<Hook>,
    },
    FlushChain {
        family: Family,
        name: String,
    },
    DeleteChain {
        family: Family,
        name: String,
    },
    AddRule {
        family: Family,
        chain: String,
        rule: Rule,
    },
    AddSet {
        family: Family,
        name: String,
        decl: SetDecl,
    },
    FlushSet {
        family: Family,
        name: String,
        is_map: bool,
    },
    DeleteSet {
        family: Family,
        name: String,
        is_map: bool,
    },
    AddElements {
        family: Family,
        set: String,
        elements: Vec<Element>,
    },
    DeleteElements {
        family: Family,
        set: String,
        elements: Vec<Element>,
    },
}

/// An object that is no longer wanted and waits to be deleted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stale {
    Chain(Family, String),
    Set { family: Family, name: String, is_map: bool },
}

pub fn is_map(decl: &SetDecl) -> bool {
    decl.is_map()
}

/// Recreates every table from scratch, atomically.
pub fn full(new: &Ruleset) -> Vec<Op> {
    let mut ops = Vec::new();
    for (family, table) in &new.tables {
        ops.push(Op::AddTable(*family));
        ops.push(Op::DeleteTable(*family));
        ops.push(Op::AddTable(*family));
        add_table_contents(&mut ops, *family, table, None);
    }
    ops
}

fn add_table_contents(ops: &mut Vec<Op>, family: Family, table: &Table, only: Option<&BTreeSet<String>>) {
    let wanted = |n: &String| only.is_none_or(|o| o.contains(n));
    for (name, set) in table.sets.iter().filter(|(n, _)| wanted(n)) {
        ops.push(Op::AddSet {
            family,
            name: name.clone(),
            decl: set.decl.clone(),
        });
    }
    for (name, chain) in table.chains.iter().filter(|(n, _)| wanted(n)) {
        ops.push(Op::AddChain {
            family,
            name: name.clone(),
            hook: chain.hook.clone(),
        });
    }
    for (name, chain) in table.chains.iter().filter(|(n, _)| wanted(n)) {
        for rule in &chain.rules {
            ops.push(Op::AddRule {
                family,
                chain: name.clone(),
                rule: rule.clone(),
            });
        }
    }
    for (name, set) in table.sets.iter().filter(|(n, _)| wanted(n)) {
        if !set.decl.dynamic && !set.elements.is_empty() {
            ops.push(Op::AddElements {
                family,
                set: name.clone(),
                elements: set.elements.iter().cloned().collect(),
            });
        }
    }
}

/// What changed in one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableChanges {
    pub added_sets: BTreeMap<String, SetDecl>,
    pub removed_sets: BTreeMap<String, SetDecl>,
    pub added_chains: BTreeMap<String, Chain>,
    /// Chains whose rules changed (their new content).
    pub changed_chains: BTreeMap<String, Chain>,
    pub removed_chains: BTreeSet<String>,
    pub added_elements: BTreeMap<String, Vec<Element>>,
    pub removed_elements: BTreeMap<String, Vec<Element>>,
}

impl TableChanges {
    pub fn is_empty(&self) -> bool {
        *self == TableChanges::default()
    }
}

/// Changes per table.
pub type Changes = BTreeMap<Family, TableChanges>;

/// The result of planning an incremental sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Incremental {
    pub ops: Vec<Op>,
    /// Objects emptied by this plan, to delete in a later sync.
    pub newly_stale: Vec<Stale>,
}

/// Compares two whole rulesets, or `None` when only a full sync can get from one to the other
/// (a table appeared, a base chain's hook or a set's type changed).
pub fn compare(old: &Ruleset, new: &Ruleset) -> Option<Changes> {
    let mut changes = Changes::new();
    for (family, nt) in &new.tables {
        let ot = old.tables.get(family)?;
        let mut c = TableChanges::default();
        for (name, set) in &nt.sets {
            match ot.sets.get(name) {
                Some(o) if o.decl != set.decl => return None,
                Some(_) => {}
                None => {
                    c.added_sets.insert(name.clone(), set.decl.clone());
                }
            }
            if set.decl.dynamic {
                continue;
            }
            let empty = BTreeSet::new();
            let old_elems = ot.sets.get(name).map_or(&empty, |s| &s.elements);
            let gone: Vec<Element> = old_elems.difference(&set.elements).cloned().collect();
            let added: Vec<Element> = set.elements.difference(old_elems).cloned().collect();
            if !gone.is_empty() {
                c.removed_elements.insert(name.clone(), gone);
            }
            if !added.is_empty() {
                c.added_elements.insert(name.clone(), added);
            }
        }
        for (name, set) in ot.sets.iter().filter(|(n, _)| !nt.sets.contains_key(*n)) {
            c.removed_sets.insert(name.clone(), set.decl.clone());
        }
        for (name, chain) in &nt.chains {
            match ot.chains.get(name) {
                Some(o) if o.hook != chain.hook => return None,
                Some(o) if o.rules == chain.rules => {}
                Some(_) => {
                    c.changed_chains.insert(name.clone(), chain.clone());
                }
                None => {
                    c.added_chains.insert(name.clone(), chain.clone());
                }
            }
        }
        c.removed_chains = ot
            .chains
            .keys()
            .filter(|n| !nt.chains.contains_key(*n))
            .cloned()
            .collect();
        changes.insert(*family, c);
    }
    Some(changes)
}

/// Turns changes into one transaction. `stale` lists the objects still in the kernel though
/// no longer wanted, each with whether its grace period is over; those `wanted` does not
/// claim again and whose grace is over are deleted. A stale set wanted again is recreated (nft
/// cannot re-declare an existing `typeof` map); a stale chain is reused.
pub fn plan(changes: &Changes, wanted: &dyn Fn(&Stale) -> bool, stale: &[(Stale, bool)]) -> Incremental {
    let mut out = Incremental::default();
    for (family, c) in changes {
        let family = *family;
        for (name, decl) in &c.added_sets {
            let is_map = is_map(decl);
            let lingering = Stale::Set {
                family,
                name: name.clone(),
                is_map,
            };
            if stale.iter().any(|(s, _)| *s == lingering) {
                out.ops.push(Op::DeleteSet {
                    family,
                    name: name.clone(),
                    is_map,
                });
            }
            out.ops.push(Op::AddSet {
                family,
                name: name.clone(),
                decl: decl.clone(),
            });
        }
        for (name, chain) in &c.added_chains {
            out.ops.push(Op::AddChain {
                family,
                name: name.clone(),
                hook: chain.hook.clone(),
            });
        }
        for name in c.changed_chains.keys() {
            out.ops.push(Op::FlushChain {
                family,
                name: name.clone(),
            });
        }
        for (name, chain) in c.added_chains.iter().chain(&c.changed_chains) {
            out.ops.extend(rules(family, name, &chain.rules));
        }
        for (set, elements) in &c.removed_elements {
            out.ops.push(Op::DeleteElements {
                family,
                set: set.clone(),
                elements: elements.clone(),
            });
        }
        for (set, elements) in &c.added_elements {
            out.ops.push(Op::AddElements {
                family,
                set: set.clone(),
                elements: elements.clone(),
            });
        }
        for name in &c.removed_chains {
            out.ops.push(Op::FlushChain {
                family,
                name: name.clone(),
            });
            out.newly_stale.push(Stale::Chain(family, name.clone()));
        }
        for (name, decl) in &c.removed_sets {
            let is_map = is_map(decl);
            if !decl.dynamic {
                out.ops.push(Op::FlushSet {
                    family,
                    name: name.clone(),
                    is_map,
                });
            }
            out.newly_stale.push(Stale::Set {
                family,
                name: name.clone(),
                is_map,
            });
        }
    }
    // chains first (they may reference sets), then sets
    let mut deletions: Vec<&Stale> = stale
        .iter()
        .filter(|(s, deletable)| *deletable && !wanted(s))
        .map(|(s, _)| s)
        .collect();
    deletions.sort_by_key(|s| matches!(s, Stale::Set { .. }));
    for s in deletions {
        out.ops.push(match s {
            Stale::Chain(family, name) => Op::DeleteChain {
                family: *family,
                name: name.clone(),
            },
            Stale::Set { family, name, is_map } => Op::DeleteSet {
                family: *family,
                name: name.clone(),
                is_map: *is_map,
            },
        });
    }
    out
}

/// Whether the ruleset (again) contains a stale object.
pub fn contains(rs: &Ruleset, s: &Stale) -> bool {
    match s {
        Stale::Chain(f, n) => rs.tables.get(f).is_some_and(|t| t.chains.contains_key(n)),
        Stale::Set { family, name, .. } => rs.tables.get(family).is_some_and(|t| t.sets.contains_key(name)),
    }
}

fn rules(family: Family, chain: &str, rules: &[Rule]) -> Vec<Op> {
    rules
        .iter()
        .map(|r| Op::AddRule {
            family,
            chain: chain.to_owned(),
            rule: r.clone(),
        })
        .collect()
}
