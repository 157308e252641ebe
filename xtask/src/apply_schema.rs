//! `cargo xtask gen-apply-schema [--check]`: writes the structure server-side apply merges
//! by: for every type reachable from the served kinds, its fields and, for each list and map,
//! how its elements are told apart (atomic, a set, a map keyed by named fields). It is read
//! from upstream's OpenAPI v3 documents in the `k8s.io/kubernetes` module `upstream/go.mod`
//! pins (the same documents kube-apiserver builds its type converter from), following the
//! rules of kube-openapi's schema conversion: `x-kubernetes-list-type` first, then a patch
//! strategy of `merge` (with a merge key: a keyed map; without: a set), else atomic; a map is
//! atomic only where `x-kubernetes-map-type` says so. Descriptions are left out; defaults
//! stay: a list key a client leaves out takes its default, and a default of `{}` marks a
//! struct Go always writes (a non-pointer field), which an empty object of the type has.
//! `--check` fails when the checked-in file differs from what would be written.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

const OUTPUT: &str = "crates/svcnet-apiserver/src/apply/schema.json";

/// The OpenAPI v3 documents of the group-versions the API server serves writable kinds in.
const DOCUMENTS: &[&str] = &[
    "api__v1",
    "apis__apps__v1",
    "apis__batch__v1",
    "apis__discovery.k8s.io__v1",
    "apis__networking.k8s.io__v1",
    "apis__rbac.authorization.k8s.io__v1",
];

pub fn generate(check: bool) -> Result<()> {
    let source = crate::upstream::module_source("k8s.io/kubernetes")?;
    let mut schemas = Map::new();
    for document in DOCUMENTS {
        let path = source.join(format!("api/openapi-spec/v3/{document}_openapi.json"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)?;
        let Some(found) = doc["components"]["schemas"].as_object() else {
            bail!("{} has no components.schemas", path.display());
        };
        schemas.extend(found.clone());
    }
    let written = serde_json::to_string_pretty(&convert(&schemas)?)? + "\n";
    if check {
        let current = std::fs::read_to_string(OUTPUT).unwrap_or_default();
        if current != written {
            bail!("{OUTPUT} is stale: run `cargo xtask gen-apply-schema`");
        }
        eprintln!("xtask: {OUTPUT} is current");
    } else {
        std::fs::write(OUTPUT, written)?;
        eprintln!("xtask: wrote {OUTPUT}");
    }
    Ok(())
}

/// `{"kinds": {"apps/v1/Deployment": "io.k8s.api.apps.v1.Deployment", …}, "types": {…}}`
/// over every type reachable from a kind.
fn convert(schemas: &Map<String, Value>) -> Result<Value> {
    let mut kinds = BTreeMap::new();
    let mut pending = Vec::new();
    for (name, schema) in schemas {
        for gvk in schema["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (group, version, kind) = (
                gvk["group"].as_str().unwrap_or(""),
                gvk["version"].as_str().unwrap_or(""),
                gvk["kind"].as_str().unwrap_or(""),
            );
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            // meta types (DeleteOptions, WatchEvent, …) are tagged with every group-version
            if !name.starts_with("io.k8s.apimachinery.") {
                kinds.insert(format!("{gv}/{kind}"), Value::from(name.clone()));
                pending.push(name.clone());
            }
        }
    }
    let mut types = BTreeMap::new();
    while let Some(name) = pending.pop() {
        if types.contains_key(&name) {
            continue;
        }
        let schema = schemas
            .get(&name)
            .with_context(|| format!("{name} is referenced but not defined"))?;
        let converted = type_def(schema);
        collect_refs(&converted, &mut pending);
        types.insert(name, converted);
    }
    Ok(json!({ "kinds": kinds, "types": types }))
}

/// A named type: a struct (`fields`, `defaults`, `atomic`) or another type (`type`).
fn type_def(schema: &Value) -> Value {
    let Some(properties) = schema["properties"].as_object() else {
        return json!({ "type": type_ref(schema) });
    };
    let fields: Map<String, Value> = properties.iter().map(|(k, v)| (k.clone(), type_ref(v))).collect();
    let defaults: Map<String, Value> = properties
        .iter()
        .filter_map(|(k, v)| {
            v.get("default")
                .filter(|d| !d.is_array())
                .map(|d| (k.clone(), d.clone()))
        })
        .collect();
    let mut def = json!({ "fields": fields });
    if !defaults.is_empty() {
        def["defaults"] = Value::Object(defaults);
    }
    if schema["x-kubernetes-map-type"] == "atomic" {
        def["atomic"] = true.into();
    }
    def
}

/// A field's type: `"scalar"`, `"deduced"` (free-form), `"untyped"` (an atomic anything),
/// `{"ref": name}`, `{"list": t, "elements": "atomic"|"set"|"map", "keys": […]}` or
/// `{"map": t}`; a map or referenced struct made atomic here carries `"atomic": true`.
fn type_ref(schema: &Value) -> Value {
    // a reference with siblings is written as a one-element allOf
    let schema = match schema["allOf"].as_array().map(Vec::as_slice) {
        Some([only]) => {
            let mut merged = only.clone();
            for (k, v) in schema.as_object().into_iter().flatten().filter(|(k, _)| *k != "allOf") {
                merged[k] = v.clone();
            }
            merged
        }
        _ => schema.clone(),
    };
    let atomic_map = match schema["x-kubernetes-map-type"].as_str() {
        Some("atomic") => Some(true),
        Some("granular") => Some(false),
        _ => None,
    };
    if let Some(reference) = schema["$ref"].as_str() {
        let mut t = json!({ "ref": reference.rsplit('/').next().unwrap_or(reference) });
        if let Some(atomic) = atomic_map {
            t["atomic"] = atomic.into();
        }
        return t;
    }
    match schema["type"].as_str() {
        Some("array") => {
            let items = if schema["items"].is_object() {
                type_ref(&schema["items"])
            } else {
                "untyped".into()
            };
            let (elements, keys) = list_elements(&schema);
            let mut t = json!({ "list": items, "elements": elements });
            if !keys.is_empty() {
                t["keys"] = keys.into();
            }
            t
        }
        Some("object") if schema["additionalProperties"].is_object() => {
            let mut t = json!({ "map": type_ref(&schema["additionalProperties"]) });
            if atomic_map == Some(true) {
                t["atomic"] = true.into();
            }
            t
        }
        Some("object") => "deduced".into(),
        _ => "scalar".into(),
    }
}

/// How a list's elements are identified, by kube-openapi's rules.
fn list_elements(schema: &Value) -> (&'static str, Vec<Value>) {
    let keys = |v: &Value| v.as_array().cloned().unwrap_or_default();
    match schema["x-kubernetes-list-type"].as_str() {
        Some("map") => ("map", keys(&schema["x-kubernetes-list-map-keys"])),
        Some("set") => ("set", Vec::new()),
        Some(_) => ("atomic", Vec::new()),
        None => match schema["x-kubernetes-patch-strategy"].as_str() {
            Some("merge" | "merge,retainKeys") => match schema["x-kubernetes-patch-merge-key"].as_str() {
                Some(key) => ("map", vec![key.into()]),
                None => ("set", Vec::new()),
            },
            _ => ("atomic", Vec::new()),
        },
    }
}

fn collect_refs(t: &Value, into: &mut Vec<String>) {
    if let Some(name) = t["ref"].as_str() {
        into.push(name.to_owned());
    }
    for inner in ["list", "map", "type"] {
        if t.get(inner).is_some_and(Value::is_object) {
            collect_refs(&t[inner], into);
        }
    }
    for field in t["fields"].as_object().into_iter().flatten() {
        collect_refs(field.1, into);
    }
}
