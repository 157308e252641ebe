//! The Kubernetes-compatible API server.
//!
//! - [`registry`]: Service writes through the core's defaulting, allocation and validation,
//!   committed with their allocations in one store transaction.
//! - [`credentials`]: CA, serving certificate, admin token and kubeconfig in the data dir.
//! - [`resources`]: the served resources; [`objects`]: generic object writes for them;
//!   [`scale`]: the `/scale` subresource.
//! - [`controller`]: the EndpointSlice and Endpoints controllers; [`workloads`]: the
//!   Deployment and ReplicaSet controllers; [`events`]: the events they record.
//! - [`namespaces`]: namespace admission and deletion; [`finalizers`]: deletion marks and
//!   finalizers; [`gc`]: garbage collection and delete
//!   propagation policies.
//! - [`openapi`]: OpenAPI v3 discovery; [`field_validation`]: `fieldValidation` on writes;
//!   [`protobuf`]: protobuf request bodies as JSON.
//! - [`proxy`]: the services/pods `proxy` subresources; [`logs`]: `pods/log`.
//! - [`server`]: the HTTPS API.

#![forbid(unsafe_code)]

pub mod apply;
pub mod attach_session;
pub mod binding;
pub mod controller;
pub mod credentials;
pub mod delete_options;
pub mod events;
pub mod exec;
pub mod exec_session;
pub mod field_validation;
pub mod finalizers;
pub mod gc;
pub mod kinds;
pub mod logs;
pub mod namespaces;
pub mod objects;
pub mod openapi;
pub mod openapi_v2;
pub mod paging;
pub mod plain_http;
pub mod port_forward;
pub mod protobuf;
pub mod proxy;
pub mod registry;
pub mod resources;
pub mod reviews;
pub mod scale;
pub mod selection;
pub mod server;
pub mod service_accounts;
pub mod service_cidrs;
pub mod spdy;
pub mod strategic;
pub mod table;
pub mod workloads;
pub mod write_options;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use svcnet_core::alloc::PortRange;

/// `svcnet apiserver` settings.
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub service_cidrs: Vec<IpNet>,
    pub node_ports: PortRange,
    /// How the proxy subresources reach pods (default: from this network namespace).
    pub dialer: Option<proxy::SharedDialer>,
    /// Where `pods/log` reads container output (`None`: not available).
    pub pod_logs: Option<logs::SharedPodLogs>,
    /// What runs `pods/exec` commands and opens `pods/portforward` connections (`None`: not
    /// available).
    pub pod_streaming: Option<exec::SharedPodStreaming>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Open(#[from] registry::OpenError),
}

/// Opens the data directory and serves until the process ends. `on_ready` gets the bound
/// address (useful with port 0) and the kubeconfig path once clients can connect.
pub async fn run(config: Config, on_ready: impl FnOnce(SocketAddr, PathBuf)) -> Result<(), ServeError> {
    let listener = std::net::TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !addr.ip().is_unspecified() && !hosts.contains(&addr.ip().to_string()) {
        hosts.push(addr.ip().to_string());
    }
    let creds = credentials::ensure(&config.data_dir, &format!("https://{addr}"), &hosts)?;
    let store_path = config.data_dir.join("store.redb");
    let registry = tokio::task::spawn_blocking(move || {
        registry::Registry::open(&store_path, &config.service_cidrs, config.node_ports)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    registry.publish_root_ca(creds.ca_pem.clone());
    let registry = Arc::new(registry);
    let revision = server::revision_feed(&registry);
    tokio::spawn(controller::run(registry.clone(), revision.clone()));
    tokio::spawn(expire_events(registry.clone()));
    let state = server::AppState {
        dialer: config.dialer.unwrap_or_else(|| Arc::new(proxy::DirectDialer)),
        pod_logs: config.pod_logs,
        pod_streaming: config.pod_streaming,
        revision,
        registry,
        token: Arc::new(creds.token.clone()),
    };
    on_ready(addr, creds.kubeconfig.clone());
    server::serve_tls(listener, &creds.cert_pem, &creds.key_pem, server::router(state)).await?;
    Ok(())
}

/// Removes expired events once a minute, for as long as the server runs.
async fn expire_events(registry: Arc<registry::Registry>) {
    let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every_minute.tick().await;
        let r = registry.clone();
        let result = tokio::task::spawn_blocking(move || events::expire(r.store(), objects::now_timestamp())).await;
        match result {
            Ok(Ok(n)) if n > 0 => tracing::debug!(deleted = n, "expired events"),
            Ok(Ok(_)) => {}
            Ok(Err(status)) => tracing::warn!(error = %status.message, "expiring events failed"),
            Err(e) => tracing::warn!(error = %e, "expiring events panicked"),
        }
    }
}
