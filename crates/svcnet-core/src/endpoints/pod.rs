//! What the endpoint controllers need to know about a pod: is it a candidate, is it ready,
//! which address per family, and which container port a named target port means.

use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};

use crate::ip::{IpFamily, parse_ip_sloppy};
use crate::service::model::{PortSpec, TargetPort};

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

pub fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Succeeded or Failed: the pod will never serve again.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// All of the pod's IPs (`status.podIPs`, falling back to `status.podIP`).
pub fn ips(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else { return vec![] };
    let listed: Vec<String> = status.pod_ips.iter().flatten().map(|p| p.ip.clone()).collect();
    if !listed.is_empty() {
        return listed;
    }
    status.pod_ip.iter().filter(|ip| !ip.is_empty()).cloned().collect()
}

/// The pod's address of one family.
pub fn ip_of_family(pod: &Pod, family: IpFamily) -> Option<String> {
    ips(pod)
        .into_iter()
        .find(|ip| parse_ip_sloppy(ip).map(IpFamily::of) == Some(family))
}

/// Whether the pod may be published at all: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    !is_terminal(pod) && !ips(pod).is_empty() && (include_terminating || !is_terminating(pod))
}

fn serving_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let main = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let sidecars = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    main.iter().chain(sidecars)
}

/// The container port a service port targets on this pod: a number as-is, a name resolved by
/// container port name and protocol. `None` when the name is not found.
pub fn find_port(pod: &Pod, port: &PortSpec) -> Option<u16> {
    match &port.target {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Named(wanted) => serving_containers(pod)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(wanted.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == port.protocol.as_str()
            })
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// `spec.hostname` is published when the pod's subdomain names the service.
pub fn hostname_for(pod: &Pod, service_name: &str, service_namespace: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(service_name) && namespace(pod) == service_namespace)
        .then(|| hostname.to_owned())
}

/// The reference from an endpoint to the pod behind it.
pub fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_owned()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}
