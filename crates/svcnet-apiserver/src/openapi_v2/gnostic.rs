//! The OpenAPI v2 document in the protobuf encoding kube-apiserver serves to clients that ask
//! for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` (kubectl's client-side
//! validation does): gnostic's `openapi.v2.Document`.
//!
//! No crate carries gnostic's messages, so their field numbers are tabled here, and the
//! conversion follows gnostic's compiler: object keys map to fields by their JSON names,
//! `x-` keys become vendor extensions whose values are written as YAML ([`super::yaml`]),
//! maps of named things become repeated name/value pairs in document order, and each oneof
//! is resolved as the compiler resolves it. Scalars at their zero value are left out, as
//! proto3 does. A key, shape or required field the compiler would refuse is an error here
//! too, never dropped: `tests/apiserver/openapi_v2.rs` holds the whole encoding to the bytes
//! gnostic itself produces from the same JSON.

use prost::encoding::{WireType, encode_key, encode_varint};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("openapi v2 protobuf: {path}: {problem}")]
pub struct EncodeError {
    path: String,
    problem: String,
}

fn error(path: &str, problem: impl Into<String>) -> EncodeError {
    EncodeError {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// What a field holds.
enum Kind {
    Str,
    Bool,
    Double,
    Int64,
    Strings,
    /// A value of any shape, written as YAML.
    Any,
    Anys,
    Object(&'static Object),
    Objects(&'static Object),
    /// A message whose field 1 repeats `{name, value}` pairs, one per key of the map.
    Named(&'static Kind),
    /// The `x-` keys of the enclosing object.
    Extensions,
    /// A message gnostic builds by its own rules (oneofs and the like).
    Special(fn(&Value, &str) -> Result<Vec<u8>, EncodeError>),
    /// A list of such messages.
    SpecialEach(fn(&Value, &str) -> Result<Vec<u8>, EncodeError>),
}

/// A message with fixed fields: `(JSON name, field number, kind)` in field-number order.
struct Object {
    fields: &'static [(&'static str, u32, Kind)],
    required: &'static [&'static str],
}

use Kind::*;

/// `$ref` and `x-` keys aside, the JSON names are the proto names in camel case.
static DOCUMENT: Object = Object {
    fields: &[
        ("swagger", 1, Str),
        ("info", 2, Object(&INFO)),
        ("host", 3, Str),
        ("basePath", 4, Str),
        ("schemes", 5, Strings),
        ("consumes", 6, Strings),
        ("produces", 7, Strings),
        ("paths", 8, Special(paths)),
        ("definitions", 9, Named(&Object(&SCHEMA))),
        ("tags", 14, Objects(&TAG)),
        ("externalDocs", 15, Object(&EXTERNAL_DOCS)),
        ("x-", 16, Extensions),
    ],
    required: &["info", "paths", "swagger"],
};

static INFO: Object = Object {
    fields: &[
        ("title", 1, Str),
        ("version", 2, Str),
        ("description", 3, Str),
        ("termsOfService", 4, Str),
        ("contact", 5, Object(&CONTACT)),
        ("license", 6, Object(&LICENSE)),
        ("x-", 7, Extensions),
    ],
    required: &["title", "version"],
};

static CONTACT: Object = Object {
    fields: &[
        ("name", 1, Str),
        ("url", 2, Str),
        ("email", 3, Str),
        ("x-", 4, Extensions),
    ],
    required: &[],
};

static LICENSE: Object = Object {
    fields: &[("name", 1, Str), ("url", 2, Str), ("x-", 3, Extensions)],
    required: &["name"],
};

static EXTERNAL_DOCS: Object = Object {
    fields: &[("description", 1, Str), ("url", 2, Str), ("x-", 3, Extensions)],
    required: &["url"],
};

static TAG: Object = Object {
    fields: &[
        ("name", 1, Str),
        ("description", 2, Str),
        ("externalDocs", 3, Object(&EXTERNAL_DOCS)),
        ("x-", 4, Extensions),
    ],
    required: &["name"],
};

static PATH_ITEM: Object = Object {
    fields: &[
        ("$ref", 1, Str),
        ("get", 2, Object(&OPERATION)),
        ("put", 3, Object(&OPERATION)),
        ("post", 4, Object(&OPERATION)),
        ("delete", 5, Object(&OPERATION)),
        ("options", 6, Object(&OPERATION)),
        ("head", 7, Object(&OPERATION)),
        ("patch", 8, Object(&OPERATION)),
        ("parameters", 9, SpecialEach(parameters_item)),
        ("x-", 10, Extensions),
    ],
    required: &[],
};

static OPERATION: Object = Object {
    fields: &[
        ("tags", 1, Strings),
        ("summary", 2, Str),
        ("description", 3, Str),
        ("externalDocs", 4, Object(&EXTERNAL_DOCS)),
        ("operationId", 5, Str),
        ("produces", 6, Strings),
        ("consumes", 7, Strings),
        ("parameters", 8, SpecialEach(parameters_item)),
        ("responses", 9, Special(responses)),
        ("schemes", 10, Strings),
        ("deprecated", 11, Bool),
        ("x-", 13, Extensions),
    ],
    required: &["responses"],
};

static JSON_REFERENCE: Object = Object {
    fields: &[("$ref", 1, Str), ("description", 2, Str)],
    required: &["$ref"],
};

static BODY_PARAMETER: Object = Object {
    fields: &[
        ("description", 1, Str),
        ("name", 2, Str),
        ("in", 3, Str),
        ("required", 4, Bool),
        ("schema", 5, Object(&SCHEMA)),
        ("x-", 6, Extensions),
    ],
    required: &["in", "name", "schema"],
};

/// A message made of `head` and then the keywords of a primitive value, numbered from
/// `first` (`type` to `multipleOf`, then the extensions): `PrimitivesItems` and the four
/// non-body parameters.
macro_rules! primitive {
    ($name:ident, [$($head:expr),* $(,)?], $first:literal, $required:expr) => {
        static $name: Object = Object {
            fields: &[
                $($head,)*
                ("type", $first, Str),
                ("format", $first + 1, Str),
                ("items", $first + 2, Object(&PRIMITIVES_ITEMS)),
                ("collectionFormat", $first + 3, Str),
                ("default", $first + 4, Any),
                ("maximum", $first + 5, Double),
                ("exclusiveMaximum", $first + 6, Bool),
                ("minimum", $first + 7, Double),
                ("exclusiveMinimum", $first + 8, Bool),
                ("maxLength", $first + 9, Int64),
                ("minLength", $first + 10, Int64),
                ("pattern", $first + 11, Str),
                ("maxItems", $first + 12, Int64),
                ("minItems", $first + 13, Int64),
                ("uniqueItems", $first + 14, Bool),
                ("enum", $first + 15, Anys),
                ("multipleOf", $first + 16, Double),
                ("x-", $first + 17, Extensions),
            ],
            required: $required,
        };
    };
}

/// A non-body parameter: `required`, `in`, `description`, `name` (and `allowEmptyValue`
/// for query and form parameters), then a primitive's keywords.
macro_rules! non_body_parameter {
    ($name:ident, $required:expr) => {
        primitive!(
            $name,
            [
                ("required", 1, Bool),
                ("in", 2, Str),
                ("description", 3, Str),
                ("name", 4, Str)
            ],
            5,
            $required
        );
    };
    ($name:ident, allow_empty_value, $required:expr) => {
        primitive!(
            $name,
            [
                ("required", 1, Bool),
                ("in", 2, Str),
                ("description", 3, Str),
                ("name", 4, Str),
                ("allowEmptyValue", 5, Bool),
            ],
            6,
            $required
        );
    };
}

primitive!(PRIMITIVES_ITEMS, [], 1, &[]);
non_body_parameter!(HEADER_PARAMETER, &["in", "name", "type"]);
non_body_parameter!(FORM_DATA_PARAMETER, allow_empty_value, &["in", "name", "type"]);
non_body_parameter!(QUERY_PARAMETER, allow_empty_value, &["in", "name", "type"]);
non_body_parameter!(PATH_PARAMETER, &["in", "name", "required", "type"]);

static RESPONSE: Object = Object {
    fields: &[
        ("description", 1, Str),
        ("schema", 2, Special(schema_item)),
        ("examples", 4, Named(&Any)),
        ("x-", 5, Extensions),
    ],
    required: &["description"],
};

static SCHEMA: Object = Object {
    fields: &[
        ("$ref", 1, Str),
        ("format", 2, Str),
        ("title", 3, Str),
        ("description", 4, Str),
        ("default", 5, Any),
        ("multipleOf", 6, Double),
        ("maximum", 7, Double),
        ("exclusiveMaximum", 8, Bool),
        ("minimum", 9, Double),
        ("exclusiveMinimum", 10, Bool),
        ("maxLength", 11, Int64),
        ("minLength", 12, Int64),
        ("pattern", 13, Str),
        ("maxItems", 14, Int64),
        ("minItems", 15, Int64),
        ("uniqueItems", 16, Bool),
        ("maxProperties", 17, Int64),
        ("minProperties", 18, Int64),
        ("required", 19, Strings),
        ("enum", 20, Anys),
        ("additionalProperties", 21, Special(additional_properties)),
        ("type", 22, Special(type_item)),
        ("items", 23, Special(items_item)),
        ("allOf", 24, Objects(&SCHEMA)),
        ("properties", 25, Named(&Object(&SCHEMA))),
        ("discriminator", 26, Str),
        ("readOnly", 27, Bool),
        ("externalDocs", 29, Object(&EXTERNAL_DOCS)),
        ("example", 30, Any),
        ("x-", 31, Extensions),
    ],
    required: &[],
};

/// The whole document.
pub fn encode(document: &Value) -> Result<Vec<u8>, EncodeError> {
    object(&DOCUMENT, document, "$root")
}

fn object(spec: &Object, value: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    let map = value.as_object().ok_or_else(|| error(path, "is not an object"))?;
    let has_extensions = spec.fields.iter().any(|(_, _, k)| matches!(k, Extensions));
    for key in map.keys() {
        let known = spec.fields.iter().any(|(name, _, _)| name == key);
        let extension = has_extensions && key.starts_with("x-");
        if !(known || extension) {
            return Err(error(path, format!("has a key gnostic does not allow: {key}")));
        }
    }
    if let Some(missing) = spec.required.iter().find(|k| !map.contains_key(**k)) {
        return Err(error(path, format!("misses required {missing}")));
    }
    let mut out = Vec::new();
    for (name, number, kind) in spec.fields {
        if let Extensions = kind {
            for (key, v) in map.iter().filter(|(k, _)| k.starts_with("x-")) {
                message(*number, &named(key, &any(v, &format!("{path}.{key}"))?), &mut out);
            }
        } else if let Some(v) = map.get(*name) {
            field(*number, kind, v, &format!("{path}.{name}"), &mut out)?;
        }
    }
    Ok(out)
}

fn field(number: u32, kind: &Kind, v: &Value, path: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match kind {
        Str => {
            let s = v.as_str().ok_or_else(|| error(path, "is not a string"))?;
            if !s.is_empty() {
                bytes(number, s.as_bytes(), out);
            }
        }
        Bool => {
            if v.as_bool().ok_or_else(|| error(path, "is not a boolean"))? {
                encode_key(number, WireType::Varint, out);
                encode_varint(1, out);
            }
        }
        Double => {
            let x = v.as_f64().ok_or_else(|| error(path, "is not a number"))?;
            if x != 0.0 {
                encode_key(number, WireType::SixtyFourBit, out);
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Int64 => {
            let x = v.as_i64().ok_or_else(|| error(path, "is not an integer"))?;
            if x != 0 {
                encode_key(number, WireType::Varint, out);
                encode_varint(x as u64, out);
            }
        }
        Strings => {
            for (i, s) in v
                .as_array()
                .ok_or_else(|| error(path, "is not an array"))?
                .iter()
                .enumerate()
            {
                let s = s
                    .as_str()
                    .ok_or_else(|| error(&format!("{path}[{i}]"), "is not a string"))?;
                bytes(number, s.as_bytes(), out);
            }
        }
        Any => message(number, &any(v, path)?, out),
        Anys => {
            for (i, item) in v
                .as_array()
                .ok_or_else(|| error(path, "is not an array"))?
                .iter()
                .enumerate()
            {
                message(number, &any(item, &format!("{path}[{i}]"))?, out);
            }
        }
        Object(spec) => message(number, &object(spec, v, path)?, out),
        Objects(spec) => {
            for (i, item) in v
                .as_array()
                .ok_or_else(|| error(path, "is not an array"))?
                .iter()
                .enumerate()
            {
                message(number, &object(spec, item, &format!("{path}[{i}]"))?, out);
            }
        }
        Named(value_kind) => {
            let map = v.as_object().ok_or_else(|| error(path, "is not an object"))?;
            let mut pairs = Vec::new();
            for (key, item) in map {
                let mut pair = Vec::new();
                bytes(1, key.as_bytes(), &mut pair);
                field(2, value_kind, item, &format!("{path}.{key}"), &mut pair)?;
                message(1, &pair, &mut pairs);
            }
            message(number, &pairs, out);
        }
        Extensions => unreachable!("extensions are written by object()"),
        Special(encode) => message(number, &encode(v, path)?, out),
        SpecialEach(encode) => {
            for (i, item) in v
                .as_array()
                .ok_or_else(|| error(path, "is not an array"))?
                .iter()
                .enumerate()
            {
                message(number, &encode(item, &format!("{path}[{i}]"))?, out);
            }
        }
    }
    Ok(())
}

fn bytes(number: u32, b: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn message(number: u32, body: &[u8], out: &mut Vec<u8>) {
    bytes(number, body, out);
}

/// `NamedAny`: a name and an `Any` already encoded.
fn named(name: &str, any: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    bytes(1, name.as_bytes(), &mut out);
    message(2, any, &mut out);
    out
}

/// `Any`: the value as YAML (field 2; the packed `value`, field 1, stays unset).
fn any(v: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    let text = super::yaml::to_yaml(v).map_err(|e| error(path, e))?;
    let mut out = Vec::new();
    bytes(2, text.as_bytes(), &mut out);
    Ok(out)
}

/// `Paths`: `x-` keys as extensions (field 1), every other key a `NamedPathItem` (field 2).
fn paths(v: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    let map = v.as_object().ok_or_else(|| error(path, "is not an object"))?;
    let mut out = Vec::new();
    for (key, item) in map.iter().filter(|(k, _)| k.starts_with("x-")) {
        message(1, &named(key, &any(item, &format!("{path}.{key}"))?), &mut out);
    }
    for (key, item) in map.iter().filter(|(k, _)| !k.starts_with("x-")) {
        if !key.starts_with('/') {
            return Err(error(path, format!("has a path that does not start with /: {key}")));
        }
        let mut pair = Vec::new();
        bytes(1, key.as_bytes(), &mut pair);
        message(2, &object(&PATH_ITEM, item, &format!("{path}.{key}"))?, &mut pair);
        message(2, &pair, &mut out);
    }
    Ok(out)
}

/// `Responses`: status codes (or `default`) as `NamedResponseValue`s (field 1), `x-` keys
/// as extensions (field 2).
fn responses(v: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    let map = v.as_object().ok_or_else(|| error(path, "is not an object"))?;
    let mut out = Vec::new();
    for (code, item) in map.iter().filter(|(k, _)| !k.starts_with("x-")) {
        let is_code = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
        if !is_code && code != "default" {
            return Err(error(path, format!("has a key that is no status code: {code}")));
        }
        let item_path = format!("{path}.{code}");
        // ResponseValue: a reference (field 2) or a response (field 1)
        let value = if item.get("$ref").is_some() {
            wrap(2, object(&JSON_REFERENCE, item, &item_path)?)
        } else {
            wrap(1, object(&RESPONSE, item, &item_path)?)
        };
        let mut pair = Vec::new();
        bytes(1, code.as_bytes(), &mut pair);
        message(2, &value, &mut pair);
        message(1, &pair, &mut out);
    }
    for (key, item) in map.iter().filter(|(k, _)| k.starts_with("x-")) {
        message(2, &named(key, &any(item, &format!("{path}.{key}"))?), &mut out);
    }
    Ok(out)
}

/// The body of a message whose only field is `number`, holding `body`.
fn wrap(number: u32, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    message(number, &body, &mut out);
    out
}

/// One `ParametersItem`: a reference (field 2) or a `Parameter` (field 1), which is a body
/// parameter (1) or a non-body one (2) of the kind its `in` names.
fn parameters_item(p: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    if p.get("$ref").is_some() {
        return Ok(wrap(2, object(&JSON_REFERENCE, p, path)?));
    }
    let parameter = match p.get("in").and_then(Value::as_str) {
        Some("body") => wrap(1, object(&BODY_PARAMETER, p, path)?),
        Some("header") => wrap(2, wrap(1, object(&HEADER_PARAMETER, p, path)?)),
        Some("formData") => wrap(2, wrap(2, object(&FORM_DATA_PARAMETER, p, path)?)),
        Some("query") => wrap(2, wrap(3, object(&QUERY_PARAMETER, p, path)?)),
        Some("path") => wrap(2, wrap(4, object(&PATH_PARAMETER, p, path)?)),
        other => {
            return Err(error(
                path,
                format!("has no parameter location gnostic knows: {other:?}"),
            ));
        }
    };
    Ok(wrap(1, parameter))
}

/// `SchemaItem`: a schema (field 1); file schemas are not served, so one is refused.
fn schema_item(v: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    if v.get("type").and_then(Value::as_str) == Some("file") {
        return Err(error(path, "is a file schema, which this encoding does not carry"));
    }
    Ok(wrap(1, object(&SCHEMA, v, path)?))
}

/// `AdditionalPropertiesItem`: a schema (field 1) or a boolean (field 2).
fn additional_properties(v: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    match v {
        Value::Bool(b) => {
            let mut out = Vec::new();
            encode_key(2, WireType::Varint, &mut out);
            encode_varint(u64::from(*b), &mut out);
            Ok(out)
        }
        _ => Ok(wrap(1, object(&SCHEMA, v, path)?)),
    }
}

/// `TypeItem`: one type name or several, as repeated strings.
fn type_item(v: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    match v {
        Value::String(s) => bytes(1, s.as_bytes(), &mut out),
        Value::Array(_) => field(1, &Strings, v, path, &mut out)?,
        _ => return Err(error(path, "is neither a type name nor a list of them")),
    }
    Ok(out)
}

/// `ItemsItem`: the one schema of the array's items (gnostic accepts no list here).
fn items_item(v: &Value, path: &str) -> Result<Vec<u8>, EncodeError> {
    Ok(wrap(1, object(&SCHEMA, v, path)?))
}
