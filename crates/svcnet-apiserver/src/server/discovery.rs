//! Discovery: `/version`, `/api`, `/apis`, the resource lists, OpenAPI, and the health
//! endpoints.

use super::*;

pub(super) async fn version() -> Response {
    json_response(
        StatusCode::OK,
        // every field upstream's version.Info has (clients validate them); the build facts
        // Go's linker would stamp are upstream's defaults for an unstamped build
        &json!({"major": "1", "minor": "37", "gitVersion": concat!("v1.37.0-svcnet-", env!("CARGO_PKG_VERSION")),
                "gitCommit": "", "gitTreeState": "", "buildDate": "1970-01-01T00:00:00Z",
                "platform": "linux/amd64", "goVersion": "n/a", "compiler": "rustc"}),
    )
}

pub(super) async fn api_versions() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
    )
}

pub(super) async fn api_groups() -> Response {
    let mut groups: Vec<&str> = Vec::new();
    for group in resources::ALL.iter().map(|k| k.group).filter(|g| !g.is_empty()) {
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

pub(super) fn resource_list(group: &str, version: &str) -> Response {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut resources = Vec::new();
    for k in resources::ALL
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        // `kubectl get all` means upstream's "all" category: workloads and services only
        let categories: &[&str] = if [
            "pods",
            "services",
            "deployments",
            "replicasets",
            "daemonsets",
            "statefulsets",
            "jobs",
        ]
        .contains(&k.plural)
        {
            &["all"]
        } else {
            &[]
        };
        resources.push(
            json!({"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": if k.create_only { &["create"][..] } else { &verbs[..] },
            "shortNames": k.short_names, "categories": categories}),
        );
        if k.has_status {
            resources.push(json!({"name": format!("{}/status", k.plural), "singularName": "",
                "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}));
        }
        if k.has_scale {
            resources.push(json!({"name": format!("{}/scale", k.plural), "singularName": "",
                "namespaced": k.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"]}));
        }
    }
    if resources.is_empty() {
        return not_found_response();
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources}),
    )
}

pub(super) async fn core_resources() -> Response {
    resource_list("", "v1")
}

pub(super) async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    resource_list(&group, &version)
}

pub(super) async fn openapi_root() -> Response {
    json_response(StatusCode::OK, &openapi::root())
}

/// `/openapi/v2` as JSON or, for clients that ask for it (kubectl's validation), in
/// gnostic's protobuf encoding; 406 for any other form, as kube-apiserver answers.
pub(super) async fn openapi_v2(headers: HeaderMap) -> Response {
    use crate::openapi_v2::{Form, negotiate, protobuf};
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok());
    let mut response = match negotiate(accept) {
        Some(Form::Json) => json_response(StatusCode::OK, crate::openapi_v2::document()),
        Some(Form::Protobuf) => match protobuf() {
            Ok(bytes) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, Form::Protobuf.content_type())],
                axum::body::Bytes::from_static(bytes),
            )
                .into_response(),
            Err(e) => status_response(&Status::internal(&e.to_string())),
        },
        None => StatusCode::NOT_ACCEPTABLE.into_response(),
    };
    response
        .headers_mut()
        .insert(header::VARY, header::HeaderValue::from_static("Accept"));
    response
}

pub(super) async fn openapi_group_version(Path(gv): Path<String>) -> Response {
    match openapi::group_version(&gv) {
        Some(doc) => json_response(StatusCode::OK, doc),
        None => not_found_response(),
    }
}

/// `/healthz`, `/livez`, `/readyz` (and `/NAME/ping`): `ok`, or with `?verbose` one line per
/// check as upstream prints them. The store check reads its revision.
pub(super) async fn health(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().trim_end_matches('/');
    let name = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("healthz")
        .to_owned();
    let verbose = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "verbose" || p.starts_with("verbose=")));
    let store_ok = state.registry.store().revision().is_ok();
    let checks = [("ping", true), ("store", store_ok)];
    let healthy = checks.iter().all(|(_, ok)| *ok);
    let body = if verbose {
        let mut text: String = checks
            .iter()
            .map(|(check, ok)| {
                format!(
                    "[{}]{check} {}\n",
                    if *ok { "+" } else { "-" },
                    if *ok { "ok" } else { "failed" }
                )
            })
            .collect();
        text.push_str(&format!("{name} check {}\n", if healthy { "passed" } else { "failed" }));
        text
    } else if healthy {
        "ok".to_owned()
    } else {
        format!("[-]store failed: reason withheld\n{name} check failed\n")
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}
