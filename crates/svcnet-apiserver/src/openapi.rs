//! OpenAPI v3 discovery (`/openapi/v3` and one document per group-version): the paths and
//! operations of the served resources with their group-version-kind and query parameters.
//! Schemas are not published; clients learn from the documents that writes take
//! `fieldValidation` (so kubectl leaves validation to the server instead of failing to
//! download schemas).

use serde_json::{Value, json};

use crate::resources::{ALL, Kind};

/// The group-version path (`api/v1`, `apis/discovery.k8s.io/v1`) a kind is served under.
fn group_version_path(kind: &Kind) -> String {
    if kind.group.is_empty() {
        format!("api/{}", kind.version)
    } else {
        format!("apis/{}/{}", kind.group, kind.version)
    }
}

/// A stable tag for a document's contents (clients cache by it).
fn hash(doc: &Value) -> String {
    // FNV-1a over the serialized document: deterministic across runs and builds
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc.to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: where each group-version's document is.
pub fn root() -> Value {
    let mut paths = serde_json::Map::new();
    for kind in ALL {
        let gv = group_version_path(kind);
        if paths.contains_key(&gv) {
            continue;
        }
        let doc = group_version(&gv).expect("served group-version");
        paths.insert(
            gv.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", hash(&doc)) }),
        );
    }
    json!({ "paths": paths })
}

fn parameters() -> Value {
    json!([
        { "name": "fieldValidation", "in": "query", "schema": { "type": "string", "uniqueItems": true },
          "description": "Ignore, Warn (default) or Strict: how unknown fields in the body are handled" },
        { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
    ])
}

fn operation(kind: &Kind, action: &str, with_body: bool) -> Value {
    let mut op = json!({
        "operationId": format!("{action}{}", kind.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": kind.group, "version": kind.version, "kind": kind.kind },
        "responses": { "200": { "description": "OK" } },
    });
    if with_body {
        op["parameters"] = parameters();
    }
    op
}

/// The document of one group-version (`None` if nothing is served there).
pub fn group_version(gv: &str) -> Option<Value> {
    let kinds: Vec<&Kind> = ALL.into_iter().filter(|k| group_version_path(k) == gv).collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for kind in kinds {
        let base = if kind.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", kind.plural)
        } else {
            format!("/{gv}/{}", kind.plural)
        };
        paths.insert(
            base.clone(),
            json!({ "get": operation(kind, "list", false), "post": operation(kind, "post", true),
                    "delete": operation(kind, "deletecollection", false) }),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({ "get": operation(kind, "get", false), "put": operation(kind, "put", true),
                    "patch": operation(kind, "patch", true), "delete": operation(kind, "delete", false) }),
        );
        if kind.has_status {
            paths.insert(
                format!("{base}/{{name}}/status"),
                json!({ "get": operation(kind, "get", false), "put": operation(kind, "put", true),
                        "patch": operation(kind, "patch", true) }),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.37.0" },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lists_every_group_version_with_a_stable_hash() {
        let r = root();
        let url = r["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
        assert_eq!(root(), r);
        assert!(r["paths"]["apis/discovery.k8s.io/v1"].is_object());
    }

    #[test]
    fn patch_operations_carry_kind_and_field_validation() {
        let doc = group_version("api/v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
        assert!(doc["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        assert!(group_version("apis/nope/v1").is_none());
    }
}
