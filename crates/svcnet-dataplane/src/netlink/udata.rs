//! The user data nft stores with each set (libnftnl's TLV format: one byte type, one byte
//! length). The kernel keeps it opaque; `nft list` reads it to print a set's type, so the
//! netlink backend writes what nft writes and `nft` shows both backends' sets alike.

use crate::ir::Family;
use crate::rule::Field;

const KEY_BYTEORDER: u8 = 0;
const DATA_BYTEORDER: u8 = 1;
const MERGE_ELEMENTS: u8 = 2;
const KEY_TYPEOF: u8 = 3;
const DATA_TYPEOF: u8 = 4;
const DATA_INTERVAL: u8 = 6;

const EXPR_TYPE: u8 = 0;
const EXPR_DATA: u8 = 1;

/// nft's expression kinds, as recorded in `typeof` data.
const EXPR_VERDICT: u32 = 1;
const EXPR_PAYLOAD: u32 = 7;
const EXPR_META: u32 = 9;
const EXPR_CONCAT: u32 = 13;
const EXPR_NUMGEN: u32 = 23;

/// nft's byte orders.
pub const BYTEORDER_NONE: u32 = 0;
pub const BYTEORDER_HOST: u32 = 1;
pub const BYTEORDER_BIG_ENDIAN: u32 = 2;

/// What a set's key or data is, for its user data.
pub enum Shape<'a> {
    /// One value in this byte order (`type ipv4_addr`).
    Single(u32),
    /// A concatenation declared by type names (`type a . b`).
    Concat,
    /// A concatenation declared by fields (`typeof a . b`).
    Fields(&'a [Field]),
    /// One field (`typeof numgen random mod N`).
    Field(&'a Field),
    /// A verdict, in a map built from a rule (`vmap { ... }`).
    RuleVerdict,
    /// A verdict, in a map declared by type names.
    Verdict,
}

#[derive(Default)]
struct Tlv(Vec<u8>);

impl Tlv {
    fn put(&mut self, kind: u8, value: &[u8]) {
        self.0.push(kind);
        self.0.push(value.len() as u8);
        self.0.extend_from_slice(value);
    }

    fn put_u32(&mut self, kind: u8, value: u32) {
        self.put(kind, &value.to_ne_bytes());
    }

    fn nest(&mut self, kind: u8, fill: impl FnOnce(&mut Tlv)) {
        let mut inner = Tlv::default();
        fill(&mut inner);
        self.put(kind, &inner.0);
    }
}

/// The user data of a set with this key and (for maps) data.
pub fn set(key: &Shape<'_>, data: Option<&Shape<'_>>) -> Vec<u8> {
    let mut t = Tlv::default();
    t.put_u32(KEY_BYTEORDER, byteorder(key));
    if let Some(d) = data {
        t.put_u32(DATA_BYTEORDER, byteorder(d));
    }
    typeof_entry(&mut t, KEY_TYPEOF, key);
    if let Some(d) = data {
        typeof_entry(&mut t, DATA_TYPEOF, d);
        t.put_u32(DATA_INTERVAL, 0);
    }
    t.0
}

/// The user data of the constant set of ranges a rule like `ip saddr { a/8, b/16 }` carries.
pub fn rule_ranges(f: &Field) -> Vec<u8> {
    let mut t = Tlv::default();
    t.put_u32(KEY_BYTEORDER, BYTEORDER_BIG_ENDIAN);
    t.put_u32(MERGE_ELEMENTS, 1);
    t.nest(KEY_TYPEOF, |e| field(e, f));
    t.0
}

fn byteorder(shape: &Shape<'_>) -> u32 {
    match shape {
        Shape::Single(order) => *order,
        // a generated number is in host order; a header field in network order
        Shape::Field(Field::Random(_) | Field::FlowHash { .. } | Field::L4Proto) => BYTEORDER_HOST,
        Shape::Field(_) => BYTEORDER_BIG_ENDIAN,
        _ => BYTEORDER_NONE,
    }
}

fn typeof_entry(t: &mut Tlv, kind: u8, shape: &Shape<'_>) {
    match shape {
        Shape::Single(_) | Shape::Verdict => {}
        Shape::Field(f) => t.nest(kind, |e| field(e, f)),
        Shape::Concat => t.nest(kind, |e| {
            e.put_u32(EXPR_TYPE, EXPR_CONCAT);
            e.put(EXPR_DATA, &[]);
        }),
        Shape::Fields(fields) => t.nest(kind, |e| {
            e.put_u32(EXPR_TYPE, EXPR_CONCAT);
            e.nest(EXPR_DATA, |parts| {
                for (i, f) in fields.iter().enumerate() {
                    parts.nest(i as u8, |p| field(p, f));
                }
            });
        }),
        Shape::RuleVerdict => t.nest(kind, |e| {
            e.put_u32(EXPR_TYPE, EXPR_VERDICT);
            e.put(EXPR_DATA, &[]);
        }),
    }
}

/// One field: its expression kind and what identifies it (payload protocol and field,
/// meta key, numgen type and modulus).
fn field(t: &mut Tlv, f: &Field) {
    // nft's protocol descriptions and header fields
    const PROTO_IP: u32 = 12;
    const PROTO_IP6: u32 = 13;
    const PROTO_TH: u32 = 11;
    let (kind, values): (u32, Vec<u32>) = match f {
        Field::Saddr(Family::Ip) => (EXPR_PAYLOAD, vec![PROTO_IP, 11]),
        Field::Daddr(Family::Ip) => (EXPR_PAYLOAD, vec![PROTO_IP, 12]),
        Field::Saddr(Family::Ip6) => (EXPR_PAYLOAD, vec![PROTO_IP6, 8]),
        Field::Daddr(Family::Ip6) => (EXPR_PAYLOAD, vec![PROTO_IP6, 9]),
        Field::DestPort => (EXPR_PAYLOAD, vec![PROTO_TH, 2]),
        Field::L4Proto => (EXPR_META, vec![16]),
        Field::Random(n) => (EXPR_NUMGEN, vec![1, *n, 0]),
        // nft 1.0 cannot list a `typeof jhash` set (it crashes), so a flow hash key is
        // described as the integer a numgen of the same modulus gives
        Field::FlowHash { modulus, .. } => (EXPR_NUMGEN, vec![1, *modulus, 0]),
    };
    t.put_u32(EXPR_TYPE, kind);
    t.nest(EXPR_DATA, |d| {
        for (i, v) in values.iter().enumerate() {
            d.put_u32(i as u8, *v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The bytes nft 1.0.6 wrote for these declarations, read back from the kernel.
    #[test]
    fn matches_what_nft_writes() {
        assert_eq!(hex(&set(&Shape::Single(BYTEORDER_BIG_ENDIAN), None)), "000402000000");
        assert_eq!(
            hex(&set(&Shape::Concat, Some(&Shape::Verdict))),
            "000400000000010400000000030800040d0000000100060400000000"
        );
        assert_eq!(hex(&set(&Shape::Concat, None)), "000400000000030800040d0000000100");
        assert_eq!(
            hex(&set(&Shape::Single(BYTEORDER_HOST), Some(&Shape::RuleVerdict))),
            "00040100000001040000000004080004010000000100060400000000"
        );
        assert_eq!(
            hex(&rule_ranges(&Field::Saddr(Family::Ip))),
            "0004020000000204010000000314000407000000010c00040c00000001040b000000"
        );
        // `typeof numgen random mod 32749 : ip daddr . th dport` (a Maglev map)
        assert_eq!(
            hex(&set(
                &Shape::Field(&Field::Random(32749)),
                Some(&Shape::Fields(&[Field::Daddr(Family::Ip), Field::DestPort]))
            )),
            "000401000000010400000000031a00041700000001120004010000000104ed7f0000020400000000043400040d000000012c0014000407000000010c00040c00000001040c0000000114000407000000010c00040b000000010402000000060400000000"
        );
        let key = [Field::L4Proto, Field::DestPort, Field::Random(2)];
        let data = [Field::Daddr(Family::Ip6), Field::DestPort];
        assert_eq!(
            hex(&set(&Shape::Fields(&key), Some(&Shape::Fields(&data)))),
            "000400000000010400000000034a00040d0000000142000e00040900000001060004100000000114000407000000010c00040b000000010402000000021a0004170000000112000401000000010402000000020400000000043400040d000000012c0014000407000000010c00040d0000000104090000000114000407000000010c00040b000000010402000000060400000000"
        );
    }
}
