//! Field ownership on the write paths: every create, update and patch names a manager (its
//! `fieldManager`, else its user agent's product) and records what it set in managedFields
//! before the object is written; an apply patch is merged and checked for conflicts here.

use super::*;
use crate::apply::{self, Writer};
use crate::write_options::ManagerOptions;

/// The manager of one write request.
pub(super) struct Ownership {
    manager: String,
    force: bool,
    now: String,
}

impl Ownership {
    /// From the request's `fieldManager`, `force` and user agent; `options_kind` names the
    /// options in errors.
    pub(super) fn of(request: &Request, options_kind: &str, apply: bool) -> Result<Self, Box<Status>> {
        let options = ManagerOptions::from_query(&query_pairs(request.uri()), options_kind, apply)?;
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(Ownership {
            manager: options.manager(user_agent),
            force: options.force,
            now: objects::now(),
        })
    }

    fn writer<'a>(&'a self, subresource: &'a str) -> Writer<'a> {
        Writer {
            manager: &self.manager,
            subresource,
            now: &self.now,
        }
    }

    /// Records an update of `live` (none: a create) into `body`, judged on the body as the
    /// kind's defaults complete it (upstream decodes with defaults before tracking).
    pub(super) fn record_update(&self, kind: &Kind, live: Option<&Value>, body: &mut Value, subresource: &str) {
        let mut defaulted = with_defaults(kind, body);
        apply::track_update(kind, live, &mut defaulted, self.writer(subresource));
        let managed = defaulted
            .pointer_mut("/metadata/managedFields")
            .map(Value::take)
            .unwrap_or_default();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            if managed.is_null() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), managed);
            }
        }
    }

    /// The object an apply of `config` makes of `live`.
    pub(super) fn apply(
        &self,
        kind: &Kind,
        live: Option<&Value>,
        config: &Value,
        subresource: &str,
    ) -> Result<Value, Box<Status>> {
        apply::apply(kind, live, config, self.writer(subresource), self.force)
    }
}

/// `body` with its kind's defaults, as a copy (the write path defaults the real one).
fn with_defaults(kind: &Kind, body: &Value) -> Value {
    if *kind == resources::SERVICES {
        if let Ok(mut svc) = serde_json::from_value::<Service>(body.clone()) {
            svcnet_core::service::defaults::apply_defaults(&mut svc);
            if let Ok(v) = serde_json::to_value(svc) {
                return v;
            }
        }
        return body.clone();
    }
    let mut copy = body.clone();
    if let Some(strategy) = crate::kinds::of(kind) {
        (strategy.defaults)(&mut copy);
    }
    copy
}
