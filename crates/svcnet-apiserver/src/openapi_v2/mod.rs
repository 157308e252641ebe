//! `/openapi/v2`: the same paths and schemas as the OpenAPI v3 documents, in one Swagger 2.0
//! document, for the tools that still read v2 (GitOps engines, older clients). Converted from
//! the v3 documents, so both always describe the same API: component schemas become
//! `definitions`, request bodies `body` parameters, and parameter schemas plain types.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

mod gnostic;
mod yaml;

pub use gnostic::EncodeError;

/// The document, built on first use.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// The document in gnostic's protobuf encoding (`openapi.v2.Document`), built on first use.
pub fn protobuf() -> &'static Result<Vec<u8>, EncodeError> {
    static ENCODED: OnceLock<Result<Vec<u8>, EncodeError>> = OnceLock::new();
    ENCODED.get_or_init(|| gnostic::encode(document()))
}

/// The forms `/openapi/v2` is served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Json,
    Protobuf,
}

impl Form {
    pub fn content_type(self) -> &'static str {
        match self {
            Form::Json => "application/json",
            Form::Protobuf => "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        }
    }
}

/// The form an `Accept` header asks for, as kube-openapi chooses it: clauses by quality
/// (then the more specific first), the first that JSON or either protobuf name matches;
/// `None` when none does (a 406). No header accepts anything, which is JSON.
pub fn negotiate(accept: Option<&str>) -> Option<Form> {
    const OFFERS: [(&str, &str, Form); 3] = [
        ("application", "json", Form::Json),
        (
            "application",
            "com.github.proto-openapi.spec.v2@v1.0+protobuf",
            Form::Protobuf,
        ),
        (
            "application",
            "com.github.proto-openapi.spec.v2.v1.0+protobuf",
            Form::Protobuf,
        ),
    ];
    let accept = accept.map(str::trim).filter(|a| !a.is_empty()).unwrap_or("*/*");
    let mut clauses: Vec<(f32, u8, &str, &str)> = Vec::new();
    for clause in accept.split(',') {
        let mut parts = clause.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let (kind, sub) = media.split_once('/').unwrap_or((media, ""));
        let wildcards = u8::from(kind == "*") + u8::from(sub == "*");
        if q > 0.0 {
            clauses.push((q, wildcards, kind, sub));
        }
    }
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    clauses.iter().find_map(|(_, _, kind, sub)| {
        OFFERS
            .iter()
            .find(|(k, s, _)| (*kind == "*" || kind == k) && (*sub == "*" || sub == s))
            .map(|(_, _, form)| *form)
    })
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
    fn accept_headers_choose_the_form() {
        assert_eq!(negotiate(None), Some(Form::Json));
        assert_eq!(negotiate(Some("*/*")), Some(Form::Json));
        assert_eq!(
            negotiate(Some("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")),
            Some(Form::Protobuf)
        );
        assert_eq!(
            negotiate(Some(
                "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            )),
            Some(Form::Protobuf)
        );
        assert_eq!(negotiate(Some("application/*")), Some(Form::Json));
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("application/json;q=0")), None);
    }

    #[test]
    fn the_document_encodes() {
        let encoded = protobuf().as_ref().expect("the document converts");
        assert!(encoded.len() > 100_000, "{} bytes", encoded.len());
    }

    #[test]
    fn keys_gnostic_refuses_are_refused() {
        let mut doc = document().clone();
        doc["definitions"]["io.k8s.api.core.v1.Service"]["nullable"] = json!(true);
        let err = gnostic::encode(&doc).unwrap_err().to_string();
        assert!(
            err.contains("io.k8s.api.core.v1.Service") && err.contains("nullable"),
            "{err}"
        );
        let mut doc = document().clone();
        doc["paths"]["/api/v1/namespaces"]["get"]["parameters"][0]["in"] = json!("cookie");
        assert!(gnostic::encode(&doc).is_err());
        let mut doc = document().clone();
        doc["info"].as_object_mut().unwrap().remove("title");
        assert!(
            gnostic::encode(&doc)
                .unwrap_err()
                .to_string()
                .contains("misses required title")
        );
    }

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
