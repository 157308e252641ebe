//! `svcnet bench apiserver`: the API server under load, svcnet's and (`--servers
//! svcnet,upstream`) upstream's kube-apiserver with etcd side by side in one run. A fresh
//! server (its own data directory, a free loopback port) gets `services` Services and, for them,
//! EndpointSlices holding `endpoints` endpoints in all, written by 16 concurrent clients.
//! Printed: create rates, watch delivery latency (create request sent → event received by
//! a watch on all Services), `kubectl get services -A` wall time with everything loaded, and
//! the server's resident memory.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use clap::ValueEnum;

use super::percentile_ms;
use crate::lab::daemon::client_for;

pub struct Options {
    pub services: u32,
    pub endpoints: u32,
    /// Watches on all Services open during the load (as many node agents would have).
    pub watchers: u32,
    /// Measured one after the other, in this order.
    pub servers: Vec<ServerKind>,
    /// Upstream's binaries.
    pub upstream_bin: PathBuf,
}

/// Which API server is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// `svcnet apiserver` (its store embedded).
    Svcnet,
    /// kube-apiserver with etcd, built by `cargo xtask upstream`.
    Upstream,
}

/// The service range both servers get (large enough for 100k Services).
const SERVICE_CIDR: &str = "10.96.0.0/12";

const CONCURRENCY: usize = 16;

/// A server under test, stopped on drop (also on failure).
struct Server {
    kubeconfig: PathBuf,
    /// Its processes whose memory is reported, by name.
    processes: Vec<(&'static str, u32)>,
    _running: Running,
    _dir: tempfile::TempDir,
}

enum Running {
    Svcnet(Child),
    /// Held so that its processes live as long as the server (they are killed as they drop).
    Upstream {
        _processes: crate::lab::control_plane::upstream::Processes,
    },
}

impl Drop for Running {
    fn drop(&mut self) {
        // upstream's children are killed as they drop
        if let Running::Svcnet(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_svcnet() -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["apiserver", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--service-cluster-ip-range", SERVICE_CIDR])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("server output")?).lines();
    let _serving = lines.next().context("server did not start")??;
    let kubeconfig = lines.next().context("server did not start")??;
    let kubeconfig = PathBuf::from(kubeconfig.strip_prefix("kubeconfig: ").context("kubeconfig line")?);
    Ok(Server {
        kubeconfig,
        processes: vec![("svcnet-apiserver", child.id())],
        _running: Running::Svcnet(child),
        _dir: dir,
    })
}

/// etcd and kube-apiserver (call inside a runtime: their processes are tokio's).
async fn start_upstream(bin: &std::path::Path) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let server = crate::lab::control_plane::upstream::start_api_server(
        bin,
        &dir.path().join("upstream"),
        dir.path().join("pids"),
        "127.0.0.1:0".parse()?,
        SERVICE_CIDR,
        None,
    )
    .await?;
    Ok(Server {
        kubeconfig: server.kubeconfig,
        processes: server.processes.pids(),
        _running: Running::Upstream {
            _processes: server.processes,
        },
        _dir: dir,
    })
}

fn kubectl() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/kubectl"));
    path.exists().then_some(path)
}

fn service(i: u32) -> Service {
    serde_json::from_value(json!({
        "metadata": { "name": format!("s{i}"), "labels": { "bench": "svcnet" } },
        "spec": { "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }] },
    }))
    .expect("service")
}

fn slice(i: u32, endpoints: u32, offset: u32) -> EndpointSlice {
    let eps: Vec<Value> = (0..endpoints)
        .map(|j| {
            let n = offset + j;
            json!({ "addresses": [format!("10.{}.{}.{}", 128 + n / 65536 % 64, n / 256 % 256, n % 256)],
                    "conditions": { "ready": true } })
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": { "name": format!("s{i}-bench"), "labels": {
            "kubernetes.io/service-name": format!("s{i}"), "endpointslice.kubernetes.io/managed-by": "svcnet-bench" } },
        "addressType": "IPv4",
        "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
        "endpoints": eps,
    }))
    .expect("slice")
}

/// Each server measured in turn; with more than one, their ratios to the first.
pub fn run(opts: &Options) -> Result<Value> {
    if opts.services == 0 {
        bail!("--services must be at least 1");
    }
    let mut runs: Vec<(String, Value)> = Vec::new();
    for kind in &opts.servers {
        let name = kind
            .to_possible_value()
            .map(|p| p.get_name().to_owned())
            .unwrap_or_default();
        runs.push((name, run_one(opts, *kind)?));
    }
    super::side_by_side(
        "API servers side by side: writes, watch delivery, kubectl get, memory",
        runs,
        &[
            ("create_services_per_s", "/create_services_per_s"),
            ("create_endpointslices_per_s", "/create_endpointslices_per_s"),
            ("watch_delivery_p99", "/watch_delivery_ms/p99"),
            ("kubectl_get_p50", "/kubectl_get_services_all/p50_ms"),
            ("peak_memory", "/server_memory_mib/peak"),
        ],
    )
}

fn run_one(opts: &Options, kind: ServerKind) -> Result<Value> {
    let runtime = tokio::runtime::Runtime::new()?;
    let server = match kind {
        ServerKind::Svcnet => start_svcnet()?,
        ServerKind::Upstream => runtime.block_on(start_upstream(&opts.upstream_bin))?,
    };
    let (services_rate, slices_rate, watch_latency, delivered_before_ack, watches_lost) = runtime.block_on(async {
        let client: Client = client_for(&server.kubeconfig).await?;
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        // watches on all Services record when each creation reaches each of them; a watch
        // that ends early or errs (410 Expired: it fell behind) is counted as lost
        let watchers = opts.watchers.max(1) as usize;
        let seen: Vec<Arc<Mutex<HashMap<String, Instant>>>> = (0..watchers).map(|_| Arc::default()).collect();
        let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for watch_seen in &seen {
            let watch_seen = watch_seen.clone();
            let lost = lost.clone();
            let mut stream = services.watch(&WatchParams::default().timeout(290), "0").await?.boxed();
            tasks.push(tokio::spawn(async move {
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(s)) => {
                            let name = s.metadata.name.unwrap_or_default();
                            watch_seen.lock().expect("seen").insert(name, Instant::now());
                        }
                        Ok(WatchEvent::Error(_)) | Err(_) => {
                            lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            }));
        }
        // each creation's (request sent, acknowledged) times
        let acked: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
        let started = Instant::now();
        futures::stream::iter(0..opts.services)
            .map(|i| {
                let (services, acked) = (services.clone(), acked.clone());
                async move {
                    let sent = Instant::now();
                    services.create(&PostParams::default(), &service(i)).await?;
                    acked
                        .lock()
                        .expect("acked")
                        .insert(format!("s{i}"), (sent, Instant::now()));
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let services_rate = f64::from(opts.services) / started.elapsed().as_secs_f64();
        let per_slice = opts.endpoints / opts.services;
        let extra = opts.endpoints % opts.services;
        let started = Instant::now();
        futures::stream::iter(0..opts.services)
            .map(|i| {
                let slices = slices.clone();
                let count = per_slice + u32::from(i < extra);
                let offset = i * per_slice + i.min(extra);
                async move {
                    slices.create(&PostParams::default(), &slice(i, count, offset)).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let slices_rate = f64::from(opts.services) / started.elapsed().as_secs_f64();
        // let the watch catch up, then pair acknowledgements with deliveries
        tokio::time::sleep(Duration::from_secs(1)).await;
        tasks.iter().for_each(|t| t.abort());
        let acked = acked.lock().expect("acked");
        // from the request to the event: never negative, as an event may arrive before the
        // acknowledgement does (those are counted, not clamped to zero)
        let mut latency: Vec<Duration> = Vec::new();
        let mut before_ack = 0;
        for seen in &seen {
            let seen = seen.lock().expect("seen");
            latency.extend(
                acked
                    .iter()
                    .filter_map(|(name, (sent, _))| Some(seen.get(name)?.duration_since(*sent))),
            );
            before_ack += acked
                .iter()
                .filter(|(name, (_, ack))| seen.get(*name).is_some_and(|s| s < ack))
                .count();
        }
        let expected = acked.len() * watchers;
        if latency.len() < expected {
            bail!("the watches missed {} of {expected} events", expected - latency.len());
        }
        let lost = lost.load(std::sync::atomic::Ordering::Relaxed);
        anyhow::Ok((services_rate, slices_rate, latency, before_ack, lost))
    })?;
    // each process's figures, and their sums (upstream: kube-apiserver and etcd)
    let memory: Vec<(&str, f64, f64)> = server
        .processes
        .iter()
        .map(|(name, pid)| {
            let (peak, rss) = super::process::memory_mib(*pid);
            (*name, peak, rss)
        })
        .collect();
    let peak: f64 = memory.iter().map(|m| m.1).sum();
    let rss: f64 = memory.iter().map(|m| m.2).sum();
    let by_process: serde_json::Map<String, Value> = memory
        .iter()
        .map(|(name, peak, rss)| ((*name).to_owned(), json!({ "peak": peak, "resident": rss })))
        .collect();
    // kubectl as users run it (pages of 500, which its client-side limit of 5 requests a
    // second after a burst of 10 spaces out), and in one request, which shows the server's share
    let timed_get = |extra: &[&str]| -> Result<Value> {
        let Some(binary) = kubectl() else {
            return Ok(json!(
                "kubectl not found (.venv/bin/kubectl; `cargo xtask prereqs` installs it)"
            ));
        };
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let out = Command::new(&binary)
                .env("KUBECONFIG", &server.kubeconfig)
                .env("KUBECACHEDIR", server.kubeconfig.with_file_name("kubectl-cache"))
                .args(["get", "services", "-A", "--no-headers"])
                .args(extra)
                .output()?;
            if !out.status.success() {
                bail!("kubectl get failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let rows = out.stdout.iter().filter(|b| **b == b'\n').count();
            if rows < opts.services as usize {
                bail!("kubectl listed {rows} services, expected at least {}", opts.services);
            }
            times.push(t.elapsed());
        }
        Ok(json!({ "runs": 5, "p50_ms": percentile_ms(&times, 50.0), "max_ms": percentile_ms(&times, 100.0) }))
    };
    let get = timed_get(&[])?;
    let get_unchunked = timed_get(&["--chunk-size=0"])?;
    let round = |v: f64| (v * 10.0).round() / 10.0;
    Ok(json!({
        "benchmark": "API server: writes, watch delivery, kubectl get, memory",
        "services": opts.services,
        "endpoints": opts.endpoints,
        "concurrency": CONCURRENCY,
        "create_services_per_s": round(services_rate),
        "create_endpointslices_per_s": round(slices_rate),
        "watchers": opts.watchers.max(1),
        "watches_lost": watches_lost,
        "watch_events_before_acknowledgement": delivered_before_ack,
        "watch_delivery_ms": {
            "p50": percentile_ms(&watch_latency, 50.0),
            "p99": percentile_ms(&watch_latency, 99.0),
            "max": percentile_ms(&watch_latency, 100.0),
        },
        "kubectl_get_services_all": get,
        "kubectl_get_services_all_one_request": get_unchunked,
        "server": kind.to_possible_value().map(|p| p.get_name().to_owned()),
        "server_memory_mib": { "peak": (peak * 10.0).round() / 10.0, "resident": (rss * 10.0).round() / 10.0, "by_process": by_process },
    }))
}
