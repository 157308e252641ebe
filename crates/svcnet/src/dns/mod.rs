//! `svcnet dns`: cluster DNS for any Kubernetes API server, the lab's `kube-dns`. It watches
//! Services and EndpointSlices into a [`ClusterDns`] index (each event updates one object's
//! records) and serves it over UDP and TCP with hickory-server ([`server`]). The sockets are
//! bound once both initial lists are in, so a readiness probe on the port means "has data".

pub mod server;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use svcnet_core::dns::ClusterDns;

pub struct Options {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub listen: SocketAddr,
    pub cluster_domain: String,
    /// Stop after this long (lab pods are bounded in time).
    pub exit_after: Duration,
}

enum Change {
    Service(Box<watcher::Event<Service>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
}

/// Serves until `exit_after` or an error.
pub async fn run(options: Options) -> Result<()> {
    let client = match &options.kubeconfig {
        Some(path) => crate::lab::daemon::client_for(path).await?,
        None => Client::try_default()
            .await
            .context("no kubeconfig given and none found")?,
    };
    let index = Arc::new(RwLock::new(ClusterDns::new(&options.cluster_domain)));
    let services = watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Change::Service(Box::new(e))))
        .boxed();
    let slices = watcher(Api::<EndpointSlice>::all(client), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Change::Slice(Box::new(e))))
        .boxed();
    let mut changes = futures::stream::select(services, slices);
    let mut listed = (false, false);
    let mut relists = Relists::default();
    let mut server: Option<hickory_server::Server<server::Handler>> = None;
    let deadline = tokio::time::sleep(options.exit_after);
    tokio::pin!(deadline);
    loop {
        let change = tokio::select! {
            _ = &mut deadline => return Ok(()),
            change = changes.next() => change,
        };
        let Some(change) = change else { return Ok(()) };
        let change = match change {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "dns: watch error");
                continue;
            }
        };
        apply(&index, change, &mut relists, &mut listed);
        if server.is_none() && listed == (true, true) {
            let mut s = hickory_server::Server::new(server::Handler { index: index.clone() });
            let udp = tokio::net::UdpSocket::bind(options.listen)
                .await
                .with_context(|| format!("binding {} (udp)", options.listen))?;
            let tcp = tokio::net::TcpListener::bind(options.listen)
                .await
                .with_context(|| format!("binding {} (tcp)", options.listen))?;
            s.register_socket(udp);
            s.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
            tracing::info!(listen = %options.listen, zone = %options.cluster_domain, "dns: serving");
            server = Some(s);
        }
    }
}

type Key = (String, String);

/// What a (re)list has shown so far, per kind: at its end, what it did not show is gone.
#[derive(Default)]
struct Relists {
    services: Option<HashSet<Key>>,
    slices: Option<HashSet<Key>>,
}

fn key_of<K: kube::Resource>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// How one watched kind enters the index.
trait Indexed: kube::Resource + Sized {
    fn set(object: &Self, index: &mut ClusterDns);
    fn remove(index: &mut ClusterDns, namespace: &str, name: &str);
    fn keys(index: &ClusterDns) -> Vec<Key>;
}

impl Indexed for Service {
    fn set(svc: &Self, index: &mut ClusterDns) {
        index.set_service(svc);
    }
    fn remove(index: &mut ClusterDns, namespace: &str, name: &str) {
        index.remove_service(namespace, name);
    }
    fn keys(index: &ClusterDns) -> Vec<Key> {
        index.service_keys()
    }
}

impl Indexed for EndpointSlice {
    fn set(slice: &Self, index: &mut ClusterDns) {
        index.set_slice(slice);
    }
    fn remove(index: &mut ClusterDns, namespace: &str, name: &str) {
        index.remove_slice(namespace, name);
    }
    fn keys(index: &ClusterDns) -> Vec<Key> {
        index.slice_keys()
    }
}

/// One watch event of kind `K` into the index; at the end of a (re)list, what it did not show
/// is removed and the kind counts as `listed`.
fn follow<K: Indexed>(
    index: &mut ClusterDns,
    event: watcher::Event<K>,
    relist: &mut Option<HashSet<Key>>,
    listed: &mut bool,
) {
    match event {
        watcher::Event::Apply(o) => K::set(&o, index),
        watcher::Event::InitApply(o) => {
            relist.get_or_insert_with(HashSet::new).insert(key_of(&o));
            K::set(&o, index);
        }
        watcher::Event::Delete(o) => K::remove(index, &o.namespace().unwrap_or_default(), &o.name_any()),
        watcher::Event::Init => *relist = Some(HashSet::new()),
        watcher::Event::InitDone => {
            let seen = relist.take().unwrap_or_default();
            for (ns, name) in K::keys(index).into_iter().filter(|k| !seen.contains(k)) {
                K::remove(index, &ns, &name);
            }
            *listed = true;
        }
    }
}

fn apply(index: &RwLock<ClusterDns>, change: Change, relists: &mut Relists, listed: &mut (bool, bool)) {
    let mut index = index.write().unwrap_or_else(|e| e.into_inner());
    match change {
        Change::Service(event) => follow(&mut index, *event, &mut relists.services, &mut listed.0),
        Change::Slice(event) => follow(&mut index, *event, &mut relists.slices, &mut listed.1),
    }
}
