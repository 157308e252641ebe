//! Encodes planned operations as one nf_tables batch: tables, chains, sets and maps (named
//! and the anonymous ones rules carry), elements, and rules as expression lists.

use std::net::IpAddr;

use ipnet::IpNet;

use super::consts::*;
use super::udata::{self, Shape};
use super::wire::{self, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, Writer};
use crate::diff::Op;
use crate::ir::{Atom, Data, DataType, Element, Family, Hook, RulesetView, SetDecl, SetSpec, TABLE_NAME, Verdict};
use crate::rule::{Field, Rule, Stmt, Terminal};

/// Element messages stay below this size (the kernel takes a batch of any size, but
/// smaller messages keep error reports and memory bounded).
const ELEMENT_MESSAGE_BYTES: usize = 64 << 10;

/// A batch being built, with a description of each message so a rejection can be named.
pub struct Batch {
    w: Writer,
    first_seq: u32,
    seq: u32,
    descriptions: Vec<String>,
    next_set_id: u32,
    /// Where the last operation's message starts.
    last_message: Option<usize>,
}

impl Batch {
    pub fn new(first_seq: u32) -> Self {
        let mut w = Writer::default();
        w.begin(
            wire::NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            first_seq,
            0,
            wire::NFNL_SUBSYS_NFTABLES,
        );
        w.end();
        Batch {
            w,
            first_seq,
            seq: first_seq,
            descriptions: vec!["batch begin".into()],
            next_set_id: 1,
            last_message: None,
        }
    }

    /// Closes the batch: its bytes and the sequence number of its last message (the one
    /// acknowledged), or `None` when it holds no operation.
    pub fn finish(mut self) -> (Vec<u8>, Option<u32>, Descriptions) {
        let last = (self.seq != self.first_seq).then_some(self.seq);
        // only the last operation asks for an acknowledgement; errors always come back
        if let Some(at) = self.last_message {
            self.w.add_flags(at, NLM_F_ACK);
        }
        self.seq += 1;
        self.w.begin(
            wire::NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq,
            0,
            wire::NFNL_SUBSYS_NFTABLES,
        );
        self.w.end();
        (
            self.w.buf,
            last,
            Descriptions {
                first_seq: self.first_seq,
                items: self.descriptions,
            },
        )
    }

    fn begin(&mut self, msg: u16, flags: u16, family: Family, what: impl FnOnce() -> String) {
        self.seq += 1;
        self.descriptions.push(what());
        self.last_message = Some(self.w.buf.len());
        self.w.begin(
            wire::NFNL_SUBSYS_NFTABLES << 8 | msg,
            NLM_F_REQUEST | flags,
            self.seq,
            family_code(family),
            0,
        );
    }

    pub fn op(&mut self, op: &Op) {
        match op {
            Op::AddTable(f) => self.table(NFT_MSG_NEWTABLE, NLM_F_CREATE, *f, "add"),
            Op::DeleteTable(f) => self.table(NFT_MSG_DELTABLE, 0, *f, "delete"),
            Op::AddChain { family, name, hook } => self.add_chain(*family, name, hook.as_ref()),
            Op::FlushChain { family, name } => {
                self.begin(NFT_MSG_DELRULE, 0, *family, || format!("flush chain {name}"));
                self.w.put_str(NFTA_RULE_TABLE, TABLE_NAME);
                self.w.put_str(NFTA_RULE_CHAIN, name);
                self.w.end();
            }
            Op::DeleteChain { family, name } => {
                self.begin(NFT_MSG_DELCHAIN, 0, *family, || format!("delete chain {name}"));
                self.w.put_str(NFTA_CHAIN_TABLE, TABLE_NAME);
                self.w.put_str(NFTA_CHAIN_NAME, name);
                self.w.end();
            }
            Op::AddRule { family, chain, rule } => self.add_rule(*family, chain, rule),
            Op::AddSet { family, name, decl } => self.add_set(*family, name, decl),
            Op::FlushSet { family, name, .. } => {
                self.begin(NFT_MSG_DELSETELEM, 0, *family, || format!("flush set {name}"));
                self.w.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE_NAME);
                self.w.put_str(NFTA_SET_ELEM_LIST_SET, name);
                self.w.end();
            }
            Op::DeleteSet { family, name, .. } => {
                self.begin(NFT_MSG_DELSET, 0, *family, || format!("delete set {name}"));
                self.w.put_str(NFTA_SET_TABLE, TABLE_NAME);
                self.w.put_str(NFTA_SET_NAME, name);
                self.w.end();
            }
            Op::AddElements { family, set, elements } => {
                self.elements(*family, set, None, true, &mut elements.iter());
            }
            Op::DeleteElements { family, set, elements } => {
                self.elements(*family, set, None, false, &mut elements.iter());
            }
        }
    }

    fn table(&mut self, msg: u16, flags: u16, family: Family, verb: &str) {
        self.begin(msg, flags, family, || {
            format!("{verb} table {} {TABLE_NAME}", family.keyword())
        });
        self.w.put_str(NFTA_TABLE_NAME, TABLE_NAME);
        if msg == NFT_MSG_NEWTABLE {
            self.w.put_be32(NFTA_TABLE_FLAGS, 0);
        }
        self.w.end();
    }

    fn add_chain(&mut self, family: Family, name: &str, hook: Option<&Hook>) {
        self.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, || format!("add chain {name}"));
        self.w.put_str(NFTA_CHAIN_TABLE, TABLE_NAME);
        self.w.put_str(NFTA_CHAIN_NAME, name);
        if let Some(h) = hook {
            self.w.open(NFTA_CHAIN_HOOK);
            self.w.put_be32(NFTA_HOOK_HOOKNUM, hook_number(h.hook));
            self.w.put_be32(NFTA_HOOK_PRIORITY, h.priority as u32);
            self.w.close();
            self.w.put_str(NFTA_CHAIN_TYPE, h.chain_type);
        }
        self.w.end();
    }

    fn add_set(&mut self, family: Family, name: &str, decl: &SetDecl) {
        let id = self.new_set_id();
        let (key, data) = set_types(decl);
        let mut flags = 0;
        if decl.is_map() {
            flags |= NFT_SET_MAP;
        }
        if decl.interval {
            flags |= NFT_SET_INTERVAL;
            if key.len() > 1 {
                flags |= NFT_SET_CONCAT;
            }
        }
        if decl.timeout_seconds.is_some() {
            flags |= NFT_SET_TIMEOUT;
        }
        if decl.dynamic {
            flags |= NFT_SET_EVAL;
        }
        self.begin(NFT_MSG_NEWSET, NLM_F_CREATE, family, || format!("add set {name}"));
        self.w.put_str(NFTA_SET_TABLE, TABLE_NAME);
        self.w.put_str(NFTA_SET_NAME, name);
        self.w.put_be32(NFTA_SET_FLAGS, flags);
        self.put_set_types(&key, data.as_ref());
        self.w.put_be32(NFTA_SET_ID, id);
        if let Some(t) = decl.timeout_seconds {
            self.w.put_be64(NFTA_SET_TIMEOUT, u64::from(t) * 1000);
        }
        if flags & NFT_SET_CONCAT != 0 {
            self.w.open(NFTA_SET_DESC);
            self.put_concat(&key);
            self.w.close();
        } else if decl.dynamic {
            // nft's default size for sets the kernel fills
            self.w.open(NFTA_SET_DESC);
            self.w.put_be32(NFTA_SET_DESC_SIZE, 65535);
            self.w.close();
        }
        self.w.put(NFTA_SET_USERDATA, &set_userdata(decl));
        if decl.counter {
            self.w.open(NFTA_SET_EXPR);
            self.w.put_str(NFTA_EXPR_NAME, "counter");
            self.w.open(NFTA_EXPR_DATA);
            self.w.close();
            self.w.close();
        }
        self.w.end();
    }

    fn put_set_types(&mut self, key: &[Part], data: Option<&SetData>) {
        self.w.put_be32(NFTA_SET_KEY_TYPE, concat_type(key));
        self.w.put_be32(NFTA_SET_KEY_LEN, concat_len(key) as u32);
        match data {
            None => {}
            Some(SetData::Verdict) => {
                self.w.put_be32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
            }
            Some(SetData::Parts(parts)) => {
                self.w.put_be32(NFTA_SET_DATA_TYPE, concat_type(parts));
                self.w.put_be32(NFTA_SET_DATA_LEN, concat_len(parts) as u32);
            }
        }
    }

    fn put_concat(&mut self, key: &[Part]) {
        self.w.open(NFTA_SET_DESC_CONCAT);
        for part in key {
            self.w.open(NFTA_LIST_ELEM);
            self.w.put_be32(NFTA_SET_FIELD_LEN, part.len as u32);
            self.w.close();
        }
        self.w.close();
    }

    /// The size hint nft gives constant sets: their element count.
    fn put_size(&mut self, n: usize) {
        self.w.open(NFTA_SET_DESC);
        self.w.put_be32(NFTA_SET_DESC_SIZE, n as u32);
        self.w.close();
    }

    fn new_set_id(&mut self) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        id
    }

    /// Adds (or deletes) elements, in as many messages as their size needs.
    fn elements(
        &mut self,
        family: Family,
        set: &str,
        set_id: Option<u32>,
        add: bool,
        elements: &mut dyn Iterator<Item = &Element>,
    ) {
        let mut open = false;
        for e in elements {
            self.stream_element(family, set, set_id, add, e, &mut open);
        }
        if open {
            self.end_elements();
        }
    }

    /// Writes one element, opening an element message first if none is `open`, and closing
    /// it once it is full.
    fn stream_element(
        &mut self,
        family: Family,
        set: &str,
        set_id: Option<u32>,
        add: bool,
        e: &Element,
        open: &mut bool,
    ) {
        if !*open {
            self.begin_elements(family, set, set_id, add);
            *open = true;
        }
        self.element(e, add);
        if self.w.current_len() >= ELEMENT_MESSAGE_BYTES {
            self.end_elements();
            *open = false;
        }
    }

    fn begin_elements(&mut self, family: Family, set: &str, set_id: Option<u32>, add: bool) {
        let (msg, flags, verb) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE, "add")
        } else {
            (NFT_MSG_DELSETELEM, 0, "delete")
        };
        self.begin(msg, flags, family, || format!("{verb} elements of {set}"));
        self.w.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE_NAME);
        self.w.put_str(NFTA_SET_ELEM_LIST_SET, set);
        if let Some(id) = set_id {
            self.w.put_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
        }
        self.w.open(NFTA_SET_ELEM_LIST_ELEMENTS);
    }

    fn end_elements(&mut self) {
        self.w.close();
        self.w.end();
    }

    /// Recreates our tables with `rs`'s content (the same operations as `diff::full`),
    /// encoding elements straight from the view.
    pub fn replace(&mut self, rs: &dyn RulesetView) {
        for f in rs.families() {
            self.op(&Op::AddTable(f));
            self.op(&Op::DeleteTable(f));
            self.op(&Op::AddTable(f));
            let sets = rs.sets(f);
            let chains = rs.chains(f);
            for (name, decl) in &sets {
                self.add_set(f, name, decl);
            }
            for (name, chain) in &chains {
                self.add_chain(f, name, chain.hook.as_ref());
            }
            for (name, chain) in &chains {
                for rule in &chain.rules {
                    self.add_rule(f, name, rule);
                }
            }
            rs.for_each_element(f, &mut |name, elements| self.elements(f, name, None, true, elements));
        }
    }

    fn element(&mut self, e: &Element, with_data: bool) {
        self.w.open(NFTA_LIST_ELEM);
        let interval = e.key.iter().any(|a| matches!(a, Atom::Net(_)));
        self.w.open(NFTA_SET_ELEM_KEY);
        self.w.put(NFTA_DATA_VALUE, &atoms_bytes(&e.key, false));
        self.w.close();
        if interval {
            self.w.open(NFTA_SET_ELEM_KEY_END);
            self.w.put(NFTA_DATA_VALUE, &atoms_bytes(&e.key, true));
            self.w.close();
        }
        match (&e.data, with_data) {
            (Some(Data::Verdict(v)), true) => {
                self.w.open(NFTA_SET_ELEM_DATA);
                self.put_verdict(&verdict_terminal(v));
                self.w.close();
            }
            (Some(Data::Atoms(atoms)), true) => {
                self.w.open(NFTA_SET_ELEM_DATA);
                self.w.put(NFTA_DATA_VALUE, &atoms_bytes(atoms, false));
                self.w.close();
            }
            _ => {}
        }
        self.w.close();
    }

    fn put_verdict(&mut self, t: &Terminal) {
        let (code, chain) = match t {
            Terminal::Jump(c) => (NFT_JUMP, Some(c)),
            Terminal::Goto(c) => (NFT_GOTO, Some(c)),
            Terminal::Return => (NFT_RETURN, None),
            Terminal::Drop => (NF_DROP, None),
            Terminal::Accept => (NF_ACCEPT, None),
            Terminal::Reject => unreachable!("reject is an expression, not a verdict"),
        };
        self.w.open(NFTA_DATA_VERDICT);
        self.w.put_be32(NFTA_VERDICT_CODE, code as u32);
        if let Some(c) = chain {
            self.w.put_str(NFTA_VERDICT_CHAIN, c);
        }
        self.w.close();
    }

    /// A rule; the anonymous sets its statements carry are created first, in the same batch.
    fn add_rule(&mut self, family: Family, chain: &str, rule: &Rule) {
        let mut anonymous = Vec::new();
        for stmt in &rule.0 {
            match stmt {
                Stmt::InNets { field, nets, .. } if nets.len() > 1 => {
                    anonymous.push(self.anonymous_nets(family, field, nets));
                }
                Stmt::RandomVmap(targets) => anonymous.push(self.anonymous_vmap(family, targets)),
                _ => {}
            }
        }
        self.begin(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, || {
            format!("add rule {chain} {rule}")
        });
        self.w.put_str(NFTA_RULE_TABLE, TABLE_NAME);
        self.w.put_str(NFTA_RULE_CHAIN, chain);
        self.w.open(NFTA_RULE_EXPRESSIONS);
        let mut anonymous = anonymous.into_iter();
        for stmt in &rule.0 {
            self.stmt(family, stmt, &mut anonymous);
        }
        self.w.close();
        self.w.end();
    }

    /// `{ nets }` as a constant interval set: range starts, and ends flagged as such (the
    /// address after each range), as nft writes them.
    fn anonymous_nets(&mut self, family: Family, field: &Field, nets: &[IpNet]) -> u32 {
        let ranges = interval_elements(nets);
        let set = AnonymousSet {
            name: "__set%d",
            flags: NFT_SET_INTERVAL,
            key: field_part(field),
            data: None,
            size: ranges.len(),
            userdata: udata::rule_ranges(field),
        };
        let id = self.add_anonymous_set(family, &set);
        self.begin_elements(family, set.name, Some(id), true);
        for (bytes, end) in ranges {
            self.w.open(NFTA_LIST_ELEM);
            self.w.open(NFTA_SET_ELEM_KEY);
            self.w.put(NFTA_DATA_VALUE, &bytes);
            self.w.close();
            if end {
                self.w.put_be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
            }
            self.w.close();
        }
        self.end_elements();
        id
    }

    /// `numgen random mod N vmap { 0 : t0, ... }` as a constant verdict map.
    fn anonymous_vmap(&mut self, family: Family, targets: &[Terminal]) -> u32 {
        let set = AnonymousSet {
            name: "__map%d",
            flags: NFT_SET_MAP,
            key: field_part(&Field::Random(targets.len() as u32)),
            data: Some(SetData::Verdict),
            size: targets.len(),
            userdata: udata::set(&Shape::Single(udata::BYTEORDER_HOST), Some(&Shape::RuleVerdict)),
        };
        let id = self.add_anonymous_set(family, &set);
        self.begin_elements(family, set.name, Some(id), true);
        for (i, t) in targets.iter().enumerate() {
            self.w.open(NFTA_LIST_ELEM);
            self.w.open(NFTA_SET_ELEM_KEY);
            self.w.put(NFTA_DATA_VALUE, &(i as u32).to_ne_bytes());
            self.w.close();
            self.w.open(NFTA_SET_ELEM_DATA);
            self.put_verdict(t);
            self.w.close();
            self.w.close();
        }
        self.end_elements();
        id
    }

    /// Declares a constant set a rule carries (the kernel names it, so it is referred to by
    /// the returned id within the batch).
    fn add_anonymous_set(&mut self, family: Family, set: &AnonymousSet) -> u32 {
        let id = self.new_set_id();
        self.begin(NFT_MSG_NEWSET, NLM_F_CREATE, family, || {
            format!("add anonymous set {}", set.name)
        });
        self.w.put_str(NFTA_SET_TABLE, TABLE_NAME);
        self.w.put_str(NFTA_SET_NAME, set.name);
        self.w
            .put_be32(NFTA_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | set.flags);
        self.put_set_types(&[set.key], set.data.as_ref());
        self.w.put_be32(NFTA_SET_ID, id);
        self.put_size(set.size);
        self.w.put(NFTA_SET_USERDATA, &set.userdata);
        self.w.end();
        id
    }

    fn stmt(&mut self, family: Family, stmt: &Stmt, anonymous: &mut dyn Iterator<Item = u32>) {
        match stmt {
            Stmt::Lookup { key, set } => {
                self.load_key(key);
                self.lookup(set, None, NFT_REG_1, None, false);
            }
            Stmt::Vmap { key, map } => {
                self.load_key(key);
                self.lookup(map, None, NFT_REG_1, Some(NFT_REG_VERDICT), false);
            }
            // nft turns a one-element set into a prefix comparison
            Stmt::InNets { field, nets, negate } if nets.len() == 1 => {
                self.prefix_match(field, &nets[0], if *negate { NFT_CMP_NEQ } else { NFT_CMP_EQ });
            }
            Stmt::InNets { field, negate, .. } => {
                self.load_key(std::slice::from_ref(field));
                let id = anonymous.next().expect("created with the rule");
                self.lookup("__set%d", Some(id), NFT_REG_1, None, *negate);
            }
            Stmt::NotInNet { field, net } => self.prefix_match(field, net, NFT_CMP_NEQ),
            Stmt::LookupRanges { key, set } => {
                self.load_key_for(key, true);
                self.lookup(set, None, NFT_REG_1, None, false);
            }
            Stmt::FibLocal { source } => {
                self.expr("fib", |w| {
                    w.put_be32(NFTA_FIB_DREG, NFT_REG_1);
                    w.put_be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
                    w.put_be32(
                        NFTA_FIB_FLAGS,
                        if *source { NFTA_FIB_F_SADDR } else { NFTA_FIB_F_DADDR },
                    );
                });
                self.cmp(NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes());
            }
            Stmt::CtStateNew => self.ct_bit(NFT_CT_STATE, CT_STATE_NEW),
            Stmt::CtOriginal => {
                self.expr("ct", |w| {
                    w.put_be32(NFTA_CT_KEY, NFT_CT_DIRECTION);
                    w.put_be32(NFTA_CT_DREG, NFT_REG_1);
                });
                self.cmp(NFT_CMP_EQ, &[IP_CT_DIR_ORIGINAL]);
            }
            Stmt::CtStatusDnat => self.ct_bit(NFT_CT_STATUS, CT_STATUS_DNAT),
            Stmt::MarkHas(bit) => {
                self.meta_load(NFT_META_MARK);
                self.bitwise(&bit.to_ne_bytes(), &0u32.to_ne_bytes());
                self.cmp(NFT_CMP_NEQ, &0u32.to_ne_bytes());
            }
            Stmt::MarkOr(bit) => {
                self.meta_load(NFT_META_MARK);
                self.bitwise(&(!bit).to_ne_bytes(), &bit.to_ne_bytes());
                self.meta_set(NFT_META_MARK);
            }
            Stmt::MarkXor(bit) => {
                self.meta_load(NFT_META_MARK);
                self.bitwise(&u32::MAX.to_ne_bytes(), &bit.to_ne_bytes());
                self.meta_set(NFT_META_MARK);
            }
            Stmt::L4Proto(p) => {
                self.meta_load(NFT_META_L4PROTO);
                self.cmp(NFT_CMP_EQ, &[proto_number(*p)]);
            }
            Stmt::Masquerade => self.expr("masq", |w| {
                w.put_be32(NFTA_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
            }),
            Stmt::DnatMap { family: fam, key, map } => {
                self.load_key(key);
                self.lookup(map, None, NFT_REG_1, Some(NFT_REG_1), false);
                let port_reg = register_at(Field::Daddr(*fam).size());
                self.nat(*fam, NFT_REG_1, port_reg);
            }
            Stmt::DnatTo { addr, port } => {
                self.immediate_value(NFT_REG_1, &addr_bytes(addr));
                self.immediate_value(NFT_REG_2, &port.to_be_bytes());
                let fam = match addr {
                    IpAddr::V4(_) => Family::Ip,
                    IpAddr::V6(_) => Family::Ip6,
                };
                self.nat(fam, NFT_REG_1, NFT_REG_2);
            }
            Stmt::UpdateSaddr { family: fam, set } => {
                self.load_key(&[Field::Saddr(*fam)]);
                self.expr("dynset", |w| {
                    w.put_str(NFTA_DYNSET_SET_NAME, set);
                    w.put_be32(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
                    w.put_be32(NFTA_DYNSET_SREG_KEY, NFT_REG_1);
                });
            }
            Stmt::RandomVmap(targets) => {
                self.load_key(&[Field::Random(targets.len() as u32)]);
                let id = anonymous.next().expect("created with the rule");
                self.lookup("__map%d", Some(id), NFT_REG_1, Some(NFT_REG_VERDICT), false);
            }
            Stmt::Terminal(Terminal::Reject) => {
                let code = match family {
                    Family::Ip => ICMP_PORT_UNREACH,
                    Family::Ip6 => ICMPV6_PORT_UNREACH,
                };
                self.expr("reject", |w| {
                    w.put_be32(NFTA_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
                    w.put(NFTA_REJECT_ICMP_CODE, &[code]);
                });
            }
            Stmt::Terminal(t) => {
                self.w.open(NFTA_LIST_ELEM);
                self.w.put_str(NFTA_EXPR_NAME, "immediate");
                self.w.open(NFTA_EXPR_DATA);
                self.w.put_be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                self.w.open(NFTA_IMMEDIATE_DATA);
                self.put_verdict(t);
                self.w.close();
                self.w.close();
                self.w.close();
            }
        }
    }

    /// `field == net` or `field != net`: the prefix's whole bytes compared, a partial last
    /// byte masked first.
    fn prefix_match(&mut self, field: &Field, net: &IpNet, op: u32) {
        let (base, offset) = field_location(field);
        let bits = usize::from(net.prefix_len());
        let len = bits.div_ceil(8);
        let addr = addr_bytes(&net.network());
        self.payload(base, offset, len as u32, NFT_REG_1);
        if bits % 8 != 0 {
            let mask = addr_bytes(&net.netmask());
            self.bitwise(&mask[..len], &vec![0; len]);
        }
        self.cmp(op, &addr[..len]);
    }

    fn expr(&mut self, name: &str, body: impl FnOnce(&mut Writer)) {
        self.w.open(NFTA_LIST_ELEM);
        self.w.put_str(NFTA_EXPR_NAME, name);
        self.w.open(NFTA_EXPR_DATA);
        body(&mut self.w);
        self.w.close();
        self.w.close();
    }

    /// Loads each field into consecutive registers, as nft lays out a concatenation: the
    /// first in the 16-byte register 1, the rest in 4-byte registers after it.
    fn load_key(&mut self, key: &[Field]) {
        self.load_key_for(key, false);
    }

    /// `load_key`, for a lookup in a set of ranges: those compare big-endian, so the
    /// host-order protocol byte is converted as it is loaded.
    fn load_key_for(&mut self, key: &[Field], ranges: bool) {
        let key_len: usize = key.iter().map(|f| wire::align4(f.size())).sum();
        let mut offset = 0;
        for field in key {
            let reg = register_at(offset);
            match field {
                Field::Saddr(_) | Field::Daddr(_) | Field::DestPort => {
                    let (base, at) = field_location(field);
                    self.payload(base, at, field.size() as u32, reg);
                }
                Field::L4Proto => {
                    self.meta_load_into(NFT_META_L4PROTO, reg);
                    if ranges {
                        self.expr("byteorder", |w| {
                            w.put_be32(NFTA_BYTEORDER_SREG, reg);
                            w.put_be32(NFTA_BYTEORDER_DREG, reg);
                            w.put_be32(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON);
                            w.put_be32(NFTA_BYTEORDER_LEN, 1);
                            w.put_be32(NFTA_BYTEORDER_SIZE, 2);
                        });
                    }
                }
                Field::Random(n) => self.expr("numgen", |w| {
                    w.put_be32(NFTA_NG_DREG, reg);
                    w.put_be32(NFTA_NG_MODULUS, *n);
                    w.put_be32(NFTA_NG_TYPE, NFT_NG_RANDOM);
                }),
                Field::FlowHash { family, modulus, seed } => {
                    // the flow's fields go to scratch registers after the key, as nft puts them
                    let scratch = key_len.div_ceil(16).max(1) * 16;
                    let inputs = flow_fields(*family);
                    let mut at = scratch;
                    for (base, field_offset, len) in &inputs {
                        self.payload(*base, *field_offset, *len, register_at(at));
                        at += wire::align4(*len as usize);
                    }
                    let len = (at - scratch) as u32;
                    self.expr("hash", |w| {
                        w.put_be32(NFTA_HASH_SREG, register_at(scratch));
                        w.put_be32(NFTA_HASH_DREG, reg);
                        w.put_be32(NFTA_HASH_LEN, len);
                        w.put_be32(NFTA_HASH_MODULUS, *modulus);
                        w.put_be32(NFTA_HASH_SEED, *seed);
                        w.put_be32(NFTA_HASH_TYPE, NFT_HASH_JENKINS);
                    });
                }
            }
            offset += wire::align4(field.size());
        }
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32, reg: u32) {
        self.expr("payload", |w| {
            w.put_be32(NFTA_PAYLOAD_DREG, reg);
            w.put_be32(NFTA_PAYLOAD_BASE, base);
            w.put_be32(NFTA_PAYLOAD_OFFSET, offset);
            w.put_be32(NFTA_PAYLOAD_LEN, len);
        });
    }

    fn meta_load(&mut self, key: u32) {
        self.meta_load_into(key, NFT_REG_1);
    }

    fn meta_load_into(&mut self, key: u32, reg: u32) {
        self.expr("meta", |w| {
            w.put_be32(NFTA_META_KEY, key);
            w.put_be32(NFTA_META_DREG, reg);
        });
    }

    fn meta_set(&mut self, key: u32) {
        self.expr("meta", |w| {
            w.put_be32(NFTA_META_KEY, key);
            w.put_be32(NFTA_META_SREG, NFT_REG_1);
        });
    }

    fn cmp(&mut self, op: u32, value: &[u8]) {
        self.expr("cmp", |w| {
            w.put_be32(NFTA_CMP_SREG, NFT_REG_1);
            w.put_be32(NFTA_CMP_OP, op);
            w.open(NFTA_CMP_DATA);
            w.put(NFTA_DATA_VALUE, value);
            w.close();
        });
    }

    fn bitwise(&mut self, mask: &[u8], xor: &[u8]) {
        self.expr("bitwise", |w| {
            w.put_be32(NFTA_BITWISE_SREG, NFT_REG_1);
            w.put_be32(NFTA_BITWISE_DREG, NFT_REG_1);
            w.put_be32(NFTA_BITWISE_LEN, mask.len() as u32);
            w.open(NFTA_BITWISE_MASK);
            w.put(NFTA_DATA_VALUE, mask);
            w.close();
            w.open(NFTA_BITWISE_XOR);
            w.put(NFTA_DATA_VALUE, xor);
            w.close();
        });
    }

    fn ct_bit(&mut self, key: u32, bit: u32) {
        self.expr("ct", |w| {
            w.put_be32(NFTA_CT_KEY, key);
            w.put_be32(NFTA_CT_DREG, NFT_REG_1);
        });
        self.bitwise(&bit.to_ne_bytes(), &0u32.to_ne_bytes());
        self.cmp(NFT_CMP_NEQ, &0u32.to_ne_bytes());
    }

    fn lookup(&mut self, set: &str, set_id: Option<u32>, sreg: u32, dreg: Option<u32>, invert: bool) {
        self.expr("lookup", |w| {
            w.put_str(NFTA_LOOKUP_SET, set);
            w.put_be32(NFTA_LOOKUP_SREG, sreg);
            if let Some(d) = dreg {
                w.put_be32(NFTA_LOOKUP_DREG, d);
            }
            if let Some(id) = set_id {
                w.put_be32(NFTA_LOOKUP_SET_ID, id);
            }
            if invert {
                w.put_be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
            }
        });
    }

    fn immediate_value(&mut self, reg: u32, value: &[u8]) {
        self.expr("immediate", |w| {
            w.put_be32(NFTA_IMMEDIATE_DREG, reg);
            w.open(NFTA_IMMEDIATE_DATA);
            w.put(NFTA_DATA_VALUE, value);
            w.close();
        });
    }

    fn nat(&mut self, family: Family, addr_reg: u32, port_reg: u32) {
        self.expr("nat", |w| {
            w.put_be32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
            w.put_be32(NFTA_NAT_FAMILY, u32::from(family_code(family)));
            w.put_be32(NFTA_NAT_REG_ADDR_MIN, addr_reg);
            w.put_be32(NFTA_NAT_REG_ADDR_MAX, addr_reg);
            w.put_be32(NFTA_NAT_REG_PROTO_MIN, port_reg);
            w.put_be32(NFTA_NAT_REG_PROTO_MAX, port_reg);
            w.put_be32(NFTA_NAT_FLAGS, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED);
        });
    }
}

/// What each message of a batch did, for naming the one the kernel rejected.
pub struct Descriptions {
    first_seq: u32,
    items: Vec<String>,
}

impl Descriptions {
    pub fn of(&self, seq: u32) -> &str {
        self.items
            .get(seq.wrapping_sub(self.first_seq) as usize)
            .map_or("an unknown message", String::as_str)
    }
}

/// The register of a concatenation's part at `offset` bytes.
fn register_at(offset: usize) -> u32 {
    if offset == 0 {
        NFT_REG_1
    } else {
        NFT_REG32_00 + (offset / 4) as u32
    }
}

/// The user data nft would write for this declaration.
fn set_userdata(decl: &SetDecl) -> Vec<u8> {
    match &decl.spec {
        SetSpec::Type { key, data } => {
            let key_shape = if key.len() == 1 {
                Shape::Single(udata::BYTEORDER_BIG_ENDIAN)
            } else {
                Shape::Concat
            };
            let data_shape = data.map(|_| Shape::Verdict);
            udata::set(&key_shape, data_shape.as_ref())
        }
        SetSpec::Typeof { key, data } if key.len() == 1 => {
            udata::set(&Shape::Field(&key[0]), Some(&Shape::Fields(data)))
        }
        SetSpec::Typeof { key, data } => udata::set(&Shape::Fields(key), Some(&Shape::Fields(data))),
    }
}

pub fn family_code(f: Family) -> u8 {
    match f {
        Family::Ip => NFPROTO_IPV4,
        Family::Ip6 => NFPROTO_IPV6,
    }
}

fn hook_number(hook: &str) -> u32 {
    match hook {
        "prerouting" => NF_INET_PRE_ROUTING,
        "input" => NF_INET_LOCAL_IN,
        "forward" => NF_INET_FORWARD,
        "output" => NF_INET_LOCAL_OUT,
        "postrouting" => NF_INET_POST_ROUTING,
        other => unreachable!("the compiler uses no {other} hook"),
    }
}

/// What a flow hash reads, in order: source address, source port, destination address,
/// destination port (payload base, offset, length).
fn flow_fields(family: Family) -> [(u32, u32, u32); 4] {
    let addr_len = match family {
        Family::Ip => 4,
        Family::Ip6 => 16,
    };
    let (_, saddr) = field_location(&Field::Saddr(family));
    let (_, daddr) = field_location(&Field::Daddr(family));
    [
        (NFT_PAYLOAD_NETWORK_HEADER, saddr, addr_len),
        (NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2),
        (NFT_PAYLOAD_NETWORK_HEADER, daddr, addr_len),
        (NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
    ]
}

/// Where a header field is: payload base and offset.
fn field_location(field: &Field) -> (u32, u32) {
    match field {
        Field::Saddr(Family::Ip) => (NFT_PAYLOAD_NETWORK_HEADER, 12),
        Field::Daddr(Family::Ip) => (NFT_PAYLOAD_NETWORK_HEADER, 16),
        Field::Saddr(Family::Ip6) => (NFT_PAYLOAD_NETWORK_HEADER, 8),
        Field::Daddr(Family::Ip6) => (NFT_PAYLOAD_NETWORK_HEADER, 24),
        Field::DestPort => (NFT_PAYLOAD_TRANSPORT_HEADER, 2),
        Field::L4Proto | Field::Random(_) | Field::FlowHash { .. } => unreachable!("not a header field"),
    }
}

fn proto_number(p: svcnet_core::service::model::Protocol) -> u8 {
    use svcnet_core::service::model::Protocol;
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// One part of a set key or map data: nft data type and length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Part {
    kind: u32,
    len: usize,
}

/// A constant set a rule carries: what `add_anonymous_set` declares.
struct AnonymousSet {
    /// `__set%d` or `__map%d`: the kernel fills in the number.
    name: &'static str,
    /// Flags besides anonymous and constant.
    flags: u32,
    key: Part,
    data: Option<SetData>,
    /// Its element count (nft's size hint).
    size: usize,
    userdata: Vec<u8>,
}

enum SetData {
    Verdict,
    Parts(Vec<Part>),
}

fn data_type_part(t: DataType) -> Part {
    match t {
        DataType::Ipv4Addr => Part {
            kind: TYPE_IPADDR,
            len: 4,
        },
        DataType::Ipv6Addr => Part {
            kind: TYPE_IP6ADDR,
            len: 16,
        },
        DataType::InetProto => Part {
            kind: TYPE_INET_PROTOCOL,
            len: 1,
        },
        DataType::InetService => Part {
            kind: TYPE_INET_SERVICE,
            len: 2,
        },
        DataType::Verdict => unreachable!("verdicts are map data only"),
    }
}

fn field_part(f: &Field) -> Part {
    let kind = match f {
        Field::Saddr(Family::Ip) | Field::Daddr(Family::Ip) => TYPE_IPADDR,
        Field::Saddr(Family::Ip6) | Field::Daddr(Family::Ip6) => TYPE_IP6ADDR,
        Field::L4Proto => TYPE_INET_PROTOCOL,
        Field::DestPort => TYPE_INET_SERVICE,
        Field::Random(_) | Field::FlowHash { .. } => TYPE_INTEGER,
    };
    Part { kind, len: f.size() }
}

fn set_types(decl: &SetDecl) -> (Vec<Part>, Option<SetData>) {
    match &decl.spec {
        SetSpec::Type { key, data } => (
            key.iter().copied().map(data_type_part).collect(),
            data.map(|d| match d {
                DataType::Verdict => SetData::Verdict,
                other => SetData::Parts(vec![data_type_part(other)]),
            }),
        ),
        SetSpec::Typeof { key, data } => (
            key.iter().map(field_part).collect(),
            Some(SetData::Parts(data.iter().map(field_part).collect())),
        ),
    }
}

fn concat_type(parts: &[Part]) -> u32 {
    parts.iter().fold(0, |acc, p| acc << TYPE_BITS | p.kind)
}

fn concat_len(parts: &[Part]) -> usize {
    if parts.len() == 1 {
        parts[0].len
    } else {
        parts.iter().map(|p| wire::align4(p.len)).sum()
    }
}

fn verdict_terminal(v: &Verdict) -> Terminal {
    match v {
        Verdict::Goto(c) => Terminal::Goto(c.clone()),
        Verdict::Drop => Terminal::Drop,
    }
}

/// The bytes of a key or data: each atom padded to 4 bytes when there are several. With
/// `range_end`, a network stands for its last address (the end of a concatenated range).
fn atoms_bytes(atoms: &[Atom], range_end: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(atoms.len() * 4);
    let concat = atoms.len() > 1;
    for a in atoms {
        let start = out.len();
        match a {
            Atom::Addr(ip) => out.extend_from_slice(&addr_bytes(ip)),
            Atom::Net(n) if range_end => out.extend_from_slice(&addr_bytes(&n.broadcast())),
            Atom::Net(n) => out.extend_from_slice(&addr_bytes(&n.network())),
            Atom::Proto(p) => out.push(proto_number(*p)),
            Atom::Port(p) => out.extend_from_slice(&p.to_be_bytes()),
            Atom::Int(i) => out.extend_from_slice(&i.to_ne_bytes()),
        }
        if concat {
            out.resize(start + wire::align4(out.len() - start), 0);
        }
    }
    out
}

/// A single-field interval set's elements for `nets`: merged ranges as (start, false) and
/// (address after the end, true), sorted descending as nft sends them, with nft's leading
/// end marker at zero when no range starts there.
fn interval_elements(nets: &[IpNet]) -> Vec<(Vec<u8>, bool)> {
    let mut ranges: Vec<(u128, u128)> = nets
        .iter()
        .map(|n| (addr_value(&n.network()), addr_value(&n.broadcast())))
        .collect();
    ranges.sort();
    let mut merged: Vec<(u128, u128)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let len = nets.first().map_or(4, |n| addr_bytes(&n.addr()).len());
    let to_bytes = |v: u128| v.to_be_bytes()[16 - len..].to_vec();
    let max = if len == 4 { u128::from(u32::MAX) } else { u128::MAX };
    let mut out = Vec::new();
    if merged.first().is_some_and(|(lo, _)| *lo != 0) {
        out.push((to_bytes(0), true));
    }
    for (lo, hi) in merged {
        out.push((to_bytes(lo), false));
        if hi != max {
            out.push((to_bytes(hi + 1), true));
        }
    }
    out.reverse();
    out
}

fn addr_value(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}
