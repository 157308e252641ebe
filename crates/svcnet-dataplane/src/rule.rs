//! Typed rule statements: what the compiler puts into chains. Each statement renders as nft
//! syntax (the text backend and dumps) and is encoded as nf_tables expressions by the netlink
//! backend, so neither backend parses the other's output.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use svcnet_core::service::model::Protocol;

use crate::ir::Family;

/// A packet field a rule reads (one part of a lookup key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `ip saddr` / `ip6 saddr`
    Saddr(Family),
    /// `ip daddr` / `ip6 daddr`
    Daddr(Family),
    /// `meta l4proto`
    L4Proto,
    /// `th dport`
    DestPort,
    /// `numgen random mod N`
    Random(u32),
    /// `jhash ip saddr . th sport . ip daddr . th dport mod N seed S`: the flow's bucket.
    FlowHash { family: Family, modulus: u32, seed: u32 },
}

impl Field {
    /// Bytes the field occupies in a register (and in a set key).
    pub fn size(&self) -> usize {
        match self {
            Field::Saddr(Family::Ip) | Field::Daddr(Family::Ip) => 4,
            Field::Saddr(Family::Ip6) | Field::Daddr(Family::Ip6) => 16,
            Field::L4Proto => 1,
            Field::DestPort => 2,
            Field::Random(_) | Field::FlowHash { .. } => 4,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Saddr(fam) => write!(f, "{} saddr", fam.keyword()),
            Field::Daddr(fam) => write!(f, "{} daddr", fam.keyword()),
            Field::L4Proto => f.write_str("meta l4proto"),
            Field::DestPort => f.write_str("th dport"),
            Field::Random(n) => write!(f, "numgen random mod {n}"),
            Field::FlowHash { family, modulus, seed } => {
                let fam = family.keyword();
                write!(
                    f,
                    "jhash {fam} saddr . th sport . {fam} daddr . th dport mod {modulus} seed {seed:#x}"
                )
            }
        }
    }
}

/// A concatenation of fields, written `a . b . c`.
pub struct Key<'a>(pub &'a [Field]);

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, self.0, " . ")
    }
}

fn write_joined<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T], separator: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Where a rule ends, if it ends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Terminal {
    Jump(String),
    Goto(String),
    Return,
    Drop,
    Accept,
    /// ICMP port unreachable (TCP clients see "connection refused").
    Reject,
}

impl fmt::Display for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Terminal::Jump(c) => write!(f, "jump {c}"),
            Terminal::Goto(c) => write!(f, "goto {c}"),
            Terminal::Return => f.write_str("return"),
            Terminal::Drop => f.write_str("drop"),
            Terminal::Accept => f.write_str("accept"),
            Terminal::Reject => f.write_str("reject"),
        }
    }
}

/// One statement of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stmt {
    /// `key @set`: matches when the key is in the set.
    Lookup {
        key: Vec<Field>,
        set: String,
    },
    /// The same, for a set of concatenated ranges (`flags interval`), whose key fields are
    /// compared in network byte order.
    LookupRanges {
        key: Vec<Field>,
        set: String,
    },
    /// `key vmap @map`: the verdict the map holds for the key.
    Vmap {
        key: Vec<Field>,
        map: String,
    },
    /// `field { nets }` or `field != { nets }`.
    InNets {
        field: Field,
        nets: Vec<IpNet>,
        negate: bool,
    },
    /// `field != net` (a single prefix, written as an address when it is a host).
    NotInNet {
        field: Field,
        net: IpNet,
    },
    /// `fib saddr type local` / `fib daddr type local`: the address is one of this host's.
    FibLocal {
        source: bool,
    },
    /// `ct state new`
    CtStateNew,
    /// `ct direction original`: a packet of the side that opened the connection.
    CtOriginal,
    /// `ct status dnat`
    CtStatusDnat,
    /// `meta mark and BIT != 0`
    MarkHas(u32),
    /// `meta mark set meta mark or BIT`
    MarkOr(u32),
    /// `meta mark set meta mark xor BIT`
    MarkXor(u32),
    /// `meta l4proto PROTO`
    L4Proto(Protocol),
    /// `masquerade fully-random`
    Masquerade,
    /// `dnat ip to KEY map @map`: the map gives address and port.
    DnatMap {
        family: Family,
        key: Vec<Field>,
        map: String,
    },
    /// `dnat ip to ADDR:PORT`
    DnatTo {
        addr: IpAddr,
        port: u16,
    },
    /// `update @set { ip saddr }`: remembers the source in a dynamic set.
    UpdateSaddr {
        family: Family,
        set: String,
    },
    /// `numgen random mod N vmap { 0 : goto a, 1 : goto b, ... }`
    RandomVmap(Vec<Terminal>),
    Terminal(Terminal),
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Lookup { key, set } | Stmt::LookupRanges { key, set } => write!(f, "{} @{set}", Key(key)),
            Stmt::Vmap { key, map } => write!(f, "{} vmap @{map}", Key(key)),
            Stmt::InNets { field, nets, negate } => {
                let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
                let op = if *negate { "!= " } else { "" };
                write!(f, "{field} {op}{{ {} }}", nets.join(", "))
            }
            Stmt::NotInNet { field, net } if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{field} != {}", net.addr())
            }
            Stmt::NotInNet { field, net } => write!(f, "{field} != {net}"),
            Stmt::FibLocal { source } => {
                write!(f, "fib {} type local", if *source { "saddr" } else { "daddr" })
            }
            Stmt::CtStateNew => f.write_str("ct state new"),
            Stmt::CtOriginal => f.write_str("ct direction original"),
            Stmt::CtStatusDnat => f.write_str("ct status dnat"),
            Stmt::MarkHas(bit) => write!(f, "meta mark and {bit:#x} != 0"),
            Stmt::MarkOr(bit) => write!(f, "meta mark set meta mark or {bit:#x}"),
            Stmt::MarkXor(bit) => write!(f, "meta mark set meta mark xor {bit:#x}"),
            Stmt::L4Proto(p) => write!(f, "meta l4proto {}", crate::ir::Atom::Proto(*p)),
            Stmt::Masquerade => f.write_str("masquerade fully-random"),
            Stmt::DnatMap { family, key, map } => {
                write!(f, "dnat {} to {} map @{map}", family.keyword(), Key(key))
            }
            Stmt::DnatTo {
                addr: IpAddr::V4(a),
                port,
            } => write!(f, "dnat ip to {a}:{port}"),
            Stmt::DnatTo {
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "dnat ip6 to [{a}]:{port}"),
            Stmt::UpdateSaddr { family, set } => {
                write!(f, "update @{set} {{ {} saddr }}", family.keyword())
            }
            Stmt::RandomVmap(targets) => {
                let entries: Vec<String> = targets.iter().enumerate().map(|(i, t)| format!("{i} : {t}")).collect();
                write!(
                    f,
                    "numgen random mod {} vmap {{ {} }}",
                    targets.len(),
                    entries.join(", ")
                )
            }
            Stmt::Terminal(t) => write!(f, "{t}"),
        }
    }
}

/// A rule: statements in order, written separated by spaces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule(pub Vec<Stmt>);

impl Rule {
    pub fn new(stmts: impl IntoIterator<Item = Stmt>) -> Self {
        Rule(stmts.into_iter().collect())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.0, " ")
    }
}

impl From<Terminal> for Rule {
    fn from(t: Terminal) -> Self {
        Rule(vec![Stmt::Terminal(t)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_render_as_nft_syntax() {
        let dest = vec![Field::Daddr(Family::Ip), Field::L4Proto, Field::DestPort];
        let cases = [
            (
                Rule::new([Stmt::Vmap {
                    key: dest.clone(),
                    map: "service-ips".into(),
                }]),
                "ip daddr . meta l4proto . th dport vmap @service-ips",
            ),
            (
                Rule::new([
                    Stmt::InNets {
                        field: Field::Saddr(Family::Ip),
                        nets: vec!["10.0.0.0/8".parse().unwrap(), "192.168.0.0/16".parse().unwrap()],
                        negate: true,
                    },
                    Stmt::MarkOr(0x4000),
                ]),
                "ip saddr != { 10.0.0.0/8, 192.168.0.0/16 } meta mark set meta mark or 0x4000",
            ),
            (
                Rule::new([
                    Stmt::FibLocal { source: false },
                    Stmt::NotInNet {
                        field: Field::Daddr(Family::Ip6),
                        net: "::1/128".parse().unwrap(),
                    },
                ]),
                "fib daddr type local ip6 daddr != ::1",
            ),
            (
                Rule::new([Stmt::DnatMap {
                    family: Family::Ip,
                    key: vec![Field::L4Proto, Field::DestPort, Field::Random(3)],
                    map: "lb-np-c-3".into(),
                }]),
                "dnat ip to meta l4proto . th dport . numgen random mod 3 map @lb-np-c-3",
            ),
            (
                Rule::new([
                    Stmt::L4Proto(Protocol::Udp),
                    Stmt::DnatTo {
                        addr: "fd00::1".parse().unwrap(),
                        port: 53,
                    },
                ]),
                "meta l4proto udp dnat ip6 to [fd00::1]:53",
            ),
            (
                Rule::new([Stmt::RandomVmap(vec![
                    Terminal::Goto("endpoint-0-x".into()),
                    Terminal::Goto("endpoint-1-x".into()),
                ])]),
                "numgen random mod 2 vmap { 0 : goto endpoint-0-x, 1 : goto endpoint-1-x }",
            ),
            (
                Rule::new([Stmt::MarkHas(0x4000), Stmt::MarkXor(0x4000), Stmt::Masquerade]),
                "meta mark and 0x4000 != 0 meta mark set meta mark xor 0x4000 masquerade fully-random",
            ),
            (
                Rule::new([
                    Stmt::CtStateNew,
                    Stmt::Terminal(Terminal::Jump("firewall-check".into())),
                ]),
                "ct state new jump firewall-check",
            ),
        ];
        for (rule, text) in cases {
            assert_eq!(rule.to_string(), text);
        }
    }
}
