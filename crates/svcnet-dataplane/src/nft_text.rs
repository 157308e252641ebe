//! Renders operations (and whole rulesets) as `nft -f` input.

use std::fmt::Write;

use crate::diff::{Op, is_map};
use crate::ir::{Data, Element, Family, RulesetView, TABLE_NAME};

/// Elements per `add element` statement, to keep lines reasonable.
const ELEMENTS_PER_STATEMENT: usize = 10_000;

fn table(f: Family) -> String {
    format!("{} {TABLE_NAME}", f.keyword())
}

/// An element as nft writes it: `key . key : data`.
pub fn element(e: &Element) -> String {
    let key: Vec<String> = e.key.iter().map(ToString::to_string).collect();
    let mut s = key.join(" . ");
    match &e.data {
        None => {}
        Some(Data::Verdict(v)) => write!(s, " : {v}").unwrap(),
        Some(Data::Atoms(atoms)) => {
            let d: Vec<String> = atoms.iter().map(ToString::to_string).collect();
            write!(s, " : {}", d.join(" . ")).unwrap();
        }
    }
    s
}

fn key_only(e: &Element) -> String {
    let key: Vec<String> = e.key.iter().map(ToString::to_string).collect();
    key.join(" . ")
}

/// One script that replaces our tables with `rs` (the same transaction as `diff::full`),
/// rendered without copying the elements.
pub fn replace_script(rs: &dyn RulesetView) -> String {
    let mut out = String::new();
    for f in rs.families() {
        for op in [Op::AddTable(f), Op::DeleteTable(f), Op::AddTable(f)] {
            render(&mut out, &op);
        }
        let sets = rs.sets(f);
        let chains = rs.chains(f);
        for (name, decl) in &sets {
            render(
                &mut out,
                &Op::AddSet {
                    family: f,
                    name: name.to_string(),
                    decl: (*decl).clone(),
                },
            );
        }
        for (name, chain) in &chains {
            render(
                &mut out,
                &Op::AddChain {
                    family: f,
                    name: name.to_string(),
                    hook: chain.hook.clone(),
                },
            );
        }
        for (name, chain) in &chains {
            for rule in &chain.rules {
                writeln!(out, "add rule {} {name} {rule}", table_name(f)).unwrap();
            }
        }
        for (name, _) in sets.iter().filter(|(_, d)| !d.dynamic) {
            let mut items: Vec<String> = Vec::new();
            let flush = |out: &mut String, items: &mut Vec<String>| {
                if !items.is_empty() {
                    writeln!(out, "add element {} {name} {{ {} }}", table_name(f), items.join(", ")).unwrap();
                    items.clear();
                }
            };
            rs.for_each_element(f, name, &mut |e| {
                items.push(element(e));
                if items.len() == ELEMENTS_PER_STATEMENT {
                    flush(&mut out, &mut items);
                }
            });
            flush(&mut out, &mut items);
        }
    }
    out
}

fn table_name(f: Family) -> String {
    table(f)
}

/// One script applying every operation in a single transaction.
pub fn script(ops: &[Op]) -> String {
    let mut out = String::new();
    for op in ops {
        render(&mut out, op);
    }
    out
}

fn render(out: &mut String, op: &Op) {
    match op {
        Op::AddTable(f) => writeln!(out, "add table {}", table(*f)),
        Op::DeleteTable(f) => writeln!(out, "delete table {}", table(*f)),
        Op::AddChain { family, name, hook } => match hook {
            Some(h) => writeln!(
                out,
                "add chain {} {name} {{ type {} hook {} priority {} ; }}",
                table(*family),
                h.chain_type,
                h.hook,
                h.priority
            ),
            None => writeln!(out, "add chain {} {name}", table(*family)),
        },
        Op::FlushChain { family, name } => writeln!(out, "flush chain {} {name}", table(*family)),
        Op::DeleteChain { family, name } => writeln!(out, "delete chain {} {name}", table(*family)),
        Op::AddRule { family, chain, rule } => writeln!(out, "add rule {} {chain} {rule}", table(*family)),
        Op::AddSet { family, name, decl } => {
            let mut body = format!("{} ;", decl.type_clause);
            if let Some(flags) = decl.flags {
                write!(body, " flags {flags} ;").unwrap();
            }
            if let Some(t) = decl.timeout_seconds {
                write!(body, " timeout {t}s ;").unwrap();
            }
            let kind = if is_map(decl) { "map" } else { "set" };
            writeln!(out, "add {kind} {} {name} {{ {body} }}", table(*family))
        }
        Op::FlushSet { family, name, is_map } => {
            writeln!(
                out,
                "flush {} {} {name}",
                if *is_map { "map" } else { "set" },
                table(*family)
            )
        }
        Op::DeleteSet { family, name, is_map } => {
            writeln!(
                out,
                "delete {} {} {name}",
                if *is_map { "map" } else { "set" },
                table(*family)
            )
        }
        Op::AddElements { family, set, elements } => {
            for chunk in elements.chunks(ELEMENTS_PER_STATEMENT) {
                let items: Vec<String> = chunk.iter().map(element).collect();
                writeln!(out, "add element {} {set} {{ {} }}", table(*family), items.join(", ")).unwrap();
            }
            Ok(())
        }
        Op::DeleteElements { family, set, elements } => {
            for chunk in elements.chunks(ELEMENTS_PER_STATEMENT) {
                let items: Vec<String> = chunk.iter().map(key_only).collect();
                writeln!(
                    out,
                    "delete element {} {set} {{ {} }}",
                    table(*family),
                    items.join(", ")
                )
                .unwrap();
            }
            Ok(())
        }
    }
    .expect("writing to a String cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff;
    use crate::ir::{Atom, Chain, Hook, Ruleset, Set, SetDecl, Table, Verdict};

    #[test]
    fn replace_script_equals_the_full_plan() {
        let mut table = Table::default();
        table.chains.insert(
            "pre".into(),
            Chain {
                hook: Some(Hook {
                    chain_type: "nat",
                    hook: "prerouting",
                    priority: -100,
                }),
                rules: vec!["ip daddr . meta l4proto . th dport vmap @m".into()],
            },
        );
        table.chains.insert(
            "lb".into(),
            Chain {
                hook: None,
                rules: vec!["accept".into()],
            },
        );
        let mut set = Set {
            decl: SetDecl {
                type_clause: "type ipv4_addr . inet_proto . inet_service : verdict".into(),
                flags: None,
                timeout_seconds: None,
                dynamic: false,
            },
            elements: Default::default(),
        };
        set.elements.insert(Element::verdict(
            vec![
                Atom::Addr("10.0.0.1".parse().unwrap()),
                Atom::Proto(svcnet_core::service::model::Protocol::Tcp),
                Atom::Port(80),
            ],
            Verdict::Goto("lb".into()),
        ));
        table.sets.insert("m".into(), set);
        let mut rs = Ruleset::default();
        rs.tables.insert(Family::Ip, table);
        assert_eq!(replace_script(&rs), script(&diff::full(&rs)));
        assert!(replace_script(&rs).contains("add element ip svcnet m { 10.0.0.1 . tcp . 80 : goto lb }"));
    }
}
