//! Raw HTTP requests to the API server over one kube client (its TLS, token and kept-alive
//! connection), for tests that send thousands of requests or race them.

use http::{Method, Request};
use kube::client::Body;
use serde_json::Value;

use crate::api::ApiServer as Server;

/// A client for `server`, from its kubeconfig.
pub async fn client(server: &Server) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

pub struct Answer {
    pub code: u16,
    pub body: Value,
}

/// `body` sent with `content_type`; the answer, or why there was none (or it was not JSON).
pub async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Result<Answer, String> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(Body::from(body.to_string().into_bytes()))
        .map_err(|e| e.to_string())?;
    let response = client.send(request).await.map_err(|e| format!("no answer: {e}"))?;
    let code = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| format!("the answer broke off: {e}"))?;
    let body = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{code}, not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))?;
    Ok(Answer { code, body })
}
