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
use crate::model::ProxyModel;

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
    /// Stale objects and the time (ms) from which they may be deleted.
    stale: BTreeMap<Stale, u64>,
    stale_grace_ms: u64,
}

impl<B: Backend> Syncer<B> {
    pub fn new(backend: B) -> Self {
        Syncer {
            backend,
            compiled: None,
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

    /// Brings the kernel to `model`. `now_ms` is a monotonic clock reading. On error the
    /// previous rules stay in force (transactions are atomic) and the next sync is full.
    pub fn sync(&mut self, model: ProxyModel, now_ms: u64) -> Result<SyncReport, BackendError> {
        let Some(mut compiled) = self.compiled.take() else {
            return self.full(CompiledModel::new(model));
        };
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
        let stale: Vec<(Stale, bool)> = self.stale.iter().map(|(s, at)| (s.clone(), *at <= now_ms)).collect();
        let plan = diff::plan(&changes, &|s| compiled.has(s), &stale);
        if plan.ops.is_empty() {
            self.compiled = Some(compiled);
            return Ok(SyncReport {
                kind: SyncKind::NoChange,
                operations: 0,
            });
        }
        self.backend.apply(&plan.ops)?;
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
        self.backend.replace(&compiled)?;
        self.stale.clear();
        let operations = compiled.object_count();
        self.compiled = Some(compiled);
        Ok(SyncReport {
            kind: SyncKind::Full,
            operations,
        })
    }

    /// Whether stale objects are waiting for deletion (a later sync will delete them).
    pub fn has_pending_deletions(&self) -> bool {
        !self.stale.is_empty()
    }
}
