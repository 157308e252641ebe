//! `fieldValidation` on writes: `Strict` refuses objects with fields the kind does not have
//! (found by decoding into the typed object and comparing), `Warn` and `Ignore` store them.
//! Clients that see the parameter in the OpenAPI document (kubectl does) rely on it instead
//! of validating themselves, so a typo in a manifest is reported, as upstream does.

use serde_json::Value;
use svcnet_core::status::Status;

use crate::resources::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    Ignore,
    Warn,
    Strict,
}

impl Directive {
    pub fn from_query(value: Option<&str>) -> Result<Self, Box<Status>> {
        match value {
            None | Some("" | "Warn") => Ok(Directive::Warn),
            Some("Ignore") => Ok(Directive::Ignore),
            Some("Strict") => Ok(Directive::Strict),
            Some(other) => Err(Box::new(Status::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            )))),
        }
    }
}

/// `input`'s non-null fields that `known` (the same object after a typed round trip) lacks,
/// as dotted paths with list indices.
fn missing(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                if value.is_null() {
                    continue;
                }
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match b.get(key) {
                    Some(k) => missing(value, k, &sub, out),
                    None => out.push(sub),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                missing(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The fields of `object` that type `T` does not define; `Err` if it does not decode as `T`.
pub fn unknown_fields_of<T: serde::de::DeserializeOwned + serde::Serialize>(
    object: &Value,
) -> Result<Vec<String>, String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let known = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    missing(object, &known, "", &mut out);
    Ok(out)
}

/// The fields of `object` its kind does not define (empty if it cannot be decoded at all:
/// decoding errors are reported by the write itself).
pub fn unknown_fields(kind: &Kind, object: &Value) -> Vec<String> {
    let known = crate::kinds::of(kind).and_then(|strategy| (strategy.decode)(object).ok());
    let mut out = Vec::new();
    if let Some(known) = known {
        missing(object, &known, "", &mut out);
    }
    out
}

/// Applies the directive: `Err` with upstream's message when strict and fields are unknown.
pub fn check(kind: &Kind, directive: Directive, object: &Value) -> Result<(), Box<Status>> {
    if directive != Directive::Strict {
        return Ok(());
    }
    let unknown = unknown_fields(kind, object);
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
    Err(Box::new(Status::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {list}",
        kind = kind.kind,
        version = kind.version,
        list = list.join(", ")
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::PODS;
    use serde_json::json;

    fn pod(extra: Value) -> Value {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "creationTimestamp": null, "labels": { "a": "b" } },
            "spec": { "containers": [{ "name": "c", "image": "busybox", "ports": [{ "containerPort": 80 }] }] },
        });
        json_patch::merge(&mut p, &extra);
        p
    }

    #[test]
    fn strict_names_every_unknown_field_with_its_path() {
        assert_eq!(unknown_fields(&PODS, &pod(json!({}))), Vec::<String>::new());
        let bad =
            pod(json!({ "spec": { "replicas": 2, "containers": [{ "name": "c", "imagePullPolice": "Always" }] } }));
        assert_eq!(
            unknown_fields(&PODS, &bad),
            ["spec.containers[0].imagePullPolice", "spec.replicas"]
        );
        let err = check(&PODS, Directive::Strict, &bad).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].imagePullPolice\", unknown field \"spec.replicas\""
        );
        assert!(check(&PODS, Directive::Warn, &bad).is_ok());
        assert!(check(&PODS, Directive::Ignore, &bad).is_ok());
    }

    #[test]
    fn directives_parse_as_upstream() {
        assert_eq!(Directive::from_query(None).unwrap(), Directive::Warn);
        assert_eq!(Directive::from_query(Some("Strict")).unwrap(), Directive::Strict);
        assert!(Directive::from_query(Some("strict")).is_err());
    }
}
