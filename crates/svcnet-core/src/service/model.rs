//! The validated internal Service: what the endpoint controller and the dataplane work on.
//!
//! Built once at the boundary from a wire Service that passed validation; every field is then
//! typed (addresses parsed, enums closed), so consumers never handle malformed input.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use thiserror::Error;

use super::*;
use crate::field::ErrorList;
use crate::ip::{IpFamily, parse_ip_sloppy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetPort {
    Number(u16),
    Named(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

/// One service port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSpec {
    /// `""` when unnamed.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub target: TargetPort,
    pub node_port: Option<u16>,
    pub app_protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceModel {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub service_type: ServiceType,
    /// Empty for headless and ExternalName services.
    pub cluster_ips: Vec<IpAddr>,
    pub headless: bool,
    pub ip_families: Vec<IpFamily>,
    pub ports: Vec<PortSpec>,
    /// `None`: endpoints are managed by someone else. `Some(empty)` selects every pod.
    pub selector: Option<BTreeMap<String, String>>,
    /// ClientIP affinity timeout in seconds; `None` for no affinity.
    pub affinity_timeout_seconds: Option<u32>,
    pub external_ips: Vec<IpAddr>,
    pub load_balancer_ips: Vec<IpAddr>,
    pub load_balancer_source_ranges: Vec<IpNet>,
    pub external_traffic_policy: TrafficPolicy,
    pub internal_traffic_policy: TrafficPolicy,
    pub health_check_node_port: Option<u16>,
    pub publish_not_ready_addresses: bool,
    pub external_name: Option<String>,
    /// `spec.trafficDistribution` as given (validated to one of upstream's values).
    pub traffic_distribution: Option<String>,
}

/// Why a wire Service could not become a model.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ModelError {
    #[error("service is invalid: {}", crate::field::aggregate_message(.0).unwrap_or_default())]
    Invalid(ErrorList),
    #[error("service has no {0}")]
    Missing(&'static str),
}

impl ServiceModel {
    /// Validates (as a create would) and converts.
    pub fn from_service(svc: &Service) -> Result<Self, ModelError> {
        let errs = super::validate::validate_service_accepting_legacy(svc);
        if !errs.is_empty() {
            return Err(ModelError::Invalid(errs));
        }
        let sp = spec(svc);
        let service_type = match type_of(svc) {
            TYPE_CLUSTER_IP => ServiceType::ClusterIP,
            TYPE_NODE_PORT => ServiceType::NodePort,
            TYPE_LOAD_BALANCER => ServiceType::LoadBalancer,
            _ => ServiceType::ExternalName,
        };
        let ports = sp
            .ports
            .iter()
            .flatten()
            .map(|p| PortSpec {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.as_deref().and_then(Protocol::parse).unwrap_or(Protocol::Tcp),
                port: p.port as u16,
                target: match &p.target_port {
                    Some(IntOrString::String(s)) => TargetPort::Named(s.clone()),
                    Some(IntOrString::Int(n)) => TargetPort::Number(*n as u16),
                    None => TargetPort::Number(p.port as u16),
                },
                node_port: p.node_port.filter(|n| *n != 0).map(|n| n as u16),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let parse_all = |v: &Option<Vec<String>>| -> Vec<IpAddr> {
            v.iter().flatten().filter_map(|s| parse_ip_sloppy(s)).collect()
        };
        let policy = |p: &Option<String>| match p.as_deref() {
            Some(POLICY_LOCAL) => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        };
        let load_balancer_ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            // an ingress with ipMode Proxy is reached through the load balancer itself (it
            // keeps the destination), so proxies leave it alone, as kube-proxy does
            .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|i| i.ip.as_deref().and_then(parse_ip_sloppy))
            .collect();
        Ok(ServiceModel {
            namespace: svc.metadata.namespace.clone().ok_or(ModelError::Missing("namespace"))?,
            name: name(svc).to_owned(),
            uid: svc.metadata.uid.clone().unwrap_or_default(),
            labels: svc.metadata.labels.clone().unwrap_or_default(),
            annotations: svc.metadata.annotations.clone().unwrap_or_default(),
            service_type,
            cluster_ips: if is_headless(svc) {
                vec![]
            } else {
                parse_all(&sp.cluster_ips)
            },
            headless: is_headless(svc),
            ip_families: ip_families(svc).iter().filter_map(|f| IpFamily::parse(f)).collect(),
            ports,
            selector: sp.selector.clone(),
            affinity_timeout_seconds: (sp.session_affinity.as_deref() == Some(AFFINITY_CLIENT_IP)).then(|| {
                sp.session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS) as u32
            }),
            external_ips: parse_all(&sp.external_ips),
            load_balancer_ips,
            load_balancer_source_ranges: sp
                .load_balancer_source_ranges
                .iter()
                .flatten()
                .filter_map(|r| r.trim().parse::<IpNet>().ok().map(|n| n.trunc()))
                .collect(),
            external_traffic_policy: policy(&sp.external_traffic_policy),
            internal_traffic_policy: policy(&sp.internal_traffic_policy),
            health_check_node_port: sp.health_check_node_port.filter(|n| *n != 0).map(|n| n as u16),
            publish_not_ready_addresses: sp.publish_not_ready_addresses.unwrap_or(false),
            external_name: sp.external_name.clone(),
            traffic_distribution: sp.traffic_distribution.clone(),
        })
    }

    /// The address families endpoints are published for: the service's families, else the
    /// family of its cluster IP, else both (headless services of old clients).
    pub fn address_families(&self) -> Vec<IpFamily> {
        if !self.ip_families.is_empty() {
            return self.ip_families.clone();
        }
        if let Some(ip) = self.cluster_ips.first() {
            return vec![IpFamily::of(*ip)];
        }
        vec![IpFamily::IPv4, IpFamily::IPv6]
    }
}
