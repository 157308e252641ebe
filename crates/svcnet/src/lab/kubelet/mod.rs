//! A small kubelet: registers its Node, watches the pods bound to it, and runs each one
//! (see [`worker`]) until it is deleted.
//!
//! - [`container`]: what process a container becomes; [`sandbox`]: the pod's network.
//! - [`probe`]: readiness probes; [`status`]: the pod status reported.
//! - [`address`]: follows the node's address, which `svcnet lab node --ip` may change.
//! - [`api`]: the kubelet API (`containerLogs`) for upstream's kube-apiserver.
//! - [`isolation`]: the mount, UTS and IPC namespaces and user every container runs in;
//!   [`dns_config`]: the resolv.conf and hosts file each pod gets.

pub mod address;
pub mod api;
pub mod console;
pub mod container;
pub mod dns_config;
pub mod environment;
pub mod isolation;
pub mod mounting;
pub mod probe;
pub mod rootfs;
pub mod sandbox;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

use super::plan::{LabPlan, NodePlan};
use sandbox::IpPool;

/// What every pod worker of one node shares.
pub struct NodeContext {
    pub plan: Arc<LabPlan>,
    pub node: NodePlan,
    pub client: Client,
    /// This binary, which runs agnhost's built-in servers.
    pub exe: String,
    pub log_dir: PathBuf,
    pub ips: Mutex<IpPool>,
    /// The node's address now (its plan's until `svcnet lab node --ip` changes it).
    pub address: RwLock<Ipv4Addr>,
    /// The lab's state directory (pods' sandbox files live under it).
    pub state: PathBuf,
    /// What pods with dnsPolicy ClusterFirst resolve with.
    pub dns: dns_config::ClusterDnsSettings,
    /// The API server (relayed into the cluster DNS pods' namespaces) and the credentials
    /// the built-in cluster DNS reads Services and EndpointSlices with.
    pub api: std::net::SocketAddr,
    pub dns_kubeconfig: PathBuf,
    /// The port of the lab's kubelet API ([`api`]), when the control plane is upstream's.
    pub kubelet_port: Option<u16>,
    /// The consoles of containers with stdin or a terminal, for `kubectl attach`.
    pub consoles: Arc<console::Consoles>,
}

impl NodeContext {
    pub fn ip(&self) -> Ipv4Addr {
        *self.address.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Upstream's default when a pod gives none.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

fn node_object(node: &NodePlan) -> Node {
    let mut labels = json!({
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
    });
    if let Some(zone) = &node.zone {
        labels[svcnet_core::endpoints::LABEL_ZONE] = json!(zone);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": node.name, "labels": labels },
        "spec": {
            "podCIDR": node.pod_cidr.to_string(),
            "podCIDRs": node.pod_cidrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
    }))
    .expect("node object")
}

/// What a node offers: the machine's CPUs (every lab node shares them), so topology-aware
/// routing's CPU-proportional hints see equal nodes.
fn node_resources() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    json!({ "cpu": cpus.to_string(), "pods": "110" })
}

fn node_status(node: &NodePlan, ip: Ipv4Addr, kubelet_port: Option<u16>) -> serde_json::Value {
    let now = svcnet_apiserver::objects::now();
    let mut addresses = vec![json!({ "type": "InternalIP", "address": ip.to_string() })];
    if let Some(v6) = &node.ipv6 {
        addresses.push(json!({ "type": "InternalIP", "address": v6.ip.to_string() }));
    }
    addresses.push(json!({ "type": "Hostname", "address": node.name }));
    if kubelet_port.is_some() {
        addresses.push(json!({ "type": api::ADDRESS_TYPE, "address": api::ADDRESS }));
    }
    let mut status = json!({ "status": {
        "capacity": node_resources(),
        "allocatable": node_resources(),
        "addresses": addresses,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "svcnet lab kubelet is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "nodeInfo": {
            "kubeletVersion": concat!("svcnet-lab-", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
            "containerRuntimeVersion": "svcnet-lab://processes", "kernelVersion": kernel_version(), "osImage": os_image(),
            "machineID": "", "systemUUID": "", "bootID": "",
        },
    }});
    if let Some(port) = kubelet_port {
        status["status"]["daemonEndpoints"] = json!({ "kubeletEndpoint": { "Port": port } });
        status["status"]["declaredFeatures"] = json!([api::WEBSOCKETS_FEATURE]);
    }
    status
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn os_image() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// Creates (or takes over) this node's Node object and marks it Ready.
pub async fn register(client: &Client, node: &NodePlan, ip: Ipv4Addr, kubelet_port: Option<u16>) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.create(&as_kubelet_post(), &node_object(node)).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("registering the node"),
    }
    nodes
        .patch_status(
            &node.name,
            &as_kubelet(),
            &Patch::Merge(&node_status(node, ip, kubelet_port)),
        )
        .await
        .context("reporting node status")?;
    Ok(())
}

/// The field manager the kubelet's writes are recorded as (upstream's kubelet's).
const FIELD_MANAGER: &str = "kubelet";

/// Patch parameters of the kubelet's writes.
pub(crate) fn as_kubelet() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn as_kubelet_post() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

/// Patches the Node's status: Ready, and the addresses it has now.
async fn report_status(ctx: &NodeContext) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let status = node_status(&ctx.node, ctx.ip(), ctx.kubelet_port);
    if let Err(e) = nodes
        .patch_status(&ctx.node.name, &as_kubelet(), &Patch::Merge(&status))
        .await
    {
        tracing::warn!(node = %ctx.node.name, error = %e, "node status update failed");
    }
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64));
    secs.min(DEFAULT_GRACE * 10)
}

struct Handle {
    stop: watch::Sender<Option<worker::Stop>>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the node's pods until the task is dropped; every pod is stopped first when `shutdown`
/// fires.
pub async fn run(ctx: Arc<NodeContext>, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    register(&ctx.client, &ctx.node, ctx.ip(), ctx.kubelet_port).await?;
    let mut address = address::follow(ctx.node.netns.clone(), ctx.ip());
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node.name));
    let mut events = watcher(pods, cfg).boxed();
    let mut running: HashMap<String, Handle> = HashMap::new();
    let mut relisted: Option<HashSet<String>> = None;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(10));
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => break,
            _ = heartbeat.tick() => {
                report_status(&ctx).await;
                continue;
            }
            Ok(()) = address.changed() => {
                let ip = *address.borrow_and_update();
                tracing::info!(node = %ctx.node.name, old = %ctx.ip(), new = %ip, "the node's address changed");
                *ctx.address.write().unwrap_or_else(|e| e.into_inner()) = ip;
                // at once, as upstream's kubelet reports a changed address on its next
                // status update, so proxies follow within a second
                report_status(&ctx).await;
                continue;
            }
            event = events.next() => event,
        };
        running.retain(|_, h| !h.task.is_finished());
        match event {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(node = %ctx.node.name, error = %e, "pod watch error");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(Ok(watcher::Event::Init)) => relisted = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(seen) = relisted.take() {
                    for (uid, h) in running.iter().filter(|(uid, _)| !seen.contains(*uid)) {
                        tracing::info!(%uid, "pod gone while not watching");
                        let _ = h.stop.send(Some(worker::Stop {
                            grace: DEFAULT_GRACE,
                            remove: false,
                        }));
                    }
                }
            }
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(seen) = &mut relisted {
                    seen.insert(uid.clone());
                }
                if pod.metadata.deletion_timestamp.is_some() {
                    match running.get(&uid) {
                        Some(h) => {
                            let _ = h.stop.send(Some(worker::Stop {
                                grace: grace_of(&pod),
                                remove: true,
                            }));
                        }
                        // nothing of it runs here: it can go at once
                        None => {
                            let api = Api::namespaced(
                                ctx.client.clone(),
                                pod.metadata.namespace.as_deref().unwrap_or("default"),
                            );
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            tokio::spawn(async move { worker::remove(&api, &name, &uid).await });
                        }
                    }
                    continue;
                }
                let finished = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|p| p == "Succeeded" || p == "Failed");
                if running.contains_key(&uid) || finished {
                    continue;
                }
                let (stop, stop_rx) = watch::channel(None);
                let task = tokio::spawn(worker::run(ctx.clone(), pod, stop_rx));
                running.insert(uid, Handle { stop, task });
            }
            Some(Ok(watcher::Event::Delete(pod))) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(h) = running.get(&uid) {
                    let _ = h.stop.send(Some(worker::Stop {
                        grace: grace_of(&pod),
                        remove: false,
                    }));
                }
            }
        }
    }
    // shutting down: every pod stops at once
    for h in running.values() {
        let _ = h.stop.send(Some(worker::Stop {
            grace: Duration::from_secs(2),
            remove: false,
        }));
    }
    for (_, h) in running {
        let _ = h.task.await;
    }
    Ok(())
}
