//! Server-side apply and field ownership, as kube-apiserver's field manager does them: every
//! write records in `metadata.managedFields` which manager set which fields (an update takes
//! what it changed; an apply owns exactly what its configuration names), and an apply that
//! would change a field another manager owns is refused with a 409 naming the field, unless
//! forced. Pure: the caller passes the live object, the time and the manager.
//!
//! The walks follow structured-merge-diff (`typed`), over the types upstream's OpenAPI
//! documents declare (`schema`); `fieldset` is the `fieldsV1` path set and `managers` the
//! entries. Not done as upstream: the cap of ten update managers (older ones are merged into
//! one there), and the interplay with client-side apply's last-applied annotation.

mod fieldset;
mod last_applied;
mod managers;
mod schema;
mod typed;

use serde_json::{Map, Value};
use svcnet_core::status::{Status, StatusCause, StatusDetails};

use crate::resources::Kind;
use managers::{Entry, Operation};
use schema::{Schema, TypeRef};

/// Who writes, through which subresource, and when.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// `""` for the object itself, `"status"`, `"scale"`.
    pub subresource: &'a str,
    /// RFC 3339, whole seconds.
    pub now: &'a str,
}

/// The manager upstream names a writer that names none: its user agent up to the first `/`,
/// at most 128 bytes.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let name = user_agent.split('/').next().unwrap_or("");
    let mut end = name.len().min(128);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// The field manager kubectl applies as; only its applies hand over client-side apply's
/// annotation, as upstream's.
const KUBECTL: &str = "kubectl";

/// Metadata the field manager never tracks.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// The part of `object` whose fields a write through `subresource` is tracked for: not the
/// type or identity, not the status through the object itself, only the status through
/// `/status`.
fn tracked(kind: &Kind, subresource: &str, object: &Value) -> Value {
    let mut out = match object {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    out.remove("apiVersion");
    out.remove("kind");
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        for field in UNTRACKED_METADATA {
            meta.remove(*field);
        }
    }
    match subresource {
        "status" => out.retain(|k, _| k == "status"),
        _ if kind.has_status => {
            out.remove("status");
        }
        _ => {}
    }
    Value::Object(out)
}

/// `set` without `metadata` itself (what is in it stays), which is never tracked either.
fn without_metadata(set: fieldset::Set) -> fieldset::Set {
    let mut metadata = fieldset::Set::default();
    metadata.insert(&[fieldset::Element::Field("metadata".into())]);
    set.difference(&metadata)
}

/// What changed between the tracked parts of two objects.
fn changes(kind: &Kind, t: &TypeRef, subresource: &str, old: &Value, new: &Value) -> Result<typed::Comparison, String> {
    let c = typed::compare(
        Schema::get(),
        t,
        &comparable(kind, t, subresource, old),
        &comparable(kind, t, subresource, new),
    )?;
    Ok(typed::Comparison {
        added: without_metadata(c.added),
        modified: without_metadata(c.modified),
        removed: without_metadata(c.removed),
    })
}

/// The tracked part of a stored object as upstream's field manager sees it: with every
/// struct Go always writes, so filling one in is not adding it.
fn comparable(kind: &Kind, t: &TypeRef, subresource: &str, object: &Value) -> Value {
    tracked(kind, subresource, &typed::with_go_structs(Schema::get(), t, object))
}

fn type_of(kind: &Kind) -> Option<TypeRef> {
    Schema::get().kind(&kind.api_version(), kind.kind)
}

/// The entries an object carries; unreadable ones count as none.
fn entries_of(object: Option<&Value>) -> Vec<Entry> {
    match object.map(|o| &o["metadata"]["managedFields"]) {
        Some(v @ Value::Array(_)) => managers::decode(v).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "unreadable managedFields are dropped");
            Vec::new()
        }),
        _ => Vec::new(),
    }
}

fn set_entries(object: &mut Value, entries: &[Entry]) {
    let encoded = managers::encode(entries);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if encoded.as_array().is_some_and(Vec::is_empty) {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), encoded);
        }
    }
}

/// Records an update (a create when `live` is none; a PUT or a non-apply PATCH) in `new`'s
/// managedFields: the writer takes every field it added or changed, from whoever owned it,
/// and nobody keeps what it removed. Entries the client sent replace the live ones, as
/// upstream lets a client reset them; an empty list keeps the live ones.
pub fn track_update(kind: &Kind, live: Option<&Value>, new: &mut Value, writer: Writer<'_>) {
    let Some(t) = type_of(kind) else {
        return;
    };
    let sent = new["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|l| !l.is_empty());
    let mut entries = if sent {
        match managers::decode(&new["metadata"]["managedFields"]) {
            Ok(entries) => entries,
            Err(_) => entries_of(live),
        }
    } else {
        entries_of(live)
    };
    let empty = Value::Object(Map::new());
    let changes = match changes(kind, &t, writer.subresource, live.unwrap_or(&empty), new) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "an update's fields could not be compared; its entries are kept");
            set_entries(new, &entries);
            return;
        }
    };
    let _ = managers::take_from_others(&mut entries, None, &changes, true);
    let taken = changes.added.union(&changes.modified);
    if !taken.is_empty() {
        let me = Entry::new(
            writer.manager,
            Operation::Update,
            &kind.api_version(),
            writer.subresource,
        );
        let entry = match entries.iter().position(|e| e.same_manager(&me)) {
            Some(i) => &mut entries[i],
            None => {
                entries.push(me);
                entries.last_mut().expect("just pushed")
            }
        };
        entry.fields = entry.fields.union(&taken);
        entry.time = Some(writer.now.to_owned());
    }
    managers::cap_updaters(&mut entries, managers::MAX_UPDATE_MANAGERS);
    set_entries(new, &entries);
}

/// Go's spelling of an apiVersion in a group-version-kind: the core group is empty (`/v1`).
fn go_group_version(api_version: &str) -> String {
    if api_version.contains('/') {
        api_version.to_owned()
    } else {
        format!("/{api_version}")
    }
}

/// An apply refused.
fn bad_request(message: String) -> Box<Status> {
    Box::new(Status::bad_request(message))
}

/// An apply configuration must name the kind's version (it is checked before its kind).
pub fn check_type(kind: &Kind, config: &Value) -> Result<(), Box<Status>> {
    let sent_version = config["apiVersion"].as_str().unwrap_or("");
    if sent_version == kind.api_version() {
        return Ok(());
    }
    Err(bad_request(format!(
        "invalid object type: {}, Kind={}",
        go_group_version(sent_version),
        config["kind"].as_str().unwrap_or("")
    )))
}

/// The object an apply of `config` by `writer` makes of `live` (none: the apply creates it),
/// with its managedFields: the applier owns exactly what `config` names; what it owned before
/// and no longer names is removed unless another manager owns it; changing a field another
/// manager owns is a conflict (409) unless `force`, which takes the field.
pub fn apply(
    kind: &Kind,
    live: Option<&Value>,
    config: &Value,
    writer: Writer<'_>,
    force: bool,
) -> Result<Value, Box<Status>> {
    let Some(t) = type_of(kind) else {
        return Err(bad_request(format!(
            "server-side apply is not served for {}",
            kind.plural
        )));
    };
    check_type(kind, config)?;
    let api_version = kind.api_version();
    if !config["metadata"]["managedFields"].is_null() {
        return Err(bad_request("metadata.managedFields must be nil".into()));
    }
    let schema = Schema::get();
    // upstream answers an object its type cannot hold with a bare 500
    let typed_error = |what: &str, e: String| {
        let group_version = go_group_version(&api_version);
        let mut status = Status::internal(&e);
        status.message = format!(
            "failed to create typed {what} object ({}/{}; {group_version}, Kind={}): {e}",
            config["metadata"]["namespace"].as_str().unwrap_or(""),
            config["metadata"]["name"].as_str().unwrap_or(""),
            kind.kind
        );
        status.reason = String::new();
        status.details = None;
        Box::new(status)
    };
    let empty = Value::Object(Map::new());
    let mut live_object = live.cloned().unwrap_or_else(|| empty.clone());
    let mut entries = entries_of(live);
    if let Some(meta) = live_object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if live.is_some() && entries.is_empty() {
        // what was there before anyone applied is owned by a manager of its own
        let before = changes(kind, &t, writer.subresource, &empty, &live_object).map_err(|e| typed_error("live", e))?;
        let mut entry = Entry::new(
            "before-first-apply",
            Operation::Update,
            &api_version,
            writer.subresource,
        );
        entry.fields = before.added;
        entries.push(entry);
    }
    let applied_fields = typed::field_set(schema, &t, &tracked(kind, writer.subresource, config))
        .map(without_metadata)
        .map_err(|e| typed_error("patch", e))?;
    let merged = typed::merge(schema, &t, &live_object, config).map_err(|e| typed_error("patch", e))?;
    let me = Entry::new(writer.manager, Operation::Apply, &api_version, writer.subresource);
    let mine = match entries.iter().position(|e| e.same_manager(&me)) {
        Some(i) => i,
        None => {
            entries.push(me);
            entries.len() - 1
        }
    };
    let previously = std::mem::replace(&mut entries[mine].fields, applied_fields);
    entries[mine].api_version = api_version.clone();
    // what the applier let go of and nobody owns goes, unless someone owns what it holds
    let owned = entries
        .iter()
        .fold(fieldset::Set::default(), |all, e| all.union(&e.fields));
    let mut let_go = fieldset::Set::default();
    for path in previously.difference(&owned).paths() {
        if !owned.has_under(&path) {
            let_go.insert(&path);
        }
    }
    let mut new_object = typed::remove(schema, &t, &merged, &let_go);
    if !new_object.is_object() {
        new_object = Value::Object(Map::new());
    }
    let changes =
        changes(kind, &t, writer.subresource, &live_object, &new_object).map_err(|e| typed_error("new", e))?;
    let mut taken = managers::take_from_others(&mut entries, Some(mine), &changes, force);
    // kubectl's own applier takes over, without conflicts, what client-side apply last applied
    // and the object still holds (a conflict leaves the entries untouched)
    if let Err(conflicts) = &taken
        && writer.manager == KUBECTL
        && let Some(allowed) = last_applied::handed_over(schema, &t, &api_version, &live_object)
    {
        let left: Vec<managers::Conflict> = conflicts
            .iter()
            .filter(|c| !allowed.contains(&c.path))
            .cloned()
            .collect();
        taken = if left.is_empty() {
            managers::take_from_others(&mut entries, Some(mine), &changes, true)
        } else {
            Err(left)
        };
    }
    if let Err(conflicts) = taken {
        let mut status = Status::conflict(
            kind.group,
            kind.plural,
            config["metadata"]["name"].as_str().unwrap_or(""),
        );
        status.message = managers::conflict_message(&conflicts);
        status.details = Some(StatusDetails {
            causes: conflicts
                .iter()
                .map(|c| StatusCause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with {}", c.manager),
                    field: fieldset::path_string(&c.path),
                })
                .collect(),
            ..Default::default()
        });
        return Err(Box::new(status));
    }
    if !changes.is_same() || live.is_none() {
        entries[mine].time = Some(writer.now.to_owned());
    }
    if writer.manager == KUBECTL {
        last_applied::follow(&mut new_object, config);
    }
    set_entries_on(&mut new_object, &entries);
    Ok(new_object)
}

/// Like [`set_entries`], making `metadata` when the object has none.
fn set_entries_on(object: &mut Value, entries: &[Entry]) {
    if !object["metadata"].is_object() {
        object["metadata"] = Value::Object(Map::new());
    }
    set_entries(object, entries);
}

#[cfg(test)]
mod tests;
