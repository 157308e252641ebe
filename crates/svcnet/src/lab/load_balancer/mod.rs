//! The lab's load-balancer controller, as MetalLB or cloud-provider-kind are in other
//! clusters: every `type: LoadBalancer` Service without a `loadBalancerClass` gets an address
//! from [`LOAD_BALANCER_POOL`] on the lab's switch subnet, written to
//! `status.loadBalancer.ingress` (ipMode VIP), and the external host routes that address to
//! one node (see [`pool::announcer`]), whose proxy takes it from there. Work follows the
//! change: an event marks the Services it concerns, and only those are looked at again.
//!
//! Events (`IPAllocated`, `nodeAssigned`, `AllocationFailed`) are recorded on the Service, so
//! `kubectl describe service` says what happened.

pub mod pool;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{Stream, StreamExt};
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};

/// The field manager the load balancer's status writes are recorded as.
const FIELD_MANAGER: &str = "svcnet-lab-load-balancer";
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use super::plan::{LOAD_BALANCER_POOL, LabPlan};
use crate::rtnl::Rtnl;
use pool::{Announcer, Key, Pool, Request};

/// How the lab's controller signs its events.
const COMPONENT: &str = "svcnet-lab-load-balancer";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the controller needs to know of a LoadBalancer Service it serves.
#[derive(Clone, Debug)]
struct Served {
    service: Arc<Service>,
    request: Request,
    local_only: bool,
}

/// One watched object, of any of the three kinds.
enum Change {
    Services(Box<watcher::Event<Service>>),
    Slices(Box<watcher::Event<EndpointSlice>>),
    Nodes(Box<watcher::Event<Node>>),
}

/// The controller's memory of the cluster: only what decides addresses and announcers.
#[derive(Default)]
struct View {
    served: HashMap<Key, Served>,
    /// Services that are not (or no longer) LoadBalancers but have an ingress in their status
    /// that this controller wrote.
    to_clear: HashMap<Key, Arc<Service>>,
    /// Per EndpointSlice `(namespace, name)`: its Service and the nodes with a ready endpoint.
    slices: HashMap<Key, (Key, BTreeSet<String>)>,
    nodes: BTreeMap<String, Option<Ipv4Addr>>,
    relisting: Option<BTreeSet<Key>>,
    /// The EndpointSlices a relist has shown so far (the rest are gone at its end).
    relisting_slices: Option<BTreeSet<Key>>,
}

impl View {
    fn nodes_with_ready_endpoints(&self, service: &Key) -> BTreeSet<String> {
        self.slices
            .values()
            .filter(|(owner, _)| owner == service)
            .flat_map(|(_, nodes)| nodes.iter().cloned())
            .collect()
    }

    fn announcers(&self) -> Vec<Announcer> {
        self.nodes
            .iter()
            .filter_map(|(name, ip)| ip.map(|ip| Announcer { name: name.clone(), ip }))
            .collect()
    }
}

fn key_of<K: kube::Resource>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

fn pool_contains(ip: Ipv4Addr) -> bool {
    (LOAD_BALANCER_POOL.0..=LOAD_BALANCER_POOL.1).contains(&ip)
}

/// The ingress addresses of a Service's status.
fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// Whether this controller serves `svc`: a LoadBalancer of the default class.
fn is_served(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .is_some_and(|s| s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none())
}

fn served(svc: Service) -> Served {
    let spec = svc.spec.clone().unwrap_or_default();
    let families = spec.ip_families.clone().unwrap_or_default();
    Served {
        request: Request {
            requested: spec.load_balancer_ip.clone(),
            held: ingress_ips(&svc),
            ipv6_only: !families.is_empty() && families.iter().all(|f| f == "IPv6"),
        },
        local_only: spec.external_traffic_policy.as_deref() == Some("Local"),
        service: Arc::new(svc),
    }
}

/// Nodes with a ready endpoint in `slice`.
fn ready_nodes(slice: &EndpointSlice) -> BTreeSet<String> {
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

/// A node's InternalIP when it is ready (an unready node announces nothing).
fn announcing_ip(node: &Node) -> Option<Ipv4Addr> {
    let status = node.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let schedulable = !node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if !ready || !schedulable {
        return None;
    }
    status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse().ok())
}

/// Runs the controller for lab `plan` until `shutdown`.
pub async fn run(client: Client, plan: Arc<LabPlan>, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let mut controller = Controller {
        client: client.clone(),
        routes: Rtnl::open_in(&plan.external_netns).context("netlink in the external host")?,
        routed: BTreeMap::new(),
        pool: Pool::new(LOAD_BALANCER_POOL),
        announced: HashMap::new(),
        view: View::default(),
        dirty: BTreeSet::new(),
        retry: BTreeSet::new(),
    };
    let mut retry_tick = tokio::time::interval(Duration::from_secs(1));
    let mut changes = futures::stream::select_all([
        changes(Api::<Service>::all(client.clone()), |e| Change::Services(Box::new(e))),
        changes(Api::<EndpointSlice>::all(client.clone()), |e| {
            Change::Slices(Box::new(e))
        }),
        changes(Api::<Node>::all(client.clone()), |e| Change::Nodes(Box::new(e))),
    ]);
    loop {
        let change = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = retry_tick.tick() => {
                let retry = std::mem::take(&mut controller.retry);
                controller.dirty.extend(retry);
                controller.reconcile().await;
                continue;
            }
            change = changes.next() => change,
        };
        let Some(change) = change else { return Ok(()) };
        controller.observe(change);
        // take what else has arrived, then act once for all of it
        while let Some(Some(more)) = futures::FutureExt::now_or_never(changes.next()) {
            controller.observe(more);
        }
        controller.reconcile().await;
    }
}

fn changes<K, F>(api: Api<K>, wrap: F) -> futures::stream::BoxStream<'static, Change>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(watcher::Event<K>) -> Change + Send + 'static,
{
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send>> =
        watcher(api, watcher::Config::default()).default_backoff().boxed();
    events
        .filter_map(move |e| {
            let out = match e {
                Ok(event) => Some(wrap(event)),
                Err(e) => {
                    tracing::warn!(error = %e, "load balancer: watch error");
                    None
                }
            };
            futures::future::ready(out)
        })
        .boxed()
}

struct Controller {
    client: Client,
    /// The external host's routing table, where an address is announced.
    routes: Rtnl,
    /// Address → the node IP it is routed to now.
    routed: BTreeMap<Ipv4Addr, Ipv4Addr>,
    pool: Pool,
    /// Service → the node announcing its address (for the `nodeAssigned` event on a change).
    announced: HashMap<Key, String>,
    view: View,
    dirty: BTreeSet<Key>,
    /// Services whose last reconcile failed (an API or netlink error), tried again each second.
    retry: BTreeSet<Key>,
}

impl Controller {
    fn observe(&mut self, change: Change) {
        let view = &mut self.view;
        match change {
            Change::Services(event) => match *event {
                watcher::Event::Init => view.relisting = Some(BTreeSet::new()),
                watcher::Event::InitDone => {
                    let seen = view.relisting.take().unwrap_or_default();
                    let gone: Vec<Key> = view.served.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                    for key in gone {
                        view.served.remove(&key);
                        self.dirty.insert(key);
                    }
                }
                watcher::Event::Apply(svc) | watcher::Event::InitApply(svc) => {
                    let key = key_of(&svc);
                    if let Some(seen) = &mut view.relisting {
                        seen.insert(key.clone());
                    }
                    if is_served(&svc) {
                        view.to_clear.remove(&key);
                        view.served.insert(key.clone(), served(svc));
                    } else {
                        view.served.remove(&key);
                        if ingress_ips(&svc).into_iter().any(pool_contains)
                            && svc.spec.as_ref().is_some_and(|s| s.load_balancer_class.is_none())
                        {
                            view.to_clear.insert(key.clone(), Arc::new(svc));
                        }
                    }
                    self.dirty.insert(key);
                }
                watcher::Event::Delete(svc) => {
                    let key = key_of(&svc);
                    view.served.remove(&key);
                    view.to_clear.remove(&key);
                    self.dirty.insert(key);
                }
            },
            Change::Slices(event) => {
                let (slice, deleted) = match *event {
                    watcher::Event::Apply(s) => (s, false),
                    watcher::Event::InitApply(s) => {
                        if let Some(seen) = &mut view.relisting_slices {
                            seen.insert(key_of(&s));
                        }
                        (s, false)
                    }
                    watcher::Event::Delete(s) => (s, true),
                    watcher::Event::Init => {
                        view.relisting_slices = Some(BTreeSet::new());
                        return;
                    }
                    // slices deleted while the watch was away: gone, and their Services
                    // looked at again
                    watcher::Event::InitDone => {
                        let seen = view.relisting_slices.take().unwrap_or_default();
                        let gone: Vec<Key> = view.slices.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                        for key in gone {
                            if let Some((owner, _)) = view.slices.remove(&key) {
                                self.dirty.insert(owner);
                            }
                        }
                        return;
                    }
                };
                let Some(service) = slice.labels().get(SERVICE_NAME_LABEL).cloned() else {
                    return;
                };
                let owner: Key = (slice.namespace().unwrap_or_default(), service);
                let key = key_of(&slice);
                if deleted {
                    view.slices.remove(&key);
                } else {
                    view.slices.insert(key, (owner.clone(), ready_nodes(&slice)));
                }
                if view.served.get(&owner).is_some_and(|s| s.local_only) {
                    self.dirty.insert(owner);
                }
            }
            Change::Nodes(event) => {
                match *event {
                    watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                        let ip = announcing_ip(&n);
                        if view.nodes.get(&n.name_any()) == Some(&ip) {
                            return;
                        }
                        view.nodes.insert(n.name_any(), ip);
                    }
                    watcher::Event::Delete(n) => {
                        view.nodes.remove(&n.name_any());
                    }
                    watcher::Event::Init | watcher::Event::InitDone => return,
                }
                // where addresses are announced may change for every Service served
                self.dirty.extend(view.served.keys().cloned());
            }
        }
    }

    async fn reconcile(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            if let Err(e) = self.reconcile_one(&key).await {
                tracing::warn!(service = %format!("{}/{}", key.0, key.1), error = %format!("{e:#}"), "load balancer: tried again in a second");
                self.retry.insert(key);
            }
        }
    }

    async fn reconcile_one(&mut self, key: &Key) -> Result<()> {
        let Some(served) = self.view.served.get(key).cloned() else {
            if let Some(ip) = self.pool.release(key) {
                self.unroute(ip)?;
            }
            self.announced.remove(key);
            if let Some(svc) = self.view.to_clear.remove(key) {
                self.write_ingress(&svc, None).await?;
            }
            return Ok(());
        };
        let previous = self.pool.address_of(key);
        let ip = match self.pool.assign(key, &served.request) {
            Ok(ip) => ip,
            Err(why) => {
                if let Some(old) = previous {
                    self.unroute(old)?;
                }
                self.announced.remove(key);
                super::events::warn(
                    &self.client,
                    &*served.service,
                    "AllocationFailed",
                    &why,
                    COMPONENT,
                    None,
                )
                .await;
                return Ok(());
            }
        };
        if let Some(old) = previous.filter(|old| *old != ip) {
            self.unroute(old)?;
        }
        if served.request.held != [ip] {
            self.write_ingress(&served.service, Some(ip)).await?;
            let message = format!("Assigned IP [\"{ip}\"]");
            super::events::record(&self.client, &*served.service, "IPAllocated", &message, COMPONENT, None).await;
        }
        let nodes = self.view.announcers();
        let with_endpoints = self.view.nodes_with_ready_endpoints(key);
        match pool::announcer(key, served.local_only, &nodes, &with_endpoints) {
            Some(node) => {
                self.route(ip, node.ip)?;
                if self.announced.get(key) != Some(&node.name) {
                    self.announced.insert(key.clone(), node.name.clone());
                    let message = format!(
                        "announcing from node {:?} (the external host routes {ip} to {})",
                        node.name, node.ip
                    );
                    super::events::record(
                        &self.client,
                        &*served.service,
                        "nodeAssigned",
                        &message,
                        COMPONENT,
                        None,
                    )
                    .await;
                }
            }
            None => {
                self.unroute(ip)?;
                self.announced.remove(key);
            }
        }
        Ok(())
    }

    /// Writes `status.loadBalancer.ingress`: the one address, or none.
    async fn write_ingress(&self, svc: &Service, ip: Option<Ipv4Addr>) -> Result<()> {
        let (ns, name) = key_of(svc);
        let ingress = match ip {
            Some(ip) => json!([{ "ip": ip.to_string(), "ipMode": "VIP" }]),
            None => serde_json::Value::Null,
        };
        let patch = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
        Api::<Service>::namespaced(self.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .with_context(|| format!("writing the status of Service {ns}/{name}"))?;
        Ok(())
    }

    fn route(&mut self, ip: Ipv4Addr, via: Ipv4Addr) -> Result<()> {
        if self.routed.get(&ip) == Some(&via) {
            return Ok(());
        }
        self.routes
            .replace_route(host_route(ip), Some(IpAddr::V4(via)), None)
            .context("routing a load-balancer address on the external host")?;
        self.routed.insert(ip, via);
        Ok(())
    }

    fn unroute(&mut self, ip: Ipv4Addr) -> Result<()> {
        if self.routed.remove(&ip).is_some() {
            self.routes
                .delete_route(host_route(ip))
                .context("removing a load-balancer route from the external host")?;
        }
        Ok(())
    }
}

fn host_route(ip: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::from(ip))
}
