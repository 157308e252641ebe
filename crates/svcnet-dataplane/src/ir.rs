//! The ruleset IR: what the compiler produces and the backends apply. Tables hold base and
//! regular chains, sets and maps; elements are typed values so backends can encode them
//! without parsing. Everything is ordered (`BTreeMap`/`BTreeSet`), so output is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use svcnet_core::ip::IpFamily;
use svcnet_core::service::model::Protocol;

use crate::rule::{Field, Key, Rule};

/// The name of our tables (`ip svcnet`, `ip6 svcnet`); we never touch any other table.
pub const TABLE_NAME: &str = "svcnet";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ip,
    Ip6,
}

impl Family {
    pub fn of(f: IpFamily) -> Self {
        match f {
            IpFamily::IPv4 => Family::Ip,
            IpFamily::IPv6 => Family::Ip6,
        }
    }

    /// The nft family keyword, which is also the address-expression keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }

    pub fn addr_type(self) -> &'static str {
        match self {
            Family::Ip => "ipv4_addr",
            Family::Ip6 => "ipv6_addr",
        }
    }

    pub fn ip_family(self) -> IpFamily {
        match self {
            Family::Ip => IpFamily::IPv4,
            Family::Ip6 => IpFamily::IPv6,
        }
    }
}

/// A base chain's hook.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hook {
    /// `nat` or `filter`.
    pub chain_type: &'static str,
    pub hook: &'static str,
    pub priority: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    pub hook: Option<Hook>,
    pub rules: Vec<Rule>,
}

/// One value inside a set element.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    Addr(IpAddr),
    /// An address range (only in interval sets).
    Net(IpNet),
    Proto(Protocol),
    Port(u16),
    Int(u32),
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Addr(a) => write!(f, "{a}"),
            Atom::Net(n) => write!(f, "{n}"),
            Atom::Proto(p) => f.write_str(match p {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
            }),
            Atom::Port(p) => write!(f, "{p}"),
            Atom::Int(i) => write!(f, "{i}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Goto(String),
    Drop,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Goto(c) => write!(f, "goto {c}"),
            Verdict::Drop => f.write_str("drop"),
        }
    }
}

/// The atoms of a key or of map data, stored inline (keys have at most four).
pub type Atoms = smallvec::SmallVec<[Atom; 4]>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Data {
    Verdict(Verdict),
    Atoms(smallvec::SmallVec<[Atom; 2]>),
}

/// A set element (key) or map element (key and data).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    pub key: Atoms,
    pub data: Option<Data>,
}

impl Element {
    // Atoms are collected rather than converted from the Vec: a Vec that grew past four
    // atoms' capacity would stay on the heap, one allocation per element.
    pub fn key(key: Vec<Atom>) -> Self {
        Element {
            key: key.into_iter().collect(),
            data: None,
        }
    }

    pub fn verdict(key: Vec<Atom>, v: Verdict) -> Self {
        Element {
            key: key.into_iter().collect(),
            data: Some(Data::Verdict(v)),
        }
    }

    pub fn map(key: Vec<Atom>, data: Vec<Atom>) -> Self {
        Element {
            key: key.into_iter().collect(),
            data: Some(Data::Atoms(data.into_iter().collect())),
        }
    }
}

/// The type of one part of a set key, or of map data, as nft names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataType {
    Ipv4Addr,
    Ipv6Addr,
    InetProto,
    InetService,
    Verdict,
}

impl DataType {
    pub fn addr(family: Family) -> Self {
        match family {
            Family::Ip => DataType::Ipv4Addr,
            Family::Ip6 => DataType::Ipv6Addr,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            DataType::Ipv4Addr => "ipv4_addr",
            DataType::Ipv6Addr => "ipv6_addr",
            DataType::InetProto => "inet_proto",
            DataType::InetService => "inet_service",
            DataType::Verdict => "verdict",
        }
    }
}

/// What a set holds: declared by type names, or by the fields it is looked up with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetSpec {
    /// `type a . b` (a set) or `type a . b : verdict` (a verdict map).
    Type { key: Vec<DataType>, data: Option<DataType> },
    /// `typeof f . g : h . i`: a map whose key and data are typed like these fields.
    Typeof { key: Vec<Field>, data: Vec<Field> },
}

/// A set or map declaration (its elements are kept apart so they can be diffed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetDecl {
    pub spec: SetSpec,
    /// Elements may be address ranges.
    pub interval: bool,
    pub timeout_seconds: Option<u32>,
    /// Dynamic sets are filled by the kernel; the proxy never writes their elements.
    pub dynamic: bool,
    /// Each element counts the packets and bytes that matched it.
    pub counter: bool,
}

impl SetDecl {
    pub fn of(spec: SetSpec) -> Self {
        SetDecl {
            spec,
            interval: false,
            timeout_seconds: None,
            dynamic: false,
            counter: false,
        }
    }

    pub fn is_map(&self) -> bool {
        match &self.spec {
            SetSpec::Type { data, .. } => data.is_some(),
            SetSpec::Typeof { .. } => true,
        }
    }

    /// The type clause in nft syntax, e.g. `type ipv4_addr . inet_proto . inet_service : verdict`.
    pub fn type_clause(&self) -> String {
        match &self.spec {
            SetSpec::Type { key, data } => {
                let key: Vec<&str> = key.iter().map(|t| t.keyword()).collect();
                match data {
                    Some(d) => format!("type {} : {}", key.join(" . "), d.keyword()),
                    None => format!("type {}", key.join(" . ")),
                }
            }
            SetSpec::Typeof { key, data } => format!("typeof {} : {}", Key(key), Key(data)),
        }
    }

    /// The flags clause in nft syntax, if any.
    pub fn flags(&self) -> Option<String> {
        let mut flags = Vec::new();
        if self.interval {
            flags.push("interval");
        }
        if self.dynamic {
            flags.push("dynamic");
        }
        if self.timeout_seconds.is_some() {
            flags.push("timeout");
        }
        (!flags.is_empty()).then(|| flags.join(","))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub decl: SetDecl,
    pub elements: BTreeSet<Element>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub chains: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, Set>,
}

/// The complete desired state: one table per address family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub tables: BTreeMap<Family, Table>,
}

impl Ruleset {
    /// Counts of chains, rules, sets and elements, for logs and benchmarks.
    pub fn stats(&self) -> RulesetStats {
        let mut s = RulesetStats::default();
        for t in self.tables.values() {
            s.chains += t.chains.len();
            s.rules += t.chains.values().map(|c| c.rules.len()).sum::<usize>();
            s.sets += t.sets.len();
            s.elements += t.sets.values().map(|x| x.elements.len()).sum::<usize>();
        }
        s
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RulesetStats {
    pub chains: usize,
    pub rules: usize,
    pub sets: usize,
    pub elements: usize,
}

/// Read access to a complete ruleset, however it is stored, so backends can render a full
/// replacement without first assembling a `Ruleset` copy.
pub trait RulesetView {
    fn families(&self) -> Vec<Family>;
    fn chains(&self, family: Family) -> Vec<(&str, &Chain)>;
    fn sets(&self, family: Family) -> Vec<(&str, &SetDecl)>;
    /// Calls `visit` with every element of every set, in groups of one set's elements; a set
    /// may come in several groups, in any order.
    fn for_each_element(&self, family: Family, visit: &mut dyn FnMut(&str, &mut dyn Iterator<Item = &Element>));
}

impl RulesetView for Ruleset {
    fn families(&self) -> Vec<Family> {
        self.tables.keys().copied().collect()
    }

    fn chains(&self, family: Family) -> Vec<(&str, &Chain)> {
        self.tables[&family]
            .chains
            .iter()
            .map(|(n, c)| (n.as_str(), c))
            .collect()
    }

    fn sets(&self, family: Family) -> Vec<(&str, &SetDecl)> {
        self.tables[&family]
            .sets
            .iter()
            .map(|(n, s)| (n.as_str(), &s.decl))
            .collect()
    }

    fn for_each_element(&self, family: Family, visit: &mut dyn FnMut(&str, &mut dyn Iterator<Item = &Element>)) {
        for (name, set) in &self.tables[&family].sets {
            if !set.elements.is_empty() {
                visit(name, &mut set.elements.iter());
            }
        }
    }
}
