//! `svcnet bench programming`: node proxies end to end at cluster scale, `svcnet proxy` and
//! (`--proxies svcnet,kube-proxy`) upstream's kube-proxy side by side in one run, on svcnet's
//! or upstream's control plane. A lab of `nodes` nodes, each with its own proxy programming
//! its own namespace, is loaded with
//! `services` Services of `endpoints_per_service` endpoints each (Services without selectors
//! and EndpointSlices the benchmark writes; the endpoints' addresses are not probed, so no
//! pods are needed for them). Then:
//!
//! - **convergence**: one more Service, whose only endpoint is a real backend pod, is written
//!   last; the time from that write until a TCP connection through its ClusterIP reaches the
//!   pod from every node (the agents apply changes in watch order, so the rest is programmed
//!   too);
//! - **programming latency**: one EndpointSlice write at a time gives a Service that had no
//!   endpoint the backend; the time from the write until a connection through its ClusterIP
//!   succeeds, on every node;
//! - **cost**: each agent's peak RSS and CPU seconds, and the lab daemon's (the API server,
//!   kubelets and scheduler share that process);
//! - **restart**: the first node's agent killed (SIGKILL) with everything loaded; how long its
//!   successor takes from its lists' arrival to its first full sync.
//!
//! Everything between is real: the durable API write, the watch, the agents' change
//! tracking, their sync loops and the kernel.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::percentile_ms;
use super::process::{cpu_seconds, memory_mib};

use super::lab::{BenchLab, LabSetup, flag_value};
use crate::lab::control_plane::ControlPlane;
use crate::lab::daemon::client_for;
use crate::lab::plan::state_dir;
use crate::lab::supervisor::NodeProxy;

pub struct Options {
    pub services: u32,
    pub endpoints_per_service: u32,
    pub nodes: usize,
    pub samples: u32,
    pub control_plane: ControlPlane,
    /// Measured one after the other, each on a lab of its own, in this order.
    pub proxies: Vec<NodeProxy>,
    /// Upstream's binaries (for the upstream control plane and kube-proxy).
    pub upstream_bin: std::path::PathBuf,
}

/// Concurrent writes while loading.
pub(super) const LOAD_CONCURRENCY: usize = 16;
/// How long the last Service may take to answer everywhere before the run fails.
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(300);
pub(super) fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": { "name": name },
        "spec": { "ports": [{ "port": 80, "targetPort": 8080 }] },
    }))
    .expect("service")
}

/// An EndpointSlice for Service `name` with these endpoint addresses.
pub(super) fn slice(name: &str, endpoints: &[String]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|ip| json!({ "addresses": [ip], "conditions": { "ready": true } }))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": { "name": name, "labels": {
            "kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "svcnet-bench" },
            // as upstream's controller stamps it: the agent's latency histogram starts here
            "annotations": { "endpoints.kubernetes.io/last-change-trigger-time": svcnet_apiserver::objects::now_precise() } },
        "addressType": "IPv4",
        "ports": [{ "name": "", "port": 8080, "protocol": "TCP" }],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

/// `count` addresses for background Service `i` in 100.64.0.0/10, outside every range the
/// lab uses: programmed, never probed.
pub(super) fn unprobed_endpoints(i: u32, count: u32) -> Vec<String> {
    (0..count)
        .map(|j| {
            let n = i * count + j;
            format!("100.{}.{}.{}", 64 + (n >> 16) % 64, (n >> 8) & 255, n & 255)
        })
        .collect()
}

/// Polls TCP connections to `target` from inside `netns` until one succeeds; returns when.
fn connect_until(netns: &str, target: SocketAddr, timeout: Duration) -> std::thread::JoinHandle<Option<Instant>> {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        crate::netns::enter(&netns).ok()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            // a short timeout: before the endpoint is programmed the connection is rejected,
            // but the kernel rate-limits those ICMP rejects, and a dropped SYN must not cost
            // a long wait (the endpoint is on this node and answers within a millisecond)
            if TcpStream::connect_timeout(&target, Duration::from_millis(10)).is_ok() {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    })
}

async fn cluster_ip(client: &Client, name: &str) -> Result<SocketAddr> {
    let svc = Api::<Service>::namespaced(client.clone(), "default").get(name).await?;
    let ip = svc.spec.and_then(|s| s.cluster_ip).context("no ClusterIP")?;
    Ok(SocketAddr::new(ip.parse()?, 80))
}

/// Connections to `target` from every node until each succeeds; the time each took from
/// `since` (None where none succeeded within `timeout`).
async fn reach_from_all(
    netns: &[String],
    target: SocketAddr,
    timeout: Duration,
    since: Instant,
) -> Vec<Option<Duration>> {
    let watchers: Vec<_> = netns.iter().map(|ns| connect_until(ns, target, timeout)).collect();
    let mut out = Vec::new();
    for w in watchers {
        let at = tokio::task::spawn_blocking(move || w.join().ok().flatten())
            .await
            .ok()
            .flatten();
        out.push(at.map(|t| t.saturating_duration_since(since)));
    }
    out
}

/// Peak RSS (MiB) and CPU seconds of the process in `pid_file`.
fn process_figures(pid_file: &Path) -> Value {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return Value::Null;
    };
    let (peak, rss) = memory_mib(pid);
    json!({ "pid": pid, "peak_rss_mib": peak, "rss_mib": rss, "cpu_seconds": cpu_seconds(pid) })
}

/// Peak RSS and CPU of each upstream control-plane process, when the lab runs them.
fn upstream_figures(state: &Path) -> Value {
    let dir = crate::lab::control_plane::upstream::pid_dir(state);
    let figures: serde_json::Map<String, Value> = crate::lab::control_plane::upstream::BINARIES
        .iter()
        .map(|name| ((*name).to_owned(), process_figures(&dir.join(format!("{name}.pid")))))
        .filter(|(_, v)| !v.is_null())
        .collect();
    if figures.is_empty() {
        Value::Null
    } else {
        Value::Object(figures)
    }
}

fn latency_summary(samples: &[Duration]) -> Value {
    json!({
        "p50": percentile_ms(samples, 50.0),
        "p90": percentile_ms(samples, 90.0),
        "p99": percentile_ms(samples, 99.0),
        "max": percentile_ms(samples, 100.0),
    })
}

/// The log line a proxy writes when its first full sync is done, and what it reports there.
fn first_sync_line(proxy: NodeProxy) -> &'static str {
    match proxy {
        NodeProxy::Svcnet => "first sync programmed the whole model",
        NodeProxy::KubeProxy => "\"SyncProxyRules complete\" ipFamily=\"IPv4\"",
    }
}

/// A number in `line` after `name=` (quotes and a unit suffix allowed: `elapsed="41.4ms"`).
fn field_after(line: &str, name: &str) -> Option<f64> {
    let rest = line.split(&format!("{name}=")).nth(1)?.trim_start_matches('"');
    let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let value: f64 = number.parse().ok()?;
    let unit = &rest[number.len()..];
    Some(if unit.starts_with("ms") {
        value / 1000.0
    } else if unit.starts_with("µs") {
        value / 1e6
    } else if unit.starts_with('s') {
        value
    } else {
        // svcnet's `initial_sync_ms=1234`
        value / 1000.0
    })
}

/// The periodic checks `svcnet proxy` made and how many found a difference, from its
/// `/metrics` (its address is the last one its log names).
fn resync_checks(log: &str) -> Value {
    let scrape = || -> Option<String> {
        let line = log.lines().rev().find(|l| l.contains("serving health and metrics"))?;
        let addr: std::net::SocketAddr = line.split("addr=").nth(1)?.split_whitespace().next()?.parse().ok()?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        use std::io::{Read, Write};
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    };
    let Some(text) = scrape() else {
        return Value::Null;
    };
    let counter = |name: &str| -> Option<u64> { text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()) };
    json!({
        "checks": counter("svcnet_proxy_resync_checks_total "),
        "mismatches": counter("svcnet_proxy_resync_mismatches_total "),
    })
}

/// Kills (SIGKILL) `node`'s proxy with everything loaded; its supervisor starts a new one a
/// second later. Reports how long from the kill until the new proxy logged its first full
/// sync, and the figures that line gives (svcnet: lists' arrival to programmed; kube-proxy:
/// the sync itself).
async fn restart_first_agent(state: &Path, node: &str, proxy: NodeProxy) -> Result<Value> {
    let pid_file = crate::lab::supervisor::pid_dir(state).join(format!("{node}.pid"));
    let pid: i32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    let log = state.join(format!("proxy-{node}.log"));
    let seen = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
    let killed = Instant::now();
    let pid = rustix::process::Pid::from_raw(pid).context("agent pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
    let deadline = killed + Duration::from_secs(300);
    loop {
        let text = std::fs::read(&log).unwrap_or_default();
        let new = String::from_utf8_lossy(text.get(seen..).unwrap_or_default()).into_owned();
        if let Some(line) = new.lines().find(|l| l.contains(first_sync_line(proxy))) {
            return Ok(json!({
                "node": node,
                "lists_to_first_sync_seconds": field_after(line, "initial_sync_ms"),
                "first_sync_seconds": field_after(line, "elapsed"),
                "kill_to_first_sync_seconds": (killed.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                "supervisor_restart_delay_seconds": 1,
            }));
        }
        if Instant::now() > deadline {
            bail!("the restarted proxy on {node} did not program within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each proxy measured on a lab of its own; with more than one, their ratios to the first.
pub fn run(opts: &Options) -> Result<Value> {
    let mut runs: Vec<(String, Value)> = Vec::new();
    for proxy in &opts.proxies {
        runs.push((flag_value(*proxy), run_one(opts, *proxy)?));
    }
    super::side_by_side(
        "node proxies side by side, each on a lab of its own: API writes to traffic on every node",
        runs,
        &[
            ("convergence", "/convergence_seconds"),
            ("latency_p50", "/latency_ms/p50"),
            ("latency_p99", "/latency_ms/p99"),
            ("first_node_peak_rss", "/per_node/0/agent/peak_rss_mib"),
            ("first_node_cpu_seconds", "/per_node/0/agent/cpu_seconds"),
            ("restart_kill_to_first_sync", "/restart/kill_to_first_sync_seconds"),
        ],
    )
}

fn run_one(opts: &Options, proxy: NodeProxy) -> Result<Value> {
    let (lab, ready) = BenchLab::up(&LabSetup {
        nodes: opts.nodes,
        control_plane: opts.control_plane,
        proxy,
        upstream_bin: opts.upstream_bin.clone(),
    })?;
    let netns: Vec<String> = ready.plan.nodes.iter().map(|n| n.netns.clone()).collect();
    let node_names: Vec<String> = ready.plan.nodes.iter().map(|n| n.name.clone()).collect();
    let state = state_dir(&lab.name);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = client_for(&ready.kubeconfig).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let backend: Pod = serde_json::from_value(json!({
            "metadata": { "name": "backend" },
            "spec": { "containers": [{ "name": "netexec", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                                       "args": ["netexec", "--http-port=8080"] }] },
        }))?;
        pods.create(&PostParams::default(), &backend).await?;
        let backend_ip = loop {
            let p = pods.get("backend").await?;
            if let Some(ip) = p.status.and_then(|s| s.pod_ip) {
                break ip;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        let load_started = Instant::now();
        // the probes (no endpoint yet) and the background services
        let names: Vec<(String, Vec<String>)> = (0..opts.samples)
            .map(|i| (format!("probe-{i}"), Vec::new()))
            .chain((0..opts.services).map(|i| (format!("bg-{i}"), unprobed_endpoints(i, opts.endpoints_per_service))))
            .collect();
        futures::stream::iter(names.iter().map(|(name, endpoints)| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                services.create(&PostParams::default(), &service(name)).await?;
                slices.create(&PostParams::default(), &slice(name, endpoints)).await?;
                anyhow::Ok(())
            }
        }))
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
        let load_secs = load_started.elapsed().as_secs_f64();
        // the last write: a Service whose endpoint answers
        services.create(&PostParams::default(), &service("last")).await?;
        let last = cluster_ip(&client, "last").await?;
        slices
            .create(
                &PostParams::default(),
                &slice("last", std::slice::from_ref(&backend_ip)),
            )
            .await?;
        let last_write = Instant::now();
        let converged = reach_from_all(&netns, last, CONVERGENCE_LIMIT, last_write).await;
        let Some(convergence) = converged.iter().copied().collect::<Option<Vec<Duration>>>() else {
            let slow: Vec<&String> = node_names
                .iter()
                .zip(&converged)
                .filter(|(_, c)| c.is_none())
                .map(|(n, _)| n)
                .collect();
            bail!("the loaded services were not programmed within {CONVERGENCE_LIMIT:?} on {slow:?}");
        };
        let convergence = convergence.into_iter().max().unwrap_or_default();
        // samples after convergence, each a single change on a quiet cluster
        let mut per_node: Vec<Vec<Duration>> = vec![Vec::new(); netns.len()];
        for i in 0..opts.samples {
            let name = format!("probe-{i}");
            let target = cluster_ip(&client, &name).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let watchers: Vec<_> = netns
                .iter()
                .map(|ns| connect_until(ns, target, Duration::from_secs(10)))
                .collect();
            let written = Instant::now();
            slices
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&slice(&name, std::slice::from_ref(&backend_ip))),
                )
                .await?;
            for (node, w) in watchers.into_iter().enumerate() {
                match tokio::task::spawn_blocking(move || w.join().ok().flatten()).await? {
                    Some(at) => per_node[node].push(at.saturating_duration_since(written)),
                    None => bail!(
                        "{name}: no traffic reached the endpoint from {} within 10 s",
                        node_names[node]
                    ),
                }
            }
        }
        let nodes: Vec<Value> = node_names
            .iter()
            .zip(&per_node)
            .map(|(node, samples)| {
                let log = std::fs::read_to_string(state.join(format!("proxy-{node}.log"))).unwrap_or_default();
                json!({
                    "node": node,
                    // a watch that fell behind (410 Expired) or broke is logged once as lost
                    // (svcnet's log; kube-proxy's informers relist without saying so)
                    "watches_lost": (proxy == NodeProxy::Svcnet).then(|| log.matches("lost the watch").count()),
                    // the periodic checks of the incremental state against a rebuild
                    "resync": if proxy == NodeProxy::Svcnet { resync_checks(&log) } else { Value::Null },
                    "latency_ms": latency_summary(samples),
                    "agent": process_figures(&crate::lab::supervisor::pid_dir(&state).join(format!("{node}.pid"))),
                })
            })
            .collect();
        // after the agents' figures are taken: the restarted agent is a new process
        let restart = restart_first_agent(&state, &node_names[0], proxy).await?;
        let slowest_p99 = per_node.iter().map(|s| percentile_ms(s, 99.0)).fold(0.0, f64::max);
        let all: Vec<Duration> = per_node.iter().flatten().copied().collect();
        Ok(json!({
            "benchmark": "node agents end to end: API writes to traffic through the ClusterIP on every node",
            "services_loaded": opts.services,
            "endpoints_per_service": opts.endpoints_per_service,
            "nodes": opts.nodes,
            "samples": opts.samples,
            "load_seconds": (load_secs * 1000.0).round() / 1000.0,
            "convergence_seconds": (convergence.as_secs_f64() * 1000.0).round() / 1000.0,
            "latency_ms": latency_summary(&all),
            "slowest_node_p99_ms": slowest_p99,
            "per_node": nodes,
            "lab_daemon_kubelets_and_svcnet_api_server": process_figures(&state.join("pid")),
            "restart": restart,
            "proxy": proxy,
            "control_plane": opts.control_plane,
            "min_sync_period_ms": crate::lab::supervisor::MIN_SYNC_PERIOD_MS,
            "upstream_control_plane_processes": upstream_figures(&state),
        }))
    })
}
