//! The `proxy` subresources of services and pods: `.../services/NAME[:PORT]/proxy/PATH` picks
//! a ready endpoint from the service's EndpointSlices, `.../pods/NAME[:PORT]/proxy/PATH` the
//! pod's address, and the HTTP request is forwarded there. How connections are opened is the
//! embedder's [`Dialer`]: the lab dials from inside a node's network namespace, where pod
//! addresses are routed.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use serde_json::Value;
use svcnet_core::status::Status;
use svcnet_store::Store;

use crate::objects::{self, Reply};
use crate::resources::{ENDPOINT_SLICES, PODS, SERVICES};

/// Opens TCP connections to pods and endpoints.
pub trait Dialer: Send + Sync {
    fn dial(&self, addr: SocketAddr) -> std::io::Result<TcpStream>;
}

/// Connects from this process's own network namespace.
pub struct DirectDialer;

impl Dialer for DirectDialer {
    fn dial(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    }
}

pub type SharedDialer = Arc<dyn Dialer>;

fn unavailable(message: String) -> Box<Status> {
    let mut s = Status::bad_request(message);
    s.reason = "ServiceUnavailable".into();
    s.code = 503;
    Box::new(s)
}

/// `name`, `name:port` or `scheme:name:port` (only http is proxied).
fn split_name(spec: &str) -> Result<(&str, Option<&str>), Box<Status>> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name] => Ok((name, None)),
        [name, port] => Ok((name, Some(*port).filter(|p| !p.is_empty()))),
        ["http" | "", name, port] => Ok((name, Some(*port).filter(|p| !p.is_empty()))),
        [scheme, ..] => Err(Box::new(Status::bad_request(format!(
            "proxying to scheme {scheme:?} is not supported"
        )))),
        [] => Err(Box::new(Status::bad_request("empty name"))),
    }
}

/// Where `.../services/SPEC/proxy` goes: a ready endpoint of the named (or only) port.
pub fn resolve_service(store: &Store, namespace: &str, spec: &str) -> Reply<SocketAddr> {
    let (name, port) = split_name(spec)?;
    let svc = objects::get(store, &SERVICES, namespace, name)?;
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let chosen = match port {
        None if ports.len() == 1 => &ports[0],
        None => {
            return Err(unavailable(format!(
                "service {name:?} has several ports; name one as {name}:PORT"
            )));
        }
        Some(p) => ports
            .iter()
            .find(|sp| {
                sp["name"].as_str() == Some(p) || sp["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(p)
            })
            // upstream: 503, naming the port and the service
            .ok_or_else(|| unavailable(format!("no service port {p} found for service {name:?}")))?,
    };
    let port_name = chosen["name"].as_str().unwrap_or("");
    let (slices, _) = objects::list(store, &ENDPOINT_SLICES, Some(namespace))?;
    for slice in slices
        .iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"].as_str() == Some(name))
    {
        let Some(target_port) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            .and_then(|p| p["port"].as_u64())
        else {
            continue;
        };
        let ready = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"].as_bool() != Some(false))
            .find_map(|e| e["addresses"][0].as_str()?.parse::<IpAddr>().ok());
        if let Some(ip) = ready {
            return Ok(SocketAddr::new(ip, target_port as u16));
        }
    }
    Err(unavailable(format!("no endpoints available for service {name:?}")))
}

/// Where `.../pods/SPEC/proxy` goes: the pod's address at the given, named or first port.
pub fn resolve_pod(store: &Store, namespace: &str, spec: &str) -> Reply<SocketAddr> {
    let (name, port) = split_name(spec)?;
    let pod = objects::get(store, &PODS, namespace, name)?;
    let ip: IpAddr = pod["status"]["podIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| unavailable(format!("pod {name:?} has no address yet")))?;
    let container_ports: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .collect();
    let number = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) => n,
            Err(_) => container_ports
                .iter()
                .find(|cp| cp["name"].as_str() == Some(p))
                .and_then(|cp| cp["containerPort"].as_u64())
                .map(|n| n as u16)
                .ok_or_else(|| Box::new(Status::bad_request(format!("pod {name:?} has no port named {p:?}"))))?,
        },
        None => container_ports
            .first()
            .and_then(|cp| cp["containerPort"].as_u64())
            .map_or(80, |n| n as u16),
    };
    Ok(SocketAddr::new(ip, number))
}

/// Forwards `request` (its URI already rewritten to the path at the target) to `addr`.
pub async fn forward(dialer: SharedDialer, addr: SocketAddr, mut request: Request<Body>) -> Reply<Response<Body>> {
    let stream = tokio::task::spawn_blocking(move || dialer.dial(addr))
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(format!("error trying to reach {addr}: {e}")))?;
    stream.set_nonblocking(true).map_err(|e| unavailable(e.to_string()))?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(format!("error trying to reach {addr}: {e}")))?;
    tokio::spawn(connection);
    // the client's credentials are for the API server, not for the pod
    request.headers_mut().remove(header::AUTHORIZATION);
    if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
        request.headers_mut().insert(header::HOST, host);
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(format!("error trying to reach {addr}: {e}")))?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_ports_and_schemes() {
        assert_eq!(split_name("web").unwrap(), ("web", None));
        assert_eq!(split_name("web:http").unwrap(), ("web", Some("http")));
        assert_eq!(split_name("http:web:8080").unwrap(), ("web", Some("8080")));
        assert_eq!(split_name("web:").unwrap(), ("web", None));
        assert!(split_name("https:web:443").unwrap_err().message.contains("\"https\""));
    }
}
