//! Renders operations (and whole rulesets) as `nft -f` input.

use std::fmt::Write;

use crate::diff::{Op, is_map};
use crate::ir::{Data, Element, Family, TABLE_NAME};

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
