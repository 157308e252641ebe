//! The scheduler: binds every pod without a node to the ready node that matches its
//! `nodeSelector` and runs the fewest pods (ties go to the first name), as upstream's
//! default spreading would for identical nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
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
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "nodeName": node } })),
        )
        .await?;
    let message = format!("Successfully assigned {ns}/{name} to {node}");
    crate::lab::events::record(client, pod, "Scheduled", &message, "default-scheduler", None).await;
    Ok(Some(node.to_owned()))
}

/// Binds pending pods until the stream of pods ends.
pub async fn run(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields("spec.nodeName=");
    let mut events = watcher(pods, cfg).boxed();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler watch error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if pod.metadata.deletion_timestamp.is_some()
            || pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        {
            continue;
        }
        // a pod no node fits waits; it is retried when it changes (upstream requeues too)
        match schedule(&client, &pod).await {
            Ok(Some(node)) => tracing::info!(pod = ?pod.metadata.name, %node, "scheduled"),
            Ok(None) => tracing::warn!(pod = ?pod.metadata.name, "no ready node fits"),
            Err(e) => tracing::warn!(pod = ?pod.metadata.name, error = %e, "cannot bind"),
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
