//! The scheduler: binds every pod without a node to the ready node that matches its
//! `nodeSelector` and runs the fewest pods (ties go to the first name), as upstream's
//! default spreading would for identical nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        && !node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

fn selects(pod: &Pod, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    pod.spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The node `pod` should run on, given every node and how many pods each runs.
pub fn choose_node<'a>(pod: &Pod, nodes: &'a [Node], load: &BTreeMap<String, usize>) -> Option<&'a str> {
    nodes
        .iter()
        .filter(|n| is_ready(n) && selects(pod, n))
        .filter_map(|n| n.metadata.name.as_deref())
        .min_by_key(|name| (load.get(*name).copied().unwrap_or(0), *name))
}

async fn schedule(client: &Client, pod: &Pod) -> Result<Option<String>, kube::Error> {
    let nodes: Vec<Node> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let mut load = BTreeMap::new();
    for p in &pods {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *load.entry(node).or_insert(0) += 1;
        }
    }
    let Some(node) = choose_node(pod, &nodes, &load) else {
        return Ok(None);
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    // a Binding, as upstream's scheduler binds: a pod's spec is otherwise immutable
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": { "name": name, "namespace": ns, "uid": pod.metadata.uid },
        "target": { "apiVersion": "v1", "kind": "Node", "name": node },
    });
    Api::<Pod>::namespaced(client.clone(), ns)
        .create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding)
        .await?;
    let message = format!("Successfully assigned {ns}/{name} to {node}");
    crate::lab::events::record(client, pod, "Scheduled", &message, "default-scheduler", None).await;
    Ok(Some(node.to_owned()))
}

fn unscheduled(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty)
}

/// Pods waiting for a retry: those no node fitted or whose binding failed.
type Waiting = BTreeMap<(String, String), Pod>;

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

async fn try_schedule(client: &Client, pod: Pod, waiting: &mut Waiting) {
    match schedule(client, &pod).await {
        Ok(Some(node)) => {
            tracing::info!(pod = ?pod.metadata.name, %node, "scheduled");
            waiting.remove(&key(&pod));
        }
        Ok(None) => {
            if waiting.insert(key(&pod), pod.clone()).is_none() {
                tracing::warn!(pod = ?pod.metadata.name, "no ready node fits");
            }
        }
        // gone, or bound by someone else meanwhile
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            waiting.remove(&key(&pod));
        }
        Err(e) => {
            tracing::warn!(pod = ?pod.metadata.name, error = %e, "cannot bind; retrying");
            waiting.insert(key(&pod), pod);
        }
    }
}

/// How often pods that could not be bound are tried again (upstream requeues them too).
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Binds pending pods until the stream of pods ends.
pub async fn run(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields("spec.nodeName=");
    let mut events = watcher(pods, cfg).boxed();
    let mut waiting = Waiting::new();
    let mut retry = tokio::time::interval(RETRY_EVERY);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = retry.tick() => {
                for pod in std::mem::take(&mut waiting).into_values() {
                    try_schedule(&client, pod, &mut waiting).await;
                }
                continue;
            }
        };
        let pod = match event {
            None => return,
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => pod,
            Some(Ok(watcher::Event::Delete(pod))) => {
                waiting.remove(&key(&pod));
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "scheduler watch error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if unscheduled(&pod) {
            try_schedule(&client, pod, &mut waiting).await;
        } else {
            waiting.remove(&key(&pod));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, zone: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { "zone": zone } },
            "status": { "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] },
        }))
        .unwrap()
    }

    fn pod(selector: Option<(&str, &str)>) -> Pod {
        let mut p: Pod =
            serde_json::from_value(json!({ "metadata": { "name": "p" }, "spec": { "containers": [] } })).unwrap();
        if let Some((k, v)) = selector {
            p.spec.as_mut().unwrap().node_selector = Some([(k.to_owned(), v.to_owned())].into());
        }
        p
    }

    #[test]
    fn spreads_over_ready_matching_nodes() {
        let nodes = [
            node("node-1", true, "a"),
            node("node-2", true, "b"),
            node("node-3", false, "a"),
        ];
        let mut load = BTreeMap::new();
        assert_eq!(choose_node(&pod(None), &nodes, &load), Some("node-1"));
        load.insert("node-1".to_owned(), 2);
        load.insert("node-2".to_owned(), 1);
        assert_eq!(choose_node(&pod(None), &nodes, &load), Some("node-2"));
        assert_eq!(choose_node(&pod(Some(("zone", "a"))), &nodes, &load), Some("node-1"));
        assert_eq!(choose_node(&pod(Some(("zone", "c"))), &nodes, &load), None);
    }
}
