//! ServiceCIDRs and IPAddresses in the store: the IPAddress object every allocated cluster IP
//! has (written in the Service's own transaction), the default ServiceCIDR that mirrors
//! `--service-cluster-ip-range`, the ranges ServiceCIDR objects add to the allocator, and the
//! ServiceCIDR controller (Ready condition, finalizer, deletion once no address needs it).

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use serde_json::{Value, json};
use svcnet_core::alloc::{Allocators, PortRange};
use svcnet_core::service_cidr::{
    self, ALLOCATOR, DEFAULT_SERVICE_CIDR, FINALIZER, LABEL_IP_FAMILY, LABEL_MANAGED_BY, READY_MESSAGE,
    TERMINATING_MESSAGE,
};
use svcnet_store::{Key, Store};

use crate::objects::{self, Ids, Reply};
use crate::registry::Registry;
use crate::resources::{IP_ADDRESSES, SERVICE_CIDRS};

/// Where the IPAddress object of `ip` is stored.
pub fn ip_address_key(ip: IpAddr) -> Key {
    Key::new(&IP_ADDRESSES.store_name(), "", &ip.to_string())
}

/// The IPAddress object the allocator writes for `ip`, held by Service `namespace/name`.
pub fn ip_address_object(ip: IpAddr, namespace: &str, name: &str, uid: &str, revision: u64) -> Vec<u8> {
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let obj = json!({
        "kind": "IPAddress",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {
            "name": ip.to_string(),
            "uid": uid,
            "resourceVersion": revision.to_string(),
            "creationTimestamp": objects::now(),
            "labels": { LABEL_IP_FAMILY: family, LABEL_MANAGED_BY: ALLOCATOR },
        },
        "spec": { "parentRef": { "group": "", "resource": "services", "namespace": namespace, "name": name } },
    });
    serde_json::to_vec(&obj).expect("JSON")
}

/// Whether a stored IPAddress was written by the allocator (not by a client reserving it).
pub fn is_managed(obj: &Value) -> bool {
    obj["metadata"]["labels"][LABEL_MANAGED_BY] == ALLOCATOR
}

/// The stored ServiceCIDRs, decoded (undecodable ones are reported and left out).
pub fn stored(store: &Store) -> Vec<ServiceCIDR> {
    let Ok((items, _)) = store.list(&SERVICE_CIDRS.store_name(), None) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|s| match serde_json::from_slice::<ServiceCIDR>(&s.value) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(key = %s.key, error = %e, "stored ServiceCIDR cannot be decoded");
                None
            }
        })
        .collect()
}

fn name_of(c: &ServiceCIDR) -> &str {
    c.metadata.name.as_deref().unwrap_or("")
}

/// The allocators for `configured` ranges plus those of every ServiceCIDR (draining for one
/// being deleted: it keeps its addresses and hands out no more); also each ServiceCIDR whose
/// networks the allocator cannot use, with the reason.
pub fn allocators(
    store: &Store,
    configured: &[IpNet],
    node_ports: PortRange,
) -> Result<(Allocators, Vec<(String, String)>), svcnet_core::alloc::ConfigError> {
    let mut allocators = Allocators::new(configured, node_ports)?;
    let mut refused = Vec::new();
    let mut cidrs = stored(store);
    // ranges in use first, so one of them holds an address a draining range holds too
    cidrs.sort_by_key(|c| c.metadata.deletion_timestamp.is_some());
    for cidr in &cidrs {
        let networks = service_cidr::networks(cidr);
        let added = if cidr.metadata.deletion_timestamp.is_some() {
            allocators.clone().with_draining_ranges(&networks)
        } else {
            allocators.clone().with_extra_ranges(&networks)
        };
        match added {
            Ok(extended) => allocators = extended,
            Err(e) => refused.push((name_of(cidr).to_owned(), e.to_string())),
        }
    }
    Ok((allocators, refused))
}

/// Creates the ServiceCIDR `kubernetes` with the configured ranges if it is missing.
pub fn ensure_default(store: &Store, configured: &[IpNet], ids: &mut dyn Ids) -> Reply<bool> {
    if objects::get(store, &SERVICE_CIDRS, "", DEFAULT_SERVICE_CIDR).is_ok() {
        return Ok(false);
    }
    let cidrs: Vec<String> = configured.iter().map(|c| c.trunc().to_string()).collect();
    let obj = json!({
        "metadata": { "name": DEFAULT_SERVICE_CIDR, "finalizers": [FINALIZER] },
        "spec": { "cidrs": cidrs },
    });
    let by_api_server = crate::write_options::WriteOptions::by(crate::write_options::API_SERVER_MANAGER);
    objects::create_with(store, &SERVICE_CIDRS, "", obj, ids, by_api_server).map(|_| true)
}

fn ready_condition(cidr: &Value, status: &str, reason: &str, message: &str) -> Option<Value> {
    let current = cidr["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let same = current.is_some_and(|c| c["status"] == status && c["reason"] == reason && c["message"] == message);
    (!same).then(|| {
        json!({
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": objects::now(),
        })
    })
}

/// One round of the ServiceCIDR controller: every ServiceCIDR gets the finalizer and its
/// Ready condition; one being deleted goes once no allocated address is held by it alone
/// (upstream waits a further 10 s for other API servers' allocators to see the deletion;
/// this server has one allocator, which stopped using the range when the deletion began).
/// `refused` names ServiceCIDRs the allocator cannot use. Returns how many objects it wrote.
pub fn reconcile(registry: &Registry, refused: &[(String, String)], ids: &mut dyn Ids) -> Reply<usize> {
    let store = registry.store();
    let all = stored(store);
    let networks: Vec<(String, Vec<IpNet>)> = all
        .iter()
        .map(|c| (name_of(c).to_owned(), service_cidr::networks(c)))
        .collect();
    let allocated = registry.allocated_ips();
    let mut writes = 0;
    for cidr in &all {
        let name = name_of(cidr);
        let Ok(mut obj) = objects::get(store, &SERVICE_CIDRS, "", name) else {
            continue;
        };
        let has_finalizer = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
        if cidr.metadata.deletion_timestamp.is_some() {
            let mine = service_cidr::networks(cidr);
            if service_cidr::can_delete(name, &mine, &networks, allocated.iter().copied()) {
                if has_finalizer {
                    if let Some(f) = obj["metadata"]["finalizers"].as_array_mut() {
                        f.retain(|x| x != FINALIZER);
                    }
                    writes += usize::from(objects::replace(store, &SERVICE_CIDRS, "", name, obj, false, ids).is_ok());
                }
                continue;
            }
            if let Some(c) = ready_condition(&obj, "False", "Terminating", TERMINATING_MESSAGE) {
                obj["status"] = json!({ "conditions": [c] });
                writes += usize::from(objects::replace(store, &SERVICE_CIDRS, "", name, obj, true, ids).is_ok());
            }
            continue;
        }
        if !has_finalizer {
            obj["metadata"]["finalizers"]
                .as_array_mut()
                .map(|f| f.push(json!(FINALIZER)))
                .unwrap_or_else(|| obj["metadata"]["finalizers"] = json!([FINALIZER]));
            match objects::replace(store, &SERVICE_CIDRS, "", name, obj.clone(), false, ids) {
                Ok(updated) => {
                    obj = updated;
                    writes += 1;
                }
                Err(_) => continue,
            }
        }
        let condition = match refused.iter().find(|(n, _)| n == name) {
            Some((_, why)) => ready_condition(&obj, "False", "Unsupported", why),
            None => ready_condition(&obj, "True", "", READY_MESSAGE),
        };
        if let Some(c) = condition {
            obj["status"] = json!({ "conditions": [c] });
            writes += usize::from(objects::replace(store, &SERVICE_CIDRS, "", name, obj, true, ids).is_ok());
        }
    }
    Ok(writes)
}

/// What a controller round does about ServiceCIDRs and IPAddresses, given what changed: the
/// default ServiceCIDR comes back if deleted, the allocator follows changed ServiceCIDRs,
/// their conditions and finalizers are kept, and the allocator's deleted IPAddress objects
/// come back while their address is allocated.
pub fn reconcile_round(registry: &Registry, scope: &crate::controller::Scope, ids: &mut dyn Ids) -> Reply<usize> {
    let mut writes = 0;
    let draining = || {
        stored(registry.store())
            .iter()
            .any(|c| c.metadata.deletion_timestamp.is_some())
    };
    if scope.service_cidrs || (scope.ip_addresses_released && draining()) {
        writes += usize::from(ensure_default(registry.store(), registry.configured_ranges(), ids)?);
        let refused = registry.refresh_service_cidrs()?;
        writes += reconcile(registry, &refused, ids)?;
    }
    for name in &scope.lost_ip_addresses {
        if let Ok(ip) = name.parse::<IpAddr>() {
            writes += usize::from(registry.restore_ip_address(ip)?);
        }
    }
    Ok(writes)
}
