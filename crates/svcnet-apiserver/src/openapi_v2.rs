//! `/openapi/v2`: the same paths and schemas as the OpenAPI v3 documents, in one Swagger 2.0
//! document, for the tools that still read v2 (GitOps engines, older clients). Converted from
//! the v3 documents, so both always describe the same API: component schemas become
//! `definitions`, request bodies `body` parameters, and parameter schemas plain types.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The document, built on first use.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (_, doc) in crate::openapi::documents_by_group_version() {
        for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
            definitions.insert(name.clone(), schema_v2(schema.clone()));
        }
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), path_item_v2(item));
        }
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "v1.37.0" },
        "paths": paths,
        "definitions": definitions,
    })
}

/// A v3 schema as v2 has it: references into `definitions`, `nullable` as `x-nullable`.
fn schema_v2(mut schema: Value) -> Value {
    rewrite(&mut schema);
    schema
}

fn rewrite(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                *r = format!("#/definitions/{name}");
            }
            if let Some(nullable) = map.remove("nullable") {
                map.insert("x-nullable".into(), nullable);
            }
            map.values_mut().for_each(rewrite);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite),
        _ => {}
    }
}

/// A v3 parameter (`schema: {type}`) as a v2 one (`type` on the parameter).
fn parameter_v2(p: &Value) -> Value {
    let mut out = p.clone();
    if let Some(map) = out.as_object_mut()
        && let Some(schema) = map.remove("schema")
    {
        for (k, v) in schema.as_object().into_iter().flatten() {
            map.insert(k.clone(), v.clone());
        }
    }
    out
}

fn parameters_v2(list: &Value) -> Vec<Value> {
    list.as_array().into_iter().flatten().map(parameter_v2).collect()
}

fn operation_v2(op: &Value) -> Value {
    let mut out = op.clone();
    let map = out.as_object_mut().expect("operations are objects");
    let mut parameters = parameters_v2(&op["parameters"]);
    if let Some(body) = map.remove("requestBody") {
        let content = body["content"].as_object().cloned().unwrap_or_default();
        let schema = content
            .values()
            .next()
            .map(|c| c["schema"].clone())
            .unwrap_or(json!({"type": "object"}));
        parameters.push(json!({ "name": "body", "in": "body", "required": true, "schema": schema_v2(schema) }));
        map.insert(
            "consumes".into(),
            Value::Array(content.keys().map(|k| json!(k)).collect()),
        );
    }
    map.insert("parameters".into(), Value::Array(parameters));
    map.insert("produces".into(), json!(["application/json"]));
    let responses: Map<String, Value> = op["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, r)| {
            let mut response = json!({ "description": r["description"].clone() });
            if let Some(schema) = r["content"]["application/json"].get("schema") {
                response["schema"] = schema_v2(schema.clone());
            }
            (code.clone(), response)
        })
        .collect();
    map.insert("responses".into(), Value::Object(responses));
    out
}

fn path_item_v2(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = if key == "parameters" {
            Value::Array(parameters_v2(value))
        } else {
            operation_v2(value)
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_document_has_v3s_paths_and_definitions_in_v2_form() {
        let doc = document();
        assert_eq!(doc["swagger"], "2.0");
        let post = &doc["paths"]["/api/v1/namespaces/{namespace}/services"]["post"];
        let body = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["in"] == "body")
            .unwrap();
        assert_eq!(body["schema"]["$ref"], "#/definitions/io.k8s.api.core.v1.Service");
        assert!(doc["definitions"]["io.k8s.api.core.v1.Service"].is_object());
        assert!(!doc.to_string().contains("#/components/schemas/"));
        let path_params = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["parameters"];
        assert_eq!(path_params[0]["type"], "string");
    }
}
