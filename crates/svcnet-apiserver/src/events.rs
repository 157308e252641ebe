//! Events (core/v1) the in-process controllers record about the objects they act on, as
//! upstream's controllers do (`kubectl describe` lists them), and their expiry after an hour
//! (upstream's default `--event-ttl`).

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use svcnet_store::Store;

use crate::objects::{self, Ids, Reply};
use crate::resources::EVENTS;

/// How long an event is kept after it was last seen.
pub const TTL_SECONDS: i64 = 3600;

/// A Normal event about `object` (a stored object as JSON) from `component`, at `now`. Named
/// as upstream names them: the object's name and the time in hexadecimal nanoseconds.
pub fn normal(object: &Value, reason: &str, message: &str, component: &str, now: Timestamp) -> Value {
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    let at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": format!("{name}.{:x}", now.as_nanosecond()), "namespace": meta["namespace"] },
        "involvedObject": {
            "apiVersion": object["apiVersion"],
            "kind": object["kind"],
            "name": name,
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": { "component": component },
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "",
    })
}

/// The event with the reporting host (a kubelet's node) added to its source.
pub fn from_host(mut event: Value, host: &str) -> Value {
    event["source"]["host"] = json!(host);
    event["reportingInstance"] = json!(host);
    event
}

/// Stores a Normal event about `object`. Recording is best effort, as upstream's recorder:
/// a failure is logged, never the caller's error.
pub fn record(store: &Store, ids: &mut dyn Ids, object: &Value, reason: &str, message: &str, component: &str) {
    let event = normal(object, reason, message, component, objects::now_precise_timestamp());
    store_event(store, ids, object, event, reason);
}

/// Stores a Warning event about `object`, best effort like [`record`].
pub fn record_warning(store: &Store, ids: &mut dyn Ids, object: &Value, reason: &str, message: &str, component: &str) {
    let mut event = normal(object, reason, message, component, objects::now_precise_timestamp());
    event["type"] = json!("Warning");
    store_event(store, ids, object, event, reason);
}

fn store_event(store: &Store, ids: &mut dyn Ids, object: &Value, event: Value, reason: &str) {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
    if let Err(status) = objects::create(store, &EVENTS, namespace, event, ids) {
        tracing::debug!(reason, error = %status.message, "event not recorded");
    }
}

/// Whether an event was last seen more than [`TTL_SECONDS`] before `now`.
pub fn expired(event: &Value, now: Timestamp) -> bool {
    let last = ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|f| event[*f].as_str())
        .or_else(|| event["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| t.parse::<Timestamp>().ok());
    last.is_some_and(|t| now.as_second() - t.as_second() > TTL_SECONDS)
}

/// Deletes the expired events; returns how many.
pub fn expire(store: &Store, now: Timestamp) -> Reply<usize> {
    let (events, _) = objects::list(store, &EVENTS, None)?;
    let mut deleted = 0;
    for event in events.iter().filter(|e| expired(e, now)) {
        let meta = &event["metadata"];
        let (ns, name) = (
            meta["namespace"].as_str().unwrap_or(""),
            meta["name"].as_str().unwrap_or(""),
        );
        deleted += usize::from(objects::delete(store, &EVENTS, ns, name).is_ok());
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_and_source() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": "web-1", "namespace": "default", "uid": "u1", "resourceVersion": "7"}});
        let now = Timestamp::new(1_800_000_000, 5).unwrap();
        let e = normal(
            &rs,
            "SuccessfulCreate",
            "Created pod: web-1-abcde",
            "replicaset-controller",
            now,
        );
        assert_eq!(
            e["metadata"]["name"],
            format!("web-1.{:x}", 1_800_000_000_000_000_005_i128)
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert_eq!(
            e["involvedObject"],
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "namespace": "default", "uid": "u1", "resourceVersion": "7"})
        );
        assert_eq!(e["source"]["component"], "replicaset-controller");
        assert_eq!(e["lastTimestamp"], "2027-01-15T08:00:00Z");
        let typed: k8s_openapi::api::core::v1::Event = serde_json::from_value(e.clone()).expect("a valid Event");
        assert_eq!(typed.count, Some(1));
        let hosted = from_host(e, "node-1");
        assert_eq!(
            (&hosted["source"]["host"], &hosted["reportingInstance"]),
            (&json!("node-1"), &json!("node-1"))
        );
    }

    #[test]
    fn events_expire_an_hour_after_they_were_last_seen() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |secs_ago: i64| {
            let t = Timestamp::from_second(1_800_000_000 - secs_ago).unwrap();
            json!({"lastTimestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()})
        };
        assert!(!expired(&at(3_600), now));
        assert!(expired(&at(3_601), now));
        assert!(expired(&json!({"eventTime": "2000-01-01T00:00:00.000000Z"}), now));
        assert!(!expired(&json!({}), now), "an event without times is kept");
    }
}
