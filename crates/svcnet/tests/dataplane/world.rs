//! A small cluster for dataplane tests: nodes, pods running `svcnet agnhost netexec`, and an
//! external host on one switch; Services written through the core's write path; endpoint
//! slices computed by the core; each node's proxy an in-process `Syncer` programming the
//! node's namespace through the backend under test.
//!
//! Addresses: nodes 192.168.0.2 (node-1) and 192.168.0.3 (node-2); external host
//! 192.168.0.100; pods 10.180.0.x on node-1 and 10.180.2.x on node-2; services 172.30.0.0/16.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use svcnet_core::alloc::{Allocators, PortRange, SplitMix64};
use svcnet_core::endpoints::EndpointInputs;
use svcnet_core::endpoints::slices::reconcile_slices;
use svcnet_core::registry::plan_write;
use svcnet_core::service::model::ServiceModel;
use svcnet_dataplane::backend::{Backend, BackendKind};
use svcnet_dataplane::conntrack::{self, Cleaner};
use svcnet_dataplane::model::{ProxyConfig, ProxyModel};
use svcnet_dataplane::syncer::{SyncReport, Syncer};

use svcnet::netns::Namespaces;

pub const SERVICE_CIDR: &str = "172.30.0.0/16";
pub const SERVICE_CIDR6: &str = "fd00:30::/112";
pub const POD_CIDR: &str = "10.180.0.0/16";
pub const POD_CIDR6: &str = "fd00:180::/48";
pub const EXTERNAL_IP: &str = "192.168.0.100";
pub const EXTERNAL_IP6: &str = "fd00:192::100";

pub struct NodeHost {
    pub name: String,
    pub ns: String,
    pub ip: IpAddr,
    pub ip6: IpAddr,
    pod_prefix: String,
    next_pod: u8,
    pub syncer: Syncer<Box<dyn Backend + Send>>,
    /// Deletes stale UDP conntrack entries the way the backend's agent would.
    pub conntrack: Cleaner,
}

pub struct PodInfo {
    pub name: String,
    pub ns: String,
    pub ip: IpAddr,
    pub object: Pod,
}

pub struct World {
    pub nets: Namespaces,
    pub nodes: Vec<NodeHost>,
    pub external: String,
    pub pods: Vec<PodInfo>,
    pub services: BTreeMap<String, Service>,
    pub slices: Vec<EndpointSlice>,
    pub config: ProxyConfig,
    alloc: Allocators,
    rng: SplitMix64,
    started: Instant,
    next_slice: usize,
}

impl World {
    /// `nodes` nodes (1 or 2), an external host, and a switch joining them; each node's proxy
    /// uses `backend`.
    pub fn new(nodes: usize, backend: BackendKind) -> Self {
        let mut nets = Namespaces::new("svt-");
        let switch = nets.add("sw");
        nets.bridge(&switch, "br0");
        let attach = |nets: &mut Namespaces, short: &str, ip: &str, ip6: &str| -> String {
            let ns = nets.add(short);
            let port = format!("p-{short}");
            nets.veth(&ns, "eth0", &switch, &port);
            nets.enslave(&switch, &port, "br0");
            nets.address(&ns, "eth0", &format!("{ip}/24"));
            // no duplicate-address detection in these namespaces (see `Namespaces::add`)
            nets.address(&ns, "eth0", &format!("{ip6}/64"));
            ns
        };
        let external = attach(&mut nets, "ext", EXTERNAL_IP, EXTERNAL_IP6);
        let mut hosts = Vec::new();
        for i in 0..nodes {
            let ip = format!("192.168.0.{}", i + 2);
            let ip6 = format!("fd00:192::{}", i + 2);
            let ns = attach(&mut nets, &format!("node{}", i + 1), &ip, &ip6);
            nets.sysctl(&ns, "net.ipv4.ip_forward", "1");
            nets.sysctl(&ns, "net.ipv6.conf.all.forwarding", "1");
            // like a real node, a default route towards the outside (here the external host)
            nets.route(&ns, "default", Some(EXTERNAL_IP), None);
            nets.route(&ns, "default", Some(EXTERNAL_IP6), None);
            let proxy = backend
                .open(Some(&ns))
                .unwrap_or_else(|e| panic!("{backend} backend: {e}"));
            let conntrack = match backend {
                BackendKind::Netlink => Cleaner::Netlink(Some(format!("/run/netns/{ns}").into())),
                BackendKind::NftText => Cleaner::Tool(
                    ["nsenter", &format!("--net=/run/netns/{ns}"), "conntrack"]
                        .map(String::from)
                        .to_vec(),
                ),
            };
            hosts.push(NodeHost {
                name: format!("node-{}", i + 1),
                ns,
                ip: ip.parse().unwrap(),
                ip6: ip6.parse().unwrap(),
                pod_prefix: format!("10.180.{}", i * 2),
                next_pod: 1,
                syncer: Syncer::new(proxy),
                conntrack,
            });
        }
        // each node routes the other nodes' pod CIDRs to them
        for a in &hosts {
            for b in &hosts {
                if a.ns != b.ns {
                    let v6_prefix = format!("fd00:180:{}::/64", b.pod_prefix.rsplit('.').next().unwrap());
                    nets.route(&a.ns, &v6_prefix, Some(&b.ip6.to_string()), None);
                    nets.route(&a.ns, &format!("{}.0/24", b.pod_prefix), Some(&b.ip.to_string()), None);
                }
            }
        }
        World {
            nets,
            nodes: hosts,
            external,
            pods: Vec::new(),
            services: BTreeMap::new(),
            slices: Vec::new(),
            config: ProxyConfig::default(),
            alloc: Allocators::new(
                &[SERVICE_CIDR.parse().unwrap(), SERVICE_CIDR6.parse().unwrap()],
                PortRange::DEFAULT,
            )
            .unwrap(),
            rng: SplitMix64(42),
            started: Instant::now(),
            next_slice: 0,
        }
    }

    /// A pod on `node` running netexec on `ports` (HTTP and UDP on each), with `labels`.
    /// `named` adds container port names (name, port, protocol).
    pub fn add_pod(
        &mut self,
        node: usize,
        name: &str,
        labels: &str,
        ports: &[u16],
        named: &[(&str, u16, &str)],
        ready: bool,
    ) -> IpAddr {
        let host = &mut self.nodes[node];
        let ip: IpAddr = format!("{}.{}", host.pod_prefix, host.next_pod).parse().unwrap();
        let ip6: IpAddr = format!(
            "fd00:180:{}::{}",
            host.pod_prefix.rsplit('.').next().unwrap(),
            host.next_pod
        )
        .parse()
        .unwrap();
        let veth = format!("v{}", host.next_pod);
        host.next_pod += 1;
        let node_ns = host.ns.clone();
        let ns = self.nets.add(&format!("pod-{name}"));
        self.nets.veth(&node_ns, &veth, &ns, "eth0");
        let nets = &self.nets;
        nets.address(&ns, "eth0", &format!("{ip}/32"));
        nets.route(&ns, "169.254.1.1", None, Some("eth0"));
        nets.route(&ns, "default", Some("169.254.1.1"), Some("eth0"));
        nets.address(&node_ns, &veth, "169.254.1.1/32");
        nets.route(&node_ns, &format!("{ip}/32"), None, Some(&veth));
        let (ip6s, gw6) = (ip6.to_string(), "fd00:169::1");
        nets.address(&ns, "eth0", &format!("{ip6s}/128"));
        nets.route(&ns, gw6, None, Some("eth0"));
        nets.route(&ns, "default", Some(gw6), Some("eth0"));
        nets.address(&node_ns, &veth, &format!("{gw6}/128"));
        nets.route(&node_ns, &format!("{ip6s}/128"), None, Some(&veth));
        for port in ports {
            let p = port.to_string();
            self.nets.spawn(
                &ns,
                &[
                    env!("CARGO_BIN_EXE_svcnet"),
                    "agnhost",
                    "netexec",
                    "--name",
                    name,
                    "--http-port",
                    &p,
                    "--udp-port",
                    &p,
                    "--exit-after",
                    "300",
                ],
            );
        }
        let container_ports: Vec<String> = named
            .iter()
            .map(|(n, p, proto)| format!("{{name: {n}, containerPort: {p}, protocol: {proto}}}"))
            .collect();
        let object: Pod = serde_yaml_ng::from_str(&format!(
            "metadata: {{name: {name}, namespace: default, uid: uid-{name}, labels: {labels}}}
spec: {{nodeName: {}, containers: [{{name: c, image: agnhost, ports: [{}]}}]}}
status: {{phase: Running, podIP: '{ip}', podIPs: [{{ip: '{ip}'}}, {{ip: '{ip6}'}}], conditions: [{{type: Ready, status: '{}'}}]}}",
            self.nodes[node].name,
            container_ports.join(", "),
            if ready { "True" } else { "False" }
        ))
        .unwrap();
        self.pods.push(PodInfo {
            name: name.to_owned(),
            ns,
            ip,
            object,
        });
        for port in ports {
            self.wait_listening(ip, *port);
        }
        ip
    }

    fn wait_listening(&self, ip: IpAddr, port: u16) {
        let pod = self.pods.iter().find(|p| p.ip == ip).unwrap();
        for _ in 0..100 {
            let out = self.nets.exec(&pod.ns, &["ss", "-Hltn", &format!("sport = :{port}")]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("netexec in {} did not start listening on {port}", pod.name);
    }

    pub fn pod(&self, name: &str) -> &PodInfo {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// Marks a pod ready or not (as the kubelet would report it).
    pub fn set_ready(&mut self, name: &str, ready: bool) {
        let p = self.pods.iter_mut().find(|p| p.name == name).unwrap();
        let cond = &mut p.object.status.as_mut().unwrap().conditions.as_mut().unwrap()[0];
        cond.status = if ready { "True" } else { "False" }.into();
    }

    /// Marks a pod as being deleted (terminating).
    pub fn set_terminating(&mut self, name: &str) {
        let p = self.pods.iter_mut().find(|p| p.name == name).unwrap();
        p.object.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()));
    }

    /// Removes a pod from the API's view (its process keeps running).
    pub fn forget_pod(&mut self, name: &str) {
        self.pods.retain(|p| p.name != name);
    }

    /// Creates or updates a Service through the core's write path; returns the stored object.
    pub fn apply_service(&mut self, yaml: &str) -> Service {
        let mut svc: Service = serde_yaml_ng::from_str(yaml).unwrap();
        svc.metadata.namespace = Some("default".into());
        let name = svc.metadata.name.clone().unwrap();
        svc.metadata.uid = Some(format!("uid-{name}"));
        let old = self.services.get(&name).cloned();
        let planned =
            plan_write(old.as_ref(), svc, &self.alloc, &mut self.rng).unwrap_or_else(|s| panic!("{}", s.message));
        self.alloc.commit(&planned.changes).unwrap();
        self.services.insert(name, planned.service.clone());
        planned.service
    }

    /// Records a load-balancer ingress IP in a Service's status (as a cloud controller would).
    pub fn set_load_balancer_ip(&mut self, svc: &str, ip: &str) {
        let s = self.services.get_mut(svc).unwrap();
        s.status = Some(serde_yaml_ng::from_str(&format!("{{loadBalancer: {{ingress: [{{ip: '{ip}'}}]}}}}")).unwrap());
    }

    pub fn delete_service(&mut self, name: &str) {
        self.services.remove(name);
    }

    pub fn cluster_ip(&self, svc: &str) -> String {
        self.services[svc].spec.as_ref().unwrap().cluster_ip.clone().unwrap()
    }

    /// All cluster IPs of a Service (both families for a dual-stack one).
    pub fn cluster_ips(&self, svc: &str) -> Vec<String> {
        self.services[svc].spec.as_ref().unwrap().cluster_ips.clone().unwrap()
    }

    pub fn node_port(&self, svc: &str, index: usize) -> u16 {
        self.services[svc].spec.as_ref().unwrap().ports.as_ref().unwrap()[index]
            .node_port
            .unwrap() as u16
    }

    fn node_objects(&self) -> Vec<Node> {
        self.nodes
            .iter()
            .map(|n| serde_yaml_ng::from_str(&format!("metadata: {{name: {}}}", n.name)).unwrap())
            .collect()
    }

    /// Node `i`'s proxy model from the current services and endpoint slices.
    pub fn model(&self, i: usize) -> ProxyModel {
        let node = &self.nodes[i];
        let services: Vec<Service> = self.services.values().cloned().collect();
        ProxyModel::build(
            &node.name,
            vec![node.ip, node.ip6],
            vec![POD_CIDR.parse().unwrap(), POD_CIDR6.parse().unwrap()],
            vec![SERVICE_CIDR.parse().unwrap(), SERVICE_CIDR6.parse().unwrap()],
            self.config.clone(),
            &services,
            &self.slices,
        )
    }

    /// Recomputes endpoint slices, then syncs every node's proxy.
    pub fn sync(&mut self) -> Vec<SyncReport> {
        let pods: Vec<Pod> = self.pods.iter().map(|p| p.object.clone()).collect();
        let nodes = self.node_objects();
        for svc in self.services.values() {
            let Ok(model) = ServiceModel::from_service(svc) else {
                continue;
            };
            let inputs = EndpointInputs {
                service: &model,
                pods: &pods,
                nodes: &nodes,
                trigger_time: None,
            };
            let changes = reconcile_slices(&inputs, &self.slices, 100);
            for d in &changes.delete {
                self.slices.retain(|s| s.metadata.name != d.metadata.name);
            }
            for u in changes.update {
                if let Some(slot) = self.slices.iter_mut().find(|s| s.metadata.name == u.metadata.name) {
                    *slot = u;
                }
            }
            for mut c in changes.create {
                self.next_slice += 1;
                c.metadata.name = Some(format!(
                    "{}{}",
                    c.metadata.generate_name.clone().unwrap(),
                    self.next_slice
                ));
                self.slices.push(c);
            }
        }
        let live: Vec<String> = self.services.keys().cloned().collect();
        self.slices.retain(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|n| live.contains(n))
        });
        let now = self.started.elapsed().as_millis() as u64;
        let models: Vec<ProxyModel> = (0..self.nodes.len()).map(|i| self.model(i)).collect();
        let mut reports = Vec::new();
        for (node, model) in self.nodes.iter_mut().zip(models) {
            let stale = node
                .syncer
                .applied_model()
                .map(|old| conntrack::stale_udp(old, &model))
                .unwrap_or_default();
            let report = node
                .syncer
                .sync(model, now)
                .unwrap_or_else(|e| panic!("sync of {}: {e}", node.name));
            assert_eq!(node.conntrack.delete(&stale), 0, "conntrack deletion failed");
            reports.push(report);
        }
        reports
    }

    /// Runs the agnhost client in a namespace; one output line per answer.
    pub fn client(&self, ns: &str, target: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![env!("CARGO_BIN_EXE_svcnet"), "agnhost", "client", target];
        args.extend_from_slice(extra);
        let out = self.nets.exec(ns, &args);
        assert!(
            out.status.success(),
            "client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One HTTP request from a pod, node or external namespace: the answer or `ERROR <kind>`.
    pub fn get(&self, ns: &str, target: &str, path: &str) -> String {
        self.client(ns, target, &["--request", path, "--timeout-ms", "1500"])
            .remove(0)
    }

    pub fn udp(&self, ns: &str, target: &str, request: &str, local_port: Option<u16>) -> String {
        let port;
        let mut extra = vec!["--udp", "--request", request, "--timeout-ms", "1500"];
        if let Some(p) = local_port {
            port = p.to_string();
            extra.extend(["--local-port", &port]);
        }
        self.client(ns, target, &extra).remove(0)
    }

    /// The set of answers to `n` requests.
    pub fn answers(&self, ns: &str, target: &str, n: u32) -> std::collections::BTreeSet<String> {
        let count = n.to_string();
        self.client(ns, target, &["--count", &count, "--timeout-ms", "1500"])
            .into_iter()
            .collect()
    }

    pub fn node_ns(&self, i: usize) -> &str {
        &self.nodes[i].ns
    }
}

/// Holds one connection to `target` from `ns` open for `ms`, asking it every 20 ms; the
/// thread answers `OK <n> answers from <pod>` or `ERROR <kind> after <n> answers`.
pub fn hold(ns: &str, target: &str, ms: u64) -> std::thread::JoinHandle<String> {
    hold_reporting(ns, target, ms).0
}

/// [`hold`], also returning the pod the connection reached, as soon as it answered (or the
/// error, when it never did).
pub fn hold_reporting(ns: &str, target: &str, ms: u64) -> (std::thread::JoinHandle<String>, String) {
    use std::io::BufRead;
    let mut client = std::process::Command::new(env!("CARGO_BIN_EXE_svcnet"));
    client
        .args(["agnhost", "client", target])
        .args(["--hold-ms", &ms.to_string(), "--interval-ms", "20"])
        .stdout(std::process::Stdio::piped());
    let mut child = svcnet::netns::spawn_in(ns, &mut client).expect("running the agnhost client");
    let stdout = child.stdout.take().expect("piped");
    let (reached_tx, reached) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut last = String::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            match line.strip_prefix("CONNECTED ") {
                Some(pod) => drop(reached_tx.send(pod.to_owned())),
                None => last = line,
            }
        }
        let _ = child.wait();
        drop(reached_tx);
        last.trim().to_owned()
    });
    let pod = reached
        .recv_timeout(std::time::Duration::from_millis(ms + 5000))
        .unwrap_or_else(|_| "(no answer)".to_owned());
    (handle, pod)
}
