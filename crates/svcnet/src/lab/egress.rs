//! The way upstream's kube-apiserver reaches into the lab (`--control-plane upstream`): its
//! egress selector sends every connection meant for the cluster (pods and Services through
//! the proxy subresources, kubelets for logs and exec) as an HTTP `CONNECT` over a Unix
//! socket in the control plane's private directory, and this proxy opens it:
//! - to the lab's kubelet API on loopback, the one loopback address it opens;
//! - to anything else from inside the first node's namespace, where pod and Service
//!   addresses are routed, as a node's kube-apiserver would reach them.
//!
//! kube-apiserver itself stays on loopback in the host's namespace, and the host gets no
//! route into the lab.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::lab::hooks::NodeDialer;
use svcnet_apiserver::proxy::Dialer;

/// Where the proxy listens, in the control plane's directory `dir` (mode 0700).
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("egress.sock")
}

/// kube-apiserver's `--egress-selector-config-file`: the `cluster` traffic through the proxy
/// at [`socket_path`]; written to `dir`.
pub fn write_config(dir: &Path) -> Result<PathBuf> {
    let config = format!(
        "apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
  - name: cluster
    connection:
      proxyProtocol: HTTPConnect
      transport:
        uds:
          udsName: {}
",
        socket_path(dir).display()
    );
    let path = dir.join("egress-selector.yaml");
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Where a `CONNECT` may go.
pub struct Routes {
    /// The lab's kubelet API, on the host's loopback.
    pub kubelet: SocketAddr,
    /// Dials everything else inside a node's namespace.
    pub dialer: NodeDialer,
}

/// How a target is reached, or why it is not.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    HostLoopback(SocketAddr),
    InsideTheLab(SocketAddr),
    Refused(&'static str),
}

fn route(routes: &Routes, target: &str) -> Route {
    let Ok(addr) = target.parse::<SocketAddr>() else {
        return Route::Refused("the lab's egress opens addresses only (IP:port)");
    };
    if addr == routes.kubelet {
        Route::HostLoopback(addr)
    } else if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        Route::Refused("no loopback address but the kubelet API's")
    } else {
        Route::InsideTheLab(addr)
    }
}

fn answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_owned()));
    *response.status_mut() = status;
    response
}

async fn connect(routes: Arc<Routes>, request: Request<hyper::body::Incoming>) -> Result<Response<Body>, hyper::Error> {
    if request.method() != Method::CONNECT {
        return Ok(answer(StatusCode::METHOD_NOT_ALLOWED, "CONNECT only"));
    }
    let target = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
    let stream = match route(&routes, &target) {
        Route::Refused(why) => return Ok(answer(StatusCode::FORBIDDEN, why)),
        Route::HostLoopback(addr) => tokio::net::TcpStream::connect(addr).await,
        Route::InsideTheLab(addr) => {
            let routes = routes.clone();
            match tokio::task::spawn_blocking(move || routes.dialer.dial(addr)).await {
                Ok(Ok(stream)) => stream
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(stream)),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(std::io::Error::other(e)),
            }
        }
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%target, error = %e, "egress dial failed");
            return Ok(answer(StatusCode::BAD_GATEWAY, &format!("dialing {target}: {e}")));
        }
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let mut upgraded = TokioIo::new(upgraded);
                let _ = tokio::io::copy_bidirectional(&mut upgraded, &mut stream).await;
            }
            Err(e) => tracing::debug!(%target, error = %e, "egress upgrade failed"),
        }
    });
    Ok(Response::new(Body::empty()))
}

/// Binds the proxy's socket (a stale one from an earlier lab is replaced).
pub fn bind(path: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

/// Serves `CONNECT`s on `listener` until the lab stops.
pub async fn serve(listener: UnixListener, routes: Routes) {
    let routes = Arc::new(routes);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            // out of descriptors, say: wait rather than spin
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| connect(routes.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .with_upgrades()
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes {
            kubelet: "127.0.0.1:4321".parse().unwrap(),
            dialer: NodeDialer { netns: "unused".into() },
        }
    }

    #[test]
    fn only_the_kubelet_api_is_opened_on_loopback() {
        let r = routes();
        assert_eq!(route(&r, "127.0.0.1:4321"), Route::HostLoopback(r.kubelet));
        assert!(matches!(route(&r, "127.0.0.1:2379"), Route::Refused(_)));
        assert!(matches!(route(&r, "[::1]:4321"), Route::Refused(_)));
        assert!(matches!(route(&r, "0.0.0.0:80"), Route::Refused(_)));
        assert_eq!(
            route(&r, "10.244.1.5:8080"),
            Route::InsideTheLab("10.244.1.5:8080".parse().unwrap())
        );
        assert!(matches!(route(&r, "web.default:80"), Route::Refused(_)));
    }
}
