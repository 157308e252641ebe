//! The walks server-side apply makes over an object with its type, as structured-merge-diff
//! makes them: the set of fields a value sets, the merge of an applied configuration into the
//! live object, the comparison of two objects (fields added, modified, removed), and the
//! removal of a set of fields.

use serde_json::{Map, Value};

use super::fieldset::{Atom, Element, Path, Set};
use super::schema::{Node, Schema, TypeRef};

/// The element that names `item` in a list of the given keys (a set's element when none);
/// a key field left out takes its default.
fn list_element(keys: &[String], defaults: Option<&Map<String, Value>>, item: &Value) -> Result<Element, String> {
    if keys.is_empty() {
        return match item {
            Value::Object(_) => Err("associative list without keys has an element that's a map type".into()),
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => Err("associative list without keys has an element that's an explicit null".into()),
            scalar => Ok(Element::Value(Atom(scalar.clone()))),
        };
    }
    let Value::Object(fields) = item else {
        return Err("associative list with keys may not have non-map elements".into());
    };
    let mut key: Vec<(String, Atom)> = keys
        .iter()
        .filter_map(|k| {
            let value = fields.get(k).or_else(|| defaults.and_then(|d| d.get(k)))?;
            Some((k.clone(), Atom(value.clone())))
        })
        .collect();
    if key.is_empty() {
        return Err(format!(
            "associative list with keys has an element that omits all key fields {keys:?} (and doesn't have default values for any key fields)"
        ));
    }
    key.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Element::Key(key))
}

/// The elements naming each item of a list, in order.
fn elements(
    keys: &[String],
    defaults: Option<&Map<String, Value>>,
    items: &[Value],
    path: &Path,
) -> Result<Vec<Element>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            list_element(keys, defaults, item)
                .map_err(|e| format!("{}: element {i}: {e}", super::fieldset::path_string(path)))
        })
        .collect()
}

/// The fields `value` sets: its leaves, the elements of its keyed lists and sets, the keys
/// of its maps, and empty objects.
pub fn field_set(schema: &Schema, t: &TypeRef, value: &Value) -> Result<Set, String> {
    let mut set = Set::default();
    collect(schema, t, value, &mut Vec::new(), &mut set)?;
    Ok(set)
}

fn collect(schema: &Schema, t: &TypeRef, value: &Value, path: &mut Path, set: &mut Set) -> Result<(), String> {
    match (schema.node(t, value), value) {
        (node @ Node::Fields { .. }, Value::Object(object)) => {
            for (key, child) in object {
                path.push(Element::Field(key.clone()));
                collect(schema, node.field_type(key), child, path, set)?;
                let empty_object = child.as_object().is_some_and(Map::is_empty);
                if child.is_null() || empty_object || !node.declares(key) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        (Node::Items { items, keys, defaults }, Value::Array(list)) => {
            let named = elements(keys, defaults, list, path)?;
            for (i, element) in named.iter().enumerate() {
                path.push(element.clone());
                // a duplicated element is one member; what it holds is not told apart
                if named.iter().filter(|e| *e == element).count() == 1 {
                    collect(schema, items, &list[i], path, set)?;
                }
                set.insert(path);
                path.pop();
            }
        }
        (Node::Fields { .. } | Node::Items { .. }, Value::Null) => {}
        (Node::Fields { .. }, other) => return Err(wrong_shape(path, "map", other)),
        (Node::Items { .. }, other) => return Err(wrong_shape(path, "list", other)),
        _ => set.insert(path),
    }
    Ok(())
}

/// A value where the type wants a map or a list, in structured-merge-diff's words (it prints
/// the value as Go's `%v` prints its wrapper).
fn wrong_shape(path: &Path, wanted: &str, got: &Value) -> String {
    format!(
        "{}: expected {wanted}, got &{{{}}}",
        super::fieldset::path_string(path),
        go_print(got)
    )
}

/// A JSON value as Go's `%v` prints it once decoded into `interface{}`.
fn go_print(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{}", go_print(v))).collect();
            pairs.sort();
            format!("map[{}]", pairs.join(" "))
        }
    }
}

/// `config` merged into `live`: the config's scalars, atomic values and unknown elements
/// win; objects and keyed lists are merged element by element, in upstream's order.
pub fn merge(schema: &Schema, t: &TypeRef, live: &Value, config: &Value) -> Result<Value, String> {
    merge_at(schema, t, Some(live), Some(config), &mut Vec::new()).map(|v| v.unwrap_or(Value::Null))
}

fn merge_at(
    schema: &Schema,
    t: &TypeRef,
    live: Option<&Value>,
    config: Option<&Value>,
    path: &mut Path,
) -> Result<Option<Value>, String> {
    let (live, config) = match (live, config) {
        (l, None) => return Ok(l.cloned()),
        (None, Some(c)) => {
            // still walked, so a bad list in the config is refused
            merge_items_check(schema, t, c, path)?;
            return Ok(Some(c.clone()));
        }
        (Some(l), Some(c)) => (l, c),
    };
    match (schema.node(t, config), live, config) {
        (node @ Node::Fields { .. }, Value::Object(l), Value::Object(c)) => {
            let mut out = Map::new();
            for key in l.keys().chain(c.keys().filter(|k| !l.contains_key(*k))) {
                path.push(Element::Field(key.clone()));
                let merged = merge_at(schema, node.field_type(key), l.get(key), c.get(key), path)?;
                path.pop();
                if let Some(v) = merged {
                    out.insert(key.clone(), v);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        (Node::Items { items, keys, defaults }, Value::Array(l), Value::Array(c))
            if !(l.is_empty() && c.is_empty()) =>
        {
            merge_lists(schema, items, keys, defaults, l, c, path).map(|v| Some(Value::Array(v)))
        }
        _ => Ok(Some(config.clone())),
    }
}

/// Refuses what a merge would refuse in a config with nothing live under it.
fn merge_items_check(schema: &Schema, t: &TypeRef, config: &Value, path: &mut Path) -> Result<(), String> {
    match (schema.node(t, config), config) {
        (node @ Node::Fields { .. }, Value::Object(c)) => {
            for (key, child) in c {
                path.push(Element::Field(key.clone()));
                merge_items_check(schema, node.field_type(key), child, path)?;
                path.pop();
            }
            Ok(())
        }
        (Node::Items { items, keys, defaults }, Value::Array(c)) => {
            let named = elements(keys, defaults, c, path)?;
            for (i, element) in named.iter().enumerate() {
                if named[..i].contains(element) {
                    return Err(duplicate(path, element));
                }
                path.push(element.clone());
                merge_items_check(schema, items, &c[i], path)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn duplicate(path: &Path, element: &Element) -> String {
    format!(
        "{}: duplicate entries for key {element}",
        super::fieldset::path_string(path)
    )
}

/// Two keyed lists merged, ordered as structured-merge-diff orders them: live elements keep
/// their places, the config's shared elements keep the config's relative order, and its
/// new elements come where the config puts them.
fn merge_lists(
    schema: &Schema,
    items: &TypeRef,
    keys: &[String],
    defaults: Option<&Map<String, Value>>,
    live: &[Value],
    config: &[Value],
    path: &mut Path,
) -> Result<Vec<Value>, String> {
    let config_named = elements(keys, defaults, config, path)?;
    for (i, element) in config_named.iter().enumerate() {
        if config_named[..i].contains(element) {
            return Err(duplicate(path, element));
        }
    }
    let live_named = elements(keys, defaults, live, path)?;
    let live_value = |e: &Element| -> Option<Value> {
        let mut found = live_named.iter().zip(live).filter(|(n, _)| *n == e).map(|(_, v)| v);
        let first = found.next()?;
        // a duplicated live element merges as nothing
        Some(if found.next().is_some() {
            Value::Null
        } else {
            first.clone()
        })
    };
    let config_value = |e: &Element| config_named.iter().position(|n| n == e).map(|i| &config[i]);
    let mut shared = config_named.iter().filter(|e| live_named.contains(e));
    let mut next_shared = shared.next();
    let mut merged_config: Vec<&Element> = Vec::new();
    let mut out = Vec::new();
    let (mut li, mut ri) = (0, 0);
    let mut merge_one =
        |e: &Element, l: Option<Value>, c: Option<&Value>, out: &mut Vec<Value>| -> Result<(), String> {
            path.push(e.clone());
            let merged = merge_at(schema, items, l.as_ref(), c, path)?;
            path.pop();
            out.extend(merged);
            Ok(())
        };
    while li < live_named.len() || ri < config_named.len() {
        if li < live_named.len() && ri < config_named.len() {
            let e = &live_named[li];
            if *e == config_named[ri] {
                merged_config.push(e);
                merge_one(e, live_value(e), config_value(e), &mut out)?;
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if config_value(e).is_some() && next_shared.is_some_and(|n| n != e) {
                li += 1;
                continue;
            }
        }
        if li < live_named.len() {
            let e = &live_named[li];
            if config_value(e).is_none() {
                merge_one(e, Some(live[li].clone()), None, &mut out)?;
                li += 1;
                continue;
            } else if merged_config.contains(&e) {
                li += 1;
            }
        }
        if ri < config_named.len() {
            let e = &config_named[ri];
            merged_config.push(e);
            merge_one(e, live_value(e), config_value(e), &mut out)?;
            ri += 1;
            if next_shared == Some(e) {
                next_shared = shared.next();
            }
        }
    }
    Ok(out)
}

/// `value` as Go writes it: every struct field that is not a pointer is there, `{}` at least
/// (how upstream's live objects look to its field manager, so that filling in a struct
/// never counts as adding it).
pub fn with_go_structs(schema: &Schema, t: &TypeRef, value: &Value) -> Value {
    match (schema.node(t, value), value) {
        (node @ Node::Fields { defaults, .. }, Value::Object(object)) => {
            let mut out = Map::new();
            for (key, child) in object {
                out.insert(key.clone(), with_go_structs(schema, node.field_type(key), child));
            }
            for (key, default) in defaults.into_iter().flatten() {
                if default.as_object().is_some_and(Map::is_empty) && !out.contains_key(key) {
                    out.insert(
                        key.clone(),
                        with_go_structs(schema, node.field_type(key), &Value::Object(Map::new())),
                    );
                }
            }
            Value::Object(out)
        }
        (Node::Items { items, .. }, Value::Array(list)) => {
            Value::Array(list.iter().map(|i| with_go_structs(schema, items, i)).collect())
        }
        _ => value.clone(),
    }
}

/// What changed from one object to another, field by field.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

pub fn compare(schema: &Schema, t: &TypeRef, old: &Value, new: &Value) -> Result<Comparison, String> {
    let mut comparison = Comparison::default();
    compare_at(schema, t, Some(old), Some(new), &mut Vec::new(), &mut comparison)?;
    Ok(comparison)
}

fn leaf(old: Option<&Value>, new: Option<&Value>, path: &Path, c: &mut Comparison) {
    match (old, new) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(o), Some(n)) if o != n => c.modified.insert(path),
        _ => {}
    }
}

fn compare_at(
    schema: &Schema,
    t: &TypeRef,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Path,
    c: &mut Comparison,
) -> Result<(), String> {
    let Some(sample) = new.or(old) else {
        return Ok(());
    };
    let empty_object = |v: Option<&Value>| v.is_none_or(|v| v.as_object().is_some_and(Map::is_empty));
    let empty_array = |v: Option<&Value>| v.is_none_or(|v| v.as_array().is_some_and(Vec::is_empty));
    let shapes_agree = |is: fn(&Value) -> bool| old.is_none_or(is) && new.is_none_or(is);
    match schema.node(t, sample) {
        node @ Node::Fields { .. } if shapes_agree(Value::is_object) && !(empty_object(old) && empty_object(new)) => {
            let (o, n) = (old.and_then(Value::as_object), new.and_then(Value::as_object));
            let keys = o.into_iter().flat_map(Map::keys).chain(
                n.into_iter()
                    .flat_map(Map::keys)
                    .filter(|k| o.is_none_or(|o| !o.contains_key(*k))),
            );
            for key in keys {
                path.push(Element::Field(key.clone()));
                compare_at(
                    schema,
                    node.field_type(key),
                    o.and_then(|o| o.get(key)),
                    n.and_then(|n| n.get(key)),
                    path,
                    c,
                )?;
                path.pop();
            }
        }
        Node::Items { items, keys, defaults }
            if shapes_agree(Value::is_array) && !(empty_array(old) && empty_array(new)) =>
        {
            let o: &[Value] = old.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let n: &[Value] = new.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let (o_named, n_named) = (elements(keys, defaults, o, path)?, elements(keys, defaults, n, path)?);
            let mut all: Vec<&Element> = Vec::new();
            for e in o_named.iter().chain(&n_named) {
                if !all.contains(&e) {
                    all.push(e);
                }
            }
            for e in all {
                let of: Vec<&Value> = o_named.iter().zip(o).filter(|(x, _)| *x == e).map(|(_, v)| v).collect();
                let nf: Vec<&Value> = n_named.iter().zip(n).filter(|(x, _)| *x == e).map(|(_, v)| v).collect();
                path.push(e.clone());
                match (of.len(), nf.len()) {
                    (0..=1, 0..=1) => compare_at(schema, items, of.first().copied(), nf.first().copied(), path, c)?,
                    (a, b) if a >= 2 && b >= 2 => {
                        if of != nf {
                            c.modified.insert(path);
                        }
                    }
                    (a, _) if a >= 2 => {
                        if let Some(first) = nf.first() {
                            compare_at(schema, items, None, Some(first), path, c)?;
                        }
                        c.removed.insert(path);
                    }
                    _ => {
                        if let Some(first) = of.first() {
                            compare_at(schema, items, Some(first), None, path, c)?;
                        }
                        c.added.insert(path);
                    }
                }
                path.pop();
            }
        }
        _ => {
            leaf(old, new, path, c);
            return Ok(());
        }
    }
    match (old, new) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        _ => {}
    }
    Ok(())
}

/// `value` without the members of `remove` (a member takes what it holds with it); an object
/// or list emptied this way goes too.
pub fn remove(schema: &Schema, t: &TypeRef, value: &Value, remove: &Set) -> Value {
    remove_at(schema, t, value, remove).unwrap_or(Value::Null)
}

fn remove_at(schema: &Schema, t: &TypeRef, value: &Value, remove: &Set) -> Option<Value> {
    match (schema.node(t, value), value) {
        (node @ Node::Fields { .. }, Value::Object(object)) if !object.is_empty() => {
            let mut out = Map::new();
            for (key, child) in object {
                let element = Element::Field(key.clone());
                if remove.contains(std::slice::from_ref(&element)) {
                    continue;
                }
                let kept = match remove.child(&element) {
                    Some(under) => remove_at(schema, node.field_type(key), child, under),
                    None => Some(child.clone()),
                };
                if let Some(kept) = kept {
                    out.insert(key.clone(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (Node::Items { items, keys, defaults }, Value::Array(list)) if !list.is_empty() => {
            let mut out = Vec::new();
            for item in list {
                let Ok(element) = list_element(keys, defaults, item) else {
                    out.push(item.clone());
                    continue;
                };
                if remove.contains(std::slice::from_ref(&element)) {
                    continue;
                }
                match remove.child(&element) {
                    Some(under) => out.extend(remove_at(schema, items, item, under)),
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => Some(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> TypeRef {
        Schema::get().kind("apps/v1", "Deployment").unwrap()
    }

    fn set_of(fields_v1: Value) -> Set {
        Set::from_fields_v1(&fields_v1).unwrap()
    }

    #[test]
    fn a_config_s_field_set_has_leaves_list_elements_and_map_keys() {
        let config = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}}}});
        let set = field_set(Schema::get(), &deployment(), &config).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:replicas": {}, "f:selector": {},
                              "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {},
                                  "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}})
        );
    }

    #[test]
    fn a_config_with_a_map_or_list_of_the_wrong_shape_is_refused_with_its_path() {
        let set = |config: Value| field_set(Schema::get(), &deployment(), &config);
        assert_eq!(
            set(json!({"metadata": ["a"]})).unwrap_err(),
            ".metadata: expected map, got &{[a]}"
        );
        assert_eq!(
            set(json!({"spec": {"template": {"spec": {"containers": {"b": 1, "a": "x"}}}}})).unwrap_err(),
            ".spec.template.spec.containers: expected list, got &{map[a:x b:1]}"
        );
        assert_eq!(
            set(json!({"metadata": {"labels": 7}})).unwrap_err(),
            ".metadata.labels: expected map, got &{7}"
        );
        assert!(set(json!({"metadata": null, "spec": {"template": null}})).is_ok());
    }

    #[test]
    fn merge_keeps_live_elements_and_puts_new_ones_where_the_config_does() {
        let t = deployment();
        let c = |n: &str, image: &str| json!({"name": n, "image": image});
        let live = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [c("a", "1"), c("b", "1")]}}}});
        let config = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [c("x", "2"), c("b", "2")]}}}});
        let merged = merge(Schema::get(), &t, &live, &config).unwrap();
        assert_eq!(merged["spec"]["replicas"], 3);
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([c("a", "1"), c("x", "2"), c("b", "2")])
        );
        let dup = json!({"spec": {"template": {"spec": {"containers": [c("x", "2"), c("x", "3")]}}}});
        let err = merge(Schema::get(), &t, &live, &dup).unwrap_err();
        assert_eq!(
            err,
            ".spec.template.spec.containers: duplicate entries for key [name=\"x\"]"
        );
    }

    #[test]
    fn compare_names_what_was_added_modified_and_removed() {
        let old = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1, "paused": true}});
        let new =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"n": "v"}}, "spec": {"replicas": 2}});
        let c = compare(Schema::get(), &deployment(), &old, &new).unwrap();
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:metadata": {"f:annotations": {".": {}, "f:n": {}}, "f:labels": {"f:b": {}}}})
        );
        assert_eq!(c.modified.to_fields_v1(), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(c.removed.to_fields_v1(), json!({"f:spec": {"f:paused": {}}}));
        assert!(compare(Schema::get(), &deployment(), &new, &new).unwrap().is_same());
    }

    #[test]
    fn removing_a_list_element_or_the_last_key_takes_the_container_too() {
        let value = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}});
        let out = remove(
            Schema::get(),
            &deployment(),
            &value,
            &set_of(
                json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {}}}}}}),
            ),
        );
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}})
        );
    }

    #[test]
    fn key_defaults_fill_in_and_a_bad_list_is_an_error() {
        let t = Schema::get().kind("v1", "Service").unwrap();
        // a left-out key field takes its default: protocol TCP, port 0
        let set = field_set(Schema::get(), &t, &json!({"spec": {"ports": [{"name": "x"}]}})).unwrap();
        assert_eq!(
            set.to_fields_v1()["f:spec"]["f:ports"],
            json!({"k:{\"port\":0,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}}})
        );
        let err = merge(Schema::get(), &t, &json!({}), &json!({"spec": {"ports": [1]}})).unwrap_err();
        assert!(err.contains("non-map elements"), "{err}");
    }
}
