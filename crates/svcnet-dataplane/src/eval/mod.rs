//! The rule evaluator: what a compiled [`Ruleset`] does to one packet, as the kernel would do
//! it. It walks the base chains of each netfilter hook the packet passes, in priority order,
//! statement by statement, and returns every path the packet may take (a random choice splits
//! the walk, each branch with its probability), each ending in a verdict.
//!
//! It knows nftables, not svcnet: nothing here depends on how the compiler names or arranges
//! chains, so it is the specification of what the rules do, checked against real traffic in
//! the kernel by the dataplane's system tests. Pure: the host's addresses and the contents of
//! kernel-filled sets are passed in.

mod statement;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use svcnet_core::service::model::Protocol;

use crate::ir::{Family, Ruleset, Table};
use crate::rule::Terminal;

use statement::{RuleEnd, eval_rule};

/// Where a packet comes from, which decides the hooks it passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// It arrives on an interface (from a pod, another node or an outside client):
    /// prerouting, then input or forward.
    Arrives,
    /// This host sends it: output, then postrouting.
    Local,
}

/// What connection tracking knows of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conntrack {
    /// The first packet of a connection: NAT chains see only these.
    New,
    /// A packet of a connection already tracked.
    Established {
        /// It travels in the direction of the connection's first packet.
        original: bool,
        /// The connection was DNATed.
        dnat: bool,
    },
}

/// One packet, as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: Protocol,
    pub src_port: u16,
    pub dst_port: u16,
    pub origin: Origin,
    pub conntrack: Conntrack,
}

impl Packet {
    /// The first packet of a new connection.
    pub fn new(origin: Origin, protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> Self {
        Packet {
            src: src.ip(),
            dst: dst.ip(),
            protocol,
            src_port: src.port(),
            dst_port: dst.port(),
            origin,
            conntrack: Conntrack::New,
        }
    }

    fn family(&self) -> Family {
        if self.dst.is_ipv4() { Family::Ip } else { Family::Ip6 }
    }
}

/// The host the rules run on, as far as they can tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    /// Its addresses: what `fib ... type local` matches, and where packets are delivered
    /// rather than forwarded.
    pub local_addresses: BTreeSet<IpAddr>,
    /// What the kernel has put in dynamic sets (session affinity), by set name.
    pub dynamic_sets: BTreeMap<String, BTreeSet<IpAddr>>,
}

/// The netfilter hooks, in the order a packet may pass them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookPoint {
    Prerouting,
    Output,
    Input,
    Forward,
    Postrouting,
}

impl HookPoint {
    /// The name nftables gives it.
    pub fn keyword(self) -> &'static str {
        match self {
            HookPoint::Prerouting => "prerouting",
            HookPoint::Output => "output",
            HookPoint::Input => "input",
            HookPoint::Forward => "forward",
            HookPoint::Postrouting => "postrouting",
        }
    }

    /// Hooks where NAT chains rewrite the destination (the others rewrite the source).
    fn rewrites_destination(self) -> bool {
        matches!(self, HookPoint::Prerouting | HookPoint::Output)
    }
}

/// One rule the walk looked at.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub hook: HookPoint,
    pub chain: String,
    /// The rule's index in its chain.
    pub rule: usize,
    /// The rule, in nft syntax.
    pub text: String,
    pub matched: bool,
    /// What the rule did, or which statement did not match.
    pub note: String,
}

/// How a path ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fate {
    /// Delivered to a socket of this host.
    Delivered,
    /// Sent on (routed out of this host).
    Forwarded,
    Dropped,
    /// Refused with ICMP port unreachable.
    Rejected,
}

/// One path through the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Branch {
    pub probability: f64,
    pub steps: Vec<Step>,
    pub fate: Fate,
    /// The destination after DNAT, when it was rewritten.
    pub dnat: Option<SocketAddr>,
    /// The source is rewritten to the outgoing interface's address.
    pub masquerade: bool,
    /// Addresses added to dynamic sets on the way (set, address).
    pub updates: Vec<(String, IpAddr)>,
}

/// The outcome of a path, without the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    pub fate: Fate,
    pub dnat: Option<SocketAddr>,
    pub masquerade: bool,
}

/// Every path a packet may take.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub branches: Vec<Branch>,
}

impl Evaluation {
    /// The distinct outcomes with their total probabilities.
    pub fn outcomes(&self) -> BTreeMap<Outcome, f64> {
        let mut out = BTreeMap::new();
        for b in &self.branches {
            *out.entry(b.outcome()).or_insert(0.0) += b.probability;
        }
        out
    }
}

impl Branch {
    pub fn outcome(&self) -> Outcome {
        Outcome {
            fate: self.fate,
            dnat: self.dnat,
            masquerade: self.masquerade,
        }
    }
}

/// The state of one path while it is walked.
#[derive(Clone, Debug)]
struct Walk {
    probability: f64,
    steps: Vec<Step>,
    src: IpAddr,
    dst: IpAddr,
    dst_port: u16,
    mark: u32,
    dnat: bool,
    masquerade: bool,
    /// Which NAT directions were decided (once per connection each).
    nat_destination_done: bool,
    nat_source_done: bool,
    updates: Vec<(String, IpAddr)>,
}

impl Walk {
    fn new(p: &Packet) -> Self {
        Walk {
            probability: 1.0,
            steps: Vec::new(),
            src: p.src,
            dst: p.dst,
            dst_port: p.dst_port,
            mark: 0,
            dnat: false,
            masquerade: false,
            nat_destination_done: false,
            nat_source_done: false,
            updates: Vec::new(),
        }
    }

    fn finish(self, fate: Fate) -> Branch {
        let dnat = self.dnat.then(|| SocketAddr::new(self.dst, self.dst_port));
        Branch {
            probability: self.probability,
            steps: self.steps,
            fate,
            dnat,
            masquerade: self.masquerade,
            updates: self.updates,
        }
    }
}

/// What the rules do to `packet` on `host`.
pub fn evaluate(ruleset: &Ruleset, host: &Host, packet: &Packet) -> Evaluation {
    let empty = Table::default();
    let table = ruleset.tables.get(&packet.family()).unwrap_or(&empty);
    let ctx = statement::Context { table, host, packet };
    let first = match packet.origin {
        Origin::Arrives => HookPoint::Prerouting,
        Origin::Local => HookPoint::Output,
    };
    let mut branches = Vec::new();
    let mut pending = vec![(first, Walk::new(packet))];
    while let Some((hook, walk)) = pending.pop() {
        for (walk, end) in run_hook(&ctx, hook, walk) {
            match end {
                HookEnd::Stop(fate) => branches.push(walk.finish(fate)),
                HookEnd::Pass => match next_hook(&ctx, hook, &walk) {
                    Some(next) => pending.push((next, walk)),
                    None => {
                        let fate = if hook == HookPoint::Input {
                            Fate::Delivered
                        } else {
                            Fate::Forwarded
                        };
                        branches.push(walk.finish(fate));
                    }
                },
            }
        }
    }
    Evaluation { branches }
}

/// The hook after `hook`, given where the packet is going now.
fn next_hook(ctx: &statement::Context, hook: HookPoint, walk: &Walk) -> Option<HookPoint> {
    let local = ctx.host.local_addresses.contains(&walk.dst);
    match (ctx.packet.origin, hook) {
        (Origin::Arrives, HookPoint::Prerouting) if local => Some(HookPoint::Input),
        (Origin::Arrives, HookPoint::Prerouting) => Some(HookPoint::Forward),
        (_, HookPoint::Forward) | (Origin::Local, HookPoint::Output) => Some(HookPoint::Postrouting),
        // sent to itself: back in through loopback
        (Origin::Local, HookPoint::Postrouting) if local => Some(HookPoint::Input),
        _ => None,
    }
}

enum HookEnd {
    /// The packet goes on to the next hook.
    Pass,
    /// Its path ends here.
    Stop(Fate),
}

/// The base chains at `hook`, lowest priority first; NAT chains only for a connection's
/// first packet, and once per direction of rewriting.
fn run_hook(ctx: &statement::Context, hook: HookPoint, walk: Walk) -> Vec<(Walk, HookEnd)> {
    let mut chains: Vec<(&String, i32, bool)> = ctx
        .table
        .chains
        .iter()
        .filter_map(|(name, c)| {
            let h = c.hook.as_ref()?;
            (h.hook == hook.keyword()).then_some((name, h.priority, h.chain_type == "nat"))
        })
        .collect();
    chains.sort_by_key(|(name, priority, _)| (*priority, (*name).clone()));
    let mut current = vec![walk];
    let mut ended = Vec::new();
    for (name, _, nat) in chains {
        let mut next = Vec::new();
        for walk in current {
            if nat {
                let done = if hook.rewrites_destination() {
                    walk.nat_destination_done
                } else {
                    walk.nat_source_done
                };
                if done || ctx.packet.conntrack != Conntrack::New {
                    next.push(walk);
                    continue;
                }
            }
            for (mut walk, verdict) in run_chain(ctx, hook, name, walk) {
                if nat {
                    if hook.rewrites_destination() {
                        walk.nat_destination_done = true;
                    } else {
                        walk.nat_source_done = true;
                    }
                }
                match verdict {
                    ChainVerdict::Accept => next.push(walk),
                    ChainVerdict::Drop => ended.push((walk, HookEnd::Stop(Fate::Dropped))),
                    ChainVerdict::Reject => ended.push((walk, HookEnd::Stop(Fate::Rejected))),
                }
            }
        }
        current = next;
    }
    ended.extend(current.into_iter().map(|w| (w, HookEnd::Pass)));
    ended
}

enum ChainVerdict {
    Accept,
    Drop,
    Reject,
}

/// One base chain, with the chains it jumps and goes to: a call stack of (chain, next rule).
fn run_chain(ctx: &statement::Context, hook: HookPoint, base: &str, walk: Walk) -> Vec<(Walk, ChainVerdict)> {
    struct Frame {
        walk: Walk,
        stack: Vec<(String, usize)>,
        chain: String,
        rule: usize,
    }
    let mut out = Vec::new();
    let mut pending = vec![Frame {
        walk,
        stack: Vec::new(),
        chain: base.to_owned(),
        rule: 0,
    }];
    while let Some(mut f) = pending.pop() {
        // a ruleset the kernel accepted has no loops; a bound keeps a bad one from hanging us
        if f.walk.steps.len() > 10_000 {
            out.push((f.walk, ChainVerdict::Drop));
            continue;
        }
        let Some(rule) = ctx.table.chains.get(&f.chain).and_then(|c| c.rules.get(f.rule)) else {
            // the end of a chain: back to the caller, or the base chain's policy (accept)
            match f.stack.pop() {
                Some((chain, rule)) => {
                    f.chain = chain;
                    f.rule = rule;
                    pending.push(f);
                }
                None => out.push((f.walk, ChainVerdict::Accept)),
            }
            continue;
        };
        for (mut walk, end, note) in eval_rule(ctx, rule, f.walk.clone()) {
            walk.steps.push(Step {
                hook,
                chain: f.chain.clone(),
                rule: f.rule,
                text: rule.to_string(),
                matched: !matches!(end, RuleEnd::NoMatch),
                note,
            });
            let mut g = Frame {
                walk,
                stack: f.stack.clone(),
                chain: f.chain.clone(),
                rule: f.rule + 1,
            };
            match end {
                RuleEnd::NoMatch | RuleEnd::Continue => pending.push(g),
                RuleEnd::Terminal(Terminal::Jump(c)) => {
                    g.stack.push((g.chain.clone(), g.rule));
                    g.chain = c;
                    g.rule = 0;
                    pending.push(g);
                }
                RuleEnd::Terminal(Terminal::Goto(c)) => {
                    g.chain = c;
                    g.rule = 0;
                    pending.push(g);
                }
                RuleEnd::Terminal(Terminal::Return) => match g.stack.pop() {
                    Some((chain, rule)) => {
                        g.chain = chain;
                        g.rule = rule;
                        pending.push(g);
                    }
                    None => out.push((g.walk, ChainVerdict::Accept)),
                },
                RuleEnd::Terminal(Terminal::Accept) | RuleEnd::Nat => out.push((g.walk, ChainVerdict::Accept)),
                RuleEnd::Terminal(Terminal::Drop) => out.push((g.walk, ChainVerdict::Drop)),
                RuleEnd::Terminal(Terminal::Reject) => out.push((g.walk, ChainVerdict::Reject)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
