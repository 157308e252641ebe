//! One registration per served kind ([`Strategy`]): everything the server does differently
//! for a kind lives here, so the HTTP handlers, OpenAPI, field validation, protobuf decoding
//! and the generic write path dispatch once instead of branching on kind names. Adding a kind
//! is a [`Kind`](crate::resources::Kind) in `resources.rs` plus one entry in [`STRATEGIES`]
//! (and its protobuf root in `xtask/src/protobuf.rs`).
//!
//! Services are the exception that proves the rule: their writes go through the Service
//! registry (allocation), which the generic path hands them to.

use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core, discovery::v1 as discovery};
use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz, rbac::v1 as rbac};
use k8s_pb as pb;
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use svcnet_core::field::FieldError;
use svcnet_core::workloads::pod_defaults::{admit_pod_spec, default_pod_spec};

use crate::protobuf::ToJson;
use crate::resources::{self, Kind};

/// What is particular to one kind.
pub struct Strategy {
    pub kind: &'static Kind,
    /// Registers the kind's OpenAPI schema in `generator`; returns the schema's name.
    pub schema: fn(&mut SchemaGenerator) -> String,
    /// The object as the kind's type reads and writes it (unknown fields dropped), or why it
    /// does not decode.
    pub decode: fn(&Value) -> Result<Value, String>,
    /// The object from the bytes of a protobuf body, as JSON.
    pub from_protobuf: fn(&[u8]) -> Result<Value, prost::DecodeError>,
    /// Upstream's defaults, applied on every write.
    pub defaults: fn(&mut Value),
    /// The kind's own rules (beyond names and decoding), as field errors.
    pub validate: fn(&Value) -> Vec<FieldError>,
    /// What an update may not change: the new object's errors against the stored one.
    pub validate_update: fn(&Value, &Value) -> Vec<FieldError>,
    /// What an update of the object keeps from the stored one, whatever was sent (upstream's
    /// `PrepareForUpdate`): the new object, then the stored one.
    pub prepare_update: fn(&mut Value, &Value),
    /// Whether the object, marked for deletion and without metadata finalizers, is still held
    /// by something of its kind (a Namespace by its `spec.finalizers`).
    pub holds_deletion: fn(&Value) -> bool,
    /// Admission of a new object, after its name and namespace are settled: what it gets from
    /// other objects (a Pod from its ServiceAccount), or why it may not be created. The last
    /// argument says whether this is a dry run (nothing may be created).
    pub admit_create:
        fn(&svcnet_store::Store, &str, &mut Value, &mut dyn crate::objects::Ids, bool) -> crate::objects::Reply<()>,
    /// The warnings upstream returns with an accepted object (`true`: on create).
    pub warnings: fn(&Value, bool) -> Vec<String>,
    /// Whether an update is checked by `validate_update` alone (as upstream's strategies for
    /// ServiceCIDR and IPAddress do), not by `validate` too.
    pub update_rules_only: bool,
    /// What its objects' names must be: why a name is not (RFC 1123 subdomains unless the
    /// kind says otherwise).
    pub name: fn(&str) -> Vec<String>,
    /// Whether a replace of a missing object creates it (upstream's `AllowCreateOnUpdate`);
    /// otherwise it is 404, and a patch that lost a race with a delete cannot bring the
    /// object back.
    pub create_on_update: bool,
    /// The warning every request to the kind carries (upstream's API lifecycle deprecation).
    pub deprecated: Option<&'static str>,
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed = serde_json::from_value::<T>(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

fn protobuf_of<P: prost::Message + Default + ToJson>(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    P::decode(raw).map(|message| message.to_json())
}

fn no_defaults(_: &mut Value) {}

fn no_rules(_: &Value) -> Vec<FieldError> {
    Vec::new()
}

fn no_update_rules(_: &Value, _: &Value) -> Vec<FieldError> {
    Vec::new()
}

fn no_warnings(_: &Value, _: bool) -> Vec<String> {
    Vec::new()
}

fn service_warnings(v: &Value, _create: bool) -> Vec<String> {
    serde_json::from_value::<core::Service>(v.clone())
        .map(|svc| svcnet_core::service::warnings::service_warnings(&svc))
        .unwrap_or_default()
}

/// A kind whose Rust type is `T` and protobuf message `P`, with `defaults` and `validate`.
const fn typed<T, P>(kind: &'static Kind, defaults: fn(&mut Value), validate: fn(&Value) -> Vec<FieldError>) -> Strategy
where
    T: JsonSchema + DeserializeOwned + Serialize,
    P: prost::Message + Default + ToJson,
{
    Strategy {
        kind,
        schema: schema_of::<T>,
        decode: round_trip::<T>,
        from_protobuf: protobuf_of::<P>,
        defaults,
        validate,
        validate_update: no_update_rules,
        prepare_update: keep_nothing,
        holds_deletion: holds_nothing,
        admit_create: admit_anything,
        warnings: no_warnings,
        update_rules_only: false,
        name: svcnet_core::names::dns1123_subdomain,
        create_on_update: false,
        deprecated: None,
    }
}

/// [`typed`] for a kind whose replace of a missing object creates it.
const fn created_on_update<T, P>(
    kind: &'static Kind,
    defaults: fn(&mut Value),
    validate: fn(&Value) -> Vec<FieldError>,
) -> Strategy
where
    T: JsonSchema + DeserializeOwned + Serialize,
    P: prost::Message + Default + ToJson,
{
    Strategy {
        create_on_update: true,
        ..typed::<T, P>(kind, defaults, validate)
    }
}

/// Every served kind's registration.
pub static STRATEGIES: [Strategy; 23] = [
    // namespace names are RFC 1123 labels
    Strategy {
        name: svcnet_core::names::dns1123_label,
        prepare_update: keep_namespace_finalizers,
        holds_deletion: namespace_finalizers_left,
        ..typed::<core::Namespace, pb::api::core::v1::Namespace>(
            &resources::NAMESPACES,
            defaults::namespace,
            rules::namespace,
        )
    },
    Strategy {
        warnings: service_warnings,
        ..created_on_update::<core::Service, pb::api::core::v1::Service>(&resources::SERVICES, no_defaults, no_rules)
    },
    Strategy {
        validate_update: svcnet_core::workloads::pod_update::validate_pod_update,
        admit_create: crate::service_accounts::admit_pod,
        ..typed::<core::Pod, pb::api::core::v1::Pod>(&resources::PODS, defaults::pod, rules::pod)
    },
    typed::<core::Node, pb::api::core::v1::Node>(&resources::NODES, no_defaults, no_rules),
    Strategy {
        deprecated: Some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"),
        ..created_on_update::<core::Endpoints, pb::api::core::v1::Endpoints>(
            &resources::ENDPOINTS,
            no_defaults,
            no_rules,
        )
    },
    created_on_update::<core::Event, pb::api::core::v1::Event>(&resources::EVENTS, no_defaults, no_rules),
    Strategy {
        warnings: svcnet_core::endpoints::validate::endpoint_slice_warnings,
        ..typed::<discovery::EndpointSlice, pb::api::discovery::v1::EndpointSlice>(
            &resources::ENDPOINT_SLICES,
            defaults::endpoint_slice,
            svcnet_core::endpoints::validate::validate_endpoint_slice,
        )
    },
    typed::<apps::Deployment, pb::api::apps::v1::Deployment>(
        &resources::DEPLOYMENTS,
        defaults::deployment,
        rules::replicated,
    ),
    typed::<apps::ReplicaSet, pb::api::apps::v1::ReplicaSet>(
        &resources::REPLICA_SETS,
        defaults::replica_set,
        rules::replicated,
    ),
    typed::<apps::DaemonSet, pb::api::apps::v1::DaemonSet>(&resources::DAEMON_SETS, defaults::template, no_rules),
    typed::<apps::StatefulSet, pb::api::apps::v1::StatefulSet>(&resources::STATEFUL_SETS, defaults::template, no_rules),
    typed::<batch::Job, pb::api::batch::v1::Job>(&resources::JOBS, defaults::template, no_rules),
    typed::<core::ConfigMap, pb::api::core::v1::ConfigMap>(&resources::CONFIG_MAPS, no_defaults, no_rules),
    typed::<core::Secret, pb::api::core::v1::Secret>(&resources::SECRETS, defaults::secret, no_rules),
    typed::<core::ServiceAccount, pb::api::core::v1::ServiceAccount>(
        &resources::SERVICE_ACCOUNTS,
        no_defaults,
        no_rules,
    ),
    created_on_update::<rbac::Role, pb::api::rbac::v1::Role>(&resources::ROLES, no_defaults, no_rules),
    created_on_update::<rbac::ClusterRole, pb::api::rbac::v1::ClusterRole>(
        &resources::CLUSTER_ROLES,
        no_defaults,
        no_rules,
    ),
    created_on_update::<rbac::RoleBinding, pb::api::rbac::v1::RoleBinding>(
        &resources::ROLE_BINDINGS,
        no_defaults,
        rules::binding,
    ),
    created_on_update::<rbac::ClusterRoleBinding, pb::api::rbac::v1::ClusterRoleBinding>(
        &resources::CLUSTER_ROLE_BINDINGS,
        no_defaults,
        rules::binding,
    ),
    typed::<authz::SelfSubjectAccessReview, pb::api::authorization::v1::SelfSubjectAccessReview>(
        &resources::SELF_SUBJECT_ACCESS_REVIEWS,
        no_defaults,
        no_rules,
    ),
    typed::<authn::SelfSubjectReview, pb::api::authentication::v1::SelfSubjectReview>(
        &resources::SELF_SUBJECT_REVIEWS,
        no_defaults,
        no_rules,
    ),
    Strategy {
        validate_update: rules::service_cidr_update,
        update_rules_only: true,
        ..typed::<networking::ServiceCIDR, pb::api::networking::v1::ServiceCIDR>(
            &resources::SERVICE_CIDRS,
            defaults::service_cidr,
            rules::service_cidr,
        )
    },
    // an IPAddress is named by its address; the typed form cannot hold a parent reference
    // without its required parts, which validation reports instead
    Strategy {
        decode: decode_ip_address,
        validate_update: svcnet_core::service_cidr::validate_ip_address_update,
        update_rules_only: true,
        name: svcnet_core::service_cidr::ip_problems,
        ..typed::<networking::IPAddress, pb::api::networking::v1::IPAddress>(
            &resources::IP_ADDRESSES,
            no_defaults,
            svcnet_core::service_cidr::validate_ip_address,
        )
    },
];

fn keep_nothing(_: &mut Value, _: &Value) {}

fn admit_anything(
    _: &svcnet_store::Store,
    _: &str,
    _: &mut Value,
    _: &mut dyn crate::objects::Ids,
    _: bool,
) -> crate::objects::Reply<()> {
    Ok(())
}

fn holds_nothing(_: &Value) -> bool {
    false
}

/// A terminating Namespace stays while `spec.finalizers` holds anything.
fn namespace_finalizers_left(namespace: &Value) -> bool {
    namespace
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// A Namespace's `spec.finalizers` change only through `/finalize`, as upstream's.
fn keep_namespace_finalizers(new: &mut Value, old: &Value) {
    if new.is_object() {
        if !new["spec"].is_object() {
            new["spec"] = serde_json::json!({});
        }
        new["spec"]["finalizers"] = old
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(serde_json::json!([]));
    }
}

fn decode_ip_address(v: &Value) -> Result<Value, String> {
    let mut filled = v.clone();
    if let Some(parent) = filled["spec"].get_mut("parentRef").and_then(Value::as_object_mut) {
        for field in ["name", "resource"] {
            parent.entry(field).or_insert_with(|| Value::String(String::new()));
        }
    } else if filled.is_object() {
        filled["spec"] = serde_json::json!({ "parentRef": { "name": "", "resource": "" } });
    }
    round_trip::<networking::IPAddress>(&filled)
}

/// The registration of `kind`.
pub fn of(kind: &Kind) -> Option<&'static Strategy> {
    STRATEGIES.iter().find(|s| s.kind == kind)
}

/// The registration for a body's `apiVersion` and `kind`.
pub fn by_type(api_version: &str, kind: &str) -> Option<&'static Strategy> {
    STRATEGIES
        .iter()
        .find(|s| s.kind.kind == kind && s.kind.api_version() == api_version)
}

/// Upstream's defaulting per kind.
pub(crate) mod defaults {
    use serde_json::{Value, json};

    use super::{admit_pod_spec, default_pod_spec};

    pub fn pod(obj: &mut Value) {
        // `get_mut`: indexing a `&mut Value` would insert a null spec into a body without one
        if let Some(spec) = obj.get_mut("spec") {
            default_pod_spec(spec);
            admit_pod_spec(spec);
        }
    }

    /// As upstream's Namespace strategy: the `kubernetes.io/metadata.name` label always names
    /// it, `spec.finalizers` always holds `kubernetes`, a new one is `Active`, and a condition
    /// without a transition time says `null` (upstream's encoding of an unset time).
    pub fn namespace(obj: &mut Value) {
        let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned) else {
            return;
        };
        if !obj["metadata"]["labels"].is_object() {
            obj["metadata"]["labels"] = json!({});
        }
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        // `kubernetes` is added to whatever finalizers it has; nothing here takes it away
        // (the `finalize` subresource, which would, is not served)
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        if !obj["spec"]["finalizers"].is_array() {
            obj["spec"]["finalizers"] = json!([]);
        }
        if let Some(finalizers) = obj["spec"]["finalizers"].as_array_mut()
            && !finalizers.iter().any(|f| f == "kubernetes")
        {
            finalizers.push(json!("kubernetes"));
        }
        if !obj["status"].is_object() {
            obj["status"] = json!({});
        }
        if obj["status"]["phase"].is_null() {
            obj["status"]["phase"] = json!("Active");
        }
        let conditions = obj.get_mut("status").and_then(|s| s.get_mut("conditions"));
        if let Some(conditions) = conditions.and_then(Value::as_array_mut) {
            for c in conditions.iter_mut().filter(|c| c.is_object()) {
                if c.get("lastTransitionTime").is_none() {
                    c["lastTransitionTime"] = Value::Null;
                }
            }
        }
    }

    /// A ServiceCIDR always has a status, if only `{}`.
    pub fn service_cidr(obj: &mut Value) {
        if obj.is_object() && obj["status"].is_null() {
            obj["status"] = json!({});
        }
    }

    /// Every endpoint has conditions, if only `{}`.
    pub fn endpoint_slice(obj: &mut Value) {
        if let Some(endpoints) = obj.get_mut("endpoints").and_then(Value::as_array_mut) {
            for endpoint in endpoints.iter_mut().filter(|e| e.is_object()) {
                if endpoint["conditions"].is_null() {
                    endpoint["conditions"] = json!({});
                }
            }
        }
    }

    /// A workload's pod template.
    pub fn template(obj: &mut Value) {
        if obj["spec"]["template"]["spec"].is_object() {
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
        }
    }

    fn replicas(obj: &mut Value) {
        if obj["spec"].is_object() && obj["spec"]["replicas"].is_null() {
            obj["spec"]["replicas"] = json!(1);
        }
    }

    pub fn replica_set(obj: &mut Value) {
        replicas(obj);
        template(obj);
    }

    pub fn deployment(obj: &mut Value) {
        replica_set(obj);
        let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
            return;
        };
        strategy(&mut spec["strategy"]);
        for (field, value) in [("revisionHistoryLimit", 10), ("progressDeadlineSeconds", 600)] {
            if spec[field].is_null() {
                spec[field] = json!(value);
            }
        }
    }

    /// Upstream's Deployment strategy defaults: an empty strategy (`strategy: {}`, as kubectl
    /// create sends) is a rolling update with 25% unavailable and 25% surge. Anything but an
    /// object is left for validation (indexing it would panic).
    pub fn strategy(strategy: &mut Value) {
        if !(strategy.is_object() || strategy.is_null()) {
            return;
        }
        if strategy["type"].as_str().is_none_or(str::is_empty) {
            strategy["type"] = json!("RollingUpdate");
        }
        let rolling = &strategy["rollingUpdate"];
        if strategy["type"] == "RollingUpdate" && (rolling.is_object() || rolling.is_null()) {
            for field in ["maxUnavailable", "maxSurge"] {
                if strategy["rollingUpdate"][field].is_null() {
                    strategy["rollingUpdate"][field] = json!("25%");
                }
            }
        }
    }

    /// `type: Opaque` by default, and `stringData` folded into `data` (base64), as upstream's
    /// conversion does: `stringData` is never stored.
    pub fn secret(obj: &mut Value) {
        use base64::Engine;
        if !obj.is_object() {
            return;
        }
        if obj["type"].as_str().is_none_or(str::is_empty) {
            obj["type"] = json!("Opaque");
        }
        let Some(string_data) = obj.get("stringData").and_then(Value::as_object).cloned() else {
            return;
        };
        if !(obj["data"].is_object() || obj["data"].is_null()) {
            return;
        }
        for (key, value) in string_data {
            if let Some(text) = value.as_str() {
                obj["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
            }
        }
        if let Some(o) = obj.as_object_mut() {
            o.remove("stringData");
        }
    }
}

/// The kinds' own validation rules.
mod rules {
    use k8s_openapi::api::networking::v1::ServiceCIDR;
    use serde_json::Value;
    use svcnet_core::field::{FieldError, FieldPath};
    use svcnet_core::service_cidr;

    fn service_cidr_of(obj: &Value) -> ServiceCIDR {
        serde_json::from_value(obj.clone()).unwrap_or_default()
    }

    pub fn service_cidr(obj: &Value) -> Vec<FieldError> {
        service_cidr::validate_service_cidr(&service_cidr_of(obj))
    }

    pub fn service_cidr_update(new: &Value, old: &Value) -> Vec<FieldError> {
        service_cidr::validate_service_cidr_update(&service_cidr_of(new), &service_cidr_of(old))
    }

    /// A Namespace's `spec.finalizers`: each a qualified name, and either one of the standard
    /// names (`kubernetes`, `orphan`, `foregroundDeletion`) or qualified by a domain.
    pub fn namespace(obj: &Value) -> Vec<FieldError> {
        let path = FieldPath::new("spec").child("finalizers");
        let finalizers = obj.pointer("/spec/finalizers").and_then(Value::as_array);
        let mut errors = Vec::new();
        for (i, finalizer) in finalizers.into_iter().flatten().enumerate() {
            let name = finalizer.as_str().unwrap_or_default();
            for message in svcnet_core::names::qualified_name(name) {
                errors.push(FieldError::invalid(path.index(i), name, message));
            }
            if !name.contains('/') && !matches!(name, "kubernetes" | "orphan" | "foregroundDeletion") {
                errors.push(FieldError::invalid(
                    path.index(i),
                    name,
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
        errors
    }

    /// Deployments and ReplicaSets: replicas ≥ 0, a selector matching the template's labels,
    /// containers given (the core's checks).
    pub fn replicated(obj: &Value) -> Vec<FieldError> {
        let spec = &obj["spec"];
        svcnet_core::workloads::validate::validate_spec(
            spec["replicas"]
                .as_i64()
                .map(|r| r.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
            serde_json::from_value(spec["selector"].clone()).ok().as_ref(),
            serde_json::from_value(spec["template"].clone()).ok().as_ref(),
        )
    }

    /// A Pod's spec (the core's checks).
    pub fn pod(obj: &Value) -> Vec<FieldError> {
        svcnet_core::workloads::pod_spec::validate_pod_spec(&obj["spec"], &FieldPath::new("spec"))
    }

    /// A binding names a role of a kind it may bind (upstream's messages).
    pub fn binding(obj: &Value) -> Vec<FieldError> {
        let role = &obj["roleRef"];
        let path = FieldPath::new("roleRef");
        let mut errors = Vec::new();
        if role["apiGroup"] != "rbac.authorization.k8s.io" {
            let value = role["apiGroup"].as_str().unwrap_or("");
            errors.push(FieldError::not_supported(
                path.child("apiGroup"),
                value,
                &["rbac.authorization.k8s.io"],
            ));
        }
        let cluster_only = obj["kind"] == "ClusterRoleBinding";
        let kinds: &[&str] = if cluster_only {
            &["ClusterRole"]
        } else {
            &["Role", "ClusterRole"]
        };
        let kind = role["kind"].as_str().unwrap_or("");
        if !kinds.contains(&kind) {
            errors.push(FieldError::not_supported(path.child("kind"), kind, kinds));
        }
        if role["name"].as_str().is_none_or(str::is_empty) {
            errors.push(FieldError::required(path.child("name"), ""));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_served_kind_has_exactly_one_registration() {
        for kind in resources::ALL {
            let count = STRATEGIES.iter().filter(|s| s.kind == kind).count();
            assert_eq!(count, 1, "{}", kind.kind);
        }
        assert_eq!(STRATEGIES.len(), resources::ALL.len());
    }

    #[test]
    fn secrets_fold_string_data_into_data() {
        let mut secret = json!({"stringData": {"user": "admin"}, "data": {"a": "Yg=="}});
        (of(&resources::SECRETS).unwrap().defaults)(&mut secret);
        assert_eq!(
            secret,
            json!({"type": "Opaque", "data": {"a": "Yg==", "user": "YWRtaW4="}})
        );
    }

    #[test]
    fn bindings_must_name_a_role_they_may_bind() {
        let binding = json!({"kind": "ClusterRoleBinding", "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"}});
        let errors = (of(&resources::CLUSTER_ROLE_BINDINGS).unwrap().validate)(&binding);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].body(),
            "Unsupported value: \"Role\": supported values: \"ClusterRole\""
        );
        let fine = json!({"kind": "RoleBinding", "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"}});
        assert!((of(&resources::ROLE_BINDINGS).unwrap().validate)(&fine).is_empty());
    }

    #[test]
    fn secrets_with_bad_base64_do_not_decode() {
        let bad =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}});
        assert!((of(&resources::SECRETS).unwrap().decode)(&bad).is_err());
    }
}
