//! The lab daemon (`svcnet lab daemon`, started by `up`): builds the namespaces, then runs the
//! control plane (see [`control_plane`]), the scheduler, and per node a kubelet and the node agent's proxy (a process of
//! its own, see [`supervisor`](super::supervisor)), until SIGTERM
//! or SIGINT; then stops every pod and removes every namespace it made.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::control_plane::{self, ControlPlane};
use super::kubelet::{self, NodeContext, sandbox::IpPool};
use super::plan::{CLUSTER_DNS_IP, CLUSTER_DOMAIN, LabPlan};
use super::supervisor::NodeProxy;
use super::{api_relay, load_balancer, scheduler, supervisor, topology};

/// What a running lab tells the other commands (`<state>/ready.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub api_server: String,
    pub kubeconfig: PathBuf,
    pub plan: LabPlan,
    #[serde(default)]
    pub control_plane: ControlPlane,
    /// The proxies' `nodePortAddresses` (`svcnet explain` compiles the rules they do).
    #[serde(default)]
    pub nodeport_addresses: Vec<ipnet::IpNet>,
}

/// How the daemon runs its lab.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Where the API server listens (port 0: any free port).
    pub api: SocketAddr,
    pub control_plane: ControlPlane,
    /// Upstream's binaries, for `ControlPlane::Upstream` and `NodeProxy::KubeProxy`.
    pub upstream_bin: PathBuf,
    pub proxy: NodeProxy,
    /// The proxies' `nodePortAddresses` (empty: every node address serves NodePorts).
    pub nodeport_addresses: Vec<ipnet::IpNet>,
    /// Deploy the cluster DNS (`lab up --no-dns` leaves it out, for benchmarks).
    pub cluster_dns: bool,
}

pub fn ready_path(state: &Path) -> PathBuf {
    state.join("ready.json")
}

pub fn read_ready(state: &Path) -> Option<Ready> {
    serde_json::from_slice(&std::fs::read(ready_path(state)).ok()?).ok()
}

pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Runs lab `plan` with its state in `state`.
pub fn run(plan: LabPlan, state: &Path, options: DaemonOptions) -> Result<()> {
    let result = tokio::runtime::Runtime::new()?.block_on(serve(plan.clone(), state, options));
    // whatever happened, nothing is left behind
    let removed = topology::remove_all(&plan.name);
    let _ = std::fs::remove_file(ready_path(state));
    tracing::info!(namespaces = removed, "lab stopped");
    result
}

async fn serve(plan: LabPlan, state: &Path, options: DaemonOptions) -> Result<()> {
    let build_plan = plan.clone();
    tokio::task::spawn_blocking(move || topology::build(&build_plan))
        .await?
        .context("building the lab's network")?;
    let plan = Arc::new(plan);
    let consoles = Arc::new(kubelet::console::Consoles::default());
    let started = options
        .control_plane
        .start(control_plane::Settings {
            plan: &plan,
            state,
            api: options.api,
            upstream_bin: options.upstream_bin.clone(),
            consoles: consoles.clone(),
        })
        .await?;
    let kubeconfig = started.kubeconfig.clone();
    let proxy_kubeconfig = options.proxy.kubeconfig(&started).to_owned();
    let dns_kubeconfig = started.proxy_kubeconfig.clone();
    let api_address = started.address;
    let mut control = started.running;
    let client = client_for(&kubeconfig).await?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let log_dir = state.join("pods");
    std::fs::create_dir_all(&log_dir)?;
    // upstream's kube-apiserver reads pod output from a kubelet API (svcnet's, from a hook)
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let kubelet_port = match options.control_plane {
        ControlPlane::Svcnet => None,
        _ => {
            let creds = kubelet::api::credentials(&state.join("upstream"))?;
            let served = kubelet::api::Served {
                logs: Arc::new(crate::lab::hooks::LogFiles { dir: log_dir.clone() }),
                client: client.clone(),
                streaming: Arc::new(crate::lab::hooks::PodCommands {
                    plan: (*plan).clone(),
                    state: state.to_owned(),
                    exe: exe.clone(),
                    consoles: consoles.clone(),
                }),
            };
            let (port, _task) = kubelet::api::start(&creds, served)
                .await
                .context("starting the kubelet API")?;
            // kube-apiserver reaches the kubelet API, pods and Services through this proxy
            let egress = crate::lab::egress::bind(&crate::lab::egress::socket_path(&state.join("upstream")))?;
            tokio::spawn(crate::lab::egress::serve(
                egress,
                crate::lab::egress::Routes {
                    kubelet: SocketAddr::from(([127, 0, 0, 1], port)),
                    dialer: crate::lab::hooks::NodeDialer {
                        netns: plan.nodes[0].netns.clone(),
                    },
                },
            ));
            Some(port)
        }
    };
    let mut kubelets = Vec::new();
    for node in &plan.nodes {
        let ctx = Arc::new(NodeContext {
            plan: plan.clone(),
            node: node.clone(),
            client: client.clone(),
            exe: exe.clone(),
            log_dir: log_dir.clone(),
            ips: Mutex::new(IpPool::new(node.pod_cidr)),
            address: RwLock::new(node.ip),
            state: state.to_owned(),
            dns: kubelet::dns_config::ClusterDnsSettings {
                server: CLUSTER_DNS_IP.to_owned(),
                domain: CLUSTER_DOMAIN.to_owned(),
            },
            api: api_address,
            dns_kubeconfig: dns_kubeconfig.clone(),
            kubelet_port,
            consoles: consoles.clone(),
        });
        let stop = shutdown.clone();
        let name = node.name.clone();
        kubelets.push(tokio::spawn(async move {
            if let Err(e) = kubelet::run(ctx, stop).await {
                tracing::error!(node = %name, error = %format!("{e:#}"), "kubelet stopped");
            }
        }));
        let launch = options.proxy.launch(
            &exe,
            &options.upstream_bin,
            node,
            &proxy_kubeconfig,
            state,
            &options.nodeport_addresses,
        );
        if launch.in_node_namespace {
            // a proxy inside the node's namespace reaches the API server through a relay
            let listener = api_relay::bind(&node.netns, api_address)
                .with_context(|| format!("relaying the API server into {}", node.netns))?;
            tokio::spawn(api_relay::serve(listener, api_address));
        }
        tokio::spawn(supervisor::supervise(
            launch,
            node.clone(),
            state.to_owned(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(scheduler::run(client.clone()));
    let (lb_client, lb_plan, lb_stop) = (client.clone(), plan.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = load_balancer::run(lb_client, lb_plan, lb_stop).await {
            tracing::error!(error = %format!("{e:#}"), "load-balancer controller stopped");
        }
    });
    wait_for_nodes(&client, plan.nodes.len()).await?;
    if options.cluster_dns {
        deploy_cluster_dns(&client).await.context("deploying the cluster DNS")?;
    }
    let ready = Ready {
        api_server: started.api_server,
        kubeconfig,
        plan: (*plan).clone(),
        control_plane: options.control_plane,
        nodeport_addresses: options.nodeport_addresses.clone(),
    };
    std::fs::write(ready_path(state), serde_json::to_vec_pretty(&ready)?)?;
    tracing::info!(api = %ready.api_server, "lab is up");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        why = control.stopped() => tracing::error!("{why}"),
    }
    tracing::info!("stopping the lab");
    let _ = shutdown_tx.send(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for k in kubelets {
        let _ = tokio::time::timeout(Duration::from_secs(10), k).await;
    }
    control.stop().await;
    Ok(())
}

/// Creates `kube-system` (when the control plane has not) and the cluster DNS in it.
async fn deploy_cluster_dns(client: &Client) -> Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let kube_system = serde_json::from_value(serde_json::json!({"metadata": {"name": "kube-system"}}))?;
    match namespaces.create(&kube::api::PostParams::default(), &kube_system).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    super::demo::create_all(client, super::demo::CLUSTER_DNS).await
}

async fn wait_for_nodes(client: &Client, want: usize) -> Result<()> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    for _ in 0..200 {
        if nodes
            .list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.len() >= want)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the nodes did not register within 20 s")
}
