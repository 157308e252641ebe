//! The kubelet API the lab serves to upstream's kube-apiserver (`--control-plane upstream`),
//! so `kubectl logs`, `exec`, `attach` and `port-forward` work there as on svcnet's own API server (which reaches
//! the same files and sandboxes through hooks):
//! - `GET /containerLogs/NS/POD/CONTAINER` with `previous`, `tailLines`, `limitBytes` and
//!   `follow`;
//! - `/exec/NS/POD/CONTAINER` and `/attach/NS/POD/CONTAINER` over WebSocket
//!   (`v5.channel.k8s.io`), and `/portForward/NS/POD`
//!   (SPDY tunnelled in a WebSocket), which kube-apiserver proxies to as kubectl sent them
//!   because each Node declares the feature `ExtendWebSocketsToKubelet` (it would otherwise
//!   speak plain SPDY to the kubelet, which the lab does not serve).
//!
//! One server for every node, on loopback where kube-apiserver runs; each Node reports it as
//! its [`ADDRESS_TYPE`] address and `daemonEndpoints` port, and kube-apiserver reaches it
//! through the lab's egress proxy (`lab::egress`).
//! Mutual TLS: only a client with a certificate of the lab's CA (kube-apiserver's kubelet
//! client certificate; root's files) is answered, so no other local user reads pod output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use svcnet_apiserver::exec::{self, KUBELET_PARAMETERS, SharedPodStreaming};
use svcnet_apiserver::logs::{PodLogs, cut};

use crate::lab::hooks::LogFiles;

/// The feature a Node declares (`status.declaredFeatures`) for kube-apiserver to proxy
/// `kubectl exec`'s WebSocket to the kubelet as it is.
pub const WEBSOCKETS_FEATURE: &str = "ExtendWebSocketsToKubelet";

/// What the kubelet API reaches: the pods' output, the pods themselves (read from the API
/// server) and a way to run commands in them.
pub struct Served {
    pub logs: Arc<LogFiles>,
    pub client: kube::Client,
    pub streaming: SharedPodStreaming,
}

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
    State(served): State<Arc<Served>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let logs = served.logs.clone();
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

/// What every streaming request needs before its session: the pod as the API server has
/// it (JSON, as the hook takes it) and the WebSocket upgrade, `protocols` chosen; or the
/// answer that ends the request.
async fn pod_and_upgrade(
    served: &Served,
    ns: &str,
    pod: &str,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    protocols: &[&'static str],
) -> Result<(serde_json::Value, WebSocketUpgrade), (StatusCode, String)> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(served.client.clone(), ns);
    let found = match pods.get_opt(pod).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err((StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found"))),
        Err(e) => return Err((StatusCode::SERVICE_UNAVAILABLE, format!("reading pod {ns}/{pod}: {e}"))),
    };
    let Ok(upgrade) = upgrade else {
        let message = format!(
            "a WebSocket upgrade ({}) is needed; SPDY is not served",
            protocols.join(" or ")
        );
        return Err((StatusCode::BAD_REQUEST, message));
    };
    let found = serde_json::to_value(found).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((found, upgrade.protocols(protocols.iter().copied())))
}

/// How a request names the streams it wants (`parse_request` for exec, `parse_attach`).
type Parse = fn(&[(String, String)], &exec::Parameters) -> Result<exec::ExecRequest, String>;

/// Exec's and attach's first steps: the kubelet's parameters (`input`, `output`, `error`,
/// `tty`, `command`), then the pod and the upgrade.
async fn container_request(
    served: &Served,
    (ns, pod): (&str, &str),
    pairs: &[(String, String)],
    parse: Parse,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<(exec::ExecRequest, serde_json::Value, WebSocketUpgrade), Response> {
    let request = parse(pairs, &KUBELET_PARAMETERS).map_err(|m| (StatusCode::BAD_REQUEST, m).into_response())?;
    let (pod, upgrade) = pod_and_upgrade(served, ns, pod, upgrade, &exec::PROTOCOLS)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((request, pod, upgrade))
}

/// A command in a container: the session the API server's own `pods/exec` runs.
async fn container_exec(
    State(served): State<Arc<Served>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (request, pod, upgrade) =
        match container_request(&served, (&ns, &pod), &pairs, exec::parse_request, upgrade).await {
            Ok(ready) => ready,
            Err(answer) => return answer,
        };
    let hook = served.streaming.clone();
    upgrade.on_upgrade(move |socket| svcnet_apiserver::exec_session::run(socket, hook, pod, container, request))
}

/// `kubectl attach`: the session the API server's own `pods/attach` runs.
async fn container_attach(
    State(served): State<Arc<Served>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (request, pod, upgrade) =
        match container_request(&served, (&ns, &pod), &pairs, exec::parse_attach, upgrade).await {
            Ok(ready) => ready,
            Err(answer) => return answer,
        };
    let hook = served.streaming.clone();
    upgrade.on_upgrade(move |socket| async move {
        let attached = hook.attach(&pod, &container, request.stdin);
        svcnet_apiserver::attach_session::run(socket, attached, request).await
    })
}

/// `kubectl port-forward`: the session the API server's own `pods/portforward` runs.
async fn port_forward(
    State(served): State<Arc<Served>>,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let protocols = [svcnet_apiserver::port_forward::PROTOCOL];
    let (pod, upgrade) = match pod_and_upgrade(&served, &ns, &pod, upgrade, &protocols).await {
        Ok(ready) => ready,
        Err(answer) => return answer.into_response(),
    };
    let hook = served.streaming.clone();
    upgrade.on_upgrade(move |socket| svcnet_apiserver::port_forward::run(socket, hook, pod))
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

/// Binds the server on loopback; returns its port and the task that serves `served`.
pub async fn start(creds: &Credentials, served: Served) -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let config = tls_config(&creds.cert, &creds.key, &creds.ca)?;
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let port = listener.local_addr()?.port();
    listener.set_nonblocking(true)?;
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", get(container_exec).post(container_exec))
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(container_attach).post(container_attach),
        )
        .route("/portForward/{ns}/{pod}", get(port_forward).post(port_forward))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(served));
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
    let server = axum_server::from_tcp_rustls(listener, tls);
    let task = tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "the kubelet API stopped");
        }
    });
    Ok((port, task))
}
