//! When to sync: a bounded-frequency schedule. Changes are batched (at most one sync per
//! `min_interval`), a periodic sync runs every `periodic_interval`, and failures are retried
//! with exponential backoff up to `max_backoff`. Pure: time comes in as milliseconds.

#[derive(Clone, Debug)]
pub struct Schedule {
    pub min_interval_ms: u64,
    pub periodic_interval_ms: u64,
    pub max_backoff_ms: u64,
    last_run: Option<u64>,
    pending: bool,
    failures: u32,
}

impl Schedule {
    pub fn new(min_interval_ms: u64, periodic_interval_ms: u64) -> Self {
        Schedule {
            min_interval_ms,
            periodic_interval_ms,
            max_backoff_ms: 30_000,
            last_run: None,
            pending: true,
            failures: 0,
        }
    }

    /// Something changed: a sync is wanted.
    pub fn request(&mut self) {
        self.pending = true;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The time (ms) at which the next sync should run.
    pub fn next_due(&self) -> u64 {
        let Some(last) = self.last_run else { return 0 };
        if self.failures > 0 {
            let backoff = self
                .min_interval_ms
                .max(1)
                .saturating_mul(1u64 << self.failures.min(16))
                .min(self.max_backoff_ms);
            return last + backoff;
        }
        if self.pending {
            last + self.min_interval_ms
        } else {
            last + self.periodic_interval_ms
        }
    }

    /// Milliseconds to wait from `now` before the next sync (0: run now).
    pub fn wait_ms(&self, now: u64) -> u64 {
        self.next_due().saturating_sub(now)
    }

    /// Records a sync that started at `now`.
    pub fn record(&mut self, now: u64, ok: bool) {
        self.last_run = Some(now);
        if ok {
            self.failures = 0;
            self.pending = false;
        } else {
            self.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_batched_by_min_interval() {
        let mut s = Schedule::new(1000, 30_000);
        assert_eq!(s.wait_ms(0), 0, "the first sync runs at once");
        s.record(0, true);
        s.request();
        s.request();
        assert_eq!(s.wait_ms(10), 990);
        s.record(1000, true);
        assert_eq!(s.next_due(), 31_000, "idle: the periodic sync");
    }

    #[test]
    fn failures_back_off_exponentially_and_reset() {
        let mut s = Schedule::new(1000, 30_000);
        s.record(0, false);
        assert_eq!(s.next_due(), 2000);
        s.record(2000, false);
        assert_eq!(s.next_due(), 6000);
        for t in 0..10 {
            s.record(10_000 * t, false);
        }
        assert_eq!(s.next_due() - 90_000, 30_000, "capped");
        s.record(100_000, true);
        assert_eq!(s.failures(), 0);
        assert_eq!(s.next_due(), 130_000);
    }
}
