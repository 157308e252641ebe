//! `metadata.managedFields`: which manager owns which fields, decoded, encoded in upstream's
//! order, and changed by a write the way structured-merge-diff changes it.

use serde_json::{Map, Value};

use super::fieldset::{Path, Set};
use super::typed::Comparison;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One manager's entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub subresource: String,
    /// RFC 3339, whole seconds.
    pub time: Option<String>,
    pub fields: Set,
}

impl Entry {
    pub fn new(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> Self {
        Entry {
            manager: manager.to_owned(),
            operation,
            api_version: api_version.to_owned(),
            subresource: subresource.to_owned(),
            time: None,
            fields: Set::default(),
        }
    }

    /// Whether two entries are the same manager: an applier is one whatever version it
    /// applied in; an updater is one per version.
    pub fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How conflict messages name the manager (`"kubectl-edit" using apps/v1`).
    pub fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text = format!("{text} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            text = format!("{text} using {}", self.api_version);
        }
        text
    }
}

/// The entries of `metadata.managedFields`, or why they cannot be read.
pub fn decode(value: &Value) -> Result<Vec<Entry>, String> {
    let Some(list) = value.as_array() else {
        return Err("managedFields must be a list".into());
    };
    let mut entries: Vec<Entry> = Vec::new();
    for item in list {
        let text = |field: &str| item.get(field).and_then(Value::as_str).unwrap_or("");
        let operation = match text("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => return Err(format!("unknown operation {other:?}")),
        };
        let fields = match item.get("fieldsV1") {
            None | Some(Value::Null) => Set::default(),
            Some(v) => {
                if !matches!(text("fieldsType"), "FieldsV1") {
                    return Err(format!("unknown fieldsType {:?}", text("fieldsType")));
                }
                Set::from_fields_v1(v)?
            }
        };
        let entry = Entry {
            manager: text("manager").to_owned(),
            operation,
            api_version: text("apiVersion").to_owned(),
            subresource: text("subresource").to_owned(),
            time: item.get("time").and_then(Value::as_str).map(str::to_owned),
            fields,
        };
        if entries.iter().any(|e| e.same_manager(&entry)) {
            return Err(format!("found duplicate manager {}", entry.describe()));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// The entries as `metadata.managedFields`, in upstream's order (operation, time, manager,
/// version, subresource); empty entries are left out.
pub fn encode(entries: &[Entry]) -> Value {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    sorted.sort_by(|a, b| {
        (
            a.operation.as_str(),
            a.time.as_deref().unwrap_or(""),
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation.as_str(),
                b.time.as_deref().unwrap_or(""),
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        sorted
            .into_iter()
            .map(|e| {
                let mut entry = Map::new();
                entry.insert("manager".into(), e.manager.clone().into());
                entry.insert("operation".into(), e.operation.as_str().into());
                entry.insert("apiVersion".into(), e.api_version.clone().into());
                if let Some(time) = &e.time {
                    entry.insert("time".into(), time.clone().into());
                }
                entry.insert("fieldsType".into(), "FieldsV1".into());
                entry.insert("fieldsV1".into(), e.fields.to_fields_v1());
                if !e.subresource.is_empty() {
                    entry.insert("subresource".into(), e.subresource.clone().into());
                }
                Value::Object(entry)
            })
            .collect(),
    )
}

/// How many update managers an object keeps (upstream's cap).
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager that holds what the oldest updaters owned once there are too many.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Keeps at most `max` update entries, as upstream does after every update: oldest first
/// (ties by name), each updater whose API version an older one already had is merged into
/// that version's `ancient-changes` entry (the first of the version becoming it), until few
/// enough are left. Appliers are never merged.
pub fn cap_updaters(entries: &mut Vec<Entry>, max: usize) {
    entries.retain(|e| !e.fields.is_empty());
    let updaters = entries.iter().filter(|e| e.operation == Operation::Update).count();
    if updaters <= max {
        return;
    }
    let mut oldest_first: Vec<Entry> = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .cloned()
        .collect();
    oldest_first.sort_by(|a, b| {
        (
            a.time.as_deref().unwrap_or(""),
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.time.as_deref().unwrap_or(""),
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let mut first_of_version: Vec<(String, Entry)> = Vec::new();
    let mut left = updaters;
    for updater in oldest_first {
        if left <= max {
            break;
        }
        let bucket = Entry::new(ANCIENT_CHANGES, Operation::Update, &updater.api_version, "");
        let first = first_of_version
            .iter()
            .find(|(v, _)| *v == updater.api_version)
            .map(|(_, e)| e.clone());
        let first = match first {
            None => {
                first_of_version.push((updater.api_version.clone(), updater));
                continue;
            }
            // the bucket is never merged into itself
            Some(_) if updater.same_manager(&bucket) => continue,
            Some(first) => first,
        };
        if !entries.iter().any(|e| e.same_manager(&bucket)) {
            // the version's first updater becomes its bucket
            if let Some(e) = entries.iter_mut().find(|e| e.same_manager(&first)) {
                e.manager = ANCIENT_CHANGES.to_owned();
                e.subresource = String::new();
            }
        }
        entries.retain(|e| !e.same_manager(&updater));
        if let Some(e) = entries.iter_mut().find(|e| e.same_manager(&bucket)) {
            e.fields = e.fields.union(&updater.fields);
            e.time = updater.time.clone();
        }
        left -= 1;
    }
}

/// A field another manager owns and a write would change.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub path: Path,
}

/// What the other managers lose to a write that changed `changes`: the fields it added or
/// modified (conflicts, refused unless `force`) and those it removed. `writer` is skipped.
pub fn take_from_others(
    entries: &mut [Entry],
    writer: Option<usize>,
    changes: &Comparison,
    force: bool,
) -> Result<(), Vec<Conflict>> {
    let changed = changes.modified.union(&changes.added);
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) == writer {
            continue;
        }
        let taken = entry.fields.intersection(&changed);
        conflicts.extend(taken.paths().into_iter().map(|path| Conflict {
            manager: entry.describe(),
            path,
        }));
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| a.manager.cmp(&b.manager));
        return Err(conflicts);
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != writer {
            entry.fields = entry.fields.difference(&changed).difference(&changes.removed);
        }
    }
    Ok(())
}

/// Upstream's 409 message for conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager,
            super::fieldset::path_string(&only.path)
        );
    }
    let mut lines = Vec::new();
    let mut last: Option<&str> = None;
    for c in conflicts {
        if last != Some(c.manager.as_str()) {
            lines.push(format!("conflicts with {}:", c.manager));
            last = Some(&c.manager);
        }
        lines.push(format!("- {}", super::fieldset::path_string(&c.path)));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::super::fieldset::Element;
    use super::*;
    use serde_json::json;

    fn entry(manager: &str, operation: Operation, fields: Value) -> Entry {
        Entry {
            fields: Set::from_fields_v1(&fields).unwrap(),
            time: Some("2026-01-01T00:00:00Z".into()),
            ..Entry::new(manager, operation, "apps/v1", "")
        }
    }

    #[test]
    fn entries_round_trip_in_upstream_order() {
        let entries = vec![
            entry("kubectl-edit", Operation::Update, json!({"f:spec": {"f:paused": {}}})),
            entry("kubectl", Operation::Apply, json!({"f:spec": {"f:replicas": {}}})),
            entry("gone", Operation::Update, json!({})),
        ];
        let encoded = encode(&entries);
        assert_eq!(encoded.as_array().unwrap().len(), 2, "an empty entry is left out");
        assert_eq!(encoded[0]["manager"], "kubectl");
        assert_eq!(encoded[1]["fieldsType"], "FieldsV1");
        let decoded = decode(&encoded).unwrap();
        assert_eq!(decoded, entries[..2].iter().rev().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn the_oldest_updaters_of_a_version_merge_into_ancient_changes_beyond_ten() {
        let updater = |i: usize, version: &str| Entry {
            fields: Set::from_fields_v1(&json!({ "f:metadata": { "f:labels": { format!("f:l{i}"): {} } } })).unwrap(),
            time: Some(format!("2026-01-01T00:00:{i:02}Z")),
            ..Entry::new(&format!("m{i:02}"), Operation::Update, version, "")
        };
        let mut entries: Vec<Entry> = (1..=12).map(|i| updater(i, "v1")).collect();
        entries.push(entry("applier", Operation::Apply, json!({"f:data": {}})));
        cap_updaters(&mut entries, MAX_UPDATE_MANAGERS);
        let names: Vec<&str> = entries.iter().map(|e| e.manager.as_str()).collect();
        assert_eq!(
            names,
            [
                "ancient-changes",
                "m04",
                "m05",
                "m06",
                "m07",
                "m08",
                "m09",
                "m10",
                "m11",
                "m12",
                "applier"
            ]
        );
        let ancient = &entries[0];
        assert_eq!(ancient.time.as_deref(), Some("2026-01-01T00:00:03Z"));
        assert_eq!(
            ancient.fields.to_fields_v1(),
            json!({ "f:metadata": { "f:labels": { "f:l1": {}, "f:l2": {}, "f:l3": {} } } })
        );
        // a second round merges into the existing bucket
        entries.push(updater(13, "v1"));
        cap_updaters(&mut entries, MAX_UPDATE_MANAGERS);
        assert_eq!(entries.iter().filter(|e| e.operation == Operation::Update).count(), 10);
        assert!(entries[0].fields.to_fields_v1()["f:metadata"]["f:labels"]["f:l4"].is_object());
        // the first updater of each version is kept until a second one of that version comes
        let mut mixed: Vec<Entry> = (1..=11)
            .map(|i| updater(i, if i == 1 { "v1beta1" } else { "v1" }))
            .collect();
        cap_updaters(&mut mixed, MAX_UPDATE_MANAGERS);
        let names: Vec<&str> = mixed.iter().map(|e| e.manager.as_str()).collect();
        assert_eq!(names[..2], ["m01", "ancient-changes"]);
        assert_eq!(mixed.len(), 10);
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(decode(&json!({})).is_err());
        assert!(decode(&json!([{"manager": "a", "operation": "Patch"}])).is_err());
        assert!(
            decode(&json!([{"manager": "a", "operation": "Update", "fieldsType": "FieldsV2", "fieldsV1": {}}]))
                .is_err()
        );
        let twice = json!([{"manager": "a", "operation": "Apply", "apiVersion": "v1"}, {"manager": "a", "operation": "Apply", "apiVersion": "v2"}]);
        assert_eq!(decode(&twice).unwrap_err(), "found duplicate manager \"a\"");
    }

    #[test]
    fn conflicts_name_the_owner_and_force_takes_the_fields() {
        let mut entries = vec![
            entry(
                "kubectl-client-side-apply",
                Operation::Update,
                json!({"f:spec": {"f:replicas": {}, "f:paused": {}}}),
            ),
            entry("mine", Operation::Apply, json!({})),
        ];
        let mut changes = Comparison::default();
        changes
            .modified
            .insert(&[Element::Field("spec".into()), Element::Field("replicas".into())]);
        let conflicts = take_from_others(&mut entries, Some(1), &changes, false).unwrap_err();
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        take_from_others(&mut entries, Some(1), &changes, true).unwrap();
        assert_eq!(entries[0].fields.to_fields_v1(), json!({"f:spec": {"f:paused": {}}}));
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let f = |n: &str| Element::Field(n.into());
        let conflicts = vec![
            Conflict {
                manager: "\"a\"".into(),
                path: vec![f("x")],
            },
            Conflict {
                manager: "\"a\"".into(),
                path: vec![f("y")],
            },
            Conflict {
                manager: "\"b\"".into(),
                path: vec![f("z")],
            },
        ];
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .x\n- .y\nconflicts with \"b\":\n- .z"
        );
    }
}
