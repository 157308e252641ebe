//! `metadata.finalizers` and `deletionTimestamp`, as upstream's generic registry treats them:
//! deleting an object that still has finalizers only marks it (deletionTimestamp now, grace
//! 0); clients cannot set or clear the mark, nor add finalizers once it is set; the update
//! that removes the last finalizer of a marked object removes the object. Pure: the clock is
//! passed in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use svcnet_core::status::Status;

/// Whether deleting the object only marks it.
pub fn blocks_deletion(meta: &ObjectMeta) -> bool {
    meta.finalizers.as_ref().is_some_and(|f| !f.is_empty())
}

/// Marks the object deleted at `now`; false if it already was.
pub fn mark(meta: &mut ObjectMeta, now: Timestamp) -> bool {
    if meta.deletion_timestamp.is_some() {
        return false;
    }
    meta.deletion_timestamp = Some(Time(now));
    meta.deletion_grace_period_seconds = Some(0);
    true
}

/// Whether the object is marked and its last finalizer is gone: it is removed.
pub fn done(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && !blocks_deletion(meta)
}

/// The deletion mark of an update comes from the stored object; a marked object takes no new
/// finalizers (422, upstream's message).
pub fn carry(old: &ObjectMeta, new: &mut ObjectMeta, kind: &str, group: &str) -> Result<(), Box<Status>> {
    new.deletion_timestamp = old.deletion_timestamp.clone();
    new.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
    if old.deletion_timestamp.is_none() {
        return Ok(());
    }
    let before = old.finalizers.as_deref().unwrap_or_default();
    let added: Vec<&String> = new
        .finalizers
        .iter()
        .flatten()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
    let error = svcnet_core::field::FieldError::forbidden(
        svcnet_core::field::FieldPath::new("metadata").child("finalizers"),
        format!(
            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            list.join(", ")
        ),
    );
    let name = new.name.as_deref().unwrap_or("");
    Err(Box::new(Status::invalid(group, kind, name, &[error])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn finalizers_turn_a_delete_into_a_mark() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut m = meta(&["example.com/cleanup"]);
        assert!(blocks_deletion(&m));
        assert!(mark(&mut m, now));
        assert_eq!(m.deletion_grace_period_seconds, Some(0));
        assert!(
            !mark(&mut m, Timestamp::from_second(1_800_000_100).unwrap()),
            "marked once"
        );
        assert_eq!(m.deletion_timestamp, Some(Time(now)));
        assert!(!done(&m));
        m.finalizers = Some(vec![]);
        assert!(done(&m));
        assert!(!blocks_deletion(&meta(&[])));
    }

    #[test]
    fn updates_keep_the_mark_and_take_no_new_finalizers() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut old = meta(&["a"]);
        mark(&mut old, now);
        // a client cannot clear the mark
        let mut cleared = meta(&["a"]);
        carry(&old, &mut cleared, "ConfigMap", "").unwrap();
        assert_eq!(cleared.deletion_timestamp, old.deletion_timestamp);
        // nor add a finalizer to a marked object
        let mut added = meta(&["a", "b"]);
        let err = carry(&old, &mut added, "Service", "").unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains(r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"b"}"#),
            "{}",
            err.message
        );
        // nor mark an object by update
        let mut unmarked_old = meta(&["a"]);
        let mut sneaky = meta(&["a"]);
        sneaky.deletion_timestamp = Some(Time(now));
        unmarked_old.deletion_timestamp = None;
        carry(&unmarked_old, &mut sneaky, "Service", "").unwrap();
        assert!(sneaky.deletion_timestamp.is_none());
    }
}
