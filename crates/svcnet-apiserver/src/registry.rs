//! The Service registry: every Service write goes through the core's transition
//! (`plan_write` / `plan_delete`), and the object and the allocator state after it are
//! committed in one store transaction; the in-memory allocators change only after that commit
//! succeeds. On open, allocators are rebuilt from the stored Services and the
//! `default/kubernetes` Service is created if missing.

use std::path::Path;
use std::sync::Mutex;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rand::{Rng, SeedableRng};
use svcnet_core::alloc::{Allocators, PortRange, RandomSource};
use svcnet_core::registry::{plan_delete, plan_write, rebuild_allocators};
use svcnet_core::service::prepare::prepare_status_update;
use svcnet_core::status::Status;
use svcnet_store::{Key, Store, StoreError};
use thiserror::Error;

use crate::finalizers;
use crate::objects;
use crate::resources::{IP_ADDRESSES, NAMESPACES};
use crate::service_cidrs;

const SERVICES: &str = "services";
const ENDPOINTS: &str = "endpoints";
const ALLOCATORS: &str = "allocators";
/// How many changes watches can resume from.
const HISTORY: u64 = 100_000;

#[derive(Debug, Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] svcnet_core::alloc::ConfigError),
    #[error("creating default/kubernetes: {0}")]
    Bootstrap(String),
}

pub type Reply<T> = Result<T, Box<Status>>;

pub use crate::write_options::WriteOptions;

/// Operating-system randomness for allocation and names.
struct OsRandom(rand::rngs::StdRng);

impl RandomSource for OsRandom {
    fn below(&mut self, bound: usize) -> usize {
        self.0.random_range(0..bound)
    }
}

struct State {
    allocators: Allocators,
    rng: OsRandom,
}

pub struct Registry {
    store: Store,
    state: Mutex<State>,
    /// `--service-cluster-ip-range`, which the ServiceCIDR `kubernetes` mirrors.
    configured: Vec<IpNet>,
    node_ports: PortRange,
    /// The cluster's CA (PEM), published in every namespace once known.
    root_ca: std::sync::OnceLock<String>,
}

/// How many times a write picks another address when the one it planned turns out to be
/// held by an IPAddress a client created.
const CLAIM_ATTEMPTS: usize = 8;

/// Deletes the IPAddress objects of the addresses `changes` frees.
fn release_ip_addresses(
    b: &mut svcnet_store::WriteBatch<'_>,
    changes: &svcnet_core::alloc::AllocationChanges,
) -> svcnet_store::Result<()> {
    for ip in &changes.released_ips {
        let k = service_cidrs::ip_address_key(*ip);
        if b.get(&k)?.is_some() {
            b.delete(&k, None)?;
        }
    }
    Ok(())
}

fn key(namespace: &str, name: &str) -> Key {
    Key::new(SERVICES, namespace, name)
}

fn internal(e: impl std::fmt::Display) -> Box<Status> {
    Box::new(Status::internal(&e.to_string()))
}

fn store_error(e: StoreError, name: &str) -> Box<Status> {
    match e {
        StoreError::AlreadyExists(_) => Box::new(Status::already_exists("", SERVICES, name)),
        StoreError::NotFound(_) => Box::new(Status::not_found("", SERVICES, name)),
        StoreError::Conflict { .. } => Box::new(Status::conflict("", SERVICES, name)),
        other => internal(other),
    }
}

fn decode(bytes: &[u8]) -> Reply<Service> {
    serde_json::from_slice(bytes).map_err(internal)
}

fn encode(svc: &Service) -> Vec<u8> {
    serde_json::to_vec(svc).expect("a Service always serializes")
}

/// Characters upstream uses for generated name suffixes (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn uid(rng: &mut OsRandom) -> String {
    objects::uid_from(rng.0.random())
}

/// The allocators after `changes`, and their snapshot as stored.
fn after(allocators: &Allocators, changes: &svcnet_core::alloc::AllocationChanges) -> Reply<(Allocators, Vec<u8>)> {
    let mut next = allocators.clone();
    next.commit(changes).map_err(internal)?;
    let snapshot = serde_json::to_vec(&next.snapshot()).expect("snapshot serializes");
    Ok((next, snapshot))
}

impl Registry {
    /// Sets the cluster's CA (PEM), which the namespace rounds publish in every namespace
    /// (the first value set stays).
    pub fn publish_root_ca(&self, pem: String) {
        let _ = self.root_ca.set(pem);
    }

    pub fn root_ca(&self) -> Option<&str> {
        self.root_ca.get().map(String::as_str)
    }

    /// Opens the store at `path`, rebuilds the allocators from the stored Services, and makes
    /// sure `default/kubernetes` exists.
    pub fn open(path: &Path, service_cidrs: &[IpNet], node_ports: PortRange) -> Result<Self, OpenError> {
        let store = Store::open(path, HISTORY)?;
        let (mut allocators, refused) = service_cidrs::allocators(&store, service_cidrs, node_ports)?;
        for (name, why) in refused {
            tracing::warn!(servicecidr = %name, problem = %why, "ServiceCIDR not used for allocation");
        }
        let (stored, _) = store.list(SERVICES, None)?;
        // a stored Service this version cannot read is reported, never a reason not to start
        let services: Vec<Service> = stored
            .iter()
            .filter_map(|s| match serde_json::from_slice::<Service>(&s.value) {
                Ok(service) => Some(service),
                Err(e) => {
                    tracing::error!(key = %s.key, error = %e, "stored Service cannot be decoded; its addresses stay unallocated");
                    None
                }
            })
            .collect();
        for p in rebuild_allocators(&mut allocators, &services) {
            tracing::warn!(service = %p.service, problem = %p.detail, "allocation not restored");
        }
        let registry = Registry {
            store,
            state: Mutex::new(State {
                allocators,
                rng: OsRandom(rand::rngs::StdRng::from_os_rng()),
            }),
            configured: service_cidrs.to_vec(),
            node_ports,
            root_ca: std::sync::OnceLock::new(),
        };
        registry.bootstrap()?;
        // after bootstrap, which may have created `default/kubernetes`
        let services = registry
            .list_services(None)
            .map_err(|s| OpenError::Bootstrap(s.message))?
            .0;
        registry
            .repair_ip_addresses(&services)
            .map_err(|s| OpenError::Bootstrap(s.message))?;
        Ok(registry)
    }

    /// Makes the IPAddress objects match the stored Services' cluster IPs: the ones a store
    /// from before IPAddress objects lacks are created, the allocator's own objects for
    /// addresses no Service holds are deleted (a client's IPAddress reservations stay).
    fn repair_ip_addresses(&self, services: &[Service]) -> Reply<usize> {
        let mut held: std::collections::BTreeMap<std::net::IpAddr, &Service> = Default::default();
        for svc in services {
            for ip in svcnet_core::registry::held_ips(svc) {
                held.entry(ip).or_insert(svc);
            }
        }
        let (stored, _) = self.store.list(&IP_ADDRESSES.store_name(), None).map_err(internal)?;
        let mut present = std::collections::BTreeSet::new();
        let mut orphans = Vec::new();
        for s in &stored {
            let Ok(obj) = serde_json::from_slice::<serde_json::Value>(&s.value) else {
                continue;
            };
            let Some(ip) = s.key.name.parse::<std::net::IpAddr>().ok() else {
                continue;
            };
            present.insert(ip);
            if service_cidrs::is_managed(&obj) && !held.contains_key(&ip) {
                orphans.push(ip);
            }
        }
        let missing: Vec<(std::net::IpAddr, &Service)> =
            held.into_iter().filter(|(ip, _)| !present.contains(ip)).collect();
        if missing.is_empty() && orphans.is_empty() {
            return Ok(0);
        }
        let mut rng = OsRandom(rand::rngs::StdRng::from_os_rng());
        let count = missing.len() + orphans.len();
        self.store
            .write(|b| {
                let revision = b.revision() + 1;
                for (ip, svc) in &missing {
                    let (ns, name) = (
                        svc.metadata.namespace.as_deref().unwrap_or(""),
                        svc.metadata.name.as_deref().unwrap_or(""),
                    );
                    b.create(
                        &service_cidrs::ip_address_key(*ip),
                        &service_cidrs::ip_address_object(*ip, ns, name, &uid(&mut rng), revision),
                    )?;
                }
                for ip in &orphans {
                    b.delete(&service_cidrs::ip_address_key(*ip), None)?;
                }
                Ok(())
            })
            .map_err(|e| store_error(e, "ipaddresses"))?;
        tracing::info!(
            created = missing.len(),
            deleted = orphans.len(),
            "IPAddress objects repaired"
        );
        Ok(count)
    }

    /// Rebuilds the allocators over the configured ranges and the ServiceCIDRs stored now
    /// (after a ServiceCIDR changed); returns the ServiceCIDRs it could not use, with why.
    pub fn refresh_service_cidrs(&self) -> Reply<Vec<(String, String)>> {
        let mut state = self.state.lock().expect("registry lock");
        let (mut allocators, refused) =
            service_cidrs::allocators(&self.store, &self.configured, self.node_ports).map_err(internal)?;
        let (services, _) = self.list_services(None)?;
        for p in rebuild_allocators(&mut allocators, &services) {
            tracing::warn!(service = %p.service, problem = %p.detail, "allocation not restored");
        }
        state.allocators = allocators;
        Ok(refused)
    }

    /// Writes the allocator's IPAddress object for `ip` again if a Service holds `ip` and
    /// the object is gone; returns whether it did.
    pub fn restore_ip_address(&self, ip: std::net::IpAddr) -> Reply<bool> {
        let mut state = self.state.lock().expect("registry lock");
        if !state.allocators.is_allocated(ip)
            || self
                .store
                .get(&service_cidrs::ip_address_key(ip))
                .map_err(internal)?
                .is_some()
        {
            return Ok(false);
        }
        let (services, _) = self.list_services(None)?;
        let Some(holder) = services
            .iter()
            .find(|s| svcnet_core::registry::held_ips(s).contains(&ip))
        else {
            return Ok(false);
        };
        let id = uid(&mut state.rng);
        let (ns, name) = (
            holder.metadata.namespace.clone().unwrap_or_default(),
            holder.metadata.name.clone().unwrap_or_default(),
        );
        self.store
            .write(|b| {
                let obj = service_cidrs::ip_address_object(ip, &ns, &name, &id, b.revision() + 1);
                b.create(&service_cidrs::ip_address_key(ip), &obj)
            })
            .map_err(|e| store_error(e, &ip.to_string()))?;
        Ok(true)
    }

    /// Every allocated cluster IP.
    pub fn allocated_ips(&self) -> Vec<std::net::IpAddr> {
        let state = self.state.lock().expect("registry lock");
        state.allocators.allocated_ips().into_iter().collect()
    }

    /// The first address `changes` takes that a client's IPAddress already holds.
    fn claimed_elsewhere(&self, changes: &svcnet_core::alloc::AllocationChanges) -> Reply<Option<std::net::IpAddr>> {
        for ip in &changes.allocated_ips {
            if self
                .store
                .get(&service_cidrs::ip_address_key(*ip))
                .map_err(internal)?
                .is_some()
            {
                return Ok(Some(*ip));
            }
        }
        Ok(None)
    }

    /// Plans `svc`'s write, taking other addresses while a planned one is held by an
    /// IPAddress a client created (those become taken in the allocator, as upstream's
    /// allocator, whose state is the IPAddress objects, sees them).
    fn plan_claiming(
        &self,
        state: &mut State,
        old: Option<&Service>,
        svc: Service,
    ) -> Reply<svcnet_core::registry::PlannedWrite> {
        let mut attempt = 0;
        loop {
            let planned = plan_write(old, svc.clone(), &state.allocators, &mut state.rng)?;
            match self.claimed_elsewhere(&planned.changes)? {
                Some(ip) if attempt < CLAIM_ATTEMPTS => {
                    let _ = state.allocators.reserve_ip(ip);
                    attempt += 1;
                }
                _ => return Ok(planned),
            }
        }
    }

    /// What every cluster starts with: the four system namespaces and `default/kubernetes`.
    fn bootstrap(&self) -> Result<(), OpenError> {
        let mut ids = objects::RandomIds(rand::rngs::StdRng::from_os_rng());
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if objects::get(&self.store, &NAMESPACES, "", name).is_err() {
                let namespace = serde_json::json!({"metadata": {"name": name}, "status": {"phase": "Active"}});
                let by_api_server = crate::write_options::WriteOptions::by(crate::write_options::API_SERVER_MANAGER);
                objects::create_with(&self.store, &NAMESPACES, "", namespace, &mut ids, by_api_server)
                    .map_err(|s| OpenError::Bootstrap(s.message))?;
            }
        }
        service_cidrs::ensure_default(&self.store, &self.configured, &mut ids)
            .map_err(|s| OpenError::Bootstrap(s.message))?;
        self.ensure_kubernetes_service()
            .map(drop)
            .map_err(|s| OpenError::Bootstrap(s.message))
    }

    /// The ranges `--service-cluster-ip-range` configured.
    pub fn configured_ranges(&self) -> &[IpNet] {
        &self.configured
    }

    /// Creates `default/kubernetes` (the first address of the primary range, port 443) if it
    /// is missing, as upstream's API server keeps it; returns whether it did.
    pub fn ensure_kubernetes_service(&self) -> Reply<bool> {
        if self.get_service("default", "kubernetes").is_ok() {
            return Ok(false);
        }
        let first_ip = {
            let state = self.state.lock().expect("registry lock");
            let primary = state.allocators.primary_family();
            state
                .allocators
                .range(primary)
                .expect("primary range")
                .first_ip()
                .to_string()
        };
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("kubernetes".into()),
                labels: Some(
                    [
                        ("component".into(), "apiserver".into()),
                        ("provider".into(), "kubernetes".into()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(first_ip),
                ports: Some(vec![ServicePort {
                    name: Some("https".into()),
                    port: 443,
                    protocol: Some("TCP".into()),
                    target_port: Some(IntOrString::Int(6443)),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        self.create_service("default", svc).map(|_| true)
    }

    pub fn get_service(&self, namespace: &str, name: &str) -> Reply<Service> {
        match self.store.get(&key(namespace, name)).map_err(internal)? {
            Some(s) => decode(&s.value),
            None => Err(Box::new(Status::not_found("", SERVICES, name))),
        }
    }

    /// Services of a namespace (or all), and the revision the list is consistent with.
    pub fn list_services(&self, namespace: Option<&str>) -> Reply<(Vec<Service>, u64)> {
        let (stored, rev) = self.store.list(SERVICES, namespace).map_err(internal)?;
        let services = stored.iter().map(|s| decode(&s.value)).collect::<Reply<Vec<_>>>()?;
        Ok((services, rev))
    }

    /// The allocator state last committed with a Service write (as stored).
    pub fn stored_allocator_snapshot(&self) -> Reply<Option<svcnet_core::alloc::AllocatorsSnapshot>> {
        match self.store.side_data(ALLOCATORS).map_err(internal)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(internal),
            None => Ok(None),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The allocator state as committed (for checks and metrics).
    pub fn allocators(&self) -> Allocators {
        self.state.lock().expect("registry lock").allocators.clone()
    }

    /// POST: creates a Service in `namespace`.
    pub fn create_service(&self, namespace: &str, svc: Service) -> Reply<Service> {
        self.create_service_with(namespace, svc, WriteOptions::default())
    }

    /// [`create_service`](Self::create_service) with the request's options: a dry run plans
    /// everything (name, allocation, validation, admission) and stores and allocates nothing.
    pub fn create_service_with(&self, namespace: &str, mut svc: Service, options: WriteOptions) -> Reply<Service> {
        if svc
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|ns| !ns.is_empty() && ns != namespace)
        {
            return Err(Box::new(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )));
        }
        if svc
            .metadata
            .resource_version
            .as_deref()
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(Box::new(Status::bad_request(
                "resourceVersion should not be set on objects to be created",
            )));
        }
        svc.metadata.namespace = Some(namespace.to_owned());
        let mut state = self.state.lock().expect("registry lock");
        let state = &mut *state;
        if svc.metadata.name.as_deref().unwrap_or("").is_empty()
            && let Some(prefix) = svc.metadata.generate_name.clone().filter(|p| !p.is_empty())
        {
            let suffix: String = (0..5)
                .map(|_| NAME_ALPHABET[state.rng.below(NAME_ALPHABET.len())] as char)
                .collect();
            svc.metadata.name = Some(format!("{prefix}{suffix}"));
        }
        let name = svc.metadata.name.clone().unwrap_or_default();
        crate::namespaces::admit_create(&self.store, &crate::resources::SERVICES, namespace, &name)?;
        let planned = self.plan_claiming(state, None, svc)?;
        let mut svc = planned.service;
        let meta = &mut svc.metadata;
        meta.uid = Some(uid(&mut state.rng));
        meta.creation_timestamp = Some(Time(objects::now_timestamp()));
        // Services carry no generation upstream (their strategy does not track one)
        meta.generation = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        if svc.status.is_none() {
            svc.status = Some(ServiceStatus {
                load_balancer: Some(Default::default()),
                ..ServiceStatus::default()
            });
        }
        let name = svc.metadata.name.clone().unwrap_or_default();
        self.commit(
            state,
            &planned.changes,
            &name,
            |batch, svc| batch.create(&key(namespace, &name), &encode(svc)),
            svc,
            options,
        )
    }

    /// PUT: replaces a Service (creating it when missing, as upstream does). A stale
    /// `resourceVersion` is a 409 Conflict.
    pub fn update_service(&self, namespace: &str, name: &str, svc: Service) -> Reply<Service> {
        self.update_service_with(namespace, name, svc, WriteOptions::default())
    }

    /// [`update_service`](Self::update_service) with the request's options (a dry run writes
    /// and allocates nothing).
    pub fn update_service_with(
        &self,
        namespace: &str,
        name: &str,
        mut svc: Service,
        options: WriteOptions,
    ) -> Reply<Service> {
        if svc.metadata.name.as_deref().is_some_and(|n| n != name) {
            return Err(Box::new(Status::bad_request(
                "the name of the object does not match the name on the URL",
            )));
        }
        let old = match self.store.get(&key(namespace, name)).map_err(internal)? {
            Some(stored) => (decode(&stored.value)?, stored.revision),
            None => {
                svc.metadata.resource_version = None;
                return self.create_service_with(namespace, svc, options);
            }
        };
        let (old, old_rev) = old;
        let expected = match svc.metadata.resource_version.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => match v.parse::<u64>() {
                Ok(rv) if rv == old_rev => Some(rv),
                _ => return Err(Box::new(Status::conflict("", SERVICES, name))),
            },
            None => None,
        };
        svc.metadata.namespace = Some(namespace.to_owned());
        svc.metadata.name = Some(name.to_owned());
        finalizers::carry(&old.metadata, &mut svc.metadata, "Service", "")?;
        if finalizers::done(&svc.metadata) {
            if options.dry_run {
                return Ok(old);
            }
            // the last finalizer of a marked Service is gone: so is the Service
            return self.remove_service(namespace, name, expected.unwrap_or(old_rev));
        }
        let mut state = self.state.lock().expect("registry lock");
        let state = &mut *state;
        // identity and system fields come from the stored object
        svc.metadata.uid = old.metadata.uid.clone();
        svc.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
        let planned = self.plan_claiming(state, Some(&old), svc)?;
        let mut svc = planned.service;
        svc.metadata.generation = None;
        if svc.status.is_none() {
            svc.status = old.status.clone();
        }
        self.commit(
            state,
            &planned.changes,
            name,
            |batch, svc| batch.update(&key(namespace, name), &encode(svc), expected.or(Some(old_rev))),
            svc,
            options,
        )
    }

    /// The stored Service and its revision, or 404.
    fn load(&self, namespace: &str, name: &str) -> Reply<(Service, u64)> {
        let stored = self
            .store
            .get(&key(namespace, name))
            .map_err(internal)?
            .ok_or_else(|| Box::new(Status::not_found("", SERVICES, name)))?;
        Ok((decode(&stored.value)?, stored.revision))
    }

    /// PUT on `/status`: the stored spec stays, status and metadata labels come from the request.
    pub fn update_service_status(&self, namespace: &str, name: &str, svc: Service) -> Reply<Service> {
        self.update_service_status_with(namespace, name, svc, WriteOptions::default())
    }

    /// [`update_service_status`](Self::update_service_status) with the request's options.
    pub fn update_service_status_with(
        &self,
        namespace: &str,
        name: &str,
        mut svc: Service,
        options: WriteOptions,
    ) -> Reply<Service> {
        let (old, revision) = self.load(namespace, name)?;
        prepare_status_update(&mut svc, &old);
        // the deletion mark, finalizers and owners do not change through /status, as upstream
        svc.metadata.deletion_timestamp = old.metadata.deletion_timestamp.clone();
        svc.metadata.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds;
        svc.metadata.finalizers = old.metadata.finalizers.clone();
        svc.metadata.owner_references = old.metadata.owner_references.clone();
        svc.metadata.uid = old.metadata.uid.clone();
        svc.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
        svc.metadata.generation = old.metadata.generation;
        svc.metadata.namespace = Some(namespace.to_owned());
        svc.metadata.name = Some(name.to_owned());
        let expected = svc
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .or(Some(revision));
        if options.dry_run {
            if expected != Some(revision) {
                return Err(Box::new(Status::conflict("", SERVICES, name)));
            }
            return Ok(svc);
        }
        self.store
            .write(|b| {
                svc.metadata.resource_version = Some((b.revision() + 1).to_string());
                b.update(&key(namespace, name), &encode(&svc), expected)
            })
            .map_err(|e| store_error(e, name))?;
        Ok(svc)
    }

    /// DELETE: removes a Service (and the Endpoints of the same name), releasing its
    /// allocations; returns the deleted object. A Service with finalizers is only marked; it
    /// keeps its addresses and ports until the update that removes its last finalizer.
    pub fn delete_service(&self, namespace: &str, name: &str) -> Reply<Service> {
        let (mut svc, revision) = self.load(namespace, name)?;
        if !finalizers::blocks_deletion(&svc.metadata) {
            return self.remove_service(namespace, name, revision);
        }
        if !finalizers::mark(&mut svc.metadata, objects::now_timestamp()) {
            return Ok(svc);
        }
        self.store
            .write(|b| {
                svc.metadata.resource_version = Some((b.revision() + 1).to_string());
                b.update(&key(namespace, name), &encode(&svc), Some(revision))
            })
            .map_err(|e| store_error(e, name))?;
        Ok(svc)
    }

    /// Removes the Service stored at `revision` with its Endpoints and allocations.
    fn remove_service(&self, namespace: &str, name: &str, revision: u64) -> Reply<Service> {
        let mut state = self.state.lock().expect("registry lock");
        let (old, current) = self.load(namespace, name)?;
        if current != revision {
            return Err(Box::new(Status::conflict("", SERVICES, name)));
        }
        let changes = plan_delete(&old);
        let (next, snapshot) = after(&state.allocators, &changes)?;
        self.store
            .write(|b| {
                b.delete(&key(namespace, name), Some(revision))?;
                release_ip_addresses(b, &changes)?;
                let endpoints = Key::new(ENDPOINTS, namespace, name);
                if b.get(&endpoints)?.is_some() {
                    b.delete(&endpoints, None)?;
                }
                b.put_side_data(ALLOCATORS, &snapshot)
            })
            .map_err(|e| store_error(e, name))?;
        state.allocators = next;
        Ok(old)
    }

    /// Writes `svc` with `write` and the allocator state after `changes` in one transaction;
    /// the in-memory allocators follow only if it commits.
    fn commit(
        &self,
        state: &mut State,
        changes: &svcnet_core::alloc::AllocationChanges,
        name: &str,
        write: impl FnOnce(&mut svcnet_store::WriteBatch<'_>, &Service) -> svcnet_store::Result<svcnet_store::Stored>,
        mut svc: Service,
        options: WriteOptions,
    ) -> Reply<Service> {
        let (next, snapshot) = after(&state.allocators, changes)?;
        if options.dry_run {
            // planned and checked against the allocators; nothing stored, nothing kept
            return Ok(svc);
        }
        let (namespace, svc_name) = (svc.metadata.namespace.clone().unwrap_or_default(), name.to_owned());
        let ids: Vec<String> = changes.allocated_ips.iter().map(|_| uid(&mut state.rng)).collect();
        self.store
            .write(|b| {
                let revision = b.revision() + 1;
                svc.metadata.resource_version = Some(revision.to_string());
                write(b, &svc)?;
                // each allocated address gets its IPAddress in the Service's own transaction
                for (ip, id) in changes.allocated_ips.iter().zip(&ids) {
                    let obj = service_cidrs::ip_address_object(*ip, &namespace, &svc_name, id, revision);
                    b.create(&service_cidrs::ip_address_key(*ip), &obj)?;
                }
                release_ip_addresses(b, changes)?;
                b.put_side_data(ALLOCATORS, &snapshot)
            })
            .map_err(|e| store_error(e, name))?;
        state.allocators = next;
        Ok(svc)
    }
}
