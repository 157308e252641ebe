//! Sets of field paths, as managedFields records them (`fieldsV1`): a path is a sequence of
//! elements (a field name, a list element's key fields, a set element's value, an index);
//! the set is a tree in which each node says which of its children are members themselves.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// A scalar in a path (a key field's value or a set element), ordered as upstream orders
/// them: by type, then by value.
#[derive(Clone, Debug, PartialEq)]
pub struct Atom(pub Value);

impl Eq for Atom {}

impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Number(_) => 2,
                Value::String(_) => 3,
                Value::Array(_) => 4,
                Value::Object(_) => 5,
            }
        }
        match (&self.0, &other.0) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Number(a), Value::Number(b)) => {
                let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                a.partial_cmp(&b).unwrap_or(Ordering::Equal)
            }
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (a, b) => rank(a).cmp(&rank(b)).then_with(|| a.to_string().cmp(&b.to_string())),
        }
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One step of a path. Variants are ordered as upstream orders them (fields first).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Element {
    Field(String),
    /// A keyed list's element, by its key fields sorted by name.
    Key(Vec<(String, Atom)>),
    /// A set's element.
    Value(Atom),
    Index(usize),
}

impl Element {
    /// Its form in `fieldsV1` (`f:name`, `k:{"port":80}`, `v:"a"`, `i:0`).
    fn encode(&self) -> String {
        match self {
            Element::Field(name) => format!("f:{name}"),
            Element::Key(fields) => {
                let object: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
                format!("k:{}", Value::Object(object))
            }
            Element::Value(v) => format!("v:{}", v.0),
            Element::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(text: &str) -> Result<Self, String> {
        let (tag, rest) = text
            .split_at_checked(2)
            .ok_or_else(|| format!("unknown path element {text:?}"))?;
        let bad = |e: serde_json::Error| format!("invalid path element {text:?}: {e}");
        match tag {
            "f:" => Ok(Element::Field(rest.to_owned())),
            "k:" => match serde_json::from_str::<Value>(rest).map_err(bad)? {
                Value::Object(fields) => {
                    let mut key: Vec<(String, Atom)> = fields.into_iter().map(|(k, v)| (k, Atom(v))).collect();
                    key.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Element::Key(key))
                }
                _ => Err(format!("invalid path element {text:?}: a key must be an object")),
            },
            "v:" => Ok(Element::Value(Atom(serde_json::from_str(rest).map_err(bad)?))),
            "i:" => rest
                .parse()
                .map(Element::Index)
                .map_err(|_| format!("invalid path element {text:?}")),
            _ => Err(format!("unknown path element {text:?}")),
        }
    }
}

/// Upstream's spelling in messages: `.spec`, `[name="web"]`, `[=value]`, `[0]`.
impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Field(name) => write!(f, ".{name}"),
            Element::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", v.0)).collect();
                write!(f, "[{}]", parts.join(","))
            }
            Element::Value(v) => write!(f, "[={}]", v.0),
            Element::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub type Path = Vec<Element>;

pub fn path_string(path: &[Element]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<Element>,
    children: BTreeMap<Element, Set>,
}

impl Set {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    pub fn insert(&mut self, path: &[Element]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn contains(&self, path: &[Element]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether some member lies strictly under `path`.
    pub fn has_under(&self, path: &[Element]) -> bool {
        match path {
            [] => !self.is_empty(),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has_under(rest)),
        }
    }

    /// The subtree under one element.
    pub fn child(&self, element: &Element) -> Option<&Set> {
        self.children.get(element)
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (element, child) in &other.children {
            let merged = match out.children.get(element) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(element.clone(), merged);
        }
        out
    }

    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(element, child)| match other.children.get(element) {
                Some(theirs) => (element.clone(), child.difference(theirs)),
                None => (element.clone(), child.clone()),
            })
            .filter(|(_, child)| !child.is_empty())
            .collect();
        Set { members, children }
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(element, child)| {
                other
                    .children
                    .get(element)
                    .map(|theirs| (element.clone(), child.intersection(theirs)))
            })
            .filter(|(_, child)| !child.is_empty())
            .collect();
        Set { members, children }
    }

    /// Every member path, in upstream's order (a node's members, then its children's).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for member in &self.members {
            let mut path = prefix.clone();
            path.push(member.clone());
            out.push(path);
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` form: a member is `{}`, or `{".": {}, …}` when it has children too.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.encode(false))
    }

    fn encode(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let mut elements: BTreeSet<&Element> = self.members.iter().collect();
        elements.extend(self.children.iter().filter(|(_, c)| !c.is_empty()).map(|(e, _)| e));
        for element in elements {
            let member = self.members.contains(element);
            let encoded = match self.children.get(element).filter(|c| !c.is_empty()) {
                Some(child) => child.encode(member),
                None => Map::new(),
            };
            out.insert(element.encode(), Value::Object(encoded));
        }
        out
    }

    pub fn from_fields_v1(value: &Value) -> Result<Set, String> {
        let Value::Object(entries) = value else {
            return Err("fieldsV1 must be an object".into());
        };
        let mut set = Set::default();
        for (key, inner) in entries {
            if key == "." {
                continue;
            }
            let element = Element::decode(key)?;
            let Value::Object(children) = inner else {
                return Err(format!("the value of {key:?} must be an object"));
            };
            if children.is_empty() || children.contains_key(".") {
                set.members.insert(element.clone());
            }
            let child = Set::from_fields_v1(inner)?;
            if !child.is_empty() {
                set.children.insert(element, child);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> Element {
        Element::Field(name.into())
    }

    #[test]
    fn fields_v1_round_trips_with_upstream_s_markers() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                       "f:finalizers": {"v:\"a\"": {}}}
        });
        let set = Set::from_fields_v1(&encoded).unwrap();
        assert!(set.contains(&[f("metadata"), f("labels")]));
        assert!(set.contains(&[f("metadata"), f("labels"), f("app")]));
        assert!(!set.contains(&[f("metadata")]));
        let port = Element::Key(vec![
            ("port".into(), Atom(json!(80))),
            ("protocol".into(), Atom(json!("TCP"))),
        ]);
        assert!(set.contains(&[f("spec"), f("ports"), port.clone(), f("targetPort")]));
        assert_eq!(set.to_fields_v1(), encoded);
        assert_eq!(
            path_string(&[f("spec"), f("ports"), port, f("port")]),
            ".spec.ports[port=80,protocol=\"TCP\"].port"
        );
    }

    #[test]
    fn set_algebra_keeps_membership_apart_from_children() {
        let mut a = Set::default();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("template")]);
        a.insert(&[f("spec"), f("template"), f("x")]);
        let mut b = Set::default();
        b.insert(&[f("spec"), f("template"), f("x")]);
        let d = a.difference(&b);
        assert!(d.contains(&[f("spec"), f("template")]));
        assert!(!d.contains(&[f("spec"), f("template"), f("x")]));
        assert_eq!(a.intersection(&b), b);
        assert_eq!(d.union(&b), a);
        assert!(a.has_under(&[f("spec"), f("template")]));
        assert!(!d.has_under(&[f("spec"), f("template")]));
        assert_eq!(a.paths().len(), 3);
    }

    #[test]
    fn bad_fields_are_errors_not_panics() {
        for bad in [
            json!([]),
            json!({"x": {}}),
            json!({"f:a": 1}),
            json!({"k:[1]": {}}),
            json!({"i:x": {}}),
            json!({"é": {}}),
        ] {
            assert!(Set::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }
}
