//! The options every create, update and patch request carries (CreateOptions, UpdateOptions,
//! PatchOptions): `dryRun`, honoured by every kind's write path, or refused when its value is
//! not upstream's one (`All`); `fieldManager` (recorded in managedFields, required for an
//! apply) and `force` (an apply's answer to conflicts, refused on any other write).

use svcnet_core::field::{BadValue, FieldError, FieldPath};
use svcnet_core::status::Status;

/// Who a write names as the manager of the fields it sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagerOptions {
    /// As sent; empty when the client named none.
    pub field_manager: String,
    /// An apply's `force`.
    pub force: bool,
}

/// Upstream's limit on a manager's name.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

impl ManagerOptions {
    /// From a request's query pairs, checked as upstream checks them; `apply` says whether the
    /// request is an apply patch.
    pub fn from_query(query: &[(String, String)], options_kind: &str, apply: bool) -> Result<Self, Box<Status>> {
        let first = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let field_manager = first("fieldManager").unwrap_or("").to_owned();
        let mut errors = Vec::new();
        let force = match first("force") {
            None => None,
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Some(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Some(false),
            Some(other) => {
                return Err(Box::new(Status::bad_request(format!(
                    "failed to parse \"force\": strconv.ParseBool: parsing {}: invalid syntax",
                    svcnet_core::field::go_quote(other)
                ))));
            }
        };
        if apply && field_manager.is_empty() {
            errors.push(FieldError::required(
                FieldPath::new("fieldManager"),
                "is required for apply patch",
            ));
        }
        if !apply && force.is_some() {
            errors.push(FieldError::forbidden(
                FieldPath::new("force"),
                "may not be specified for non-apply patch",
            ));
        }
        if field_manager.len() > FIELD_MANAGER_MAX_LENGTH {
            errors.push(FieldError::too_long(
                FieldPath::new("fieldManager"),
                format!("may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"),
            ));
        }
        for (i, c) in field_manager.char_indices() {
            if c.is_control() {
                errors.push(FieldError::invalid(
                    FieldPath::new("fieldManager"),
                    BadValue::str(field_manager.clone()),
                    format!("invalid character U+{:04X} (at position {i})", c as u32),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Box::new(Status::invalid("meta.k8s.io", options_kind, "", &errors)));
        }
        Ok(ManagerOptions {
            field_manager,
            force: force.unwrap_or(false),
        })
    }

    /// The manager's name: the one sent, else the user agent's product.
    pub fn manager(&self, user_agent: &str) -> String {
        if self.field_manager.is_empty() {
            crate::apply::manager_from_user_agent(user_agent)
        } else {
            self.field_manager.clone()
        }
    }
}

/// The field manager of the API server's controllers (upstream's run in
/// kube-controller-manager, and tools such as GitOps controllers ignore its fields by name).
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// The field manager of what the API server makes itself (system namespaces, the default
/// ServiceCIDR).
pub const API_SERVER_MANAGER: &str = "kube-apiserver";

/// How a write is carried out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Everything runs (defaulting, naming, allocation, validation, admission) and nothing is
    /// stored, allocated or announced.
    pub dry_run: bool,
    /// The field manager an internal writer records its changes as (requests record theirs
    /// before the write, in `server/ownership.rs`, and leave this `None`).
    pub manager: Option<&'static str>,
}

impl WriteOptions {
    /// From a request's query pairs; `options_kind` names the options object in errors
    /// (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
    pub fn from_query(query: &[(String, String)], options_kind: &str) -> Result<Self, Box<Status>> {
        let values: Vec<String> = query
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.clone())
            .collect();
        if let Some(error) = crate::delete_options::dry_run_error(&values) {
            return Err(Box::new(Status::invalid("meta.k8s.io", options_kind, "", &[error])));
        }
        Ok(WriteOptions {
            dry_run: !values.is_empty(),
            manager: None,
        })
    }

    /// An internal write, recorded as `manager`'s.
    pub fn by(manager: &'static str) -> Self {
        WriteOptions {
            dry_run: false,
            manager: Some(manager),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_needs_a_manager_and_only_an_apply_may_force() {
        let err = ManagerOptions::from_query(&[], "PatchOptions", true).unwrap_err();
        assert_eq!(
            err.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let err = ManagerOptions::from_query(&q(&[("force", "true")]), "PatchOptions", false).unwrap_err();
        assert_eq!(
            err.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        );
        let ok =
            ManagerOptions::from_query(&q(&[("fieldManager", "me"), ("force", "true")]), "PatchOptions", true).unwrap();
        assert_eq!((ok.manager("kubectl/v1"), ok.force), ("me".to_owned(), true));
        let unnamed = ManagerOptions::from_query(&[], "UpdateOptions", false).unwrap();
        assert_eq!(unnamed.manager("kubectl/v1.37.2 (linux/amd64)"), "kubectl");
        let long = "m".repeat(129);
        let err = ManagerOptions::from_query(&q(&[("fieldManager", &long)]), "CreateOptions", false).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("fieldManager: Too long"), "{}", err.message);
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn dry_run_all_is_honoured_and_anything_else_refused() {
        assert!(
            WriteOptions::from_query(&q(&[("dryRun", "All")]), "CreateOptions")
                .unwrap()
                .dry_run
        );
        assert!(
            !WriteOptions::from_query(&q(&[("fieldManager", "x")]), "CreateOptions")
                .unwrap()
                .dry_run
        );
        let err = WriteOptions::from_query(&q(&[("dryRun", "Server")]), "PatchOptions").unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: [\"Server\"]: supported values: \"All\""
        );
    }
}
