//! Keeps the kernel in step with the proxy model.
//!
//! The first sync, and the first after any failure, is full: it compiles the whole model and
//! replaces our tables in one transaction (adopting whatever a previous run left, without
//! touching conntrack). Later syncs recompile only the service ports that changed and apply
//! only the resulting changes; a sync with no change sends nothing. The kernel is never
//! listed. Removed chains and sets are emptied at once and deleted once they have been unused
//! for a grace period.

use std::collections::BTreeMap;

use crate::backend::{Backend, BackendError};
use crate::diff::{self, Stale};
use crate::incremental::CompiledModel;
use crate::ir::Ruleset;
use crate::model::{ProxyModel, ServicePort};

/// How a sync went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SyncKind {
    Full,
    Incremental,
    /// Nothing differed; no transaction was sent.
    NoChange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub kind: SyncKind,
    pub operations: usize,
}

pub struct Syncer<B> {
    backend: B,
    compiled: Option<CompiledModel>,
    /// The last transaction failed: the kernel's state is unknown, the next sync replaces it.
    needs_full: bool,
    /// Stale objects and the time (ms) from which they may be deleted.
    stale: BTreeMap<Stale, u64>,
    stale_grace_ms: u64,
}

impl<B: Backend> Syncer<B> {
    pub fn new(backend: B) -> Self {
        Syncer {
            backend,
            compiled: None,
            needs_full: false,
            stale: BTreeMap::new(),
            stale_grace_ms: 1000,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The ruleset the kernel holds, as far as this syncer knows (assembled on demand).
    pub fn applied(&self) -> Option<Ruleset> {
        self.compiled.as_ref().map(CompiledModel::ruleset)
    }

    /// The model last applied.
    pub fn applied_model(&self) -> Option<&ProxyModel> {
        self.compiled.as_ref().map(CompiledModel::model)
    }

    /// Forces the next sync to be full.
    pub fn invalidate(&mut self) {
        self.compiled = None;
    }

    /// Whether a previous sync failed and the next one will replace the tables.
    pub fn needs_full(&self) -> bool {
        self.needs_full || self.compiled.is_none()
    }

    /// Brings the kernel to `model`. `now_ms` is a monotonic clock reading. On error the
    /// previous rules stay in force (transactions are atomic); the desired state is kept and
    /// the next sync (of any kind) replaces the tables with it.
    pub fn sync(&mut self, model: ProxyModel, now_ms: u64) -> Result<SyncReport, BackendError> {
        let Some(mut compiled) = self.compiled.take() else {
            return self.full(CompiledModel::new(model));
        };
        if self.needs_full {
            return self.full(CompiledModel::new(model));
        }
        let changes = match compiled.update(model) {
            Ok(changes) => changes,
            Err(model) => {
                // node-wide inputs changed: compile anew, then diff whole rulesets
                let old = compiled;
                compiled = CompiledModel::new(*model);
                match diff::compare(&old.ruleset(), &compiled.ruleset()) {
                    Some(c) => c,
                    None => return self.full(compiled),
                }
            }
        };
        self.apply_changes(compiled, &changes, now_ms)
    }

    /// Applies changes to individual service ports (`None` removes one) on top of the last
    /// applied model: what a node agent does with watch events. Time grows with the number of
    /// changed ports, not the model. Needs a previous sync (else it is an error). With no
    /// changes it still deletes stale objects whose grace period is over, and retries a
    /// failed sync.
    pub fn sync_ports(
        &mut self,
        changed: impl IntoIterator<Item = (String, Option<ServicePort>)>,
        now_ms: u64,
    ) -> Result<SyncReport, BackendError> {
        let Some(mut compiled) = self.compiled.take() else {
            return Err(BackendError::NotInitialized);
        };
        let changes = compiled.update_ports(changed);
        if self.needs_full {
            return self.full(compiled);
        }
        self.apply_changes(compiled, &changes, now_ms)
    }

    fn apply_changes(
        &mut self,
        compiled: CompiledModel,
        changes: &diff::Changes,
        now_ms: u64,
    ) -> Result<SyncReport, BackendError> {
        let stale: Vec<(Stale, bool)> = self.stale.iter().map(|(s, at)| (s.clone(), *at <= now_ms)).collect();
        let plan = diff::plan(changes, &|s| compiled.has(s), &stale);
        if plan.ops.is_empty() {
            self.compiled = Some(compiled);
            return Ok(SyncReport {
                kind: SyncKind::NoChange,
                operations: 0,
            });
        }
        if let Err(e) = self.backend.apply(&plan.ops) {
            self.compiled = Some(compiled);
            self.needs_full = true;
            return Err(e);
        }
        self.stale.retain(|s, at| *at > now_ms && !compiled.has(s));
        for s in plan.newly_stale {
            self.stale.insert(s, now_ms + self.stale_grace_ms);
        }
        self.compiled = Some(compiled);
        Ok(SyncReport {
            kind: SyncKind::Incremental,
            operations: plan.ops.len(),
        })
    }

    fn full(&mut self, compiled: CompiledModel) -> Result<SyncReport, BackendError> {
        let result = self.backend.replace(&compiled);
        self.needs_full = result.is_err();
        if let Err(e) = result {
            self.compiled = Some(compiled);
            return Err(e);
        }
        self.stale.clear();
        let st = compiled.stats();
        self.compiled = Some(compiled);
        Ok(SyncReport {
            kind: SyncKind::Full,
            operations: st.chains + st.rules + st.sets + st.elements,
        })
    }

    /// Whether stale objects are waiting for deletion (a later sync will delete them).
    pub fn has_pending_deletions(&self) -> bool {
        !self.stale.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Op;
    use crate::model::Endpoint;
    use crate::nft_text;
    use svcnet_core::service::model::Protocol;

    /// Records what it is asked to apply.
    #[derive(Default)]
    struct Recorder {
        scripts: Vec<String>,
    }

    impl Backend for Recorder {
        fn apply(&mut self, ops: &[Op]) -> Result<(), BackendError> {
            self.scripts.push(nft_text::script(ops));
            Ok(())
        }

        fn replace(&mut self, ruleset: &dyn crate::ir::RulesetView) -> Result<(), BackendError> {
            self.scripts.push(nft_text::replace_script(ruleset));
            Ok(())
        }
    }

    fn port(i: u8, endpoint: &str) -> ServicePort {
        ServicePort::cluster_ip(
            "ns",
            &format!("s{i}"),
            "http",
            Protocol::Tcp,
            80,
            vec![format!("172.30.0.{i}").parse().unwrap()],
            vec![Endpoint {
                ip: endpoint.parse().unwrap(),
                port: 8080,
                is_local: false,
                ready: true,
                serving: true,
                terminating: false,
                hints: Default::default(),
            }],
        )
    }

    #[test]
    fn port_changes_touch_only_that_port() {
        let mut syncer = Syncer::new(Recorder::default());
        assert!(matches!(syncer.sync_ports([], 0), Err(BackendError::NotInitialized)));
        let mut model = ProxyModel::default();
        for i in 1..=3 {
            let sp = port(i, &format!("10.0.0.{i}"));
            model.ports.insert(sp.id(), sp);
        }
        assert_eq!(syncer.sync(model, 0).unwrap().kind, SyncKind::Full);
        let changed = port(2, "10.0.9.9");
        let report = syncer.sync_ports([(changed.id(), Some(changed.clone()))], 1).unwrap();
        assert_eq!(report.kind, SyncKind::Incremental);
        let script = syncer.backend().scripts.last().unwrap();
        assert_eq!(
            script,
            "delete element ip svcnet cluster-ip-lb-1 { 172.30.0.2 . tcp . 80 . 0 }\n\
             add element ip svcnet cluster-ip-lb-1 { 172.30.0.2 . tcp . 80 . 0 : 10.0.9.9 . 8080 }\n"
        );
        assert_eq!(
            syncer.sync_ports([(changed.id(), Some(changed))], 2).unwrap().kind,
            SyncKind::NoChange
        );
        assert_eq!(syncer.applied_model().unwrap().ports.len(), 3);
    }
}
