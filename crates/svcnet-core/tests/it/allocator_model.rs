//! Model-based property tests: random allocate/release/restore sequences run through the real
//! transaction-and-commit path and against a `BTreeSet` model. Checked after every step: no
//! double allocation, dynamic allocation prefers the upper band, exhaustion is reported exactly
//! when the model is full, and restoring a snapshot reproduces the state.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use svcnet_core::alloc::{AllocError, Allocators, PortRange, SplitMix64};
use svcnet_core::ip::IpFamily;

#[derive(Clone, Debug)]
enum Op {
    /// Request a specific address/port, by offset from the range start (may be outside it).
    Request(u16),
    Next,
    /// Release the n-th held value (modulo the number held).
    Release(usize),
    /// Snapshot, restore into fresh allocators, continue with those.
    Restore,
    /// Several allocations in one transaction, committed together.
    Batch(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0u16..40).prop_map(Op::Request),
            4 => Just(Op::Next),
            3 => any::<usize>().prop_map(Op::Release),
            1 => Just(Op::Restore),
            1 => (1u8..5).prop_map(Op::Batch),
        ],
        1..120,
    )
}

// 10.0.0.0/27: 30 usable addresses (.1–.30), static band of 16 (.1–.16).
const CIDR: &str = "10.0.0.0/27";
const SLOTS: usize = 30;
const BAND: usize = 16;
// NodePorts 30000–30039: 40 ports, static band of 16.
const PORTS: &str = "30000-30039";

fn fresh() -> Allocators {
    Allocators::new(&[CIDR.parse().unwrap()], PORTS.parse::<PortRange>().unwrap()).unwrap()
}

fn ip(offset: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(10, 0, 0, 0)) + u32::from(offset),
    ))
}

fn in_dynamic_ip_band(a: IpAddr) -> bool {
    let IpAddr::V4(v4) = a else { return false };
    let last = v4.octets()[3] as usize;
    last > BAND
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cluster_ip_allocator_matches_model(ops in ops(), seed in any::<u64>()) {
        let mut alloc = fresh();
        let mut model: BTreeSet<IpAddr> = BTreeSet::new();
        let mut rng = SplitMix64(seed);
        for op in ops {
            match op {
                Op::Request(off) => {
                    let want = ip(off);
                    let mut txn = alloc.begin();
                    let got = txn.allocate_ip(want);
                    let in_range = (1..=SLOTS as u16).contains(&off);
                    match (&got, in_range, model.contains(&want)) {
                        (Ok(()), true, false) => { model.insert(want); }
                        (Err(AllocError::IpAllocated), true, true) => {}
                        (Err(AllocError::IpNotInRange { .. }), false, _) => {}
                        other => prop_assert!(false, "request {want}: {other:?}"),
                    }
                    alloc.commit(&txn.finish()).unwrap();
                }
                Op::Next => {
                    let mut txn = alloc.begin();
                    let got = txn.allocate_next_ip(IpFamily::IPv4, &mut rng);
                    match got {
                        Ok(a) => {
                            prop_assert!(!model.contains(&a), "double allocation of {a}");
                            let dynamic_free = (BAND + 1..=SLOTS).any(|o| !model.contains(&ip(o as u16)));
                            prop_assert!(!dynamic_free || in_dynamic_ip_band(a), "{a} from the static band while the dynamic band had room");
                            model.insert(a);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, AllocError::Full);
                            prop_assert_eq!(model.len(), SLOTS);
                        }
                    }
                    alloc.commit(&txn.finish()).unwrap();
                }
                Op::Batch(n) => {
                    let mut txn = alloc.begin();
                    let mut taken = BTreeSet::new();
                    for _ in 0..n {
                        if let Ok(a) = txn.allocate_next_ip(IpFamily::IPv4, &mut rng) {
                            prop_assert!(!model.contains(&a) && taken.insert(a), "double allocation in a batch: {a}");
                        }
                    }
                    let changes = txn.finish();
                    alloc.commit(&changes).unwrap();
                    model.extend(taken);
                }
                Op::Release(n) => {
                    if let Some(a) = model.iter().nth(n % model.len().max(1)).copied() {
                        let mut txn = alloc.begin();
                        txn.release_ip_deferred(a);
                        alloc.commit(&txn.finish()).unwrap();
                        model.remove(&a);
                    }
                }
                Op::Restore => {
                    let snap = alloc.snapshot();
                    let mut restored = fresh();
                    restored.restore(&snap).unwrap();
                    prop_assert_eq!(&restored, &alloc);
                    alloc = restored;
                }
            }
            let held: BTreeSet<IpAddr> = alloc.range(IpFamily::IPv4).unwrap().allocated().collect();
            prop_assert_eq!(&held, &model);
        }
    }

    #[test]
    fn node_port_allocator_matches_model(ops in ops(), seed in any::<u64>()) {
        let mut alloc = fresh();
        let mut model: BTreeSet<u16> = BTreeSet::new();
        let mut rng = SplitMix64(seed);
        for op in ops {
            match op {
                Op::Request(off) => {
                    let want = 29990 + i32::from(off);
                    let mut txn = alloc.begin();
                    let got = txn.allocate_port(want);
                    let in_range = (30000..30040).contains(&want);
                    match (&got, in_range, model.contains(&(want as u16))) {
                        (Ok(p), true, false) => { model.insert(*p); }
                        (Err(AllocError::PortAllocated), true, true) => {}
                        (Err(AllocError::PortNotInRange { range }), false, _) => prop_assert_eq!(range, "30000-30039"),
                        other => prop_assert!(false, "request {want}: {other:?}"),
                    }
                    alloc.commit(&txn.finish()).unwrap();
                }
                Op::Next | Op::Batch(_) => {
                    let n = if let Op::Batch(n) = op { n } else { 1 };
                    let mut txn = alloc.begin();
                    let mut taken = BTreeSet::new();
                    for _ in 0..n {
                        let dynamic_free = (30016..30040).any(|q| !model.contains(&q) && !taken.contains(&q));
                        match txn.allocate_next_port(&mut rng) {
                            Ok(p) => {
                                prop_assert!(!model.contains(&p) && taken.insert(p), "double allocation of {p}");
                                prop_assert!(p >= 30016 || !dynamic_free, "{p} from the static band while the dynamic band had room");
                            }
                            Err(e) => {
                                prop_assert_eq!(e, AllocError::Full);
                                prop_assert_eq!(model.len() + taken.len(), 40);
                            }
                        }
                    }
                    alloc.commit(&txn.finish()).unwrap();
                    model.extend(taken);
                }
                Op::Release(n) => {
                    if let Some(p) = model.iter().nth(n % model.len().max(1)).copied() {
                        let mut txn = alloc.begin();
                        txn.release_port_deferred(p);
                        alloc.commit(&txn.finish()).unwrap();
                        model.remove(&p);
                    }
                }
                Op::Restore => {
                    let mut restored = fresh();
                    restored.restore(&alloc.snapshot()).unwrap();
                    prop_assert_eq!(&restored, &alloc);
                    alloc = restored;
                }
            }
            let held: BTreeSet<u16> = alloc.node_ports().allocated().collect();
            prop_assert_eq!(&held, &model);
        }
    }
}

#[test]
fn commit_refuses_changes_planned_against_other_state() {
    let mut alloc = fresh();
    let mut rng = SplitMix64(1);
    let mut a = alloc.begin();
    let ip_a = a.allocate_next_ip(IpFamily::IPv4, &mut rng).unwrap();
    let changes_a = a.finish();
    let mut b = alloc.begin();
    b.allocate_ip(ip_a).unwrap();
    let changes_b = b.finish();
    alloc.commit(&changes_a).unwrap();
    let before = alloc.clone();
    assert_eq!(alloc.commit(&changes_b), Err(AllocError::IpAllocated));
    assert_eq!(alloc, before, "a refused commit changes nothing");
}

#[test]
fn restore_refuses_a_different_range() {
    let alloc = fresh();
    let mut other = Allocators::new(&["10.0.1.0/27".parse().unwrap()], PortRange::DEFAULT).unwrap();
    assert_eq!(other.restore(&alloc.snapshot()), Err(AllocError::MismatchedNetwork));
}
