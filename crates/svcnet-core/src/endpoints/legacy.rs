//! Legacy `Endpoints`: one object named after the Service, addresses grouped into subsets by
//! identical port sets, ready and not-ready addresses apart, truncated at 1000 addresses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pod;
use super::*;
use crate::ip::IpFamily;

type PortKey = (String, i32, String, Option<String>);

fn key_of(p: &EndpointPort) -> PortKey {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone(),
    )
}

/// The desired Endpoints of a Service, or `None` when its endpoints are not managed
/// (no selector, or ExternalName).
pub fn desired_endpoints(inputs: &EndpointInputs<'_>) -> Option<Endpoints> {
    let svc = inputs.service;
    svc.selector.as_ref()?;
    if svc.service_type == crate::service::model::ServiceType::ExternalName {
        return None;
    }
    let family = svc.address_families().first().copied().unwrap_or(IpFamily::IPv4);
    // address (by IP) → (address, ready); and port-set membership per address
    let mut addresses: BTreeMap<String, (EndpointAddress, bool)> = BTreeMap::new();
    let mut ports_of: BTreeMap<String, Vec<PortKey>> = BTreeMap::new();
    let mut port_objs: BTreeMap<PortKey, EndpointPort> = BTreeMap::new();
    for p in inputs.selected_pods() {
        if !pod::should_be_in_endpoints(p, svc.publish_not_ready_addresses) {
            continue;
        }
        let Some(ip) = pod::ip_of_family(p, family) else {
            continue;
        };
        let address = EndpointAddress {
            ip: ip.clone(),
            hostname: pod::hostname_for(p, &svc.name, &svc.namespace),
            node_name: pod::node_name(p).map(str::to_owned),
            target_ref: Some(pod::target_ref(p)),
        };
        let ready = svc.publish_not_ready_addresses || pod::is_ready(p);
        if svc.ports.is_empty() {
            if svc.headless {
                addresses.insert(ip.clone(), (address, ready));
                ports_of.entry(ip).or_default();
            }
            continue;
        }
        let mut any = false;
        for sp in &svc.ports {
            let Some(n) = pod::find_port(p, sp) else { continue };
            let ep = EndpointPort {
                name: Some(sp.name.clone()).filter(|n| !n.is_empty()),
                port: n.into(),
                protocol: Some(sp.protocol.as_str().to_owned()),
                app_protocol: sp.app_protocol.clone(),
            };
            let key = key_of(&ep);
            port_objs.insert(key.clone(), ep);
            ports_of.entry(ip.clone()).or_default().push(key);
            any = true;
        }
        if any {
            addresses.insert(ip, (address, ready));
        }
    }

    // group addresses by their exact port set
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for (ip, (addr, ready)) in addresses {
        let mut ports = ports_of.remove(&ip).unwrap_or_default();
        ports.sort();
        ports.dedup();
        let group = groups.entry(ports).or_default();
        if ready { group.0.push(addr) } else { group.1.push(addr) }
    }
    let total: usize = groups.values().map(|(r, n)| r.len() + n.len()).sum();
    let truncated = total > MAX_LEGACY_ENDPOINTS;
    if truncated {
        truncate(&mut groups, total);
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| ports.iter().map(|k| port_objs[k].clone()).collect()),
        })
        .collect();

    let mut labels = svc.labels.clone();
    if svc.headless {
        labels.insert(LABEL_HEADLESS.to_owned(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    let mut annotations = BTreeMap::new();
    if let Some(t) = &inputs.trigger_time {
        annotations.insert(ANNOTATION_TRIGGER_TIME.to_owned(), t.clone());
    }
    if truncated {
        annotations.insert(ANNOTATION_OVER_CAPACITY.to_owned(), "truncated".to_owned());
    }
    Some(Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.name.clone()),
            namespace: Some(svc.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        subsets: Some(subsets),
    })
}

/// Keeps at most `MAX_LEGACY_ENDPOINTS` addresses, each subset its proportional share,
/// ready addresses before not-ready ones.
fn truncate(groups: &mut BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)>, total: usize) {
    let mut budget = MAX_LEGACY_ENDPOINTS;
    for (ready, not_ready) in groups.values_mut() {
        let size = ready.len() + not_ready.len();
        let share = (size * MAX_LEGACY_ENDPOINTS).div_ceil(total).min(budget);
        let keep_ready = ready.len().min(share);
        ready.truncate(keep_ready);
        not_ready.truncate(share - keep_ready);
        budget -= ready.len() + not_ready.len();
    }
}
