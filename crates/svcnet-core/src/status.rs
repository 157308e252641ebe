//! Kubernetes `Status` bodies: how every failed request is answered.
//!
//! The struct's field order is upstream's, so serialized bodies match Kubernetes byte for byte.

use serde::{Deserialize, Serialize};

use crate::field::{FieldError, aggregate_message};

/// A `meta/v1 Status` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub kind: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: StatusMetadata,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

/// Always empty for errors; present because upstream always writes `"metadata":{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMetadata {}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl Status {
    fn failure(code: u16, reason: &str, message: String, details: Option<StatusDetails>) -> Self {
        Status {
            kind: "Status".to_owned(),
            api_version: "v1".to_owned(),
            metadata: StatusMetadata {},
            status: "Failure".to_owned(),
            message,
            reason: reason.to_owned(),
            details,
            code,
        }
    }

    /// 422 Invalid: `Service "x" is invalid: <errors>`, one cause per error.
    /// `kind` is the object kind (`Service`), `group` its API group (`""` for core).
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let message = match aggregate_message(errors) {
            Some(agg) => format!("{qualified} {} is invalid: {agg}", crate::field::go_quote(name)),
            None => format!("{qualified} {} is invalid", crate::field::go_quote(name)),
        };
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: e.kind.cause_reason().to_owned(),
                message: e.body(),
                field: e.path.to_string(),
            })
            .collect();
        Status::failure(
            422,
            "Invalid",
            message,
            Some(StatusDetails {
                name: name.to_owned(),
                group: group.to_owned(),
                kind: kind.to_owned(),
                causes,
            }),
        )
    }

    /// 500 InternalError: `Internal error occurred: <err>`.
    pub fn internal(err: &str) -> Self {
        Status::failure(
            500,
            "InternalError",
            format!("Internal error occurred: {err}"),
            Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: String::new(),
                    message: err.to_owned(),
                    field: String::new(),
                }],
                ..StatusDetails::default()
            }),
        )
    }

    /// 400 BadRequest with a plain message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::failure(400, "BadRequest", message.into(), None)
    }

    /// 404 NotFound: `services "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualify(resource, group);
        Status::failure(
            404,
            "NotFound",
            format!("{qualified} {} not found", crate::field::go_quote(name)),
            Some(StatusDetails {
                name: name.to_owned(),
                group: group.to_owned(),
                kind: resource.to_owned(),
                causes: vec![],
            }),
        )
    }

    /// 403 Forbidden: `namespaces "default" is forbidden: <why>`, with an optional cause.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str, cause: Option<StatusCause>) -> Self {
        let qualified = qualify(resource, group);
        Status::failure(
            403,
            "Forbidden",
            format!("{qualified} {} is forbidden: {why}", crate::field::go_quote(name)),
            Some(StatusDetails {
                name: name.to_owned(),
                group: group.to_owned(),
                kind: resource.to_owned(),
                causes: cause.into_iter().collect(),
            }),
        )
    }

    /// 409 AlreadyExists: `services "x" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualify(resource, group);
        Status::failure(
            409,
            "AlreadyExists",
            format!("{qualified} {} already exists", crate::field::go_quote(name)),
            Some(StatusDetails {
                name: name.to_owned(),
                group: group.to_owned(),
                kind: resource.to_owned(),
                causes: vec![],
            }),
        )
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualify(resource, group);
        Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} {}: the object has been modified; \
                 please apply your changes to the latest version and try again",
                crate::field::go_quote(name)
            ),
            Some(StatusDetails {
                name: name.to_owned(),
                group: group.to_owned(),
                kind: resource.to_owned(),
                causes: vec![],
            }),
        )
    }

    /// The body as compact JSON, as the API server sends it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Status always serializes")
    }
}

fn qualify(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{FieldError, FieldPath};

    #[test]
    fn invalid_body_matches_upstream_bytes() {
        let err = FieldError::invalid(
            FieldPath::new("spec").child("ports").index(0).child("nodePort"),
            30123i64,
            "provided port is already allocated",
        );
        let body = Status::invalid("", "Service", "nodeport-collision-2", &[err]).to_json();
        assert_eq!(
            body,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Service \"nodeport-collision-2\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated","reason":"Invalid","details":{"name":"nodeport-collision-2","kind":"Service","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: 30123: provided port is already allocated","field":"spec.ports[0].nodePort"}]},"code":422}"#
        );
    }

    #[test]
    fn other_statuses() {
        assert_eq!(
            Status::not_found("", "services", "x").message,
            r#"services "x" not found"#
        );
        assert_eq!(Status::already_exists("", "services", "x").code, 409);
        assert!(
            Status::conflict("", "services", "x")
                .message
                .starts_with(r#"Operation cannot be fulfilled on services "x": the object has been modified"#)
        );
        let s = Status::internal("failed to allocate a serviceIP: range is full");
        assert_eq!(
            s.message,
            "Internal error occurred: failed to allocate a serviceIP: range is full"
        );
        assert_eq!(s.code, 500);
    }
}
