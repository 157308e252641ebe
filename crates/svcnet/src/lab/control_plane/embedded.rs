//! svcnet's API server, run as a task of the lab daemon, with hooks that reach the lab's pods
//! (the proxy subresources) and their output (`pods/log`).

use std::sync::Arc;

use anyhow::{Result, bail};

use super::{Running, Settings, Started};

pub struct Embedded {
    task: tokio::task::JoinHandle<Result<(), svcnet_apiserver::ServeError>>,
}

impl Embedded {
    pub async fn stopped(&mut self) -> String {
        format!("the API server stopped: {:?}", (&mut self.task).await)
    }
}

pub async fn start(settings: Settings<'_>) -> Result<Started> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let config = svcnet_apiserver::Config {
        data_dir: settings.state.join("apiserver"),
        listen: settings.api,
        service_cidrs: settings.plan.service_cidrs(),
        node_ports: svcnet_core::alloc::PortRange::DEFAULT,
        dialer: Some(Arc::new(crate::lab::hooks::NodeDialer {
            netns: settings.plan.nodes[0].netns.clone(),
        })),
        pod_logs: Some(Arc::new(crate::lab::hooks::LogFiles {
            dir: settings.state.join("pods"),
        })),
        pod_streaming: Some(Arc::new(crate::lab::hooks::PodCommands {
            plan: settings.plan.clone(),
            state: settings.state.to_owned(),
            exe: std::env::current_exe()?.to_string_lossy().into_owned(),
            consoles: settings.consoles.clone(),
        })),
    };
    let mut task = tokio::spawn(svcnet_apiserver::run(config, move |addr, kubeconfig| {
        let _ = ready_tx.send((addr, kubeconfig));
    }));
    let (addr, kubeconfig) = tokio::select! {
        r = ready_rx => match r {
            Ok(ready) => ready,
            // it stopped before it was ready: say why
            Err(_) => match task.await {
                Ok(Err(e)) => bail!("the API server did not start: {e}"),
                other => bail!("the API server did not start: {other:?}"),
            },
        },
        r = &mut task => match r {
            Ok(Err(e)) => bail!("the API server did not start: {e}"),
            other => bail!("the API server stopped: {other:?}"),
        },
    };
    Ok(Started {
        api_server: format!("https://{addr}"),
        address: addr,
        proxy_kubeconfig: kubeconfig.clone(),
        kube_proxy_kubeconfig: kubeconfig.clone(),
        kubeconfig,
        running: Running::Embedded(Embedded { task }),
    })
}
