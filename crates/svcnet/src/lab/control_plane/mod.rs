//! The control plane a lab runs: svcnet's own API server (the default), or upstream's etcd,
//! kube-apiserver and kube-controller-manager built from their Go modules (`cargo xtask
//! upstream`), the proof that the lab's kubelets, scheduler and node agents work against a real
//! cluster's control plane. Either way the lab gets an admin kubeconfig and the kubeconfig its
//! node agents use.
//!
//! - [`embedded`]: `svcnet apiserver` in the daemon's process.
//! - [`upstream`]: upstream's processes on loopback, RBAC on, the node agents holding the token
//!   of the ServiceAccount `deploy/svcnet-proxy.yaml` creates and nothing more.

pub mod embedded;
pub mod upstream;

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::plan::LabPlan;

/// Which control plane a lab runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ControlPlane {
    /// svcnet's API server with its built-in controllers.
    #[default]
    Svcnet,
    /// Upstream etcd, kube-apiserver and kube-controller-manager.
    Upstream,
}

/// How to start a control plane.
pub struct Settings<'a> {
    pub plan: &'a LabPlan,
    pub state: &'a Path,
    pub api: std::net::SocketAddr,
    /// Where upstream's binaries are (upstream only).
    pub upstream_bin: PathBuf,
    /// The containers' consoles, which `kubectl attach` reaches.
    pub consoles: std::sync::Arc<crate::lab::kubelet::console::Consoles>,
}

/// A started control plane.
pub struct Started {
    /// `https://address:port`
    pub api_server: String,
    /// Where it listens.
    pub address: std::net::SocketAddr,
    /// The admin's kubeconfig (kubectl, kubelets, scheduler).
    pub kubeconfig: PathBuf,
    /// The kubeconfig of every node's `svcnet proxy`.
    pub proxy_kubeconfig: PathBuf,
    /// The kubeconfig of every node's kube-proxy (`--proxy kube-proxy`).
    pub kube_proxy_kubeconfig: PathBuf,
    pub running: Running,
}

/// What keeps running until the lab stops.
pub enum Running {
    Embedded(embedded::Embedded),
    Upstream(upstream::Processes),
}

impl ControlPlane {
    pub async fn start(self, settings: Settings<'_>) -> Result<Started> {
        match self {
            ControlPlane::Svcnet => embedded::start(settings).await,
            ControlPlane::Upstream => upstream::start(settings).await,
        }
    }
}

impl Running {
    /// Resolves when the control plane stopped by itself, saying how.
    pub async fn stopped(&mut self) -> String {
        match self {
            Running::Embedded(e) => e.stopped().await,
            Running::Upstream(p) => p.stopped().await,
        }
    }

    /// Stops what still runs.
    pub async fn stop(self) {
        match self {
            Running::Embedded(_) => {}
            Running::Upstream(p) => p.stop().await,
        }
    }
}
