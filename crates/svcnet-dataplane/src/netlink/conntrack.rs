//! Conntrack over netlink (ctnetlink): lists the kernel's entries and deletes those a stale
//! filter matches, as the `conntrack -D` tool would, without the tool.

use std::io;
use std::net::IpAddr;

use super::socket::NfSocket;
use super::wire::{Attrs, Writer};
use crate::conntrack::Filter;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_UDP: u8 = 17;

/// What a filter looks at in one entry, and what deleting it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub protocol: u8,
    /// The client's address and port (0 when the protocol has none).
    pub orig_src: IpAddr,
    pub orig_sport: u16,
    pub orig_dst: IpAddr,
    pub orig_dport: u16,
    pub reply_src: IpAddr,
    /// The original tuple as the kernel gave it, sent back to delete the entry.
    orig_tuple: Vec<u8>,
    zone: Option<Vec<u8>>,
}

impl Entry {
    pub fn matches(&self, f: &Filter) -> bool {
        self.protocol == IPPROTO_UDP
            && self.orig_dport == f.orig_dport
            && f.orig_dst.is_none_or(|d| d == self.orig_dst)
            && f.reply_src.is_none_or(|s| s == self.reply_src)
    }
}

fn find(attrs: Attrs<'_>, kind: u16) -> Option<&[u8]> {
    attrs.into_iter().find(|a| a.kind == kind).map(|a| a.value)
}

fn addr(ip: &[u8], v4: u16, v6: u16) -> Option<IpAddr> {
    if let Some(a) = find(Attrs(ip), v4) {
        return Some(IpAddr::from(<[u8; 4]>::try_from(a).ok()?));
    }
    Some(IpAddr::from(<[u8; 16]>::try_from(find(Attrs(ip), v6)?).ok()?))
}

/// One dumped entry (its `nfgenmsg` header and attributes); `None` if it lacks a field.
pub fn parse(message: &[u8]) -> Option<Entry> {
    let attrs = Attrs(message.get(4..)?);
    let orig = find(attrs, CTA_TUPLE_ORIG)?;
    let reply = find(attrs, CTA_TUPLE_REPLY)?;
    let proto = find(Attrs(orig), CTA_TUPLE_PROTO)?;
    Some(Entry {
        protocol: *find(Attrs(proto), CTA_PROTO_NUM)?.first()?,
        orig_src: addr(find(Attrs(orig), CTA_TUPLE_IP)?, CTA_IP_V4_SRC, CTA_IP_V6_SRC)?,
        orig_sport: find(Attrs(proto), CTA_PROTO_SRC_PORT)
            .and_then(|p| p.try_into().ok())
            .map_or(0, u16::from_be_bytes),
        orig_dst: addr(find(Attrs(orig), CTA_TUPLE_IP)?, CTA_IP_V4_DST, CTA_IP_V6_DST)?,
        orig_dport: u16::from_be_bytes(find(Attrs(proto), CTA_PROTO_DST_PORT)?.try_into().ok()?),
        reply_src: addr(find(Attrs(reply), CTA_TUPLE_IP)?, CTA_IP_V4_SRC, CTA_IP_V6_SRC)?,
        orig_tuple: orig.to_vec(),
        zone: find(attrs, CTA_ZONE).map(<[u8]>::to_vec),
    })
}

/// Every conntrack entry of both families.
pub fn list(socket: &mut NfSocket) -> io::Result<Vec<Entry>> {
    let answers = socket.dump_in(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, AF_UNSPEC, &|_| {})?;
    Ok(answers.iter().filter_map(|m| parse(m)).collect())
}

/// Deletes the entries any filter matches. Returns how many filters could not be applied
/// (an entry already gone is not a failure).
pub fn delete(socket: &mut NfSocket, filters: &[Filter]) -> usize {
    if filters.is_empty() {
        return 0;
    }
    let Ok(entries) = list(socket) else {
        return filters.len();
    };
    let mut failed = 0;
    for f in filters {
        let mut ok = true;
        for e in entries.iter().filter(|e| e.matches(f)) {
            let family = if e.orig_dst.is_ipv4() { AF_INET } else { AF_INET6 };
            let result = socket.request(
                NFNL_SUBSYS_CTNETLINK,
                IPCTNL_MSG_CT_DELETE,
                family,
                &|w: &mut Writer| {
                    w.open(CTA_TUPLE_ORIG);
                    w.buf.extend_from_slice(&e.orig_tuple);
                    w.close();
                    if let Some(z) = &e.zone {
                        w.put(CTA_ZONE, z);
                    }
                },
            );
            match result {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(2) => {} // ENOENT: already gone
                Err(_) => ok = false,
            }
        }
        if !ok {
            failed += 1;
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut w = Writer::default();
        w.open(CTA_TUPLE_IP);
        w.put(CTA_IP_V4_SRC, &src);
        w.put(CTA_IP_V4_DST, &dst);
        w.close();
        w.open(CTA_TUPLE_PROTO);
        w.put(CTA_PROTO_NUM, &[IPPROTO_UDP]);
        w.put(2, &sport.to_be_bytes());
        w.put(CTA_PROTO_DST_PORT, &dport.to_be_bytes());
        w.close();
        w.buf
    }

    proptest::proptest! {
        /// Whatever the kernel (or anyone) sends, parsing an entry never panics.
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn entries_parse_and_match_filters() {
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[AF_INET, 0, 0, 0]);
        w.open(CTA_TUPLE_ORIG);
        w.buf.extend(tuple([10, 0, 0, 5], [172, 30, 0, 10], 40000, 53));
        w.close();
        w.open(CTA_TUPLE_REPLY);
        w.buf.extend(tuple([10, 180, 0, 7], [10, 0, 0, 5], 53, 40000));
        w.close();
        let e = parse(&w.buf).expect("a complete entry");
        assert_eq!(e.orig_dst, "172.30.0.10".parse::<IpAddr>().unwrap());
        assert_eq!((e.protocol, e.orig_dport), (17, 53));
        assert_eq!(e.reply_src, "10.180.0.7".parse::<IpAddr>().unwrap());
        let filter = |dst: Option<&str>, port, src: Option<&str>| Filter {
            orig_dst: dst.map(|d| d.parse().unwrap()),
            orig_dport: port,
            reply_src: src.map(|s| s.parse().unwrap()),
        };
        assert!(e.matches(&filter(Some("172.30.0.10"), 53, Some("10.180.0.7"))));
        assert!(e.matches(&filter(None, 53, Some("10.180.0.7"))));
        assert!(!e.matches(&filter(Some("172.30.0.10"), 53, Some("10.180.0.8"))));
        assert!(!e.matches(&filter(Some("172.30.0.10"), 54, None)));
        // every truncation of a dumped entry is rejected or parsed, never a panic
        for cut in 0..w.buf.len() {
            let _ = parse(&w.buf[..cut]);
        }
    }
}
