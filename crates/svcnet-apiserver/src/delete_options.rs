//! DeleteOptions (meta/v1) from a DELETE's query and body, validated as upstream validates
//! them: every option is honoured or refused, none ignored. `dryRun` (only `All`), the
//! preconditions (`uid`, `resourceVersion`), `gracePeriodSeconds`, `propagationPolicy` and the
//! deprecated `orphanDependents`; contradictory or unknown values are a 422 Status naming the
//! field, as upstream's `ValidateDeleteOptions`.

use serde_json::Value;
use svcnet_core::field::{FieldError, FieldPath};
use svcnet_core::status::Status;

use crate::gc::Propagation;
use crate::objects::Reply;

/// The options of one DELETE.
#[derive(Debug, PartialEq)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

const DRY_RUN_ALL: &str = "All";

fn invalid(errors: &[FieldError]) -> Box<Status> {
    Box::new(Status::invalid("meta.k8s.io", "DeleteOptions", "", errors))
}

/// `dryRun` values: the query may repeat the parameter, the body has a list.
fn dry_run_values(query: &[(String, String)], body: &Value) -> Vec<String> {
    let mut values: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "dryRun")
        .map(|(_, v)| v.clone())
        .collect();
    if let Some(list) = body["dryRun"].as_array() {
        values.extend(list.iter().map(|v| v.as_str().unwrap_or_default().to_owned()));
    }
    values
}

/// Upstream's one error for `dryRun` values other than `All`: on the whole list, shown as JSON.
pub fn dry_run_error(values: &[String]) -> Option<FieldError> {
    values.iter().any(|v| v != DRY_RUN_ALL).then(|| {
        let shown = serde_json::to_string(values).unwrap_or_default();
        FieldError::not_supported(
            FieldPath::new("dryRun"),
            svcnet_core::field::BadValue::Raw(shown),
            &[DRY_RUN_ALL],
        )
    })
}

/// Parses the options; `query` is the request's query pairs in order, `body` its DeleteOptions
/// (or `Null`). The query wins where both give a value, as upstream's decoding of parameters
/// into the body's object.
pub fn parse(query: &[(String, String)], body: &Value) -> Reply<DeleteOptions> {
    let first = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut errors = Vec::new();
    let dry_run = dry_run_values(query, body);
    if let Some(error) = dry_run_error(&dry_run) {
        errors.push(error);
    }
    let grace_period_seconds = match first("gracePeriodSeconds") {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            Box::new(Status::bad_request(format!(
                "invalid value {text:?} for gracePeriodSeconds: not an integer"
            )))
        })?),
        None => body["gracePeriodSeconds"].as_i64(),
    };
    let policy = first("propagationPolicy").or(body["propagationPolicy"].as_str());
    let orphan = match first("orphanDependents") {
        Some(text) => Some(text == "true" || text == "1"),
        None => body["orphanDependents"].as_bool(),
    };
    if let (Some(p), Some(_)) = (policy, orphan) {
        errors.push(FieldError::invalid(
            FieldPath::new("propagationPolicy"),
            p,
            "orphanDependents and deletionPropagation cannot be both set",
        ));
    }
    if !errors.is_empty() {
        return Err(invalid(&errors));
    }
    let propagation = match (policy, orphan) {
        (_, Some(true)) => Propagation::Orphan,
        (_, Some(false)) => Propagation::Background,
        (p, None) => Propagation::parse(p)?,
    };
    let precondition = |field: &str| body["preconditions"][field].as_str().map(str::to_owned);
    Ok(DeleteOptions {
        dry_run: !dry_run.is_empty(),
        grace_period_seconds,
        propagation,
        uid: precondition("uid"),
        resource_version: precondition("resourceVersion"),
    })
}

impl DeleteOptions {
    /// Checks the preconditions against the stored `object` of kind `kind` (409 Conflict with
    /// upstream's message when one fails).
    pub fn check(&self, object: &Value, kind: &crate::resources::Kind) -> Reply<()> {
        let meta = &object["metadata"];
        let name = meta["name"].as_str().unwrap_or("");
        let failed = |what: &str, want: &str, have: &str, consequence: &str| {
            let mut s = Status::conflict(kind.group, kind.kind, name);
            let qualified = if kind.group.is_empty() {
                kind.kind.to_owned()
            } else {
                format!("{}.{}", kind.kind, kind.group)
            };
            s.message = format!(
                "Operation cannot be fulfilled on {qualified} {}: the {what} in the precondition ({want}) does not match the {what} in record ({have}). The object might have been {consequence}",
                svcnet_core::field::go_quote(name)
            );
            Err(Box::new(s))
        };
        if let Some(want) = &self.uid {
            let have = meta["uid"].as_str().unwrap_or("");
            if want != have {
                return failed("UID", want, have, "deleted and then recreated");
            }
        }
        if let Some(want) = &self.resource_version {
            let have = meta["resourceVersion"].as_str().unwrap_or("");
            if want != have {
                return failed("ResourceVersion", want, have, "modified");
            }
        }
        Ok(())
    }

    /// Whether anything must be checked against the stored object before deleting it.
    pub fn has_preconditions(&self) -> bool {
        self.uid.is_some() || self.resource_version.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn dry_run_comes_from_the_body_or_the_query() {
        assert!(parse(&[], &json!({"dryRun": ["All"]})).unwrap().dry_run);
        assert!(parse(&pairs(&[("dryRun", "All")]), &Value::Null).unwrap().dry_run);
        assert!(!parse(&[], &json!({"kind": "DeleteOptions"})).unwrap().dry_run);
    }

    #[test]
    fn unknown_dry_run_values_are_refused_with_upstreams_message() {
        let err = parse(&pairs(&[("dryRun", "Some")]), &Value::Null).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "DeleteOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: [\"Some\"]: supported values: \"All\""
        );
    }

    #[test]
    fn orphan_dependents_and_a_policy_contradict() {
        let err = parse(
            &[],
            &json!({"orphanDependents": true, "propagationPolicy": "Background"}),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("orphanDependents and deletionPropagation cannot be both set")
        );
        assert_eq!(
            parse(&[], &json!({"orphanDependents": true})).unwrap().propagation,
            Propagation::Orphan
        );
    }

    #[test]
    fn preconditions_fail_with_a_conflict_naming_both_values() {
        let options = parse(&[], &json!({"preconditions": {"resourceVersion": "1"}})).unwrap();
        let object = json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "7"}});
        let err = options.check(&object, &crate::resources::SERVICES).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Operation cannot be fulfilled on Service \"a\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (7). The object might have been modified"
        );
        let options = parse(&[], &json!({"preconditions": {"uid": "other"}})).unwrap();
        let err = options.check(&object, &crate::resources::DEPLOYMENTS).unwrap_err();
        assert!(
            err.message
                .starts_with("Operation cannot be fulfilled on Deployment.apps \"a\": the UID"),
            "{}",
            err.message
        );
        let options = parse(&[], &json!({"preconditions": {"uid": "u", "resourceVersion": "7"}})).unwrap();
        assert!(options.check(&object, &crate::resources::SERVICES).is_ok());
    }
}
