//! The self-subject reviews, answered and never stored: `kubectl auth can-i`
//! (SelfSubjectAccessReview) and `kubectl auth whoami` (SelfSubjectReview). The server knows
//! one user, the holder of the admin token, and that user is a cluster admin (member of
//! `system:masters`, as upstream's bootstrap admin is), so every access review is allowed.

use serde_json::{Value, json};
use svcnet_core::status::Status;

use crate::objects::Reply;
use crate::resources::{self, Kind};

/// The token holder, as upstream's authenticators would name a static token's user.
pub const ADMIN_USER: &str = "svcnet:admin";
pub const ADMIN_GROUPS: [&str; 2] = ["system:masters", "system:authenticated"];

/// The review `body` of `kind`, answered (its `status` filled in).
pub fn answer(kind: &Kind, mut body: Value) -> Reply<Value> {
    if !body.is_object() {
        return Err(Box::new(Status::bad_request("the request body must be a JSON object")));
    }
    body["apiVersion"] = json!(kind.api_version());
    body["kind"] = json!(kind.kind);
    if *kind == resources::SELF_SUBJECT_ACCESS_REVIEWS {
        let spec = &body["spec"];
        if !spec["resourceAttributes"].is_object() && !spec["nonResourceAttributes"].is_object() {
            let error = svcnet_core::field::FieldError::required(
                svcnet_core::field::FieldPath::new("spec").child("resourceAttributes"),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            );
            return Err(Box::new(Status::invalid(kind.group, kind.kind, "", &[error])));
        }
        body["status"] = json!({
            "allowed": true,
            "reason": "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\"",
        });
    } else {
        body["status"] = json!({"userInfo": {"username": ADMIN_USER, "groups": ADMIN_GROUPS}});
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reviews_are_allowed_and_need_attributes() {
        let review = json!({"spec": {"resourceAttributes": {"verb": "create", "resource": "pods"}}});
        let answered = answer(&resources::SELF_SUBJECT_ACCESS_REVIEWS, review).unwrap();
        assert_eq!(answered["status"]["allowed"], true);
        assert_eq!(answered["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            answer(&resources::SELF_SUBJECT_ACCESS_REVIEWS, json!({"spec": {}}))
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn the_subject_is_the_admin() {
        let answered = answer(&resources::SELF_SUBJECT_REVIEWS, json!({})).unwrap();
        assert_eq!(answered["status"]["userInfo"]["username"], ADMIN_USER);
    }
}
