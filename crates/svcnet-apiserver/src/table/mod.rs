//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with each
//! kind's upstream columns (see [`columns`]). Pure: the caller passes the clock.

pub mod columns;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::resources::Kind;

/// Whether an `Accept` header asks for a Table (kubectl lists `as=Table` first).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
}

/// What each row carries besides its cells (`includeObject`; upstream's default is the
/// object's metadata, which is all kubectl reads: labels for `--show-labels` and `-L`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }

    /// What a row carries of its object, taken from it (no copy: at 10k objects with their
    /// managedFields, copying was most of a list's cost).
    fn row_object(self, mut item: Value) -> Option<Value> {
        match self {
            Include::None => None,
            Include::Metadata => {
                let mut partial = Map::new();
                partial.insert("kind".into(), "PartialObjectMetadata".into());
                partial.insert("apiVersion".into(), "meta.k8s.io/v1".into());
                partial.insert("metadata".into(), item["metadata"].take());
                Some(Value::Object(partial))
            }
            Include::Object => Some(item),
        }
    }
}

/// The Table for `items`, listed at `resource_version`, aged against `now`.
pub fn table(kind: &Kind, items: Vec<Value>, resource_version: &str, now: Timestamp, include: Include) -> Value {
    let layout = columns::layout(kind.kind);
    let definitions: Vec<Value> = layout
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": "string", "format": if c.name == "Name" { "name" } else { "" },
                   "description": "", "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let cells: Vec<Value> = layout.iter().map(|c| Value::from((c.cell)(&item, now))).collect();
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(object) = include.row_object(item) {
                row.insert("object".into(), object);
            }
            Value::Object(row)
        })
        .collect();
    let mut table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
           "metadata": {"resourceVersion": resource_version},
           "columnDefinitions": definitions});
    table["rows"] = Value::Array(rows);
    table
}

pub(crate) fn age(created: &Value, now: Timestamp) -> String {
    match created.as_str().and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(created) => human_duration(now.as_second() - created.as_second()),
        None => "<unknown>".to_owned(),
    }
}

/// Ages as kubectl prints them: more precision while small, two units at most.
pub fn human_duration(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;
    let s = seconds;
    if s < -1 {
        return "<invalid>".to_owned();
    }
    let s = s.max(0);
    let with = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    match s {
        s if s < 2 * MINUTE => format!("{s}s"),
        s if s < 10 * MINUTE => with(s / MINUTE, "m", s % MINUTE, "s"),
        s if s < 3 * HOUR => format!("{}m", s / MINUTE),
        s if s < 8 * HOUR => with(s / HOUR, "h", s % HOUR / MINUTE, "m"),
        s if s < 2 * DAY => format!("{}h", s / HOUR),
        s if s < 8 * DAY => with(s / DAY, "d", s % DAY / HOUR, "h"),
        s if s < 2 * YEAR => format!("{}d", s / DAY),
        s if s < 8 * YEAR => with(s / YEAR, "y", s % YEAR / DAY, "d"),
        s => format!("{}y", s / YEAR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (300, "5m"),
            (3000, "50m"),
            (4 * 3600 + 120, "4h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (100 * 86400, "100d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
            (-5, "<invalid>"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn rows_carry_metadata_by_default() {
        let kind = &crate::resources::PODS;
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": []}});
        let now = Timestamp::UNIX_EPOCH;
        let t = table(kind, vec![pod.clone()], "1", now, Include::from_query(None));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["a"], "b");
        assert!(t["rows"][0]["object"].get("spec").is_none());
        let t = table(kind, vec![pod.clone()], "1", now, Include::from_query(Some("Object")));
        assert_eq!(t["rows"][0]["object"], pod);
        let t = table(kind, vec![pod.clone()], "1", now, Include::from_query(Some("None")));
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn kubectl_accept_header_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
