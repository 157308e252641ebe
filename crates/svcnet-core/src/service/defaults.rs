//! Defaulting applied when a Service is decoded, before allocation and validation.

use k8s_openapi::api::core::v1::{ClientIPConfig, Service, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

/// Fills in the fields Kubernetes defaults on every write.
pub fn apply_defaults(svc: &mut Service) {
    let external = {
        let spec = spec_mut(svc);
        if spec.session_affinity.as_deref().unwrap_or("").is_empty() {
            spec.session_affinity = Some(AFFINITY_NONE.to_owned());
        }
        match spec.session_affinity.as_deref() {
            Some(AFFINITY_NONE) => spec.session_affinity_config = None,
            Some(AFFINITY_CLIENT_IP) => {
                let has_timeout = spec
                    .session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .is_some();
                if !has_timeout {
                    spec.session_affinity_config = Some(SessionAffinityConfig {
                        client_ip: Some(ClientIPConfig {
                            timeout_seconds: Some(DEFAULT_AFFINITY_TIMEOUT_SECONDS),
                        }),
                    });
                }
            }
            _ => {}
        }
        if spec.type_.as_deref().unwrap_or("").is_empty() {
            spec.type_ = Some(TYPE_CLUSTER_IP.to_owned());
        }
        for port in spec.ports.iter_mut().flatten() {
            if port.protocol.as_deref().unwrap_or("").is_empty() {
                port.protocol = Some("TCP".to_owned());
            }
            let unset = match &port.target_port {
                None => true,
                Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(s)) => s.is_empty(),
                Some(IntOrString::Int(_)) => false,
            };
            if unset {
                port.target_port = Some(IntOrString::Int(port.port));
            }
        }
        if spec.internal_traffic_policy.is_none()
            && matches!(
                spec.type_.as_deref(),
                Some(TYPE_NODE_PORT | TYPE_LOAD_BALANCER | TYPE_CLUSTER_IP)
            )
        {
            spec.internal_traffic_policy = Some(POLICY_CLUSTER.to_owned());
        }
        if spec.type_.as_deref() == Some(TYPE_LOAD_BALANCER) && spec.allocate_load_balancer_node_ports.is_none() {
            spec.allocate_load_balancer_node_ports = Some(true);
        }
        spec.external_traffic_policy.as_deref().unwrap_or("").is_empty()
    };
    if external && externally_accessible(svc) {
        spec_mut(svc).external_traffic_policy = Some(POLICY_CLUSTER.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    fn svc(spec: ServiceSpec) -> Service {
        Service {
            spec: Some(spec),
            ..Service::default()
        }
    }

    #[test]
    fn defaults_like_upstream() {
        let mut s = svc(ServiceSpec {
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        });
        apply_defaults(&mut s);
        let spec = s.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.external_traffic_policy, None);
        let p = &spec.ports.unwrap()[0];
        assert_eq!(p.protocol.as_deref(), Some("TCP"));
        assert_eq!(p.target_port, Some(IntOrString::Int(80)));
    }

    #[test]
    fn client_ip_gets_timeout_and_lb_gets_flags() {
        let mut s = svc(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            session_affinity: Some("ClientIP".into()),
            ..ServiceSpec::default()
        });
        apply_defaults(&mut s);
        let spec = s.spec.unwrap();
        assert_eq!(
            spec.session_affinity_config.unwrap().client_ip.unwrap().timeout_seconds,
            Some(10800)
        );
        assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    }

    #[test]
    fn cluster_ip_with_external_ips_gets_traffic_policy() {
        let mut s = svc(ServiceSpec {
            external_ips: Some(vec!["192.168.99.11".into()]),
            ..ServiceSpec::default()
        });
        apply_defaults(&mut s);
        assert_eq!(s.spec.unwrap().external_traffic_policy.as_deref(), Some("Cluster"));
    }

    #[test]
    fn affinity_none_drops_config() {
        let mut s = svc(ServiceSpec {
            session_affinity_config: Some(SessionAffinityConfig::default()),
            ..ServiceSpec::default()
        });
        apply_defaults(&mut s);
        assert_eq!(s.spec.unwrap().session_affinity_config, None);
    }
}
