//! Chunked lists (`limit` and `continue`). A page ends with an opaque token naming the list's
//! revision and the last object returned; the next page continues after that object in
//! (namespace, name) order and reports the first page's revision, so a client that watches from
//! it replays, rather than misses, anything that changed while it paged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use svcnet_core::status::Status;

/// Where a continued list resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continue {
    #[serde(rename = "rv")]
    pub revision: u64,
    #[serde(rename = "ns")]
    pub namespace: String,
    pub name: String,
}

impl Continue {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// 400 with upstream's wording for a token this server did not write.
    pub fn decode(token: &str) -> Result<Self, Box<Status>> {
        URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| Box::new(Status::bad_request("continue key is not valid: invalid continue token")))
    }
}

/// One page of a list.
#[derive(Debug, PartialEq)]
pub struct Page {
    pub items: Vec<Value>,
    pub next: Option<Continue>,
    pub remaining: usize,
}

fn position(item: &Value) -> (&str, &str) {
    let meta = &item["metadata"];
    (
        meta["namespace"].as_str().unwrap_or(""),
        meta["name"].as_str().unwrap_or(""),
    )
}

/// The page of `items` (already filtered) after `after`, at most `limit` long (0: no limit).
pub fn page(mut items: Vec<Value>, limit: usize, after: Option<&Continue>, revision: u64) -> Page {
    if limit == 0 && after.is_none() {
        // An unpaged list keeps the store's order; sorting only matters across pages.
        return Page {
            items,
            next: None,
            remaining: 0,
        };
    }
    items.sort_by(|a, b| position(a).cmp(&position(b)));
    if let Some(after) = after {
        let resume = (after.namespace.as_str(), after.name.as_str());
        items.retain(|i| position(i) > resume);
    }
    if limit == 0 || items.len() <= limit {
        return Page {
            items,
            next: None,
            remaining: 0,
        };
    }
    let rest = items.split_off(limit);
    let (namespace, name) = position(items.last().expect("limit > 0"));
    let next = Continue {
        revision,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    Page {
        items,
        next: Some(next),
        remaining: rest.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let items = vec![
            obj("b", "x"),
            obj("a-b", "y"),
            obj("a", "z"),
            obj("a", "a"),
            obj("b", "a"),
        ];
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let p = page(items.clone(), 2, after.as_ref(), 7);
            seen.extend(p.items.iter().map(|i| {
                format!(
                    "{}/{}",
                    i["metadata"]["namespace"].as_str().unwrap(),
                    i["metadata"]["name"].as_str().unwrap()
                )
            }));
            match p.next {
                Some(next) => {
                    assert_eq!(next.revision, 7);
                    let decoded = Continue::decode(&next.encode()).unwrap();
                    assert_eq!(decoded, next);
                    assert_eq!(p.remaining, items.len() - seen.len());
                    after = Some(decoded);
                }
                None => break,
            }
        }
        assert_eq!(seen, ["a/a", "a/z", "a-b/y", "b/a", "b/x"]);
    }

    #[test]
    fn a_foreign_token_is_a_bad_request() {
        let err = Continue::decode("not a token!").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("continue key is not valid"), "{}", err.message);
    }
}
