//! The structure server-side apply walks: every served type's fields and how each list and
//! map is merged (`schema.json`, generated from upstream's OpenAPI documents by `cargo xtask
//! gen-apply-schema`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Document {
    kinds: HashMap<String, String>,
    types: HashMap<String, TypeDef>,
}

/// A named type.
#[derive(Deserialize)]
#[serde(untagged)]
enum TypeDef {
    Struct(StructDef),
    Other {
        #[serde(rename = "type")]
        of: TypeRef,
    },
}

/// A struct: its fields, the scalar defaults of some, and whether it is replaced whole.
#[derive(Deserialize)]
pub struct StructDef {
    fields: HashMap<String, TypeRef>,
    #[serde(default)]
    defaults: Map<String, Value>,
    #[serde(default)]
    atomic: bool,
}

/// How a list's elements are told apart.
#[derive(Clone, Copy, Deserialize, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Elements {
    /// The list is one value, replaced whole.
    Atomic,
    /// Scalars, each its own element.
    Set,
    /// Objects told apart by their key fields.
    Map,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Simple {
    Scalar,
    /// Free-form: objects are merged by key, anything else is one value.
    Deduced,
    /// Anything, as one value.
    Untyped,
}

/// A field's type.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum TypeRef {
    Simple(Simple),
    Named {
        #[serde(rename = "ref")]
        name: String,
        atomic: Option<bool>,
    },
    List {
        list: Box<TypeRef>,
        elements: Elements,
        #[serde(default)]
        keys: Vec<String>,
    },
    Map {
        map: Box<TypeRef>,
        #[serde(default)]
        atomic: bool,
    },
}

static DEDUCED: TypeRef = TypeRef::Simple(Simple::Deduced);

/// What a value of some type is, for the walks: one value, an object whose keys are walked,
/// or a list whose elements are.
pub enum Node<'s> {
    Leaf,
    /// A struct (`fields`) or a map (`values` types every key); unknown keys of a struct are
    /// free-form.
    Fields {
        fields: Option<&'s HashMap<String, TypeRef>>,
        values: &'s TypeRef,
        /// A struct's defaults; `{}` marks a field Go always writes.
        defaults: Option<&'s Map<String, Value>>,
    },
    /// A list of elements told apart by `keys` (a set when empty).
    Items {
        items: &'s TypeRef,
        keys: &'s [String],
        defaults: Option<&'s Map<String, Value>>,
    },
}

impl<'s> Node<'s> {
    /// The type of an object's key.
    pub fn field_type(&self, key: &str) -> &'s TypeRef {
        match self {
            Node::Fields { fields, values, .. } => fields.and_then(|f| f.get(key)).unwrap_or(values),
            _ => &DEDUCED,
        }
    }

    /// Whether `key` is a declared field of a struct (a map's keys are not).
    pub fn declares(&self, key: &str) -> bool {
        matches!(self, Node::Fields { fields: Some(f), .. } if f.contains_key(key))
    }
}

/// The types, loaded once.
pub struct Schema {
    document: Document,
}

impl Schema {
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema {
            document: serde_json::from_str(include_str!("schema.json")).expect("schema.json is generated valid"),
        })
    }

    /// The root type of a kind (`apps/v1`, `Deployment`).
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<TypeRef> {
        let name = self.document.kinds.get(&format!("{api_version}/{kind}"))?;
        Some(TypeRef::Named {
            name: name.clone(),
            atomic: None,
        })
    }

    /// What `value` is under type `t`.
    pub fn node<'s>(&'s self, t: &'s TypeRef, value: &Value) -> Node<'s> {
        match t {
            TypeRef::Simple(Simple::Scalar | Simple::Untyped) => Node::Leaf,
            TypeRef::Simple(Simple::Deduced) if value.is_object() => Node::Fields {
                fields: None,
                values: &DEDUCED,
                defaults: None,
            },
            TypeRef::Simple(Simple::Deduced) => Node::Leaf,
            TypeRef::Named { name, atomic } => match self.document.types.get(name) {
                Some(TypeDef::Struct(def)) if !atomic.unwrap_or(def.atomic) => Node::Fields {
                    fields: Some(&def.fields),
                    values: &DEDUCED,
                    defaults: Some(&def.defaults),
                },
                Some(TypeDef::Struct(_)) => Node::Leaf,
                Some(TypeDef::Other { of }) => self.node(of, value),
                None => Node::Leaf,
            },
            TypeRef::List {
                elements: Elements::Atomic,
                ..
            } => Node::Leaf,
            TypeRef::List { list, keys, .. } => Node::Items {
                items: list,
                keys,
                defaults: match &**list {
                    TypeRef::Named { name, .. } => match self.document.types.get(name) {
                        Some(TypeDef::Struct(def)) => Some(&def.defaults),
                        _ => None,
                    },
                    _ => None,
                },
            },
            TypeRef::Map { atomic: true, .. } => Node::Leaf,
            TypeRef::Map { map, .. } => Node::Fields {
                fields: None,
                values: map,
                defaults: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writable_served_kind_has_a_type() {
        let schema = Schema::get();
        for kind in crate::resources::ALL.iter().filter(|k| !k.create_only) {
            let api_version = if kind.group.is_empty() {
                kind.version.to_owned()
            } else {
                format!("{}/{}", kind.group, kind.version)
            };
            assert!(
                schema.kind(&api_version, kind.kind).is_some(),
                "no apply schema for {api_version} {}",
                kind.kind
            );
        }
    }

    #[test]
    fn service_ports_are_keyed_by_port_and_protocol_and_the_selector_is_atomic() {
        let schema = Schema::get();
        let service = schema.kind("v1", "Service").unwrap();
        let obj = serde_json::json!({"spec": {"ports": [], "selector": {"a": "b"}}});
        let root = schema.node(&service, &obj);
        let spec_type = root.field_type("spec");
        let spec = schema.node(spec_type, &obj["spec"]);
        match schema.node(spec.field_type("ports"), &obj["spec"]["ports"]) {
            Node::Items { keys, .. } => assert_eq!(keys, ["port", "protocol"]),
            _ => panic!("ports are not a keyed list"),
        }
        assert!(matches!(
            schema.node(spec.field_type("selector"), &obj["spec"]["selector"]),
            Node::Leaf
        ));
    }
}
