//! The HTTPS API: bearer-token authentication, discovery, and Services (get, list, watch,
//! create, replace, status, delete). Every error is a Kubernetes `Status` body; request bodies
//! are limited in size, and nothing a client sends can panic the server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};
use svcnet_core::status::Status;
use svcnet_store::{EventKind, StoreError};

use crate::registry::Registry;

/// Largest accepted request body (upstream's default is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// Longest a watch stays open.
const MAX_WATCH: Duration = Duration::from_secs(1800);

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub token: Arc<String>,
    /// The store's latest revision, updated after every write.
    pub revision: tokio::sync::watch::Receiver<u64>,
}

fn status_response(status: &Status) -> Response {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, [(header::CONTENT_TYPE, "application/json")], status.to_json()).into_response()
}

fn json_response(code: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => status_response(&Status::internal(&e.to_string())),
    }
}

fn reply(r: Result<Service, Box<Status>>, code: StatusCode) -> Response {
    match r {
        Ok(svc) => json_response(code, &svc),
        Err(status) => status_response(&status),
    }
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let expected = format!("Bearer {}", state.token);
    let ok = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !ok {
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

/// The body, at most `MAX_BODY` bytes, as a Service. An oversized body is drained (up to
/// `DRAIN_LIMIT`) and answered with 413.
async fn read_service(request: Request) -> Result<Service, Box<Status>> {
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
    parse_service(&Bytes::from(body))
}

fn parse_service(bytes: &Bytes) -> Result<Service, Box<Status>> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| Box::new(Status::bad_request(format!("json parse error: {e}"))))?;
    if let Some(kind) = value.get("kind").and_then(Value::as_str)
        && kind != "Service"
    {
        return Err(Box::new(Status::bad_request(format!(
            "the object provided is unrecognized (must be of type Service): kind {kind:?}"
        ))));
    }
    serde_json::from_value(value)
        .map_err(|e| Box::new(Status::bad_request(format!("unable to decode the Service: {e}"))))
}

/// Go's `strconv.ParseBool`, which clients' `watch=` values follow.
fn parse_bool(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"major": "1", "minor": "37", "gitVersion": concat!("v1.37.0-svcnet-", env!("CARGO_PKG_VERSION")),
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
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
    )
}

async fn api_v1_resources() -> Response {
    let verbs = ["create", "delete", "get", "list", "patch", "update", "watch"];
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service",
             "verbs": verbs, "shortNames": ["svc"], "categories": ["all"]},
            {"name": "services/status", "singularName": "", "namespaced": true, "kind": "Service",
             "verbs": ["get", "patch", "update"]},
        ]}),
    )
}

async fn list_or_watch(state: &AppState, namespace: Option<&str>, query: &HashMap<String, String>) -> Response {
    if parse_bool(query.get("watch")) {
        return watch(state.clone(), namespace.map(str::to_owned), query);
    }
    match state.registry.list_services(namespace) {
        Ok((items, rev)) => json_response(
            StatusCode::OK,
            &json!({"kind": "ServiceList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": rev.to_string()}, "items": items}),
        ),
        Err(s) => status_response(&s),
    }
}

fn event_line(kind: &str, object: &impl serde::Serialize) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A watch: the current objects as ADDED when no (or a zero) resourceVersion is given, then
/// every change after it, newline-delimited; `ERROR` with a 410 Status when the version is
/// older than the history kept.
fn watch(state: AppState, namespace: Option<String>, query: &HashMap<String, String>) -> Response {
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(MAX_WATCH, |t| Duration::from_secs(t).min(MAX_WATCH));
    let requested = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .cloned();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let in_scope = |svc_ns: &str| namespace.as_deref().is_none_or(|ns| ns == svc_ns);
        let mut from = match requested.map(|v| v.parse::<u64>()) {
            Some(Ok(rv)) => rv,
            Some(Err(_)) => {
                let s = Status::bad_request("invalid resourceVersion");
                let _ = tx.send(event_line("ERROR", &s)).await;
                return;
            }
            None => match state.registry.list_services(namespace.as_deref()) {
                Ok((items, rev)) => {
                    for svc in items {
                        if tx.send(event_line("ADDED", &svc)).await.is_err() {
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
            match state.registry.store().events_since(from, Some("services")) {
                Ok(events) => {
                    for e in events {
                        from = e.object.revision;
                        if !in_scope(&e.object.key.namespace) {
                            continue;
                        }
                        let Ok(mut svc) = serde_json::from_slice::<Service>(&e.object.value) else {
                            continue;
                        };
                        let kind = match e.kind {
                            EventKind::Added => "ADDED",
                            EventKind::Modified => "MODIFIED",
                            EventKind::Deleted => "DELETED",
                        };
                        svc.metadata.resource_version = Some(e.object.revision.to_string());
                        if tx.send(event_line(kind, &svc)).await.is_err() {
                            return;
                        }
                    }
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
                _ = tokio::time::sleep_until(deadline) => return,
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

async fn list_all(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    list_or_watch(&state, None, &q).await
}

async fn list_namespaced(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_or_watch(&state, Some(&ns), &q).await
}

async fn create(State(state): State<AppState>, Path(ns): Path<String>, body: Request) -> Response {
    match read_service(body).await {
        Ok(svc) => {
            let registry = state.registry.clone();
            let r = tokio::task::spawn_blocking(move || registry.create_service(&ns, svc)).await;
            reply(
                r.unwrap_or_else(|e| Err(Box::new(Status::internal(&e.to_string())))),
                StatusCode::CREATED,
            )
        }
        Err(status) => status_response(&status),
    }
}

async fn get_one(State(state): State<AppState>, Path((ns, name)): Path<(String, String)>) -> Response {
    reply(state.registry.get_service(&ns, &name), StatusCode::OK)
}

async fn replace(State(state): State<AppState>, Path((ns, name)): Path<(String, String)>, body: Request) -> Response {
    match read_service(body).await {
        Ok(svc) => {
            let registry = state.registry.clone();
            let r = tokio::task::spawn_blocking(move || registry.update_service(&ns, &name, svc)).await;
            reply(
                r.unwrap_or_else(|e| Err(Box::new(Status::internal(&e.to_string())))),
                StatusCode::OK,
            )
        }
        Err(status) => status_response(&status),
    }
}

async fn replace_status(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    body: Request,
) -> Response {
    match read_service(body).await {
        Ok(svc) => {
            let registry = state.registry.clone();
            let r = tokio::task::spawn_blocking(move || registry.update_service_status(&ns, &name, svc)).await;
            reply(
                r.unwrap_or_else(|e| Err(Box::new(Status::internal(&e.to_string())))),
                StatusCode::OK,
            )
        }
        Err(status) => status_response(&status),
    }
}

async fn delete(State(state): State<AppState>, Path((ns, name)): Path<(String, String)>) -> Response {
    let registry = state.registry.clone();
    let r = tokio::task::spawn_blocking(move || registry.delete_service(&ns, &name)).await;
    reply(
        r.unwrap_or_else(|e| Err(Box::new(Status::internal(&e.to_string())))),
        StatusCode::OK,
    )
}

async fn not_found() -> Response {
    let mut s = Status::bad_request("the server could not find the requested resource");
    s.reason = "NotFound".into();
    s.code = 404;
    status_response(&s)
}

/// The application: routes behind authentication.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(api_v1_resources))
        .route("/api/v1/services", get(list_all))
        .route("/api/v1/namespaces/{ns}/services", get(list_namespaced).post(create))
        .route(
            "/api/v1/namespaces/{ns}/services/{name}",
            get(get_one).put(replace).delete(delete),
        )
        .route(
            "/api/v1/namespaces/{ns}/services/{name}/status",
            get(get_one).put(replace_status),
        )
        .fallback(not_found)
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
    axum_server::from_tcp_rustls(listener, config)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
