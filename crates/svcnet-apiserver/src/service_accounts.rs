//! ServiceAccount admission of new Pods, as upstream's admission plugin: the pod's account
//! (`spec.serviceAccountName`, `default` unless named) must exist, or the create is forbidden
//! with upstream's words; then the core's [`admit`](svcnet_core::workloads::service_account)
//! mounts its token volume and copies its image pull secrets. A namespace's `default`
//! account not made yet by the controller's rounds is made at this first need (upstream's
//! pods can fail in that moment after a namespace is created; here they do not).

use serde_json::Value;
use svcnet_core::status::Status;
use svcnet_core::workloads::service_account;
use svcnet_store::Store;

use crate::objects::{self, Ids, Reply};
use crate::resources::{PODS, SERVICE_ACCOUNTS};

/// Admits new pod `pod` (named, defaulted) into `namespace`; `dry_run` creates nothing.
pub fn admit_pod(store: &Store, namespace: &str, pod: &mut Value, ids: &mut dyn Ids, dry_run: bool) -> Reply<()> {
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let account = match objects::get(store, &SERVICE_ACCOUNTS, namespace, &name) {
        Ok(account) => account,
        Err(s) if s.code == 404 && name == "default" && dry_run => Value::Null,
        Err(s) if s.code == 404 && name == "default" => {
            crate::namespaces::create_default_service_account(store, namespace)
                .or_else(|_| objects::get(store, &SERVICE_ACCOUNTS, namespace, &name))?
        }
        Err(s) => {
            let why = match s.code {
                404 => format!("serviceaccount \"{name}\" not found"),
                _ => s.message.clone(),
            };
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            return Err(Box::new(Status::forbidden(
                PODS.group,
                PODS.plural,
                pod_name,
                &format!("error looking up service account {namespace}/{name}: {why}"),
                None,
            )));
        }
    };
    if let Some(spec) = pod.get_mut("spec") {
        service_account::admit(spec, &account, &ids.name_suffix());
    }
    Ok(())
}
