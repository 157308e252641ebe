//! The kubelet API the lab serves to upstream's kube-apiserver (`--control-plane upstream`),
//! so `kubectl logs` works there as on svcnet's own API server (which reads the same files
//! through a hook): `GET /containerLogs/NS/POD/CONTAINER` with `previous`, `tailLines`,
//! `limitBytes` and `follow`. One server for every node, on loopback where kube-apiserver
//! runs; each Node reports it as its [`ADDRESS_TYPE`] address and `daemonEndpoints` port.
//! Mutual TLS: only a client with a certificate of the lab's CA (kube-apiserver's kubelet
//! client certificate; root's files) is answered, so no other local user reads pod output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use svcnet_apiserver::logs::{PodLogs, cut};

use crate::lab::hooks::LogFiles;

/// The address type kube-apiserver is told to prefer, under which each Node reports the
/// kubelet API's loopback address.
pub const ADDRESS_TYPE: &str = "InternalDNS";
/// That address.
pub const ADDRESS: &str = "127.0.0.1";

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    previous: Option<bool>,
    follow: Option<bool>,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

async fn container_logs(
    State(logs): State<Arc<LogFiles>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let read = {
        let (logs, ns, pod, container) = (logs.clone(), ns.clone(), pod.clone(), container.clone());
        let previous = q.previous.unwrap_or(false);
        tokio::task::spawn_blocking(move || {
            if previous {
                logs.read_previous(&ns, &pod, &container)
            } else {
                logs.read(&ns, &pod, &container)
            }
        })
        .await
    };
    let Ok(Ok(text)) = read else {
        // upstream's kubelet's words, which kube-apiserver passes on
        let message = if q.previous.unwrap_or(false) {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: no output yet")
        };
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    let first = cut(&text, q.tail_lines, q.limit_bytes);
    if !q.follow.unwrap_or(false) || q.previous.unwrap_or(false) {
        return first.into_response();
    }
    // followed: what is added, every 200 ms, until the container's log goes (the pod did)
    let offset = text.len() as u64;
    let rest = futures::stream::unfold(
        (logs, ns, pod, container, offset),
        |(logs, ns, pod, container, offset)| async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let more = {
                    let (l, n, p, c) = (logs.clone(), ns.clone(), pod.clone(), container.clone());
                    tokio::task::spawn_blocking(move || l.read_from(&n, &p, &c, offset)).await
                };
                match more {
                    Ok(Ok(bytes)) if bytes.is_empty() => continue,
                    Ok(Ok(bytes)) => {
                        let next = offset + bytes.len() as u64;
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(bytes)),
                            (logs, ns, pod, container, next),
                        ));
                    }
                    _ => return None,
                }
            }
        },
    );
    let stream = futures::StreamExt::chain(futures::stream::once(async move { Ok(Bytes::from(first)) }), rest);
    Body::from_stream(stream).into_response()
}

/// The server's TLS: its certificate, and client certificates of the lab's CA required.
fn tls_config(cert: &Path, key: &Path, ca: &Path) -> Result<rustls::ServerConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .context("the kubelet certificate")?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key).context("the kubelet key")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca_cert in CertificateDer::pem_file_iter(ca).context("the lab's CA")? {
        roots.add(ca_cert?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
    Ok(rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?)
}

/// The credentials of the kubelet API, in the control plane's directory `dir`.
pub struct Credentials {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Issues the kubelet API's serving certificate from the CA in `dir`.
pub fn credentials(dir: &Path) -> Result<Credentials> {
    let (cert, key) = svcnet_apiserver::credentials::issue_mutual_tls(dir, "kubelet", &[ADDRESS.to_owned()])?;
    Ok(Credentials {
        cert,
        key,
        ca: dir.join("ca.crt"),
    })
}

/// Binds the server on loopback; returns its port and the task that serves `log_dir`.
pub async fn start(creds: &Credentials, log_dir: PathBuf) -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let config = tls_config(&creds.cert, &creds.key, &creds.ca)?;
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let port = listener.local_addr()?.port();
    listener.set_nonblocking(true)?;
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(LogFiles { dir: log_dir }));
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
    let server = axum_server::from_tcp_rustls(listener, tls);
    let task = tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "the kubelet API stopped");
        }
    });
    Ok((port, task))
}
