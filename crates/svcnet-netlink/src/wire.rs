//! The netlink wire format nf_tables speaks: messages with an `nfgenmsg` header, nested
//! attributes, and the batch that makes a transaction. Builders only append bytes; decoding
//! goes through netlink-packet-core's checked buffers.

/// nf_tables' netlink subsystem; message types are `SUBSYS << 8 | NFT_MSG_*`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_TYPE_MASK: u16 = 0x3fff;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A sequence of netlink messages being written into one buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
    /// Where the open message and the open nested attributes start.
    open: Vec<usize>,
}

impl Writer {
    /// Starts a message of `msg_type` with an `nfgenmsg` for `family`; close it with `end`.
    pub fn begin(&mut self, msg_type: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        let start = self.buf.len();
        self.open.push(start);
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, filled by `end`
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        debug_assert_eq!(self.buf.len() - start, NLMSG_HDRLEN + NFGENMSG_LEN);
    }

    /// Starts a message whose family header is `header` (e.g. rtnetlink's `ifinfomsg`)
    /// instead of an `nfgenmsg`; close it with `end`.
    pub fn begin_with(&mut self, msg_type: u16, flags: u16, seq: u32, header: &[u8]) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(header);
    }

    /// Closes the message `begin` opened.
    pub fn end(&mut self) {
        let start = self.open.pop().expect("a message is open");
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Adds `flags` to the header of the message that starts at `at`.
    pub fn add_flags(&mut self, at: usize, flags: u16) {
        let old = u16::from_ne_bytes([self.buf[at + 6], self.buf[at + 7]]);
        self.buf[at + 6..at + 8].copy_from_slice(&(old | flags).to_ne_bytes());
    }

    /// The size of the message being written so far.
    pub fn current_len(&self) -> usize {
        self.open.first().map_or(0, |start| self.buf.len() - start)
    }

    pub fn put(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(self.buf.len() + align4(len) - len, 0);
    }

    /// A NUL-terminated string.
    pub fn put_str(&mut self, kind: u16, value: &str) {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.put(kind, &bytes);
    }

    pub fn put_be32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    pub fn put_be64(&mut self, kind: u16, value: u64) {
        self.put(kind, &value.to_be_bytes());
    }

    /// Opens a nested attribute; close it with `close`.
    pub fn open(&mut self, kind: u16) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    pub fn close(&mut self) {
        let start = self.open.pop().expect("an attribute is open");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// One attribute read back: its type (flags masked off) and value.
#[derive(Clone, Copy, Debug)]
pub struct Attr<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn nested(&self) -> Attrs<'a> {
        Attrs(self.value)
    }

    pub fn be32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.value.get(..4)?.try_into().ok()?))
    }

    pub fn be64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.value.get(..8)?.try_into().ok()?))
    }

    /// A NUL-terminated string (the terminator and anything after it dropped).
    pub fn str(&self) -> String {
        let end = self.value.iter().position(|b| *b == 0).unwrap_or(self.value.len());
        String::from_utf8_lossy(&self.value[..end]).into_owned()
    }
}

/// Iterates over the attributes in a byte range; stops at the first malformed one.
#[derive(Clone, Copy, Debug)]
pub struct Attrs<'a>(pub &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let header = self.0.get(..4)?;
        let len = u16::from_ne_bytes([header[0], header[1]]) as usize;
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.0.len() {
            self.0 = &[];
            return None;
        }
        let value = &self.0[4..len];
        self.0 = self.0.get(align4(len)..).unwrap_or(&[]);
        Some(Attr { kind, value })
    }
}

/// One message read back.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// The attributes after the `nfgenmsg` header.
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs(self.payload.get(NFGENMSG_LEN..).unwrap_or(&[]))
    }

    pub fn family(&self) -> u8 {
        self.payload.first().copied().unwrap_or(0)
    }

    /// For an `NLMSG_ERROR` message: the error code (0 for an acknowledgement) and the
    /// sequence number of the message it answers.
    pub fn error(&self) -> Option<(i32, u32)> {
        let code = i32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?);
        let seq = u32::from_ne_bytes(self.payload.get(12..16)?.try_into().ok()?);
        Some((code, seq))
    }
}

/// Splits a datagram into its messages (checked with netlink-packet-core's buffer).
pub fn messages(datagram: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while let Ok(buf) = netlink_packet_core::NetlinkBuffer::new_checked(rest) {
        let len = buf.length() as usize;
        out.push(Message {
            msg_type: buf.message_type(),
            flags: buf.flags(),
            seq: buf.sequence_number(),
            payload: &rest[NLMSG_HDRLEN..len],
        });
        rest = rest.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_messages_read_back() {
        let mut w = Writer::default();
        w.begin(NFNL_SUBSYS_NFTABLES << 8, NLM_F_REQUEST, 7, 2, 0);
        w.put_str(1, "svcnet");
        w.open(4);
        w.put_be32(1, 3);
        w.put(2, &[1, 2, 3]);
        w.close();
        w.end();
        let msgs = messages(&w.buf);
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].seq, msgs[0].family()), (7, 2));
        let attrs: Vec<Attr> = msgs[0].attrs().collect();
        assert_eq!(attrs[0].str(), "svcnet");
        let inner: Vec<Attr> = attrs[1].nested().collect();
        assert_eq!(inner[0].be32(), Some(3));
        assert_eq!(inner[1].value, &[1, 2, 3]);
    }

    /// Decodes every message and attribute, nested ones included, as far as they go.
    fn walk(bytes: &[u8]) -> usize {
        let mut seen = 0;
        for m in messages(bytes) {
            let _ = (m.family(), m.error());
            for a in m.attrs() {
                seen += 1 + walk_attrs(a.nested(), 3);
                let _ = (a.str(), a.be32(), a.be64());
            }
        }
        seen
    }

    fn walk_attrs(attrs: Attrs<'_>, depth: u8) -> usize {
        attrs
            .map(|a| {
                1 + if depth > 0 {
                    walk_attrs(a.nested(), depth - 1)
                } else {
                    0
                }
            })
            .sum()
    }

    proptest::proptest! {
        /// The decoder's fuzz target: arbitrary bytes never panic it.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            walk(&bytes);
        }

        /// Whatever attributes are written read back the same, however they nest.
        #[test]
        fn written_attributes_read_back(values in proptest::collection::vec((1u16..200, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), proptest::prelude::any::<bool>()), 0..20)) {
            let mut w = Writer::default();
            w.begin(NFNL_SUBSYS_NFTABLES << 8, NLM_F_REQUEST, 9, 10, 0);
            for (kind, value, nest) in &values {
                if *nest {
                    w.open(*kind);
                    w.put(1, value);
                    w.close();
                } else {
                    w.put(*kind, value);
                }
            }
            w.end();
            let msgs = messages(&w.buf);
            proptest::prop_assert_eq!(msgs.len(), 1);
            let attrs: Vec<Attr> = msgs[0].attrs().collect();
            proptest::prop_assert_eq!(attrs.len(), values.len());
            for (a, (kind, value, nest)) in attrs.iter().zip(&values) {
                proptest::prop_assert_eq!(a.kind, *kind);
                let read = if *nest { a.nested().next().map(|i| i.value.to_vec()) } else { Some(a.value.to_vec()) };
                proptest::prop_assert_eq!(read.as_deref(), Some(value.as_slice()));
            }
        }
    }

    #[test]
    fn truncated_input_never_panics() {
        let mut w = Writer::default();
        w.begin(NFNL_SUBSYS_NFTABLES << 8, NLM_F_REQUEST, 1, 2, 0);
        w.open(4);
        w.put_str(1, "a-long-enough-name");
        w.close();
        w.end();
        for cut in 0..w.buf.len() {
            for m in messages(&w.buf[..cut]) {
                for a in m.attrs() {
                    let _ = (a.str(), a.be32(), a.be64(), a.nested().count());
                }
            }
        }
    }
}
