//! Keeps the kernel in step with the desired ruleset.
//!
//! The first sync, and the first after any failure, is full: it replaces our tables in one
//! transaction (adopting whatever a previous run left, without touching conntrack). Later
//! syncs apply only the difference from the last ruleset that was applied successfully, and
//! a sync with no difference does nothing at all. The kernel is never listed. Removed chains
//! and sets are deleted once they have been unused for `stale_grace_ms`.

use std::collections::BTreeMap;

use crate::backend::{Backend, BackendError};
use crate::diff::{self, Stale};
use crate::ir::Ruleset;

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
    applied: Option<Ruleset>,
    /// Stale objects and the time (ms) from which they may be deleted.
    stale: BTreeMap<Stale, u64>,
    stale_grace_ms: u64,
}

impl<B: Backend> Syncer<B> {
    pub fn new(backend: B) -> Self {
        Syncer {
            backend,
            applied: None,
            stale: BTreeMap::new(),
            stale_grace_ms: 1000,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The last ruleset the kernel accepted.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// Forces the next sync to be full.
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    /// Brings the kernel to `desired`. `now_ms` is a monotonic clock reading. On error the
    /// previous rules stay in force (the transaction is atomic) and the next sync is full.
    pub fn sync(&mut self, desired: Ruleset, now_ms: u64) -> Result<SyncReport, BackendError> {
        let plan = match &self.applied {
            None => None,
            Some(old) => {
                let stale: Vec<(Stale, bool)> = self.stale.iter().map(|(s, at)| (s.clone(), *at <= now_ms)).collect();
                diff::incremental(old, &desired, &stale)
            }
        };
        let report = match plan {
            None => {
                let ops = diff::full(&desired);
                if let Err(e) = self.backend.apply(&ops) {
                    self.applied = None;
                    return Err(e);
                }
                self.stale.clear();
                SyncReport {
                    kind: SyncKind::Full,
                    operations: ops.len(),
                }
            }
            Some(inc) => {
                if inc.ops.is_empty() {
                    return Ok(SyncReport {
                        kind: SyncKind::NoChange,
                        operations: 0,
                    });
                }
                if let Err(e) = self.backend.apply(&inc.ops) {
                    self.applied = None;
                    return Err(e);
                }
                // deleted or wanted again: no longer stale
                self.stale.retain(|s, at| *at > now_ms && !diff::wanted(&desired, s));
                for s in inc.newly_stale {
                    self.stale.insert(s, now_ms + self.stale_grace_ms);
                }
                SyncReport {
                    kind: SyncKind::Incremental,
                    operations: inc.ops.len(),
                }
            }
        };
        self.applied = Some(desired);
        Ok(report)
    }

    /// Whether stale objects are waiting for deletion (a later sync will delete them).
    pub fn has_pending_deletions(&self) -> bool {
        !self.stale.is_empty()
    }
}
