//! `labelSelector` and `fieldSelector` on lists and watches.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use svcnet_core::selector::Selector;
use svcnet_core::status::Status;

use crate::resources::Kind;

/// Which objects a list or watch returns.
#[derive(Debug, Default)]
pub struct Filter {
    labels: Selector,
    /// (field path, value, equal?): a field label is stored as the path it selects on
    fields: Vec<(String, String, bool)>,
}

/// The field labels a resource supports beyond `metadata.name` and `metadata.namespace`,
/// each with the path of the field it selects on.
fn extra_fields(kind: &Kind) -> &'static [(&'static str, &'static str)] {
    match kind.plural {
        "services" => &[("spec.clusterIP", "spec.clusterIP"), ("spec.type", "spec.type")],
        "pods" => &[
            ("spec.nodeName", "spec.nodeName"),
            ("status.phase", "status.phase"),
            ("spec.restartPolicy", "spec.restartPolicy"),
            ("spec.schedulerName", "spec.schedulerName"),
            ("spec.serviceAccountName", "spec.serviceAccountName"),
            ("status.podIP", "status.podIP"),
            ("status.nominatedNodeName", "status.nominatedNodeName"),
        ],
        "events" => &[
            ("involvedObject.kind", "involvedObject.kind"),
            ("involvedObject.namespace", "involvedObject.namespace"),
            ("involvedObject.name", "involvedObject.name"),
            ("involvedObject.uid", "involvedObject.uid"),
            ("involvedObject.apiVersion", "involvedObject.apiVersion"),
            ("involvedObject.resourceVersion", "involvedObject.resourceVersion"),
            ("involvedObject.fieldPath", "involvedObject.fieldPath"),
            ("reason", "reason"),
            ("reportingComponent", "reportingComponent"),
            ("source", "source.component"),
            ("type", "type"),
        ],
        _ => &[],
    }
}

impl Filter {
    /// Reads `labelSelector` and `fieldSelector` from a request's query parameters.
    pub fn from_query(kind: &Kind, query: &HashMap<String, String>) -> Result<Self, Box<Status>> {
        Self::parse(
            kind,
            query.get("labelSelector").map(String::as_str),
            query.get("fieldSelector").map(String::as_str),
        )
    }

    /// Parses the selectors; 400 for a selector Kubernetes would refuse.
    pub fn parse(kind: &Kind, labels: Option<&str>, fields: Option<&str>) -> Result<Self, Box<Status>> {
        let labels = Selector::parse(labels.unwrap_or("")).map_err(|e| Box::new(Status::bad_request(e.0)))?;
        let mut parsed = Vec::new();
        for term in fields.unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, value, equal) = if let Some((k, v)) = term.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, v, true)
            } else {
                return Err(Box::new(Status::bad_request(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ))));
            };
            let key = key.trim();
            let path = match key {
                "metadata.name" | "metadata.namespace" => key,
                _ => extra_fields(kind)
                    .iter()
                    .find(|(label, _)| *label == key)
                    .map(|(_, path)| *path)
                    .ok_or_else(|| Box::new(Status::bad_request(format!("field label not supported: {key}"))))?,
            };
            parsed.push((path.to_owned(), value.trim().to_owned(), equal));
        }
        Ok(Filter { labels, fields: parsed })
    }

    /// Whether it selects everything (no label or field terms).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels: BTreeMap<String, String> = obj["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        if !self.labels.matches(&labels) {
            return false;
        }
        self.fields.iter().all(|(path, want, equal)| {
            let got = path.split('.').fold(obj, |v, part| &v[part]);
            (got.as_str().unwrap_or("") == want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{EVENTS, NODES, SERVICES};
    use serde_json::json;

    #[test]
    fn labels_and_fields_select() {
        let svc = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
                         "spec": {"type": "NodePort", "clusterIP": "10.96.0.10"}});
        let f = |l: &str, fl: &str| Filter::parse(&SERVICES, Some(l), Some(fl)).unwrap().matches(&svc);
        assert!(f(
            "app=web,tier in (front,back)",
            "metadata.name=web,spec.type==NodePort"
        ));
        assert!(!f("app!=web", ""));
        assert!(!f("", "spec.clusterIP!=10.96.0.10"));
        assert!(f("!legacy", "metadata.namespace=default"));
    }

    #[test]
    fn bad_selectors_are_400() {
        let e = Filter::parse(&SERVICES, Some("app in"), None).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "unable to parse requirement: found '' expected: '('")
        );
        let e = Filter::parse(&NODES, None, Some("spec.type=NodePort")).unwrap_err();
        assert_eq!(e.message, "field label not supported: spec.type");
    }

    #[test]
    fn events_select_on_their_object_and_source() {
        let event = json!({"metadata": {"name": "web.1", "namespace": "default"},
                           "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default", "uid": "u1"},
                           "source": {"component": "deployment-controller"}, "type": "Normal", "reason": "ScalingReplicaSet"});
        let f = |fl: &str| Filter::parse(&EVENTS, None, Some(fl)).unwrap().matches(&event);
        // what kubectl describe asks for
        assert!(f(
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Deployment,involvedObject.uid=u1"
        ));
        assert!(!f("involvedObject.uid=u2"));
        assert!(f("source=deployment-controller,type=Normal"));
        assert!(!f("reason!=ScalingReplicaSet"));
        assert!(Filter::parse(&SERVICES, None, Some("source=x")).is_err());
    }
}
