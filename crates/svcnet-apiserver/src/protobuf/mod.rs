//! Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`), as the typed
//! clients of kubectl and client-go send them: a `k8s\0` magic prefix, then a
//! `runtime.Unknown` naming the kind and carrying the object's bytes. k8s-pb decodes them;
//! `generated.rs` (from `cargo xtask gen-protobuf`) turns the result into the JSON every other
//! path of the server works on, so both encodings share one validation and one store format.

mod generated;
mod json;

use k8s_pb as pb;
use prost::Message;
use serde_json::Value;

pub(crate) use json::ToJson;

/// The media type of Kubernetes' protobuf encoding.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the body does not start with the Kubernetes protobuf prefix")]
    NoPrefix,
    #[error("the protobuf envelope is malformed: {0}")]
    Envelope(prost::DecodeError),
    #[error("content encoding {0:?} is not supported")]
    ContentEncoding(String),
    #[error("no protobuf decoding for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("the {kind} is malformed: {source}")]
    Object { kind: String, source: prost::DecodeError },
}

/// The object in a protobuf body as the JSON a JSON client would have sent.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body.strip_prefix(MAGIC).ok_or(DecodeError::NoPrefix)?;
    let unknown = pb::apimachinery::pkg::runtime::Unknown::decode(rest).map_err(DecodeError::Envelope)?;
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(DecodeError::ContentEncoding(encoding));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    // the served kinds through their registrations; request-only bodies here
    let decoded = match (api_version.as_str(), kind.as_str()) {
        ("autoscaling/v1", "Scale") => object::<pb::api::autoscaling::v1::Scale>(&raw),
        ("events.k8s.io/v1", "Event") => object::<pb::api::events::v1::Event>(&raw),
        ("v1" | "meta.k8s.io/v1", "DeleteOptions") => {
            object::<pb::apimachinery::pkg::apis::meta::v1::DeleteOptions>(&raw)
        }
        _ => match crate::kinds::by_type(&api_version, &kind) {
            Some(strategy) => (strategy.from_protobuf)(&raw),
            None => return Err(DecodeError::UnknownKind { api_version, kind }),
        },
    };
    let decoded = decoded.map_err(|source| DecodeError::Object {
        kind: kind.clone(),
        source,
    })?;
    let mut object = serde_json::Map::new();
    object.insert("apiVersion".into(), api_version.into());
    object.insert("kind".into(), kind.into());
    if let Value::Object(fields) = decoded {
        object.extend(fields);
    }
    Ok(Value::Object(object))
}

fn object<T: Message + Default + ToJson>(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    T::decode(raw).map(|message| message.to_json())
}

#[cfg(test)]
mod tests;
