//! Reads one of our tables back from the kernel as plain data: chains, sets, their elements
//! and rules with their expressions. Kernel-assigned handles and use counts are left out, so
//! two tables built the same way compare equal whichever backend built them.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;

use super::consts::*;
use super::encode::family_code;
use super::socket::NfSocket;
use super::wire::{Attr, Attrs, Writer};
use crate::ir::{Family, TABLE_NAME};

/// An attribute list as the kernel returned it, in order: (type, value bytes).
pub type RawAttrs = Vec<(u16, Vec<u8>)>;

/// One expression of a rule: its name and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub name: String,
    pub attrs: RawAttrs,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableDump {
    /// Chain attributes (handle and use count left out), by name.
    pub chains: BTreeMap<String, RawAttrs>,
    /// Rules in order, by chain.
    pub rules: BTreeMap<String, Vec<Vec<Expr>>>,
    /// Set attributes (handle left out), by name.
    pub sets: BTreeMap<String, RawAttrs>,
    /// Each set's elements, sorted (the kernel's order depends on its hashing).
    pub elements: BTreeMap<String, Vec<RawAttrs>>,
}

/// Reads `ip svcnet` or `ip6 svcnet`; `None` when there is no such table.
pub fn table(socket: &mut NfSocket, family: Family) -> io::Result<Option<TableDump>> {
    let fam = family_code(family);
    let in_table = |w: &mut Writer, kind: u16| w.put_str(kind, TABLE_NAME);
    let tables = socket.dump(NFT_MSG_GETTABLE, fam, &|_| {})?;
    let exists = tables
        .iter()
        .any(|m| top(m).any(|a| a.kind == NFTA_TABLE_NAME && a.str() == TABLE_NAME));
    if !exists {
        return Ok(None);
    }
    let mut out = TableDump::default();
    for m in socket.dump(NFT_MSG_GETCHAIN, fam, &|w| in_table(w, NFTA_CHAIN_TABLE))? {
        if !is_ours(&m, NFTA_CHAIN_TABLE) {
            continue;
        }
        let name = string_attr(&m, NFTA_CHAIN_NAME);
        let attrs = keep(&m, &[NFTA_CHAIN_HANDLE, NFTA_CHAIN_USE]);
        out.chains.insert(name, attrs);
    }
    for m in socket.dump(NFT_MSG_GETRULE, fam, &|w| in_table(w, NFTA_RULE_TABLE))? {
        if !is_ours(&m, NFTA_RULE_TABLE) {
            continue;
        }
        let chain = string_attr(&m, NFTA_RULE_CHAIN);
        let exprs = top(&m)
            .filter(|a| a.kind == NFTA_RULE_EXPRESSIONS)
            .flat_map(|a| a.nested())
            .map(|elem| expr(&elem))
            .collect();
        out.rules.entry(chain).or_default().push(exprs);
    }
    for m in socket.dump(NFT_MSG_GETSET, fam, &|w| in_table(w, NFTA_SET_TABLE))? {
        if !is_ours(&m, NFTA_SET_TABLE) {
            continue;
        }
        let name = string_attr(&m, NFTA_SET_NAME);
        out.sets.insert(name, keep(&m, &[NFTA_SET_HANDLE]));
    }
    for name in out.sets.keys().cloned().collect::<Vec<_>>() {
        let mut elements = elements(socket, family, &name)?;
        elements.sort();
        out.elements.insert(name, elements);
    }
    Ok(Some(out))
}

/// The elements of one of our sets, each as its attribute list (key, data, expressions...).
pub fn elements(socket: &mut NfSocket, family: Family, set: &str) -> io::Result<Vec<RawAttrs>> {
    let mut out = Vec::new();
    for_each_element(socket, family, set, &mut |attrs| out.push(attrs))?;
    Ok(out)
}

/// Hands each element of one of our sets to `each` as it is decoded, so a large set is never
/// held decoded whole.
pub fn for_each_element(
    socket: &mut NfSocket,
    family: Family,
    set: &str,
    each: &mut dyn FnMut(RawAttrs),
) -> io::Result<()> {
    let answers = socket.dump(NFT_MSG_GETSETELEM, family_code(family), &|w| {
        w.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE_NAME);
        w.put_str(NFTA_SET_ELEM_LIST_SET, set);
    })?;
    for m in answers {
        for list in top(&m).filter(|a| a.kind == NFTA_SET_ELEM_LIST_ELEMENTS) {
            for elem in list.nested() {
                each(elem.nested().map(|a| (a.kind, a.value.to_vec())).collect());
            }
        }
    }
    Ok(())
}

/// The addresses in one of our address sets (the kernel-filled session-affinity sets).
pub fn addresses(socket: &mut NfSocket, family: Family, set: &str) -> io::Result<Vec<std::net::IpAddr>> {
    let mut out = Vec::new();
    for element in elements(socket, family, set)? {
        let Some((_, key)) = element.iter().find(|(kind, _)| *kind == NFTA_SET_ELEM_KEY) else {
            continue;
        };
        let Some(value) = Attrs(key).find(|a| a.kind == NFTA_DATA_VALUE) else {
            continue;
        };
        if let Ok(octets) = <[u8; 4]>::try_from(value.value) {
            out.push(std::net::IpAddr::from(octets));
        } else if let Ok(octets) = <[u8; 16]>::try_from(value.value) {
            out.push(std::net::IpAddr::from(octets));
        }
    }
    Ok(out)
}

fn top(message: &[u8]) -> Attrs<'_> {
    Attrs(message.get(4..).unwrap_or(&[]))
}

fn is_ours(message: &[u8], table_attr: u16) -> bool {
    top(message).any(|a| a.kind == table_attr && a.str() == TABLE_NAME)
}

fn string_attr(message: &[u8], kind: u16) -> String {
    top(message)
        .find(|a| a.kind == kind)
        .map(|a| a.str())
        .unwrap_or_default()
}

fn keep(message: &[u8], volatile: &[u16]) -> RawAttrs {
    top(message)
        .filter(|a| !volatile.contains(&a.kind))
        .map(|a| (a.kind, a.value.to_vec()))
        .collect()
}

fn expr(elem: &Attr<'_>) -> Expr {
    let mut name = String::new();
    let mut attrs = Vec::new();
    for a in elem.nested() {
        match a.kind {
            NFTA_EXPR_NAME => name = a.str(),
            NFTA_EXPR_DATA => attrs = a.nested().map(|d| (d.kind, d.value.to_vec())).collect(),
            _ => {}
        }
    }
    Expr { name, attrs }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn write_attrs(f: &mut fmt::Formatter<'_>, attrs: &RawAttrs) -> fmt::Result {
    for (kind, value) in attrs {
        write!(f, " {kind}={}", hex(value))?;
    }
    Ok(())
}

/// One line per object, attributes as `type=hex`: for reading differences.
impl fmt::Display for TableDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, attrs) in &self.sets {
            write!(f, "set {name}:")?;
            write_attrs(f, attrs)?;
            writeln!(f)?;
            for e in self.elements.get(name).into_iter().flatten() {
                write!(f, "  element")?;
                write_attrs(f, e)?;
                writeln!(f)?;
            }
        }
        for (name, attrs) in &self.chains {
            write!(f, "chain {name}:")?;
            write_attrs(f, attrs)?;
            writeln!(f)?;
            for rule in self.rules.get(name).into_iter().flatten() {
                write!(f, "  rule")?;
                for e in rule {
                    write!(f, " [{}", e.name)?;
                    write_attrs(f, &e.attrs)?;
                    write!(f, "]")?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}
