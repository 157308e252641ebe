//! The demo `up --demo` deploys (`examples/lab-demo.yaml`), and the checks that show it works:
//! the ClusterIP from a pod, the NodePort on every node and the LoadBalancer address from the
//! external host, and the ClusterIP refused from outside.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde::Deserialize;

use super::daemon::Ready;
use super::shell::run_in;

pub const MANIFEST: &str = include_str!("../../../../examples/lab-demo.yaml");
pub const NODE_PORT: u16 = 30080;

/// The lab's cluster DNS (`kube-system/kube-dns`), which every lab deploys at start.
pub const CLUSTER_DNS: &str = include_str!("cluster_dns.yaml");

/// Creates every object of the demo manifest.
pub async fn deploy(client: &Client) -> Result<()> {
    create_all(client, MANIFEST).await.context("creating the demo")
}

/// Creates every object (Services, Deployments, Pods) of `manifest`; one that exists is kept.
pub async fn create_all(client: &Client, manifest: &str) -> Result<()> {
    for doc in serde_yaml_ng::Deserializer::from_str(manifest) {
        let value = serde_json::Value::deserialize(doc).context("manifest")?;
        let ns = value["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
        let pp = PostParams::default();
        let created = match value["kind"].as_str() {
            Some("Service") => Api::<Service>::namespaced(client.clone(), &ns)
                .create(&pp, &serde_json::from_value(value)?)
                .await
                .map(|_| ()),
            Some("Deployment") => Api::<Deployment>::namespaced(client.clone(), &ns)
                .create(&pp, &serde_json::from_value(value)?)
                .await
                .map(|_| ()),
            Some("Pod") => Api::<Pod>::namespaced(client.clone(), &ns)
                .create(&pp, &serde_json::from_value(value)?)
                .await
                .map(|_| ()),
            other => bail!("manifest: unexpected kind {other:?}"),
        };
        match created {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Waits until every demo pod is Ready; returns the demo Service's ClusterIP.
pub async fn wait_ready(client: &Client, timeout: Duration) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + timeout;
    loop {
        let list = pods
            .list(&ListParams::default().labels("app in (demo, client)"))
            .await?;
        let ready = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready == 4 {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {ready} of the 4 demo pods became ready; see `svcnet lab status` and the pod logs");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("demo")
        .await?;
    svc.spec
        .and_then(|s| s.cluster_ip)
        .context("the demo service has no ClusterIP")
}

/// Waits until the demo's LoadBalancer Service has its address; returns it.
pub async fn wait_load_balancer(client: &Client, timeout: Duration) -> Result<String> {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + timeout;
    loop {
        let svc = services.get("demo-lb").await?;
        let ip = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().next())
            .and_then(|i| i.ip);
        if let Some(ip) = ip {
            return Ok(ip);
        }
        if Instant::now() > deadline {
            bail!("service demo-lb got no load-balancer address; see `kubectl describe service demo-lb`");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP request from inside `netns` with this binary's agnhost client: the answer, or
/// the error kind it printed.
pub fn ask(netns: &str, target: &str, request: &str) -> String {
    let exe = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_in(
        netns,
        &[
            &exe,
            "agnhost",
            "client",
            target,
            "--request",
            request,
            "--timeout-ms",
            "1000",
        ],
    )
    .map(|out| out.trim().to_owned())
    .unwrap_or_else(|e| format!("ERROR {e:#}"))
}

/// Asks until an answer comes (the proxies program new services within moments) or time is up.
pub fn ask_until_answered(netns: &str, target: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = ask(netns, target, "/hostname");
        if !answer.starts_with("ERROR") || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The demo's client pod: its network namespace and its sandbox (hostname, resolv.conf).
pub struct DemoClient {
    pub netns: String,
    pub isolation: super::kubelet::isolation::Isolation,
}

/// What the pod's resolver says of `name` (`getent hosts`, through its search path): the
/// address and full name, or `ERROR …`.
pub fn resolve_in_sandbox(client: &DemoClient, name: &str, timeout: Duration) -> String {
    let exe = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let argv = client
        .isolation
        .wrap(&exe, &["getent".into(), "hosts".into(), name.into()]);
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let deadline = Instant::now() + timeout;
    loop {
        let answer = run_in(&client.netns, &words)
            .map(|out| out.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|e| format!("ERROR {e:#}"));
        if (!answer.is_empty() && !answer.starts_with("ERROR")) || Instant::now() > deadline {
            return if answer.is_empty() {
                "ERROR no such name".into()
            } else {
                answer
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How the user calls the lab's commands (see `commands::lab_command`).
pub struct LabCommand {
    pub program: String,
    /// ` --name N`, or empty for the default lab.
    pub name_flag: String,
}

impl LabCommand {
    /// `svcnet lab VERB [--name N]`.
    pub fn verb(&self, verb: &str) -> String {
        format!("{} lab {verb}{}", self.program, self.name_flag)
    }
}

/// The demo's checks, each as (what, command a user can run, answer).
pub fn check(
    ready: &Ready,
    client: &DemoClient,
    cluster_ip: &str,
    load_balancer_ip: &str,
    cli: &LabCommand,
) -> Vec<(String, String, String)> {
    let (exec, external) = (cli.verb("exec"), cli.verb("external"));
    let client_netns = client.netns.as_str();
    let mut out = Vec::new();
    out.push((
        "DNS name demo from pod client".to_owned(),
        format!("{exec} client -- curl -s http://demo/hostname"),
        resolve_in_sandbox(client, "demo", Duration::from_secs(10)),
    ));
    let target = format!("{cluster_ip}:80");
    out.push((
        "ClusterIP from pod client".to_owned(),
        format!("{exec} client -- curl -s http://{cluster_ip}/hostname"),
        ask_until_answered(client_netns, &target, Duration::from_secs(10)),
    ));
    for node in &ready.plan.nodes {
        let target = format!("{}:{NODE_PORT}", node.ip);
        out.push((
            format!("NodePort on {} from the external host", node.name),
            format!("{external} -- curl -s http://{target}/hostname"),
            ask_until_answered(&ready.plan.external_netns, &target, Duration::from_secs(10)),
        ));
    }
    let target = format!("{load_balancer_ip}:80");
    out.push((
        format!("LoadBalancer {load_balancer_ip} from the external host"),
        format!("{external} -- curl -s http://{target}/hostname"),
        ask_until_answered(&ready.plan.external_netns, &target, Duration::from_secs(10)),
    ));
    let target = format!("{cluster_ip}:80");
    out.push((
        "ClusterIP from the external host (must fail)".to_owned(),
        format!("{external} -- curl -s --max-time 2 http://{cluster_ip}/hostname"),
        ask(&ready.plan.external_netns, &target, "/hostname"),
    ));
    out
}
