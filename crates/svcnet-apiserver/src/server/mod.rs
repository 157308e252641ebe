//! The HTTPS API: bearer-token authentication, discovery, and the served resources (get,
//! list, watch, create, replace, status, delete). Service writes go through the registry;
//! other resources through the generic object layer. Every error is a Kubernetes `Status`
//! body; request bodies are limited in size, and nothing a client sends can panic the server.
//!
//! One file per concern: `auth` (who may ask), `body` (request bodies and patches),
//! `body_shape` (a body is an object of its kind's shape before anything reads it),
//! `deprecation` (the warning on requests to deprecated kinds),
//! `discovery` (version, API lists, OpenAPI, health), `watch`, `handlers` (the verbs on
//! resources), `subresources` (logs and proxies), `pod_streaming` (exec, attach and port-forward over WebSocket), `reply` (answers and Status bodies);
//! this file holds the state, the routes and the TLS listener.

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
use axum::routing::{any, get, post};
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

mod auth;
mod body;
mod body_shape;
mod deprecation;
mod discovery;
mod handlers;
mod ownership;
mod pod_streaming;
mod reply;
mod subresources;
mod watch;

use auth::*;
use body::*;
use deprecation::warn_deprecated;
use discovery::*;
use handlers::*;
use ownership::Ownership;
use pod_streaming::*;
use reply::*;
use subresources::*;
use watch::*;

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
    /// Runs `pods/exec` commands (`None`: not available).
    pub pod_streaming: Option<crate::exec::SharedPodStreaming>,
    /// The store's latest revision, updated after every write.
    pub revision: tokio::sync::watch::Receiver<u64>,
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
        .route("/api/v1/namespaces/{ns}/pods/{name}/exec", get(pod_exec).post(pod_exec))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            get(pod_attach).post(pod_attach),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            get(pod_port_forward).post(pod_port_forward),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/binding", post(pod_binding))
        .route("/api/v1/namespaces/{ns}/pods/{name}/proxy", any(pod_proxy))
        .route("/api/v1/namespaces/{ns}/pods/{name}/proxy/{*rest}", any(pod_proxy))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*group_version}", get(openapi_group_version));
    // a Namespace's status: the path a namespaced list would take, so routed before it
    app = app.route(
        "/api/{version}/namespaces/{ns}/status",
        get(namespace_status_get)
            .put(namespace_status_put)
            .patch(namespace_status_patch),
    );
    // a Namespace's finalizers (`spec.finalizers`), which only this path changes
    app = app.route(
        "/api/{version}/namespaces/{ns}/finalize",
        axum::routing::put(namespace_finalize),
    );
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
        .layer(middleware::from_fn(warn_deprecated))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
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
