//! The lab daemon (`svcnet lab daemon`, started by `up`): builds the namespaces, then runs the
//! API server, the scheduler, and per node a kubelet and the node agent's proxy (a process of
//! its own, see [`supervisor`](super::supervisor)), until SIGTERM
//! or SIGINT; then stops every pod and removes every namespace it made.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::kubelet::{self, NodeContext, sandbox::IpPool};
use super::plan::{LabPlan, SERVICE_CIDR};
use super::{scheduler, supervisor, topology};

/// What a running lab tells the other commands (`<state>/ready.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub api_server: String,
    pub kubeconfig: PathBuf,
    pub plan: LabPlan,
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

/// Runs lab `plan` with its state in `state` and the API server on `api`.
pub fn run(plan: LabPlan, state: &Path, api: SocketAddr) -> Result<()> {
    let result = tokio::runtime::Runtime::new()?.block_on(serve(plan.clone(), state, api));
    // whatever happened, nothing is left behind
    let removed = topology::remove_all(&plan.name);
    let _ = std::fs::remove_file(ready_path(state));
    tracing::info!(namespaces = removed, "lab stopped");
    result
}

async fn serve(plan: LabPlan, state: &Path, api: SocketAddr) -> Result<()> {
    let build_plan = plan.clone();
    tokio::task::spawn_blocking(move || topology::build(&build_plan))
        .await?
        .context("building the lab's network")?;
    let plan = Arc::new(plan);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let config = svcnet_apiserver::Config {
        data_dir: state.join("apiserver"),
        listen: api,
        service_cidrs: vec![SERVICE_CIDR.parse()?],
        node_ports: svcnet_core::alloc::PortRange::DEFAULT,
        dialer: Some(Arc::new(super::hooks::NodeDialer {
            netns: plan.nodes[0].netns.clone(),
        })),
        pod_logs: Some(Arc::new(super::hooks::LogFiles {
            dir: state.join("pods"),
        })),
    };
    let mut apiserver = tokio::spawn(svcnet_apiserver::run(config, move |addr, kubeconfig| {
        let _ = ready_tx.send((addr, kubeconfig));
    }));
    let (addr, kubeconfig) = tokio::select! {
        r = ready_rx => match r {
            Ok(ready) => ready,
            // it stopped before it was ready: say why
            Err(_) => match apiserver.await {
                Ok(Err(e)) => bail!("the API server did not start: {e}"),
                other => bail!("the API server did not start: {other:?}"),
            },
        },
        r = &mut apiserver => match r {
            Ok(Err(e)) => bail!("the API server did not start: {e}"),
            other => bail!("the API server stopped: {other:?}"),
        },
    };
    let client = client_for(&kubeconfig).await?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let log_dir = state.join("pods");
    std::fs::create_dir_all(&log_dir)?;
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let mut kubelets = Vec::new();
    for node in &plan.nodes {
        let ctx = Arc::new(NodeContext {
            plan: plan.clone(),
            node: node.clone(),
            client: client.clone(),
            exe: exe.clone(),
            log_dir: log_dir.clone(),
            ips: Mutex::new(IpPool::new(node.pod_cidr)),
        });
        let stop = shutdown.clone();
        let name = node.name.clone();
        kubelets.push(tokio::spawn(async move {
            if let Err(e) = kubelet::run(ctx, stop).await {
                tracing::error!(node = %name, error = %format!("{e:#}"), "kubelet stopped");
            }
        }));
        tokio::spawn(supervisor::supervise(
            exe.clone(),
            node.clone(),
            kubeconfig.clone(),
            state.to_owned(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(scheduler::run(client.clone()));
    wait_for_nodes(&client, plan.nodes.len()).await?;
    let ready = Ready {
        api_server: format!("https://{addr}"),
        kubeconfig,
        plan: (*plan).clone(),
    };
    std::fs::write(ready_path(state), serde_json::to_vec_pretty(&ready)?)?;
    tracing::info!(api = %ready.api_server, "lab is up");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        r = &mut apiserver => tracing::error!(result = ?r, "the API server stopped"),
    }
    tracing::info!("stopping the lab");
    let _ = shutdown_tx.send(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for k in kubelets {
        let _ = tokio::time::timeout(Duration::from_secs(10), k).await;
    }
    Ok(())
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
