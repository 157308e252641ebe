//! Deployments and ReplicaSets: what the controllers should do, as pure functions of the
//! objects they see (names of new pods come from the API server's `generateName`).
//!
//! - [`deployment`]: a Deployment's ReplicaSets (one per pod template) and its status.
//! - [`replicaset`]: a ReplicaSet's pods and its status.
//! - [`pod_defaults`]: upstream's Pod defaults and a new Pod's status.
//! - [`pod_spec`]: upstream's checks of a Pod's spec; [`pod_volumes`]: of its volumes and
//!   mounts.
//! - [`validate`]: the spec checks made before they are stored.

pub mod deployment;
pub mod pod_defaults;
pub mod pod_spec;
pub mod pod_update;
pub mod pod_volumes;
pub mod replicaset;
pub mod service_account;
pub mod validate;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The label that ties a ReplicaSet and its pods to one pod template of a Deployment.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Characters upstream uses in generated names (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A short, stable name part for a pod template: FNV-1a over its JSON, written with the
/// safe alphabet.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|d| SAFE_ALPHABET[usize::from(d) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The reference a controller puts on what it creates.
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The object's controller reference, if it has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The uid of the object's controller, if it has one.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    controller_of(meta).map(|r| r.uid.as_str())
}

/// Whether the object's controller is of `kind` and no longer among `live` uids (garbage).
pub fn is_orphan(meta: &ObjectMeta, kind: &str, live: &std::collections::HashSet<&str>) -> bool {
    controller_of(meta).is_some_and(|o| o.kind == kind && !live.contains(o.uid.as_str()))
}

/// Whether a pod counts towards its ReplicaSet: not being deleted and not finished.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_tracks_the_template() {
        let mut t = PodTemplateSpec::default();
        let a = template_hash(&t);
        assert_eq!(a, template_hash(&t.clone()));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{a}");
        t.metadata = Some(ObjectMeta {
            labels: Some([("app".into(), "web".into())].into()),
            ..Default::default()
        });
        assert_ne!(a, template_hash(&t));
    }
}
