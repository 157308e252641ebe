//! Events the lab's scheduler and kubelets record about pods (`Scheduled`, `Started`,
//! `Killing`), through the API like upstream's components, so `kubectl describe pod` tells a
//! pod's story. Best effort: a failure is logged, never the caller's error.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Client;
use kube::api::{Api, PostParams};
use svcnet_apiserver::events;

/// Records a Normal event about `pod` from `component` (on `host` when a node reports it).
pub async fn record(client: &Client, pod: &Pod, reason: &str, message: &str, component: &str, host: Option<&str>) {
    post(client, pod, reason, message, component, host, false).await;
}

/// A Warning event (`Failed`, `BackOff`, …), as upstream's kubelet records failures.
pub async fn warn(client: &Client, pod: &Pod, reason: &str, message: &str, component: &str, host: Option<&str>) {
    post(client, pod, reason, message, component, host, true).await;
}

async fn post(
    client: &Client,
    pod: &Pod,
    reason: &str,
    message: &str,
    component: &str,
    host: Option<&str>,
    warning: bool,
) {
    let Ok(object) = serde_json::to_value(pod) else { return };
    let now = svcnet_apiserver::objects::now_precise_timestamp();
    let mut event = events::normal(&object, reason, message, component, now);
    if warning {
        event["type"] = serde_json::json!("Warning");
    }
    if let Some(host) = host {
        event = events::from_host(event, host);
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let Ok(event) = serde_json::from_value::<Event>(event) else {
        return;
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &event)
        .await
    {
        tracing::debug!(reason, error = %e, "event not recorded");
    }
}
