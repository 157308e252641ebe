//! What is compared of an answer: the JSON body with what a server generates replaced by
//! placeholders. uids, timestamps, resourceVersions, continue tokens and managedFields
//! (server-side apply's bookkeeping, which svcnet does not keep) differ by nature; a
//! ClusterIP or node port the request did not ask for is compared as allocated or not. A
//! ServiceCIDR's finalizer and Ready condition come from a controller, which svcnet runs in
//! its API server and upstream in kube-controller-manager (not started here): both are left
//! out.

use serde_json::{Value, json};

/// The normalised body (a non-JSON body is kept as text).
pub fn answer(body: &str, request_body: &str) -> Value {
    let Ok(mut value) = serde_json::from_str::<Value>(body) else {
        return Value::String(body.trim().to_owned());
    };
    scrub(&mut value, request_body);
    value
}

/// Compact, for failure messages.
pub fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 1500 {
        format!(
            "{}…",
            &text[..text.char_indices().nth(1500).map_or(text.len(), |(i, _)| i)]
        )
    } else {
        text
    }
}

fn scrub(v: &mut Value, request_body: &str) {
    match v {
        Value::Object(map) => {
            if map.get("kind").is_some_and(|k| k == "ServiceCIDR") {
                if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("finalizers");
                }
                if let Some(status) = map.get_mut("status").and_then(Value::as_object_mut) {
                    status.remove("conditions");
                }
            }
            if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                for generated in [
                    "uid",
                    "creationTimestamp",
                    "resourceVersion",
                    "managedFields",
                    "selfLink",
                ] {
                    meta.remove(generated);
                }
                if meta.contains_key("continue") {
                    meta.insert("continue".into(), json!("<token>"));
                }
            }
            for (key, value) in map.iter_mut() {
                match (key.as_str(), &*value) {
                    ("clusterIP" | "nodePort" | "healthCheckNodePort", Value::String(_) | Value::Number(_))
                        if !asked_for(value, request_body) && value != "None" && value != "" =>
                    {
                        *value = json!("<allocated>");
                    }
                    ("clusterIPs", Value::Array(ips)) => {
                        let ips = ips
                            .iter()
                            .map(|ip| {
                                if asked_for(ip, request_body) || ip == "None" {
                                    ip.clone()
                                } else {
                                    json!("<allocated>")
                                }
                            })
                            .collect();
                        *value = Value::Array(ips);
                    }
                    _ => scrub(value, request_body),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| scrub(i, request_body)),
        Value::String(s) => *s = placeholders(s),
        _ => {}
    }
}

/// Whether the request gave this value itself.
fn asked_for(value: &Value, request_body: &str) -> bool {
    match value {
        Value::String(s) => request_body.contains(&format!("\"{s}\"")),
        Value::Number(n) => request_body.contains(&n.to_string()),
        _ => false,
    }
}

/// The random five characters of a ServiceAccount token volume's name.
const TOKEN_VOLUME: &str = "kube-api-access-";

/// UUIDs → `<uid>`, RFC 3339 times → `<time>`, the stored resourceVersion a precondition
/// message quotes → `<rv>`, a token volume's random suffix → `<suffix>`.
fn placeholders(s: &str) -> String {
    let s = match s.strip_prefix(TOKEN_VOLUME) {
        Some(suffix) if suffix.len() == 5 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) => {
            format!("{TOKEN_VOLUME}<suffix>")
        }
        _ => s.to_owned(),
    };
    let s = s.as_str();
    let s = match s.split_once("ResourceVersion in record (") {
        Some((before, after)) => match after.split_once(')') {
            Some((_, rest)) => format!("{before}ResourceVersion in record (<rv>){rest}"),
            None => s.to_owned(),
        },
        None => s.to_owned(),
    };
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if is_uuid(&chars[i..]) {
            out.push_str("<uid>");
            i += 36;
        } else if let Some(len) = time_len(&chars[i..]) {
            out.push_str("<time>");
            i += len;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn is_uuid(c: &[char]) -> bool {
    c.len() >= 36
        && c[..36].iter().enumerate().all(|(i, ch)| match i {
            8 | 13 | 18 | 23 => *ch == '-',
            _ => ch.is_ascii_hexdigit(),
        })
}

/// `2026-12-02T06:16:57Z` or with fractional seconds: its length.
fn time_len(c: &[char]) -> Option<usize> {
    let shape = "dddd-dd-ddTdd:dd:dd";
    if c.len() < shape.len() + 1 {
        return None;
    }
    for (ch, want) in c.iter().zip(shape.chars()) {
        let ok = if want == 'd' { ch.is_ascii_digit() } else { *ch == want };
        if !ok {
            return None;
        }
    }
    let mut n = shape.len();
    if c.get(n) == Some(&'.') {
        n += 1;
        while c.get(n).is_some_and(char::is_ascii_digit) {
            n += 1;
        }
    }
    (c.get(n) == Some(&'Z')).then_some(n + 1)
}

#[test]
fn generated_values_become_placeholders() {
    let body = r#"{"metadata":{"uid":"x","resourceVersion":"5","name":"a"},"spec":{"clusterIP":"10.96.0.7","clusterIPs":["10.96.0.7"],"ports":[{"nodePort":30001},{"nodePort":30555}]},"message":"UID in precondition: 0e6c1d2a-3b4c-4d5e-8f90-a1b2c3d4e5f6 at 2026-12-02T06:16:57.123Z"}"#;
    let v = answer(body, r#"{"nodePort":30555}"#);
    assert_eq!(v["metadata"], json!({ "name": "a" }));
    assert_eq!(v["spec"]["clusterIP"], "<allocated>");
    assert_eq!(v["spec"]["clusterIPs"], json!(["<allocated>"]));
    assert_eq!(
        v["spec"]["ports"],
        json!([{ "nodePort": "<allocated>" }, { "nodePort": 30555 }])
    );
    assert_eq!(v["message"], "UID in precondition: <uid> at <time>");
}
