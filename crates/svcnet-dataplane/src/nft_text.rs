//! Renders operations (and whole rulesets) as `nft -f` input.

use std::fmt::{self, Write};

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

/// One script that replaces our tables with `rs` (the same transaction as `diff::full`).
pub fn replace_script(rs: &dyn RulesetView) -> String {
    let mut out = String::new();
    write_replace(rs, &mut out).expect("writing to a String cannot fail");
    out
}

/// Writes the replacement script to `out` as it goes, without copying the elements or holding
/// the whole script in memory.
pub fn write_replace(rs: &dyn RulesetView, out: &mut dyn Write) -> fmt::Result {
    for f in rs.families() {
        for op in [Op::AddTable(f), Op::DeleteTable(f), Op::AddTable(f)] {
            render(out, &op)?;
        }
        let sets = rs.sets(f);
        let chains = rs.chains(f);
        for (name, decl) in &sets {
            let kind = if is_map(decl) { "map" } else { "set" };
            writeln!(out, "add {kind} {} {name} {{ {} }}", table(f), set_body(decl))?;
        }
        for (name, chain) in &chains {
            writeln!(out, "add chain {} {name}{}", table(f), hook_body(chain.hook.as_ref()))?;
        }
        for (name, chain) in &chains {
            for rule in &chain.rules {
                writeln!(out, "add rule {} {name} {rule}", table(f))?;
            }
        }
        let mut result = Ok(());
        rs.for_each_element(f, &mut |name, elements| {
            let mut items: Vec<String> = Vec::with_capacity(ELEMENTS_PER_STATEMENT);
            for e in elements {
                items.push(element(e));
                if items.len() == ELEMENTS_PER_STATEMENT && result.is_ok() {
                    result = writeln!(out, "add element {} {name} {{ {} }}", table(f), items.join(", "));
                    items.clear();
                }
            }
            if !items.is_empty() && result.is_ok() {
                result = writeln!(out, "add element {} {name} {{ {} }}", table(f), items.join(", "));
            }
        });
        result?;
    }
    Ok(())
}

fn set_body(decl: &crate::ir::SetDecl) -> String {
    let mut body = format!("{} ;", decl.type_clause());
    if decl.counter {
        body.push_str(" counter ;");
    }
    if let Some(flags) = decl.flags() {
        body.push_str(&format!(" flags {flags} ;"));
    }
    if let Some(t) = decl.timeout_seconds {
        body.push_str(&format!(" timeout {t}s ;"));
    }
    body
}

fn hook_body(hook: Option<&crate::ir::Hook>) -> String {
    match hook {
        Some(h) => format!(" {{ type {} hook {} priority {} ; }}", h.chain_type, h.hook, h.priority),
        None => String::new(),
    }
}

/// One script applying every operation in a single transaction.
pub fn script(ops: &[Op]) -> String {
    let mut out = String::new();
    for op in ops {
        render(&mut out, op).expect("writing to a String cannot fail");
    }
    out
}

fn render(out: &mut dyn Write, op: &Op) -> fmt::Result {
    match op {
        Op::AddTable(f) => writeln!(out, "add table {}", table(*f)),
        Op::DeleteTable(f) => writeln!(out, "delete table {}", table(*f)),
        Op::AddChain { family, name, hook } => {
            writeln!(out, "add chain {} {name}{}", table(*family), hook_body(hook.as_ref()))
        }
        Op::FlushChain { family, name } => writeln!(out, "flush chain {} {name}", table(*family)),
        Op::DeleteChain { family, name } => writeln!(out, "delete chain {} {name}", table(*family)),
        Op::AddRule { family, chain, rule } => writeln!(out, "add rule {} {chain} {rule}", table(*family)),
        Op::AddSet { family, name, decl } => {
            let kind = if is_map(decl) { "map" } else { "set" };
            writeln!(out, "add {kind} {} {name} {{ {} }}", table(*family), set_body(decl))
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
                writeln!(out, "add element {} {set} {{ {} }}", table(*family), items.join(", "))?;
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
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff;
    use crate::ir::{Atom, Chain, DataType, Hook, Ruleset, Set, SetDecl, SetSpec, Table, Verdict};
    use crate::rule::{Field, Rule, Stmt, Terminal};

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
                rules: vec![Rule::new([Stmt::Vmap {
                    key: vec![Field::Daddr(Family::Ip), Field::L4Proto, Field::DestPort],
                    map: "m".into(),
                }])],
            },
        );
        table.chains.insert(
            "lb".into(),
            Chain {
                hook: None,
                rules: vec![Terminal::Accept.into()],
            },
        );
        let mut set = Set {
            decl: SetDecl::of(SetSpec::Type {
                key: vec![DataType::Ipv4Addr, DataType::InetProto, DataType::InetService],
                data: Some(DataType::Verdict),
            }),
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
