//! The agents at a size users run: 2,000 Services on 2 nodes, each answering through its
//! ClusterIP from both nodes with a backend it really has; then 200 random changes (endpoints
//! moved, added and removed, Services deleted and created) and every answer checked again.
//! On svcnet's control plane and on upstream's (kube-apiserver with etcd, svcnet's proxies).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::deployment;
use crate::support::{ControlPlane, Lab};

const SERVICES: usize = 2000;
const CHANGES: usize = 200;
const BACKENDS: usize = 4;

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// GET `path` from `target` over a fresh connection; the body, or None. The server keeps the
/// connection open, so the body is read by its Content-Length.
fn http_get(target: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })?
            .parse()
            .ok()?;
        if body.len() >= length {
            return head
                .starts_with("HTTP/1.1 200")
                .then(|| body[..length].trim().to_owned());
        }
    }
}

/// For each target, the answer from inside `netns` (None where it failed).
fn answers_from(netns: &str, targets: Vec<SocketAddr>) -> Vec<Option<String>> {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        svcnet::netns::enter(&netns).expect("enter the node's namespace");
        targets.into_iter().map(|t| http_get(t, "/hostname")).collect()
    })
    .join()
    .expect("probe thread")
}

/// What each Service must answer: its ClusterIP and the hostnames of its endpoints.
type Expected = BTreeMap<String, Want>;
type Want = (SocketAddr, BTreeSet<String>);

/// Waits until every Service answers from every node with one of its own backends.
fn wait_all_right(netns: &[String], expected: &Expected, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<(&String, &Want, usize)> = expected
        .iter()
        .flat_map(|(name, want)| (0..netns.len()).map(move |node| (name, want, node)))
        .collect();
    loop {
        let mut wrong = Vec::new();
        for (node, ns) in netns.iter().enumerate() {
            let here: Vec<_> = pending.iter().filter(|p| p.2 == node).copied().collect();
            let answers = answers_from(ns, here.iter().map(|p| p.1.0).collect());
            for (p, answer) in here.into_iter().zip(answers) {
                if !answer.as_ref().is_some_and(|a| p.1.1.contains(a)) {
                    wrong.push((p, answer));
                }
            }
        }
        if wrong.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} answers still wrong, e.g. {:?}",
            wrong.len(),
            expected.len() * netns.len(),
            wrong
                .iter()
                .take(5)
                .map(|((name, want, node), got)| (name, node, &want.1, got))
                .collect::<Vec<_>>()
        );
        pending = wrong.into_iter().map(|(p, _)| p).collect();
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}))
        .unwrap()
}

fn slice(name: &str, ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": name,
                                              "endpointslice.kubernetes.io/managed-by": "scale-test"}},
        "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints,
    }))
    .unwrap()
}

mod thousands_of_services_answer_right_on_every_node_through_random_changes {
    #[test]
    fn svcnet() {
        super::thousands_of_services(super::ControlPlane::Svcnet);
    }
    #[test]
    fn upstream() {
        super::thousands_of_services(super::ControlPlane::Upstream);
    }
}

fn thousands_of_services(control_plane: ControlPlane) {
    let lab = Lab::up_on(2, control_plane);
    lab.apply(&deployment("echo", BACKENDS as u32, ""));
    lab.wait_ready_pods("app=echo", BACKENDS);
    let ready = svcnet::lab::daemon::read_ready(&lab.state_dir()).expect("ready.json");
    let netns: Vec<String> = ready.plan.nodes.iter().map(|n| n.netns.clone()).collect();
    let ips: Vec<String> = lab
        .get(&["pods", "-l", "app=echo"], "{.items[*].status.podIP}")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(ips.len(), BACKENDS);
    let targets = ips
        .iter()
        .map(|ip| SocketAddr::new(ip.parse().unwrap(), 8080))
        .collect();
    let hostnames: Vec<String> = answers_from(&netns[0], targets)
        .into_iter()
        .map(|h| h.expect("a backend answers"))
        .collect();
    let host_of = |ip: &str| hostnames[ips.iter().position(|i| i == ip).unwrap()].clone();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(svcnet::lab::daemon::client_for(&lab.kubeconfig))
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    let mut rng = Rng(0x5eed_2026_1202);
    // each Service starts with one backend
    let mut endpoints: BTreeMap<String, Vec<String>> = (0..SERVICES)
        .map(|i| (format!("s{i}"), vec![ips[rng.below(BACKENDS)].clone()]))
        .collect();
    let create = |name: String, eps: Vec<String>| {
        let (services, slices) = (services.clone(), slices.clone());
        async move {
            let created = services.create(&PostParams::default(), &service(&name)).await?;
            let refs: Vec<&str> = eps.iter().map(String::as_str).collect();
            slices.create(&PostParams::default(), &slice(&name, &refs)).await?;
            let ip = created.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
            anyhow::Ok((name, SocketAddr::new(ip.parse()?, 80)))
        }
    };
    let addresses: BTreeMap<String, SocketAddr> = runtime
        .block_on(async {
            use futures::{StreamExt, TryStreamExt};
            futures::stream::iter(endpoints.iter().map(|(n, e)| create(n.clone(), e.clone())))
                .buffer_unordered(16)
                .try_collect()
                .await
        })
        .unwrap();
    let mut addresses = addresses;
    let expected = |addresses: &BTreeMap<String, SocketAddr>, endpoints: &BTreeMap<String, Vec<String>>| -> Expected {
        endpoints
            .iter()
            .map(|(name, eps)| {
                (
                    name.clone(),
                    (addresses[name], eps.iter().map(|ip| host_of(ip)).collect()),
                )
            })
            .collect()
    };
    wait_all_right(&netns, &expected(&addresses, &endpoints), Duration::from_secs(120));

    let mut next = SERVICES;
    runtime.block_on(async {
        for _ in 0..CHANGES {
            let names: Vec<String> = endpoints.keys().cloned().collect();
            let name = names[rng.below(names.len())].clone();
            match rng.below(4) {
                // move to another backend, or add one
                0 | 1 => {
                    let eps = endpoints.get_mut(&name).unwrap();
                    let ip = ips[rng.below(BACKENDS)].clone();
                    if rng.below(2) == 0 || eps.contains(&ip) {
                        *eps = vec![ip];
                    } else {
                        eps.push(ip);
                    }
                    let refs: Vec<&str> = eps.iter().map(String::as_str).collect();
                    slices
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&slice(&name, &refs)))
                        .await
                        .unwrap();
                }
                // delete the Service and its slice
                2 => {
                    services.delete(&name, &DeleteParams::default()).await.unwrap();
                    slices.delete(&name, &DeleteParams::default()).await.unwrap();
                    endpoints.remove(&name);
                    addresses.remove(&name);
                }
                // a new Service
                _ => {
                    let name = format!("s{next}");
                    next += 1;
                    let eps = vec![ips[rng.below(BACKENDS)].clone()];
                    let (name, address) = create(name, eps.clone()).await.unwrap();
                    endpoints.insert(name.clone(), eps);
                    addresses.insert(name, address);
                }
            }
        }
    });
    wait_all_right(&netns, &expected(&addresses, &endpoints), Duration::from_secs(60));
}
