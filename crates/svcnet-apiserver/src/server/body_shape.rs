//! What a body must be before anything reads it: an object that decodes as its kind, as
//! upstream's decoder insists before any handler sees it. A body that is an array, a
//! number, or an object whose fields have the wrong types gets upstream's 400 (a create or
//! replace) or 422 (the result of a patch), never reaches the write path, and so never
//! meets code that assumes an object.

use k8s_openapi::api::core::v1::Service;
use serde_json::Value;
use svcnet_core::field::{BadValue, FieldError, FieldPath};
use svcnet_core::status::Status;

use crate::resources::{self, Kind};

/// Go's name for the type of a JSON value, as its decoder's errors put it.
fn go_json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Why a body that is not an object has no kind (upstream reads `apiVersion` and `kind`
/// into a small struct first).
fn no_type_meta(value: &Value) -> String {
    format!(
        "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
        go_json_type(value)
    )
}

/// Why a patch body that must be a JSON map is not one (`null` decodes as an empty map).
pub(super) fn not_a_map(value: &Value) -> Option<String> {
    (!value.is_object() && !value.is_null()).then(|| {
        format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_json_type(value)
        )
    })
}

/// The start of a body as upstream quotes it in a decoding error: an object as text, anything
/// else in hex, cut at `max` bytes.
fn summary(raw: &[u8], max: usize) -> String {
    let cut = &raw[..raw.len().min(max)];
    let more = if raw.len() > max { " ..." } else { "" };
    match raw.first() {
        None => "<empty>".to_owned(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(cut)),
        Some(_) => format!("{}{more}", hex(cut)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why `object` does not decode as `kind` (`None`: it does, or the kind has no typed form).
fn decode_error(kind: &Kind, object: &Value) -> Option<String> {
    if *kind == resources::SERVICES {
        return serde_json::from_value::<Service>(object.clone())
            .err()
            .map(|e| e.to_string());
    }
    let strategy = crate::kinds::of(kind)?;
    (strategy.decode)(object).err()
}

/// Whether the body names a type of its own other than `kind` (the write path refuses that
/// with its own message).
fn names_other_kind(kind: &Kind, object: &Value) -> bool {
    object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| !k.is_empty() && k != kind.kind)
}

/// A create or replace body (`raw` as it was sent): an object that decodes as `kind`, or 400.
pub(super) fn check_body(kind: &Kind, object: &Value, raw: &[u8]) -> Result<(), Box<Status>> {
    if !object.is_object() {
        return Err(Box::new(Status::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {} ({})",
            kind.kind,
            no_type_meta(object),
            summary(raw, 30)
        ))));
    }
    if names_other_kind(kind, object) {
        return Ok(());
    }
    match decode_error(kind, object) {
        None => Ok(()),
        Some(e) => Err(Box::new(Status::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
            kind = kind.kind,
            version = kind.version,
        )))),
    }
}

/// The result of a patch: an object that decodes as `kind`, or upstream's 422 quoting it.
pub(super) fn check_patched(kind: &Kind, object: &Value) -> Result<(), Box<Status>> {
    let why = if object.is_object() {
        if names_other_kind(kind, object) {
            return Ok(());
        }
        match decode_error(kind, object) {
            None => return Ok(()),
            Some(e) => e,
        }
    } else {
        no_type_meta(object)
    };
    Err(Box::new(Status::invalid(
        "",
        "",
        "",
        &[FieldError::invalid(
            FieldPath::new("patch"),
            BadValue::str(object.to_string()),
            why,
        )],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{CONFIG_MAPS, DEPLOYMENTS};
    use serde_json::json;

    #[test]
    fn a_body_that_is_not_an_object_is_refused_with_its_start_in_hex() {
        let err = check_body(&CONFIG_MAPS, &json!([{}]), b"[{}]").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.starts_with("the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct"),
            "{}",
            err.message
        );
        assert!(err.message.ends_with("(5b7b7d5d)"), "{}", err.message);
        let long = check_body(&CONFIG_MAPS, &json!(7), &[b'7'; 40]).unwrap_err();
        assert!(long.message.contains("cannot unmarshal number"));
        assert!(
            long.message.ends_with(&format!("({} ...)", "37".repeat(30))),
            "{}",
            long.message
        );
    }

    #[test]
    fn fields_of_the_wrong_type_are_refused_before_anything_reads_them() {
        for bad in [
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": [] }),
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" }, "data": [1] }),
            json!({ "metadata": { "labels": "x" } }),
        ] {
            let err = check_body(&CONFIG_MAPS, &bad, bad.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.code, 400, "{bad}");
            assert!(
                err.message
                    .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: "),
                "{}",
                err.message
            );
        }
        let spec_array =
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "d" }, "spec": [] });
        assert!(check_body(&DEPLOYMENTS, &spec_array, b"{").is_err());
        let service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "s" }, "spec": { "ports": "eighty" } });
        assert!(check_body(&resources::SERVICES, &service, b"{").is_err());
        let good =
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" }, "data": { "a": "b" } });
        assert!(check_body(&CONFIG_MAPS, &good, b"{").is_ok());
    }

    #[test]
    fn a_patch_result_that_does_not_decode_is_invalid_and_quoted() {
        let err = check_patched(&CONFIG_MAPS, &json!([])).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .starts_with(" \"\" is invalid: patch: Invalid value: \"[]\": couldn't get version/kind;"),
            "{}",
            err.message
        );
        let causes = &err.details.as_ref().unwrap().causes;
        assert_eq!(causes[0].field, "patch");
        assert!(check_patched(&CONFIG_MAPS, &json!({ "metadata": { "name": "x" } })).is_ok());
    }

    #[test]
    fn a_patch_body_must_be_a_map() {
        assert_eq!(
            not_a_map(&json!([])).unwrap(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert!(not_a_map(&json!({})).is_none());
        assert!(not_a_map(&json!(null)).is_none());
    }
}
