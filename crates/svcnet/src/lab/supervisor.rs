//! Each node's proxy runs as its own process (`svcnet proxy`, or upstream's kube-proxy with
//! `lab up --proxy kube-proxy`), as it would on a real node, so it can be killed and restarted
//! on its own; the supervisor restarts it a second after it exits.
//! Pid files let `down` find proxies a crashed daemon left behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::plan::{CLUSTER_CIDR, CLUSTER_CIDR_V6, NodePlan, SERVICE_CIDR, SERVICE_CIDR_V6};

pub fn pid_dir(state: &Path) -> PathBuf {
    state.join("proxies")
}

/// Which proxy runs on every node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NodeProxy {
    /// `svcnet proxy`, from the root namespace programming the node's (`--netns`).
    #[default]
    Svcnet,
    /// Upstream's kube-proxy in nftables mode, inside the node's namespace.
    KubeProxy,
}

/// How a node's proxy process is started.
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Started inside the node's namespace (else in the root namespace).
    pub in_node_namespace: bool,
    /// A configuration file to write (private) before each start: path and text.
    pub config: Option<(PathBuf, String)>,
}

impl NodeProxy {
    /// The kubeconfig of the identity the control plane made for this kind of proxy.
    pub fn kubeconfig(self, started: &super::control_plane::Started) -> &Path {
        match self {
            NodeProxy::Svcnet => &started.proxy_kubeconfig,
            NodeProxy::KubeProxy => &started.kube_proxy_kubeconfig,
        }
    }

    /// How this proxy starts on `node` (`state`: the lab's state directory).
    pub fn launch(
        self,
        exe: &str,
        upstream_bin: &Path,
        node: &NodePlan,
        kubeconfig: &Path,
        state: &Path,
        nodeport_addresses: &[IpNet],
    ) -> Launch {
        match self {
            NodeProxy::Svcnet => Launch {
                program: PathBuf::from(exe),
                args: proxy_args(node, kubeconfig, nodeport_addresses),
                in_node_namespace: false,
                config: None,
            },
            NodeProxy::KubeProxy => {
                let config = state.join(format!("kube-proxy-{}.yaml", node.name));
                Launch {
                    program: upstream_bin.join("kube-proxy"),
                    args: vec![format!("--config={}", config.display())],
                    in_node_namespace: true,
                    config: Some((config, kube_proxy_config(node, kubeconfig, nodeport_addresses))),
                }
            }
        }
    }
}

/// The pods' and Services' ranges a proxy on `node` is told (both families on a dual-stack
/// node), comma-separated.
fn ranges(node: &NodePlan) -> (String, String) {
    match node.ipv6 {
        Some(_) => (
            format!("{CLUSTER_CIDR},{CLUSTER_CIDR_V6}"),
            format!("{SERVICE_CIDR},{SERVICE_CIDR_V6}"),
        ),
        None => (CLUSTER_CIDR.to_owned(), SERVICE_CIDR.to_owned()),
    }
}

/// Either proxy syncs at most this often in the lab (kube-proxy's default is 1 s).
pub const MIN_SYNC_PERIOD_MS: u64 = 100;

/// kube-proxy's configuration for `node`: nftables mode, the lab's minimum sync period, no
/// conntrack sysctls (the table size is the machine's, not a node's), and its sync messages
/// logged (verbosity 2).
pub fn kube_proxy_config(node: &NodePlan, kubeconfig: &Path, nodeport_addresses: &[IpNet]) -> String {
    let nodeport_addresses: Vec<String> = nodeport_addresses.iter().map(ToString::to_string).collect();
    format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node}
clusterCIDR: {cluster_cidrs}
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
nftables:
  minSyncPeriod: {MIN_SYNC_PERIOD_MS}ms
  syncPeriod: 30s
nodePortAddresses: [{nodeport_addresses}]
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 0.0.0.0:10256
logging:
  verbosity: 2
",
        kubeconfig = kubeconfig.display(),
        node = node.name,
        cluster_cidrs = ranges(node).0,
        nodeport_addresses = nodeport_addresses.join(", "),
    )
}

/// `svcnet proxy`'s arguments for `node`.
pub fn proxy_args(node: &NodePlan, kubeconfig: &Path, nodeport_addresses: &[IpNet]) -> Vec<String> {
    let min_sync = MIN_SYNC_PERIOD_MS.to_string();
    let (cluster_cidrs, service_cidrs) = ranges(node);
    let mut args: Vec<String> = [
        "proxy",
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "--node-name",
        &node.name,
        "--netns",
        &node.netns,
        "--cluster-cidr",
        &cluster_cidrs,
        "--service-cidr",
        &service_cidrs,
        "--min-sync-period-ms",
        &min_sync,
        "--status-bind-address",
        "127.0.0.1:0",
    ]
    .map(str::to_owned)
    .to_vec();
    if !nodeport_addresses.is_empty() {
        let cidrs: Vec<String> = nodeport_addresses.iter().map(ToString::to_string).collect();
        args.extend(["--nodeport-addresses".to_owned(), cidrs.join(",")]);
    }
    args
}

/// Runs `launch` for `node` until `shutdown`, restarting it whenever it exits.
pub async fn supervise(launch: Launch, node: NodePlan, state: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let pid_file = pid_dir(&state).join(format!("{}.pid", node.name));
    let log_path = state.join(format!("proxy-{}.log", node.name));
    loop {
        if let Some((path, text)) = &launch.config
            && let Err(e) = svcnet_apiserver::credentials::write_file(
                path,
                text.as_bytes(),
                svcnet_apiserver::credentials::PRIVATE_FILE,
            )
        {
            tracing::error!(error = %e, path = %path.display(), "cannot write the proxy's configuration");
            return;
        }
        let log = match std::fs::OpenOptions::new().create(true).append(true).open(&log_path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the proxy log");
                return;
            }
        };
        let (stdout, stderr) = match log.try_clone() {
            Ok(c) => (Stdio::from(c), Stdio::from(log)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let mut command = tokio::process::Command::new(&launch.program);
        command
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        let spawned = if launch.in_node_namespace {
            crate::netns::spawn_async_in(&node.netns, &mut command)
        } else {
            command.spawn()
        };
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(node = %node.name, error = %e, "cannot start the proxy");
                return;
            }
        };
        if let Some(pid) = child.id() {
            let _ = std::fs::create_dir_all(pid_dir(&state));
            let _ = std::fs::write(&pid_file, pid.to_string());
        }
        tokio::select! {
            status = child.wait() => {
                tracing::warn!(node = %node.name, status = ?status, "proxy exited; restarting it in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = shutdown.changed() => {
                if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
                if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                let _ = std::fs::remove_file(&pid_file);
                return;
            }
        }
    }
}

/// Kills the processes whose pid files are in `pids` that a crashed daemon of the lab with
/// state directory `state` left running (a pid counts only if its command line names `state`).
pub fn kill_leftovers(pids: &Path, state: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(pids) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        // only our own process of this lab, never a recycled pid
        if cmdline.contains(&*state.to_string_lossy())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            killed += 1;
        }
    }
    killed
}
