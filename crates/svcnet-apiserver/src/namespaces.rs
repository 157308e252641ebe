//! Namespace lifecycle, as upstream's namespace admission and controller handle it: objects
//! are only created in a namespace that exists and is not being deleted; deleting a namespace
//! marks it `Terminating`, the controller rounds then delete everything in it (Services
//! through the registry, so their addresses and ports are released; pods gracefully), then
//! take the `kubernetes` finalizer out of `spec.finalizers` (through `/finalize`): the
//! namespace goes once no finalizer is left, so one a user or another controller added holds
//! it until removed. The system namespaces cannot be deleted.

use serde_json::{Value, json};
use svcnet_core::status::{Status, StatusCause};
use svcnet_store::Store;

use crate::objects::{self, Reply};
use crate::registry::Registry;
use crate::resources::{ALL, EVENTS, Kind, NAMESPACES, PODS, SERVICES};

/// Namespaces that always exist.
pub const SYSTEM: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

fn is_terminating(namespace: &Value) -> bool {
    !namespace["metadata"]["deletionTimestamp"].is_null()
}

/// Whether an object of `kind` named `name` may be created in `namespace`: 404 for a
/// namespace that does not exist, 403 for one being deleted (events excepted, as upstream).
pub fn admit_create(store: &Store, kind: &Kind, namespace: &str, name: &str) -> Reply<()> {
    if !kind.namespaced {
        return Ok(());
    }
    let Ok(ns) = objects::get(store, &NAMESPACES, "", namespace) else {
        return Err(Box::new(Status::not_found("", NAMESPACES.plural, namespace)));
    };
    if is_terminating(&ns) && *kind != EVENTS {
        let why = format!("unable to create new content in namespace {namespace} because it is being terminated");
        let cause = StatusCause {
            reason: "NamespaceTerminating".into(),
            message: why.clone(),
            field: "metadata.namespace".into(),
        };
        return Err(Box::new(Status::forbidden(
            kind.group,
            kind.plural,
            name,
            &why,
            Some(cause),
        )));
    }
    Ok(())
}

/// DELETE of a namespace: marks it Terminating (the rounds empty and remove it); the system
/// namespaces are refused with 403.
/// Every active namespace has a ServiceAccount `default`, as upstream's serviceaccounts
/// controller makes sure (recreated when deleted). Returns how many were created.
fn ensure_default_service_accounts(store: &Store, namespaces: &[Value]) -> Reply<usize> {
    let (accounts, _) = objects::list(store, &crate::resources::SERVICE_ACCOUNTS, None)?;
    let has_default = |ns: &str| {
        accounts
            .iter()
            .any(|a| a["metadata"]["namespace"] == ns && a["metadata"]["name"] == "default")
    };
    let mut created = 0;
    for ns in namespaces.iter().filter(|n| !is_terminating(n)) {
        let name = ns["metadata"]["name"].as_str().unwrap_or("");
        if name.is_empty() || has_default(name) {
            continue;
        }
        created += usize::from(create_default_service_account(store, name).is_ok());
    }
    Ok(created)
}

/// The ConfigMap every namespace holds with the cluster's CA, as upstream's root CA
/// publisher (in kube-controller-manager) keeps it; pods' token volumes project it.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Every active namespace has [`ROOT_CA_CONFIG_MAP`] holding `ca` (recreated when deleted,
/// rewritten when changed). Returns how many writes it made.
fn ensure_root_ca_config_maps(store: &Store, namespaces: &[Value], ca: &str) -> Reply<usize> {
    let mut writes = 0;
    for ns in namespaces.iter().filter(|n| !is_terminating(n)) {
        let name = ns["metadata"]["name"].as_str().unwrap_or("");
        if name.is_empty() {
            continue;
        }
        let wanted = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": ROOT_CA_CONFIG_MAP,
                "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
            },
            "data": {"ca.crt": ca},
        });
        let mut ids = objects::RandomIds::new();
        let written = match objects::get(store, &crate::resources::CONFIG_MAPS, name, ROOT_CA_CONFIG_MAP) {
            Ok(existing) if existing["data"] == wanted["data"] => continue,
            Ok(mut existing) => {
                existing["data"] = wanted["data"].clone();
                let kind = &crate::resources::CONFIG_MAPS;
                objects::replace(store, kind, name, ROOT_CA_CONFIG_MAP, existing, false, &mut ids)
            }
            Err(s) if s.code == 404 => objects::create(store, &crate::resources::CONFIG_MAPS, name, wanted, &mut ids),
            Err(s) => Err(s),
        };
        writes += usize::from(written.is_ok());
    }
    Ok(writes)
}

/// What the root CA ConfigMap says of itself (in upstream's sense: its use is to verify the
/// API server through the cluster's internal endpoints).
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Creates `namespace`'s ServiceAccount `default`.
pub fn create_default_service_account(store: &Store, namespace: &str) -> Reply<Value> {
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    let mut ids = objects::RandomIds::new();
    objects::create(store, &crate::resources::SERVICE_ACCOUNTS, namespace, account, &mut ids)
}

/// 403 for the system namespaces, which may not be deleted.
pub fn check_deletable(name: &str) -> Reply<()> {
    if SYSTEM.contains(&name) {
        return Err(Box::new(Status::forbidden(
            "",
            NAMESPACES.plural,
            name,
            "this namespace may not be deleted",
            None,
        )));
    }
    Ok(())
}

pub fn delete(store: &Store, name: &str) -> Reply<Value> {
    check_deletable(name)?;
    let mut ns = objects::get(store, &NAMESPACES, "", name)?;
    if is_terminating(&ns) {
        return Ok(ns);
    }
    ns["metadata"]["deletionTimestamp"] = json!(objects::now());
    ns["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    ns["status"]["phase"] = json!("Terminating");
    objects::mark_deleted(store, &NAMESPACES, "", name, ns)
}

/// One round over the terminating namespaces: deletes their content and removes each one
/// that is empty. Returns how many writes it made.
pub fn reconcile(registry: &Registry) -> Reply<usize> {
    let store = registry.store();
    let (namespaces, _) = objects::list(store, &NAMESPACES, None)?;
    let mut writes = ensure_default_service_accounts(store, &namespaces)?;
    if let Some(ca) = registry.root_ca() {
        writes += ensure_root_ca_config_maps(store, &namespaces, ca)?;
    }
    for ns in namespaces.iter().filter(|n| is_terminating(n)) {
        let name = ns["metadata"]["name"].as_str().unwrap_or("");
        let mut remaining = 0;
        for kind in ALL.into_iter().filter(|k| k.namespaced) {
            let (items, _) = objects::list(store, kind, Some(name))?;
            remaining += items.len();
            for item in items.iter().filter(|i| i["metadata"]["deletionTimestamp"].is_null()) {
                let object = item["metadata"]["name"].as_str().unwrap_or("");
                let deleted = if *kind == SERVICES {
                    registry.delete_service(name, object).is_ok()
                } else if *kind == PODS {
                    objects::delete_pod(store, name, object, None).is_ok()
                } else {
                    objects::delete(store, kind, name, object).is_ok()
                };
                writes += usize::from(deleted);
            }
        }
        if remaining > 0 {
            continue;
        }
        // its content is gone: the `kubernetes` finalizer is done with, as upstream's
        // namespace controller finalizes it; others hold the namespace until removed
        let finalizers: Vec<Value> = ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let others: Vec<Value> = finalizers.iter().filter(|f| *f != "kubernetes").cloned().collect();
        if others.len() < finalizers.len() {
            let mut finalized = ns.clone();
            finalized["spec"]["finalizers"] = json!(others);
            objects::replace_with(
                store,
                &NAMESPACES,
                "",
                name,
                finalized,
                objects::Part::Finalizers,
                &mut objects::RandomIds::new(),
                crate::write_options::WriteOptions::default(),
            )?;
            writes += 1;
        }
        // (that write removed it when nothing else holds it)
        if others.is_empty() && others.len() == finalizers.len() {
            writes += usize::from(objects::delete(store, &NAMESPACES, "", name).is_ok());
        }
    }
    Ok(writes)
}
