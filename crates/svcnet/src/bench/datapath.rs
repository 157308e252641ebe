//! `svcnet bench datapath`: what the rules cost a packet. A client pod opens new TCP
//! connections (connect + one HTTP request each) to a server pod: directly, through a
//! ClusterIP with only that service loaded, and through the same ClusterIP with `services`
//! services loaded (two nodes, so the cases can alternate in rounds and share the machine's
//! drift). Connect time is the first packet's round trip through the rules.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::backend::BackendKind;
use svcnet_dataplane::model::{Endpoint, ServicePort};
use svcnet_dataplane::syncer::Syncer;

use super::synthetic;
use crate::netns::Namespaces;
use crate::rtnl::Rtnl;

pub struct Options {
    pub services: u32,
    pub requests: u32,
}

const SERVICE_IP: &str = "172.31.255.1";
const SERVER_IP: &str = "10.250.0.2";
const CLIENT_IP: &str = "10.250.0.3";

/// Rounds the connections of each case are split into; the cases alternate round by round so
/// that drift in the machine's speed (2 shared cores) lands on all of them alike.
const ROUNDS: u32 = 5;

fn measure(nets: &Namespaces, client: &str, target: &str, requests: u32) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let out = nets.exec_ok(
        client,
        &[
            exe.to_str().unwrap(),
            "agnhost",
            "client",
            target,
            "--stats",
            "--count",
            &requests.to_string(),
        ],
    );
    serde_json::from_str(out.trim()).context("client statistics")
}

/// A node with a server pod and a client pod, each on its own routed veth.
struct Rig {
    node: String,
    client: String,
}

fn rig(nets: &mut Namespaces, suffix: &str) -> Result<Rig> {
    let node = nets.add(&format!("node{suffix}"));
    let server = nets.add(&format!("server{suffix}"));
    let client = nets.add(&format!("client{suffix}"));
    crate::netns::set_sysctl(&node, "net/ipv4/ip_forward", "1")?;
    let gateway: std::net::IpAddr = "169.254.1.1".parse()?;
    let host = |ip: std::net::IpAddr| ipnet::IpNet::from(ip);
    let mut node_links = Rtnl::open_in(&node)?;
    for (ns, ip, veth) in [(&server, SERVER_IP, "vs"), (&client, CLIENT_IP, "vc")] {
        let ip: std::net::IpAddr = ip.parse()?;
        nets.veth(&node, veth, ns, "eth0");
        let mut pod = Rtnl::open_in(ns)?;
        pod.add_address("eth0", host(ip))?;
        pod.add_route(host(gateway), None, Some("eth0"))?;
        pod.add_route("0.0.0.0/0".parse()?, Some(gateway), Some("eth0"))?;
        node_links.add_address(veth, host(gateway))?;
        node_links.add_route(host(ip), None, Some(veth))?;
    }
    let exe = std::env::current_exe()?;
    nets.spawn(
        &server,
        &[
            exe.to_str().unwrap(),
            "agnhost",
            "netexec",
            "--name",
            "server",
            "--http-port",
            "80",
            "--exit-after",
            "600",
        ],
    );
    Ok(Rig { node, client })
}

/// The per-round figures of one case and their medians.
#[derive(Default)]
pub(super) struct Case {
    rates: Vec<f64>,
    connect_p50s: Vec<f64>,
    connect_p99s: Vec<f64>,
    /// Connections or requests that failed (they are not in the latencies).
    failed: u64,
    requests: u64,
}

/// Milliseconds to 0.1 µs.
fn round4(ms: f64) -> f64 {
    (ms * 1e4).round() / 1e4
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

impl Case {
    pub(super) fn add(&mut self, stats: &Value) {
        self.rates.push(stats["rate_per_s"].as_f64().unwrap_or(0.0));
        self.connect_p50s
            .push(stats["connect_ms"]["p50"].as_f64().unwrap_or(0.0));
        self.connect_p99s
            .push(stats["connect_ms"]["p99"].as_f64().unwrap_or(0.0));
        self.failed += stats["errors"].as_u64().unwrap_or(0);
        self.requests += stats["requests"].as_u64().unwrap_or(0);
    }

    pub(super) fn json(&self) -> Value {
        json!({
            "rate_per_s": { "median": super::round3(median(&self.rates)), "rounds": self.rates },
            "connect_ms": {
                "p50_median": round4(median(&self.connect_p50s)),
                "p99_median": round4(median(&self.connect_p99s)),
            },
            "requests": self.requests,
            "failed": self.failed,
        })
    }
}

pub fn run(opts: &Options) -> Result<Value> {
    let mut nets = Namespaces::new("svb-");
    // one node with only the measured service, one with `services` loaded; both stay loaded
    // so the cases can alternate
    let small_rig = rig(&mut nets, "1")?;
    let large_rig = rig(&mut nets, "n")?;
    std::thread::sleep(std::time::Duration::from_millis(300));

    let real = ServicePort::cluster_ip(
        "bench",
        "real",
        "http",
        Protocol::Tcp,
        80,
        vec![SERVICE_IP.parse()?],
        vec![Endpoint {
            ip: SERVER_IP.parse()?,
            port: 80,
            is_local: true,
            ready: true,
            serving: true,
            terminating: false,
            hints: Default::default(),
        }],
    );
    let clock = Instant::now();
    let mut small = synthetic::model(0, 0);
    small.ports.insert(real.id(), real.clone());
    Syncer::new(BackendKind::Netlink.open(Some(&small_rig.node))?).sync(small, clock.elapsed().as_millis() as u64)?;
    let mut large = synthetic::model(opts.services.saturating_sub(1), 5);
    large.ports.insert(real.id(), real);
    Syncer::new(BackendKind::Netlink.open(Some(&large_rig.node))?).sync(large, clock.elapsed().as_millis() as u64)?;

    let per_round = (opts.requests / ROUNDS).max(1);
    let (mut direct, mut one, mut many) = (Case::default(), Case::default(), Case::default());
    for round in 0..ROUNDS {
        // the order turns every round too
        let mut cases: Vec<(&mut Case, &str, String)> = vec![
            (&mut direct, small_rig.client.as_str(), format!("{SERVER_IP}:80")),
            (&mut one, small_rig.client.as_str(), format!("{SERVICE_IP}:80")),
            (&mut many, large_rig.client.as_str(), format!("{SERVICE_IP}:80")),
        ];
        cases.rotate_left(round as usize % 3);
        for (case, client, target) in cases {
            case.add(&measure(&nets, client, &target, per_round)?);
        }
    }

    let ratio = |a: f64, b: f64| super::round3(a / b.max(0.001));
    Ok(json!({
        "requests_per_case": per_round * ROUNDS,
        "rounds": ROUNDS,
        "direct_to_pod": direct.json(),
        "cluster_ip_1_service": one.json(),
        "cluster_ip_n_services": {"services": opts.services, "stats": many.json()},
        "ratios_of_medians": {
            "rate_n_services_vs_1": ratio(median(&many.rates), median(&one.rates)),
            "connect_p50_n_services_vs_1": ratio(median(&many.connect_p50s), median(&one.connect_p50s)),
            "rate_cluster_ip_vs_direct": ratio(median(&one.rates), median(&direct.rates)),
        },
    }))
}
