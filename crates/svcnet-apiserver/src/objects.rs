//! Generic object operations over the store for resources without special write logic
//! (everything but Services, whose writes go through the registry): system metadata, name
//! checks, optimistic concurrency, and the status subresource split.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use svcnet_core::field::{FieldError, FieldPath};
use svcnet_core::names;
use svcnet_core::status::Status;
use svcnet_store::{Key, Store, StoreError};

use crate::finalizers;
use crate::resources::Kind;
use crate::write_options::{CONTROLLER_MANAGER, WriteOptions};

pub type Reply<T> = Result<T, Box<Status>>;

fn internal(e: impl std::fmt::Display) -> Box<Status> {
    Box::new(Status::internal(&e.to_string()))
}

pub fn store_error(kind: &Kind, e: StoreError, name: &str) -> Box<Status> {
    let (group, plural) = (kind.group, kind.plural);
    match e {
        StoreError::AlreadyExists(_) => Box::new(Status::already_exists(group, plural, name)),
        StoreError::NotFound(_) => Box::new(Status::not_found(group, plural, name)),
        StoreError::Conflict { .. } => Box::new(Status::conflict(group, plural, name)),
        other => internal(other),
    }
}

fn key(kind: &Kind, namespace: &str, name: &str) -> Key {
    Key::new(&kind.store_name(), if kind.namespaced { namespace } else { "" }, name)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"][field] = value;
}

/// A body of kind `given` (at `api_version`) sent where `kind` belongs, answered as upstream's
/// decoder answers it.
pub fn wrong_kind(kind: &Kind, given: &str, api_version: &str) -> Box<Status> {
    let version = api_version
        .rsplit('/')
        .next()
        .filter(|v| !v.is_empty())
        .unwrap_or(kind.version);
    let internal_group = if kind.group.is_empty() {
        "core"
    } else {
        kind.group.split('.').next().unwrap_or(kind.group)
    };
    Box::new(Status::bad_request(format!(
        "{given} in version {version:?} cannot be handled as a {target}: converting ({version}.{given}) to \
         ({internal_group}.{target}): unknown conversion",
        target = kind.kind
    )))
}

/// Decodes a stored object, stamping the revision it was stored at.
pub fn decode(bytes: &[u8], revision: u64) -> Reply<Value> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(internal)?;
    set_meta(&mut v, "resourceVersion", json!(revision.to_string()));
    Ok(v)
}

pub fn get(store: &Store, kind: &Kind, namespace: &str, name: &str) -> Reply<Value> {
    match store.get(&key(kind, namespace, name)).map_err(internal)? {
        Some(s) => decode(&s.value, s.revision),
        None => Err(Box::new(Status::not_found(kind.group, kind.plural, name))),
    }
}

/// Objects of a kind (in a namespace, or all) and the revision the list is consistent with.
pub fn list(store: &Store, kind: &Kind, namespace: Option<&str>) -> Reply<(Vec<Value>, u64)> {
    let ns = if kind.namespaced { namespace } else { None };
    let (stored, rev) = store.list(&kind.store_name(), ns).map_err(internal)?;
    let items = stored
        .iter()
        .map(|s| decode(&s.value, s.revision))
        .collect::<Reply<Vec<_>>>()?;
    Ok((items, rev))
}

/// The stored objects of a kind (in a namespace), undecoded, and the list's revision.
pub fn list_raw(store: &Store, kind: &Kind, namespace: Option<&str>) -> Reply<(Vec<svcnet_store::Stored>, u64)> {
    let ns = if kind.namespaced { namespace } else { None };
    store.list(&kind.store_name(), ns).map_err(internal)
}

/// One page of stored objects after `after` (namespace, name), undecoded; how many follow;
/// the revision.
pub fn list_page(
    store: &Store,
    kind: &Kind,
    namespace: Option<&str>,
    after: Option<(&str, &str)>,
    limit: usize,
) -> Reply<(Vec<svcnet_store::Stored>, usize, u64)> {
    let ns = if kind.namespaced { namespace } else { None };
    store.list_page(&kind.store_name(), ns, after, limit).map_err(internal)
}

/// Checks the body names the right kind and fills `apiVersion`, `kind` and the namespace.
fn prepare(kind: &Kind, namespace: &str, obj: &mut Value) -> Reply<()> {
    if !obj.is_object() {
        return Err(Box::new(Status::bad_request("the request body must be a JSON object")));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != kind.kind
    {
        return Err(wrong_kind(kind, k, obj["apiVersion"].as_str().unwrap_or("")));
    }
    obj["kind"] = json!(kind.kind);
    obj["apiVersion"] = json!(kind.api_version());
    default_workload(kind, obj);
    if kind.namespaced {
        match meta_str(obj, "namespace") {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(Box::new(Status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                )));
            }
            _ => set_meta(obj, "namespace", json!(namespace)),
        }
    }
    Ok(())
}

fn invalid(kind: &Kind, name: &str, errs: Vec<FieldError>) -> Box<Status> {
    Box::new(Status::invalid(kind.group, kind.kind, name, &errs))
}

/// The kind's defaults (its registration's), applied on every write.
fn default_workload(kind: &Kind, obj: &mut Value) {
    if let Some(strategy) = crate::kinds::of(kind) {
        (strategy.defaults)(obj);
    }
}

/// The kind-specific checks of a new or replaced object: it decodes as its kind (a body that
/// is not the kind's shape, `strategy: "x"`, is refused as upstream's decoder does), then its
/// registration's rules (on an update, unless the kind checks updates by their own rules).
fn validate(kind: &Kind, obj: &Value, update: bool) -> Reply<()> {
    let Some(strategy) = crate::kinds::of(kind) else {
        return Ok(());
    };
    if let Err(e) = (strategy.decode)(obj) {
        return Err(Box::new(Status::bad_request(format!(
            "unable to decode the {}: {e}",
            kind.kind
        ))));
    }
    if update && strategy.update_rules_only {
        return Ok(());
    }
    let errs = (strategy.validate)(obj);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(kind, meta_str(obj, "name").unwrap_or(""), errs))
    }
}

/// POST: stores a new object.
pub fn create(store: &Store, kind: &Kind, namespace: &str, obj: Value, ids: &mut dyn Ids) -> Reply<Value> {
    create_with(store, kind, namespace, obj, ids, WriteOptions::by(CONTROLLER_MANAGER))
}

/// Records an internal writer's changes from `live` (none: a create) in `obj`'s managedFields.
fn record_manager(kind: &Kind, live: Option<&Value>, obj: &mut Value, options: WriteOptions, subresource: &str) {
    if let Some(manager) = options.manager {
        let now = now();
        crate::apply::track_update(
            kind,
            live,
            obj,
            crate::apply::Writer {
                manager,
                subresource,
                now: &now,
            },
        );
    }
}

/// [`create`] with the request's options: a dry run does every check and stores nothing
/// (the object is returned without a resourceVersion).
pub fn create_with(
    store: &Store,
    kind: &Kind,
    namespace: &str,
    mut obj: Value,
    ids: &mut dyn Ids,
    options: WriteOptions,
) -> Reply<Value> {
    prepare(kind, namespace, &mut obj)?;
    validate(kind, &obj, false)?;
    if meta_str(&obj, "resourceVersion").is_some_and(|v| !v.is_empty()) {
        return Err(Box::new(Status::bad_request(
            "resourceVersion should not be set on objects to be created",
        )));
    }
    if meta_str(&obj, "name").unwrap_or("").is_empty()
        && let Some(prefix) = meta_str(&obj, "generateName").filter(|p| !p.is_empty())
    {
        let name = format!("{prefix}{}", ids.name_suffix());
        set_meta(&mut obj, "name", json!(name));
    }
    let name = meta_str(&obj, "name").unwrap_or("").to_owned();
    let path = FieldPath::new("metadata").child("name");
    if name.is_empty() {
        return Err(invalid(
            kind,
            &name,
            vec![FieldError::required(path, "name or generateName is required")],
        ));
    }
    let name_rule = crate::kinds::of(kind).map_or(names::dns1123_subdomain as fn(&str) -> Vec<String>, |s| s.name);
    let msgs = name_rule(&name);
    if !msgs.is_empty() {
        let errs = msgs
            .into_iter()
            .map(|m| FieldError::invalid(path.clone(), name.as_str(), m))
            .collect();
        return Err(invalid(kind, &name, errs));
    }
    crate::namespaces::admit_create(store, kind, namespace, &name)?;
    if let Some(strategy) = crate::kinds::of(kind) {
        (strategy.admit_create)(store, namespace, &mut obj, ids, options.dry_run)?;
    }
    set_meta(&mut obj, "uid", json!(ids.uid()));
    set_meta(&mut obj, "creationTimestamp", json!(now()));
    // a new object is not being deleted, whatever the body says
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
    }
    if kind.tracks_generation {
        set_meta(&mut obj, "generation", json!(1));
    } else if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("generation");
    }
    if kind.kind == "Pod" {
        // a new pod is Pending, whatever status the body carried
        obj["status"] = svcnet_core::workloads::pod_defaults::initial_status(&obj["spec"]);
    }
    record_manager(kind, None, &mut obj, options, "");
    let k = key(kind, namespace, &name);
    if options.dry_run {
        if store.get(&k).map_err(internal)?.is_some() {
            return Err(Box::new(Status::already_exists(kind.group, kind.plural, &name)));
        }
        return Ok(obj);
    }
    store
        .write(|b| {
            set_meta(&mut obj, "resourceVersion", json!((b.revision() + 1).to_string()));
            b.create(&k, &serde_json::to_vec(&obj).expect("JSON"))
        })
        .map_err(|e| store_error(kind, e, &name))?;
    Ok(obj)
}

/// Which part of a stored object a replace writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object: all but the stored status of kinds with a status subresource, and what
    /// the kind's update preparation keeps (a Namespace's `spec.finalizers`).
    Object,
    /// `/status`: the stored spec is kept.
    Status,
    /// A Namespace's `/finalize`: the object with `spec.finalizers` exactly as sent (no
    /// `kubernetes` added back), the stored status kept.
    Finalizers,
}

/// PUT on the object (`status_only == false`) or on `/status`. The main resource keeps the
/// stored status of kinds with a status subresource; `/status` keeps the stored spec.
pub fn replace(
    store: &Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    obj: Value,
    status_only: bool,
    ids: &mut dyn Ids,
) -> Reply<Value> {
    let part = if status_only { Part::Status } else { Part::Object };
    replace_with(
        store,
        kind,
        namespace,
        name,
        obj,
        part,
        ids,
        WriteOptions::by(CONTROLLER_MANAGER),
    )
}

/// [`replace`] with the request's options (a dry run does every check and writes nothing).
#[allow(clippy::too_many_arguments)]
pub fn replace_with(
    store: &Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    mut obj: Value,
    part: Part,
    ids: &mut dyn Ids,
    options: WriteOptions,
) -> Reply<Value> {
    let status_only = part == Part::Status;
    // `/finalize` writes the finalizers as sent, before defaults would add `kubernetes`
    let finalizers = (part == Part::Finalizers).then(|| obj.pointer("/spec/finalizers").cloned().unwrap_or(json!([])));
    prepare(kind, namespace, &mut obj)?;
    if meta_str(&obj, "name").is_some_and(|n| n != name) {
        return Err(Box::new(Status::bad_request(
            "the name of the object does not match the name on the URL",
        )));
    }
    set_meta(&mut obj, "name", json!(name));
    let k = key(kind, namespace, name);
    let stored = store.get(&k).map_err(internal)?;
    // a replace of a missing object is a create where the kind allows it (checked by the
    // create rules below); never through /status
    let creates = !status_only && crate::kinds::of(kind).is_some_and(|s| s.create_on_update);
    if stored.is_none() && !creates {
        return Err(Box::new(Status::not_found(kind.group, kind.plural, name)));
    }
    if !status_only {
        validate(kind, &obj, stored.is_some())?;
    }
    let Some(stored) = stored else {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        return create_with(store, kind, namespace, obj, ids, options);
    };
    let old: Value = serde_json::from_slice(&stored.value).map_err(internal)?;
    if !status_only && let Some(strategy) = crate::kinds::of(kind) {
        let errs = (strategy.validate_update)(&obj, &old);
        if !errs.is_empty() {
            return Err(invalid(kind, name, errs));
        }
    }
    let expected = match meta_str(&obj, "resourceVersion").filter(|v| !v.is_empty()) {
        Some(v) if v.parse::<u64>().ok() != Some(stored.revision) => {
            return Err(Box::new(Status::conflict(kind.group, kind.plural, name)));
        }
        _ => Some(stored.revision),
    };
    for field in ["uid", "creationTimestamp"] {
        if let Some(v) = old.get("metadata").and_then(|m| m.get(field)) {
            set_meta(&mut obj, field, v.clone());
        }
    }
    match (part, finalizers) {
        // finalizers and owners do not change through /status, as upstream
        (Part::Status, _) => keep_meta(&old, &mut obj, &["finalizers", "ownerReferences"]),
        (Part::Finalizers, Some(finalizers)) => obj["spec"]["finalizers"] = finalizers,
        _ => {
            if let Some(strategy) = crate::kinds::of(kind) {
                (strategy.prepare_update)(&mut obj, &old);
            }
        }
    }
    let finished = carry_deletion(kind, &old, &mut obj)?
        && !crate::kinds::of(kind).is_some_and(|strategy| (strategy.holds_deletion)(&obj));
    if kind.tracks_generation {
        // the generation counts changes of the desired state, not of status or metadata
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let changed = desired_state_changed(&old, &obj, kind, status_only);
        set_meta(&mut obj, "generation", json!(generation + i64::from(changed)));
    } else if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("generation");
    }
    if kind.has_status {
        if status_only {
            for (field, value) in old.as_object().into_iter().flatten() {
                if field != "status" && field != "metadata" {
                    obj[field] = value.clone();
                }
            }
        } else {
            match old.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    if let Some(o) = obj.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
    }
    record_manager(
        kind,
        Some(&old),
        &mut obj,
        options,
        if status_only { "status" } else { "" },
    );
    if options.dry_run {
        return Ok(if finished { old } else { obj });
    }
    store
        .write(|b| {
            set_meta(&mut obj, "resourceVersion", json!((b.revision() + 1).to_string()));
            if finished {
                // the last finalizer of a marked object is gone: so is the object
                b.delete(&k, expected)
            } else {
                b.update(&k, &serde_json::to_vec(&obj).expect("JSON"), expected)
            }
        })
        .map_err(|e| store_error(kind, e, name))?;
    Ok(obj)
}

/// Stores `obj` as it is over the stored object at `revision` (a Conflict if it changed
/// since): for subresources that change what plain updates may not, such as a pod's binding.
pub fn overwrite(
    store: &Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    mut obj: Value,
    revision: u64,
    options: WriteOptions,
) -> Reply<Value> {
    if options.dry_run {
        return Ok(obj);
    }
    let k = key(kind, namespace, name);
    store
        .write(|b| {
            set_meta(&mut obj, "resourceVersion", json!((b.revision() + 1).to_string()));
            b.update(&k, &serde_json::to_vec(&obj).expect("JSON"), Some(revision))
        })
        .map_err(|e| store_error(kind, e, name))?;
    Ok(obj)
}

/// Whether an update changes what the object asks for: its fields other than metadata and
/// (where `/status` is separate) status. A status-only write never does.
fn desired_state_changed(old: &Value, new: &Value, kind: &Kind, status_only: bool) -> bool {
    if status_only {
        return false;
    }
    let desired = |(k, _): &(&String, &Value)| *k != "metadata" && !(kind.has_status && *k == "status");
    let empty = serde_json::Map::new();
    let (old, new) = (old.as_object().unwrap_or(&empty), new.as_object().unwrap_or(&empty));
    !old.iter().filter(desired).eq(new.iter().filter(desired))
}

/// The object's metadata, typed (default where it does not decode).
fn object_meta(obj: &Value) -> ObjectMeta {
    serde_json::from_value(obj["metadata"].clone()).unwrap_or_default()
}

/// Sets `fields` of `obj`'s metadata to the stored object's, removing those it lacks.
fn keep_meta(old: &Value, obj: &mut Value, fields: &[&str]) {
    for field in fields {
        match old["metadata"].get(*field) {
            Some(v) => set_meta(obj, field, v.clone()),
            None => {
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove(*field);
                }
            }
        }
    }
}

/// An update keeps the stored deletion mark and adds no finalizers to a marked object.
/// Returns whether the update removes the object (marked, and its last finalizer gone).
fn carry_deletion(kind: &Kind, old: &Value, obj: &mut Value) -> Reply<bool> {
    let mut meta = object_meta(obj);
    meta.name = meta_str(obj, "name").map(str::to_owned);
    finalizers::carry(&object_meta(old), &mut meta, kind.kind, kind.group)?;
    keep_meta(old, obj, &["deletionTimestamp", "deletionGracePeriodSeconds"]);
    Ok(finalizers::done(&meta))
}

/// DELETE of a pod, gracefully as upstream: a pod bound to a node that is not finished is
/// only marked (`deletionTimestamp` = now + grace, `deletionGracePeriodSeconds`) and its
/// kubelet removes it once its containers stopped; a grace of 0, an unbound or a finished pod
/// goes at once. A shorter grace can cut a running one short. Returns the object and whether
/// it is gone. (A request's preconditions are checked before, for every kind alike.)
pub fn delete_pod(store: &Store, namespace: &str, name: &str, grace: Option<i64>) -> Reply<(Value, bool)> {
    let pod = get(store, &crate::resources::PODS, namespace, name)?;
    let bound = pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let finished = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    let grace = grace
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0);
    if !bound || finished || grace == 0 {
        return delete(store, &crate::resources::PODS, namespace, name).map(|v| (v, true));
    }
    if let Some(current) = pod["metadata"]["deletionGracePeriodSeconds"].as_i64()
        && current <= grace
    {
        return Ok((pod, false));
    }
    let mut marked = pod;
    let at = k8s_openapi::jiff::Timestamp::from_second(now_timestamp().as_second() + grace)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    set_meta(&mut marked, "deletionTimestamp", json!(at.to_string()));
    set_meta(&mut marked, "deletionGracePeriodSeconds", json!(grace));
    mark_deleted(store, &crate::resources::PODS, namespace, name, marked).map(|m| (m, false))
}

/// DELETE: removes an object and returns its last state; an object with finalizers is only
/// marked (and returned marked).
pub fn delete(store: &Store, kind: &Kind, namespace: &str, name: &str) -> Reply<Value> {
    let k = key(kind, namespace, name);
    let stored = store
        .get(&k)
        .map_err(internal)?
        .ok_or_else(|| Box::new(Status::not_found(kind.group, kind.plural, name)))?;
    let mut obj = decode(&stored.value, stored.revision)?;
    let mut meta = object_meta(&obj);
    if !finalizers::blocks_deletion(&meta) {
        let removed = store
            .delete(&k, Some(stored.revision))
            .map_err(|e| store_error(kind, e, name))?;
        return decode(&removed.value, removed.revision);
    }
    if !finalizers::mark(&mut meta, now_timestamp()) {
        return Ok(obj);
    }
    set_meta(&mut obj, "deletionTimestamp", json!(now()));
    set_meta(&mut obj, "deletionGracePeriodSeconds", json!(0));
    mark_deleted(store, kind, namespace, name, obj)
}

/// Writes back `obj`, a stored object now marked for deletion, over the revision it was read
/// at (409 if it changed meanwhile).
pub fn mark_deleted(store: &Store, kind: &Kind, namespace: &str, name: &str, mut obj: Value) -> Reply<Value> {
    let k = key(kind, namespace, name);
    let expected = meta_str(&obj, "resourceVersion").and_then(|v| v.parse::<u64>().ok());
    store
        .write(|b| {
            set_meta(&mut obj, "resourceVersion", json!((b.revision() + 1).to_string()));
            b.update(&k, &serde_json::to_vec(&obj).expect("JSON"), expected)
        })
        .map_err(|e| store_error(kind, e, name))?;
    Ok(obj)
}

/// Where generated names and uids come from (randomness stays at the edge).
pub trait Ids {
    /// Five characters appended to a `generateName` prefix.
    fn name_suffix(&mut self) -> String;
    fn uid(&mut self) -> String;
}

/// Characters upstream uses for generated name suffixes (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Ids from the operating system's random number generator.
pub struct RandomIds(pub rand::rngs::StdRng);

impl RandomIds {
    pub fn new() -> Self {
        RandomIds(rand::SeedableRng::from_os_rng())
    }
}

impl Default for RandomIds {
    fn default() -> Self {
        Self::new()
    }
}

impl Ids for RandomIds {
    fn name_suffix(&mut self) -> String {
        use rand::Rng;
        (0..5)
            .map(|_| NAME_ALPHABET[self.0.random_range(0..NAME_ALPHABET.len())] as char)
            .collect()
    }

    fn uid(&mut self) -> String {
        use rand::Rng;
        uid_from(self.0.random())
    }
}

/// A version-4 UUID from 16 random bytes.
pub fn uid_from(b: [u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
    )
}

/// The current time at Kubernetes' one-second precision.
pub fn now_timestamp() -> k8s_openapi::jiff::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// The current time with sub-second precision (RFC 3339 with a fraction, as upstream writes
/// trigger times), for latency measurements.
pub fn now_precise() -> String {
    now_precise_timestamp().to_string()
}

/// The current time to the nanosecond.
pub fn now_precise_timestamp() -> k8s_openapi::jiff::Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    k8s_openapi::jiff::Timestamp::from_nanosecond(nanos).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// The current time, RFC 3339, as Kubernetes writes timestamps.
pub fn now() -> String {
    now_timestamp().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_strategy_becomes_upstreams_rolling_update() {
        let mut strategy = json!({});
        crate::kinds::defaults::strategy(&mut strategy);
        assert_eq!(
            strategy,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let mut recreate = json!({"type": "Recreate"});
        crate::kinds::defaults::strategy(&mut recreate);
        assert_eq!(recreate, json!({"type": "Recreate"}));
        let mut partial = json!({"rollingUpdate": {"maxSurge": 2}});
        crate::kinds::defaults::strategy(&mut partial);
        assert_eq!(
            partial["rollingUpdate"],
            json!({"maxSurge": 2, "maxUnavailable": "25%"})
        );
        let mut bad = json!("x");
        crate::kinds::defaults::strategy(&mut bad);
        assert_eq!(bad, json!("x"));
    }
}
