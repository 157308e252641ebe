//! `svcnet bench datapath --proxies svcnet,kube-proxy`: what each proxy's rules cost a packet,
//! side by side in one run. Each proxy gets a one-node lab of its own (on the chosen control
//! plane) with a server pod and a client pod. The client opens new TCP connections (connect
//! and one HTTP request each): to the server pod directly and through a ClusterIP, first with
//! that Service alone, then with `services` Services loaded through the API (5 unprobed
//! endpoints each); the direct case alternates with each ClusterIP case round by round, so the
//! machine's drift lands on both alike.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::lab::{BenchLab, LabSetup, flag_value};
use super::programming::{LOAD_CONCURRENCY, service, slice, unprobed_endpoints};
use crate::lab::control_plane::ControlPlane;
use crate::lab::daemon::{Ready, client_for};
use crate::lab::supervisor::NodeProxy;

pub struct Options {
    pub services: u32,
    pub requests: u32,
    pub control_plane: ControlPlane,
    pub proxies: Vec<NodeProxy>,
    pub upstream_bin: PathBuf,
}

const ROUNDS: u32 = 5;
const ENDPOINTS_PER_SERVICE: u32 = 5;
/// How long the loaded Services may take to be programmed.
const PROGRAMMED_WITHIN: Duration = Duration::from_secs(600);

/// A pod running `args` of the built-in agnhost, with `labels`.
fn pod(name: &str, app: &str, args: &[&str]) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": app } },
        "spec": { "containers": [{ "name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53", "args": args }] },
    }))?)
}

/// Waits for `name` to run with an address; returns its uid and address.
async fn running(pods: &Api<Pod>, name: &str) -> Result<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let p = pods.get(name).await?;
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if let (true, Some(ip)) = (ready, p.status.as_ref().and_then(|s| s.pod_ip.clone())) {
            return Ok((p.metadata.uid.unwrap_or_default(), ip));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("pod {name} did not become ready within 60 s")
}

/// `svcnet agnhost client TARGET --stats` from inside the client pod's namespace.
fn measure(netns: &str, target: &str, requests: u32) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["agnhost", "client", target, "--stats", "--count", &requests.to_string()])
        .stdout(std::process::Stdio::piped());
    let out = crate::netns::spawn_in(netns, &mut command)?.wait_with_output()?;
    serde_json::from_slice(&out.stdout).context("client statistics")
}

/// Polls a connection to `target` from `netns` until one succeeds.
fn reachable(netns: &str, target: SocketAddr, within: Duration) -> Result<()> {
    let netns = netns.to_owned();
    std::thread::spawn(move || -> Result<()> {
        crate::netns::enter(&netns)?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&target, Duration::from_millis(50)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{target} did not answer within {within:?}")
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the probe thread panicked"))?
}

async fn cluster_ip(services: &Api<Service>, name: &str) -> Result<String> {
    services
        .get(name)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")
}

/// Direct and ClusterIP connections, alternating for `ROUNDS` rounds.
fn alternate(
    netns: &str,
    direct: &str,
    through: &str,
    requests: u32,
) -> Result<(super::datapath::Case, super::datapath::Case)> {
    let per_round = (requests / ROUNDS).max(1);
    let (mut d, mut c) = (super::datapath::Case::default(), super::datapath::Case::default());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            d.add(&measure(netns, direct, per_round)?);
            c.add(&measure(netns, through, per_round)?);
        } else {
            c.add(&measure(netns, through, per_round)?);
            d.add(&measure(netns, direct, per_round)?);
        }
    }
    Ok((d, c))
}

async fn load(client: &Client, count: u32) -> Result<f64> {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    futures::stream::iter((0..count).map(|i| {
        let (services, slices) = (services.clone(), slices.clone());
        async move {
            let name = format!("bg-{i}");
            services.create(&PostParams::default(), &service(&name)).await?;
            slices
                .create(
                    &PostParams::default(),
                    &slice(&name, &unprobed_endpoints(i, ENDPOINTS_PER_SERVICE)),
                )
                .await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(LOAD_CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

fn run_one(opts: &Options, proxy: NodeProxy) -> Result<Value> {
    let (_lab, ready): (BenchLab, Ready) = BenchLab::up(&LabSetup {
        nodes: 1,
        control_plane: opts.control_plane,
        proxy,
        upstream_bin: opts.upstream_bin.clone(),
    })?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = client_for(&ready.kubeconfig).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        pods.create(
            &PostParams::default(),
            &pod("server", "server", &["netexec", "--http-port=8080"])?,
        )
        .await?;
        pods.create(&PostParams::default(), &pod("client", "client", &["pause"])?)
            .await?;
        let (_, server_ip) = running(&pods, "server").await?;
        let (client_uid, _) = running(&pods, "client").await?;
        let netns = ready.plan.pod_netns(&client_uid);
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let real: Service = serde_json::from_value(json!({
            "metadata": { "name": "real" },
            "spec": { "selector": { "app": "server" }, "ports": [{ "port": 80, "targetPort": 8080 }] },
        }))?;
        services.create(&PostParams::default(), &real).await?;
        let real_ip = cluster_ip(&services, "real").await?;
        let (direct, through) = (format!("{server_ip}:8080"), format!("{real_ip}:80"));
        reachable(&netns, through.parse()?, Duration::from_secs(30))?;
        let (direct_one, one) = alternate(&netns, &direct, &through, opts.requests)?;

        let load_seconds = load(&client, opts.services.saturating_sub(1)).await?;
        // the last Service written answers once everything before it is programmed
        let last: Service = serde_json::from_value(json!({
            "metadata": { "name": "last" },
            "spec": { "selector": { "app": "server" }, "ports": [{ "port": 80, "targetPort": 8080 }] },
        }))?;
        services.create(&PostParams::default(), &last).await?;
        let last_ip = cluster_ip(&services, "last").await?;
        let written = Instant::now();
        reachable(&netns, format!("{last_ip}:80").parse()?, PROGRAMMED_WITHIN)?;
        let programmed = written.elapsed().as_secs_f64();
        let (direct_many, many) = alternate(&netns, &direct, &through, opts.requests)?;
        Ok(json!({
            "proxy": proxy,
            "control_plane": opts.control_plane,
            "direct_to_pod_beside_1_service": direct_one.json(),
            "cluster_ip_1_service": one.json(),
            "direct_to_pod_beside_n_services": direct_many.json(),
            "cluster_ip_n_services": { "services": opts.services, "stats": many.json() },
            "load_seconds": super::round3(load_seconds),
            "last_service_programmed_after_seconds": super::round3(programmed),
        }))
    })
}

/// Each proxy in turn; with more than one, their ratios to the first.
pub fn run(opts: &Options) -> Result<Value> {
    let mut runs = Vec::new();
    for proxy in &opts.proxies {
        runs.push((flag_value(*proxy), run_one(opts, *proxy)?));
    }
    super::side_by_side(
        "the packet's cost through each proxy's rules, in a lab of its own",
        runs,
        &[
            ("rate_1_service", "/cluster_ip_1_service/rate_per_s/median"),
            ("connect_p50_1_service", "/cluster_ip_1_service/connect_ms/p50_median"),
            ("rate_n_services", "/cluster_ip_n_services/stats/rate_per_s/median"),
            (
                "connect_p50_n_services",
                "/cluster_ip_n_services/stats/connect_ms/p50_median",
            ),
            (
                "connect_p99_n_services",
                "/cluster_ip_n_services/stats/connect_ms/p99_median",
            ),
        ],
    )
}
