//! The HTTPS API: bearer-token authentication, discovery, and the served resources (get,
//! list, watch, create, replace, status, delete). Service writes go through the registry;
//! other resources through the generic object layer. Every error is a Kubernetes `Status`
//! body; request bodies are limited in size, and nothing a client sends can panic the server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};
use svcnet_core::status::Status;
use svcnet_store::{EventKind, StoreError};

use crate::objects;
use crate::paging::{self, Continue};
use crate::registry::Registry;
use crate::resources::{self, Kind};
use crate::selection::Filter;
use crate::table;
use crate::write_options::WriteOptions;
use crate::{delete_options, field_validation, gc, logs, namespaces, openapi, protobuf, proxy, scale};

/// Largest accepted request body (upstream's default is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// Longest a watch stays open.
const MAX_WATCH: Duration = Duration::from_secs(1800);

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub token: Arc<String>,
    /// How the proxy subresources reach pods.
    pub dialer: proxy::SharedDialer,
    /// Where `pods/log` reads from, if anywhere.
    pub pod_logs: Option<logs::SharedPodLogs>,
    /// The store's latest revision, updated after every write.
    pub revision: tokio::sync::watch::Receiver<u64>,
}

/// Bodies end in a newline, as upstream's JSON encoder writes them.
fn status_response(status: &Status) -> Response {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = status.to_json();
    body.push('\n');
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_response(code: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => status_response(&Status::internal(&e.to_string())),
    }
}

/// Paths anyone may read without a token, as upstream's `system:public-info-viewer` allows.
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/livez", "/readyz", "/version"];

/// How much of a body an early answer (401, 405) reads and discards first, as Go's server
/// does, so the client reads the answer instead of a reset connection.
const EARLY_ANSWER_DRAIN: usize = 256 * 1024;

async fn drain(request: Request) {
    let mut chunks = request.into_body().into_data_stream();
    let mut seen = 0usize;
    while seen <= EARLY_ANSWER_DRAIN {
        match chunks.next().await {
            Some(Ok(chunk)) => seen += chunk.len(),
            _ => return,
        }
    }
}

/// Whether an `Authorization` header carries `token` as a bearer token (the scheme is
/// case-insensitive, as upstream's authenticator treats it).
fn bearer_matches(header_value: &[u8], token: &str) -> bool {
    let Some(space) = header_value.iter().position(|b| *b == b' ') else {
        return false;
    };
    let (scheme, rest) = header_value.split_at(space);
    scheme.eq_ignore_ascii_case(b"bearer") && rest[1..].trim_ascii() == token.as_bytes()
}

fn reply<T: serde::Serialize>(r: Result<T, Box<Status>>, code: StatusCode) -> Response {
    match r {
        Ok(v) => json_response(code, &v),
        Err(status) => status_response(&status),
    }
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().trim_end_matches('/');
    if PUBLIC_PATHS.contains(&path) || PUBLIC_PATHS.iter().any(|p| path.starts_with(&format!("{p}/"))) {
        return next.run(request).await;
    }
    let ok = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| bearer_matches(v.as_bytes(), &state.token));
    if !ok {
        drain(request).await;
        let mut s = Status::bad_request("Unauthorized");
        s.reason = "Unauthorized".into();
        s.code = 401;
        return status_response(&s);
    }
    next.run(request).await
}

fn too_large() -> Box<Status> {
    let mut s = Status::bad_request(format!("Request entity too large: limit is {MAX_BODY}"));
    s.reason = "RequestEntityTooLarge".into();
    s.code = 413;
    Box::new(s)
}

/// How much of an oversized body is read (and discarded) so the client gets the 413 instead
/// of a reset stream.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

fn unsupported_media_type(content_type: &str, accepted: &str) -> Box<Status> {
    let mut s = Status::bad_request(format!(
        "the body of the request was in an unknown format - accepted media types include: {accepted} (got {content_type})"
    ));
    s.reason = "UnsupportedMediaType".into();
    s.code = 415;
    Box::new(s)
}

/// The body's content type and, at most `MAX_BODY`, its bytes. An oversized body is drained
/// (up to `DRAIN_LIMIT`) and answered with 413.
async fn read_body(request: Request) -> Result<(String, Vec<u8>), Box<Status>> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let declared_too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY);
    let mut chunks = request.into_body().into_data_stream();
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            return Err(Box::new(Status::bad_request("error reading the request body")));
        };
        seen += chunk.len();
        if seen > DRAIN_LIMIT {
            break;
        }
        if !declared_too_large && seen <= MAX_BODY {
            body.extend_from_slice(&chunk);
        }
    }
    if declared_too_large || seen > MAX_BODY {
        return Err(too_large());
    }
    Ok((content_type, body))
}

fn parse_json(bytes: &[u8]) -> Result<Value, Box<Status>> {
    serde_json::from_slice(bytes).map_err(|e| Box::new(Status::bad_request(format!("json parse error: {e}"))))
}

fn field_validation_of(request: &Request) -> Result<field_validation::Directive, Box<Status>> {
    let query: HashMap<String, String> = Query::try_from_uri(request.uri()).map(|q| q.0).unwrap_or_default();
    field_validation::Directive::from_query(query.get("fieldValidation").map(String::as_str))
}

/// An object body in JSON or Kubernetes' protobuf encoding, as JSON; other encodings get 415.
fn object_json(content_type: &str, body: &[u8]) -> Result<Value, Box<Status>> {
    if content_type.starts_with("application/json") {
        return parse_json(body);
    }
    if content_type.starts_with(protobuf::CONTENT_TYPE) {
        return protobuf::decode(body).map_err(|e| Box::new(Status::bad_request(e.to_string())));
    }
    Err(unsupported_media_type(
        content_type,
        &format!("application/json, {}", protobuf::CONTENT_TYPE),
    ))
}

/// The body as JSON (sent as JSON or protobuf). The request's `fieldValidation` is applied for
/// `kind`.
async fn read_json(kind: &Kind, request: Request) -> Result<Value, Box<Status>> {
    let directive = field_validation_of(&request)?;
    let (content_type, body) = read_body(request).await?;
    let value = object_json(&content_type, &body)?;
    field_validation::check(kind, directive, &value)?;
    Ok(value)
}

fn as_service(v: Value) -> Result<Service, Box<Status>> {
    if let Some(kind) = v.get("kind").and_then(Value::as_str)
        && kind != "Service"
    {
        return Err(Box::new(Status::bad_request(format!(
            "the object provided is unrecognized (must be of type Service): kind {kind:?}"
        ))));
    }
    serde_json::from_value(v).map_err(|e| Box::new(Status::bad_request(format!("unable to decode the Service: {e}"))))
}

/// Go's `strconv.ParseBool`, which clients' `watch=` values follow.
fn parse_bool(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        // every field upstream's version.Info has (clients validate them); the build facts
        // Go's linker would stamp are upstream's defaults for an unstamped build
        &json!({"major": "1", "minor": "37", "gitVersion": concat!("v1.37.0-svcnet-", env!("CARGO_PKG_VERSION")),
                "gitCommit": "", "gitTreeState": "", "buildDate": "1970-01-01T00:00:00Z",
                "platform": "linux/amd64", "goVersion": "n/a", "compiler": "rustc"}),
    )
}

async fn api_versions() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
    )
}

async fn api_groups() -> Response {
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

fn resource_list(group: &str, version: &str) -> Response {
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

async fn core_resources() -> Response {
    resource_list("", "v1")
}

async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    resource_list(&group, &version)
}

fn event_line(kind: &str, object: &impl serde::Serialize) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// How often a watch that allows bookmarks gets one (upstream sends them about once a minute).
const BOOKMARK_PERIOD: Duration = Duration::from_secs(60);

/// A watch: the current objects as ADDED when no (or a zero) resourceVersion is given or
/// `sendInitialEvents` asks for them (then closed by a BOOKMARK annotated
/// `k8s.io/initial-events-end`), then every change after it, newline-delimited; `ERROR` with a 410 Status when the version is
/// older than the history kept. With `allowWatchBookmarks`, `BOOKMARK` events carry the
/// revision the watch has reached, periodically and just before it ends.
fn watch(
    state: AppState,
    kind: &'static Kind,
    namespace: Option<String>,
    filter: Filter,
    query: &HashMap<String, String>,
    as_table: bool,
) -> Response {
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(MAX_WATCH, |t| Duration::from_secs(t).min(MAX_WATCH));
    let requested = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .cloned();
    let bookmarks = parse_bool(query.get("allowWatchBookmarks"));
    let include = table::Include::from_query(query.get("includeObject").map(String::as_str));
    // a streaming list (client-go's WatchList, kubectl's wait): the current state first,
    // whatever the resourceVersion, closed by a bookmark that says so
    let send_initial = parse_bool(query.get("sendInitialEvents"));
    let requested = if send_initial { None } else { requested };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let bookmark = |revision: u64| {
            event_line(
                "BOOKMARK",
                &json!({"kind": kind.kind, "apiVersion": kind.api_version(),
                        "metadata": {"resourceVersion": revision.to_string()}}),
            )
        };
        // `kubectl get -w` wants each object as a one-row Table.
        let shown = |object: Value| {
            if as_table {
                let rv = object["metadata"]["resourceVersion"].as_str().unwrap_or("").to_owned();
                table::table(
                    kind,
                    std::slice::from_ref(&object),
                    &rv,
                    objects::now_timestamp(),
                    include,
                )
            } else {
                object
            }
        };
        let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_PERIOD;
        let store_name = kind.store_name();
        let in_scope = |ns: &str| namespace.as_deref().is_none_or(|want| want == ns);
        let mut from = match requested.map(|v| v.parse::<u64>()) {
            Some(Ok(rv)) => rv,
            Some(Err(_)) => {
                let _ = tx
                    .send(event_line("ERROR", &Status::bad_request("invalid resourceVersion")))
                    .await;
                return;
            }
            None => match objects::list(state.registry.store(), kind, namespace.as_deref()) {
                Ok((items, rev)) => {
                    for item in items.into_iter().filter(|i| filter.matches(i)) {
                        if tx.send(event_line("ADDED", &shown(item))).await.is_err() {
                            return;
                        }
                    }
                    if send_initial {
                        let end = event_line(
                            "BOOKMARK",
                            &json!({"kind": kind.kind, "apiVersion": kind.api_version(),
                                    "metadata": {"resourceVersion": rev.to_string(),
                                                 "annotations": {"k8s.io/initial-events-end": "true"}}}),
                        );
                        if tx.send(end).await.is_err() {
                            return;
                        }
                    }
                    rev
                }
                Err(_) => return,
            },
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut revision = state.revision.clone();
        loop {
            match state.registry.store().changes_since(from, Some(&store_name)) {
                Ok(changes) => {
                    for e in changes.events {
                        from = e.object.revision;
                        if !in_scope(&e.object.key.namespace) {
                            continue;
                        }
                        let Ok(object) = objects::decode(&e.object.value, e.object.revision) else {
                            continue;
                        };
                        if !filter.matches(&object) {
                            continue;
                        }
                        let kind = match e.kind {
                            EventKind::Added => "ADDED",
                            EventKind::Modified => "MODIFIED",
                            EventKind::Deleted => "DELETED",
                        };
                        if tx.send(event_line(kind, &shown(object))).await.is_err() {
                            return;
                        }
                    }
                    from = from.max(changes.revision);
                }
                Err(StoreError::Expired {
                    requested,
                    oldest_available,
                }) => {
                    let mut s =
                        Status::bad_request(format!("too old resource version: {requested} ({oldest_available})"));
                    s.reason = "Expired".into();
                    s.code = 410;
                    let _ = tx.send(event_line("ERROR", &s)).await;
                    return;
                }
                Err(_) => return,
            }
            tokio::select! {
                changed = revision.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => {
                    // Like upstream, a bookmark right before the watch ends lets the client
                    // resume from the latest revision rather than its last event's.
                    if bookmarks {
                        let _ = tx.send(bookmark(from)).await;
                    }
                    return;
                }
                _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                    next_bookmark += BOOKMARK_PERIOD;
                    if tx.send(bookmark(from)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    let stream = tokio_stream(rx).map(Ok::<_, std::convert::Infallible>);
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn tokio_stream(mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Where a request points, from the path parameters of any route.
struct Target {
    kind: &'static Kind,
    namespace: Option<String>,
    name: Option<String>,
}

/// `None` when the path names no served resource (404).
fn target(p: &HashMap<String, String>) -> Option<Target> {
    let group = p.get("group").map_or("", String::as_str);
    let version = p.get("version").map_or("v1", String::as_str);
    let resource = p.get("resource").map_or("", String::as_str);
    let kind = resources::find(group, version, resource)?;
    let namespace = p.get("ns").cloned();
    // a namespaced resource needs its namespace (except for lists across namespaces), a
    // cluster-scoped one must not have one
    if namespace.is_some() && !kind.namespaced {
        return None;
    }
    let name = p.get("name").cloned();
    if kind.namespaced && name.is_some() && namespace.is_none() {
        return None;
    }
    Some(Target { kind, namespace, name })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Box<Status>> + Send + 'static,
) -> Result<T, Box<Status>> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Box::new(Status::internal(&e.to_string()))))
}

async fn collection_get(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    let filter = match Filter::from_query(t.kind, &q) {
        Ok(f) => f,
        Err(s) => return status_response(&s),
    };
    if parse_bool(q.get("watch")) {
        let as_table = wants_table(&headers);
        return watch(state, t.kind, t.namespace, filter, &q, as_table);
    }
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match Continue::decode(token) {
            Ok(c) => Some(c),
            Err(s) => return status_response(&s),
        },
        None => None,
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 0,
        Some(Ok(l)) => l,
        Some(Err(_)) => return status_response(&Status::bad_request("invalid limit")),
    };
    let page = if filter.is_empty() && limit > 0 {
        // no selector: the store reads just the page, in key order, after the token's position
        let resume = after.as_ref().map(|c| (c.namespace.as_str(), c.name.as_str()));
        match objects::list_page(state.registry.store(), t.kind, t.namespace.as_deref(), resume, limit) {
            Ok((stored, remaining, rev)) => {
                let rev = after.as_ref().map_or(rev, |c| c.revision);
                let items: Vec<Value> = match stored.iter().map(|s| objects::decode(&s.value, s.revision)).collect() {
                    Ok(items) => items,
                    Err(s) => return status_response(&s),
                };
                let next = (remaining > 0).then(|| {
                    let last = &stored[stored.len() - 1].key;
                    Continue {
                        revision: rev,
                        namespace: last.namespace.clone(),
                        name: last.name.clone(),
                    }
                });
                (paging::Page { items, next, remaining }, rev)
            }
            Err(s) => return status_response(&s),
        }
    } else {
        let (items, rev) = match objects::list(state.registry.store(), t.kind, t.namespace.as_deref()) {
            Ok(listed) => listed,
            Err(s) => return status_response(&s),
        };
        let items: Vec<Value> = items.into_iter().filter(|i| filter.matches(i)).collect();
        // A continued list reports the first page's revision (see `paging`).
        let rev = after.as_ref().map_or(rev, |c| c.revision);
        (paging::page(items, limit, after.as_ref(), rev), rev)
    };
    let (page, rev) = page;
    let include = table::Include::from_query(q.get("includeObject").map(String::as_str));
    let mut body = if wants_table(&headers) {
        table::table(t.kind, &page.items, &rev.to_string(), objects::now_timestamp(), include)
    } else {
        json!({"kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(),
               "metadata": {"resourceVersion": rev.to_string()}, "items": page.items})
    };
    if let Some(next) = &page.next {
        body["metadata"]["continue"] = json!(next.encode());
        body["metadata"]["remainingItemCount"] = json!(page.remaining);
    }
    json_response(StatusCode::OK, &body)
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(table::wants_table)
}

async fn collection_post(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    if t.kind.namespaced && t.namespace.is_none() {
        return not_found_response();
    }
    let options = match write_options(&request, "CreateOptions") {
        Ok(o) => o,
        Err(s) => return status_response(&s),
    };
    let body = match read_json(t.kind, request).await {
        Ok(b) => b,
        Err(s) => return status_response(&s),
    };
    if t.kind.create_only {
        return reply(crate::reviews::answer(t.kind, body), StatusCode::CREATED);
    }
    let ns = t.namespace.unwrap_or_default();
    let registry = state.registry.clone();
    if *t.kind == resources::SERVICES {
        let r = match as_service(body) {
            Ok(svc) => blocking(move || registry.create_service_with(&ns, svc, options)).await,
            Err(s) => Err(s),
        };
        return reply(r, StatusCode::CREATED);
    }
    let kind = t.kind;
    reply(
        blocking(move || {
            objects::create_with(
                registry.store(),
                kind,
                &ns,
                body,
                &mut objects::RandomIds::new(),
                options,
            )
        })
        .await,
        StatusCode::CREATED,
    )
}

async fn item_get(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    let name = t.name.unwrap_or_default();
    let got = objects::get(
        state.registry.store(),
        t.kind,
        t.namespace.as_deref().unwrap_or(""),
        &name,
    );
    match got {
        Ok(object) if wants_table(&headers) => {
            let rv = object["metadata"]["resourceVersion"].as_str().unwrap_or("").to_owned();
            json_response(
                StatusCode::OK,
                &table::table(
                    t.kind,
                    std::slice::from_ref(&object),
                    &rv,
                    objects::now_timestamp(),
                    table::Include::from_query(q.get("includeObject").map(String::as_str)),
                ),
            )
        }
        other => reply(other, StatusCode::OK),
    }
}

async fn put(state: AppState, p: HashMap<String, String>, request: Request, status_only: bool) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    if status_only && !t.kind.has_status {
        return not_found_response();
    }
    let options = match write_options(&request, "UpdateOptions") {
        Ok(o) => o,
        Err(s) => return status_response(&s),
    };
    match read_json(t.kind, request).await {
        Ok(body) => reply(write(&state, &t, body, status_only, options).await, StatusCode::OK),
        Err(s) => status_response(&s),
    }
}

/// Replaces an object (or its status) with `body`: Services through the registry, the rest
/// through the generic layer.
async fn write(
    state: &AppState,
    t: &Target,
    body: Value,
    status_only: bool,
    options: WriteOptions,
) -> Result<Value, Box<Status>> {
    let (ns, name) = (
        t.namespace.clone().unwrap_or_default(),
        t.name.clone().unwrap_or_default(),
    );
    let registry = state.registry.clone();
    if *t.kind == resources::SERVICES {
        let svc = as_service(body)?;
        let svc = if status_only {
            blocking(move || registry.update_service_status_with(&ns, &name, svc, options)).await?
        } else {
            blocking(move || registry.update_service_with(&ns, &name, svc, options)).await?
        };
        return serde_json::to_value(svc).map_err(|e| Box::new(Status::internal(&e.to_string())));
    }
    let kind = t.kind;
    blocking(move || {
        objects::replace_with(
            registry.store(),
            kind,
            &ns,
            &name,
            body,
            status_only,
            &mut objects::RandomIds::new(),
            options,
        )
    })
    .await
}

/// The write options in a request's query (`kind`: the options object named in errors).
fn write_options(request: &Request, kind: &str) -> Result<WriteOptions, Box<Status>> {
    WriteOptions::from_query(&delete_options::query_pairs(request.uri()), kind)
}

/// PATCH: a JSON patch (RFC 6902), JSON merge patch (RFC 7386) or strategic merge patch applied to the stored object,
/// then written as a replace (so conflicts and validation apply as for PUT).
async fn patch(state: AppState, p: HashMap<String, String>, request: Request, status_only: bool) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    if status_only && !t.kind.has_status {
        return not_found_response();
    }
    let result = async {
        let directive = field_validation_of(&request)?;
        let options = write_options(&request, "PatchOptions")?;
        let (content_type, body) = read_body(request).await?;
        let patch = Patch::parse(&content_type, parse_json(&body)?)?;
        let name = t.name.clone().unwrap_or_default();
        // Like upstream, a patch that does not name a resourceVersion is re-applied to the
        // newer object when another write got in between, instead of failing with 409.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut current = objects::get(
                state.registry.store(),
                t.kind,
                t.namespace.as_deref().unwrap_or(""),
                &name,
            )?;
            patch.apply(&mut current)?;
            // a patch may not rename the object or take its metadata away
            let patched_name = current["metadata"]["name"].as_str().unwrap_or("");
            if patched_name != name {
                return Err(Box::new(Status::bad_request(format!(
                    "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                ))));
            }
            field_validation::check(t.kind, directive, &current)?;
            match write(&state, &t, current, status_only, options).await {
                Err(s) if s.code == 409 && !patch.pins_resource_version() && attempts < PATCH_ATTEMPTS => continue,
                written => return written,
            }
        }
    }
    .await;
    reply(result, StatusCode::OK)
}

/// The object behind a `/scale` request (404 unless its kind has the subresource).
fn scale_target(p: &HashMap<String, String>) -> Result<Target, Box<Status>> {
    match target(p) {
        Some(t) if t.kind.has_scale => Ok(t),
        _ => Err(Box::new(not_found_status())),
    }
}

fn current(state: &AppState, t: &Target) -> Result<Value, Box<Status>> {
    objects::get(
        state.registry.store(),
        t.kind,
        t.namespace.as_deref().unwrap_or(""),
        t.name.as_deref().unwrap_or(""),
    )
}

async fn scale_get(State(state): State<AppState>, Path(p): Path<HashMap<String, String>>) -> Response {
    let result = scale_target(&p)
        .and_then(|t| current(&state, &t))
        .map(|obj| scale::to_scale(&obj));
    reply(result, StatusCode::OK)
}

async fn scale_put(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let result = async {
        let t = scale_target(&p)?;
        let options = write_options(&request, "UpdateOptions")?;
        let (content_type, body) = read_body(request).await?;
        let wanted = object_json(&content_type, &body)?;
        let obj = scale::apply_scale(current(&state, &t)?, &wanted)?;
        write(&state, &t, obj, false, options)
            .await
            .map(|o| scale::to_scale(&o))
    }
    .await;
    reply(result, StatusCode::OK)
}

async fn scale_patch(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let result = async {
        let t = scale_target(&p)?;
        let options = write_options(&request, "PatchOptions")?;
        let (content_type, body) = read_body(request).await?;
        let patch = Patch::parse(&content_type, parse_json(&body)?)?;
        for _ in 0..PATCH_ATTEMPTS {
            let obj = current(&state, &t)?;
            let mut wanted = scale::to_scale(&obj);
            patch.apply(&mut wanted)?;
            match write(&state, &t, scale::apply_scale(obj, &wanted)?, false, options).await {
                Err(s) if s.code == 409 && !patch.pins_resource_version() => continue,
                written => return written.map(|o| scale::to_scale(&o)),
            }
        }
        Err(Box::new(Status::conflict(
            t.kind.group,
            t.kind.plural,
            t.name.as_deref().unwrap_or(""),
        )))
    }
    .await;
    reply(result, StatusCode::OK)
}

/// How often a patch is re-applied after losing a race with another write.
const PATCH_ATTEMPTS: u32 = 5;

/// A parsed PATCH body, by its content type.
enum Patch {
    Merge(Value),
    Strategic(Value),
    Json(json_patch::Patch),
}

impl Patch {
    fn parse(content_type: &str, body: Value) -> Result<Self, Box<Status>> {
        if content_type.starts_with("application/merge-patch+json") {
            Ok(Self::Merge(body))
        } else if content_type.starts_with("application/strategic-merge-patch+json") {
            Ok(Self::Strategic(body))
        } else if content_type.starts_with("application/json-patch+json") {
            serde_json::from_value(body)
                .map(Self::Json)
                .map_err(|e| Box::new(Status::bad_request(format!("invalid JSON patch: {e}"))))
        } else {
            Err(unsupported_media_type(
                content_type,
                "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
            ))
        }
    }

    /// Whether the client made the patch conditional on a resourceVersion.
    fn pins_resource_version(&self) -> bool {
        match self {
            Self::Merge(v) | Self::Strategic(v) => v["metadata"].get("resourceVersion").is_some(),
            Self::Json(ops) => serde_json::to_value(ops)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .into_iter()
                .flatten()
                .any(|op| op["path"] == "/metadata/resourceVersion"),
        }
    }

    fn apply(&self, target: &mut Value) -> Result<(), Box<Status>> {
        match self {
            Self::Merge(p) => json_patch::merge(target, p),
            Self::Strategic(p) => crate::strategic::apply(target, p),
            Self::Json(ops) => json_patch::patch(target, ops).map_err(|e| {
                let mut s = Status::bad_request(format!("the JSON patch could not be applied: {e}"));
                s.reason = "Invalid".into();
                s.code = 422;
                Box::new(s)
            })?,
        }
        Ok(())
    }
}

async fn item_patch(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    patch(state, p, request, false).await
}

async fn status_patch(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    patch(state, p, request, true).await
}

/// DELETE on a collection: removes every object the selectors match, each with the request's
/// DeleteOptions (a dry run removes nothing); returns them as a list.
async fn collection_delete(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    let query = delete_options::query_pairs(request.uri());
    let q = delete_options::query_map(&query);
    let filter = match Filter::from_query(t.kind, &q) {
        Ok(f) => f,
        Err(s) => return status_response(&s),
    };
    let (content_type, body) = match read_body(request).await {
        Ok(read) => read,
        Err(s) => return status_response(&s),
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match object_json(&content_type, &body) {
            Ok(v) => v,
            Err(s) => return status_response(&s),
        }
    };
    let options = match delete_options::parse(&query, &body) {
        Ok(o) => o,
        Err(s) => return status_response(&s),
    };
    let items = match objects::list(state.registry.store(), t.kind, t.namespace.as_deref()) {
        Ok((items, _)) => items,
        Err(s) => return status_response(&s),
    };
    let options = Arc::new(options);
    let mut deleted = Vec::new();
    for item in items.into_iter().filter(|i| filter.matches(i)) {
        let ns = item["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
        let name = item["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let (registry, kind, options) = (state.registry.clone(), t.kind, options.clone());
        match blocking(move || delete_one(&registry, kind, &ns, &name, &options)).await {
            Ok(v) => deleted.push(v),
            // gone meanwhile, or (deleting every namespace) one that may not be deleted
            Err(s) if s.code == 404 => {}
            Err(s) if s.code == 403 && *t.kind == resources::NAMESPACES => {}
            Err(s) => return status_response(&s),
        }
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(),
                "metadata": {}, "items": deleted}),
    )
}

async fn item_put(State(state): State<AppState>, Path(p): Path<HashMap<String, String>>, request: Request) -> Response {
    put(state, p, request, false).await
}

async fn status_put(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    put(state, p, request, true).await
}

async fn item_delete(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    let (ns, name) = (t.namespace.unwrap_or_default(), t.name.unwrap_or_default());
    let registry = state.registry.clone();
    // options come in the query or in a DeleteOptions body; every one is honoured or refused
    let query = delete_options::query_pairs(request.uri());
    let (content_type, body) = match read_body(request).await {
        Ok(read) => read,
        Err(s) => return status_response(&s),
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match object_json(&content_type, &body) {
            Ok(v) => v,
            Err(s) => return status_response(&s),
        }
    };
    let options = match delete_options::parse(&query, &body) {
        Ok(o) => o,
        Err(s) => return status_response(&s),
    };
    let kind = t.kind;
    reply(
        blocking(move || delete_one(&registry, kind, &ns, &name, &options)).await,
        StatusCode::OK,
    )
}

/// Deletes one object of `kind` with `options`: preconditions checked first; a dry run stops
/// after every check and returns the object as it is, writing nothing.
fn delete_one(
    registry: &Registry,
    kind: &'static Kind,
    ns: &str,
    name: &str,
    options: &delete_options::DeleteOptions,
) -> Result<Value, Box<Status>> {
    if options.dry_run || options.has_preconditions() {
        let current = objects::get(registry.store(), kind, ns, name)?;
        options.check(&current, kind.group, kind.plural)?;
        if options.dry_run {
            if *kind == resources::NAMESPACES {
                namespaces::check_deletable(name)?;
            }
            return Ok(current);
        }
    }
    if *kind == resources::PODS {
        return objects::delete_pod(
            registry.store(),
            ns,
            name,
            options.grace_period_seconds,
            options.uid.as_deref(),
        )
        .map(|(v, _)| v);
    }
    if *kind == resources::SERVICES {
        return registry
            .delete_service(ns, name)
            .map(|s| serde_json::to_value(s).unwrap_or_default());
    }
    if *kind == resources::NAMESPACES {
        return namespaces::delete(registry.store(), name);
    }
    gc::delete_with(
        registry.store(),
        kind,
        ns,
        name,
        options.propagation,
        &mut objects::RandomIds::new(),
    )
}

fn not_found_status() -> Status {
    let mut s = Status::bad_request("the server could not find the requested resource");
    s.reason = "NotFound".into();
    s.code = 404;
    s
}

fn not_found_response() -> Response {
    status_response(&not_found_status())
}

async fn pod_log(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let registry = state.registry.clone();
    let result = async {
        let pod = objects::get(registry.store(), &resources::PODS, &ns, &name)?;
        let container = logs::container_of(&pod, q.get("container").map(String::as_str))?;
        let Some(source) = state.pod_logs.clone() else {
            let mut s = Status::bad_request("pod logs are not available from this server (it runs no kubelets)");
            s.reason = "ServiceUnavailable".into();
            s.code = 503;
            return Err(Box::new(s));
        };
        let (ns2, name2, c2) = (ns.clone(), name.clone(), container.clone());
        let reader = source.clone();
        let text = tokio::task::spawn_blocking(move || reader.read(&ns2, &name2, &c2))
            .await
            .map_err(|e| Box::new(Status::internal(&e.to_string())))?
            .map_err(|_| {
                Box::new(Status::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: no output yet"
                )))
            })?;
        let number = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok());
        let first = logs::cut(&text, number("tailLines"), number("limitBytes"));
        let follow = q.get("follow").is_some_and(|v| v == "true" || v == "1");
        if !follow || number("limitBytes").is_some_and(|limit| first.len() >= limit) {
            return Ok(Body::from(first));
        }
        let uid = pod["metadata"]["uid"].clone();
        let followed = Followed {
            registry: registry.clone(),
            source,
            namespace: ns.clone(),
            pod: name.clone(),
            uid,
            container,
            offset: text.len() as u64,
            left: number("limitBytes").map(|limit| limit - first.len()),
        };
        let rest = futures::stream::unfold(followed, |f| f.next());
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) }).chain(rest);
        Ok(Body::from_stream(stream))
    }
    .await;
    match result {
        Ok(body) => {
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Err(s) => status_response(&s),
    }
}

/// A container's output being followed (`kubectl logs -f`).
struct Followed {
    registry: Arc<Registry>,
    source: logs::SharedPodLogs,
    namespace: String,
    pod: String,
    uid: Value,
    container: String,
    offset: u64,
    /// What `limitBytes` still allows.
    left: Option<usize>,
}

impl Followed {
    /// The next output, polled every quarter second; None once the limit is reached or the pod
    /// is gone or replaced (the client hanging up drops the stream instead).
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        loop {
            if self.left == Some(0) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (registry, source) = (self.registry.clone(), self.source.clone());
            let (ns, pod, container, offset) = (
                self.namespace.clone(),
                self.pod.clone(),
                self.container.clone(),
                self.offset,
            );
            let uid = self.uid.clone();
            let (alive, added) = tokio::task::spawn_blocking(move || {
                let alive = objects::get(registry.store(), &resources::PODS, &ns, &pod)
                    .is_ok_and(|p| p["metadata"]["uid"] == uid);
                (
                    alive,
                    source.read_from(&ns, &pod, &container, offset).unwrap_or_default(),
                )
            })
            .await
            .ok()?;
            if !added.is_empty() {
                self.offset += added.len() as u64;
                let mut added = added;
                if let Some(left) = &mut self.left {
                    added.truncate(*left);
                    *left -= added.len();
                }
                return Some((Ok(Bytes::from(added)), self));
            }
            if !alive {
                return None;
            }
        }
    }
}

async fn service_proxy(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    proxy_to(state, p, request, proxy::resolve_service).await
}

async fn pod_proxy(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    proxy_to(state, p, request, proxy::resolve_pod).await
}

/// Resolves the target with `resolve`, rewrites the URI to the path after `/proxy`, and
/// forwards the request there.
async fn proxy_to(
    state: AppState,
    p: HashMap<String, String>,
    mut request: Request,
    resolve: fn(&svcnet_store::Store, &str, &str) -> Result<SocketAddr, Box<Status>>,
) -> Response {
    let (ns, spec) = (
        p.get("ns").cloned().unwrap_or_default(),
        p.get("name").cloned().unwrap_or_default(),
    );
    let registry = state.registry.clone();
    let addr = match blocking(move || resolve(registry.store(), &ns, &spec)).await {
        Ok(a) => a,
        Err(s) => return status_response(&s),
    };
    let mut target = format!("/{}", p.get("rest").map_or("", String::as_str));
    if let Some(q) = request.uri().query() {
        target = format!("{target}?{q}");
    }
    match target.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return status_response(&Status::bad_request("invalid proxy path")),
    }
    match proxy::forward(state.dialer.clone(), addr, request).await {
        Ok(response) => response,
        Err(s) => status_response(&s),
    }
}

async fn openapi_root() -> Response {
    json_response(StatusCode::OK, &openapi::root())
}

async fn openapi_group_version(Path(gv): Path<String>) -> Response {
    match openapi::group_version(&gv) {
        Some(doc) => json_response(StatusCode::OK, doc),
        None => not_found_response(),
    }
}

async fn not_found() -> Response {
    not_found_response()
}

/// Reviews (create-only kinds) take POST on their collection and nothing else (405).
async fn create_only(request: Request, next: Next) -> Response {
    let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
    let kind = match segments.as_slice() {
        ["apis", group, version, plural, rest @ ..] => {
            resources::find(group, version, plural).map(|k| (k, rest.is_empty()))
        }
        _ => None,
    };
    match kind {
        Some((kind, collection))
            if kind.create_only && !(collection && request.method() == axum::http::Method::POST) =>
        {
            method_not_allowed(request).await
        }
        _ => next.run(request).await,
    }
}

async fn method_not_allowed(request: Request) -> Response {
    drain(request).await;
    let mut s = Status::bad_request("the server does not allow this method on the requested resource");
    s.reason = "MethodNotAllowed".into();
    s.code = 405;
    status_response(&s)
}

/// `/healthz`, `/livez`, `/readyz` (and `/NAME/ping`): `ok`, or with `?verbose` one line per
/// check as upstream prints them. The store check reads its revision.
async fn health(State(state): State<AppState>, request: Request) -> Response {
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

/// The application: routes behind authentication.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/api", get(api_versions))
        .route("/api/", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/apis/", get(api_groups))
        .route("/api/v1", get(core_resources))
        .route("/api/v1/", get(core_resources))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/apis/{group}/{version}/", get(group_resources));
    for check in ["/healthz", "/livez", "/readyz"] {
        app = app
            .route(check, get(health))
            .route(&format!("{check}/{{*check}}"), get(health));
    }
    let mut app = app
        .route("/api/v1/namespaces/{ns}/services/{name}/proxy", any(service_proxy))
        .route("/api/v1/namespaces/{ns}/services/{name}/proxy/", any(service_proxy))
        .route("/api/v1/namespaces/{ns}/pods/{name}/proxy/", any(pod_proxy))
        .route(
            "/api/v1/namespaces/{ns}/services/{name}/proxy/{*rest}",
            any(service_proxy),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route("/api/v1/namespaces/{ns}/pods/{name}/proxy", any(pod_proxy))
        .route("/api/v1/namespaces/{ns}/pods/{name}/proxy/{*rest}", any(pod_proxy))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*group_version}", get(openapi_group_version));
    for prefix in ["/api/{version}", "/apis/{group}/{version}"] {
        app = app
            .route(
                &format!("{prefix}/{{resource}}"),
                get(collection_get).post(collection_post).delete(collection_delete),
            )
            .route(
                &format!("{prefix}/{{resource}}/{{name}}"),
                get(item_get).put(item_put).patch(item_patch).delete(item_delete),
            )
            .route(
                &format!("{prefix}/{{resource}}/{{name}}/status"),
                get(item_get).put(status_put).patch(status_patch),
            )
            .route(
                &format!("{prefix}/namespaces/{{ns}}/{{resource}}"),
                get(collection_get).post(collection_post).delete(collection_delete),
            )
            .route(
                &format!("{prefix}/namespaces/{{ns}}/{{resource}}/{{name}}"),
                get(item_get).put(item_put).patch(item_patch).delete(item_delete),
            )
            .route(
                &format!("{prefix}/namespaces/{{ns}}/{{resource}}/{{name}}/status"),
                get(item_get).put(status_put).patch(status_patch),
            )
            .route(
                &format!("{prefix}/namespaces/{{ns}}/{{resource}}/{{name}}/scale"),
                get(scale_get).put(scale_put).patch(scale_patch),
            );
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(create_only))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Forwards the store's write notifications into a watch channel the handlers await.
pub fn revision_feed(registry: &Registry) -> tokio::sync::watch::Receiver<u64> {
    let initial = registry.store().revision().unwrap_or(0);
    let (tx, rx) = tokio::sync::watch::channel(initial);
    let notifications = registry.store().subscribe();
    std::thread::spawn(move || {
        while let Ok(rev) = notifications.recv() {
            if tx.send(rev).is_err() {
                return;
            }
        }
    });
    rx
}

/// Serves `app` over TLS on `listener` until the process ends.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    cert_pem: &str,
    key_pem: &str,
    app: Router,
) -> std::io::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem.as_bytes().to_vec(), key_pem.as_bytes().to_vec())
            .await?;
    listener.set_nonblocking(true)?;
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(crate::plain_http::RefusePlainHttp);
    axum_server::Server::from_tcp(listener)
        .acceptor(acceptor)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
