//! The Service write path: defaulting, allocation and validation as one pure transition.
//!
//! `plan_write(old, new, allocators, rng)` returns the Service as it will be stored and the
//! allocation changes to commit with it, or the Status the client gets. Order follows the
//! upstream registry: defaults, (on update) copy back allocated values, normalize cluster IPs,
//! allocate (IP families, cluster IPs, node ports, health-check node port), clear fields the
//! type no longer uses, then validate. Nothing is committed on error.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::alloc::{AllocError, AllocationChanges, Allocators, RandomSource, Transaction};
use crate::field::{ErrorList, FieldError, FieldPath};
use crate::ip::{IpFamily, parse_ip_sloppy};
use crate::service::cluster_ips::{cluster_ips_value, policy_value, validate_cluster_ips_related_fields};
use crate::service::defaults::apply_defaults;
use crate::service::prepare::{drop_type_dependent_fields, normalize_cluster_ips, patch_allocated_values};
use crate::service::validate::{validate_service, validate_service_update};
use crate::service::*;
use crate::status::Status;

/// A planned write: the Service to store and the allocations to commit with it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedWrite {
    pub service: Service,
    pub changes: AllocationChanges,
}

type WriteResult<T> = Result<T, Box<Status>>;

fn invalid(svc: &Service, errs: ErrorList) -> Box<Status> {
    Box::new(Status::invalid("", "Service", name(svc), &errs))
}

fn internal(msg: String) -> Box<Status> {
    Box::new(Status::internal(&msg))
}

/// Plans a create (`old == None`) or an update of a Service.
pub fn plan_write(
    old: Option<&Service>,
    mut new: Service,
    allocators: &Allocators,
    rng: &mut dyn RandomSource,
) -> WriteResult<PlannedWrite> {
    apply_defaults(&mut new);
    let mut txn = allocators.begin();
    match old {
        None => {
            normalize_cluster_ips(None, &mut new);
            init_ip_family_fields(&mut new, None, allocators)?;
            alloc_cluster_ips(&mut new, &mut txn, rng)?;
            alloc_node_ports_on_create(&mut new, &mut txn, rng)?;
            let errs = validate_service(&new);
            if !errs.is_empty() {
                return Err(invalid(&new, errs));
            }
        }
        Some(old) => {
            patch_allocated_values(&mut new, old);
            normalize_cluster_ips(Some(old), &mut new);
            init_ip_family_fields(&mut new, Some(old), allocators)?;
            update_cluster_ips(&mut new, old, &mut txn, rng)?;
            update_node_ports(&mut new, old, &mut txn, rng)?;
            drop_type_dependent_fields(&mut new, old);
            let errs = validate_service_update(&new, old);
            if !errs.is_empty() {
                return Err(invalid(&new, errs));
            }
        }
    }
    // upstream drops an ExternalName Service's internalTrafficPolicy whenever it is read
    // (it once defaulted the field there by mistake); storing it without the field reads alike
    if new.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
        && let Some(spec) = new.spec.as_mut()
    {
        spec.internal_traffic_policy = None;
    }
    Ok(PlannedWrite {
        service: new,
        changes: txn.finish(),
    })
}

/// What deleting a Service frees.
pub fn plan_delete(old: &Service) -> AllocationChanges {
    let mut changes = AllocationChanges {
        released_ips: held_ips(old),
        released_ports: held_node_ports(old),
        ..AllocationChanges::default()
    };
    changes.released_ports.sort_unstable();
    changes.released_ports.dedup();
    changes
}

/// The cluster IPs a stored Service holds.
pub fn held_ips(svc: &Service) -> Vec<IpAddr> {
    if !needs_cluster_ip(svc) {
        return vec![];
    }
    cluster_ips(svc).iter().filter_map(|ip| parse_ip_sloppy(ip)).collect()
}

/// The node ports (including the health-check node port) a stored Service holds.
pub fn held_node_ports(svc: &Service) -> Vec<u16> {
    let mut ports: Vec<u16> = spec(svc)
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0))
        .collect();
    if let Some(hc) = spec(svc)
        .health_check_node_port
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
    {
        ports.push(hc);
    }
    ports
}

/// A problem found while rebuilding allocator state from stored Services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairProblem {
    pub service: String,
    pub detail: String,
}

/// Rebuilds allocator state from stored Services (on startup), reporting what cannot be
/// reserved (outside the range, or held twice) instead of failing.
pub fn rebuild_allocators<'a>(
    allocators: &mut Allocators,
    services: impl IntoIterator<Item = &'a Service>,
) -> Vec<RepairProblem> {
    let mut problems = Vec::new();
    for svc in services {
        let who = format!("{}/{}", svc.metadata.namespace.as_deref().unwrap_or(""), name(svc));
        for ip in held_ips(svc) {
            if let Err(e) = allocators.reserve_ip(ip) {
                problems.push(RepairProblem {
                    service: who.clone(),
                    detail: format!("cluster IP {ip}: {e}"),
                });
            }
        }
        let mut ports = held_node_ports(svc);
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            if let Err(e) = allocators.reserve_port(port) {
                problems.push(RepairProblem {
                    service: who.clone(),
                    detail: format!("node port {port}: {e}"),
                });
            }
        }
    }
    problems
}

fn same_families(a: &Service, b: &Service) -> bool {
    ip_families(a) == ip_families(b)
}

fn same_cluster_ips(a: &Service, b: &Service) -> bool {
    cluster_ips(a) == cluster_ips(b)
}

fn is_matching_prefer_dual_stack(new: &Service, old: Option<&Service>) -> bool {
    let Some(old) = old else { return false };
    type_of(old) == type_of(new)
        && matches!(type_of(new), TYPE_CLUSTER_IP | TYPE_NODE_PORT | TYPE_LOAD_BALANCER)
        && spec(old).ip_family_policy.as_deref() == Some(PREFER_DUAL_STACK)
        && spec(new).ip_family_policy.as_deref() == Some(PREFER_DUAL_STACK)
        && same_cluster_ips(old, new)
        && same_families(old, new)
}

/// Fills in and checks `ipFamilies` and `ipFamilyPolicy` against the cluster's configuration.
fn init_ip_family_fields(svc: &mut Service, old: Option<&Service>, allocators: &Allocators) -> WriteResult<()> {
    if type_of(svc) == TYPE_EXTERNAL_NAME || is_matching_prefer_dual_stack(svc, old) {
        return Ok(());
    }
    let errs = validate_cluster_ips_related_fields(svc, &crate::service::validate::Legacy::strict(old));
    if !errs.is_empty() {
        return Err(invalid(svc, errs));
    }
    let policy_path = FieldPath::new("spec").child("ipFamilyPolicy");
    let mut errs = ErrorList::new();

    if let Some(old) = old {
        if spec(svc).ip_family_policy.as_deref() == Some(SINGLE_STACK) {
            if same_cluster_ips(old, svc)
                && cluster_ips(svc).len() > 1
                && let Some(v) = spec_mut(svc).cluster_ips.as_mut()
            {
                v.truncate(1);
            }
            if same_families(old, svc)
                && ip_families(svc).len() > 1
                && let Some(v) = spec_mut(svc).ip_families.as_mut()
            {
                v.truncate(1);
            }
        } else {
            let reduced = |o: usize, n: usize| n > 0 && n < o;
            if reduced(cluster_ips(old).len(), cluster_ips(svc).len()) {
                errs.push(FieldError::invalid(
                    policy_path.clone(),
                    policy_value(svc),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if reduced(ip_families(old).len(), ip_families(svc).len()) {
                errs.push(FieldError::invalid(
                    policy_path.clone(),
                    policy_value(svc),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }

    let ips: Vec<String> = cluster_ips(svc).to_vec();
    for (i, ip) in ips.iter().enumerate() {
        if ip == CLUSTER_IP_NONE {
            break;
        }
        let Some(fam) = parse_ip_sloppy(ip).map(IpFamily::of) else {
            continue;
        };
        if i >= ip_families(svc).len() {
            if allocators.range(fam).is_none() {
                errs.push(FieldError::invalid(
                    FieldPath::new("spec").child("clusterIPs").index(i),
                    cluster_ips_value(svc),
                    format!("{} is not configured on this cluster", fam.as_str()),
                ));
            } else {
                spec_mut(svc)
                    .ip_families
                    .get_or_insert_with(Vec::new)
                    .push(fam.as_str().to_owned());
            }
        }
    }
    if !errs.is_empty() {
        return Err(invalid(svc, errs));
    }

    let primary = allocators.primary_family();
    if type_of(svc) == TYPE_CLUSTER_IP
        && cluster_ips(svc).first().map(String::as_str) == Some(CLUSTER_IP_NONE)
        && spec(svc).selector.as_ref().is_none_or(BTreeMap::is_empty)
    {
        let s = spec_mut(svc);
        let policy = s
            .ip_family_policy
            .get_or_insert_with(|| REQUIRE_DUAL_STACK.to_owned())
            .clone();
        let fams = s.ip_families.get_or_insert_with(Vec::new);
        if fams.is_empty() {
            fams.push(primary.as_str().to_owned());
        }
        if fams.len() < 2 && policy != SINGLE_STACK {
            let other = IpFamily::parse(&fams[0]).map_or(IpFamily::IPv6, IpFamily::other);
            fams.push(other.as_str().to_owned());
        }
        return Ok(());
    }

    if spec(svc).ip_family_policy.as_deref() == Some(REQUIRE_DUAL_STACK) && !allocators.is_dual_stack() {
        errs.push(FieldError::invalid(
            policy_path.clone(),
            policy_value(svc),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, fam) in ip_families(svc).iter().enumerate() {
        if IpFamily::parse(fam).and_then(|f| allocators.range(f)).is_none() {
            errs.push(FieldError::invalid(
                FieldPath::new("spec").child("ipFamilies").index(i),
                fam.as_str(),
                "not configured on this cluster",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(invalid(svc, errs));
    }

    let s = spec_mut(svc);
    let policy = s
        .ip_family_policy
        .get_or_insert_with(|| SINGLE_STACK.to_owned())
        .clone();
    if policy == SINGLE_STACK {
        if cluster_ips(svc).len() > 1 {
            errs.push(FieldError::invalid(
                policy_path.clone(),
                policy_value(svc),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if ip_families(svc).len() > 1 {
            errs.push(FieldError::invalid(
                policy_path,
                policy_value(svc),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(invalid(svc, errs));
    }
    let fams = spec_mut(svc).ip_families.get_or_insert_with(Vec::new);
    if fams.is_empty() {
        fams.push(primary.as_str().to_owned());
    }
    if (policy == PREFER_DUAL_STACK || policy == REQUIRE_DUAL_STACK) && fams.len() == 1 && allocators.is_dual_stack() {
        let other = IpFamily::parse(&fams[0]).map_or(IpFamily::IPv6, IpFamily::other);
        fams.push(other.as_str().to_owned());
    }
    Ok(())
}

/// Allocates the cluster IPs a Service lacks, one per IP family, keeping requested ones.
fn alloc_cluster_ips(svc: &mut Service, txn: &mut Transaction<'_>, rng: &mut dyn RandomSource) -> WriteResult<()> {
    if type_of(svc) == TYPE_EXTERNAL_NAME || cluster_ips(svc).first().map(String::as_str) == Some(CLUSTER_IP_NONE) {
        return Ok(());
    }
    let families: Vec<IpFamily> = ip_families(svc).iter().filter_map(|f| IpFamily::parse(f)).collect();
    let mut result: Vec<String> = cluster_ips(svc).to_vec();
    for (i, fam) in families.iter().enumerate() {
        let requested = result.get(i).cloned().unwrap_or_default();
        let ip = if requested.is_empty() {
            txn.allocate_next_ip(*fam, rng)
                .map_err(|e| internal(format!("failed to allocate a serviceIP: {e}")))?
        } else {
            let Some(ip) = parse_ip_sloppy(&requested) else {
                return Err(internal(format!(
                    "failed to parse service IP {}",
                    crate::field::go_quote(&requested)
                )));
            };
            txn.allocate_ip(ip).map_err(|e| {
                invalid(
                    svc,
                    vec![FieldError::invalid(
                        FieldPath::new("spec").child("clusterIPs"),
                        cluster_ips_value(svc),
                        format!("failed to allocate IP {requested}: {e}"),
                    )],
                )
            })?;
            if requested != ip.to_string() {
                // keep what the client wrote (upstream stores the requested text)
                result[i] = requested.clone();
                continue;
            }
            ip
        };
        if i < result.len() {
            result[i] = ip.to_string();
        } else {
            result.push(ip.to_string());
        }
    }
    if !result.is_empty() {
        let s = spec_mut(svc);
        s.cluster_ip = Some(result[0].clone());
        s.cluster_ips = Some(result);
    }
    Ok(())
}

fn node_port_error(svc: &Service, index: usize, port: i32, e: AllocError) -> Box<Status> {
    invalid(
        svc,
        vec![FieldError::invalid(
            FieldPath::new("spec").child("ports").index(index).child("nodePort"),
            port,
            e.to_string(),
        )],
    )
}

/// On create, ports with the same port number share one node port (53/TCP + 53/UDP).
fn alloc_node_ports_on_create(
    svc: &mut Service,
    txn: &mut Transaction<'_>,
    rng: &mut dyn RandomSource,
) -> WriteResult<()> {
    if needs_node_port(svc) {
        let allocate_new = should_allocate_node_ports(svc);
        let ports = spec(svc).ports.clone().unwrap_or_default();
        let mut by_port: BTreeMap<i32, i32> = BTreeMap::new();
        let mut assigned = Vec::with_capacity(ports.len());
        for (i, p) in ports.iter().enumerate() {
            let requested = p.node_port.unwrap_or(0);
            if requested == 0 && !allocate_new {
                assigned.push(0);
                continue;
            }
            match by_port.get(&p.port).copied() {
                None => {
                    let wanted = ports[i..]
                        .iter()
                        .find(|q| q.port == p.port && q.node_port.unwrap_or(0) != 0)
                        .and_then(|q| q.node_port)
                        .unwrap_or(0);
                    let np = if wanted != 0 {
                        txn.allocate_port(wanted)
                            .map_err(|e| node_port_error(svc, i, wanted, e))?;
                        wanted
                    } else {
                        i32::from(
                            txn.allocate_next_port(rng)
                                .map_err(|e| internal(format!("failed to allocate a nodePort: {e}")))?,
                        )
                    };
                    by_port.insert(p.port, np);
                    assigned.push(np);
                }
                Some(shared) if requested == 0 || requested == shared => assigned.push(shared),
                Some(_) => {
                    txn.allocate_port(requested)
                        .map_err(|e| node_port_error(svc, i, requested, e))?;
                    assigned.push(requested);
                }
            }
        }
        for (p, np) in spec_mut(svc).ports.iter_mut().flatten().zip(assigned) {
            if np != 0 {
                p.node_port = Some(np);
            }
        }
    }
    if needs_health_check(svc) {
        alloc_health_check_port(svc, txn, rng)?;
    }
    Ok(())
}

fn alloc_health_check_port(
    svc: &mut Service,
    txn: &mut Transaction<'_>,
    rng: &mut dyn RandomSource,
) -> WriteResult<()> {
    let hc = spec(svc).health_check_node_port.unwrap_or(0);
    if hc != 0 {
        txn.allocate_port(hc)
            .map_err(|e| internal(format!("failed to allocate requested HealthCheck NodePort {hc}: {e}")))?;
    } else {
        let port = txn
            .allocate_next_port(rng)
            .map_err(|e| internal(format!("failed to allocate a HealthCheck NodePort 0: {e}")))?;
        spec_mut(svc).health_check_node_port = Some(port.into());
    }
    Ok(())
}

/// Cluster IP changes on update: type changes to/from ExternalName, dual-stack upgrade and
/// downgrade. Releases happen when the write commits.
fn update_cluster_ips(
    new: &mut Service,
    old: &Service,
    txn: &mut Transaction<'_>,
    rng: &mut dyn RandomSource,
) -> WriteResult<()> {
    if is_matching_prefer_dual_stack(new, Some(old)) {
        return Ok(());
    }
    let (old_ext, new_ext) = (type_of(old) == TYPE_EXTERNAL_NAME, type_of(new) == TYPE_EXTERNAL_NAME);
    if old_ext && !new_ext {
        return alloc_cluster_ips(new, txn, rng);
    }
    if cluster_ips(old).first().map(String::as_str) == Some(CLUSTER_IP_NONE) {
        return Ok(());
    }
    if !old_ext && new_ext {
        for ip in held_ips(old) {
            txn.release_ip_deferred(ip);
        }
        return Ok(());
    }
    let (old_n, new_n) = (ip_families(old).len(), ip_families(new).len());
    if old_n == 1 && new_n == 2 {
        // upgrade: allocate the secondary family only
        let mut secondary = new.clone();
        {
            let s = spec_mut(&mut secondary);
            s.ip_families = Some(ip_families(new)[1..].to_vec());
            s.cluster_ips = Some(cluster_ips(new).iter().skip(1).cloned().collect());
        }
        alloc_cluster_ips(&mut secondary, txn, rng)?;
        let mut ips = vec![cluster_ips(new).first().cloned().unwrap_or_default()];
        ips.extend(cluster_ips(&secondary).iter().cloned());
        let s = spec_mut(new);
        s.cluster_ip = Some(ips[0].clone());
        s.cluster_ips = Some(ips);
    } else if old_n == 2
        && new_n == 1
        && let Some(ip) = cluster_ips(old).get(1).and_then(|ip| parse_ip_sloppy(ip))
    {
        txn.release_ip_deferred(ip);
    }
    Ok(())
}

/// Node port changes on update: keep, allocate for new ports, release what is no longer used.
fn update_node_ports(
    new: &mut Service,
    old: &Service,
    txn: &mut Transaction<'_>,
    rng: &mut dyn RandomSource,
) -> WriteResult<()> {
    let old_ports: Vec<i32> = spec(old)
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port)
        .filter(|n| *n != 0)
        .collect();
    if needs_node_port(old) && matches!(type_of(new), TYPE_EXTERNAL_NAME | TYPE_CLUSTER_IP) {
        for p in &old_ports {
            txn.release_port_deferred(*p as u16);
        }
    }
    if needs_node_port(new) {
        let allocate_new = should_allocate_node_ports(new);
        let mut seen: Vec<(String, i32)> = Vec::new();
        let mut newly: Vec<i32> = Vec::new();
        let ports = spec(new).ports.clone().unwrap_or_default();
        let mut assigned = Vec::with_capacity(ports.len());
        for (i, p) in ports.iter().enumerate() {
            let mut np = p.node_port.unwrap_or(0);
            if np == 0 && !allocate_new {
                assigned.push(0);
                continue;
            }
            if np != 0 {
                if !old_ports.contains(&np) && !newly.contains(&np) {
                    txn.allocate_port(np).map_err(|e| node_port_error(new, i, np, e))?;
                    newly.push(np);
                }
            } else {
                np = i32::from(
                    txn.allocate_next_port(rng)
                        .map_err(|e| internal(format!("failed to allocate a nodePort: {e}")))?,
                );
            }
            let key = (p.protocol.clone().unwrap_or_default(), np);
            if seen.contains(&key) {
                return Err(internal(format!("duplicate nodePort: {{{} {}}}", key.0, key.1)));
            }
            seen.push(key);
            assigned.push(np);
        }
        for (p, np) in spec_mut(new).ports.iter_mut().flatten().zip(&assigned) {
            if *np != 0 {
                p.node_port = Some(*np);
            }
        }
        for p in &old_ports {
            if !assigned.contains(p) {
                txn.release_port_deferred(*p as u16);
            }
        }
    }
    match (needs_health_check(old), needs_health_check(new)) {
        (false, true) => alloc_health_check_port(new, txn, rng)?,
        (true, false) => {
            if let Some(hc) = spec(old).health_check_node_port.filter(|p| *p != 0) {
                txn.release_port_deferred(hc as u16);
            }
        }
        _ => {}
    }
    Ok(())
}
