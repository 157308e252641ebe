//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of [`TABLE_SIZE`]
//! buckets, each naming a backend, filled so every backend gets an equal share and a change
//! of one backend among N moves about 1/N of the buckets. The kernel hashes a flow's
//! addresses and ports into a bucket (`jhash ... mod TABLE_SIZE`), so a flow keeps its
//! backend while the backends do not change, and most flows keep it when one does.
//!
//! Pure: the table depends only on the set of backend names (their order does not matter).

/// Buckets per table: a prime, so every backend's permutation visits every bucket. Measured
/// over every single removal from 2 to 100 backends, a change of one of N moves at most
/// 1/N + 1% of the buckets up to N = 66, and 1/N + 1.02% up to 100 (16381 buckets, Cilium's
/// default, allows up to 1.6% more; 4093 already 1.2% at 12 backends).
pub const TABLE_SIZE: u32 = 32749;

/// Why `size` cannot be a table size: it must be a prime (so every backend's permutation
/// visits every bucket) from 2 to 65521 (the map stays of a size nftables handles well).
pub fn check_table_size(size: u32) -> Result<(), String> {
    let prime = size >= 2 && (2..).take_while(|d| d * d <= size).all(|d| !size.is_multiple_of(d));
    if prime && size <= 65521 {
        Ok(())
    } else {
        Err(format!("{size} is not a prime from 2 to 65521"))
    }
}

/// FNV-1a, 64-bit, over `seed` then `bytes`: a stable hash (std's hashers may change
/// between Rust releases, and the table must not).
fn fnv1a(seed: u8, bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(&seed).chain(bytes) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The table for `backends` (names such as `10.0.0.1:8080`): for each bucket, the index of
/// its backend in `backends`. Empty when there are no backends.
pub fn table(backends: &[String], size: u32) -> Vec<usize> {
    if backends.is_empty() || size == 0 {
        return Vec::new();
    }
    let m = u64::from(size);
    // fill in name order so the table does not depend on the order given
    let mut order: Vec<usize> = (0..backends.len()).collect();
    order.sort_by(|a, b| backends[*a].cmp(&backends[*b]));
    let permutation: Vec<(u64, u64)> = order
        .iter()
        .map(|i| {
            let name = backends[*i].as_bytes();
            let offset = fnv1a(0, name) % m;
            let skip = if m > 1 { fnv1a(1, name) % (m - 1) + 1 } else { 1 };
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; order.len()];
    let mut entry: Vec<Option<usize>> = vec![None; size as usize];
    let mut filled = 0usize;
    'fill: loop {
        for (k, (offset, skip)) in permutation.iter().enumerate() {
            let mut bucket = ((offset + next[k] * skip) % m) as usize;
            while entry[bucket].is_some() {
                next[k] += 1;
                bucket = ((offset + next[k] * skip) % m) as usize;
            }
            entry[bucket] = Some(order[k]);
            next[k] += 1;
            filled += 1;
            if filled == size as usize {
                break 'fill;
            }
        }
    }
    entry.into_iter().map(|e| e.expect("every bucket filled")).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.244.{}.{}:8080", i / 200, i % 200 + 1))
            .collect()
    }

    /// The fraction of buckets whose backend (by name) differs between two tables.
    fn moved(a: &[String], ta: &[usize], b: &[String], tb: &[usize]) -> f64 {
        let changed = ta.iter().zip(tb).filter(|(x, y)| a[**x] != b[**y]).count();
        changed as f64 / ta.len() as f64
    }

    #[test]
    fn every_backend_gets_an_equal_share() {
        for n in [1, 2, 3, 7, 40] {
            let t = table(&names(n), TABLE_SIZE);
            let mut counts = vec![0usize; n];
            for b in &t {
                counts[*b] += 1;
            }
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{n} backends: shares {min}..{max}");
        }
    }

    #[test]
    fn table_sizes_are_primes() {
        assert!(check_table_size(TABLE_SIZE).is_ok());
        assert!(check_table_size(251).is_ok());
        assert!(check_table_size(1000).is_err());
        assert!(check_table_size(65537).is_err());
    }

    #[test]
    fn the_order_of_the_backends_does_not_matter() {
        let a = names(5);
        let mut b = a.clone();
        b.reverse();
        let (ta, tb) = (table(&a, TABLE_SIZE), table(&b, TABLE_SIZE));
        assert_eq!(moved(&a, &ta, &b, &tb), 0.0);
    }

    proptest! {
        /// Adding or removing one of N backends moves at most 1/N of the buckets plus 1%.
        #[test]
        fn one_backend_more_or_less_moves_about_one_nth(n in 2usize..=64, which in any::<prop::sample::Index>()) {
            let before = names(n);
            let mut after = before.clone();
            after.remove(which.index(n));
            let (tb, ta) = (table(&before, TABLE_SIZE), table(&after, TABLE_SIZE));
            let removed = moved(&before, &tb, &after, &ta);
            prop_assert!(removed <= 1.0 / n as f64 + 0.01, "removing one of {n}: {removed}");
            let added = moved(&after, &ta, &before, &tb);
            prop_assert!(added <= 1.0 / n as f64 + 0.01, "adding one to {}: {added}", n - 1);
        }
    }
}
