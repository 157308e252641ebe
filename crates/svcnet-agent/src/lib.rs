//! The node agent (`svcnet proxy`): watches Services, EndpointSlices and its own Node on any
//! Kubernetes API server (ours or a real cluster's) with kube-rs watchers (backing off while
//! the server is away), feeds every event to the [`tracker`], and hands the dataplane's sync
//! loop the whole model once, then only the service ports that changed; the loop batches,
//! applies and retries. Every sync period a model rebuilt from the tracker's caches checks the
//! incremental state, a part of the Services at a time, between event batches.

#![forbid(unsafe_code)]

pub mod config;
pub mod counters;
pub mod endpoints;
pub mod tracker;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use svcnet_dataplane::backend::BackendKind;
use svcnet_dataplane::conntrack::Cleaner;
use svcnet_dataplane::model::{DigestPart, ProxyConfig, ProxyModel};
use svcnet_dataplane::runner::Schedule;
use svcnet_dataplane::sync_loop::{self, SyncStatus, Update};
use svcnet_dataplane::syncer::Syncer;
use thiserror::Error;
use tracker::{ChangeTracker, Watched};

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
        Some(ns) => svcnet_netlink::socket::in_netns(&PathBuf::from("/var/run/netns").join(ns), write_all),
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
        node.as_ref().map(tracker::node_addresses).unwrap_or_default(),
        opts.cluster_cidrs.clone(),
        opts.service_cidrs.clone(),
        opts.config.clone(),
        &services,
        &slices,
    );
    let compiled = svcnet_dataplane::incremental::CompiledModel::new(model);
    Ok(svcnet_dataplane::nft_text::replace_script(&compiled))
}

/// One event of any of the agent's watches.
/// Boxed: the objects differ a lot in size, and bursts are held in a batch.
enum WatchEvent {
    Service(Box<watcher::Event<Service>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
    Node(Box<watcher::Event<Node>>),
}

/// Feeds one watch event to the tracker.
fn track(tracker: &mut ChangeTracker, event: WatchEvent) {
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
    let key = |meta: &kube::api::ObjectMeta| {
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    };
    match event {
        WatchEvent::Service(event) => match *event {
            Init => tracker.begin_relist(Watched::Services),
            InitDone => tracker.end_relist(Watched::Services),
            Apply(s) | InitApply(s) => tracker.apply_service(&s),
            Delete(s) => tracker.delete_service(&key(&s.metadata)),
        },
        WatchEvent::Slice(event) => match *event {
            Init => tracker.begin_relist(Watched::EndpointSlices),
            InitDone => tracker.end_relist(Watched::EndpointSlices),
            Apply(s) | InitApply(s) => tracker.apply_slice(&s),
            Delete(s) => tracker.delete_slice(&key(&s.metadata)),
        },
        WatchEvent::Node(event) => match *event {
            Init => tracker.begin_relist(Watched::Node),
            InitDone => tracker.end_relist(Watched::Node),
            InitApply(n) => tracker.node_listed(&n),
            Apply(n) => tracker.set_node(Some(&n)),
            Delete(_) => tracker.set_node(None),
        },
    }
}

/// Whether each watch is connected, so a lost connection and its recovery are logged once
/// each, however often the backed-off retries fail in between.
#[derive(Default)]
struct Connectivity {
    lost: std::collections::HashSet<&'static str>,
}

impl Connectivity {
    fn failed(&mut self, watch: &'static str, error: &watcher::Error) {
        if self.lost.insert(watch) {
            tracing::warn!(watch, %error, "lost the watch; retrying with back-off (rules stay programmed)");
        } else {
            tracing::debug!(watch, %error, "watch retry failed");
        }
    }

    fn succeeded(&mut self, watch: &'static str) {
        if self.lost.remove(watch) {
            tracing::info!(watch, "watch recovered");
        }
    }
}

/// Most events handled before the changes they made are sent on, so a long burst still
/// reaches the dataplane in bounded steps.
const MAX_EVENTS_PER_BATCH: usize = 10_000;

/// The periodic check digests about this many Services at a time (about 20 ms at 50,000
/// Services on this project's machines), so events never wait long behind it.
const SERVICES_PER_RESYNC_PART: usize = 5_000;

/// Runs until the watches fail or the dataplane stops; `status` reports syncs.
pub async fn run(opts: Options, status: Arc<Mutex<SyncStatus>>) -> Result<(), AgentError> {
    let client = client(&opts.kubeconfig).await?;
    let tracker = Arc::new(Mutex::new(ChangeTracker::new(
        &opts.node_name,
        opts.cluster_cidrs.clone(),
        opts.service_cidrs.clone(),
        opts.config.clone(),
    )));
    // per-service counters, read from the kernel and named from the tracked Services at scrape
    let traffic: endpoints::ExtraMetrics = {
        let (tracker, netns, backend_kind) = (tracker.clone(), opts.netns.clone(), opts.backend);
        Arc::new(move || {
            let counters = counters::read(netns.as_deref(), backend_kind);
            let index = counters::index(tracker.lock().expect("tracker lock").service_ports());
            Box::new(counters::Rendering::new(counters, index))
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

    let cfg = watcher::Config::default();
    let node_cfg = watcher::Config::default().fields(&format!("metadata.name={}", opts.node_name));
    let tagged = |name: &'static str| move |r: Result<WatchEvent, watcher::Error>| (name, r);
    let streams = [
        watcher(Api::<Service>::all(client.clone()), cfg.clone())
            .default_backoff()
            .map_ok(|e| WatchEvent::Service(Box::new(e)))
            .map(tagged("services"))
            .boxed(),
        watcher(Api::<EndpointSlice>::all(client.clone()), cfg)
            .default_backoff()
            .map_ok(|e| WatchEvent::Slice(Box::new(e)))
            .map(tagged("endpointslices"))
            .boxed(),
        watcher(Api::<Node>::all(client), node_cfg)
            .default_backoff()
            .map_ok(|e| WatchEvent::Node(Box::new(e)))
            .map(tagged("node"))
            .boxed(),
    ];
    let mut events = futures::stream::select_all(streams);
    let mut connectivity = Connectivity::default();
    let mut first_sync_sent = false;
    let resync_period = Duration::from_millis(opts.sync_period_ms.max(1000));
    let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + resync_period, resync_period);
    // the next part of a periodic check in progress
    let mut resync_next: Option<DigestPart> = None;
    loop {
        let first = tokio::select! {
            event = events.next() => match event {
                Some(e) => e,
                None => return Ok(()),
            },
            _ = resync.tick(), if first_sync_sent && resync_next.is_none() => {
                // the periodic check: digests of the model rebuilt from the caches against the
                // incremental state, a part at a time; after a difference, the whole model
                // repairs it
                let wanted = std::mem::take(&mut status.lock().expect("status lock").model_wanted);
                let mut t = tracker.lock().expect("tracker lock");
                if wanted {
                    tracing::info!("sending the whole model after a resync check found a difference");
                    if tx.send(Update::Model(t.full_model())).is_err() || dataplane.is_finished() {
                        return Err(AgentError::DataplaneStopped);
                    }
                } else {
                    let count = (t.service_count() / SERVICES_PER_RESYNC_PART).max(1) as u32;
                    resync_next = Some(DigestPart { index: 0, count });
                }
                continue;
            }
            // one part per turn, taking turns with the events that are waiting
            _ = std::future::ready(()), if resync_next.is_some() => {
                let part = resync_next.take().expect("checked by the branch condition");
                let digest = tracker.lock().expect("tracker lock").digest_part(part);
                if tx.send(Update::Resync(digest)).is_err() || dataplane.is_finished() {
                    return Err(AgentError::DataplaneStopped);
                }
                resync_next = (part.index + 1 < part.count).then_some(DigestPart {
                    index: part.index + 1,
                    ..part
                });
                continue;
            }
        };
        // a burst: everything already waiting is taken in before the changes are computed
        let mut batch = vec![first];
        while batch.len() < MAX_EVENTS_PER_BATCH {
            match events.next().now_or_never() {
                Some(Some(e)) => batch.push(e),
                Some(None) | None => break,
            }
        }
        let update = {
            let mut t = tracker.lock().expect("tracker lock");
            for (watch, event) in batch {
                match event {
                    Ok(event) => {
                        connectivity.succeeded(watch);
                        track(&mut t, event);
                    }
                    Err(error) => connectivity.failed(watch, &error),
                }
            }
            if !t.is_listed() {
                continue;
            }
            if !first_sync_sent {
                first_sync_sent = true;
                tracing::info!(
                    services = t.service_count(),
                    "initial lists in; programming the whole model"
                );
                // the first lists' trigger times were programmed before this agent started
                t.forget_change_times();
                Some((Update::Model(t.full_model()), Vec::new()))
            } else {
                let changes = t.take_changes();
                if changes.node_changed {
                    tracing::info!("the node's addresses or zone changed; rebuilding the model");
                    Some((Update::Model(t.full_model()), changes.change_times))
                } else if changes.ports.is_empty() && changes.change_times.is_empty() {
                    None
                } else {
                    Some((Update::Ports(changes.ports), changes.change_times))
                }
            }
        };
        let Some((update, change_times)) = update else {
            continue;
        };
        if tx.send(update).is_err() || dataplane.is_finished() {
            return Err(AgentError::DataplaneStopped);
        }
        if !change_times.is_empty() {
            let _ = tx.send(Update::ChangeTimes(change_times));
        }
    }
}
