//! Events the lab's components record about the objects they act on (the scheduler's
//! `Scheduled`, the kubelet's `Started` or `Killing`, the load balancer's `IPAllocated`),
//! through the API like upstream's components, so `kubectl describe` tells an object's story.
//! Best effort: a failure is logged, never the caller's error.

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use svcnet_apiserver::events;

/// Records a Normal event about `object` from `component` (on `host` when a node reports it).
pub async fn record<K: Resource + Serialize>(
    client: &Client,
    object: &K,
    reason: &str,
    message: &str,
    component: &str,
    host: Option<&str>,
) {
    post(client, object, reason, message, component, host, false).await;
}

/// A Warning event (`Failed`, `BackOff`, `AllocationFailed`…), as upstream's components
/// record failures.
pub async fn warn<K: Resource + Serialize>(
    client: &Client,
    object: &K,
    reason: &str,
    message: &str,
    component: &str,
    host: Option<&str>,
) {
    post(client, object, reason, message, component, host, true).await;
}

async fn post<K: Resource + Serialize>(
    client: &Client,
    object: &K,
    reason: &str,
    message: &str,
    component: &str,
    host: Option<&str>,
    warning: bool,
) {
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    let Ok(object) = serde_json::to_value(object) else {
        return;
    };
    let now = svcnet_apiserver::objects::now_precise_timestamp();
    let mut event = events::normal(&object, reason, message, component, now);
    if warning {
        event["type"] = serde_json::json!("Warning");
    }
    if let Some(host) = host {
        event = events::from_host(event, host);
    }
    let Ok(event) = serde_json::from_value::<Event>(event) else {
        return;
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await
    {
        tracing::debug!(reason, error = %e, "event not recorded");
    }
}
