//! OpenAPI v3 discovery (`/openapi/v3` and one document per group-version): the paths and
//! operations of the served resources with their group-version-kind and query parameters,
//! and the schemas of their kinds (from k8s-openapi's, with upstream's descriptions) tagged
//! with `x-kubernetes-group-version-kind`, which `kubectl explain` reads. Clients also learn
//! from the documents that writes take `fieldValidation`, so kubectl leaves validation to the
//! server. Documents are built once and cached: schemas are large and never change.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::generate::{SchemaGenerator, SchemaSettings};
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

/// Every group-version's document with its hash, built on first use.
fn documents() -> &'static BTreeMap<String, (Value, String)> {
    static DOCUMENTS: OnceLock<BTreeMap<String, (Value, String)>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut documents = BTreeMap::new();
        for kind in ALL {
            let gv = group_version_path(kind);
            documents.entry(gv).or_insert_with_key(|gv| {
                let doc = build_group_version(gv);
                let tag = hash(&doc);
                (doc, tag)
            });
        }
        documents
    })
}

/// Every group-version's document, by its path (`api/v1`, `apis/apps/v1`).
pub fn documents_by_group_version() -> impl Iterator<Item = (&'static String, &'static Value)> {
    documents().iter().map(|(gv, (doc, _))| (gv, doc))
}

/// `/openapi/v3`: where each group-version's document is.
pub fn root() -> Value {
    let paths: serde_json::Map<String, Value> = documents()
        .iter()
        .map(|(gv, (_, tag))| {
            (
                gv.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{gv}?hash={tag}") }),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// Registers `T`'s schema (and everything it refers to) and returns its name.
/// The schema name of a served kind, its schema registered in `generator`.
fn define_kind(generator: &mut SchemaGenerator, kind: &Kind) -> Option<String> {
    crate::kinds::of(kind).map(|strategy| (strategy.schema)(generator))
}

/// `components.schemas` for `kinds`: their schemas and every schema they refer to, in
/// OpenAPI 3 form (`$ref`s to `#/components/schemas/...`), each kind's tagged with its
/// group-version-kind.
fn schemas(kinds: &[&Kind]) -> serde_json::Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let named: Vec<(String, &Kind)> = kinds
        .iter()
        .filter_map(|kind| define_kind(&mut generator, kind).map(|name| (name, *kind)))
        .collect();
    let mut definitions = generator.take_definitions(true);
    for (name, schema) in definitions.iter_mut() {
        annotate_patch_lists(name, schema);
    }
    for (name, kind) in named {
        if let Some(Value::Object(schema)) = definitions.get_mut(&name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{ "group": kind.group, "version": kind.version, "kind": kind.kind }]),
            );
        }
    }
    definitions
}

/// The strategic-merge key and list-map keys of a list property, as upstream's types declare
/// them (`patchMergeKey`, `listMapKey`); the server's strategic merge uses the same keys.
fn patch_meta(definition: &str, property: &str) -> Option<(&'static str, &'static [&'static str])> {
    let type_name = definition.rsplit('.').next().unwrap_or(definition);
    match (type_name, property) {
        ("ServiceSpec", "ports") => Some(("port", &["port", "protocol"])),
        ("Container" | "EphemeralContainer", "ports") => Some(("containerPort", &["containerPort", "protocol"])),
        ("Container" | "EphemeralContainer", "env") => Some(("name", &["name"])),
        ("PodSpec", "containers" | "initContainers" | "ephemeralContainers" | "volumes") => Some(("name", &["name"])),
        ("NodeStatus", "addresses") => Some(("type", &["type"])),
        ("ObjectMeta", "ownerReferences") => Some(("uid", &["uid"])),
        (_, "conditions") => Some(("type", &["type"])),
        _ => None,
    }
}

/// Marks the list properties of `schema` that merge by key, so clients (kubectl apply)
/// compute strategic merge patches that delete what they remove, as with upstream's schemas.
fn annotate_patch_lists(definition: &str, schema: &mut Value) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (property, value) in properties.iter_mut() {
        let Some((key, map_keys)) = patch_meta(definition, property) else {
            continue;
        };
        if value["type"] != "array" {
            continue;
        }
        value["x-kubernetes-patch-merge-key"] = json!(key);
        value["x-kubernetes-patch-strategy"] = json!("merge");
        value["x-kubernetes-list-type"] = json!("map");
        value["x-kubernetes-list-map-keys"] = json!(map_keys);
    }
}

fn query(name: &str, type_: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": { "type": type_, "uniqueItems": true }, "description": description })
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "uniqueItems": true },
            "description": description })
}

/// The query parameters of an operation, by what it does.
fn parameters(action: &str) -> Vec<Value> {
    let dry_run = query("dryRun", "string", "All: every check runs and nothing is persisted");
    let writes = || {
        vec![
            dry_run.clone(),
            query("fieldManager", "string", "the name of the actor making the change"),
            query(
                "fieldValidation",
                "string",
                "Ignore, Warn (default) or Strict: how unknown fields in the body are handled",
            ),
        ]
    };
    match action {
        "post" | "put" | "patch" => writes(),
        "list" => vec![
            query("labelSelector", "string", "only objects whose labels match"),
            query("fieldSelector", "string", "only objects whose fields match"),
            query(
                "limit",
                "integer",
                "at most this many objects, with a continue token for the rest",
            ),
            query("continue", "string", "the token of the next page"),
            query("resourceVersion", "string", "the revision to list or watch from"),
            query("watch", "boolean", "stream changes instead of listing"),
            query("allowWatchBookmarks", "boolean", "send BOOKMARK events"),
            query(
                "sendInitialEvents",
                "boolean",
                "a watch starts with the current objects",
            ),
            query("timeoutSeconds", "integer", "end the list or watch after this long"),
        ],
        "delete" | "deletecollection" => vec![
            dry_run,
            query("gracePeriodSeconds", "integer", "seconds before the object is deleted"),
            query("propagationPolicy", "string", "Foreground, Background or Orphan"),
        ],
        _ => Vec::new(),
    }
}

/// The schema reference of `kind`, if it has one.
fn schema_ref(kind: &Kind) -> Option<Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let name = define_kind(&mut generator, kind)?;
    Some(json!({ "$ref": format!("#/components/schemas/{name}") }))
}

/// Media types a PATCH body may have, as upstream declares them.
const PATCH_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn operation(kind: &Kind, action: &str, with_body: bool) -> Value {
    operation_on(kind, action, with_body, "")
}

/// An operation on `kind` or on its subresource `sub` (`Status`), with a unique operationId.
fn operation_on(kind: &Kind, action: &str, with_body: bool, sub: &str) -> Value {
    let schema = schema_ref(kind).unwrap_or_else(|| json!({ "type": "object" }));
    let ok = json!({ "description": "OK", "content": { "application/json": { "schema": schema } } });
    let mut op = json!({
        "operationId": format!("{action}{}{sub}", kind.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": kind.group, "version": kind.version, "kind": kind.kind },
        "parameters": parameters(action),
        "responses": { "200": ok },
    });
    if action == "list" {
        op["responses"]["200"] = json!({ "description": "OK" });
    }
    if with_body {
        let content: serde_json::Map<String, Value> = if action == "patch" {
            PATCH_TYPES
                .iter()
                .map(|t| ((*t).to_owned(), json!({ "schema": { "type": "object" } })))
                .collect()
        } else {
            [("application/json".to_owned(), json!({ "schema": schema }))]
                .into_iter()
                .collect()
        };
        op["requestBody"] = json!({ "required": true, "content": content });
    }
    if action == "post" {
        op["responses"]["201"] = op["responses"]["200"].clone();
    }
    op
}

/// `paths` entries' own parameters: the path's placeholders.
fn path_item(base_namespaced: bool, named: bool, operations: Value) -> Value {
    let mut parameters = Vec::new();
    if named {
        parameters.push(path_parameter("name", "the object's name"));
    }
    if base_namespaced {
        parameters.push(path_parameter("namespace", "the object's namespace"));
    }
    let mut item = operations;
    item["parameters"] = Value::Array(parameters);
    item
}

/// The document of one group-version (`None` if nothing is served there).
pub fn group_version(gv: &str) -> Option<&'static Value> {
    documents().get(gv).map(|(doc, _)| doc)
}

fn build_group_version(gv: &str) -> Value {
    let kinds: Vec<&Kind> = ALL.into_iter().filter(|k| group_version_path(k) == gv).collect();
    let schemas = schemas(&kinds);
    let mut paths = serde_json::Map::new();
    for kind in kinds {
        let base = if kind.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", kind.plural)
        } else {
            format!("/{gv}/{}", kind.plural)
        };
        let ns = kind.namespaced;
        if kind.create_only {
            paths.insert(
                base,
                path_item(ns, false, json!({ "post": operation(kind, "post", true) })),
            );
            continue;
        }
        paths.insert(
            base.clone(),
            path_item(
                ns,
                false,
                json!({ "get": operation(kind, "list", false), "post": operation(kind, "post", true),
                        "delete": operation(kind, "deletecollection", false) }),
            ),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            path_item(
                ns,
                true,
                json!({ "get": operation(kind, "get", false), "put": operation(kind, "put", true),
                        "patch": operation(kind, "patch", true), "delete": operation(kind, "delete", false) }),
            ),
        );
        if kind.has_status {
            paths.insert(
                format!("{base}/{{name}}/status"),
                path_item(
                    ns,
                    true,
                    json!({ "get": operation_on(kind, "get", false, "Status"),
                            "put": operation_on(kind, "put", true, "Status"),
                            "patch": operation_on(kind, "patch", true, "Status") }),
                ),
            );
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.37.0" },
        "paths": paths,
        "components": { "schemas": schemas },
    })
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
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&"fieldValidation") && names.contains(&"dryRun"),
            "{names:?}"
        );
        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["parameters"];
        assert_eq!(
            item.as_array().unwrap().len(),
            2,
            "name and namespace are declared: {item}"
        );
        let body = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"]["requestBody"];
        assert_eq!(
            body["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Pod"
        );
        assert!(doc["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        assert!(group_version("apis/nope/v1").is_none());
    }

    #[test]
    fn kinds_have_schemas_with_their_group_version_kind_and_resolvable_refs() {
        let doc = group_version("api/v1").unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let service = &schemas["io.k8s.api.core.v1.Service"];
        assert_eq!(
            service["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Service"}])
        );
        // spec refers to ServiceSpec, whose fields carry upstream's descriptions
        let spec_ref = service["properties"]["spec"].to_string();
        assert!(
            spec_ref.contains("#/components/schemas/io.k8s.api.core.v1.ServiceSpec"),
            "{spec_ref}"
        );
        let ports = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
        assert_eq!(ports["x-kubernetes-list-map-keys"], json!(["port", "protocol"]));
        let cluster_ip = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["clusterIP"];
        assert!(
            cluster_ip["description"]
                .as_str()
                .unwrap()
                .contains("clusterIP is the IP address")
        );
        // every reference resolves within the document
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
        let apps = group_version("apis/apps/v1").unwrap();
        let deployment = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(deployment["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
    }
}
