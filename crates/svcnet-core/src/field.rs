//! Field errors: a path into an object, what is wrong with the value there, and how it reads.
//!
//! Rendering follows Kubernetes' `field.Error` to the byte, because clients and tests compare
//! the messages: `spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`.

use std::fmt;

/// A path to a field, such as `spec.ports[1].nodePort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of a top-level field.
    pub fn new(name: &str) -> Self {
        FieldPath(name.to_owned())
    }

    /// The empty path (the object itself); renders as an empty string.
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// A named child: `spec` → `spec.ports`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_owned())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// A list element: `spec.ports` → `spec.ports[2]`.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// A map entry: `values[0]` → `values[0][app]`.
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{k}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of field error Kubernetes distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Required,
    Invalid,
    Duplicate,
    NotFound,
    NotSupported,
    Forbidden,
    TooLong,
    Internal,
}

impl ErrorKind {
    /// The words that start the rendered error.
    pub fn words(self) -> &'static str {
        match self {
            ErrorKind::Required => "Required value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::NotFound => "Not found",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::Internal => "Internal error",
        }
    }

    /// The `reason` of a Status cause.
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::Internal => "InternalError",
        }
    }

    /// Kinds whose rendering never shows the offending value.
    fn hides_value(self) -> bool {
        matches!(
            self,
            ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong | ErrorKind::Internal
        )
    }
}

/// An offending value, as upstream prints it: primitives as Go prints them, anything else
/// (slices, maps, structs) as its JSON (apimachinery 1.37 does so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// No value is shown.
    Omitted,
    /// A nil pointer or interface: `null`.
    Null,
    /// A string (or named string type): `"x"`.
    Str(String),
    /// Any integer: `80`.
    Int(i64),
    /// A slice of strings, shown as JSON: `["a","b"]`, or `null` when the slice is nil.
    /// (`go_type` names its element type.)
    StrList {
        go_type: &'static str,
        items: Option<Vec<String>>,
    },
    /// A value already rendered (structs and maps as JSON).
    Raw(String),
}

impl BadValue {
    pub fn str(s: impl Into<String>) -> Self {
        BadValue::Str(s.into())
    }

    /// A `[]string` value; `None` stands for a nil slice.
    pub fn strings(items: Option<&[String]>) -> Self {
        BadValue::StrList {
            go_type: "string",
            items: items.map(<[String]>::to_vec),
        }
    }

    fn render(&self) -> String {
        match self {
            BadValue::Omitted | BadValue::Null => "null".to_owned(),
            BadValue::Str(s) => go_quote(s),
            BadValue::Int(i) => i.to_string(),
            BadValue::StrList { items: None, .. } => "null".to_owned(),
            BadValue::StrList { items: Some(items), .. } => serde_json::to_string(items).expect("strings serialize"),
            BadValue::Raw(s) => s.clone(),
        }
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_owned())
    }
}

impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}

impl From<i64> for BadValue {
    fn from(i: i64) -> Self {
        BadValue::Int(i)
    }
}

impl From<i32> for BadValue {
    fn from(i: i32) -> Self {
        BadValue::Int(i.into())
    }
}

/// Quotes a string the way Go's `strconv.Quote` does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let v = c as u32;
                if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One thing wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorKind,
    pub path: FieldPath,
    pub value: BadValue,
    pub detail: String,
}

impl FieldError {
    pub fn required(path: FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Required, path, BadValue::Omitted, detail)
    }

    pub fn invalid(path: FieldPath, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, path, value.into(), detail)
    }

    pub fn duplicate(path: FieldPath, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorKind::Duplicate, path, value.into(), "")
    }

    pub fn not_found(path: FieldPath, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorKind::NotFound, path, value.into(), "")
    }

    pub fn forbidden(path: FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, path, BadValue::Omitted, detail)
    }

    pub fn too_long(path: FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLong, path, BadValue::Omitted, detail)
    }

    /// A value outside a fixed set; `supported` is listed quoted, in the order given.
    pub fn not_supported(path: FieldPath, value: impl Into<BadValue>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorKind::NotSupported, path, value.into(), detail)
    }

    fn new(kind: ErrorKind, path: FieldPath, value: BadValue, detail: impl Into<String>) -> Self {
        FieldError {
            kind,
            path,
            value,
            detail: detail.into(),
        }
    }

    /// The error without its path, as in a Status cause's `message`.
    pub fn body(&self) -> String {
        let mut s = if self.kind.hides_value() || self.value == BadValue::Omitted {
            self.kind.words().to_owned()
        } else {
            format!("{}: {}", self.kind.words(), self.value.render())
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

impl std::error::Error for FieldError {}

/// An ordered list of field errors.
pub type ErrorList = Vec<FieldError>;

/// Joins errors as Kubernetes' aggregate does: duplicates dropped, one error alone, several
/// as `[e1, e2]`. Returns `None` for an empty list.
pub fn aggregate_message(errors: &[FieldError]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let msgs: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match msgs.len() {
        0 => None,
        1 => msgs.into_iter().next(),
        _ => Some(format!("[{}]", msgs.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_upstream() {
        let p = FieldPath::new("spec").child("ports").index(1).child("nodePort");
        assert_eq!(p.to_string(), "spec.ports[1].nodePort");
        assert_eq!(
            FieldPath::root().child("values").index(0).key("app").to_string(),
            "values[0][app]"
        );
    }

    #[test]
    fn bodies_render_like_upstream() {
        let p = FieldPath::new("x");
        assert_eq!(FieldError::required(p.clone(), "").body(), "Required value");
        assert_eq!(
            FieldError::invalid(p.clone(), 0i64, "bad").body(),
            "Invalid value: 0: bad"
        );
        assert_eq!(
            FieldError::invalid(p.clone(), "a\"b", "bad").body(),
            r#"Invalid value: "a\"b": bad"#
        );
        assert_eq!(
            FieldError::not_supported(p.clone(), "X", &["A", "B"]).body(),
            r#"Unsupported value: "X": supported values: "A", "B""#
        );
        assert_eq!(FieldError::forbidden(p.clone(), "no").body(), "Forbidden: no");
        let ips = vec!["10.0.0.10".to_owned(), "fd00::1".to_owned()];
        assert_eq!(
            FieldError::invalid(p.clone(), BadValue::strings(Some(&ips)), "d").body(),
            r#"Invalid value: ["10.0.0.10","fd00::1"]: d"#
        );
        assert_eq!(
            FieldError::invalid(p, BadValue::strings(None), "d").body(),
            "Invalid value: null: d"
        );
    }

    #[test]
    fn aggregate_dedups_and_brackets() {
        let a = FieldError::required(FieldPath::new("a"), "");
        let b = FieldError::required(FieldPath::new("b"), "");
        assert_eq!(aggregate_message(&[]), None);
        assert_eq!(
            aggregate_message(std::slice::from_ref(&a)).unwrap(),
            "a: Required value"
        );
        assert_eq!(
            aggregate_message(&[a.clone(), b, a]).unwrap(),
            "[a: Required value, b: Required value]"
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv() {
        assert_eq!(go_quote("tab\there"), r#""tab\there""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("héllo"), "\"héllo\"");
    }
}
