//! The sync loop: drives a `Syncer` from a stream of updates on the bounded-frequency
//! `Schedule`. Bursts of updates are batched into one sync per `min_interval`; an idle proxy
//! still syncs every `periodic_interval` (which also deletes stale objects); a failed sync is
//! retried with exponential backoff, the previous rules staying in force meanwhile. After a
//! sync, UDP conntrack entries the change made stale are deleted. Every outcome is logged and
//! recorded in a shared `SyncStatus` for metrics and health checks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::model::{ModelDigest, ProxyModel, ServicePort, port_hash};
use crate::runner::Schedule;
use crate::syncer::{SyncKind, Syncer};

/// What the loop is told.
#[derive(Clone, Debug)]
pub enum Update {
    /// A whole model (at start, or after a resync of the watch caches).
    Model(ProxyModel),
    /// Changed service ports (`None` removes one), as watch events arrive.
    Ports(Vec<(String, Option<ServicePort>)>),
    /// When the changes in the updates sent so far happened in the cluster (EndpointSlices'
    /// last-change-trigger-time); the next successful sync observes how long they took to
    /// reach the kernel (network programming latency).
    ChangeTimes(Vec<std::time::SystemTime>),
    /// A digest of the model rebuilt from the sender's caches, whole or one part of its
    /// Services (the periodic resync): it must equal the state the `Ports` updates sent
    /// before it built incrementally. A difference is counted (once per check, when its last
    /// part is in), logged, and answered by setting [`SyncStatus::model_wanted`], on which the
    /// sender sends the whole model (`Model`) to program.
    Resync(ModelDigest),
}

/// Upper bounds (seconds) of the network programming latency buckets, upstream's.
pub const PROGRAMMING_BUCKETS: [f64; 80] = {
    let mut b = [0.0; 80];
    b[0] = 0.25;
    b[1] = 0.5;
    let mut i = 0;
    while i < 59 {
        b[2 + i] = (i + 1) as f64;
        i += 1;
    }
    i = 0;
    while i < 12 {
        b[61 + i] = 60.0 + 5.0 * i as f64;
        i += 1;
    }
    i = 0;
    while i < 7 {
        b[73 + i] = 120.0 + 30.0 * i as f64;
        i += 1;
    }
    b
};

/// A Prometheus histogram over [`PROGRAMMING_BUCKETS`] (counts per bucket, not cumulative).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Histogram {
    pub counts: Vec<u64>,
    /// Observations above the last bucket.
    pub overflow: u64,
    pub sum_micros: u64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if self.counts.len() != PROGRAMMING_BUCKETS.len() {
            self.counts = vec![0; PROGRAMMING_BUCKETS.len()];
        }
        match PROGRAMMING_BUCKETS.iter().position(|b| seconds <= *b) {
            Some(i) => self.counts[i] += 1,
            None => self.overflow += 1,
        }
        self.sum_micros += (seconds.max(0.0) * 1e6) as u64;
        self.count += 1;
    }
}

/// The loop's counters, read by metrics and health endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncStatus {
    pub full_syncs: u64,
    pub incremental_syncs: u64,
    pub failures: u64,
    /// Consecutive failures (0 after a success).
    pub failing_for: u32,
    pub last_error: Option<String>,
    /// Milliseconds since the loop started at which the last sync succeeded.
    pub last_success_ms: Option<u64>,
    pub last_duration_ms: u64,
    /// Milliseconds since the loop started at which updates began waiting, if any wait.
    pub pending_since_ms: Option<u64>,
    /// Stale UDP conntrack filters applied, and those that could not be.
    pub conntrack_cleanups: u64,
    pub conntrack_failures: u64,
    /// Unix time (seconds) of the last successful sync.
    pub last_success_unix: Option<u64>,
    /// Service ports and endpoints in the applied model.
    pub service_ports: u64,
    pub endpoints: u64,
    /// Milliseconds the loop has been running, as of the last status update.
    pub uptime_ms: u64,
    /// Unix time (seconds) since which updates have been waiting, if any wait.
    pub pending_since_unix: Option<u64>,
    /// From a change in the cluster to the sync that programmed it.
    pub programming_latency: Histogram,
    /// Periodic checks of the incremental state against a rebuilt model, and how many found
    /// a difference.
    pub resync_checks: u64,
    pub resync_mismatches: u64,
    /// A resync check found a difference: the sender should send the whole model.
    pub model_wanted: bool,
    /// From the first whole model's arrival (the agent's initial lists) to the sync that
    /// programmed it: how long a (re)started agent takes to take over.
    pub initial_sync_ms: Option<u64>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The UDP service ports of the applied model among `ids` (every port when `None`): what the
/// stale-flow planning needs, for only the ports a sync may change.
fn udp_ports<B: Backend>(syncer: &Syncer<B>, ids: Option<&BTreeSet<String>>) -> ProxyModel {
    let mut m = ProxyModel::default();
    let Some(applied) = syncer.applied_model() else {
        return m;
    };
    let is_udp = |p: &ServicePort| p.protocol == svcnet_core::service::model::Protocol::Udp;
    m.ports = match ids {
        Some(ids) => ids
            .iter()
            .filter_map(|id| applied.ports.get_key_value(id))
            .filter(|(_, p)| is_udp(p))
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect(),
        None => applied
            .ports
            .iter()
            .filter(|(_, p)| is_udp(p))
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect(),
    };
    m
}

/// The ids of the service ports whose incremental state (`base` with the `pending` changes)
/// differs from the `rebuilt` digest; `["(node)"]` when the node-wide inputs differ.
fn diverged(base: &ProxyModel, pending: &BTreeMap<String, Option<ServicePort>>, rebuilt: &ModelDigest) -> Vec<String> {
    if base.clone_node_wide() != rebuilt.node {
        return vec!["(node)".to_owned()];
    }
    let expected = |id: &String| match pending.get(id) {
        Some(change) => change.as_ref(),
        None => base.ports.get(id),
    };
    let part = rebuilt.part;
    let mut out: BTreeSet<String> = rebuilt
        .ports
        .iter()
        .filter(|(id, hash)| expected(id).map(port_hash) != Some(**hash))
        .map(|(id, _)| id.clone())
        .collect();
    out.extend(
        base.ports
            .keys()
            .chain(pending.keys())
            .filter(|id| part.holds_port(id) && !rebuilt.ports.contains_key(*id) && expected(id).is_some())
            .cloned(),
    );
    out.into_iter().collect()
}

fn endpoint_count(ports: &BTreeMap<String, ServicePort>) -> u64 {
    ports.values().map(|p| p.endpoints.len() as u64).sum()
}

/// Runs until every sender of `updates` is gone, then returns the syncer. `conntrack` deletes
/// stale UDP entries; `None` skips conntrack cleanup.
pub fn run<B: Backend>(
    mut syncer: Syncer<B>,
    mut schedule: Schedule,
    updates: Receiver<Update>,
    status: Arc<Mutex<SyncStatus>>,
    conntrack: Option<crate::conntrack::Cleaner>,
) -> Syncer<B> {
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut model: Option<ProxyModel> = None;
    let mut ports: BTreeMap<String, Option<ServicePort>> = BTreeMap::new();
    let mut change_times: Vec<std::time::SystemTime> = Vec::new();
    // endpoints in the applied model, kept up to date per changed port (counted whole after
    // a full sync or a failure)
    let mut endpoints: u64 = 0;
    let mut recount = true;
    // whether a part of the periodic check in progress found a difference
    let mut round_differs = false;
    // when the first whole model arrived, until the first sync programmed it
    let mut st_first_model: Option<u64> = None;
    loop {
        // the first sync needs a model; until then only updates are awaited
        let wait = if model.is_none() && syncer.applied_model().is_none() {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(schedule.wait_ms(now()))
        };
        match updates.recv_timeout(wait) {
            Ok(Update::ChangeTimes(times)) => {
                change_times.extend(times);
                continue;
            }
            Ok(Update::Resync(rebuilt)) => {
                let Some(base) = model.as_ref().or(syncer.applied_model()) else {
                    continue;
                };
                let differing = diverged(base, &ports, &rebuilt);
                let mut st = status.lock().expect("status lock");
                round_differs |= !differing.is_empty();
                // a check is counted when its last part is in
                if rebuilt.part.index + 1 >= rebuilt.part.count {
                    st.resync_checks += 1;
                    if std::mem::take(&mut round_differs) {
                        st.resync_mismatches += 1;
                    }
                }
                if !differing.is_empty() {
                    st.model_wanted = true;
                    tracing::warn!(
                        count = differing.len(),
                        first = ?&differing[..differing.len().min(5)],
                        "the incrementally maintained model differs from a rebuild; asking for the whole model"
                    );
                }
                continue;
            }
            Ok(update) => {
                match update {
                    Update::ChangeTimes(_) | Update::Resync(_) => unreachable!("handled above"),
                    Update::Model(m) => {
                        model = Some(m);
                        ports.clear();
                        if st_first_model.is_none() {
                            st_first_model = Some(now());
                        }
                    }
                    Update::Ports(changed) => match &mut model {
                        Some(m) => {
                            for (id, sp) in changed {
                                match sp {
                                    Some(sp) => m.ports.insert(id, sp),
                                    None => m.ports.remove(&id),
                                };
                            }
                        }
                        None => ports.extend(changed),
                    },
                }
                schedule.request();
                let mut st = status.lock().expect("status lock");
                st.pending_since_ms.get_or_insert(now());
                st.pending_since_unix.get_or_insert(unix_now());
                st.uptime_ms = now();
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return syncer,
        }
        if schedule.wait_ms(now()) > 0 {
            continue;
        }
        let t = now();
        // a port sync can change only its ports: snapshots and counts look at those alone
        let changed_ids: Option<BTreeSet<String>> = model.is_none().then(|| ports.keys().cloned().collect());
        let udp_before = conntrack.as_ref().map(|_| udp_ports(&syncer, changed_ids.as_ref()));
        let endpoints_before: u64 = match (&changed_ids, syncer.applied_model()) {
            (Some(ids), Some(applied)) => ids
                .iter()
                .filter_map(|id| applied.ports.get(id))
                .map(|p| p.endpoints.len() as u64)
                .sum(),
            _ => 0,
        };
        let result = match model.take() {
            Some(m) => syncer.sync(m, t),
            None if syncer.applied_model().is_some() => syncer.sync_ports(std::mem::take(&mut ports), t),
            None => continue,
        };
        let ok = result.is_ok();
        schedule.record(t, ok);
        let mut st = status.lock().expect("status lock");
        st.last_duration_ms = now() - t;
        st.uptime_ms = now();
        match result {
            Ok(report) => {
                if st.initial_sync_ms.is_none()
                    && let Some(received) = st_first_model
                {
                    let took = now() - received;
                    st.initial_sync_ms = Some(took);
                    let ports = syncer.applied_model().map_or(0, |m| m.ports.len());
                    tracing::info!(
                        service_ports = ports,
                        initial_sync_ms = took,
                        "first sync programmed the whole model"
                    );
                }
                match report.kind {
                    SyncKind::Full => st.full_syncs += 1,
                    SyncKind::Incremental => st.incremental_syncs += 1,
                    SyncKind::NoChange => {}
                }
                st.failing_for = 0;
                st.last_success_ms = Some(now());
                st.last_success_unix = Some(unix_now());
                st.pending_since_unix = None;
                if let Some(m) = syncer.applied_model() {
                    st.service_ports = m.ports.len() as u64;
                    endpoints = match &changed_ids {
                        Some(ids) if !recount => {
                            let after: u64 = ids
                                .iter()
                                .filter_map(|id| m.ports.get(id))
                                .map(|p| p.endpoints.len() as u64)
                                .sum();
                            endpoints - endpoints_before + after
                        }
                        _ => endpoint_count(&m.ports),
                    };
                    recount = false;
                    st.endpoints = endpoints;
                }
                st.pending_since_ms = None;
                let programmed = std::time::SystemTime::now();
                for at in change_times.drain(..) {
                    let latency = programmed.duration_since(at).unwrap_or_default();
                    st.programming_latency.observe(latency.as_secs_f64());
                }
                if let (Some(cleaner), Some(before)) = (&conntrack, &udp_before) {
                    let stale = crate::conntrack::stale_udp(before, &udp_ports(&syncer, changed_ids.as_ref()));
                    let failed = cleaner.delete(&stale);
                    st.conntrack_cleanups += stale.len() as u64;
                    st.conntrack_failures += failed as u64;
                    if failed > 0 {
                        tracing::warn!(failed, "conntrack cleanup failed for some stale UDP flows");
                    }
                }
                tracing::debug!(kind = ?report.kind, operations = report.operations, duration_ms = st.last_duration_ms, "synced");
            }
            Err(e) => {
                recount = true;
                st.failures += 1;
                st.failing_for += 1;
                st.last_error = Some(e.to_string());
                tracing::warn!(error = %e, consecutive = st.failing_for, retry_in_ms = schedule.wait_ms(now()), "sync failed; previous rules stay in force");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programming_histogram_uses_upstreams_buckets() {
        assert_eq!(PROGRAMMING_BUCKETS[..4], [0.25, 0.5, 1.0, 2.0]);
        assert_eq!(PROGRAMMING_BUCKETS[60], 59.0);
        assert_eq!(PROGRAMMING_BUCKETS[61], 60.0);
        assert_eq!(PROGRAMMING_BUCKETS[72], 115.0);
        assert_eq!(PROGRAMMING_BUCKETS[73], 120.0);
        assert_eq!(PROGRAMMING_BUCKETS[79], 300.0);
        let mut h = Histogram::default();
        for s in [0.01, 0.3, 0.3, 61.0, 1000.0] {
            h.observe(s);
        }
        assert_eq!(
            (h.counts[0], h.counts[1], h.counts[62], h.overflow, h.count),
            (1, 2, 1, 1, 5)
        );
        assert_eq!(h.sum_micros, 1_061_610_000);
    }
    use crate::backend::BackendError;
    use crate::diff::Op;
    use crate::ir::RulesetView;
    use crate::model::Endpoint;
    use std::sync::mpsc;
    use svcnet_core::service::model::Protocol;

    /// Fails its first `fail` transactions, then records what it applies.
    struct Flaky {
        fail: usize,
        attempts: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Flaky {
        fn attempt(&mut self, kind: &'static str) -> Result<(), BackendError> {
            let mut a = self.attempts.lock().unwrap();
            a.push(kind);
            if a.len() <= self.fail {
                return Err(BackendError::Rejected {
                    stderr: "injected".into(),
                });
            }
            Ok(())
        }
    }

    impl Backend for Flaky {
        fn apply(&mut self, _ops: &[Op]) -> Result<(), BackendError> {
            self.attempt("incremental")
        }

        fn replace(&mut self, _ruleset: &dyn RulesetView) -> Result<(), BackendError> {
            self.attempt("full")
        }
    }

    fn port(i: u32) -> (String, Option<ServicePort>) {
        let sp = ServicePort::cluster_ip(
            "ns",
            &format!("s{i}"),
            "http",
            Protocol::Tcp,
            80,
            vec![format!("172.30.{}.{}", i / 250, i % 250 + 1).parse().unwrap()],
            vec![Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                port: 80,
                is_local: false,
                ready: true,
                serving: true,
                terminating: false,
                hints: Default::default(),
            }],
        );
        (sp.id(), Some(sp))
    }

    struct Harness {
        tx: mpsc::Sender<Update>,
        status: Arc<Mutex<SyncStatus>>,
        attempts: Arc<Mutex<Vec<&'static str>>>,
        handle: std::thread::JoinHandle<Syncer<Flaky>>,
    }

    fn start(fail: usize, min_ms: u64) -> Harness {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let syncer = Syncer::new(Flaky {
            fail,
            attempts: attempts.clone(),
        });
        let status = Arc::new(Mutex::new(SyncStatus::default()));
        let (tx, rx) = mpsc::channel();
        let st = status.clone();
        let handle = std::thread::spawn(move || run(syncer, Schedule::new(min_ms, 60_000), rx, st, None));
        Harness {
            tx,
            status,
            attempts,
            handle,
        }
    }

    fn wait_for(status: &Arc<Mutex<SyncStatus>>, what: impl Fn(&SyncStatus) -> bool) {
        for _ in 0..500 {
            if what(&status.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("status never reached the expected state: {:?}", status.lock().unwrap());
    }

    #[test]
    fn failures_are_retried_and_recorded_then_recover() {
        let Harness {
            tx,
            status,
            attempts,
            handle,
        } = start(2, 5);
        tx.send(Update::Model(ProxyModel::default())).unwrap();
        wait_for(&status, |s| s.full_syncs == 1);
        let st = status.lock().unwrap().clone();
        assert_eq!((st.failures, st.failing_for), (2, 0));
        assert_eq!(st.last_error.as_deref(), Some("nft rejected the transaction: injected"));
        // after the failure the kernel state is unknown: a change is applied by a full replace
        tx.send(Update::Ports(vec![port(1)])).unwrap();
        wait_for(&status, |s| s.incremental_syncs == 1);
        drop(tx);
        let syncer = handle.join().unwrap();
        assert_eq!(*attempts.lock().unwrap(), ["full", "full", "full", "incremental"]);
        assert_eq!(syncer.applied_model().unwrap().ports.len(), 1);
    }

    #[test]
    fn bursts_are_batched() {
        let Harness {
            tx,
            status,
            attempts,
            handle,
        } = start(0, 300);
        tx.send(Update::Model(ProxyModel::default())).unwrap();
        wait_for(&status, |s| s.full_syncs == 1);
        for i in 0..50 {
            tx.send(Update::Ports(vec![port(i)])).unwrap();
        }
        wait_for(&status, |s| s.pending_since_ms.is_none() && s.incremental_syncs >= 1);
        drop(tx);
        let syncer = handle.join().unwrap();
        assert_eq!(syncer.applied_model().unwrap().ports.len(), 50, "every update applied");
        let n = attempts.lock().unwrap().len();
        assert!(
            n <= 3,
            "50 updates within one min interval take one or two syncs, took {}",
            n - 1
        );
    }

    #[test]
    fn a_check_in_parts_is_counted_once_and_finds_a_difference_in_any_part() {
        use crate::model::DigestPart;
        let Harness { tx, status, handle, .. } = start(0, 5);
        let mut model = ProxyModel::default();
        for i in 0..40 {
            let (id, sp) = port(i);
            model.ports.insert(id, sp.unwrap());
        }
        tx.send(Update::Model(model.clone())).unwrap();
        wait_for(&status, |s| s.full_syncs == 1);
        fn parts(m: &ProxyModel) -> Vec<ModelDigest> {
            (0..4)
                .map(|index| ModelDigest::of_part(m, DigestPart { index, count: 4 }))
                .collect()
        }
        for (i, digest) in parts(&model).into_iter().enumerate() {
            assert!(
                !digest.ports.is_empty() && digest.ports.len() < 40,
                "part {i}: {:?}",
                digest.ports.len()
            );
            tx.send(Update::Resync(digest)).unwrap();
        }
        wait_for(&status, |s| s.resync_checks == 1);
        assert_eq!(status.lock().unwrap().resync_mismatches, 0);

        // one port differs, and one the incremental state lacks: found in their parts, one
        // mismatch for the whole check
        let mut other = model.clone();
        other.ports.values_mut().nth(7).unwrap().endpoints[0].port = 81;
        other.ports.remove(&port(3).0);
        for digest in parts(&other) {
            tx.send(Update::Resync(digest)).unwrap();
        }
        wait_for(&status, |s| s.resync_checks == 2);
        let st = status.lock().unwrap().clone();
        assert_eq!((st.resync_mismatches, st.model_wanted), (1, true));
        drop(tx);
        handle.join().unwrap();
    }

    #[test]
    fn a_resync_digest_that_differs_asks_for_the_whole_model() {
        let Harness { tx, status, handle, .. } = start(0, 5);
        let (id, sp) = port(1);
        let mut model = ProxyModel::default();
        model.ports.insert(id.clone(), sp.clone().unwrap());
        tx.send(Update::Model(model.clone())).unwrap();
        wait_for(&status, |s| s.full_syncs == 1);

        // the same model: checked, nothing wanted
        tx.send(Update::Resync(ModelDigest::of(&model))).unwrap();
        wait_for(&status, |s| s.resync_checks == 1);
        let st = status.lock().unwrap().clone();
        assert_eq!((st.resync_mismatches, st.model_wanted), (0, false));

        // a port whose endpoints differ, and one the incremental state lacks
        let mut other = model.clone();
        other.ports.get_mut(&id).unwrap().endpoints[0].port = 81;
        let (id2, sp2) = port(2);
        other.ports.insert(id2, sp2.unwrap());
        tx.send(Update::Resync(ModelDigest::of(&other))).unwrap();
        wait_for(&status, |s| s.resync_checks == 2);
        let st = status.lock().unwrap().clone();
        assert_eq!((st.resync_mismatches, st.model_wanted), (1, true));

        // once the changed port is applied, only the missing one differs
        tx.send(Update::Ports(vec![(id.clone(), other.ports.get(&id).cloned())]))
            .unwrap();
        wait_for(&status, |s| s.incremental_syncs == 1);
        drop(tx);
        let syncer = handle.join().unwrap();
        let applied = syncer.applied_model().unwrap();
        assert_eq!(applied.ports[&id].endpoints[0].port, 81);
        let mut changed_node = other.clone();
        changed_node.node_name = "elsewhere".into();
        assert_eq!(
            diverged(applied, &BTreeMap::new(), &ModelDigest::of(&changed_node)),
            ["(node)"]
        );
        let missing = diverged(applied, &BTreeMap::new(), &ModelDigest::of(&other));
        assert_eq!(missing.len(), 1, "{missing:?}");
    }
}
