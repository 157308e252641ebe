//! Request bodies: size limits, JSON and protobuf decoding, field validation directives,
//! and the three patch types.

use super::*;

pub(super) fn too_large() -> Box<Status> {
    let mut s = Status::bad_request(format!("Request entity too large: limit is {MAX_BODY}"));
    s.reason = "RequestEntityTooLarge".into();
    s.code = 413;
    Box::new(s)
}

/// How much of an oversized body is read (and discarded) so the client gets the 413 instead
/// of a reset stream.
pub(super) const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

pub(super) fn unsupported_media_type(content_type: &str, accepted: &str) -> Box<Status> {
    let mut s = Status::bad_request(format!(
        "the body of the request was in an unknown format - accepted media types include: {accepted} (got {content_type})"
    ));
    s.reason = "UnsupportedMediaType".into();
    s.code = 415;
    Box::new(s)
}

/// The body's content type and, at most `MAX_BODY`, its bytes. An oversized body is drained
/// (up to `DRAIN_LIMIT`) and answered with 413.
pub(super) async fn read_body(request: Request) -> Result<(String, Vec<u8>), Box<Status>> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let declared_too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY);
    let mut chunks = request.into_body().into_data_stream();
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            return Err(Box::new(Status::bad_request("error reading the request body")));
        };
        seen += chunk.len();
        if seen > DRAIN_LIMIT {
            break;
        }
        if !declared_too_large && seen <= MAX_BODY {
            body.extend_from_slice(&chunk);
        }
    }
    if declared_too_large || seen > MAX_BODY {
        return Err(too_large());
    }
    Ok((content_type, body))
}

pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, Box<Status>> {
    serde_json::from_slice(bytes).map_err(|e| Box::new(Status::bad_request(format!("json parse error: {e}"))))
}

pub(super) fn field_validation_of(request: &Request) -> Result<field_validation::Directive, Box<Status>> {
    let query: HashMap<String, String> = Query::try_from_uri(request.uri()).map(|q| q.0).unwrap_or_default();
    field_validation::Directive::from_query(query.get("fieldValidation").map(String::as_str))
}

/// An object body in JSON or Kubernetes' protobuf encoding, as JSON; other encodings get 415.
pub(super) fn object_json(content_type: &str, body: &[u8]) -> Result<Value, Box<Status>> {
    if content_type.starts_with("application/json") {
        return parse_json(body);
    }
    if content_type.starts_with(protobuf::CONTENT_TYPE) {
        return protobuf::decode(body).map_err(|e| Box::new(Status::bad_request(e.to_string())));
    }
    Err(unsupported_media_type(
        content_type,
        &format!("application/json, {}", protobuf::CONTENT_TYPE),
    ))
}

/// The body as JSON (sent as JSON or protobuf). The request's `fieldValidation` is applied for
/// `kind`.
pub(super) async fn read_json(kind: &Kind, request: Request) -> Result<Value, Box<Status>> {
    let directive = field_validation_of(&request)?;
    let (content_type, body) = read_body(request).await?;
    let value = object_json(&content_type, &body)?;
    body_shape::check_body(kind, &value, &body)?;
    field_validation::check(kind, directive, &value)?;
    Ok(value)
}

pub(super) fn as_service(v: Value) -> Result<Service, Box<Status>> {
    if let Some(kind) = v.get("kind").and_then(Value::as_str)
        && kind != "Service"
    {
        return Err(objects::wrong_kind(
            &resources::SERVICES,
            kind,
            v["apiVersion"].as_str().unwrap_or(""),
        ));
    }
    serde_json::from_value(v).map_err(|e| Box::new(Status::bad_request(format!("unable to decode the Service: {e}"))))
}

/// Go's `strconv.ParseBool`, which clients' `watch=` values follow.
pub(super) fn parse_bool(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// How often a patch is re-applied, or a delete tried again, after losing a race with another
/// write.
pub(super) const PATCH_ATTEMPTS: u32 = 5;

/// Upstream's words for a patch type it does not take, whatever the type.
fn unsupported_patch_type() -> Box<Status> {
    let mut s = Status::bad_request("415: Unsupported Media Type");
    s.reason = "UnsupportedMediaType".into();
    s.code = 415;
    s.details = Some(Default::default());
    Box::new(s)
}

/// A parsed PATCH body, by its content type.
pub(super) enum Patch {
    Merge(Value),
    Strategic(Value),
    Json(json_patch::Patch),
    /// A server-side apply configuration (YAML, or JSON, which is YAML too).
    Apply(Value),
}

pub(super) const APPLY_PATCH: &str = "application/apply-patch+yaml";

impl Patch {
    pub(super) fn parse(content_type: &str, body: &[u8]) -> Result<Self, Box<Status>> {
        // a merge patch is a map: upstream decodes it into one first, where `null` passes
        // (an empty map); the merge then refuses it, the strategic merge does nothing
        let map = |body: &[u8], prefix: &str| {
            let value = parse_json(body)?;
            match body_shape::not_a_map(&value) {
                Some(why) => Err(Box::new(Status::bad_request(format!("{prefix}{why}")))),
                None => Ok(value),
            }
        };
        if content_type.starts_with("application/merge-patch+json") {
            match map(body, "error decoding patch: ")? {
                Value::Null => Err(Box::new(Status::bad_request("Invalid JSON Patch"))),
                patch => Ok(Self::Merge(patch)),
            }
        } else if content_type.starts_with("application/strategic-merge-patch+json") {
            Ok(Self::Strategic(match map(body, "")? {
                Value::Null => Value::Object(Default::default()),
                patch => patch,
            }))
        } else if content_type.starts_with("application/json-patch+json") {
            serde_json::from_value(parse_json(body)?)
                .map(Self::Json)
                .map_err(|e| Box::new(Status::bad_request(format!("invalid JSON patch: {e}"))))
        } else if content_type.starts_with(APPLY_PATCH) {
            match serde_yaml_ng::from_slice::<Value>(body) {
                Ok(config @ Value::Object(_)) => Ok(Self::Apply(config)),
                // an empty document decodes as an empty map
                Ok(Value::Null) => Ok(Self::Apply(Value::Object(Default::default()))),
                Ok(other) => Err(Box::new(Status::bad_request(format!(
                    "error decoding patch: error unmarshaling JSON: while decoding JSON: {}",
                    body_shape::not_a_map(&other).unwrap_or_default()
                )))),
                // upstream's words, around the YAML parser's own
                Err(e) => Err(Box::new(Status::bad_request(format!(
                    "error encoding patch: yaml: {e}"
                )))),
            }
        } else {
            Err(unsupported_patch_type())
        }
    }

    /// Whether the client made the patch conditional on a resourceVersion.
    pub(super) fn pins_resource_version(&self) -> bool {
        match self {
            Self::Merge(v) | Self::Strategic(v) | Self::Apply(v) => v["metadata"].get("resourceVersion").is_some(),
            Self::Json(ops) => serde_json::to_value(ops)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .into_iter()
                .flatten()
                .any(|op| op["path"] == "/metadata/resourceVersion"),
        }
    }

    pub(super) fn apply(&self, target: &mut Value) -> Result<(), Box<Status>> {
        match self {
            Self::Merge(p) => json_patch::merge(target, p),
            Self::Strategic(p) => crate::strategic::apply(target, p),
            // an apply merges by the type's schema and records owners: `crate::apply`
            Self::Apply(_) => return Err(unsupported_patch_type()),
            Self::Json(ops) => json_patch::patch(target, ops).map_err(|e| {
                // upstream's generic words for a patch that does not apply; the operation
                // and path that failed go to the log
                tracing::debug!(error = %e, "a JSON patch did not apply");
                let mut s = Status::bad_request("the server rejected our request due to an error in our request");
                s.reason = "Invalid".into();
                s.code = 422;
                s.details = Some(Default::default());
                Box::new(s)
            })?,
        }
        Ok(())
    }
}

/// Query pairs of a request in order (repeated names kept: `dryRun` may repeat).
pub(super) fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The query as a map (first value of each name), for parameters that take one value.
pub(super) fn query_map(pairs: &[(String, String)]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in pairs {
        map.entry(k.clone()).or_insert_with(|| v.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_keep_repeats_and_the_map_the_first() {
        let uri: axum::http::Uri = "/x?dryRun=All&dryRun=Other&limit=2".parse().unwrap();
        let pairs = query_pairs(&uri);
        assert_eq!(pairs.len(), 3);
        assert_eq!(query_map(&pairs)["dryRun"], "All");
    }
}
