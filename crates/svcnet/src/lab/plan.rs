//! What a lab is made of: namespace names, addresses and paths, derived from its name and
//! node count alone, so every command finds the same things the daemon made.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::{Result, bail};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The switch subnet every node and the external host sit on.
pub const LAB_SUBNET: &str = "10.240.0.0/24";
/// All pod addresses; node i (from 1) gets `10.244.i.0/24`.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// With `--ip-family dual`: the switch's IPv6 subnet (node i is `fd00:240::1i` in hex, as
/// its IPv4 address ends in `1i`; the external host `fd00:240::100`), all pods' IPv6
/// addresses (node i's pods in `fd00:244:0:i::/64`) and the Services' IPv6 range (a /108, the
/// widest svcnet's bitmap allocator takes).
pub const LAB_SUBNET_V6: &str = "fd00:240::/64";
pub const CLUSTER_CIDR_V6: &str = "fd00:244::/48";
pub const SERVICE_CIDR_V6: &str = "fd00:96::/108";
/// The IPv6 gateway of every pod: link-local, on the node side of each pod's veth.
pub const POD_GATEWAY_V6: &str = "fe80::1";
/// The cluster DNS Service's address (`kube-system/kube-dns`), as kubeadm gives it.
pub const CLUSTER_DNS_IP: &str = "10.96.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The address pods use as their gateway (on the node side of every pod's veth).
pub const POD_GATEWAY: &str = "169.254.1.1";
/// The lab load balancer's addresses (`type: LoadBalancer`), on the switch subnet above the
/// external host, as MetalLB's layer-2 pools sit on a node network.
pub const LOAD_BALANCER_POOL: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 240, 0, 200), Ipv4Addr::new(10, 240, 0, 250));
/// Nodes take `10.240.0.11` upwards, below the external host's `.100`; 32 is enough for the
/// agent-at-scale benchmark's 20 and keeps a lab on two cores reasonable.
pub const MAX_NODES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
    /// Its `topology.kubernetes.io/zone` label (`svcnet lab up --zones`).
    #[serde(default)]
    pub zone: Option<String>,
    /// Its IPv6 address and pod CIDR (`--ip-family dual`).
    #[serde(default)]
    pub ipv6: Option<NodeIpv6>,
}

/// A dual-stack node's IPv6 side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIpv6 {
    pub ip: Ipv6Addr,
    pub pod_cidr: Ipv6Net,
}

impl NodePlan {
    /// The IPv6 address of the pod whose IPv4 address is `ip`, on a dual-stack node: the
    /// same host number in the node's IPv6 pod CIDR.
    pub fn pod_ipv6(&self, ip: Ipv4Addr) -> Option<Ipv6Addr> {
        let v6 = self.ipv6.as_ref()?;
        let host = u32::from(ip) & !u32::from(self.pod_cidr.netmask());
        Some(Ipv6Addr::from(u128::from(v6.pod_cidr.network()) | u128::from(host)))
    }

    /// Its pod CIDRs, IPv4 first.
    pub fn pod_cidrs(&self) -> Vec<IpNet> {
        let v6 = self.ipv6.as_ref().map(|v| IpNet::V6(v.pod_cidr));
        std::iter::once(IpNet::V4(self.pod_cidr)).chain(v6).collect()
    }
}

/// Which address families a lab's nodes, pods and Services have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 only.
    #[default]
    Ipv4,
    /// IPv4 and IPv6 (IPv4 first, as the default family).
    Dual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPlan {
    pub name: String,
    pub switch_netns: String,
    pub nodes: Vec<NodePlan>,
    pub external_netns: String,
    pub external_ip: Ipv4Addr,
    /// The external host's IPv6 address (`--ip-family dual`).
    #[serde(default)]
    pub external_ipv6: Option<Ipv6Addr>,
}

/// Every namespace of lab `name` starts with this.
pub fn netns_prefix(name: &str) -> String {
    format!("svl-{name}-")
}

/// Where a lab keeps its pid, log, API server data and pod logs.
pub fn state_dir(name: &str) -> PathBuf {
    PathBuf::from("/run/svcnet-lab").join(name)
}

/// Lab names become namespace and interface name parts: short, lowercase, alphanumeric.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 12 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        bail!("lab name {name:?} must be 1-12 lowercase letters or digits");
    }
    Ok(())
}

impl LabPlan {
    pub fn new(name: &str, nodes: usize) -> Result<Self> {
        check_name(name)?;
        if nodes == 0 || nodes > MAX_NODES {
            bail!("a lab has 1 to {MAX_NODES} nodes, not {nodes}");
        }
        let prefix = netns_prefix(name);
        let nodes = (1..=nodes)
            .map(|i| NodePlan {
                name: format!("node-{i}"),
                netns: format!("{prefix}node{i}"),
                ip: Ipv4Addr::new(10, 240, 0, 10 + i as u8),
                pod_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, i as u8, 0), 24).expect("valid prefix"),
                zone: None,
                ipv6: None,
            })
            .collect();
        Ok(LabPlan {
            name: name.to_owned(),
            switch_netns: format!("{prefix}switch"),
            nodes,
            external_netns: format!("{prefix}external"),
            external_ip: Ipv4Addr::new(10, 240, 0, 100),
            external_ipv6: None,
        })
    }

    /// Gives the lab IPv6 too (`dual`): every node an address on the switch's IPv6 subnet
    /// and an IPv6 pod CIDR, the external host an address.
    pub fn with_ip_family(mut self, family: IpFamily) -> Self {
        if family == IpFamily::Dual {
            let subnet: Ipv6Net = LAB_SUBNET_V6.parse().expect("valid subnet");
            let base = u128::from(subnet.network());
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let n = i as u128 + 1;
                let pods = (0xfd00_0244u128 << 96) | (n << 64);
                node.ipv6 = Some(NodeIpv6 {
                    ip: Ipv6Addr::from(base | (0x10 + n)),
                    pod_cidr: Ipv6Net::new(Ipv6Addr::from(pods), 64).expect("valid prefix"),
                });
            }
            self.external_ipv6 = Some(Ipv6Addr::from(base | 0x100));
        }
        self
    }

    pub fn is_dual_stack(&self) -> bool {
        self.external_ipv6.is_some()
    }

    /// The Services' ranges (`--service-cluster-ip-range`), IPv4 first.
    pub fn service_cidrs(&self) -> Vec<IpNet> {
        let mut out = vec![SERVICE_CIDR.parse().expect("valid CIDR")];
        if self.is_dual_stack() {
            out.push(SERVICE_CIDR_V6.parse().expect("valid CIDR"));
        }
        out
    }

    /// All pods' ranges (`--cluster-cidr`), IPv4 first.
    pub fn cluster_cidrs(&self) -> Vec<IpNet> {
        let mut out = vec![CLUSTER_CIDR.parse().expect("valid CIDR")];
        if self.is_dual_stack() {
            out.push(CLUSTER_CIDR_V6.parse().expect("valid CIDR"));
        }
        out
    }

    /// Puts node i (from 1) in zone `zones[(i - 1) % len]`, so `--zones a,b` on four nodes
    /// makes node-1 and node-3 zone a. Zones must be valid label values.
    pub fn with_zones(mut self, zones: &[String]) -> Result<Self> {
        for zone in zones {
            let problems = svcnet_core::names::label_value(zone);
            if zone.is_empty() || !problems.is_empty() {
                bail!("zone {zone:?} is not a valid label value: {}", problems.join("; "));
            }
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.zone = (!zones.is_empty()).then(|| zones[i % zones.len()].clone());
        }
        Ok(self)
    }

    /// The namespace of a pod, from its uid (names are unique per lab and short).
    pub fn pod_netns(&self, uid: &str) -> String {
        let short: String = uid.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
        format!("{}pod-{short}", netns_prefix(&self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_and_addresses() {
        let plan = LabPlan::new("demo", 2).unwrap();
        assert_eq!(plan.nodes[1].netns, "svl-demo-node2");
        assert_eq!(plan.nodes[1].ip, Ipv4Addr::new(10, 240, 0, 12));
        assert_eq!(plan.nodes[1].pod_cidr.to_string(), "10.244.2.0/24");
        assert_eq!(plan.external_netns, "svl-demo-external");
        assert_eq!(plan.pod_netns("3f2a-11ee-aaaa-bbbbcccc"), "svl-demo-pod-3f2a11eeaaaa");
    }

    #[test]
    fn a_dual_stack_plan_gives_every_node_and_pod_an_ipv6_side() {
        let plan = LabPlan::new("demo", 2).unwrap().with_ip_family(IpFamily::Dual);
        let node = &plan.nodes[1];
        let v6 = node.ipv6.as_ref().unwrap();
        assert_eq!(v6.ip.to_string(), "fd00:240::12");
        assert_eq!(v6.pod_cidr.to_string(), "fd00:244:0:2::/64");
        assert_eq!(plan.external_ipv6.unwrap().to_string(), "fd00:240::100");
        assert_eq!(
            node.pod_ipv6(Ipv4Addr::new(10, 244, 2, 7)).unwrap().to_string(),
            "fd00:244:0:2::7"
        );
        let cidrs: Vec<String> = plan.service_cidrs().iter().map(ToString::to_string).collect();
        assert_eq!(cidrs, ["10.96.0.0/16", "fd00:96::/108"]);
        let pod_cidrs: Vec<String> = node.pod_cidrs().iter().map(ToString::to_string).collect();
        assert_eq!(pod_cidrs, ["10.244.2.0/24", "fd00:244:0:2::/64"]);
        let cluster: Vec<IpNet> = plan.cluster_cidrs();
        assert!(cluster[1].contains(&IpNet::V6(v6.pod_cidr)));
        // single stack: none of it
        let v4 = LabPlan::new("demo", 2).unwrap();
        assert!(!v4.is_dual_stack() && v4.nodes[0].pod_ipv6(Ipv4Addr::new(10, 244, 1, 2)).is_none());
        assert_eq!(v4.service_cidrs().len(), 1);
    }

    #[test]
    fn bad_names_and_sizes_are_refused() {
        assert!(LabPlan::new("Demo", 2).is_err());
        assert!(LabPlan::new("a-b", 2).is_err());
        assert!(LabPlan::new("averyverylongname", 2).is_err());
        assert!(LabPlan::new("demo", 0).is_err());
        assert!(LabPlan::new("demo", MAX_NODES + 1).is_err());
        let zoned = LabPlan::new("demo", 3)
            .unwrap()
            .with_zones(&["a".into(), "b".into()])
            .unwrap();
        let zones: Vec<Option<&str>> = zoned.nodes.iter().map(|n| n.zone.as_deref()).collect();
        assert_eq!(zones, [Some("a"), Some("b"), Some("a")]);
        assert!(
            LabPlan::new("demo", 2)
                .unwrap()
                .with_zones(&["not a zone".into()])
                .is_err()
        );
        let big = LabPlan::new("demo", MAX_NODES).unwrap();
        assert_eq!(big.nodes[MAX_NODES - 1].ip, Ipv4Addr::new(10, 240, 0, 42));
        assert_eq!(big.nodes[MAX_NODES - 1].netns, "svl-demo-node32");
    }
}
