//! The node agent (`svcnet proxy`): watches Services, EndpointSlices and its own Node on any
//! Kubernetes API server (ours or a real cluster's) with kube-rs reflectors, turns them into
//! the dataplane's proxy model, and hands every new model to the dataplane's sync loop, which
//! batches, applies and retries.

#![forbid(unsafe_code)]

pub mod config;
pub mod counters;
pub mod endpoints;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use svcnet_dataplane::backend::BackendKind;
use svcnet_dataplane::conntrack::Cleaner;
use svcnet_dataplane::model::{ProxyConfig, ProxyModel};
use svcnet_dataplane::runner::Schedule;
use svcnet_dataplane::sync_loop::{self, SyncStatus, Update};
use svcnet_dataplane::syncer::Syncer;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("API client: {0}")]
    Client(#[from] kube::Error),
    #[error("watch: {0}")]
    Watch(#[from] watcher::Error),
    #[error("the dataplane stopped")]
    DataplaneStopped,
    #[error("network namespace {0}: {1}")]
    Netns(String, std::io::Error),
}

/// `svcnet proxy` settings.
pub struct Options {
    /// `None`: in-cluster configuration (or `$KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    pub node_name: String,
    /// Program this network namespace (the dataplane thread enters it) instead of our own.
    pub netns: Option<String>,
    pub cluster_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
    pub config: ProxyConfig,
    pub min_sync_period_ms: u64,
    pub sync_period_ms: u64,
    /// Where `/healthz`, `/livez` and `/metrics` are served (`None`: not served).
    pub status_bind: Option<std::net::SocketAddr>,
    /// A second address serving the same (upstream's separate metrics address).
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// Conntrack timeouts to set in the programmed namespace (sysctl under net.netfilter,
    /// seconds).
    pub conntrack_timeouts: Vec<(&'static str, u64)>,
    /// How rules reach the kernel.
    pub backend: BackendKind,
}

impl Options {
    /// Takes every setting a KubeProxyConfiguration file gives (the file wins over flags, as
    /// upstream's `--config` does); the node name only if none was given on the command line.
    pub fn apply_file(&mut self, file: &config::FileConfig) {
        if let Some(k) = &file.kubeconfig {
            self.kubeconfig = Some(PathBuf::from(k));
        }
        if self.node_name.is_empty()
            && let Some(h) = &file.hostname_override
        {
            self.node_name = h.clone();
        }
        if let Some(c) = &file.cluster_cidrs {
            self.cluster_cidrs = c.clone();
        }
        if let Some(a) = &file.node_port_addresses {
            self.config.node_port_addresses = a.clone();
        }
        if let Some(m) = file.masquerade_all {
            self.config.masquerade_all = m;
        }
        if let Some(mark) = file.masquerade_mark {
            self.config.masquerade_bit = mark;
        }
        if let Some(d) = file.sync_period {
            self.sync_period_ms = d.as_millis() as u64;
        }
        if let Some(d) = file.min_sync_period {
            self.min_sync_period_ms = d.as_millis() as u64;
        }
        if file.healthz_bind.is_some() {
            self.status_bind = file.healthz_bind;
        }
        if file.metrics_bind.is_some() && file.metrics_bind != self.status_bind {
            self.metrics_bind = file.metrics_bind;
        }
        self.conntrack_timeouts = file.conntrack_timeouts.clone();
    }
}

/// Sets conntrack timeouts in the programmed namespace (they are per network namespace).
/// Sets conntrack timeouts (sysctls under `net.netfilter`) in the programmed namespace, by
/// writing `/proc/sys` from a thread inside it: net sysctls belong to the writer's namespace,
/// so no `sysctl` or `ip` program is needed.
fn apply_conntrack_timeouts(netns: &Option<String>, timeouts: &[(&'static str, u64)]) {
    if timeouts.is_empty() {
        return;
    }
    let write_all = || -> std::io::Result<Vec<(String, std::io::Result<()>)>> {
        Ok(timeouts
            .iter()
            .map(|(name, seconds)| {
                let setting = format!("net.netfilter.{name}={seconds}");
                let path = format!("/proc/sys/net/netfilter/{name}");
                (setting, std::fs::write(path, seconds.to_string()))
            })
            .collect())
    };
    let result = match netns {
        Some(ns) => svcnet_dataplane::netlink::socket::in_netns(&PathBuf::from("/var/run/netns").join(ns), write_all),
        None => write_all(),
    };
    match result {
        Ok(outcomes) => {
            for (setting, outcome) in outcomes {
                match outcome {
                    Ok(()) => tracing::info!(%setting, "conntrack timeout set"),
                    Err(error) => tracing::warn!(%setting, %error, "cannot set conntrack timeout"),
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot enter the namespace to set conntrack timeouts"),
    }
}

async fn client(kubeconfig: &Option<PathBuf>) -> Result<Client, AgentError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| AgentError::Kubeconfig(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| AgentError::Kubeconfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| AgentError::Kubeconfig(e.to_string()))?,
    };
    Ok(Client::try_from(config)?)
}

/// The node's addresses, from its status.
fn node_ips(nodes: &Store<Node>, name: &str) -> Vec<IpAddr> {
    nodes
        .state()
        .iter()
        .filter(|n| n.metadata.name.as_deref() == Some(name))
        .flat_map(|n| addresses_of(n))
        .collect()
}

fn addresses_of(node: &Node) -> Vec<IpAddr> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// The rules the agent would program for this node now, as an `nft -f` script: Services,
/// EndpointSlices and the Node listed once from the API server, compiled, rendered. Touches
/// no kernel state.
pub async fn dump(opts: &Options) -> Result<String, AgentError> {
    let client = client(&opts.kubeconfig).await?;
    let lp = kube::api::ListParams::default();
    let services = Api::<Service>::all(client.clone()).list(&lp).await?.items;
    let slices = Api::<EndpointSlice>::all(client.clone()).list(&lp).await?.items;
    let node = Api::<Node>::all(client).get_opt(&opts.node_name).await?;
    let model = ProxyModel::build(
        &opts.node_name,
        node.as_ref().map(addresses_of).unwrap_or_default(),
        opts.cluster_cidrs.clone(),
        opts.service_cidrs.clone(),
        opts.config.clone(),
        &services,
        &slices,
    );
    let compiled = svcnet_dataplane::incremental::CompiledModel::new(model);
    Ok(svcnet_dataplane::nft_text::replace_script(&compiled))
}

/// The trigger times of slices whose annotation changed since `seen` (which is updated).
fn new_change_times(slices: &[EndpointSlice], seen: &mut HashMap<String, String>) -> Vec<SystemTime> {
    let mut out = Vec::new();
    let mut present = HashSet::new();
    for slice in slices {
        let key = format!(
            "{}/{}",
            slice.metadata.namespace.as_deref().unwrap_or(""),
            slice.metadata.name.as_deref().unwrap_or("")
        );
        present.insert(key.clone());
        let Some(at) = slice
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_TRIGGER_TIME))
        else {
            continue;
        };
        if seen.get(&key) == Some(at) {
            continue;
        }
        if let Ok(t) = at.parse::<k8s_openapi::jiff::Timestamp>() {
            out.push(SystemTime::UNIX_EPOCH + Duration::from_nanos(t.as_nanosecond().max(0) as u64));
        }
        seen.insert(key, at.clone());
    }
    seen.retain(|k, _| present.contains(k));
    out
}

const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Runs until the watches fail or the dataplane stops; `status` reports syncs.
pub async fn run(opts: Options, status: Arc<Mutex<SyncStatus>>) -> Result<(), AgentError> {
    let client = client(&opts.kubeconfig).await?;
    let (services, services_w) = reflector::store::<Service>();
    // per-service counters, read from the kernel and named from the watched Services at scrape
    let traffic: endpoints::ExtraMetrics = {
        let (services, netns, backend_kind) = (services.clone(), opts.netns.clone(), opts.backend);
        Arc::new(move || {
            let counters = counters::read(netns.as_deref(), backend_kind);
            counters::render(&counters, &counters::index(&services.state()))
        })
    };
    for addr in opts.status_bind.into_iter().chain(opts.metrics_bind) {
        let listener_status = status.clone();
        let timeout = 2 * opts.sync_period_ms.div_ceil(1000);
        let traffic = traffic.clone();
        tokio::spawn(async move {
            if let Err(e) = endpoints::serve(addr, listener_status, timeout, Some(traffic)).await {
                tracing::error!(error = %e, %addr, "cannot serve health and metrics");
            }
        });
    }
    apply_conntrack_timeouts(&opts.netns, &opts.conntrack_timeouts);
    // The dataplane thread enters the programmed namespace itself (when one is given), so
    // its netlink sockets (or, with the text backend, the `nft` and `conntrack` it starts)
    // belong there: no `ip netns exec` per sync.
    let netns_file = match &opts.netns {
        Some(ns) => {
            Some(std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| AgentError::Netns(ns.clone(), e))?)
        }
        None => None,
    };
    let backend_kind = opts.backend;
    // the dataplane thread is in the programmed namespace: conntrack there is "the current one"
    let conntrack = match backend_kind {
        BackendKind::Netlink => Cleaner::Netlink(None),
        BackendKind::NftText => Cleaner::Tool(vec!["conntrack".to_owned()]),
    };
    let (tx, rx) = mpsc::channel();
    let schedule = Schedule::new(opts.min_sync_period_ms, opts.sync_period_ms);
    let loop_status = status.clone();
    let dataplane = std::thread::spawn(move || {
        if let Some(ns) = netns_file {
            use std::os::fd::AsFd;
            if let Err(e) =
                rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            {
                tracing::error!(error = %e, "cannot enter the network namespace to program");
                return None;
            }
        }
        // opened here, so a netlink socket belongs to the namespace just entered
        let backend = match backend_kind.open(None) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, backend = %backend_kind, "cannot open the dataplane backend");
                return None;
            }
        };
        Some(sync_loop::run(
            Syncer::new(backend),
            schedule,
            rx,
            loop_status,
            Some(conntrack),
        ))
    });

    let (slices, slices_w) = reflector::store::<EndpointSlice>();
    let (nodes, nodes_w) = reflector::store::<Node>();
    let cfg = watcher::Config::default();
    let svc_stream = reflector::reflector(services_w, watcher(Api::<Service>::all(client.clone()), cfg.clone()))
        .map_ok(|_| ())
        .boxed();
    let slice_stream = reflector::reflector(
        slices_w,
        watcher(Api::<EndpointSlice>::all(client.clone()), cfg.clone()),
    )
    .map_ok(|_| ())
    .boxed();
    let node_cfg = watcher::Config::default().fields(&format!("metadata.name={}", opts.node_name));
    let node_stream = reflector::reflector(nodes_w, watcher(Api::<Node>::all(client), node_cfg))
        .map_ok(|_| ())
        .boxed();
    let mut events = futures::stream::select_all([svc_stream, slice_stream, node_stream]);
    // the first model only once every initial list is in
    let ready = async {
        services.wait_until_ready().await.is_ok()
            && slices.wait_until_ready().await.is_ok()
            && nodes.wait_until_ready().await.is_ok()
    };
    tokio::pin!(ready);
    let mut is_ready = false;
    // each slice's last-change-trigger-time as last seen; the initial list only seeds it
    let mut trigger_times: HashMap<String, String> = HashMap::new();
    let mut seeded = false;
    loop {
        tokio::select! {
            ok = &mut ready, if !is_ready => { is_ready = ok; }
            event = events.next() => match event {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    // the watcher retries by itself on the next poll; report and go on
                    tracing::warn!(error = %e, "watch error");
                    continue;
                }
                None => return Ok(()),
            },
        }
        if !is_ready {
            continue;
        }
        let svcs: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
        let sls: Vec<EndpointSlice> = slices.state().iter().map(|s| (**s).clone()).collect();
        let model = ProxyModel::build(
            &opts.node_name,
            node_ips(&nodes, &opts.node_name),
            opts.cluster_cidrs.clone(),
            opts.service_cidrs.clone(),
            opts.config.clone(),
            &svcs,
            &sls,
        );
        let changed = new_change_times(&sls, &mut trigger_times);
        if tx.send(Update::Model(model)).is_err() || dataplane.is_finished() {
            return Err(AgentError::DataplaneStopped);
        }
        if seeded && !changed.is_empty() {
            let _ = tx.send(Update::ChangeTimes(changed));
        }
        seeded = true;
    }
}
