//! JSON values as YAML text in the style gnostic stores them in an `Any` (go-yaml v3's
//! block style after the compiler clears the source's styles): mappings and sequences in
//! block form indented by four, sequence items' mappings continued under their `- `, plain
//! scalars where they read back as the same string, double quotes elsewhere.

use serde_json::{Map, Value};

pub fn to_yaml(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    match v {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, false, &mut out)?,
        Value::Array(items) if !items.is_empty() => write_seq(items, 0, false, &mut out)?,
        _ => {
            out.push_str(&scalar(v)?);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A scalar or an empty collection, on one line.
fn scalar(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s)?,
        Value::Object(m) if m.is_empty() => "{}".to_owned(),
        Value::Array(a) if a.is_empty() => "[]".to_owned(),
        _ => return Err("a collection is not a scalar".to_owned()),
    })
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

/// `inline`: the first entry continues a line already begun (after `- `).
fn write_map(map: &Map<String, Value>, indent: usize, inline: bool, out: &mut String) -> Result<(), String> {
    for (i, (key, value)) in map.iter().enumerate() {
        if !(inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&string(key)?);
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_map(m, indent + 4, false, out)?;
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(a, indent + 4, false, out)?;
            }
            _ => {
                out.push(' ');
                out.push_str(&scalar(value)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

fn write_seq(items: &[Value], indent: usize, inline: bool, out: &mut String) -> Result<(), String> {
    for (i, item) in items.iter().enumerate() {
        if !(inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if is_block(item) => write_map(m, indent + 2, true, out)?,
            Value::Array(a) if is_block(item) => write_seq(a, indent + 2, true, out)?,
            _ => {
                out.push_str(&scalar(item)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// Plain when the text cannot be read as anything but this string; else double-quoted.
fn string(s: &str) -> Result<String, String> {
    let plain_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    );
    if plain_chars && first_ok && !reserved && !looks_numeric(s) {
        return Ok(s.to_owned());
    }
    serde_json::to_string(s).map_err(|e| e.to_string())
}

/// Text a YAML reader could take for a number (such as `.inf` or `1e3`).
fn looks_numeric(s: &str) -> bool {
    let t = s.trim_start_matches(['-', '+']).to_ascii_lowercase();
    t.parse::<f64>().is_ok() || matches!(t.as_str(), ".inf" | ".nan") || t.starts_with("0x") || t.starts_with("0o")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shapes gnostic's compiler was seen to write (from its encoding of our document).
    #[test]
    fn shapes_as_gnostic_writes_them() {
        assert_eq!(to_yaml(&json!("list")).unwrap(), "list\n");
        assert_eq!(to_yaml(&json!(true)).unwrap(), "true\n");
        assert_eq!(
            to_yaml(&json!({"group": "", "kind": "Namespace", "version": "v1"})).unwrap(),
            "group: \"\"\nkind: Namespace\nversion: v1\n"
        );
        assert_eq!(
            to_yaml(&json!([{"group": "apps", "kind": "DaemonSet", "version": "v1"}])).unwrap(),
            "- group: apps\n  kind: DaemonSet\n  version: v1\n"
        );
        assert_eq!(
            to_yaml(&json!(["containerPort", "protocol"])).unwrap(),
            "- containerPort\n- protocol\n"
        );
    }

    /// Whatever the shape, the text reads back as the value it came from.
    #[test]
    fn every_shape_reads_back_as_its_value() {
        let values = [
            json!({"a": {"b": [1, 2.5, {"c": null}], "d": []}, "e": {}}),
            json!([["x", "y"], [], {"k": "v w"}, "true", "1e3", "", "-", "a: b", "#c", "multi\nline"]),
            json!({"quoted key": "yes", "0x10": "on", "t": "~"}),
        ];
        for v in values {
            let text = to_yaml(&v).unwrap();
            let back: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, v, "{text}");
        }
    }
}
