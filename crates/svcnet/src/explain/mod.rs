//! `svcnet explain FROM TO`: why a client does or does not reach a Service. It joins three
//! views of one packet: the API's (the Service, its policies, and every endpoint with whether
//! this client may use it and why not), the rules' (the path through the node's compiled
//! ruleset, walked by the rule evaluator, to the verdict with its probabilities), and the
//! kernel's (whether the node's rules equal the compiled ones, and the conntrack entries of
//! the destination).

mod kernel;
mod probe;
mod report;
mod target;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::compile::compile;
use svcnet_dataplane::endpoint_choice::{self, Client, Destination};
use svcnet_dataplane::eval::{self, Host, Origin};
use svcnet_dataplane::ir::Family;
use svcnet_dataplane::model::{Policy, ProxyConfig, ProxyModel, ServicePort};

use report::{EndpointView, Report, ServiceView};
use target::Objects;

pub struct Options {
    pub from: String,
    pub to: String,
    pub namespace: String,
    /// A lab by name: its API server, node namespaces, CIDRs and external host.
    pub lab: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    /// The node the packet enters (for `external` and addresses).
    pub node: Option<String>,
    /// Where the node's rules are (without `--lab`): a named namespace, else this one.
    pub netns: Option<String>,
    pub protocol: Option<Protocol>,
    pub cluster_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
    pub nodeport_addresses: Vec<IpNet>,
    pub masquerade_all: bool,
    /// Also send a real connection, traced (labs only).
    pub probe: bool,
    pub json: bool,
}

/// Where the cluster is and how its nodes are reached.
struct Cluster {
    kubeconfig: Option<PathBuf>,
    external: Option<IpAddr>,
    /// Node name → the namespace holding its rules.
    netns: BTreeMap<String, String>,
    /// Addresses of every node besides those the Node objects give (the pods' gateway).
    extra_local: Vec<IpAddr>,
    config: ProxyConfig,
    cluster_cidrs: Vec<IpNet>,
    service_cidrs: Vec<IpNet>,
    /// A lab's layout (for `--probe`).
    plan: Option<crate::lab::plan::LabPlan>,
}

fn cluster(opts: &Options) -> Result<Cluster> {
    let config = ProxyConfig {
        masquerade_all: opts.masquerade_all,
        node_port_addresses: opts.nodeport_addresses.clone(),
        ..ProxyConfig::default()
    };
    let Some(name) = &opts.lab else {
        return Ok(Cluster {
            kubeconfig: opts.kubeconfig.clone(),
            external: None,
            netns: BTreeMap::new(),
            extra_local: Vec::new(),
            config,
            cluster_cidrs: opts.cluster_cidrs.clone(),
            service_cidrs: opts.service_cidrs.clone(),
            plan: None,
        });
    };
    let ready = crate::lab::commands::ready_lab(name)?;
    use crate::lab::plan::{CLUSTER_CIDR, POD_GATEWAY, SERVICE_CIDR};
    Ok(Cluster {
        kubeconfig: Some(ready.kubeconfig.clone()),
        external: Some(IpAddr::V4(ready.plan.external_ip)),
        netns: ready
            .plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.netns.clone()))
            .collect(),
        extra_local: vec![POD_GATEWAY.parse()?],
        config: ProxyConfig {
            node_port_addresses: ready.nodeport_addresses.clone(),
            ..config
        },
        cluster_cidrs: vec![CLUSTER_CIDR.parse()?],
        service_cidrs: vec![SERVICE_CIDR.parse()?],
        plan: Some(ready.plan.clone()),
    })
}

async fn fetch(kubeconfig: Option<&PathBuf>) -> Result<Objects> {
    let client = match kubeconfig {
        Some(path) => crate::lab::daemon::client_for(path).await?,
        None => kube::Client::try_default()
            .await
            .context("connecting to the API server")?,
    };
    let lp = ListParams::default();
    Ok(Objects {
        services: Api::<Service>::all(client.clone()).list(&lp).await?.items,
        slices: Api::<EndpointSlice>::all(client.clone()).list(&lp).await?.items,
        nodes: Api::<Node>::all(client.clone()).list(&lp).await?.items,
        pods: Api::<Pod>::all(client).list(&lp).await?.items,
    })
}

pub fn run(opts: &Options) -> Result<ExitCode> {
    let cluster = cluster(opts)?;
    let objects = tokio::runtime::Runtime::new()?.block_on(fetch(cluster.kubeconfig.as_ref()))?;
    let report = explain(opts, &cluster, &objects)?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(opts: &Options, cluster: &Cluster, objects: &Objects) -> Result<Report> {
    // the node the packet enters, when the client is outside: the node it is sent to, else
    // --node, else the first node
    let to_address: Option<SocketAddr> = opts.to.parse().ok();
    let chosen = opts
        .node
        .clone()
        .or_else(|| to_address.and_then(|a| target::node_with_address(objects, a.ip())));
    let entry = chosen
        .clone()
        .or_else(|| objects.nodes.first().and_then(|n| n.metadata.name.clone()));
    let source = target::source(&opts.from, &opts.namespace, cluster.external, entry.as_deref(), objects)?;
    let node = target::find_node(objects, &source.node)?;
    if let Some(reason) = opts
        .to
        .strip_prefix("svc/")
        .and_then(|rest| ignored(objects, &opts.namespace, rest))
    {
        bail!("{reason}");
    }
    let mut model = ProxyModel::build(
        &source.node,
        svcnet_agent::tracker::node_addresses(node),
        cluster.cluster_cidrs.clone(),
        cluster.service_cidrs.clone(),
        cluster.config.clone(),
        &objects.services,
        &objects.slices,
    );
    model.node_zone = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("topology.kubernetes.io/zone").cloned());
    let pod_client = model.cluster_cidrs.iter().any(|n| n.contains(&source.address));
    let from_outside = source.origin == Origin::Arrives && !pod_client;
    let target = target::target(&opts.to, &opts.namespace, opts.protocol, &model, from_outside)?;
    let family = if target.address.is_ipv4() {
        Family::Ip
    } else {
        Family::Ip6
    };
    let rules = compile(&model);
    let netns = cluster.netns.get(&source.node).cloned().or_else(|| opts.netns.clone());
    let dynamic_sets = kernel::dynamic_sets(netns.as_deref(), &rules, family).unwrap_or_default();
    let mut host = Host {
        dynamic_sets,
        ..Host::default()
    };
    host.local_addresses.extend(model.node_ips.iter().copied());
    host.local_addresses.extend(cluster.extra_local.iter().copied());
    host.local_addresses
        .extend([IpAddr::from([127, 0, 0, 1]), "::1".parse()?]);
    let packet = eval::Packet::new(
        source.origin,
        target.protocol,
        SocketAddr::new(source.address, 0),
        target.address,
    );
    let evaluation = eval::evaluate(&rules, &host, &packet);

    let names = endpoint_names(objects);
    let (walk, verdicts) = report::walk(&evaluation, |ep| match names.get(&ep.ip()) {
        Some((Some(pod), Some(node))) => Some(format!("{pod} on {node}")),
        Some((Some(pod), None)) => Some(pod.clone()),
        Some((None, Some(node))) => Some(format!("on {node}")),
        _ => None,
    });
    let client = Client::of(&model, source.address, source.origin == Origin::Local);
    let service = target.port.as_ref().map(|(sp, destination)| {
        service_view(
            &model,
            objects,
            sp,
            *destination,
            client,
            &names,
            &host,
            (source.address, target.address),
        )
    });
    let port = target.port.as_ref().map(|(sp, _)| sp);
    let kernel = kernel::check(netns.as_deref(), &model, family, target.protocol, target.address, port)
        .map_err(|e| format!("{e:#}"));
    let probe = opts.probe.then(|| {
        let plan = cluster.plan.as_ref().context("--probe needs --lab")?;
        let node_netns = netns.as_deref().context("the node's namespace")?;
        let client_netns = client_netns(opts, plan, objects)?;
        probe::run(
            &client_netns,
            node_netns,
            source.address,
            target.address,
            target.protocol,
            &evaluation,
        )
    });
    let probe = probe.map(|p| p.map_err(|e: anyhow::Error| format!("{e:#}")));
    let mut notes = Vec::new();
    if chosen.is_none() && source.origin == Origin::Arrives && !pod_client {
        notes.push(format!(
            "the packet is taken to enter at {} (the first node); a load balancer may send it to another, which --node names",
            source.node
        ));
    }
    Ok(Report {
        probe,
        notes,
        from: source,
        to: target.address,
        protocol: target.protocol.as_str().to_owned(),
        service,
        walk,
        verdicts,
        kernel,
    })
}

/// The lab namespace the client sends from.
fn client_netns(opts: &Options, plan: &crate::lab::plan::LabPlan, objects: &Objects) -> Result<String> {
    if let Some(node) = opts.from.strip_prefix("node/") {
        return plan
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.netns.clone())
            .with_context(|| format!("no node {node} in the lab"));
    }
    if opts.from == "external" {
        return Ok(plan.external_netns.clone());
    }
    if opts.from.parse::<IpAddr>().is_ok() {
        bail!("--probe sends from a pod, a node or external, not from an address");
    }
    let name = opts.from.strip_prefix("pod/").unwrap_or(&opts.from);
    let uid = objects
        .pods
        .iter()
        .find(|p| {
            p.metadata.name.as_deref() == Some(name) && p.metadata.namespace.as_deref() == Some(opts.namespace.as_str())
        })
        .and_then(|p| p.metadata.uid.clone())
        .with_context(|| format!("no pod {}/{name}", opts.namespace))?;
    Ok(plan.pod_netns(&uid))
}

/// Why the proxy leaves `svc/NAME[:PORT]` alone, when it does.
fn ignored(objects: &Objects, namespace: &str, rest: &str) -> Option<String> {
    let name = rest.split(':').next().unwrap_or(rest);
    let Some(svc) = objects
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name) && s.metadata.namespace.as_deref() == Some(namespace))
    else {
        return Some(format!("no service {namespace}/{name}"));
    };
    let spec = svc.spec.as_ref()?;
    let labels = svc.metadata.labels.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return Some(format!(
            "service {namespace}/{name} is an ExternalName: only DNS answers for it (a CNAME to {}); no proxy rule exists",
            spec.external_name.as_deref().unwrap_or("?")
        ));
    }
    if spec.cluster_ip.as_deref() == Some("None") {
        return Some(format!(
            "service {namespace}/{name} is headless (clusterIP: None): clients reach its pods' addresses directly, through DNS; no proxy rule exists"
        ));
    }
    if let Some(proxy) = labels.get(svcnet_dataplane::model::LABEL_SERVICE_PROXY_NAME) {
        return Some(format!(
            "service {namespace}/{name} has the label service.kubernetes.io/service-proxy-name={proxy}: another proxy serves it, svcnet leaves it alone"
        ));
    }
    None
}

/// An endpoint's pod and node, when its slice names them.
type Names = (Option<String>, Option<String>);

/// Endpoint address → (pod, node), as far as the EndpointSlices name them.
fn endpoint_names(objects: &Objects) -> BTreeMap<IpAddr, Names> {
    let mut out = BTreeMap::new();
    for slice in &objects.slices {
        for e in slice.endpoints.iter().flatten() {
            let pod = e.target_ref.as_ref().and_then(|r| r.name.clone());
            let node = e.node_name.clone();
            for a in &e.addresses {
                if let Ok(ip) = a.parse() {
                    out.insert(ip, (pod.clone(), node.clone()));
                }
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn service_view(
    model: &ProxyModel,
    objects: &Objects,
    sp: &ServicePort,
    destination: Destination,
    client: Client,
    names: &BTreeMap<IpAddr, Names>,
    host: &Host,
    (source, to): (IpAddr, SocketAddr),
) -> ServiceView {
    let choice = endpoint_choice::choose(model, sp, destination, client);
    let svc = objects.services.iter().find(|s| {
        s.metadata.name.as_deref() == Some(sp.name.as_str())
            && s.metadata.namespace.as_deref() == Some(sp.namespace.as_str())
    });
    let service_type = svc
        .and_then(|s| s.spec.as_ref()?.type_.clone())
        .unwrap_or_else(|| "ClusterIP".into());
    let mut notes = Vec::new();
    let endpoints = choice
        .endpoints
        .iter()
        .map(|e| {
            let (pod, node) = names.get(&e.address).cloned().unwrap_or_default();
            if let Some(p) = pod.as_deref()
                && let Some(note) = undeclared_port(objects, &sp.namespace, p, e.port)
            {
                notes.push(note);
            }
            EndpointView {
                address: SocketAddr::new(e.address, e.port),
                pod,
                node,
                used: e.used,
                reason: e.reason.clone(),
            }
        })
        .collect();
    if sp.affinity_timeout_seconds.is_some() && host.dynamic_sets.values().any(|m| m.contains(&source)) {
        notes.push(format!(
            "session affinity: the kernel remembers {source}, so it goes back to the endpoint it used last"
        ));
    }
    let served_on = if sp.node_port.is_some() {
        model
            .node_ips
            .iter()
            .filter(|ip| {
                model.config.node_port_addresses.is_empty()
                    || model.config.node_port_addresses.iter().any(|n| n.contains(*ip))
            })
            .copied()
            .collect()
    } else {
        Vec::new()
    };
    if sp.node_port.is_some() && served_on.is_empty() {
        let cidrs: Vec<String> = model
            .config
            .node_port_addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        notes.push(format!(
            "no address of node {} is in nodePortAddresses ({}): its node ports are not served on this node",
            model.node_name,
            cidrs.join(", ")
        ));
    } else if destination == Destination::NodePort && !served_on.contains(&to.ip()) {
        notes.push(format!("{} does not serve node ports (nodePortAddresses)", to.ip()));
    }
    let ranges = &sp.load_balancer_source_ranges;
    if sp.load_balancer_ips.contains(&to.ip()) && !ranges.is_empty() {
        let listed: Vec<String> = ranges.iter().map(ToString::to_string).collect();
        let inside = ranges.iter().any(|n| n.contains(&source));
        notes.push(format!(
            "loadBalancerSourceRanges {}: the client {source} is {}",
            listed.join(", "),
            if inside {
                "inside them"
            } else {
                "outside them, so its packets to the load-balancer address are dropped"
            }
        ));
    }
    let policy = |p: Policy| format!("{p:?}");
    ServiceView {
        service: format!("{}/{}", sp.namespace, sp.name),
        port: format!(
            "{}{}/{}",
            if sp.port_name.is_empty() {
                String::new()
            } else {
                format!("{} ", sp.port_name)
            },
            sp.port,
            sp.protocol.as_str()
        ),
        service_type,
        reached_as: match destination {
            Destination::ClusterIp => "its cluster IP".into(),
            Destination::NodePort => format!("its node port {}", sp.node_port.unwrap_or_default()),
            Destination::ExternalAddress => "an external or load-balancer address".into(),
        },
        external_traffic_policy: policy(sp.external_traffic_policy),
        internal_traffic_policy: policy(sp.internal_traffic_policy),
        session_affinity: sp
            .affinity_timeout_seconds
            .map(|t| format!("sessionAffinity ClientIP ({t} s)")),
        view: choice.view,
        endpoints,
        when_none: choice.when_none,
        node_port_addresses: served_on,
        notes,
    }
}

/// A note when the pod declares container ports and none is `port` (a wrong targetPort).
fn undeclared_port(objects: &Objects, namespace: &str, pod: &str, port: u16) -> Option<String> {
    let pod_object = objects
        .pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod) && p.metadata.namespace.as_deref() == Some(namespace))?;
    let declared: Vec<i32> = pod_object
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| p.container_port)
        .collect();
    (!declared.is_empty() && !declared.contains(&i32::from(port))).then(|| {
        let declared: Vec<String> = declared.iter().map(ToString::to_string).collect();
        format!(
            "pod {pod} declares container port(s) {} but the service sends to {port}: is targetPort right?",
            declared.join(", ")
        )
    })
}
