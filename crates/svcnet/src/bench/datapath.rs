//! `svcnet bench datapath`: what the rules cost a packet. A client pod opens new TCP
//! connections (connect + one HTTP request each) to a server pod: directly, through a
//! ClusterIP with only that service loaded, and through the same ClusterIP with `services`
//! services loaded. Connect time is the first packet's round trip through the rules.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::backend::NftText;
use svcnet_dataplane::model::{Endpoint, ServicePort};
use svcnet_dataplane::syncer::Syncer;

use super::synthetic;
use crate::netns::Namespaces;

pub struct Options {
    pub services: u32,
    pub requests: u32,
}

const SERVICE_IP: &str = "172.31.255.1";
/// The same service under another address for the many-services case, so nothing one case
/// left behind (conntrack entries, client ports) affects the other.
const SERVICE_IP_MANY: &str = "172.31.255.2";
const SERVER_IP: &str = "10.250.0.2";
const CLIENT_IP: &str = "10.250.0.3";

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

pub fn run(opts: &Options) -> Result<Value> {
    let mut nets = Namespaces::new("svb-");
    let node = nets.add("node");
    let server = nets.add("server");
    let client = nets.add("client");
    nets.exec_ok(&node, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for (ns, ip, veth) in [(&server, SERVER_IP, "vs"), (&client, CLIENT_IP, "vc")] {
        nets.veth(&node, veth, ns, "eth0");
        nets.exec_ok(ns, &["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
        nets.exec_ok(ns, &["ip", "route", "add", "169.254.1.1", "dev", "eth0"]);
        nets.exec_ok(
            ns,
            &["ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
        );
        nets.exec_ok(&node, &["ip", "addr", "add", "169.254.1.1/32", "dev", veth]);
        nets.exec_ok(&node, &["ip", "route", "add", &format!("{ip}/32"), "dev", veth]);
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
        }],
    );
    let backend = NftText::in_netns(&node);
    let mut syncer = Syncer::new(backend);
    let clock = Instant::now();

    let mut small = synthetic::model(0, 0);
    small.ports.insert(real.id(), real.clone());
    syncer.sync(small, clock.elapsed().as_millis() as u64)?;
    let direct = measure(&nets, &client, &format!("{SERVER_IP}:80"), opts.requests)?;
    let one = measure(&nets, &client, &format!("{SERVICE_IP}:80"), opts.requests)?;

    let mut large = synthetic::model(opts.services.saturating_sub(1), 5);
    let mut real_many = real;
    real_many.cluster_ips = vec![SERVICE_IP_MANY.parse()?];
    large.ports.insert(real_many.id(), real_many);
    syncer.sync(large, clock.elapsed().as_millis() as u64)?;
    let many = measure(&nets, &client, &format!("{SERVICE_IP_MANY}:80"), opts.requests)?;

    let p50 = |v: &Value| v["connect_ms"]["p50"].as_f64().unwrap_or(0.0);
    let rate = |v: &Value| v["rate_per_s"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "requests_per_case": opts.requests,
        "direct_to_pod": direct,
        "cluster_ip_1_service": one,
        "cluster_ip_n_services": {"services": opts.services, "stats": many},
        "ratios": {
            "rate_n_services_vs_1": super::round3(rate(&many) / rate(&one).max(0.001)),
            "connect_p50_n_services_vs_1": super::round3(p50(&many) / p50(&one).max(0.001)),
            "rate_cluster_ip_vs_direct": super::round3(rate(&one) / rate(&direct).max(0.001)),
        },
    }))
}
