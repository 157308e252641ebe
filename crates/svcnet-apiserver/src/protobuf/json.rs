//! JSON from decoded protobuf messages: the `ToJson` trait, the field helpers the generated
//! impls call, and the types whose JSON form is not an object of their fields.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::jiff::Timestamp;
use k8s_pb as pb;
use serde_json::{Map, Value};

/// A protobuf message or scalar in the JSON form Kubernetes' JSON encoding gives it.
pub trait ToJson {
    fn to_json(&self) -> Value;
}

/// A struct field's JSON, or None where Go's JSON would leave the key out.
pub trait FieldJson {
    fn field_json(&self) -> Option<Value>;
}

/// Sets `object[name]` from a struct field. Absent fields, empty lists and maps, and empty
/// strings (Go's unset string, which protobuf still carries) are left out; zero numbers and
/// false stay, as a Go pointer field set to them means something.
pub fn field<T: FieldJson>(object: &mut Map<String, Value>, name: &str, value: &T) {
    if let Some(v) = value.field_json() {
        object.insert(name.to_owned(), v);
    }
}

/// [`field`] for a Go field that is not a pointer and is tagged `omitempty`: Go's JSON leaves
/// it out at zero (0 or false), though protobuf carries it.
pub fn field_omit_zero<T: FieldJson>(object: &mut Map<String, Value>, name: &str, value: &T) {
    match value.field_json() {
        Some(Value::Bool(false)) => {}
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => {}
        Some(v) => {
            object.insert(name.to_owned(), v);
        }
        None => {}
    }
}

/// Merges an embedded Go struct's fields into its parent, as Go's JSON inlines them.
pub fn inline<T: ToJson>(object: &mut Map<String, Value>, value: &Option<T>) {
    if let Some(Value::Object(fields)) = value.as_ref().map(ToJson::to_json) {
        object.extend(fields);
    }
}

impl<T: ToJson> FieldJson for Option<T> {
    fn field_json(&self) -> Option<Value> {
        let value = self.as_ref()?.to_json();
        match &value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            _ => Some(value),
        }
    }
}

impl<T: ToJson> FieldJson for Vec<T> {
    fn field_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| Value::Array(self.iter().map(ToJson::to_json).collect()))
    }
}

impl<T: ToJson> FieldJson for BTreeMap<String, T> {
    fn field_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()))
    }
}

impl<T: ToJson> ToJson for Box<T> {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}

/// Scalars are JSON booleans and numbers as they are.
macro_rules! scalar_to_json {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn to_json(&self) -> Value {
                Value::from(*self)
            }
        }
    )*};
}

scalar_to_json!(bool, i32, i64, f64);

/// Protobuf `bytes` are base64 in JSON, as Go encodes `[]byte`.
impl ToJson for Vec<u8> {
    fn to_json(&self) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(self))
    }
}

/// RFC 3339 in UTC with `fraction` digits of the second; null for Go's zero time.
fn timestamp(seconds: Option<i64>, nanos: Option<i32>, fraction: usize) -> Value {
    let (seconds, nanos) = (seconds.unwrap_or(0), nanos.unwrap_or(0));
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let Ok(t) = Timestamp::new(seconds, nanos) else {
        return Value::Null;
    };
    let format = if fraction == 0 {
        "%Y-%m-%dT%H:%M:%SZ"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    };
    Value::String(t.strftime(format).to_string())
}

impl ToJson for pb::apimachinery::pkg::apis::meta::v1::Time {
    fn to_json(&self) -> Value {
        timestamp(self.seconds, self.nanos, 0)
    }
}

impl ToJson for pb::apimachinery::pkg::apis::meta::v1::MicroTime {
    fn to_json(&self) -> Value {
        timestamp(self.seconds, self.nanos, 6)
    }
}

/// Go's `time.Duration` string: `1h2m3.5s`, `250ms`, `0s`.
impl ToJson for pb::apimachinery::pkg::apis::meta::v1::Duration {
    fn to_json(&self) -> Value {
        Value::String(go_duration(self.duration.unwrap_or(0)))
    }
}

fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let trim = |whole: u64, frac: u64, digits: usize| {
        let frac = format!("{frac:0digits$}");
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{frac}")
        }
    };
    if n == 0 {
        return "0s".into();
    }
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", trim(n / 1_000, n % 1_000, 3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", trim(n / 1_000_000, n % 1_000_000, 6));
    }
    let (hours, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (minutes, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = trim(rest / 1_000_000_000, rest % 1_000_000_000, 9);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// managedFields entries: the raw bytes are JSON already.
impl ToJson for pb::apimachinery::pkg::apis::meta::v1::FieldsV1 {
    fn to_json(&self) -> Value {
        embedded_json(self.raw.as_deref())
    }
}

impl ToJson for pb::apimachinery::pkg::runtime::RawExtension {
    fn to_json(&self) -> Value {
        embedded_json(self.raw.as_deref())
    }
}

/// Embedded JSON bytes; bytes that are not JSON stay visible as a base64 string rather than
/// vanish.
fn embedded_json(raw: Option<&[u8]>) -> Value {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(raw).unwrap_or_else(|_| raw.to_vec().to_json())
}

/// `type` 0 is an int, 1 a string.
impl ToJson for pb::apimachinery::pkg::util::intstr::IntOrString {
    fn to_json(&self) -> Value {
        match self.r#type {
            Some(1) => Value::String(self.str_val.clone().unwrap_or_default()),
            _ => Value::from(self.int_val.unwrap_or(0)),
        }
    }
}

impl ToJson for pb::apimachinery::pkg::api::resource::Quantity {
    fn to_json(&self) -> Value {
        Value::String(self.string.clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_500_000_000), "1m30.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn times_are_rfc3339_and_zero_is_null() {
        let t = pb::apimachinery::pkg::apis::meta::v1::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(5),
        };
        assert_eq!(t.to_json(), "2023-11-14T22:13:20Z");
        let m = pb::apimachinery::pkg::apis::meta::v1::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_000),
        };
        assert_eq!(m.to_json(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            pb::apimachinery::pkg::apis::meta::v1::Time::default().to_json(),
            Value::Null
        );
    }

    #[test]
    fn int_or_string_follows_its_type() {
        use pb::apimachinery::pkg::util::intstr::IntOrString;
        let port = IntOrString {
            r#type: Some(0),
            int_val: Some(8080),
            str_val: None,
        };
        assert_eq!(port.to_json(), 8080);
        let named = IntOrString {
            r#type: Some(1),
            int_val: None,
            str_val: Some("http".into()),
        };
        assert_eq!(named.to_json(), "http");
    }
}
