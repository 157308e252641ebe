//! The options every create, update and patch request carries (CreateOptions, UpdateOptions,
//! PatchOptions): `dryRun`, honoured by every kind's write path, or refused when its value is
//! not upstream's one (`All`).

use svcnet_core::status::Status;

/// How a write is carried out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Everything runs (defaulting, naming, allocation, validation, admission) and nothing is
    /// stored, allocated or announced.
    pub dry_run: bool,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
